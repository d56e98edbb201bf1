//! Replay throughput with every rule on, one core, over 100,000 generated exchange events (many
//! actors and routes, 1 in 50 an attack): judging alone (events already parsed), and what
//! `cleartap replay` does (parse + judge + write findings), against only parsing the same JSON
//! lines into the typed exchange (the baseline, same run). Medians of 5 rounds.
//!
//!   cargo bench -p agent --bench replay

use std::{path::Path, time::Instant};

use agent::{
    app::replay,
    detect::{DetectConfig, Engine, content::Bodies},
    event::ExchangeEvent,
};
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
    let mut judge = Vec::new();
    let mut full = Vec::new();
    let mut findings = 0;
    // CLEARTAP_BENCH_ROUNDS=1 for a profiler run.
    let rounds: usize = std::env::var("CLEARTAP_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    for _ in 0..rounds {
        // Baseline: parsing the lines into the typed exchange, nothing else.
        let start = Instant::now();
        let events: Vec<ExchangeEvent<'_>> = input
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(events.len(), EVENTS);
        parse.push(EVENTS as f64 / start.elapsed().as_secs_f64());
        // Judging alone: every rule over the already parsed exchanges.
        let times: Vec<i64> = events.iter().map(|e| e.epoch_ms().expect("time")).collect();
        let mut engine = Engine::new(DetectConfig::default());
        let start = Instant::now();
        let mut judged_findings = 0;
        for (e, t) in events.iter().zip(&times) {
            judged_findings += engine.inspect(e, *t, &Bodies::from_event(e)).len();
        }
        judge.push(EVENTS as f64 / start.elapsed().as_secs_f64());
        // What `cleartap replay` does: parse, judge, write findings.
        let mut sink = std::io::sink();
        let (summary, _) = replay::run(
            input.as_bytes(),
            Path::new("bench"),
            DetectConfig::default(),
            &mut sink,
        )
        .expect("replay");
        assert_eq!(summary.exchanges as usize, EVENTS);
        assert_eq!(summary.findings as usize, judged_findings);
        findings = summary.findings;
        full.push(EVENTS as f64 / summary.seconds);
    }
    let (p, j, f) = (median(parse), median(judge), median(full));
    println!("parse JSON into the typed exchange (baseline): {p:>9.0} exchanges/s");
    println!(
        "judging alone, every rule on:                  {j:>9.0} exchanges/s  ({:.2} µs each)",
        1e6 / j
    );
    println!(
        "replay (parse + judge + write), every rule on: {f:>9.0} exchanges/s  ({:.2}x the baseline time; {findings} findings)",
        p / f
    );
}
