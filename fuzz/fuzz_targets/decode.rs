//! Ring-buffer records are untrusted bytes: decoding must never panic, and a decoded data
//! record's payload must lie within the input.
#![no_main]

use agent::kernel::decode::{Record, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Record::Data(record, payload)) = decode(data) {
        assert!(payload.len() == record.payload_len as usize);
        assert!(payload.len() <= data.len());
    }
    let _ = agent::kernel::recording::split(data);
});
