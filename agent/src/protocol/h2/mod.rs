//! HTTP/2 (RFC 9113) over the reassembled byte streams of any source (OpenSSL, GnuTLS, node,
//! plain sockets): framing per direction ([`frame`]), HPACK that tolerates a missed beginning
//! ([`hpack`]), one exchange per stream ([`streams`]) and gRPC on top ([`grpc`]).
//!
//! A connection is recognised by the client preface or, when the agent joined it late, by the
//! shape of the frames at the start of a record (HTTP/2 implementations write whole frames per
//! TLS record). After a capture gap the direction waits for a record that starts with
//! plausible frames and resumes there; its HPACK table is then unknown until it heals.

pub mod frame;
pub mod grpc;
pub mod hpack;
pub mod protobuf;
mod streams;

use frame::{FrameHeader, HEADER_LEN, PREFACE, Shape};
use hpack::{Decoder, FieldList};
use streams::{Block, Streams};

use super::{ConnectionParser, Direction, Exchange, ProtocolError, ProtocolStats, Role};

pub use grpc::GrpcCall;

/// What an HTTP/2 exchange adds to the protocol-neutral one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub stream_id: u32,
    /// The RST_STREAM error code that ended the stream, if one did.
    pub reset_code: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open streams per connection; beyond, the oldest is reported and dropped.
    pub max_streams: usize,
    /// HPACK table bytes kept per direction.
    pub max_table_bytes: usize,
    /// Decoded header-list bytes per block (RFC 7541 sizes); beyond, fields are dropped.
    pub max_list_bytes: usize,
    /// Encoded header-block bytes buffered (HEADERS + CONTINUATION); beyond, the block is
    /// skipped and the direction's table becomes unknown.
    pub max_block_bytes: usize,
    pub body_prefix_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams: 1024,
            max_table_bytes: 64 * 1024,
            max_list_bytes: 64 * 1024,
            max_block_bytes: 256 * 1024,
            body_prefix_bytes: 256,
        }
    }
}

/// Counters of every HTTP/2 anomaly, summed over connections by the connection table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Http2Stats {
    pub connections: u64,
    pub frames: u64,
    pub header_blocks: u64,
    /// Header fields that referenced HPACK entries inserted before the agent attached.
    pub hpack_unsynced_fields: u64,
    /// Fields dropped by the header-list bound (HPACK bombs).
    pub hpack_dropped_fields: u64,
    /// Header blocks that did not decode (the table is then unknown).
    pub hpack_errors: u64,
    /// Header blocks above the buffering bound, skipped.
    pub oversized_blocks: u64,
    /// Frames that broke the protocol's rules (a lost position or a peer's error).
    pub protocol_errors: u64,
    /// Times a direction found its place again after losing it.
    pub resyncs: u64,
    /// Bytes passed over while looking for a frame boundary.
    pub skipped_bytes: u64,
    pub streams_evicted: u64,
    /// DATA or trailers for a stream whose head was never seen (opened before the attach).
    pub orphan_frames: u64,
    pub interim_responses: u64,
    /// Response heads whose `:status` could not be resolved.
    pub unresolved_heads: u64,
    /// New connections found under a stream key still in use (a reused TLS object).
    pub restarts: u64,
}

#[derive(Debug, Clone, Copy)]
enum Read {
    /// Matching the client preface; `usize` bytes matched so far.
    Preface(usize),
    Header {
        buf: [u8; HEADER_LEN],
        have: usize,
    },
    Payload {
        header: FrameHeader,
        read: u32,
    },
    /// Position lost: waiting for a record that starts with frames.
    Lost,
}

/// A HEADERS or PUSH_PROMISE block waiting for its CONTINUATION frames.
#[derive(Debug)]
struct PendingBlock {
    stream: u32,
    end_stream: bool,
    promised: Option<u32>,
    /// Skipped (too large): decoded as nothing, the table forgotten.
    oversized: bool,
}

