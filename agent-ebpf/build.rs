//! Keeps the `*_global` functions global BPF functions: bpf-linker internalises every symbol it
//! is not told to export, and the verifier re-checks a static function at every call site (and
//! for every state reaching it), while it checks a global one once, for any arguments. The
//! copy loops and the fd-table walk would otherwise exceed the verifier's budget on 6.1.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        println!(
            "cargo:rustc-link-arg=--export=emit_chunk_global,emit_buffer_global,emit_iov_global,sock_of_fd_global,emit_128_global,emit_512_global,emit_2k_global,emit_4k_global,emit_8k_global,emit_16k_global"
        );
    }
}
