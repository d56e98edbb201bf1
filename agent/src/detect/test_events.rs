//! Builders of exchange events for detection tests (the native JSON shape).

use serde_json::{Value, json};

pub const T0: i64 = 1_763_700_000_000;

/// A server-side exchange: `GET path` with `headers`, answered `status`.
pub fn exchange(method: &str, path_and_query: &str, status: u16, headers: Value) -> Value {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Value::from(q)),
        None => (path_and_query, Value::Null),
    };
    let mut h = json!({ "host": "api.local", "user-agent": "python-requests/2.31" });
    if let (Some(h), Some(extra)) = (h.as_object_mut(), headers.as_object()) {
        for (k, v) in extra {
            h.insert(k.clone(), v.clone());
        }
    }
    json!({
        "schema": "cleartap.http_exchange/1",
        "time": "2025-11-21T04:40:00Z",
        "host": "node-1",
        "process": { "pid": 10, "tid": 10, "comm": "api", "exe": "/usr/bin/api", "cgroup_id": 1 },
        "connection": {
            "local": { "ip": "10.0.0.5", "port": 8443 },
            "remote": { "ip": "192.0.2.7", "port": 50000 },
            "role": "server", "tls": true, "library": "libssl.so.3", "fd": 7
        },
        "request": {
            "method": method, "path": path, "query": query, "version": "HTTP/1.1",
            "headers": h, "body_size": 0, "body_prefix": "", "body_missing_bytes": 0, "jwt": null
        },
        "response": {
            "status": status, "reason": "", "version": "HTTP/1.1", "headers": {},
            "body_size": 0, "body_prefix": "", "body_missing_bytes": 0
        },
        "latency_us": 100, "duration_us": 200
    })
}

pub fn with_token(mut event: Value, tag: &str) -> Value {
    event["request"]["headers"]["authorization"] = Value::from(format!("Bearer [REDACTED:{tag}]"));
    event
}

pub fn from_ip(mut event: Value, ip: &str) -> Value {
    event["connection"]["remote"]["ip"] = Value::from(ip);
    event
}

/// A JSON event read as the typed exchange, as `cleartap replay` reads it.
pub fn typed(event: &Value) -> crate::event::ExchangeEvent<'static> {
    use serde::Deserialize as _;
    // From a Value, which lends nothing: every string is owned.
    crate::event::ExchangeEvent::deserialize(event.clone())
        .expect("test event matches the exchange schema")
}

impl super::Engine {
    /// `inspect` over a JSON event (read back as replay reads it), findings as their JSON:
    /// the tests assert on what sinks receive.
    pub fn inspect_json(
        &mut self,
        event: &Value,
        epoch_ms: i64,
        bodies: &super::content::Bodies,
    ) -> Vec<Value> {
        self.inspect(&typed(event), epoch_ms, bodies)
            .iter()
            .map(|f| serde_json::to_value(f).expect("finding serialises"))
            .collect()
    }
}
