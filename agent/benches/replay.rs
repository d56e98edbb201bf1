//! Replay throughput with every rule on, one core: exchanges/s of `cleartap replay`'s engine
//! over 100,000 generated exchange events (many actors and routes, 1 in 50 an attack), against
//! only parsing the same JSON lines (the baseline, same run). Medians of 5 rounds.
//!
//!   cargo bench -p agent --bench replay

use std::{path::Path, time::Instant};

use agent::{detect::DetectConfig, replay};
use serde_json::{Value, json};

const EVENTS: usize = 100_000;

fn line(i: usize) -> String {
    let actor = i % 500;
    let path = match i % 50 {
        0 => format!("/api/v1/search?q={}", "1%27%20OR%20%271%27%3D%271"),
        1 => "/api/v1/fetch?url=http%3A%2F%2F169.254.169.254%2F".to_owned(),
        n => format!("/api/v1/items/{}?page={}", (i * 7919) % 100_000, n),
    };
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_owned(), Value::from(q)),
        None => (path, Value::Null),
    };
    let second = i / 200;
    json!({
        "schema": "cleartap.http_exchange/1",
        "time": format!("2025-11-21T{:02}:{:02}:{:02}Z", 4 + second / 3600, (second / 60) % 60, second % 60),
        "host": "n", "process": { "pid": 1, "tid": 1, "comm": "api", "exe": null, "cgroup_id": 1 },
        "connection": { "local": { "ip": "10.0.0.5", "port": 443 },
                        "remote": { "ip": format!("198.51.{}.{}", actor / 250, actor % 250), "port": 40000 },
                        "role": "server", "tls": true, "library": null, "fd": 3 },
        "request": { "method": "GET", "path": path, "query": query, "version": "HTTP/1.1",
                     "headers": { "host": "api.example", "user-agent": "Mozilla/5.0",
                                  "authorization": format!("Bearer [REDACTED:{actor:016x}]") },
                     "body_size": 0, "body_prefix": "", "body_missing_bytes": 0, "jwt": null },
        "response": { "status": 200, "reason": "OK", "version": "HTTP/1.1", "headers": {},
                      "body_size": 512, "body_prefix": "", "body_missing_bytes": 0 },
        "latency_us": 100, "duration_us": 200
    })
    .to_string()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let input: String = (0..EVENTS).map(|i| line(i) + "\n").collect();
    println!(
        "{EVENTS} events, {} MB of JSON lines; medians of 5 rounds",
        input.len() >> 20
    );
    let mut parse = Vec::new();
    let mut full = Vec::new();
    let mut findings = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let parsed = input
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).is_ok())
            .count();
        assert_eq!(parsed, EVENTS);
        parse.push(EVENTS as f64 / start.elapsed().as_secs_f64());
        let mut sink = std::io::sink();
        let (summary, _) = replay::run(
            input.as_bytes(),
            Path::new("bench"),
            DetectConfig::default(),
            &mut sink,
        )
        .expect("replay");
        assert_eq!(summary.exchanges as usize, EVENTS);
        findings = summary.findings;
        full.push(EVENTS as f64 / summary.seconds);
    }
    let (p, f) = (median(parse), median(full));
    println!("parse JSON only (baseline):  {p:>9.0} exchanges/s");
    println!(
        "replay, every rule on:       {f:>9.0} exchanges/s  ({:.2}x the baseline time; {findings} findings)",
        p / f
    );
}
