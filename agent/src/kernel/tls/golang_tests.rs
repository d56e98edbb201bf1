use super::*;

fn inline_buildinfo(version: &str) -> Vec<u8> {
    let mut blob = BUILDINFO_MAGIC.to_vec();
    blob.extend_from_slice(&[8, 2]);
    blob.resize(32, 0);
    blob.push(version.len() as u8);
    blob.extend_from_slice(version.as_bytes());
    blob.push(0x10);
    blob.extend_from_slice(&[b'x'; 16]);
    blob
}

#[test]
fn inline_build_version() {
    let blob = inline_buildinfo("go1.21.13");
    assert_eq!(
        parse_buildinfo(&blob, |_, _| None).as_deref(),
        Some("go1.21.13")
    );
    // Truncated, wrong magic, or a length past the end: no version, no panic.
    assert_eq!(parse_buildinfo(&blob[..35], |_, _| None), None);
    assert_eq!(parse_buildinfo(&blob[1..], |_, _| None), None);
    let mut long = blob.clone();
    long[32] = 0xff;
    long[33] = 0x7f;
    assert_eq!(parse_buildinfo(&long, |_, _| None), None);
}

#[test]
fn pointer_build_version_of_older_toolchains() {
    // Go 1.17 and older: a pointer to a string header, which points at the bytes.
    let mut blob = BUILDINFO_MAGIC.to_vec();
    blob.extend_from_slice(&[8, 0]);
    blob.extend_from_slice(&0x1000u64.to_le_bytes());
    blob.extend_from_slice(&0x1010u64.to_le_bytes());
    let mut header = 0x2000u64.to_le_bytes().to_vec();
    header.extend_from_slice(&8u64.to_le_bytes());
    let version = b"go1.16.5";
    let read = |addr: u64, len: usize| match addr {
        0x1000 => header.get(..len),
        0x2000 => version.get(..len),
        _ => None,
    };
    let found = parse_buildinfo(&blob, read).expect("version");
    assert_eq!(found, "go1.16.5");
    assert_eq!(
        supported(&found, PCLNTAB_MAGIC_116),
        Err(GoError::TooOld {
            version: "go1.16.5".into()
        })
    );
    assert_eq!(
        GoError::TooOld {
            version: found.clone()
        }
        .to_string(),
        "built with go1.16.5, older than go1.17: its stack-based calling convention is not supported"
    );
}

#[test]
fn versions_and_support() {
    assert_eq!(minor_version("go1.21.13"), Some(21));
    assert_eq!(minor_version("go1.27.3"), Some(27));
    assert_eq!(minor_version("devel go1.22-abcdef Tue"), Some(22));
    assert_eq!(minor_version("go1.x"), None);
    assert_eq!(minor_version("gö1."), None);
    assert!(supported("go1.17", PCLNTAB_MAGIC_116).is_ok());
    assert!(supported("go1.21.13", PCLNTAB_MAGIC_118).is_ok());
    assert!(supported("an unknown Go version", PCLNTAB_MAGIC_120).is_ok());
    assert!(supported("an unknown Go version", PCLNTAB_MAGIC_116).is_err());
    assert!(supported("go1.15", PCLNTAB_MAGIC_12).is_err());
    assert!(supported("an unknown Go version", PCLNTAB_MAGIC_12).is_err());
}

