//! Builds the typed exchange from what the connection table finished and what enrichment
//! knows: redaction happens here, once, so nothing after this stage ever holds a secret.

use std::borrow::Cow;

use super::{
    Connection, Container, Endpoint, ExchangeEvent, Grpc, Headers, HttpVersion, Kubernetes,
    Process, Request, Response, SCHEMA,
};
use crate::{
    classify::{jwt, redact, redact::TokenKey},
    conn::ConnExchange,
    protocol::{Head, Message},
};

/// Context the enrichment stage adds to what the connection table knows.
pub struct Enrichment<'a> {
    pub host: &'a str,
    pub exe: Option<&'a str>,
    pub library: Option<&'a str>,
    /// The library's version, when known (Go binaries).
    pub library_version: Option<&'a str>,
    /// Add to a CLOCK_MONOTONIC timestamp to get nanoseconds since the Unix epoch.
    pub monotonic_to_unix_ns: i128,
    /// Path prefixes whose bodies may be shown (`--body-route`); empty: every route.
    pub body_routes: &'a [String],
    /// Body bytes shown (the parser may have kept more for the detection rules).
    pub event_body_bytes: usize,
    /// Container and pod of the process.
    pub workload: &'a crate::enrich::workload::Workload,
    /// This node's Kubernetes name, when pods are watched.
    pub node: Option<&'a str>,
    /// The redaction key.
    pub key: &'a TokenKey,
    /// The kernel's credential key (enforcement on): requests carry their credential's key.
    pub credential_key: Option<[u64; 2]>,
}

/// Whether the body prefixes of an exchange with this request path may be written.
fn body_allowed(path: Option<&str>, routes: &[String]) -> bool {
    routes.is_empty() || path.is_some_and(|p| routes.iter().any(|r| p.starts_with(r.as_str())))
}

fn version(head: &Head) -> HttpVersion {
    head.version
}

fn headers<'h>(head: &'h Head, key: &TokenKey) -> Headers<'h> {
    let mut out = Headers::with_capacity(head.header_count());
    // A head's names are lower case.
    for (name, value, text) in head.headers_with_text() {
        let value = redact::header_value_of_lower(key, name.as_bytes(), value, text);
        out.push_lower(Cow::Borrowed(name), value);
    }
    out
}

/// The first `max` bytes of `text`, cut back to a character boundary.
fn shown(text: Cow<'_, str>, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return text;
    }
    let end = (0..=max)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    match text {
        Cow::Borrowed(t) => Cow::Borrowed(t.get(..end).unwrap_or_default()),
        Cow::Owned(mut t) => {
            t.truncate(end);
            Cow::Owned(t)
        }
    }
}

/// (size, shown prefix, missing bytes) of a message body. The prefix is redacted only when it
/// will be shown: the rules read the raw tap, never the event's prefix, when live.
fn body<'m>(
    message: &'m Message,
    key: &TokenKey,
    shown_bytes: usize,
    grpc: bool,
) -> (Option<u64>, Cow<'m, str>, u64) {
    match &message.body {
        Some(b) if shown_bytes > 0 && !b.prefix.is_empty() => {
            // Redacted whole, then cut: a secret straddling the cut is still masked. A gRPC
            // body is protobuf: shown as the walk of its fields, not as binary.
            let text = if grpc {
                Cow::Owned(crate::protocol::h2::protobuf::render(
                    &b.prefix,
                    shown_bytes,
                ))
            } else {
                String::from_utf8_lossy(&b.prefix)
            };
            (
                Some(b.size),
                shown(redact::body(key, text), shown_bytes),
                b.missing_bytes,
            )
        }
        Some(b) => (Some(b.size), Cow::Borrowed(""), b.missing_bytes),
        None => (None, Cow::Borrowed(""), 0),
    }
}

/// The kernel's key of the request's credential: `Authorization` (scheme and credential) first,
/// else `X-Api-Key`, taken as agent_common::enforce::credential_of says — the same bytes the
/// kernel's head scan hashes.
fn credential_key(head: &Head, sip_key: [u64; 2]) -> Option<u64> {
    use agent_common::enforce::{credential_key, credential_of};
    match head.header("authorization") {
        Some(value) => credential_of("authorization", value),
        None => head
            .header("x-api-key")
            .and_then(|v| credential_of("x-api-key", v)),
    }
    .map(|credential| credential_key(sip_key, credential))
}

