//! Helpers shared by the detection corpus tests: one request as an exchange event, and the
//! corpora kept in this repository.

#![allow(dead_code)] // each test crate uses its own subset

use serde::Deserialize as _;
use serde_json::{Value, json};

pub const T0: i64 = 1_763_700_000_000;

pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A GET of `target` (path and raw query) from one client, answered 200, as the typed
/// exchange the rules read.
pub fn get(target: &str) -> agent::event::ExchangeEvent<'static> {
    agent::event::ExchangeEvent::deserialize(event("GET", target, 200, None, "192.0.2.1"))
        .expect("exchange event")
}

pub fn event(
    method: &str,
    path_and_query: &str,
    status: u16,
    token: Option<&str>,
    ip: &str,
) -> Value {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Value::from(q)),
        None => (path_and_query, Value::Null),
    };
    let mut headers = json!({ "host": "shop.example", "user-agent": "Mozilla/5.0" });
    if let Some(t) = token {
        headers["authorization"] = Value::from(format!("Bearer [REDACTED:{t}]"));
    }
    json!({
        "schema": "cleartap.http_exchange/1", "time": "2025-11-21T04:40:00Z", "host": "n",
        "process": { "pid": 1, "tid": 1, "comm": "api", "exe": null, "cgroup_id": 1 },
        "connection": { "local": { "ip": "10.0.0.5", "port": 443 }, "remote": { "ip": ip, "port": 40000 },
                        "role": "server", "tls": true, "library": null, "fd": 3 },
        "request": { "method": method, "path": path, "query": query, "version": "HTTP/1.1",
                     "headers": headers, "body_size": 0, "body_prefix": "", "body_missing_bytes": 0, "jwt": null },
        "response": { "status": status, "reason": "", "version": "HTTP/1.1", "headers": {},
                      "body_size": 10, "body_prefix": "", "body_missing_bytes": 0 },
        "latency_us": 1, "duration_us": 2
    })
}

pub fn samples(prefix: &str) -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/libinjection");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            String::from_utf8_lossy(&std::fs::read(f).expect("read"))
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect()
}

pub fn payloads(file: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/corpus/payloadsallthethings/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}
