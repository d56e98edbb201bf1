//! Pairs requests with responses on one connection, in order (HTTP/1.1 pipelining answers in
//! request order). Requests enter the queue when their head is parsed, so a response that
//! arrives before the request body ends (100-continue, early rejection) still finds its request.

use std::collections::VecDeque;

use super::stream::{ParseError, ParseEvent, StartLine, StreamKind, StreamParser};
use crate::protocol::{Exchange, Head, Message};

/// Unanswered requests kept per connection; older ones are reported without a response.
pub const MAX_PENDING_REQUESTS: usize = 64;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PairingStats {
    pub parse_errors: u64,
    pub responses_without_request: u64,
    pub requests_without_response: u64,
    pub interim_responses: u64,
}

#[derive(Debug, Default)]
pub struct Pairing {
    pending: VecDeque<Message>,
    response: Option<Head>,
    /// Answered before its request body ended (early response to an upload): reported once
    /// the body ends, so the event carries the request's full size.
    answered_early: Option<Exchange>,
    /// The request a `101` to h2c answered: it becomes stream 1 of the HTTP/2 connection.
    /// Boxed: every HTTP/1 connection carries the field, almost none uses it.
    pub upgraded: Option<Box<Message>>,
    pub stats: PairingStats,
}

impl Pairing {
    /// Parses everything `parser` can produce from what was pushed to it and returns
    /// completed exchanges.
    pub fn drive(
        &mut self,
        parser: &mut StreamParser,
        out: &mut Vec<Exchange>,
    ) -> Result<(), ParseError> {
        self.drive_input(parser, &mut &[][..], out)
    }

