//! HTTP/1.x: each direction of a connection is a [`StreamParser`] (heads through httparse,
//! bodies by Content-Length, chunking or close); [`Pairing`] matches responses to requests in
//! order. [`Http1Connection`] puts the two behind the connection-parser interface.

mod byte_queue;
pub(crate) mod head_parse;
pub mod pairing;
pub mod stream;

pub use pairing::{Pairing, PairingStats};
pub use stream::{Limits, ParseError, ParseEvent, StreamKind, StreamParser};

use super::Role;
use super::{ConnectionParser, Direction, Exchange, ProtocolError, ProtocolStats};

pub struct Http1Connection {
    /// Indexed by [`Direction::index`].
    directions: [StreamParser; 2],
    pairing: Pairing,
}

impl Http1Connection {
    pub fn new(limits: Limits) -> Self {
        Self {
            directions: [StreamParser::new(limits), StreamParser::new(limits)],
            pairing: Pairing::default(),
        }
    }
}

impl ConnectionParser for Http1Connection {
    fn push(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        ts_ns: u64,
        out: &mut Vec<Exchange>,
        _stats: &mut ProtocolStats,
    ) -> Result<(), ProtocolError> {
        let [egress, ingress] = &mut self.directions;
        let parser = match direction {
            Direction::Egress => egress,
            Direction::Ingress => ingress,
        };
        // Read in place: a response's head and body are not copied into the parser's buffer.
        parser.begin(ts_ns);
        let mut input = bytes;
        let first_new = out.len();
        let result = self.pairing.drive_input(parser, &mut input, out);
        if result.is_ok() {
            // Left after a `101` to h2c: the HTTP/2 parser takes them from the buffer.
            parser.keep(input);
        }
        name_grpc_web_calls(out, first_new);
        result?;
        Ok(())
    }

    fn gap(&mut self, direction: Direction, len: u64, _stats: &mut ProtocolStats) -> bool {
        let [egress, ingress] = &mut self.directions;
        match direction {
            Direction::Egress => egress.gap(len),
            Direction::Ingress => ingress.gap(len),
        }
    }

    fn close(&mut self, out: &mut Vec<Exchange>, _stats: &mut ProtocolStats) {
        let responses = self
            .directions
            .iter_mut()
            .find(|p| p.kind() == StreamKind::Responses);
        let first_new = out.len();
        self.pairing.close(responses, out);
        name_grpc_web_calls(out, first_new);
    }

    fn role_hint(&self) -> Option<Role> {
        let [egress, ingress] = &self.directions;
        match (egress.kind(), ingress.kind()) {
            (StreamKind::Requests, _) | (_, StreamKind::Responses) => Some(Role::Client),
            (StreamKind::Responses, _) | (_, StreamKind::Requests) => Some(Role::Server),
            _ => None,
        }
    }
}

/// gRPC-Web calls among the exchanges from `first_new` on get their `grpc` summary.
fn name_grpc_web_calls(out: &mut [Exchange], first_new: usize) {
    for exchange in out.iter_mut().skip(first_new) {
        if let Some(request) = exchange.request.as_ref()
            && request
                .head
                .header("content-type")
                .is_some_and(crate::protocol::h2::grpc::is_grpc)
        {
            exchange.grpc = Some(Box::new(crate::protocol::h2::grpc::call_over_http1(
                request,
                exchange.response.as_ref(),
            )));
        }
    }
}

/// Whether a record starts like an HTTP/1 message head: a status line, or a request line that
/// httparse accepts so far (complete or partial).
pub fn starts_like_a_head(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"HTTP/1.") {
        return true;
    }
    if !bytes.first().is_some_and(u8::is_ascii_uppercase) || !bytes.contains(&b' ') {
        return false;
    }
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(_) => request.method.is_some(),
        // Too many headers for this probe still means the line parsed.
        Err(httparse::Error::TooManyHeaders) => true,
        Err(_) => false,
    }
}

/// What an HTTP/1 connection hands to HTTP/2 after `Upgrade: h2c` → `101`.
pub struct Upgrade {
    /// The request that asked for the upgrade: HTTP/2 answers it on stream 1.
    pub request: Option<crate::protocol::Message>,
    /// The direction that carried requests.
    pub request_direction: Direction,
    /// Bytes each direction had queued after the switch, by [`Direction::index`].
    pub rest: [Vec<u8>; 2],
}

impl Http1Connection {
    /// The connection switched to HTTP/2 (`101` with `Upgrade: h2c`): the upgraded request
    /// and the bytes that followed, once.
    pub fn take_upgrade(&mut self) -> Option<Upgrade> {
        let responses = self
            .directions
            .iter()
            .position(|p| p.kind() == StreamKind::Responses)?;
        let rest_of_responses = self.directions.get_mut(responses)?.take_switched()?;
        let requests = 1 - responses;
        let rest_of_requests = self
            .directions
            .get_mut(requests)
            .map(StreamParser::take_buffered)
            .unwrap_or_default();
        // Indexed by Direction::index: egress first.
        let rest = if responses == 0 {
            [rest_of_responses, rest_of_requests]
        } else {
            [rest_of_requests, rest_of_responses]
        };
        Some(Upgrade {
            request: self.pairing.upgraded.take().map(|m| *m),
            request_direction: if requests == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            rest,
        })
    }

    /// Whether any message head was parsed yet (until then the bytes may be another protocol).
    pub fn saw_head(&self) -> bool {
        self.directions
            .iter()
            .any(|p| p.kind() != StreamKind::Unknown)
    }
}
