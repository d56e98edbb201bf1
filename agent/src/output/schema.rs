//! The native JSON event for one HTTP exchange (schema `cleartap.http_exchange/1`). Every field
//! is documented in the README; change both together.

use std::collections::BTreeMap;

use serde::Serialize;

use super::redact;
use crate::{
    conn::ConnExchange,
    http::{
        exchange::Message,
        h1::{Head, StartLine},
    },
};

pub const SCHEMA: &str = "cleartap.http_exchange/1";

#[derive(Debug, Serialize)]
pub struct ExchangeEvent {
    pub schema: &'static str,
    pub time: String,
    pub host: String,
    pub process: ProcessOut,
    pub connection: ConnectionOut,
    pub request: Option<RequestOut>,
    pub response: Option<ResponseOut>,
    pub latency_us: Option<u64>,
    pub duration_us: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ProcessOut {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub exe: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct EndpointOut {
    pub ip: String,
    pub port: u16,
}

#[derive(Debug, Serialize)]
pub struct ConnectionOut {
    pub local: Option<EndpointOut>,
    pub remote: Option<EndpointOut>,
    pub role: &'static str,
    pub tls: bool,
    pub library: Option<String>,
    pub fd: Option<i32>,
}

#[derive(Debug, Serialize)]
pub struct RequestOut {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub version: String,
    pub headers: BTreeMap<String, String>,
    pub body_size: Option<u64>,
    pub body_prefix: String,
    pub body_missing_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct ResponseOut {
    pub status: u16,
    pub reason: String,
    pub version: String,
    pub headers: BTreeMap<String, String>,
    pub body_size: Option<u64>,
    pub body_prefix: String,
    pub body_missing_bytes: u64,
}

/// Context the output stage adds to what the connection table knows.
pub struct Enrichment<'a> {
    pub host: &'a str,
    pub exe: Option<String>,
    pub library: Option<String>,
    /// Add to a CLOCK_MONOTONIC timestamp to get nanoseconds since the Unix epoch.
    pub monotonic_to_unix_ns: i128,
}

fn version(head: &Head) -> String {
    format!("HTTP/1.{}", head.version)
}

fn headers(head: &Head) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &head.headers {
        let value = redact::header_value(name, value);
        out.entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

fn body(message: &Message) -> (Option<u64>, String, u64) {
    match &message.body {
        Some(b) => (
            Some(b.size),
            String::from_utf8_lossy(&b.prefix).into_owned(),
            b.missing_bytes,
        ),
        None => (None, String::new(), 0),
    }
}

fn request(message: &Message) -> Option<RequestOut> {
    let StartLine::Request { method, target } = &message.head.start else {
        return None;
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(redact::query(q))),
        None => (target.clone(), None),
    };
    let (body_size, body_prefix, body_missing_bytes) = body(message);
    Some(RequestOut {
        method: method.clone(),
        path,
        query,
        version: version(&message.head),
        headers: headers(&message.head),
        body_size,
        body_prefix,
        body_missing_bytes,
    })
}

fn response(message: &Message) -> Option<ResponseOut> {
    let StartLine::Response { status, reason } = &message.head.start else {
        return None;
    };
    let (body_size, body_prefix, body_missing_bytes) = body(message);
    Some(ResponseOut {
        status: *status,
        reason: reason.clone(),
        version: version(&message.head),
        headers: headers(&message.head),
        body_size,
        body_prefix,
        body_missing_bytes,
    })
}

pub fn rfc3339(unix_ns: i128) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(unix_ns)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub fn render(item: &ConnExchange, ctx: &Enrichment<'_>) -> ExchangeEvent {
    let req = item.exchange.request.as_ref();
    let res = item.exchange.response.as_ref();
    let start_ns = req.or(res).map_or(0, |m| m.head.start_ns);
    let request_end = req.map(|m| {
        m.body
            .as_ref()
            .map_or(m.head.end_ns, |b| b.end_ns.max(m.head.end_ns))
    });
    let response_start = res.map(|m| m.head.start_ns);
    let response_end = res.map(|m| {
        m.body
            .as_ref()
            .map_or(m.head.end_ns, |b| b.end_ns.max(m.head.end_ns))
    });
    let micros = |from: u64, to: u64| to.saturating_sub(from) / 1000;
    let endpoint = |a: std::net::SocketAddr| EndpointOut {
        ip: a.ip().to_string(),
        port: a.port(),
    };
    let conn = &item.conn;
    ExchangeEvent {
        schema: SCHEMA,
        time: rfc3339(start_ns as i128 + ctx.monotonic_to_unix_ns),
        host: ctx.host.to_owned(),
        process: ProcessOut {
            pid: conn.tgid,
            tid: conn.tid,
            comm: conn.comm.clone(),
            exe: ctx.exe.clone(),
        },
        connection: ConnectionOut {
            local: conn.endpoints.map(|e| endpoint(e.local)),
            remote: conn.endpoints.map(|e| endpoint(e.remote)),
            role: conn.role.as_str(),
            tls: true,
            library: ctx.library.clone(),
            fd: conn.fd,
        },
        request: req.and_then(request),
        response: res.and_then(response),
        latency_us: match (request_end, response_start) {
            (Some(a), Some(b)) => Some(micros(a, b)),
            _ => None,
        },
        duration_us: match (req, response_end) {
            (Some(r), Some(b)) => Some(micros(r.head.start_ns, b)),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{ConnInfo, Endpoints, Role};
    use crate::http::{
        exchange::{Exchange, Pairing},
        h1::{Limits, StreamParser},
    };

    /// Runs real bytes through the parser and pairing, then renders: the golden file pins the
    /// whole event shape, so a schema change shows up as a diff to review (UPDATE_GOLDEN=1).
    fn exchange() -> ConnExchange {
        let limits = Limits {
            body_prefix_bytes: 16,
            ..Limits::default()
        };
        let (mut req, mut res) = (StreamParser::new(limits), StreamParser::new(limits));
        let mut pairing = Pairing::default();
        let mut out: Vec<Exchange> = Vec::new();
        req.push(
            b"POST /api/v1/users?id=7&api_key=k3y HTTP/1.1\r\nHost: api.local\r\n\
Authorization: Bearer eyJhbGciOiJub25lIn0.e30.\r\nCookie: sid=abc\r\nX-Request-Id: r-1\r\n\
Content-Length: 17\r\n\r\n{\"name\":\"alice\"}\n",
            1_000_000,
        );
        pairing.drive(&mut req, &mut out).expect("request parses");
        res.push(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\n\
Set-Cookie: b=2\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"id\"\r\n4\r\n:42}\r\n0\r\n\r\n",
            1_250_000,
        );
        pairing.drive(&mut res, &mut out).expect("response parses");
        ConnExchange {
            conn: ConnInfo {
                tgid: 4242,
                tid: 4243,
                comm: "curl".into(),
                fd: Some(5),
                role: Role::Client,
                endpoints: Some(Endpoints {
                    local: "127.0.0.1:50000".parse().expect("addr"),
                    remote: "127.0.0.1:8443".parse().expect("addr"),
                }),
                library_id: 1,
            },
            exchange: out.pop().expect("one exchange"),
        }
    }

    #[test]
    fn exchange_event_matches_golden_file() {
        let ctx = Enrichment {
            host: "node-1",
            exe: Some("/usr/bin/curl".into()),
            library: Some("/usr/lib/x86_64-linux-gnu/libssl.so.3".into()),
            monotonic_to_unix_ns: 1_763_700_000_000_000_000,
        };
        let rendered =
            serde_json::to_string_pretty(&render(&exchange(), &ctx)).expect("json") + "\n";
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/exchange_event.json"
        );
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &rendered).expect("write golden");
        }
        let golden =
            std::fs::read_to_string(path).expect("golden file (UPDATE_GOLDEN=1 creates it)");
        assert_eq!(rendered, golden);
    }

    #[test]
    fn time_is_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500_000_000), "1970-01-01T00:00:01.5Z");
    }
}
