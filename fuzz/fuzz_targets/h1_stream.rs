//! One direction of a connection, cut into records at fuzzer-chosen points, with fuzzer-chosen
//! gaps: the parser must never panic and must keep its buffer bounded, and reading records in
//! place (the live path) must give exactly the events buffering them gives.
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
    let mut in_place = StreamParser::new(limits);
    let cut = usize::from(control % 61) + 1;
    let method = if control & 0x40 != 0 { Some("HEAD") } else { None };
    for (i, chunk) in rest.chunks(cut).enumerate() {
        if control & 0x80 != 0 && i % 5 == 3 {
            let kept = parser.gap(u64::from(chunk[0]));
            assert_eq!(kept, in_place.gap(u64::from(chunk[0])));
        }
        parser.push(chunk, i as u64);
        let mut buffered = Vec::new();
        let buffered_end = loop {
            match parser.poll(method) {
                Ok(Some(event)) => buffered.push(event),
                other => break other.map(|_| ()),
            }
        };
        in_place.begin(i as u64);
        let mut input = chunk;
        let mut read = Vec::new();
        let read_end = loop {
            match in_place.poll_input(method, &mut input) {
                Ok(Some(event)) => read.push(event),
                other => break other.map(|_| ()),
            }
        };
        if read_end.is_ok() {
            in_place.keep(input);
        }
        assert_eq!(buffered, read);
        assert_eq!(buffered_end, read_end);
        assert_eq!(parser.buffered(), in_place.buffered());
        assert!(parser.buffered() <= limits.max_head_bytes + 2 * cut + 1024);
    }
    assert_eq!(parser.finish(), in_place.finish());
});