/// A Go 1.20-format table with `names`, function i at text + 0x40 * i.
fn table_120(names: &[&str]) -> Vec<u8> {
    let count = names.len();
    let header = 8 + 8 * 8;
    let mut funcnames = Vec::new();
    let mut name_offsets = Vec::new();
    for name in names {
        name_offsets.push(funcnames.len() as u32);
        funcnames.extend_from_slice(name.as_bytes());
        funcnames.push(0);
    }
    let funcnames_at = header;
    let functab_at = funcnames_at + funcnames.len();
    let functab_len = (count + 1) * 8;
    let mut t = PCLNTAB_MAGIC_120.to_le_bytes().to_vec();
    t.extend_from_slice(&[0, 0, 1, 8]);
    for word in [
        count as u64,
        0,
        0,
        funcnames_at as u64,
        0,
        0,
        0,
        functab_at as u64,
    ] {
        t.extend_from_slice(&word.to_le_bytes());
    }
    t.extend_from_slice(&funcnames);
    for i in 0..=count {
        t.extend_from_slice(&(0x40 * i as u32).to_le_bytes());
        // funcoff (relative to functab) of a func record after the index.
        let funcoff = (functab_len + 8 * i.min(count.saturating_sub(1))) as u32;
        t.extend_from_slice(&funcoff.to_le_bytes());
    }
    for (i, offset) in name_offsets.iter().enumerate() {
        t.extend_from_slice(&(0x40 * i as u32).to_le_bytes());
        t.extend_from_slice(&offset.to_le_bytes());
    }
    t
}

#[test]
fn function_table_bounds() {
    let table = table_120(&["runtime.text", READ_FUNCTION, WRITE_FUNCTION, "main.main"]);
    let text = 0x40_1000;
    assert_eq!(
        function_bounds(&table, text, READ_FUNCTION),
        Ok(Some((text + 0x40, text + 0x80)))
    );
    assert_eq!(
        function_bounds(&table, text, WRITE_FUNCTION),
        Ok(Some((text + 0x80, text + 0xc0)))
    );
    assert_eq!(
        function_bounds(&table, text, "crypto/tls.(*Conn).Close"),
        Ok(None)
    );
    // Every truncation fails cleanly.
    for len in 0..table.len() {
        let _ = function_bounds(&table[..len], text, WRITE_FUNCTION);
    }
    // A count far beyond the table is refused before any index is read.
    let mut huge = table.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        function_bounds(&huge, text, READ_FUNCTION),
        Err(GoError::Malformed(_))
    ));
}

#[test]
fn returns_found_by_decoding() {
    // push rbp; mov rbp,rsp; test rax,rax; je +1; ret; pop rbp; ret 8; int3; int3
    let code = [
        0x55, 0x48, 0x89, 0xe5, 0x48, 0x85, 0xc0, 0x74, 0x01, 0xc3, 0x5d, 0xc2, 0x08, 0x00, 0xcc,
        0xcc,
    ];
    assert_eq!(return_offsets(&code, 0x1000), Ok(vec![9, 11]));
    assert!(return_offsets(&code[..9], 0x1000).is_err(), "no ret");
    // A truncated instruction at the end is an error, not a panic.
    assert!(return_offsets(&[0xc3, 0x48, 0x89], 0).is_err());
}

#[test]
fn entry_probe_moves_to_the_emulated_stack_check_jump() {
    // Go 1.27's (*Conn).Write: lea r12,[rsp-0x48]; cmp r12,[r14+0x10]; jbe …; push rbp
    let write = [
        0x4c, 0x8d, 0x64, 0x24, 0xb8, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0xb3, 0x07, 0x00, 0x00,
        0x55,
    ];
    assert_eq!(entry_probe_offset(&write, 0x5a_a740), 9);
    // (*Conn).Read: cmp rsp,[r14+0x10]; jbe …; push rbp
    let read = [
        0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x51, 0x03, 0x00, 0x00, 0x55,
    ];
    assert_eq!(entry_probe_offset(&read, 0x5a_bbe0), 4);
    // An instruction that writes an argument register before the jump: stay at the entry.
    let clobbers = [0x48, 0x31, 0xc0, 0x0f, 0x86, 0x51, 0x03, 0x00, 0x00];
    assert_eq!(entry_probe_offset(&clobbers, 0), 0);
    // A store before the jump, a call, or no branch at all: the entry.
    let store = [0x4c, 0x89, 0x24, 0x24, 0x76, 0x02];
    assert_eq!(entry_probe_offset(&store, 0), 0);
    assert_eq!(entry_probe_offset(&[0xe8, 0, 0, 0, 0, 0x76, 0x02], 0), 0);
    assert_eq!(entry_probe_offset(&[0x55, 0x48, 0x89, 0xe5], 0), 0);
    assert_eq!(entry_probe_offset(&[], 0), 0);
}