struct DirectionState {
    read: Read,
    /// Payload of the frame being read (DATA excepted: it is streamed).
    payload: Vec<u8>,
    /// DATA: padding length, once read.
    data_pad: Option<u8>,
    hpack: Decoder,
    block: Option<PendingBlock>,
    block_bytes: Vec<u8>,
    fields: FieldList,
}

impl DirectionState {
    fn new(limits: &Limits) -> Self {
        Self {
            read: Read::Header {
                buf: [0; HEADER_LEN],
                have: 0,
            },
            payload: Vec::new(),
            data_pad: None,
            hpack: Decoder::new(limits.max_table_bytes, limits.max_list_bytes),
            block: None,
            block_bytes: Vec::new(),
            fields: FieldList::default(),
        }
    }
}

pub struct Http2Connection {
    /// Indexed by [`Direction::index`].
    directions: [DirectionState; 2],
    streams: Streams,
    limits: Limits,
    /// The direction that wrote the preface.
    preface_direction: Option<Direction>,
    frames_seen: bool,
}

/// Whether the first bytes of a connection (one record) are HTTP/2.
pub fn recognise(bytes: &[u8]) -> bool {
    frame::shape(bytes) != Shape::NotHttp2
}

impl Http2Connection {
    pub fn new(limits: Limits, stats: &mut ProtocolStats) -> Self {
        stats.h2.connections += 1;
        Self {
            directions: [DirectionState::new(&limits), DirectionState::new(&limits)],
            streams: Streams::new(limits.max_streams, limits.body_prefix_bytes),
            limits,
            preface_direction: None,
            frames_seen: false,
        }
    }

    /// The HTTP/2 side of an `Upgrade: h2c`: the HTTP/1 request is stream 1's (RFC 7540 §3.2);
    /// the server's first HTTP/2 bytes follow the `101`, the client's start with the preface.
    pub fn after_upgrade(
        limits: Limits,
        request: Option<super::Message>,
        request_direction: Direction,
        stats: &mut ProtocolStats,
    ) -> Self {
        let mut conn = Self::new(limits, stats);
        conn.preface_direction = Some(request_direction);
        conn.frames_seen = true;
        conn.state(request_direction).read = Read::Preface(0);
        conn.streams
            .seed_upgraded(request, request_direction, &mut stats.h2);
        conn
    }

    /// Whether the next record of `direction` starts at a frame boundary, or the direction lost
    /// its place: where a record can start something else.
    pub fn at_record_boundary(&self, direction: Direction) -> bool {
        let [egress, ingress] = &self.directions;
        let state = match direction {
            Direction::Egress => egress,
            Direction::Ingress => ingress,
        };
        matches!(state.read, Read::Lost | Read::Header { have: 0, .. })
    }

    fn state(&mut self, direction: Direction) -> &mut DirectionState {
        let [egress, ingress] = &mut self.directions;
        match direction {
            Direction::Egress => egress,
            Direction::Ingress => ingress,
        }
    }

