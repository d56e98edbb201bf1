//! One direction of a connection, cut into records at fuzzer-chosen points, with fuzzer-chosen
//! gaps: the parser must never panic and must keep its buffer bounded.
#![no_main]

use agent::protocol::h1::{Limits, StreamParser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let limits = Limits {
        max_head_bytes: 512,
        body_prefix_bytes: 16,
    };
    let mut parser = StreamParser::new(limits);
    let cut = usize::from(control % 61) + 1;
    for (i, chunk) in rest.chunks(cut).enumerate() {
        if control & 0x80 != 0 && i % 5 == 3 {
            parser.gap(u64::from(chunk[0]));
        }
        parser.push(chunk, i as u64);
        let method = if control & 0x40 != 0 { Some("HEAD") } else { None };
        while let Ok(Some(_)) = parser.poll(method) {}
        assert!(parser.buffered() <= limits.max_head_bytes + 2 * cut + 1024);
    }
    let _ = parser.finish();
});
