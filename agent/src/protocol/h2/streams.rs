//! The streams of one HTTP/2 connection: one exchange per stream id, ended by END_STREAM of
//! the response, RST_STREAM, GOAWAY or the connection's end — never at the first response
//! HEADERS (interim 1xx heads are skipped, trailers complete the message they follow).

use rustc_hash::FxHashMap;

use super::{
    Http2Stats, StreamInfo,
    grpc::{self, GrpcCall, MessageCounter},
    hpack::{Field, FieldList},
};
use crate::protocol::{BodySummary, Direction, Exchange, FieldStart, Head, Message};

/// One message of a stream while it is open.
#[derive(Debug)]
struct Part {
    head: Head,
    body: BodySummary,
}

#[derive(Debug, Default)]
struct Stream {
    request: Option<Part>,
    response: Option<Part>,
    /// The direction that carried the request head.
    request_direction: Option<Direction>,
    grpc: Option<Box<GrpcState>>,
    reset_code: Option<u32>,
}

#[derive(Debug, Default)]
struct GrpcState {
    call: GrpcCall,
    request: MessageCounter,
    response: MessageCounter,
}

impl GrpcState {
    fn counter(&mut self, is_request: bool) -> &mut MessageCounter {
        if is_request {
            &mut self.request
        } else {
            &mut self.response
        }
    }
}

/// What a decoded header block says it is.
pub struct Block<'a> {
    pub stream: u32,
    pub fields: &'a FieldList,
    pub end_stream: bool,
    pub direction: Direction,
    pub ts_ns: u64,
    /// PUSH_PROMISE: the promised stream, whose request this block is.
    pub promised: Option<u32>,
}

pub struct Streams {
    open: FxHashMap<u32, Stream>,
    max_streams: usize,
    body_prefix_bytes: usize,
    /// The direction requests were seen in (client → server); learned from the traffic.
    pub request_direction: Option<Direction>,
}

fn field_value<'f>(fields: &'f FieldList, name: &[u8]) -> Option<&'f [u8]> {
    fields.iter().find_map(|f| match f {
        Field::Known { name: n, value } if n == name => Some(value),
        _ => None,
    })
}

fn regular(fields: &FieldList) -> impl Iterator<Item = (&[u8], &[u8])> {
    fields.iter().filter_map(|f| match f {
        Field::Known { name, value } if !name.starts_with(b":") => Some((name, value)),
        _ => None,
    })
}

fn unresolved(fields: &FieldList) -> u32 {
    fields
        .iter()
        .filter(|f| !matches!(f, Field::Known { .. }))
        .count() as u32
}

/// The request head: pseudo-headers become the start line, `:authority` becomes `host` (as an
/// HTTP/1.1 gateway writes it) unless a host field was sent, and `cookie` crumbs (HTTP/2 lets a
/// client split the cookie into one field per pair) are joined with `; ` at the first one, as
/// RFC 9113 §8.2.3 says to before handing them on.
fn request_head(fields: &FieldList) -> Head {
    let method = field_value(fields, b":method").unwrap_or_default();
    let target = field_value(fields, b":path").unwrap_or_default();
    let authority = field_value(fields, b":authority")
        .filter(|_| field_value(fields, b"host").is_none())
        .map(|a| (&b"host"[..], a));
    let crumbs = regular(fields).filter(|(n, _)| *n == b"cookie").count();
    let joined: Vec<u8> = if crumbs > 1 {
        let values: Vec<&[u8]> = regular(fields)
            .filter(|(n, _)| *n == b"cookie")
            .map(|(_, v)| v)
            .collect();
        values.join(&b"; "[..])
    } else {
        Vec::new()
    };
    let mut first_cookie = true;
    let others = regular(fields).filter_map(|(name, value)| {
        if crumbs > 1 && name == b"cookie" {
            if !std::mem::take(&mut first_cookie) {
                return None;
            }
            return Some((name, joined.as_slice()));
        }
        Some((name, value))
    });
    Head::from_fields(
        FieldStart::Request { method, target },
        authority.into_iter().chain(others),
        unresolved(fields),
    )
}

fn status_of(fields: &FieldList) -> Option<u16> {
    let raw = field_value(fields, b":status")?;
    std::str::from_utf8(raw).ok()?.parse().ok()
}

impl Streams {
    pub fn new(max_streams: usize, body_prefix_bytes: usize) -> Self {
        Self {
            open: FxHashMap::default(),
            max_streams,
            body_prefix_bytes,
            request_direction: None,
        }
    }

