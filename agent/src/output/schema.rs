//! The native JSON event for one HTTP exchange (schema `cleartap.http_exchange/1`). Every field
//! is documented in the README; change both together.

use serde::{Serialize, Serializer, ser::SerializeMap};

use super::redact;
use crate::{
    conn::ConnExchange,
    http::{exchange::Message, h1::Head},
};

pub const SCHEMA: &str = "cleartap.http_exchange/1";

/// Borrows everything from the exchange and its context: rendering allocates only the time
/// string and the few values redaction rewrites.
#[derive(Debug, Serialize)]
pub struct ExchangeEvent<'a> {
    pub schema: &'static str,
    pub time: String,
    pub host: &'a str,
    pub process: ProcessOut<'a>,
    /// The container of the process; absent for processes outside containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerOut<'a>>,
    /// Present when the agent watches Kubernetes: the node, and the pod when it is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesOut<'a>>,
    pub connection: ConnectionOut<'a>,
    pub request: Option<RequestOut<'a>>,
    pub response: Option<ResponseOut<'a>>,
    pub latency_us: Option<u64>,
    pub duration_us: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ProcessOut<'a> {
    pub pid: u32,
    pub tid: u32,
    pub comm: &'a str,
    pub exe: Option<&'a str>,
    /// cgroup v2 id (the inode of the cgroup directory): identifies the container.
    pub cgroup_id: u64,
}

#[derive(Debug, Serialize)]
pub struct ContainerOut<'a> {
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct KubernetesOut<'a> {
    pub node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct EndpointOut {
    pub ip: std::net::IpAddr,
    pub port: u16,
}

#[derive(Debug, Serialize)]
pub struct ConnectionOut<'a> {
    pub local: Option<EndpointOut>,
    pub remote: Option<EndpointOut>,
    pub role: &'static str,
    pub tls: bool,
    pub library: Option<&'a str>,
    pub fd: Option<i32>,
}

#[derive(Debug, Serialize)]
pub struct RequestOut<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<std::borrow::Cow<'a, str>>,
    pub version: &'static str,
    pub headers: HeadersOut<'a>,
    pub body_size: Option<u64>,
    pub body_prefix: std::borrow::Cow<'a, str>,
    pub body_missing_bytes: u64,
    /// Non-secret parts of a bearer JWT (alg, time claims); null when there is none.
    pub jwt: Option<crate::detect::jwt::JwtSummary>,
}

#[derive(Debug, Serialize)]
pub struct ResponseOut<'a> {
    pub status: u16,
    pub reason: &'a str,
    pub version: &'static str,
    pub headers: HeadersOut<'a>,
    pub body_size: Option<u64>,
    pub body_prefix: std::borrow::Cow<'a, str>,
    pub body_missing_bytes: u64,
}

/// Headers as a JSON object: names lower-cased, repeated names joined with ", ", secrets
/// redacted. Serialised straight from the parsed head.
#[derive(Debug)]
pub struct HeadersOut<'a>(&'a Head);

/// Lower-cases a header name into `buf` (names are ASCII tokens; long ones are truncated,
/// which no real header reaches).
fn lower<'b>(name: &str, buf: &'b mut [u8; 128]) -> &'b str {
    let n = name.len().min(buf.len());
    for (d, s) in buf.iter_mut().zip(name.as_bytes()[..n].iter()) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

impl Serialize for HeadersOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let headers: Vec<(&str, &[u8])> = self.0.headers().collect();
        let mut map = serializer.serialize_map(None)?;
        for (i, (name, _)) in headers.iter().enumerate() {
            // A repeated name was emitted (joined) at its first occurrence.
            if headers[..i]
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                continue;
            }
            let mut buf = [0u8; 128];
            let key = lower(name, &mut buf);
            let mut values = headers[i..]
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| redact::header_value(key, v));
            let first = values.next().unwrap_or_default();
            match values.next() {
                None => map.serialize_entry(key, &first)?,
                Some(second) => {
                    let mut joined = first.into_owned();
                    for v in std::iter::once(second).chain(values) {
                        joined.push_str(", ");
                        joined.push_str(&v);
                    }
                    map.serialize_entry(key, &joined)?;
                }
            }
        }
        map.end()
    }
}

/// Context the output stage adds to what the connection table knows.
pub struct Enrichment<'a> {
    pub host: &'a str,
    pub exe: Option<String>,
    pub library: Option<String>,
    /// Add to a CLOCK_MONOTONIC timestamp to get nanoseconds since the Unix epoch.
    pub monotonic_to_unix_ns: i128,
    /// Path prefixes whose bodies may be shown (`--body-route`); empty: every route.
    pub body_routes: &'a [String],
    /// Body bytes shown (the parser may have kept more for the detection rules).
    pub event_body_bytes: usize,
    /// Container and pod of the process.
    pub workload: crate::workload::Workload,
    /// This node's Kubernetes name, when pods are watched.
    pub node: Option<&'a str>,
}

/// Whether the body prefixes of an exchange with this request path may be written.
fn body_allowed(path: Option<&str>, routes: &[String]) -> bool {
    routes.is_empty() || path.is_some_and(|p| routes.iter().any(|r| p.starts_with(r.as_str())))
}

fn version(head: &Head) -> &'static str {
    if head.version == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    }
}

fn body(message: &Message) -> (Option<u64>, std::borrow::Cow<'_, str>, u64) {
    match &message.body {
        Some(b) => (
            Some(b.size),
            redact::body(String::from_utf8_lossy(&b.prefix)),
            b.missing_bytes,
        ),
        None => (None, std::borrow::Cow::Borrowed(""), 0),
    }
}

