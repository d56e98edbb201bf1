//! Sink throughput: events/s through a sink's queue, worker and transport, against writing the
//! same lines straight to a file in the same run (the baseline). Prints medians of 5 rounds.
//!
//!   cargo bench -p agent --bench sinks
//!
//! Rounds: file sink with a queue large enough to hold every event (steady state), the same
//! with a 1,000-event queue so most events go through the disk spool, and syslog over UDP to a
//! local socket drained by a thread.

use std::{
    io::Write,
    net::UdpSocket,
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use agent::output::{
    sink_config::{SinkConfig, SinkType, start},
    transports::SyslogProtocol,
};

const EVENTS: usize = 100_000;

fn event_line() -> String {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("../tests/golden/exchange_event.json")).expect("golden");
    golden.to_string()
}

fn dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cleartap-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("bench dir");
    d
}

fn baseline(line: &str) -> Duration {
    let d = dir("baseline");
    let start = Instant::now();
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(d.join("raw.jsonl")).expect("file"));
    for _ in 0..EVENTS {
        out.write_all(line.as_bytes()).expect("write");
        out.write_all(b"\n").expect("write");
    }
    out.flush().expect("flush");
    let t = start.elapsed();
    let _ = std::fs::remove_dir_all(&d);
    t
}

fn through_sink(config: SinkConfig, line: &str) -> (Duration, u64, u64) {
    let mut sink = start(0, &config, "bench").expect("sink");
    let start_at = Instant::now();
    for i in 0..EVENTS {
        sink.offer(line, i as i64);
    }
    sink.close();
    sink.join(Duration::from_secs(600));
    let t = start_at.elapsed();
    (
        t,
        sink.stats.delivered.load(Relaxed),
        sink.stats.spooled.load(Relaxed),
    )
}

fn file_config(tag: &str, queue: usize) -> SinkConfig {
    let d = dir(tag);
    SinkConfig {
        kind: SinkType::File,
        path: Some(d.join("events.jsonl")),
        max_bytes: Some(1 << 30),
        queue_events: Some(queue),
        spool_dir: Some(d.join("spool")),
        ..SinkConfig::default()
    }
}

/// Builds round N's sink configuration (fresh directories per round).
type MakeConfig = Box<dyn Fn(usize) -> SinkConfig>;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let line = event_line();
    println!(
        "{EVENTS} events of {} bytes each; medians of 5 rounds",
        line.len()
    );
    let base = median((0..5).map(|_| baseline(&line)).collect());
    let rate = |t: Duration| EVENTS as f64 / t.as_secs_f64();
    println!(
        "baseline (BufWriter to a file): {:>9.0} events/s",
        rate(base)
    );
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let address = receiver.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while receiver.recv(&mut buf).is_ok() {}
    });
    let cases: Vec<(&str, MakeConfig)> = vec![
        (
            "file sink, queue holds all",
            Box::new(|i| file_config(&format!("q{i}"), EVENTS)),
        ),
        (
            "file sink, 1k queue (spool)",
            Box::new(|i| file_config(&format!("s{i}"), 1_000)),
        ),
        (
            "syslog UDP sink",
            Box::new(move |i| SinkConfig {
                kind: SinkType::Syslog,
                transport: Some(SyslogProtocol::Udp),
                address: Some(address.clone()),
                queue_events: Some(EVENTS),
                spool_dir: Some(dir(&format!("u{i}")).join("spool")),
                ..SinkConfig::default()
            }),
        ),
    ];
    for (name, make) in cases {
        let mut times = Vec::new();
        let mut spooled = 0;
        for round in 0..5 {
            let (t, delivered, s) = through_sink(make(round), &line);
            assert_eq!(delivered, EVENTS as u64, "{name}: not everything delivered");
            spooled = s;
            times.push(t);
        }
        let t = median(times);
        println!(
            "{name:<30} {:>9.0} events/s  ({:.2}x baseline time, {spooled} spooled in the last round)",
            rate(t),
            t.as_secs_f64() / base.as_secs_f64()
        );
    }
    let suffix = format!("-{}", std::process::id());
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("cleartap-bench-") && name.ends_with(&suffix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
