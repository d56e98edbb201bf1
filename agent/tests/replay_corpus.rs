//! Regression: the recorded corpus (real curl/nginx/python TLS traffic captured by cleartap with
//! --record-raw) replays into exactly the exchanges that were captured live.

use std::collections::BTreeMap;

use agent::{
    conn::{ConnTable, TableLimits, replay},
    kernel::recording::{read, split},
};

#[test]
fn recorded_corpus_replays_to_the_live_exchanges() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/corpus/tls_mixed.rec");
    let bytes = read(std::path::Path::new(path)).expect("corpus");
    let records = split(&bytes).expect("well-formed recording");
    let mut table = ConnTable::new(TableLimits::default());
    let mut out = Vec::new();
    let stats = replay(records.iter().copied(), &mut table, &mut out);
    assert_eq!(stats.decode_errors, 0);
    assert_eq!(out.len(), 920);
    assert_eq!(table.stats.parse_errors, 0);
    assert_eq!(table.stats.gap_events, 0);
    // (comm, method, status, response body size) → count; the POST answer is {"received": 20000}
    let mut shape: BTreeMap<(String, String, u16, u64), usize> = BTreeMap::new();
    for item in &out {
        let method = item
            .exchange
            .request
            .as_ref()
            .and_then(|m| m.head.method())
            .unwrap_or_default()
            .to_owned();
        let response = item.exchange.response.as_ref();
        let status = response.and_then(|m| m.head.status()).unwrap_or(0);
        let size = response.and_then(|m| m.body.as_ref()).map_or(0, |b| b.size);
        *shape
            .entry((item.conn.comm().to_owned(), method, status, size))
            .or_default() += 1;
    }
    let expected: BTreeMap<(String, String, u16, u64), usize> = [
        (("curl".into(), "GET".into(), 200, 100), 400),
        (("curl".into(), "GET".into(), 200, 16384), 40),
        (("curl".into(), "POST".into(), 200, 19), 20),
        (("nginx".into(), "GET".into(), 200, 100), 400),
        (("nginx".into(), "GET".into(), 200, 16384), 40),
        (("python3".into(), "POST".into(), 200, 19), 20),
    ]
    .into_iter()
    .collect();
    assert_eq!(shape, expected);
}

/// A damaged recording (truncated at arbitrary points, bytes flipped) must replay without a
/// panic: decode errors and parse errors are counted, the table stays bounded.
#[test]
fn corrupted_record_streams_never_panic() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/corpus/tls_mixed.rec");
    let bytes = read(std::path::Path::new(path)).expect("corpus");
    let records = split(&bytes).expect("well-formed recording");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..20 {
        let damaged: Vec<Vec<u8>> = records
            .iter()
            .map(|r| {
                let mut r = r.to_vec();
                match next() % 4 {
                    0 if !r.is_empty() => r.truncate((next() as usize) % r.len()),
                    1 if !r.is_empty() => {
                        let i = (next() as usize) % r.len();
                        r[i] ^= next() as u8;
                    }
                    _ => {}
                }
                r
            })
            .collect();
        let mut table = ConnTable::new(TableLimits {
            max_streams: 8,
            ..TableLimits::default()
        });
        let mut out = Vec::new();
        let stats = replay(damaged.iter().map(Vec::as_slice), &mut table, &mut out);
        assert_eq!(stats.records as usize, records.len(), "round {round}");
        assert!(table.is_empty());
    }
}
