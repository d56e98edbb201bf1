//! Keeps `emit_chunk_global` a global BPF function: bpf-linker internalises every symbol it is
//! not told to export, and the verifier re-checks a static function at every call site, while
//! it checks a global one once. The chunk loops would otherwise exceed the verifier's budget.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        println!("cargo:rustc-link-arg=--export=emit_chunk_global");
    }
}