    /// [`Self::drive`] over a record read in place (after [`StreamParser::begin`]): `input` is
    /// what the parser has not taken yet; bytes it could not use are left in it.
    pub fn drive_input(
        &mut self,
        parser: &mut StreamParser,
        input: &mut &[u8],
        out: &mut Vec<Exchange>,
    ) -> Result<(), ParseError> {
        loop {
            // Only HEAD changes how a response is framed.
            let answers_head = self
                .pending
                .front()
                .and_then(|m| m.head.method())
                .is_some_and(|m| m.eq_ignore_ascii_case("HEAD"));
            let event = match parser.poll_input(answers_head.then_some("HEAD"), input) {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.stats.parse_errors += 1;
                    // A response half-parsed at the error is lost; its request stays queued.
                    if parser.kind() == StreamKind::Responses {
                        self.response = None;
                    }
                    return Err(e);
                }
            };
            match (parser.kind(), event) {
                (StreamKind::Responses, ParseEvent::Head(head)) => {
                    if head.status() == Some(101) && parser.switched() {
                        self.upgraded = self.pending.pop_front().map(Box::new);
                        return Ok(());
                    }
                    if matches!(head.start, StartLine::Response { status, .. } if (100..200).contains(&status))
                    {
                        self.stats.interim_responses += 1;
                        // Its empty body completes next; mark it so it is not paired.
                        self.response = None;
                    } else {
                        self.response = Some(head);
                    }
                }
                (StreamKind::Responses, ParseEvent::Complete(body)) => {
                    if let Some(head) = self.response.take() {
                        self.complete_response(
                            Message {
                                head,
                                body: Some(body),
                            },
                            out,
                        );
                    }
                }
                (_, ParseEvent::Head(head)) => {
                    if self.pending.len() >= MAX_PENDING_REQUESTS
                        && let Some(old) = self.pending.pop_front()
                    {
                        self.stats.requests_without_response += 1;
                        out.push(Exchange {
                            request: Some(old),
                            response: None,
                            http2: None,
                            grpc: None,
                        });
                    }
                    self.pending.push_back(Message { head, body: None });
                }
                (_, ParseEvent::Complete(body)) => {
                    if let Some(request) = self.pending.iter_mut().rev().find(|m| m.body.is_none())
                    {
                        request.body = Some(body);
                    } else if let Some(mut early) = self.answered_early.take() {
                        if let Some(request) = early.request.as_mut() {
                            request.body = Some(body);
                        }
                        out.push(early);
                    }
                }
            }
        }
    }

    fn complete_response(&mut self, response: Message, out: &mut Vec<Exchange>) {
        if let Some(early) = self.answered_early.take() {
            out.push(early);
        }
        let request = self.pending.pop_front();
        if request.is_none() {
            self.stats.responses_without_request += 1;
        }
        let exchange = Exchange {
            request,
            response: Some(response),
            http2: None,
            grpc: None,
        };
        if exchange.request.as_ref().is_some_and(|r| r.body.is_none()) {
            self.answered_early = Some(exchange);
        } else {
            out.push(exchange);
        }
    }

    /// The connection ended: a close-delimited response completes; unanswered requests are
    /// reported alone.
    pub fn close(&mut self, response_parser: Option<&mut StreamParser>, out: &mut Vec<Exchange>) {
        if let Some(parser) = response_parser
            && let Some(body) = parser.finish()
            && let Some(head) = self.response.take()
        {
            self.complete_response(
                Message {
                    head,
                    body: Some(body),
                },
                out,
            );
        }
        if let Some(early) = self.answered_early.take() {
            out.push(early);
        }
        while let Some(request) = self.pending.pop_front() {
            self.stats.requests_without_response += 1;
            out.push(Exchange {
                request: Some(request),
                response: None,
                http2: None,
                grpc: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::h1::Limits;

    enum Step<'a> {
        Req(&'a [u8]),
        Res(&'a [u8]),
    }
    use Step::{Req, Res};

    /// Feeds the steps in order; returns exchanges emitted after each step, then after close.
    /// Runs them twice, records buffered and read in place (the live path), which must agree.
    fn steps(seq: &[Step<'_>]) -> (Vec<usize>, Vec<Exchange>, Pairing) {
        let buffered = steps_with(seq, false);
        let in_place = steps_with(seq, true);
        assert_eq!(buffered.0, in_place.0);
        assert_eq!(buffered.1, in_place.1);
        assert_eq!(buffered.2.stats, in_place.2.stats);
        buffered
    }

    fn steps_with(seq: &[Step<'_>], read_in_place: bool) -> (Vec<usize>, Vec<Exchange>, Pairing) {
        let mut req = StreamParser::new(Limits::default());
        let mut res = StreamParser::new(Limits::default());
        let mut pairing = Pairing::default();
        let mut out = Vec::new();
        let mut counts = Vec::new();
        for (i, step) in seq.iter().enumerate() {
            let (parser, bytes) = match step {
                Req(b) => (&mut req, b),
                Res(b) => (&mut res, b),
            };
            if read_in_place {
                parser.begin(i as u64);
                let mut input = *bytes;
                pairing
                    .drive_input(parser, &mut input, &mut out)
                    .expect("parses");
                parser.keep(input);
            } else {
                parser.push(bytes, i as u64);
                pairing.drive(parser, &mut out).expect("parses");
            }
            counts.push(out.len());
        }
        pairing.close(Some(&mut res), &mut out);
        (counts, out, pairing)
    }

    fn status(e: &Exchange) -> u16 {
        e.response
            .as_ref()
            .and_then(|m| m.head.status())
            .unwrap_or(0)
    }

    fn target(e: &Exchange) -> &str {
        e.request
            .as_ref()
            .and_then(|m| m.head.target())
            .unwrap_or("")
    }

    fn body_size(m: Option<&Message>) -> Option<u64> {
        m.and_then(|m| m.body.as_ref()).map(|b| b.size)
    }

    #[test]
    fn pipelined_pairs_in_order_with_head() {
        let (_, out, _) = steps(&[
            Req(b"GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n"),
            Res(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        ]);
        assert_eq!(
            out.iter().map(target).collect::<Vec<_>>(),
            ["/a", "/b", "/c"]
        );
        assert_eq!(out.iter().map(status).collect::<Vec<_>>(), [200, 200, 404]);
        assert_eq!(body_size(out[1].response.as_ref()), Some(0));
    }

    #[test]
    fn expect_continue_pairs_final_response() {
        let (_, out, pairing) = steps(&[
            Req(b"POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
            Res(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Req(b"abc"),
            Res(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(status(&out[0]), 201);
        assert_eq!(body_size(out[0].request.as_ref()), Some(3));
        assert_eq!(pairing.stats.interim_responses, 1);
    }

    #[test]
    fn close_delimited_and_unanswered() {
        let (counts, out, pairing) = steps(&[
            Req(b"GET /x HTTP/1.0\r\n\r\nGET /y HTTP/1.1\r\n\r\n"),
            Res(b"HTTP/1.0 200 OK\r\n\r\nbody until close"),
        ]);
        assert_eq!(counts, [0, 0]);
        assert_eq!(out.len(), 2);
        assert_eq!(body_size(out[0].response.as_ref()), Some(16));
        assert!(out[1].response.is_none());
        assert_eq!(pairing.stats.requests_without_response, 1);
    }

    #[test]
    fn early_response_waits_for_request_body() {
        let (counts, out, _) = steps(&[
            Req(b"POST /up HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc"),
            Res(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n"),
            Req(b"def"),
        ]);
        assert_eq!(counts, [0, 0, 1]);
        assert_eq!(body_size(out[0].request.as_ref()), Some(6));
        assert_eq!(status(&out[0]), 413);
    }

    #[test]
    fn response_without_request_is_reported() {
        let (_, out, pairing) = steps(&[Res(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]);
        assert_eq!(out.len(), 1);
        assert!(out[0].request.is_none());
        assert_eq!(pairing.stats.responses_without_request, 1);
    }
}
