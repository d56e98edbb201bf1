//! Incremental HTTP/1.x parser for one direction of a connection.
//!
//! Heads are parsed with httparse; bodies are framed here (Content-Length, chunked via
//! httparse::parse_chunk_size, close-delimited) and never buffered whole: only a bounded prefix
//! is kept. Gaps in the captured stream are absorbed when the framing says how long the current
//! body is, otherwise the parser drops the message and resynchronises on the next record.

use super::byte_queue::ByteQueue;
use super::head_parse::{find, parse_request, parse_response, switches_to_h2};
pub use crate::protocol::head::{Head, StartLine};
pub use crate::protocol::message::BodySummary;

/// Headers beyond this count make the head an error (httparse needs a fixed array).
const MAX_HEADERS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest head (request/status line + headers) accepted, in bytes.
    pub max_head_bytes: usize,
    /// Bytes of each body kept for the event.
    pub body_prefix_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 64 * 1024,
            body_prefix_bytes: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Unknown,
    Requests,
    Responses,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseEvent {
    Head(Head),
    Complete(BodySummary),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("malformed HTTP head: {0}")]
    Head(String),
    #[error("HTTP head exceeds {0} bytes")]
    HeadTooLarge(usize),
    #[error("invalid Content-Length {0:?}")]
    ContentLength(String),
    #[error("malformed chunked body")]
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    Chunked(ChunkState),
    UntilClose,
    /// Lost track of message boundaries; wait for the next record to start afresh.
    Desynced,
    /// A `101 Switching Protocols` to HTTP/2 (`Upgrade: h2c`): what follows is not HTTP/1;
    /// the bytes are kept for the HTTP/2 parser ([`StreamParser::take_switched`]).
    SwitchedToH2,
}

#[derive(Debug)]
pub struct StreamParser {
    kind: StreamKind,
    state: State,
    buf: ByteQueue,
    body: BodySummary,
    head_start_ns: Option<u64>,
    last_ns: u64,
    limits: Limits,
}

impl StreamParser {
    pub fn new(limits: Limits) -> Self {
        Self {
            kind: StreamKind::Unknown,
            state: State::Head,
            buf: ByteQueue::default(),
            body: BodySummary::default(),
            head_start_ns: None,
            last_ns: 0,
            limits,
        }
    }

    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    pub fn switched(&self) -> bool {
        self.state == State::SwitchedToH2
    }

    /// After a `101` to h2c: the bytes that followed it (then the parser is spent).
    pub fn take_switched(&mut self) -> Option<Vec<u8>> {
        if self.state != State::SwitchedToH2 {
            return None;
        }
        let rest = self.buf.as_slice().to_vec();
        self.buf.clear();
        Some(rest)
    }