    /// Stream 1 of an upgraded connection: its request came as HTTP/1.
    pub fn seed_upgraded(
        &mut self,
        request: Option<Message>,
        direction: Direction,
        _stats: &mut Http2Stats,
    ) {
        self.request_direction = Some(direction);
        let Some(request) = request else {
            return;
        };
        let stream = self.open.entry(1).or_default();
        stream.request_direction = Some(direction);
        stream.request = Some(Part {
            head: request.head,
            body: request.body.unwrap_or_default(),
        });
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    fn stream(&mut self, id: u32, stats: &mut Http2Stats, out: &mut Vec<Exchange>) -> &mut Stream {
        if !self.open.contains_key(&id) && self.open.len() >= self.max_streams {
            // The oldest stream (lowest id) gives way, reported with what it has.
            if let Some(&oldest) = self.open.keys().min() {
                stats.streams_evicted += 1;
                self.finish(oldest, out);
            }
        }
        self.open.entry(id).or_default()
    }

    pub fn on_block(&mut self, block: Block<'_>, stats: &mut Http2Stats, out: &mut Vec<Exchange>) {
        let fields = block.fields;
        let id = block.promised.unwrap_or(block.stream);
        if field_value(fields, b":method").is_some() || block.promised.is_some() {
            // A request (or a pushed request): its direction is the client's, except for
            // PUSH_PROMISE, which the server sends.
            if block.promised.is_none() {
                self.request_direction = Some(block.direction);
            }
            let head = request_head(fields).with_times(block.ts_ns, block.ts_ns);
            let grpc = head
                .header("content-type")
                .is_some_and(grpc::is_grpc)
                .then(|| {
                    let (service, method) = grpc::call_of(head.target().unwrap_or_default());
                    let encoding = head
                        .header("grpc-encoding")
                        .map(|e| String::from_utf8_lossy(e).into_owned());
                    Box::new(GrpcState {
                        call: GrpcCall {
                            service,
                            method,
                            encoding,
                            ..GrpcCall::default()
                        },
                        ..GrpcState::default()
                    })
                });
            let end = block.end_stream && block.promised.is_none();
            let direction = if block.promised.is_some() {
                opposite(block.direction)
            } else {
                block.direction
            };
            let stream = self.stream(id, stats, out);
            stream.request_direction = Some(direction);
            stream.grpc = grpc;
            stream.request = Some(Part {
                head,
                body: BodySummary {
                    end_ns: if end { block.ts_ns } else { 0 },
                    ..BodySummary::default()
                },
            });
            return;
        }
        if let Some(status) = status_of(fields) {
            if (100..200).contains(&status) {
                stats.interim_responses += 1;
                return;
            }
            let head = Head::from_fields(
                FieldStart::Response { status },
                regular(fields),
                unresolved(fields),
            )
            .with_times(block.ts_ns, block.ts_ns);
            let stream = self.stream(id, stats, out);
            if stream.request_direction.is_none() {
                stream.request_direction = Some(opposite(block.direction));
            }
            if let Some(g) = stream.grpc.as_mut() {
                // Trailers-Only: the status rides in the only HEADERS.
                read_grpc_status(&mut g.call, fields);
            }
            stream.response = Some(Part {
                head,
                body: BodySummary::default(),
            });
            if block.end_stream {
                self.end_response(id, block.ts_ns, out);
            }
            return;
        }
        // Neither: trailers (or a head whose pseudo-headers were never resolved).
        let Some(stream) = self.open.get_mut(&id) else {
            stats.orphan_frames += 1;
            return;
        };
        let is_request = stream.request_direction == Some(block.direction);
        if let Some(g) = stream.grpc.as_mut()
            && !is_request
        {
            read_grpc_status(&mut g.call, fields);
        }
        if !is_request && stream.response.is_none() && unresolved(fields) > 0 {
            // A response whose :status was indexed before the attach: say nothing of it.
            stats.unresolved_heads += 1;
        }
        if block.end_stream {
            if is_request {
                if let Some(r) = stream.request.as_mut() {
                    r.body.end_ns = block.ts_ns;
                }
            } else {
                self.end_response(id, block.ts_ns, out);
            }
        }
    }

    pub fn on_data(
        &mut self,
        id: u32,
        direction: Direction,
        data: &[u8],
        ts_ns: u64,
        stats: &mut Http2Stats,
    ) {
        let prefix_max = self.body_prefix_bytes;
        let Some(stream) = self.open.get_mut(&id) else {
            stats.orphan_frames += 1;
            return;
        };
        let is_request = stream.request_direction == Some(direction);
        let part = if is_request {
            stream.request.as_mut()
        } else {
            stream.response.as_mut()
        };
        let Some(part) = part else {
            stats.orphan_frames += 1;
            return;
        };
        let body = &mut part.body;
        body.size = body.size.saturating_add(data.len() as u64);
        body.end_ns = ts_ns;
        let room = prefix_max.saturating_sub(body.prefix.len());
        body.prefix
            .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
        if let Some(g) = stream.grpc.as_mut() {
            g.counter(is_request).push(data);
        }
    }

    /// END_STREAM on DATA in `direction`.
    pub fn on_data_end(
        &mut self,
        id: u32,
        direction: Direction,
        ts_ns: u64,
        out: &mut Vec<Exchange>,
    ) {
        let Some(stream) = self.open.get_mut(&id) else {
            return;
        };
        if stream.request_direction == Some(direction) {
            if let Some(r) = stream.request.as_mut() {
                r.body.end_ns = ts_ns;
            }
        } else {
            self.end_response(id, ts_ns, out);
        }
    }

    pub fn on_reset(&mut self, id: u32, code: u32, out: &mut Vec<Exchange>) {
        if let Some(stream) = self.open.get_mut(&id) {
            stream.reset_code = Some(code);
            self.finish(id, out);
        }
    }

    /// GOAWAY: streams above `last_id` opened by its receiver (`parity`: 1 for the client's
    /// odd ids, 0 for the server's even ones; None when the roles are unknown) will never be
    /// processed.
    pub fn on_goaway(&mut self, last_id: u32, parity: Option<u32>, out: &mut Vec<Exchange>) {
        let mut above: Vec<u32> = self
            .open
            .keys()
            .copied()
            .filter(|&id| id > last_id && parity.is_none_or(|p| id % 2 == p))
            .collect();
        above.sort_unstable();
        for id in above {
            self.finish(id, out);
        }
    }

    /// Bytes of `direction` were lost: gRPC message boundaries there are no longer known.
    pub fn on_gap(&mut self, direction: Direction) {
        for stream in self.open.values_mut() {
            let is_request = stream.request_direction == Some(direction);
            if let Some(g) = stream.grpc.as_mut() {
                g.counter(is_request).lost();
            }
        }
    }

    fn end_response(&mut self, id: u32, ts_ns: u64, out: &mut Vec<Exchange>) {
        if let Some(r) = self.open.get_mut(&id).and_then(|s| s.response.as_mut()) {
            r.body.end_ns = ts_ns;
        }
        self.finish(id, out);
    }

    /// Reports a stream's exchange and forgets it.
    pub fn finish(&mut self, id: u32, out: &mut Vec<Exchange>) {
        let Some(stream) = self.open.remove(&id) else {
            return;
        };
        let grpc = stream.grpc.map(|g| {
            let mut call = g.call;
            call.request_messages = g.request.messages;
            call.response_messages = g.response.messages;
            call.compressed_messages = g.request.compressed + g.response.compressed;
            if call.status_code.is_none() && !g.response.web_trailers.is_empty() {
                let (status, message) = grpc::web_trailers(&g.response.web_trailers);
                call.status_code = status;
                call.message = call.message.or(message);
            }
            if call.status_code.is_none()
                && let Some(code) = stream.reset_code
            {
                call.status_code = Some(grpc::status_of_reset(code));
            }
            call
        });
        if stream.request.is_none() && stream.response.is_none() {
            return;
        }
        let message = |p: Part| Message {
            head: p.head,
            body: Some(p.body),
        };
        out.push(Exchange {
            request: stream.request.map(message),
            response: stream.response.map(message),
            http2: Some(Box::new(StreamInfo {
                stream_id: id,
                reset_code: stream.reset_code,
            })),
            grpc: grpc.map(Box::new),
        });
    }

    pub fn finish_all(&mut self, out: &mut Vec<Exchange>) {
        let mut ids: Vec<u32> = self.open.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.finish(id, out);
        }
    }
}

fn read_grpc_status(call: &mut GrpcCall, fields: &FieldList) {
    if let Some(code) = field_value(fields, b"grpc-status")
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.trim().parse().ok())
    {
        call.status_code = Some(code);
    }
    if let Some(message) = field_value(fields, b"grpc-message") {
        call.message = Some(grpc::decode_message(message));
    }
}

fn opposite(direction: Direction) -> Direction {
    match direction {
        Direction::Egress => Direction::Ingress,
        Direction::Ingress => Direction::Egress,
    }
}
