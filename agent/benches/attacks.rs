//! Detection cost per request, attack traffic beside benign: every rule on (defaults), each
//! request judged alone and timed; p50, p99 and max per set, medians of 5 rounds. Sets: the
//! 12,000 benign requests of tests/corpus/benign (bodies tapped as the agent taps them),
//! libinjection's SQLi and XSS samples and PayloadsAllTheThings' lists as query values or
//! headers. The injection issue asks that ordinary traffic stay within the spine budget and the
//! cost per attack request be printed.
//!
//!   cargo bench -p agent --bench attacks

use std::{io::Read as _, path::Path, time::Instant};

use agent::{
    detect::{DetectConfig, Engine, content::Bodies},
    event::ExchangeEvent,
};
use serde::Deserialize as _;
use serde_json::{Value, json};

const ROUNDS: usize = 5;

fn corpus(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One request as an event with `body` tapped; each from its own address.
fn event(i: usize, method: &str, path: &str, query: Option<String>, headers: Value) -> Value {
    json!({
        "schema": "cleartap.http_exchange/1", "time": "2025-11-21T04:40:00Z", "host": "n",
        "process": { "pid": 1, "tid": 1, "comm": "api", "exe": null, "cgroup_id": 1 },
        "connection": { "local": { "ip": "10.0.0.5", "port": 443 },
                        "remote": { "ip": format!("198.18.{}.{}", (i / 250) % 250, i % 250 + 1), "port": 40000 },
                        "role": "server", "tls": true, "library": null, "fd": 3 },
        "request": { "method": method, "path": path, "query": query, "version": "HTTP/1.1",
                     "headers": headers, "body_size": 0, "body_prefix": "", "body_missing_bytes": 0, "jwt": null },
        "response": { "status": 200, "reason": "", "version": "HTTP/1.1", "headers": {},
                      "body_size": 10, "body_prefix": "", "body_missing_bytes": 0 },
        "latency_us": 1, "duration_us": 2
    })
}

fn benign() -> Vec<(Value, Vec<u8>)> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/benign/benign_api.jsonl.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("benign corpus"))
        .read_to_string(&mut text)
        .expect("gzip");
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let r: Value = serde_json::from_str(l).expect("request");
            let body = r["body"].as_str().unwrap_or("").as_bytes().to_vec();
            let e = event(
                i,
                r["method"].as_str().unwrap_or("GET"),
                r["path"].as_str().unwrap_or("/"),
                r["query"].as_str().map(str::to_owned),
                r["headers"].clone(),
            );
            (e, body)
        })
        .collect()
}

fn lines(file: &str) -> Vec<String> {
    corpus(file)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn attacks() -> Vec<(Value, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/libinjection");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("libinjection corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("sqli-") || n.starts_with("xss-"))
        })
        .collect();
    files.sort();
    let headers = || json!({ "host": "api.example", "user-agent": "Mozilla/5.0" });
    let mut out = Vec::new();
    for file in files {
        for line in String::from_utf8_lossy(&std::fs::read(&file).expect("read")).lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let i = out.len();
            out.push((
                event(
                    i,
                    "GET",
                    "/search",
                    Some(format!("q={}", encode(line))),
                    headers(),
                ),
                Vec::new(),
            ));
        }
    }
    for ssti in lines("payloadsallthethings/ssti.fuzz") {
        let i = out.len();
        out.push((
            event(
                i,
                "GET",
                "/greet",
                Some(format!("name={}", encode(&ssti))),
                headers(),
            ),
            Vec::new(),
        ));
    }
    for jndi in lines("payloadsallthethings/log4shell.txt") {
        let i = out.len();
        out.push((
            event(
                i,
                "GET",
                "/",
                None,
                json!({ "host": "api.example", "user-agent": jndi }),
            ),
            Vec::new(),
        ));
    }
    out
}

/// (p50, p99, max) in µs of judging each request once, in a fresh engine.
fn percentiles(set: &[(ExchangeEvent<'_>, Vec<u8>)]) -> (f64, f64, f64) {
    let mut engine = Engine::new(DetectConfig::default());
    let mut times: Vec<f64> = set
        .iter()
        .enumerate()
        .map(|(i, (e, body))| {
            let bodies = Bodies::from_raw(body, b"", None);
            let t = Instant::now();
            std::hint::black_box(engine.inspect(e, 1_763_700_000_000 + i as i64 * 50, &bodies));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (at(0.5), at(0.99), times.last().copied().unwrap_or(0.0))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let benign = benign();
    let attacks = attacks();
    for (name, raw) in [
        ("benign (12,000 real-world API requests)", &benign),
        ("attacks (libinjection SQLi+XSS, SSTI, Log4Shell)", &attacks),
    ] {
        let typed: Vec<(ExchangeEvent<'_>, Vec<u8>)> = raw
            .iter()
            .map(|(e, b)| {
                (
                    agent::event::ExchangeEvent::deserialize(e.clone()).expect("event"),
                    b.clone(),
                )
            })
            .collect();
        let rounds: Vec<(f64, f64, f64)> = (0..ROUNDS).map(|_| percentiles(&typed)).collect();
        println!(
            "{name}: {} requests, every rule judged per request: p50 {:.2} µs, p99 {:.2} µs, max {:.1} µs (medians of {ROUNDS} rounds)",
            typed.len(),
            median(rounds.iter().map(|r| r.0).collect()),
            median(rounds.iter().map(|r| r.1).collect()),
            median(rounds.iter().map(|r| r.2).collect()),
        );
    }
}