    fn push_bytes(
        &mut self,
        direction: Direction,
        mut bytes: &[u8],
        ts_ns: u64,
        out: &mut Vec<Exchange>,
        stats: &mut Http2Stats,
    ) {
        // A new connection under the same stream key: TLS stacks that do their own socket I/O
        // (gRPC's BIO pairs) free and reallocate the TLS object, so its address — the key —
        // comes back without a close the agent could see. A preface at a frame boundary of a
        // connection already under way can only mean that: what was open is reported, and
        // the new connection starts clean.
        if (self.frames_seen || self.preface_direction.is_some())
            && matches!(
                self.state(direction).read,
                Read::Header { have: 0, .. } | Read::Lost
            )
            && bytes.starts_with(PREFACE)
        {
            stats.restarts += 1;
            self.streams.finish_all(out);
            self.directions = [
                DirectionState::new(&self.limits),
                DirectionState::new(&self.limits),
            ];
            self.preface_direction = None;
            self.frames_seen = false;
        }
        // A record starts here: where a direction lost its place, or has not started, the
        // record's shape decides.
        let first_record = matches!(self.state(direction).read, Read::Header { have: 0, .. })
            && self.preface_direction.is_none()
            && self.streams.len() == 0;
        if first_record || matches!(self.state(direction).read, Read::Lost) {
            match frame::shape(bytes) {
                Shape::Preface => {
                    self.preface_direction = Some(direction);
                    self.state(direction).read = Read::Preface(0);
                }
                Shape::Frames => {
                    if matches!(self.state(direction).read, Read::Lost) {
                        stats.resyncs += 1;
                    }
                    self.state(direction).read = Read::Header {
                        buf: [0; HEADER_LEN],
                        have: 0,
                    };
                }
                Shape::NotHttp2 => {
                    if matches!(self.state(direction).read, Read::Lost) {
                        stats.skipped_bytes += bytes.len() as u64;
                        return;
                    }
                }
            }
        }
        while !bytes.is_empty() {
            let read = self.state(direction).read;
            match read {
                Read::Lost => {
                    stats.skipped_bytes += bytes.len() as u64;
                    return;
                }
                Read::Preface(seen) => {
                    let want = PREFACE.get(seen..).unwrap_or_default();
                    let n = want.len().min(bytes.len());
                    if bytes.get(..n) != want.get(..n) {
                        stats.protocol_errors += 1;
                        self.lose(direction);
                        continue;
                    }
                    bytes = bytes.get(n..).unwrap_or_default();
                    self.state(direction).read = if seen + n == PREFACE.len() {
                        Read::Header {
                            buf: [0; HEADER_LEN],
                            have: 0,
                        }
                    } else {
                        Read::Preface(seen + n)
                    };
                }
                Read::Header { mut buf, have } => {
                    let n = (HEADER_LEN - have).min(bytes.len());
                    if let (Some(dst), Some(src)) = (buf.get_mut(have..have + n), bytes.get(..n)) {
                        dst.copy_from_slice(src);
                    }
                    bytes = bytes.get(n..).unwrap_or_default();
                    if have + n < HEADER_LEN {
                        self.state(direction).read = Read::Header {
                            buf,
                            have: have + n,
                        };
                        continue;
                    }
                    let Some(header) = FrameHeader::parse(&buf) else {
                        self.lose(direction);
                        continue;
                    };
                    if !header.plausible(frame::reserved_bit(&buf), true) {
                        stats.protocol_errors += 1;
                        self.lose(direction);
                        continue;
                    }
                    stats.frames += 1;
                    self.frames_seen = true;
                    let state = self.state(direction);
                    state.payload.clear();
                    state.data_pad = None;
                    state.read = Read::Payload { header, read: 0 };
                    if header.len == 0 {
                        self.frame_done(direction, header, ts_ns, out, stats);
                    }
                }
                Read::Payload { header, read } => {
                    let left = (header.len - read) as usize;
                    let n = left.min(bytes.len());
                    let chunk = bytes.get(..n).unwrap_or_default();
                    bytes = bytes.get(n..).unwrap_or_default();
                    if header.kind == frame::DATA {
                        self.data_chunk(direction, header, read, chunk, ts_ns, stats);
                    } else {
                        let keep = match header.kind {
                            frame::HEADERS | frame::CONTINUATION | frame::PUSH_PROMISE => {
                                self.limits.max_block_bytes
                            }
                            // SETTINGS, GOAWAY debug data, unknown extensions: what is read
                            // of them fits in a page.
                            _ => 4096,
                        };
                        let state = self.state(direction);
                        let room = keep.saturating_sub(state.payload.len());
                        state.payload.extend_from_slice(
                            chunk.get(..room.min(chunk.len())).unwrap_or_default(),
                        );
                    }
                    let read = read + n as u32;
                    self.state(direction).read = Read::Payload { header, read };
                    if read == header.len {
                        self.frame_done(direction, header, ts_ns, out, stats);
                    }
                }
            }
        }
    }

