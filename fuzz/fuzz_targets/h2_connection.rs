//! One HTTP/2 connection, both directions, cut into records by the input itself, with gaps:
//! framing, HPACK (Huffman included), streams and gRPC must never panic, and the stream table
//! and every exchange must stay within their bounds. The same bytes also go straight to an
//! HPACK decoder, as one header block.
//!
//! Input: a control byte (bit 0: the first record starts with the preface), then records of
//! [direction+gap byte, length byte, bytes…].
#![no_main]

use agent::protocol::{
    ConnectionParser, Direction, ProtocolStats,
    h2::{
        Http2Connection, Limits,
        frame::PREFACE,
        hpack::{Decoder, FieldList},
    },
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let mut hpack = Decoder::new(256, 1024);
    let _ = hpack.decode(rest, &mut FieldList::default());

    let limits = Limits {
        max_streams: 8,
        max_table_bytes: 512,
        max_list_bytes: 1024,
        max_block_bytes: 2048,
        body_prefix_bytes: 16,
    };
    let mut stats = ProtocolStats::default();
    let mut conn = Http2Connection::new(limits, &mut stats);
    let mut out = Vec::new();
    if control & 1 != 0 {
        let _ = conn.push(Direction::Egress, PREFACE, 0, &mut out, &mut stats);
    }
    let mut ts = 0u64;
    while let [flags, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (record, next) = tail.split_at(n);
        rest = next;
        ts += 1;
        let direction = if flags & 1 == 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        if flags & 0x80 != 0 {
            conn.gap(direction, u64::from(flags & 0x3f), &mut stats);
        }
        let _ = conn.push(direction, record, ts, &mut out, &mut stats);
    }
    conn.close(&mut out, &mut stats);
    for x in &out {
        let info = x.http2.as_ref().expect("every HTTP/2 exchange names its stream");
        assert!(info.stream_id <= 0x7fff_ffff);
        for m in [&x.request, &x.response].into_iter().flatten() {
            assert!(m.body.as_ref().is_none_or(|b| b.prefix.len() <= 16));
        }
    }
});
