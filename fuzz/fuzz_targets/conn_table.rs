//! Whole pipeline from decoded records: fuzzer bytes become data records on a few streams in
//! both directions with arbitrary offsets, then socket/close events. Must never panic and must
//! respect the stream bound.
#![no_main]

use agent::conn::{ConnTable, StreamId, TableLimits};
use agent_common::event::{COMM_BYTES, DataRecord, KIND_DATA, RecordHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut table = ConnTable::new(TableLimits {
        max_streams: 4,
        ..TableLimits::default()
    });
    let mut out = Vec::new();
    let mut offsets = [[0u64; 2]; 8];
    let mut rest = data;
    let mut ts = 0;
    while rest.len() >= 3 {
        let (ctl, tail) = rest.split_at(3);
        let stream = usize::from(ctl[0] % 8);
        let direction = u32::from(ctl[0] >> 7);
        let len = usize::from(ctl[1]).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        ts += 1;
        // Mostly contiguous, sometimes a gap or an overlap.
        let skew = i64::from(ctl[2] as i8) / 32;
        let offset = offsets[stream][direction as usize].saturating_add_signed(skew);
        offsets[stream][direction as usize] = offset + len as u64;
        if ctl[2] == 0xff {
            table.close(StreamId { tgid: 1, stream: stream as u64 }, &mut out);
            continue;
        }
        let record = DataRecord {
            header: RecordHeader {
                kind: KIND_DATA,
                _pad: 0,
                timestamp_ns: ts,
                pid_tgid: (1 << 32) | 2,
            },
            stream: stream as u64,
            stream_offset: offset,
            call_len: len as u32,
            payload_len: len as u32,
            direction,
            fd: 3,
            library_id: 1,
            flags: 0,
            comm: [b'f'; COMM_BYTES],
            cgroup_id: 0,
        };
        table.on_data(&record, payload, &mut out);
        assert!(table.len() <= 4);
    }
    table.close_all(&mut out);
    assert!(table.is_empty());
});
