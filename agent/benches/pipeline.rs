//! Userspace pipeline cost on a recorded corpus (real TLS traffic, benches/corpus/tls_mixed.rec):
//! a bare httparse loop over the same payloads (baseline), decode → conn → http → pairing, and
//! the same plus JSON rendering. Prints the pipeline/baseline throughput ratio measured in this
//! run, and the RSS of 10k concurrently open connections. Run: `cargo bench -p agent`.

use std::{hint::black_box, time::Instant};

use agent::{
    app::pipeline::body_tap,
    classify::redact::TokenKey,
    conn::{ConnExchange, ConnTable, TableLimits, replay},
    detect::{DetectConfig, Engine},
    enrich::workload::Workload,
    event::build::{Enrichment, build, start_epoch_ms},
    kernel::decode::{Record, decode},
    kernel::recording::{read, split},
    output::{Output, native_json},
    protocol::h1::Limits,
};
use criterion::{Criterion, Throughput};

/// The recorded corpus, or the recording named by CLEARTAP_BENCH_CORPUS (for instance one made
/// with `cleartap --record-raw` under load, to profile a live mix).
fn corpus() -> Vec<u8> {
    let path = std::env::var_os("CLEARTAP_BENCH_CORPUS").map_or_else(
        || {
            std::path::PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/benches/corpus/tls_mixed.rec"
            ))
        },
        std::path::PathBuf::from,
    );
    read(&path).expect("corpus")
}

/// What httparse alone does with the same bytes: parse every payload that starts a message.
fn bare_httparse(payloads: &[&[u8]]) -> usize {
    let mut parsed = 0;
    for p in payloads {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        if p.starts_with(b"HTTP/") {
            let mut res = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(_)) = res.parse(p) {
                parsed += 1;
            }
        } else {
            let mut req = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(_)) = req.parse(p) {
                parsed += 1;
            }
        }
    }
    parsed
}

fn pipeline(records: &[&[u8]]) -> usize {
    let mut table = ConnTable::new(TableLimits::default());
    let mut out = Vec::new();
    replay(records.iter().copied(), &mut table, &mut out);
    out.len()
}

/// decode → conn → HTTP over the recording, with the default body tap when the rules run.
fn exchanges(records: &[&[u8]], detect: bool) -> Vec<ConnExchange> {
    let mut table = ConnTable::new(TableLimits {
        http: Limits {
            body_prefix_bytes: if detect {
                DetectConfig::default().body_tap_bytes
            } else {
                0
            },
            ..Limits::default()
        },
        ..TableLimits::default()
    });
    let mut out = Vec::new();
    replay(records.iter().copied(), &mut table, &mut out);
    out
}

/// What the agent knows about every exchange's process and node, fixed for the bench.
fn enrichment<'a>(key: &'a TokenKey, workload: &'a Workload) -> Enrichment<'a> {
    Enrichment {
        host: "bench",
        exe: Some("/usr/bin/bench"),
        library: Some("/usr/lib/libssl.so.3"),
        library_version: None,
        monotonic_to_unix_ns: 1_763_700_000_000_000_000,
        body_routes: &[],
        event_body_bytes: 0,
        workload,
        node: None,
        key,
        credential_key: None,
    }
}

/// The whole userspace path after the ring buffer, with the agent's defaults: decode → conn →
/// HTTP → typed event (redaction) → detections (every rule, 4 KiB body tap) → native JSON.
fn pipeline_and_output(records: &[&[u8]], sink: &mut Vec<u8>, detect: bool) -> usize {
    pipeline_and_writer(records, sink, detect, false)
}

/// As [`pipeline_and_output`]; with `serde_writer` the events are rendered through serde_json
/// (what the agent did before `output::native_event`), for the ratio printed beside it.
fn pipeline_and_writer(
    records: &[&[u8]],
    sink: &mut Vec<u8>,
    detect: bool,
    serde_writer: bool,
) -> usize {
    let mut engine = detect.then(|| Engine::new(DetectConfig::default()));
    let out = exchanges(records, detect);
    let (key, workload) = (TokenKey::for_tests(), Workload::default());
    let ctx = enrichment(&key, &workload);
    sink.clear();
    let mut findings = 0;
    for item in &out {
        let event = build(item, &ctx);
        if let Some(engine) = engine.as_mut() {
            let epoch_ms = start_epoch_ms(item, ctx.monotonic_to_unix_ns);
            let bodies = body_tap(item);
            for f in engine.inspect(&event, epoch_ms, &bodies) {
                sink.extend_from_slice(native_json(&f).expect("json").as_bytes());
                sink.push(b'\n');
                findings += 1;
            }
        }
        // As the output stage writes it.
        if serde_writer {
            sink.extend_from_slice(native_json(&event).expect("json").as_bytes());
        } else {
            sink.extend_from_slice(agent::output::native_event::render(&event).as_bytes());
        }
        sink.push(b'\n');
    }
    black_box(findings);
    out.len()
}

/// [`pipeline_and_output`] with detections, handing events and findings to the agent's output
/// stage as the live pipeline does (a hand-over to the sink workers every 64 exchanges, about
/// one drain of the kernel's buffer under load).
fn pipeline_to_output(records: &[&[u8]], output: &mut Output) -> usize {
    let mut engine = Engine::new(DetectConfig::default());
    let out = exchanges(records, true);
    let (key, workload) = (TokenKey::for_tests(), Workload::default());
    let ctx = enrichment(&key, &workload);
    for (n, item) in out.iter().enumerate() {
        let event = build(item, &ctx);
        let epoch_ms = start_epoch_ms(item, ctx.monotonic_to_unix_ns);
        let bodies = body_tap(item);
        for f in engine.inspect(&event, epoch_ms, &bodies) {
            output.write_finding(&f, epoch_ms).expect("finding");
        }
        output.write(&event, epoch_ms).expect("event");
        if n % 64 == 63 {
            output.hand_over();
        }
    }
    output.hand_over();
    out.len()
}