    fn lose(&mut self, direction: Direction) {
        let state = self.state(direction);
        state.read = Read::Lost;
        state.block = None;
        state.block_bytes.clear();
        state.hpack.forget();
        self.streams.on_gap(direction);
    }

    /// Streams DATA payload to its stream, without its padding.
    fn data_chunk(
        &mut self,
        direction: Direction,
        header: FrameHeader,
        read: u32,
        mut chunk: &[u8],
        ts_ns: u64,
        stats: &mut Http2Stats,
    ) {
        let mut at = read;
        let state = self.state(direction);
        if header.flags & frame::PADDED != 0 && at == 0 {
            let Some((&pad, rest)) = chunk.split_first() else {
                return;
            };
            state.data_pad = Some(pad);
            chunk = rest;
            at = 1;
        }
        let pad = u32::from(state.data_pad.unwrap_or(0));
        let data_end = header.len.saturating_sub(pad);
        let take = data_end.saturating_sub(at).min(chunk.len() as u32) as usize;
        if let Some(data) = chunk.get(..take).filter(|d| !d.is_empty()) {
            self.streams
                .on_data(header.stream, direction, data, ts_ns, stats);
        }
    }

    fn frame_done(
        &mut self,
        direction: Direction,
        header: FrameHeader,
        ts_ns: u64,
        out: &mut Vec<Exchange>,
        stats: &mut Http2Stats,
    ) {
        self.state(direction).read = Read::Header {
            buf: [0; HEADER_LEN],
            have: 0,
        };
        // A header block in progress admits only its CONTINUATION frames (RFC 9113 §6.10).
        if self.state(direction).block.is_some()
            && (header.kind != frame::CONTINUATION
                || self.state(direction).block.as_ref().map(|b| b.stream) != Some(header.stream))
        {
            stats.protocol_errors += 1;
            let state = self.state(direction);
            state.block = None;
            state.block_bytes.clear();
            state.hpack.forget();
        }
        let payload = std::mem::take(&mut self.state(direction).payload);
        match header.kind {
            frame::DATA if header.flags & frame::END_STREAM != 0 => {
                self.streams
                    .on_data_end(header.stream, direction, ts_ns, out);
            }
            frame::HEADERS | frame::PUSH_PROMISE => {
                let oversized = header.len as usize > self.limits.max_block_bytes;
                let (fragment, promised) = block_fragment(&payload, header);
                if fragment.is_none() {
                    stats.protocol_errors += 1;
                }
                let state = self.state(direction);
                state.block = Some(PendingBlock {
                    stream: header.stream,
                    end_stream: header.kind == frame::HEADERS
                        && header.flags & frame::END_STREAM != 0,
                    promised,
                    oversized: oversized || fragment.is_none(),
                });
                state.block_bytes.clear();
                state
                    .block_bytes
                    .extend_from_slice(fragment.unwrap_or_default());
                if header.flags & frame::END_HEADERS != 0 {
                    self.block_done(direction, ts_ns, out, stats);
                }
            }
            frame::CONTINUATION => {
                let max = self.limits.max_block_bytes;
                let state = self.state(direction);
                let Some(block) = state.block.as_mut() else {
                    // Its HEADERS was before the attach or a gap: the table is unknown now.
                    stats.orphan_frames += 1;
                    state.hpack.forget();
                    return;
                };
                if state.block_bytes.len() + payload.len() > max
                    || header.len as usize > payload.len()
                {
                    block.oversized = true;
                } else {
                    state.block_bytes.extend_from_slice(&payload);
                }
                if header.flags & frame::END_HEADERS != 0 {
                    self.block_done(direction, ts_ns, out, stats);
                }
            }
            frame::RST_STREAM => {
                let code = payload
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0);
                self.streams.on_reset(header.stream, code, out);
            }
            frame::GOAWAY => {
                let last = payload
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(|b| u32::from_be_bytes(b) & 0x7fff_ffff)
                    .unwrap_or(u32::MAX);
                // The last stream id counts the streams the GOAWAY's *receiver* opened (RFC
                // 9113 §6.8): a client closing with `last = 0` says nothing about its own
                // requests, whose responses may still be in flight (odd ids are the client's).
                let client = self.preface_direction.or(self.streams.request_direction);
                let receivers_streams = client.map(|c| if c == direction { 0 } else { 1 });
                self.streams.on_goaway(last, receivers_streams, out);
            }
            // SETTINGS, PING, PRIORITY, WINDOW_UPDATE and extensions change nothing the agent
            // reports (HPACK size changes arrive in the blocks themselves).
            _ => {}
        }
        // The payload buffer is reused for the next frame.
        let state = self.state(direction);
        if state.payload.capacity() < payload.capacity() && payload.capacity() <= 64 * 1024 {
            state.payload = payload;
        }
    }

    fn block_done(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        out: &mut Vec<Exchange>,
        stats: &mut Http2Stats,
    ) {
        let state = self.state(direction);
        let Some(block) = state.block.take() else {
            return;
        };
        stats.header_blocks += 1;
        state.fields.clear();
        if block.oversized {
            stats.oversized_blocks += 1;
            state.hpack.forget();
            state.block_bytes.clear();
            return;
        }
        match state.hpack.decode(&state.block_bytes, &mut state.fields) {
            Ok(s) => {
                stats.hpack_unsynced_fields += u64::from(s.unsynced_fields);
                stats.hpack_dropped_fields += u64::from(s.dropped_fields);
            }
            Err(_) => {
                stats.hpack_errors += 1;
                state.hpack.forget();
                state.block_bytes.clear();
                return;
            }
        }
        state.block_bytes.clear();
        let fields = std::mem::take(&mut state.fields);
        self.streams.on_block(
            Block {
                stream: block.stream,
                fields: &fields,
                end_stream: block.end_stream,
                direction,
                ts_ns,
                promised: block.promised,
            },
            stats,
            out,
        );
        self.state(direction).fields = fields;
    }
}