fn request<'m>(
    message: &'m Message,
    key: &TokenKey,
    shown_bytes: usize,
    sip_key: Option<[u64; 2]>,
    grpc: bool,
) -> Option<Request<'m>> {
    let head = &message.head;
    let method = head.method()?;
    // A target that is not UTF-8 is shown lossily rather than dropped: the path is evidence.
    let (path, query) = match String::from_utf8_lossy(head.target_bytes().unwrap_or_default()) {
        Cow::Borrowed(target) => match target.split_once('?') {
            Some((p, q)) => (Cow::Borrowed(p), Some(redact::query(key, q))),
            None => (Cow::Borrowed(target), None),
        },
        Cow::Owned(target) => match target.split_once('?') {
            Some((p, q)) => (
                Cow::Owned(p.to_owned()),
                Some(Cow::Owned(redact::query(key, q).into_owned())),
            ),
            None => (Cow::Owned(target), None),
        },
    };
    let (body_size, body_prefix, body_missing_bytes) = body(message, key, shown_bytes, grpc);
    Some(Request {
        method: Cow::Borrowed(method),
        path,
        query,
        version: version(head),
        headers: headers(head, key),
        body_size,
        body_prefix,
        body_missing_bytes,
        unresolved_fields: head.unresolved_fields,
        jwt: head.header("authorization").and_then(jwt::summarize),
        credential_key: sip_key.and_then(|k| credential_key(head, k)),
    })
}

fn response<'m>(
    message: &'m Message,
    key: &TokenKey,
    shown_bytes: usize,
    grpc: bool,
) -> Option<Response<'m>> {
    let head = &message.head;
    let status = head.status()?;
    let (body_size, body_prefix, body_missing_bytes) = body(message, key, shown_bytes, grpc);
    Some(Response {
        status,
        reason: Cow::Borrowed(head.reason().unwrap_or_default()),
        version: version(head),
        headers: headers(head, key),
        body_size,
        body_prefix,
        body_missing_bytes,
        unresolved_fields: head.unresolved_fields,
    })
}

/// RFC 3339 in UTC with the fraction trimmed of trailing zeros (`…:00.001Z`, `…:01.5Z`,
/// `…:00Z`), as the `time` crate writes it. The date-and-seconds part is formatted once per
/// second and reused: exchanges come many per second, and formatting dates was a visible cost
/// per exchange.
pub fn rfc3339(unix_ns: i128) -> String {
    thread_local! {
        static SECOND: std::cell::RefCell<(i128, String)> =
            const { std::cell::RefCell::new((i128::MIN, String::new())) };
    }
    // In i64 when it fits (every date from 1678 to 2262): a 128-bit division is a library call,
    // two of them per event.
    let (seconds, nanos) = match i64::try_from(unix_ns) {
        Ok(ns) => (
            i128::from(ns.div_euclid(1_000_000_000)),
            i128::from(ns.rem_euclid(1_000_000_000)),
        ),
        Err(_) => (
            unix_ns.div_euclid(1_000_000_000),
            unix_ns.rem_euclid(1_000_000_000),
        ),
    };
    let mut out = SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != seconds {
            let text = time::OffsetDateTime::from_unix_timestamp_nanos(seconds * 1_000_000_000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
            // "YYYY-MM-DDTHH:MM:SSZ" for a whole second: keep all but the zone.
            *cached = (seconds, text.strip_suffix('Z').unwrap_or(&text).to_owned());
        }
        let mut out = String::with_capacity(cached.1.len() + 11);
        out.push_str(&cached.1);
        out
    });
    if out.is_empty() {
        return out;
    }
    if nanos != 0 {
        // Nine digits without a formatter: this runs for every event.
        let mut digits = [b'0'; 9];
        let mut rest = nanos as u32;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let end = digits.iter().rposition(|d| *d != b'0').map_or(0, |i| i + 1);
        out.push('.');
        let digits = digits.get(..end).unwrap_or_default();
        out.push_str(std::str::from_utf8(digits).unwrap_or_default());
    }
    out.push('Z');
    out
}

fn end_ns(m: &Message) -> u64 {
    m.body
        .as_ref()
        .map_or(m.head.end_ns, |b| b.end_ns.max(m.head.end_ns))
}

