use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

// Debian bookworm libssl3 3.0.x, SSL_read at 0x35430 and SSL_read_ex at 0x354c0 (objdump).
const DEBIAN_SSL_READ: &str =
    "4883ec1864488b042528000000488944240831c085d2782f4889e14863d2e83dfeffff85c07e038b";
const DEBIAN_SSL_READ_EX: &str = "4883ec08e8c7fdffff";

#[test]
fn recognises_debian_wrappers() {
    let plain = callee_in(
        "SSL_read",
        0x35430,
        &hex(DEBIAN_SSL_READ),
        WrapperKind::IntNum,
    );
    let ex = callee_in(
        "SSL_read_ex",
        0x354c0,
        &hex(DEBIAN_SSL_READ_EX),
        WrapperKind::Ex,
    );
    assert_eq!(plain, Ok(0x35290));
    assert_eq!(ex, Ok(0x35290));
}

#[test]
fn rejects_wrapper_that_changes_ssl_or_buf() {
    // mov rdi, rax ; call rel32
    let bytes = hex("4889c7e800000000");
    assert!(matches!(
        callee_in("SSL_read_ex", 0x1000, &bytes, WrapperKind::Ex),
        Err(ShapeError::ArgumentsChanged { .. })
    ));
    // An _ex wrapper may not touch the size_t* (rcx): mov rcx, rsp ; call
    let bytes = hex("4889e1e800000000");
    assert!(callee_in("SSL_read_ex", 0x1000, &bytes, WrapperKind::Ex).is_err());
    // ...but the int wrapper passes &local exactly that way.
    assert_eq!(
        callee_in("SSL_read", 0x1000, &bytes, WrapperKind::IntNum),
        Ok(0x1008)
    );
}

#[test]
fn rejects_tail_jump_indirect_call_and_return() {
    assert_eq!(
        callee_in("SSL_write", 0x1000, &hex("e900000000"), WrapperKind::IntNum),
        Err(ShapeError::NoCall("SSL_write"))
    );
    // call [rip+0]
    assert_eq!(
        callee_in(
            "SSL_write",
            0x1000,
            &hex("ff1500000000"),
            WrapperKind::IntNum
        ),
        Err(ShapeError::NoCall("SSL_write"))
    );
    assert_eq!(
        callee_in("SSL_write", 0x1000, &hex("c3"), WrapperKind::IntNum),
        Err(ShapeError::NoCall("SSL_write"))
    );
    assert_eq!(
        callee_in("SSL_write", 0x1000, &[], WrapperKind::IntNum),
        Err(ShapeError::NoCall("SSL_write"))
    );
}

#[test]
fn emulated_first_instructions() {
    assert!(first_is_emulated(0x35290, &hex("41554154")).is_ok()); // push r13
    assert!(first_is_emulated(0x10, &hex("0f1f440000")).is_ok()); // nop dword [rax+rax]
    assert!(matches!(
        first_is_emulated(0x10, &hex("4883ec18")),
        Err(ShapeError::NotEmulated(0x10, _))
    )); // sub rsp
    assert!(first_is_emulated(0x10, &hex("f30f1efa")).is_err()); // endbr64 is single-stepped
}

#[test]
fn finds_internal_functions_in_system_libssl() {
    let path = [
        "/lib/x86_64-linux-gnu/libssl.so.3",
        "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(path) = path else {
        eprintln!("skipped: no system libssl.so.3");
        return;
    };
    let bytes = std::fs::read(path).expect("read libssl");
    let targets = find_internal_targets(&bytes).expect("Debian's libssl has the wrapper shape");
    assert_ne!(targets.read_offset, targets.write_offset);
    let names: Vec<_> = targets.read_wrappers.iter().map(|w| w.0).collect();
    assert_eq!(names, ["SSL_read", "SSL_read_ex"]);
    let names: Vec<_> = targets.write_wrappers.iter().map(|w| w.0).collect();
    assert_eq!(names, ["SSL_write", "SSL_write_ex"]);
}

#[test]
fn non_elf_and_garbage_are_errors() {
    assert!(matches!(
        find_internal_targets(b"not an elf"),
        Err(ShapeError::Elf(_))
    ));
    let mut seed = 7u64;
    for len in [0usize, 1, 64, 4096] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                (seed >> 33) as u8
            })
            .collect();
        let _ = find_internal_targets(&bytes);
        let _ = callee_in("SSL_read", 0, &bytes, WrapperKind::IntNum);
    }
}

#[test]
fn node_style_wrappers_stay_exported() {
    let node = std::path::Path::new("/usr/bin/node");
    if !node.exists() {
        eprintln!("skipped: no /usr/bin/node");
        return;
    }
    let map = crate::kernel::tls::elf::map(node).expect("map node");
    // nodesource's node inlines ssl_read_internal and starts SSL_read with `push %rbp`.
    assert_eq!(
        find_internal_targets(&map),
        Err(ShapeError::AlreadyCheap("SSL_read"))
    );
}