fn request(message: &Message) -> Option<RequestOut<'_>> {
    let head = &message.head;
    let method = head.method()?;
    let target = head.target().unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(redact::query(q))),
        None => (target, None),
    };
    let (body_size, body_prefix, body_missing_bytes) = body(message);
    Some(RequestOut {
        method,
        path,
        query,
        version: version(head),
        headers: HeadersOut(head),
        body_size,
        body_prefix,
        body_missing_bytes,
        jwt: head
            .header("authorization")
            .and_then(crate::detect::jwt::summarize),
    })
}

fn response(message: &Message) -> Option<ResponseOut<'_>> {
    let head = &message.head;
    let status = head.status()?;
    let (body_size, body_prefix, body_missing_bytes) = body(message);
    Some(ResponseOut {
        status,
        reason: head.reason().unwrap_or_default(),
        version: version(head),
        headers: HeadersOut(head),
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
    first.map_or(0, |m| m.head.start_ns) as i128 + monotonic_to_unix_ns
}

pub fn render<'a>(item: &'a ConnExchange, ctx: &'a Enrichment<'a>) -> ExchangeEvent<'a> {
    let req = item.exchange.request.as_ref();
    let res = item.exchange.response.as_ref();
    let start_ns = req.or(res).map_or(0, |m| m.head.start_ns);
    let micros = |from: u64, to: u64| to.saturating_sub(from) / 1000;
    let endpoint = |a: std::net::SocketAddr| EndpointOut {
        ip: a.ip(),
        port: a.port(),
    };
    let conn = &item.conn;
    let mut request_out = req.and_then(request);
    let mut response_out = res.and_then(response);
    let shown = |r: &mut std::borrow::Cow<'_, str>| {
        if r.len() > ctx.event_body_bytes {
            let mut end = ctx.event_body_bytes;
            while end > 0 && !r.is_char_boundary(end) {
                end -= 1;
            }
            *r = std::borrow::Cow::Owned(r[..end].to_owned());
        }
    };
    if let Some(r) = request_out.as_mut() {
        shown(&mut r.body_prefix);
    }
    if let Some(r) = response_out.as_mut() {
        shown(&mut r.body_prefix);
    }
    if !body_allowed(request_out.as_ref().map(|r| r.path), ctx.body_routes) {
        if let Some(r) = request_out.as_mut() {
            r.body_prefix = std::borrow::Cow::Borrowed("");
        }
        if let Some(r) = response_out.as_mut() {
            r.body_prefix = std::borrow::Cow::Borrowed("");
        }
    }
    ExchangeEvent {
        schema: SCHEMA,
        time: rfc3339(start_ns as i128 + ctx.monotonic_to_unix_ns),
        host: ctx.host,
        process: ProcessOut {
            pid: conn.tgid,
            tid: conn.tid,
            comm: conn.comm(),
            exe: ctx.exe.as_deref(),
            cgroup_id: conn.cgroup_id,
        },
        container: ctx.workload.container.as_deref().map(|c| ContainerOut {
            id: &c.id,
            runtime: c.runtime,
        }),
        kubernetes: ctx.node.map(|node| {
            let pod = ctx.workload.pod.as_deref();
            KubernetesOut {
                node,
                namespace: pod.map(|p| p.namespace.as_str()),
                pod: pod.map(|p| p.name.as_str()),
                pod_uid: pod.map(|p| p.uid.as_str()),
            }
        }),
        connection: ConnectionOut {
            local: conn.endpoints.map(|e| endpoint(e.local)),
            remote: conn.endpoints.map(|e| endpoint(e.remote)),
            role: conn.role.as_str(),
            tls: conn.tls,
            library: ctx.library.as_deref(),
            fd: conn.fd,
        },
        request: request_out,
        response: response_out,
        latency_us: match (req, res) {
            (Some(r), Some(s)) => Some(micros(end_ns(r), s.head.start_ns)),
            _ => None,
        },
        duration_us: match (req, res) {
            (Some(r), Some(s)) => Some(micros(r.head.start_ns, end_ns(s))),
            _ => None,
        },
    }
}

#[cfg(test)]
mod body_route_tests {
    use super::body_allowed;

    #[test]
    fn routes_are_path_prefixes_and_empty_means_all() {
        let routes = ["/api/".to_owned(), "/login".to_owned()];
        assert!(body_allowed(Some("/api/v1/users"), &routes));
        assert!(body_allowed(Some("/login"), &routes));
        assert!(!body_allowed(Some("/static/app.js"), &routes));
        assert!(!body_allowed(None, &routes));
        assert!(body_allowed(Some("/anything"), &[]));
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
                comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
                fd: Some(5),
                role: Role::Client,
                endpoints: Some(Endpoints {
                    local: "127.0.0.1:50000".parse().expect("addr"),
                    remote: "127.0.0.1:8443".parse().expect("addr"),
                }),
                library_id: 1,
                tls: true,
                cgroup_id: 4026531835,
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
            body_routes: &[],
            event_body_bytes: 16,
            workload: crate::workload::Workload {
                container: crate::workload::cgroup::container_of_path(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f4c1d2e_3a4b_4c5d_8e9f_0123456789ab.slice/cri-containerd-8d2f0c1b7e3a4f5d9c6b0a1e2d3f4c5b6a7e8d9c0b1a2f3e4d5c6b7a8e9f0a1b.scope",
                )
                .map(std::sync::Arc::new),
                pod: Some(std::sync::Arc::new(crate::workload::PodMeta {
                    name: "checkout-api-7c9d8f6b5-x2lqz".into(),
                    namespace: "shop".into(),
                    uid: "0f4c1d2e-3a4b-4c5d-8e9f-0123456789ab".into(),
                })),
            },
            node: Some("worker-3"),
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
