//! The protocol stage: for each connection, a parser turns its two reassembled byte streams
//! into exchanges. The connection table (conn.rs) keeps offsets, gaps and bounds and knows no
//! protocol; this trait is the seam between them. HTTP/1 is the first implementation (`h1/`,
//! pairing requests and responses first-in first-out); HTTP/2 pairs by stream id behind the
//! same interface.

pub mod h1;
pub mod head;
pub mod message;

pub use head::{Head, StartLine};
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

/// One connection's protocol parser: bytes in, completed exchanges out.
pub trait ConnectionParser {
    /// The next bytes of `direction`, in stream order (gaps are reported apart). Completed
    /// exchanges are appended to `out`.
    fn push(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        ts_ns: u64,
        out: &mut Vec<Exchange>,
    ) -> Result<(), ProtocolError>;

    /// `len` bytes of `direction` were not captured; false when the parser lost its place.
    fn gap(&mut self, direction: Direction, len: u64) -> bool;

    /// The connection ended: what can be completed is; unanswered requests are reported alone.
    fn close(&mut self, out: &mut Vec<Exchange>);

    /// What the traffic says the captured process is (None until it says).
    fn role_hint(&self) -> Option<Role>;
}

/// The parser a connection uses, chosen by what its bytes are (today: HTTP/1 only). An enum
/// rather than a trait object: no allocation or indirect call per record.
pub enum Parser {
    Http1(h1::Http1Connection),
}

impl Parser {
    pub fn new(limits: h1::Limits) -> Self {
        Parser::Http1(h1::Http1Connection::new(limits))
    }
}

impl ConnectionParser for Parser {
    fn push(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        ts_ns: u64,
        out: &mut Vec<Exchange>,
    ) -> Result<(), ProtocolError> {
        match self {
            Parser::Http1(p) => p.push(direction, bytes, ts_ns, out),
        }
    }

    fn gap(&mut self, direction: Direction, len: u64) -> bool {
        match self {
            Parser::Http1(p) => p.gap(direction, len),
        }
    }

    fn close(&mut self, out: &mut Vec<Exchange>) {
        match self {
            Parser::Http1(p) => p.close(out),
        }
    }

    fn role_hint(&self) -> Option<Role> {
        match self {
            Parser::Http1(p) => p.role_hint(),
        }
    }
}