fn median_secs(mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// 10k streams, each holding a partly received request head (the worst steady state: bytes
/// buffered per connection), through the same table the agent uses.
fn rss_with_open_connections(n: u64) -> (u64, u64) {
    use agent_common::event::{COMM_BYTES, DIRECTION_EGRESS, DataRecord, KIND_DATA, RecordHeader};
    let before = rss_kib();
    let mut table = ConnTable::new(TableLimits {
        max_streams: n as usize + 1,
        ..TableLimits::default()
    });
    let head = b"GET /api/v1/items/12345?expand=all HTTP/1.1\r\nHost: api.internal\r\nUser-Agent: bench\r\nAccept: */*\r\n";
    let mut out = Vec::new();
    for i in 0..n {
        let record = DataRecord {
            header: RecordHeader {
                kind: KIND_DATA,
                _pad: 0,
                timestamp_ns: i,
                pid_tgid: (1000 + (i % 500)) << 32,
            },
            stream: 0x10_0000 + i * 64,
            stream_offset: 0,
            call_len: head.len() as u32,
            payload_len: head.len() as u32,
            direction: DIRECTION_EGRESS,
            fd: 5,
            library_id: 1,
            flags: 0,
            comm: [b'b'; COMM_BYTES],
            cgroup_id: 0,
        };
        table.on_data(&record, head, &mut out);
    }
    let after = rss_kib();
    assert_eq!(table.len() as u64, n);
    black_box(&table);
    (before, after)
}

fn main() {
    let bytes = corpus();
    let records = split(&bytes).expect("recording");
    let payloads: Vec<&[u8]> = records
        .iter()
        .filter_map(|r| match decode(r) {
            Ok(Record::Data(_, p)) => Some(p),
            _ => None,
        })
        .collect();
    let total: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    let exchanges = pipeline(&records);
    // For callgrind: `CLEARTAP_BENCH_PROFILE=1 valgrind --tool=callgrind <bench binary>
    // > /dev/null` runs only the full default path, a few times, without criterion, through
    // the agent's own output stage (its default sink: native JSON lines on stdout).
    if std::env::var_os("CLEARTAP_BENCH_PROFILE").is_some() {
        let rounds = if std::env::var_os("CLEARTAP_BENCH_CORPUS").is_some() {
            1
        } else {
            5
        };
        let mut output = Output::start(&[], "bench").expect("stdout sink");
        for _ in 0..rounds {
            black_box(pipeline_to_output(&records, &mut output));
        }
        let sinks = output.shutdown(std::time::Duration::from_secs(30));
        eprintln!(
            "{} events, {} findings written; {}",
            output.events_written,
            output.findings_written,
            agent::output::summary(&sinks)
        );
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("corpus");
    group.throughput(Throughput::Bytes(total));
    group.bench_function("bare_httparse", |b| {
        b.iter(|| bare_httparse(black_box(&payloads)))
    });
    group.bench_function("pipeline", |b| b.iter(|| pipeline(black_box(&records))));
    let mut sink = Vec::with_capacity(4 << 20);
    group.bench_function("pipeline_and_output", |b| {
        b.iter(|| pipeline_and_output(black_box(&records), &mut sink, false))
    });
    group.bench_function("pipeline_detect_output", |b| {
        b.iter(|| pipeline_and_output(black_box(&records), &mut sink, true))
    });
    group.finish();
    c.final_summary();

    let base = median_secs(|| {
        black_box(bare_httparse(&payloads));
    });
    let pipe = median_secs(|| {
        black_box(pipeline(&records));
    });
    let full = median_secs(|| {
        black_box(pipeline_and_output(&records, &mut sink, false));
    });
    let judged = median_secs(|| {
        black_box(pipeline_and_output(&records, &mut sink, true));
    });
    let full_serde = median_secs(|| {
        black_box(pipeline_and_writer(&records, &mut sink, false, true));
    });
    println!(
        "\ncorpus: {} records, {} payload bytes, {exchanges} exchanges (medians of 21 runs, this machine, this run)",
        records.len(),
        total
    );
    println!(
        "  bare httparse          {:>8.2} ms  ratio 1.00",
        base * 1e3
    );
    println!(
        "  pipeline              {:>8.2} ms  throughput ratio to bare httparse {:.2}  ({:.2} µs/exchange)",
        pipe * 1e3,
        base / pipe,
        pipe * 1e6 / exchanges as f64
    );
    println!(
        "  pipeline + event + JSON {:>8.2} ms  throughput ratio to bare httparse {:.2}  ({:.2} µs/exchange)",
        full * 1e3,
        base / full,
        full * 1e6 / exchanges as f64
    );
    println!(
        "  … with serde_json as the event writer {:>8.2} ms  ({:.2} µs/exchange; the native writer takes {:.2} of its time)",
        full_serde * 1e3,
        full_serde * 1e6 / exchanges as f64,
        full / full_serde
    );
    println!(
        "  + detections (defaults) {:>8.2} ms  throughput ratio to bare httparse {:.2}  ({:.2} µs/exchange)",
        judged * 1e3,
        base / judged,
        judged * 1e6 / exchanges as f64
    );
    let (before, after) = rss_with_open_connections(10_000);
    println!(
        "  10k open connections: RSS {} KiB → {} KiB (+{:.1} MiB, {:.2} KiB per connection)",
        before,
        after,
        (after - before) as f64 / 1024.0,
        (after - before) as f64 / 10_000.0
    );
}