/// The header block fragment of a HEADERS or PUSH_PROMISE payload (padding, priority and the
/// promised stream id removed), and the promised stream. None when the lengths contradict.
fn block_fragment(payload: &[u8], header: FrameHeader) -> (Option<&[u8]>, Option<u32>) {
    let mut body = payload;
    let mut pad = 0usize;
    if header.flags & frame::PADDED != 0 {
        let Some((&p, rest)) = body.split_first() else {
            return (None, None);
        };
        pad = usize::from(p);
        body = rest;
    }
    let mut promised = None;
    if header.kind == frame::PUSH_PROMISE {
        let Some((id, rest)) = body.split_first_chunk::<4>() else {
            return (None, None);
        };
        promised = Some(u32::from_be_bytes(*id) & 0x7fff_ffff);
        body = rest;
    } else if header.flags & frame::PRIORITY_FLAG != 0 {
        let Some((_, rest)) = body.split_first_chunk::<5>() else {
            return (None, None);
        };
        body = rest;
    }
    match body.len().checked_sub(pad) {
        Some(end) => (body.get(..end), promised),
        None => (None, promised),
    }
}

impl ConnectionParser for Http2Connection {
    fn push(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        ts_ns: u64,
        out: &mut Vec<Exchange>,
        stats: &mut ProtocolStats,
    ) -> Result<(), ProtocolError> {
        self.push_bytes(direction, bytes, ts_ns, out, &mut stats.h2);
        Ok(())
    }

    fn gap(&mut self, direction: Direction, _len: u64, _stats: &mut ProtocolStats) -> bool {
        self.lose(direction);
        false
    }

    fn close(&mut self, out: &mut Vec<Exchange>, _stats: &mut ProtocolStats) {
        self.streams.finish_all(out);
    }

    fn role_hint(&self) -> Option<Role> {
        let client = self.preface_direction.or(self.streams.request_direction)?;
        Some(match client {
            Direction::Egress => Role::Client,
            Direction::Ingress => Role::Server,
        })
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
