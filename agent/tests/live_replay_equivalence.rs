//! Live and replayed judging see the same exchange: every exchange of the recorded corpus (real
//! curl/nginx/python TLS traffic) plus generated token-bearing traffic (an enumeration, an
//! unsigned JWT, secrets in the query, repeated and non-ASCII headers) is built into the typed
//! event as the agent builds it, written as native JSON, read back as `cleartap replay` reads
//! it, and must come back equal (less the in-memory stream key), with equal findings from two
//! engines fed the two streams.

use agent::{
    classify::redact::TokenKey,
    conn::{ConnExchange, ConnTable, TableLimits, replay},
    detect::{DetectConfig, Engine, content::Bodies},
    enrich::workload::Workload,
    event::{
        ExchangeEvent,
        build::{Enrichment, build, start_epoch_ms},
    },
    kernel::recording::{read, split},
};
use agent_common::event::{
    DIRECTION_EGRESS, DIRECTION_INGRESS, DataRecord, KIND_DATA, RecordHeader,
};

fn corpus() -> Vec<ConnExchange> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/corpus/tls_mixed.rec");
    let bytes = read(std::path::Path::new(path)).expect("corpus");
    let records = split(&bytes).expect("well-formed recording");
    let mut table = ConnTable::new(TableLimits::default());
    let mut out = Vec::new();
    replay(records.iter().copied(), &mut table, &mut out);
    out
}

/// Request/response pairs on one server-side stream, as the kernel would hand them over.
fn generated() -> Vec<ConnExchange> {
    let jwt_none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiaWF0IjoxNzAwMDAwMDAwfQ.";
    let mut pairs: Vec<(String, String)> = (1..=30)
        .map(|i| {
            (
                format!(
                    "GET /api/v1/users/{i}?fields=name&access_token=t0k-{i} HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer opaque-7\r\nAccept: a\r\nAccept: b\r\nX-Note: caf\u{e9}\r\n\r\n"
                ),
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\n{}".to_owned(),
            )
        })
        .collect();
    pairs.push((
        format!(
            "GET /api/v1/me HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {jwt_none}\r\n\r\n"
        ),
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned(),
    ));
    pairs.push((
        "GET /search?q=1%27%20OR%20%271%27%3D%271 HTTP/1.1\r\nHost: api.test\r\nUser-Agent: sqlmap/1.7\r\n\r\n".to_owned(),
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_owned(),
    ));
    let mut table = ConnTable::new(TableLimits::default());
    let mut out = Vec::new();
    let (mut inbound, mut outbound, mut ts) = (0u64, 0u64, 1_000_000u64);
    let mut record = |direction: u32, offset: &mut u64, payload: &[u8], ts: u64| {
        let r = DataRecord {
            header: RecordHeader {
                kind: KIND_DATA,
                _pad: 0,
                timestamp_ns: ts,
                pid_tgid: (4242u64 << 32) | 4242,
            },
            stream: 0x7000,
            stream_offset: *offset,
            call_len: payload.len() as u32,
            payload_len: payload.len() as u32,
            direction,
            fd: 9,
            library_id: 1,
            flags: 0,
            comm: *b"api\0\0\0\0\0\0\0\0\0\0\0\0\0",
            cgroup_id: 7,
        };
        *offset += payload.len() as u64;
        table.on_data(&r, payload, &mut out);
    };
    for (request, response) in &pairs {
        ts += 1_000_000;
        record(DIRECTION_INGRESS, &mut inbound, request.as_bytes(), ts);
        ts += 500_000;
        record(DIRECTION_EGRESS, &mut outbound, response.as_bytes(), ts);
    }
    table.close_all(&mut out);
    out
}

#[test]
fn live_and_replayed_exchanges_are_equal_and_judged_the_same() {
    let key = TokenKey::for_tests();
    let workload = Workload::default();
    let ctx = Enrichment {
        host: "node-1",
        exe: Some("/usr/bin/api"),
        library: Some("/usr/lib/x86_64-linux-gnu/libssl.so.3"),
        library_version: None,
        monotonic_to_unix_ns: 1_763_700_000_000_000_000,
        body_routes: &[],
        event_body_bytes: 0,
        workload: &workload,
        node: None,
        key: &key,
        credential_key: None,
    };
    let items: Vec<ConnExchange> = corpus().into_iter().chain(generated()).collect();
    assert_eq!(items.len(), 920 + 32);
    let config = DetectConfig {
        inventory_learning_secs: 0,
        ..DetectConfig::default()
    };
    let (mut live_engine, mut replay_engine) = (Engine::new(config.clone()), Engine::new(config));
    let (mut live_findings, mut replay_findings) = (Vec::new(), Vec::new());
    for item in &items {
        let live = build(item, &ctx);
        let text = serde_json::to_string(&live).expect("native JSON");
        // The agent writes events with its own writer: byte for byte serde's.
        assert_eq!(agent::output::native_event::render(&live), text);
        let mut back: ExchangeEvent<'_> = serde_json::from_str(&text).expect("replay reads it");
        assert_eq!(
            back.connection.stream, None,
            "the stream key is never written"
        );
        back.connection.stream = live.connection.stream;
        assert_eq!(back, live, "{text}");
        let when = start_epoch_ms(item, ctx.monotonic_to_unix_ns);
        assert_eq!(back.epoch_ms(), Some(when));
        for f in live_engine.inspect(&live, when, &Bodies::default()) {
            live_findings.push(serde_json::to_value(&f).expect("finding"));
        }
        for f in replay_engine.inspect(&back, when, &Bodies::default()) {
            replay_findings.push(serde_json::to_value(&f).expect("finding"));
        }
    }
    let rules: Vec<&str> = live_findings
        .iter()
        .map(|f| f["rule"]["id"].as_str().unwrap_or(""))
        .collect();
    for expected in ["BOLA-1", "AUTH-1", "AUTH-5", "INJ-1", "SCAN-1"] {
        assert!(rules.contains(&expected), "{expected} missing: {rules:?}");
    }
    assert_eq!(live_findings, replay_findings);
}