    /// Bytes queued, unparsed (the other direction of a switched connection).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.buf.as_slice().to_vec();
        self.buf.clear();
        rest
    }

    /// Bytes waiting to be parsed (bounded by the head limit plus one record).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True while a message is partly parsed.
    pub fn mid_message(&self) -> bool {
        !matches!(self.state, State::Head | State::Desynced) || !self.buf.is_empty()
    }

    /// Queues a record's bytes for [`Self::poll`]. The live path reads records in place
    /// instead ([`Self::begin`], [`Self::poll_input`]); this one buffers everything and gives the
    /// same events (tests and fuzz targets check both).
    pub fn push(&mut self, data: &[u8], ts_ns: u64) {
        self.begin(ts_ns);
        let mut data = data;
        self.body_in_place(&mut data);
        if self.state == State::Head && self.buf.is_empty() && !data.is_empty() {
            self.head_start_ns = Some(ts_ns);
        }
        self.buf.extend(data);
    }

    /// A record captured at `ts_ns` is about to be read.
    pub fn begin(&mut self, ts_ns: u64) {
        if self.state == State::Desynced {
            // A new record is the best guess for a message start after lost bytes.
            self.state = State::Head;
            self.buf.clear();
            self.head_start_ns = None;
        }
        self.last_ns = ts_ns;
    }

    /// [`Self::poll`] over the buffered bytes followed by `input` (the rest of the record
    /// being read), reading `input` in place where nothing is buffered: a head is parsed
    /// straight from the record and body bytes go to the summary, so a response's body is not
    /// copied into the buffer first. What cannot be read yet (a partial head or chunk line)
    /// is buffered. `input` is advanced past what was used.
    pub fn poll_input(
        &mut self,
        request_method: Option<&str>,
        input: &mut &[u8],
    ) -> Result<Option<ParseEvent>, ParseError> {
        if !input.is_empty() && self.buf.is_empty() {
            self.body_in_place(input);
            if self.state == State::Length(0) {
                // The body is complete; what follows (a pipelined message) is read next call.
                return self.poll(request_method);
            }
            if self.state == State::Head && !input.is_empty() {
                if self.head_start_ns.is_none() {
                    self.head_start_ns = Some(self.last_ns);
                }
                match self.head_from(input, request_method) {
                    Ok(Some((event, used))) => {
                        *input = input.get(used..).unwrap_or_default();
                        return Ok(Some(event));
                    }
                    Ok(None) => {
                        // A partial head waits for the rest of its bytes; parsing it again
                        // from the buffer now would only say the same.
                        self.buf.extend(input);
                        *input = &[];
                        return Ok(None);
                    }
                    Err(e) => {
                        self.desync();
                        return Err(e);
                    }
                }
            }
        }
        if input.is_empty() && self.buf.is_empty() && self.state == State::Head {
            // Between messages with the record used up: the common end of a drive.
            return Ok(None);
        }
        // A partial head or chunk line, a body after buffered bytes, a switched or desynced
        // stream: the bytes wait in the buffer, as pushed ones do.
        self.buf.extend(input);
        *input = &[];
        self.poll(request_method)
    }

    /// Buffers bytes of a record that [`Self::poll_input`] was not asked to read.
    pub fn keep(&mut self, input: &[u8]) {
        self.buf.extend(input);
    }

    /// Bytes of a body of known length (or up to close) at the front of `data` go straight to
    /// the summary when nothing is buffered: bodies dominate the volume and are never buffered.
    #[inline]
    fn body_in_place(&mut self, data: &mut &[u8]) {
        if !self.buf.is_empty() {
            return;
        }
        let rem = match self.state {
            State::Length(rem) | State::Chunked(ChunkState::Data(rem)) => rem,
            State::UntilClose => u64::MAX,
            _ => 0,
        };
        let n = (data.len() as u64).min(rem) as usize;
        if let (true, Some(body), Some(rest)) = (n > 0, data.get(..n), data.get(n..)) {
            self.consume_body(body);
            let left = rem - n as u64;
            match &mut self.state {
                State::Length(r) | State::Chunked(ChunkState::Data(r)) => *r = left,
                _ => {}
            }
            *data = rest;
        }
    }

    fn consume_body(&mut self, bytes: &[u8]) {
        if let Some(grpc) = self.body.grpc.as_mut() {
            grpc.push(bytes);
        }
        let room = self
            .limits
            .body_prefix_bytes
            .saturating_sub(self.body.prefix.len());
        self.body
            .prefix
            .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        self.body.size = self.body.size.saturating_add(bytes.len() as u64);
    }

    /// `missing` bytes of the stream were not captured. Returns true if the parser stayed in
    /// sync (the bytes fell inside a body of known length); false if it had to give up the
    /// current message.
    pub fn gap(&mut self, missing: u64) -> bool {
        if !self.buf.is_empty() {
            // Bytes after a partial head or chunk line: the framing is unknowable.
            self.desync();
            return false;
        }
        match self.state {
            State::Length(rem) if missing <= rem => {
                self.state = State::Length(rem - missing);
                self.absorb_missing(missing);
                true
            }
            State::Chunked(ChunkState::Data(rem)) if missing <= rem => {
                self.state = State::Chunked(ChunkState::Data(rem - missing));
                self.absorb_missing(missing);
                true
            }
            State::UntilClose => {
                self.absorb_missing(missing);
                true
            }
            _ => {
                self.desync();
                false
            }
        }
    }

    fn absorb_missing(&mut self, missing: u64) {
        self.body.size = self.body.size.saturating_add(missing);
        self.body.missing_bytes = self.body.missing_bytes.saturating_add(missing);
    }

    fn desync(&mut self) {
        self.state = State::Desynced;
        self.buf.clear();
        self.body = BodySummary::default();
        self.head_start_ns = None;
    }

    /// The stream ended: completes a close-delimited body. Returns `Some` for such a body.
    pub fn finish(&mut self) -> Option<BodySummary> {
        if self.state == State::UntilClose {
            self.state = State::Head;
            let mut body = std::mem::take(&mut self.body);
            body.end_ns = self.last_ns;
            return Some(body);
        }
        None
    }

    /// Parses at most one event. `request_method` is the method of the request the next response
    /// answers (only used on response streams; HEAD responses have no body).
    pub fn poll(&mut self, request_method: Option<&str>) -> Result<Option<ParseEvent>, ParseError> {
        let result = self.poll_inner(request_method);
        if result.is_err() {
            self.desync();
        }
        result
    }

    fn poll_inner(
        &mut self,
        request_method: Option<&str>,
    ) -> Result<Option<ParseEvent>, ParseError> {
        loop {
            match self.state {
                State::Desynced | State::SwitchedToH2 => return Ok(None),
                State::Head => return self.parse_head(request_method),
                State::Length(rem) => {
                    let took = self.take_body(rem);
                    let rem = rem - took;
                    self.state = State::Length(rem);
                    if rem == 0 {
                        return Ok(Some(self.complete()));
                    }
                    return Ok(None);
                }
                State::UntilClose => {
                    self.take_body(u64::MAX);
                    return Ok(None);
                }
                State::Chunked(chunk) => {
                    if let Some(event) = self.step_chunked(chunk)? {
                        return Ok(Some(event));
                    }
                    if self.buf.is_empty() || matches!(self.state, State::Chunked(s) if s == chunk)
                    {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn complete(&mut self) -> ParseEvent {
        self.state = State::Head;
        let mut body = std::mem::take(&mut self.body);
        body.end_ns = self.last_ns;
        self.head_start_ns = if self.buf.is_empty() {
            None
        } else {
            Some(self.last_ns)
        };
        ParseEvent::Complete(body)
    }

    /// Moves up to `max` buffered bytes into the body summary; returns how many.
    fn take_body(&mut self, max: u64) -> u64 {
        let n = (self.buf.len() as u64).min(max) as usize;
        let room = self
            .limits
            .body_prefix_bytes
            .saturating_sub(self.body.prefix.len());
        self.body
            .prefix
            .extend_from_slice(self.buf.as_slice().get(..room.min(n)).unwrap_or_default());
        if let Some(grpc) = self.body.grpc.as_mut() {
            grpc.push(self.buf.as_slice().get(..n).unwrap_or_default());
        }
        self.buf.consume(n);
        self.body.size = self.body.size.saturating_add(n as u64);
        n as u64
    }

    fn step_chunked(&mut self, chunk: ChunkState) -> Result<Option<ParseEvent>, ParseError> {
        match chunk {
            ChunkState::Size => {
                let bytes = self.contiguous_prefix(self.limits.max_head_bytes.min(1024));
                match httparse::parse_chunk_size(&bytes) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.buf.consume(used);
                        self.state = State::Chunked(if size == 0 {
                            ChunkState::Trailers
                        } else {
                            ChunkState::Data(size)
                        });
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.buf.len() >= 1024 {
                            return Err(ParseError::Chunked);
                        }
                    }
                    Err(_) => return Err(ParseError::Chunked),
                }
            }
            ChunkState::Data(rem) => {
                let took = self.take_body(rem);
                self.state = State::Chunked(if took == rem {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(rem - took)
                });
            }
            ChunkState::DataEnd => {
                if self.buf.len() >= 2 {
                    if !self.buf.as_slice().starts_with(b"\r\n") {
                        return Err(ParseError::Chunked);
                    }
                    self.buf.consume(2);
                    self.state = State::Chunked(ChunkState::Size);
                }
            }
            ChunkState::Trailers => {
                // Trailer section ends with an empty line; trailers themselves are not reported.
                let bytes = self.contiguous_prefix(self.limits.max_head_bytes);
                if bytes.starts_with(b"\r\n") {
                    self.buf.consume(2);
                    return Ok(Some(self.complete()));
                }
                if let Some(pos) = find(&bytes, b"\r\n\r\n") {
                    self.buf.consume(pos + 4);
                    return Ok(Some(self.complete()));
                }
                if self.buf.len() > self.limits.max_head_bytes {
                    return Err(ParseError::HeadTooLarge(self.limits.max_head_bytes));
                }
            }
        }
        Ok(None)
    }

    fn contiguous_prefix(&mut self, max: usize) -> Vec<u8> {
        let n = self.buf.len().min(max);
        self.buf.as_slice().get(..n).unwrap_or_default().to_vec()
    }

    fn parse_head(
        &mut self,
        request_method: Option<&str>,
    ) -> Result<Option<ParseEvent>, ParseError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        // Taken out for the parse (a move, not a copy): the head is read from it while the
        // parser's other fields change.
        let buf = std::mem::take(&mut self.buf);
        let parsed = self.head_from(buf.as_slice(), request_method);
        self.buf = buf;
        let Some((event, used)) = parsed? else {
            return Ok(None);
        };
        self.buf.consume(used);
        Ok(Some(event))
    }

    /// The head at the start of `bytes` and how many bytes it used; None while incomplete.
    fn head_from(
        &mut self,
        bytes: &[u8],
        request_method: Option<&str>,
    ) -> Result<Option<(ParseEvent, usize)>, ParseError> {
        if bytes.is_empty() {
            return Ok(None);
        }
        if self.kind == StreamKind::Unknown {
            let probe = bytes.get(..bytes.len().min(5)).unwrap_or_default();
            if b"HTTP/".starts_with(probe) && probe.len() < 5 {
                return Ok(None);
            }
            self.kind = if probe == b"HTTP/" {
                StreamKind::Responses
            } else {
                StreamKind::Requests
            };
        }
        // Uninitialised slots: httparse writes only those it fills, so a head costs no 4 KiB
        // memset of 128 empty headers (seen in the agent's profile under load).
        let mut headers =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let parsed = match self.kind {
            StreamKind::Responses => parse_response(bytes, &mut headers),
            _ => parse_request(bytes, &mut headers),
        };
        let (head, used) = match parsed {
            Ok(Some(head)) => head,
            Ok(None) => {
                if bytes.len() > self.limits.max_head_bytes {
                    return Err(ParseError::HeadTooLarge(self.limits.max_head_bytes));
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let head = head.with_times(self.head_start_ns.unwrap_or(self.last_ns), self.last_ns);
        self.body = BodySummary::default();
        if head
            .header("content-type")
            .is_some_and(crate::protocol::h2::grpc::is_grpc)
        {
            // gRPC-Web: its messages are counted as the body streams by.
            self.body.grpc = Some(Box::default());
        }
        self.state = if switches_to_h2(&head) {
            State::SwitchedToH2
        } else {
            self.body_state(&head, request_method)?
        };
        Ok(Some((ParseEvent::Head(head), used)))
    }

    fn body_state(&self, head: &Head, request_method: Option<&str>) -> Result<State, ParseError> {
        if let StartLine::Response { status, .. } = head.start {
            let no_body = (100..200).contains(&status)
                || status == 204
                || status == 304
                || request_method.is_some_and(|m| m.eq_ignore_ascii_case("HEAD"));
            if no_body {
                return Ok(State::Length(0));
            }
        }
        let chunked = head
            .raw_headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .last()
            .is_some_and(|last| last.eq_ignore_ascii_case(b"chunked"));
        if chunked {
            return Ok(State::Chunked(ChunkState::Size));
        }
        let mut length: Option<u64> = None;
        for (_, value) in head
            .raw_headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))
        {
            let shown = || String::from_utf8_lossy(value).into_owned();
            // Repeated identical values are tolerated (RFC 9112 §6.3); differing ones are not.
            for part in value.split(|&b| b == b',') {
                let n: u64 = std::str::from_utf8(part.trim_ascii())
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| ParseError::ContentLength(shown()))?;
                if length.is_some_and(|l| l != n) {
                    return Err(ParseError::ContentLength(shown()));
                }
                length = Some(n);
            }
        }
        Ok(match (length, &head.start) {
            (Some(n), _) => State::Length(n),
            (None, StartLine::Request { .. }) => State::Length(0),
            (None, StartLine::Response { .. }) => State::UntilClose,
        })
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
