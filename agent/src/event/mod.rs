//! The typed exchange: the one record that flows from the protocol parsers through enrichment
//! and detection to every rendering (schema `cleartap.http_exchange/1`). It is built once per
//! exchange from what the connection table finished ([`build`]), already redacted, borrowing
//! from the parsed heads wherever redaction left a value unchanged. The native JSON is its
//! serde serialisation; `cleartap replay` deserialises that JSON back into the same type, so
//! the rules read the same typed fields live and in replay. Every field is documented in the
//! README; change both together.

mod borrowed;
pub mod build;
mod headers;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub use crate::classify::jwt::JwtSummary;
/// Defined with the protocol parsers, which are the first to learn it from the traffic.
pub use crate::protocol::{HttpVersion, Role};
pub use headers::{Header, Headers};

pub const SCHEMA: &str = "cleartap.http_exchange/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeEvent<'a> {
    #[serde(borrow)]
    pub schema: Cow<'a, str>,
    /// RFC 3339, UTC: when the exchange started.
    #[serde(borrow)]
    pub time: Cow<'a, str>,
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    #[serde(borrow)]
    pub process: Process<'a>,
    /// The container of the process; absent for processes outside containers.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container<'a>>,
    /// Present when the agent watches Kubernetes: the node, and the pod when it is known.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Kubernetes<'a>>,
    #[serde(borrow)]
    pub connection: Connection<'a>,
    #[serde(borrow)]
    pub request: Option<Request<'a>>,
    #[serde(borrow)]
    pub response: Option<Response<'a>>,
    pub latency_us: Option<u64>,
    pub duration_us: Option<u64>,
    /// HTTP/2: the stream the exchange was on. Absent for HTTP/1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<u32>,
    /// HTTP/2: the RST_STREAM error code that ended the stream, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_code: Option<u32>,
    /// A gRPC call (`content-type: application/grpc…`). Absent otherwise.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Grpc<'a>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grpc<'a> {
    /// `package.Service` from `:path`.
    #[serde(borrow)]
    pub service: Cow<'a, str>,
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// `grpc-status` from the trailers (or a Trailers-Only reply), else the status a client
    /// reports for the stream's reset; null when the call did not end in view.
    pub status_code: Option<u32>,
    #[serde(borrow, deserialize_with = "borrowed::option_str", default)]
    pub status_name: Option<Cow<'a, str>>,
    /// `grpc-message`, percent-decoded and redacted.
    #[serde(borrow, deserialize_with = "borrowed::option_str", default)]
    pub message: Option<Cow<'a, str>>,
    /// `grpc-encoding` of the request (message compression).
    #[serde(borrow, deserialize_with = "borrowed::option_str", default)]
    pub encoding: Option<Cow<'a, str>>,
    pub request_messages: u64,
    pub response_messages: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process<'a> {
    pub pid: u32,
    pub tid: u32,
    #[serde(borrow)]
    pub comm: Cow<'a, str>,
    #[serde(borrow, deserialize_with = "borrowed::option_str", default)]
    pub exe: Option<Cow<'a, str>>,
    /// cgroup v2 id (the inode of the cgroup directory): identifies the container.
    pub cgroup_id: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(
        borrow,
        deserialize_with = "borrowed::option_str",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kubernetes<'a> {
    #[serde(borrow)]
    pub node: Cow<'a, str>,
    #[serde(
        borrow,
        deserialize_with = "borrowed::option_str",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        deserialize_with = "borrowed::option_str",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pod: Option<Cow<'a, str>>,
    #[serde(
        borrow,
        deserialize_with = "borrowed::option_str",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pod_uid: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: std::net::IpAddr,
    pub port: u16,
}

impl Endpoint {
    pub fn of(address: std::net::SocketAddr) -> Self {
        Self {
            ip: address.ip(),
            port: address.port(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection<'a> {
    pub local: Option<Endpoint>,
    pub remote: Option<Endpoint>,
    pub role: Role,
    pub tls: bool,
    #[serde(borrow, deserialize_with = "borrowed::option_str", default)]
    pub library: Option<Cow<'a, str>>,
    /// The toolchain that built a Go binary's crypto/tls ("go1.21.13"); absent otherwise.
    #[serde(
        borrow,
        deserialize_with = "borrowed::option_str",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub library_version: Option<Cow<'a, str>>,
    pub fd: Option<i32>,
    /// The kernel's key of this stream within its process (the TLS object's address, or the
    /// socket's): with the pid and the addresses it names the stream to act on. Not written
    /// (it is an address inside the process); absent in replay.
    #[serde(skip)]
    pub stream: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request<'a> {
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    #[serde(borrow)]
    pub path: Cow<'a, str>,
    /// Secret-looking parameter values are redacted.
    #[serde(borrow, deserialize_with = "borrowed::option_str", default)]
    pub query: Option<Cow<'a, str>>,
    pub version: HttpVersion,
    #[serde(borrow)]
    pub headers: Headers<'a>,
    pub body_size: Option<u64>,
    #[serde(borrow)]
    pub body_prefix: Cow<'a, str>,
    pub body_missing_bytes: u64,
    /// HTTP/2: header fields that referenced HPACK table entries inserted before the agent
    /// attached (`hpack_unsynced`): left out, never guessed. A method or path among them is
    /// written as "". Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unresolved_fields: u32,
    /// Non-secret parts of a bearer JWT (alg, time claims); null when there is none.
    pub jwt: Option<JwtSummary>,
    /// The kernel's key of the credential (enforcement on), kept in memory only: it lets the
    /// lists be synced to the kernel, and is never written.
    #[serde(skip)]
    pub credential_key: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response<'a> {
    pub status: u16,
    #[serde(borrow)]
    pub reason: Cow<'a, str>,
    pub version: HttpVersion,
    #[serde(borrow)]
    pub headers: Headers<'a>,
    pub body_size: Option<u64>,
    #[serde(borrow)]
    pub body_prefix: Cow<'a, str>,
    pub body_missing_bytes: u64,
    /// HTTP/2: header fields that referenced HPACK table entries inserted before the agent
    /// attached (`hpack_unsynced`): left out, never guessed. A method or path among them is
    /// written as "". Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unresolved_fields: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ExchangeEvent<'_> {
    /// Milliseconds since the Unix epoch of `time` (None when it does not parse).
    pub fn epoch_ms(&self) -> Option<i64> {
        let t =
            time::OffsetDateTime::parse(&self.time, &time::format_description::well_known::Rfc3339)
                .ok()?;
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
    }
}
