//! Go binaries on the node are as hostile as the network: whatever an executable holds, the
//! build-information reader, the function-table reader and the return finder must never panic
//! nor read out of bounds, and whatever they find lies inside the file.
#![no_main]

use agent::kernel::tls::{elf::Elf, golang};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(elf) = Elf::parse(data)
        && let Ok(Some(go)) = golang::inspect(&elf)
    {
        for function in [&go.read, &go.write] {
            assert!(function.entry < data.len() as u64);
            assert!(function.returns.iter().all(|&r| r < data.len() as u64));
        }
    }
    if let Ok(Some((start, end))) = golang::function_bounds(data, 0x40_1000, golang::READ_FUNCTION)
    {
        assert!(start >= 0x40_1000 && end >= 0x40_1000);
    }
    let _ = golang::parse_buildinfo(data, |_, _| None);
    if let Ok(found) = golang::return_offsets(data, 0) {
        assert!(found.iter().all(|&r| r < data.len() as u64));
    }
});