/// When the exchange started (its `time`), in nanoseconds since the Unix epoch.
pub fn start_unix_ns(item: &ConnExchange, monotonic_to_unix_ns: i128) -> i128 {
    let first = item
        .exchange
        .request
        .as_ref()
        .or(item.exchange.response.as_ref());
    i128::from(first.map_or(0, |m| m.head.start_ns)) + monotonic_to_unix_ns
}

/// Milliseconds since the Unix epoch at which the exchange started.
pub fn start_epoch_ms(item: &ConnExchange, monotonic_to_unix_ns: i128) -> i64 {
    i64::try_from(start_unix_ns(item, monotonic_to_unix_ns) / 1_000_000).unwrap_or(0)
}

/// The typed, redacted exchange.
pub fn build<'a>(item: &'a ConnExchange, ctx: &Enrichment<'a>) -> ExchangeEvent<'a> {
    let req = item.exchange.request.as_ref();
    let res = item.exchange.response.as_ref();
    let micros = |from: u64, to: u64| to.saturating_sub(from) / 1000;
    let conn = &item.conn;
    let path = req
        .and_then(|r| r.head.target())
        .map(|t| t.split('?').next().unwrap_or(t));
    let is_grpc = item.exchange.grpc.is_some();
    let shown_bytes = if body_allowed(path, ctx.body_routes) {
        ctx.event_body_bytes
    } else {
        0
    };
    ExchangeEvent {
        schema: Cow::Borrowed(SCHEMA),
        time: Cow::Owned(rfc3339(start_unix_ns(item, ctx.monotonic_to_unix_ns))),
        host: Cow::Borrowed(ctx.host),
        process: Process {
            pid: conn.tgid,
            tid: conn.tid,
            comm: Cow::Borrowed(conn.comm()),
            exe: ctx.exe.map(Cow::Borrowed),
            cgroup_id: conn.cgroup_id,
        },
        container: ctx.workload.container.as_deref().map(|c| Container {
            id: Cow::Borrowed(c.id.as_str()),
            runtime: c.runtime.map(Cow::Borrowed),
        }),
        kubernetes: ctx.node.map(|node| {
            let pod = ctx.workload.pod.as_deref();
            Kubernetes {
                node: Cow::Borrowed(node),
                namespace: pod.map(|p| Cow::Borrowed(p.namespace.as_str())),
                pod: pod.map(|p| Cow::Borrowed(p.name.as_str())),
                pod_uid: pod.map(|p| Cow::Borrowed(p.uid.as_str())),
            }
        }),
        connection: Connection {
            local: conn.endpoints.map(|e| Endpoint::of(e.local)),
            remote: conn.endpoints.map(|e| Endpoint::of(e.remote)),
            role: conn.role,
            tls: conn.tls,
            library: ctx.library.map(Cow::Borrowed),
            library_version: ctx.library_version.map(Cow::Borrowed),
            fd: conn.fd,
            stream: Some(conn.stream),
        },
        request: req.and_then(|m| request(m, ctx.key, shown_bytes, ctx.credential_key, is_grpc)),
        response: res.and_then(|m| response(m, ctx.key, shown_bytes, is_grpc)),
        latency_us: match (req, res) {
            (Some(r), Some(s)) => Some(micros(end_ns(r), s.head.start_ns)),
            _ => None,
        },
        duration_us: match (req, res) {
            (Some(r), Some(s)) => Some(micros(r.head.start_ns, end_ns(s))),
            _ => None,
        },
        stream_id: item.exchange.http2.as_ref().map(|h| h.stream_id),
        reset_code: item.exchange.http2.as_ref().and_then(|h| h.reset_code),
        grpc: item.exchange.grpc.as_deref().map(|g| grpc(g, ctx.key)),
    }
}

fn grpc<'m>(call: &'m crate::protocol::h2::GrpcCall, key: &TokenKey) -> Grpc<'m> {
    use crate::protocol::h2::grpc::status_name;
    Grpc {
        service: Cow::Borrowed(&call.service),
        method: Cow::Borrowed(&call.method),
        status_code: call.status_code,
        status_name: call.status_code.map(|c| Cow::Borrowed(status_name(c))),
        message: call
            .message
            .as_deref()
            .map(|m| redact::body(key, Cow::Borrowed(m))),
        encoding: call.encoding.as_deref().map(Cow::Borrowed),
        request_messages: call.request_messages,
        response_messages: call.response_messages,
    }
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
