//! The protocol stage: for each connection, a parser turns its two reassembled byte streams
//! into exchanges. The connection table (conn.rs) keeps offsets, gaps and bounds and knows no
//! protocol; this trait is the seam between them. HTTP/1 is the first implementation (`h1/`,
//! pairing requests and responses first-in first-out); HTTP/2 pairs by stream id behind the
//! same interface.

pub mod h1;
pub mod h2;
pub mod head;
pub mod message;

pub use head::{FieldStart, Head, HttpVersion, StartLine};
pub use message::{BodySummary, Exchange, Message};

use serde::{Deserialize, Serialize};

/// Which end of the connection the captured process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Client,
    Server,
    Unknown,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
            Role::Unknown => "unknown",
        }
    }
}

/// Which way bytes flow, seen from the captured process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Written by the process.
    Egress,
    /// Read by the process.
    Ingress,
}

impl Direction {
    pub fn index(self) -> usize {
        match self {
            Direction::Egress => 0,
            Direction::Ingress => 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("HTTP/1: {0}")]
    Http1(#[from] h1::ParseError),
}

/// What bounds each protocol's parser.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub http1: h1::Limits,
    pub http2: h2::Limits,
}

/// Counters the parsers keep beside the connection table's own.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolStats {
    pub h2: h2::Http2Stats,
    /// HTTP/1 connections that turned out to be HTTP/2 (recognised by their first bytes).
    pub switched_to_h2: u64,
    /// HTTP/1 connections upgraded to HTTP/2 (`Upgrade: h2c` → `101`).
    pub upgraded_to_h2: u64,
    /// HTTP/2 connections whose key came back carrying HTTP/1 (a new connection).
    pub switched_to_h1: u64,
}

/// One connection's protocol parser: bytes in, completed exchanges out.
pub trait ConnectionParser {
    /// The next bytes of `direction`, in stream order (gaps are reported apart): one record,
    /// so a record start is a point where a lost parser may find its place. Completed
    /// exchanges are appended to `out`.
    fn push(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        ts_ns: u64,
        out: &mut Vec<Exchange>,
        stats: &mut ProtocolStats,
    ) -> Result<(), ProtocolError>;

    /// `len` bytes of `direction` were not captured; false when the parser lost its place.
    fn gap(&mut self, direction: Direction, len: u64, stats: &mut ProtocolStats) -> bool;

    /// The connection ended: what can be completed is; unanswered requests are reported alone.
    fn close(&mut self, out: &mut Vec<Exchange>, stats: &mut ProtocolStats);

    /// What the traffic says the captured process is (None until it says).
    fn role_hint(&self) -> Option<Role>;
}

/// The parser a connection uses, chosen by what its bytes are: HTTP/1 until a record shows the
/// HTTP/2 preface or frames before any HTTP/1 head was parsed. An enum rather than a trait
/// object: no allocation or indirect call per record.
#[allow(
    clippy::large_enum_variant,
    reason = "HTTP/1 is most connections: kept inline, no allocation per connection"
)]
pub enum Parser {
    Http1(h1::Http1Connection),
    Http2(Box<h2::Http2Connection>),
}

impl Parser {
    pub fn new(limits: h1::Limits) -> Self {
        Parser::Http1(h1::Http1Connection::new(limits))
    }
}

impl Parser {
    pub fn push_with(
        &mut self,
        limits: &Limits,
        direction: Direction,
        bytes: &[u8],
        ts_ns: u64,
        out: &mut Vec<Exchange>,
        stats: &mut ProtocolStats,
    ) -> Result<(), ProtocolError> {
        if let Parser::Http1(p) = self
            && !p.saw_head()
            && !bytes.is_empty()
            && h2::recognise(bytes)
        {
            stats.switched_to_h2 += 1;
            *self = Parser::Http2(Box::new(h2::Http2Connection::new(limits.http2, stats)));
        } else if let Parser::Http2(p) = self
            && p.at_record_boundary(direction)
            && h1::starts_like_a_head(bytes)
        {
            // An HTTP/1 connection under the key of an HTTP/2 one that was never seen to close
            // (a reused TLS object): what HTTP/2 had open is reported, HTTP/1 takes over. At a
            // frame boundary an HTTP/2 record starts with a frame length, whose first byte is
            // never an uppercase letter below 4 MiB frames.
            stats.switched_to_h1 += 1;
            p.close(out, stats);
            *self = Parser::Http1(h1::Http1Connection::new(limits.http1));
        }
        self.push(direction, bytes, ts_ns, out, stats)?;
        if let Parser::Http1(p) = self
            && let Some(upgrade) = p.take_upgrade()
        {
            stats.upgraded_to_h2 += 1;
            let mut h2 = h2::Http2Connection::after_upgrade(
                limits.http2,
                upgrade.request,
                upgrade.request_direction,
                stats,
            );
            let [egress, ingress] = upgrade.rest;
            for (d, rest) in [(Direction::Egress, egress), (Direction::Ingress, ingress)] {
                if !rest.is_empty() {
                    h2.push(d, &rest, ts_ns, out, stats)?;
                }
            }
            *self = Parser::Http2(Box::new(h2));
        }
        Ok(())
    }
}

impl ConnectionParser for Parser {
    fn push(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        ts_ns: u64,
        out: &mut Vec<Exchange>,
        stats: &mut ProtocolStats,
    ) -> Result<(), ProtocolError> {
        match self {
            Parser::Http1(p) => p.push(direction, bytes, ts_ns, out, stats),
            Parser::Http2(p) => p.push(direction, bytes, ts_ns, out, stats),
        }
    }

    fn gap(&mut self, direction: Direction, len: u64, stats: &mut ProtocolStats) -> bool {
        match self {
            Parser::Http1(p) => p.gap(direction, len, stats),
            Parser::Http2(p) => p.gap(direction, len, stats),
        }
    }

    fn close(&mut self, out: &mut Vec<Exchange>, stats: &mut ProtocolStats) {
        match self {
            Parser::Http1(p) => p.close(out, stats),
            Parser::Http2(p) => p.close(out, stats),
        }
    }

    fn role_hint(&self) -> Option<Role> {
        match self {
            Parser::Http1(p) => p.role_hint(),
            Parser::Http2(p) => p.role_hint(),
        }
    }
}
