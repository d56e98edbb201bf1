//! A parsed HTTP/1 message head, stored as its raw bytes plus offsets: one allocation for the
//! bytes and one for the header index, whatever the number of headers (per-header Strings were
//! the pipeline's largest cost).

use std::ops::Range;

/// Byte range within [`Head::raw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Span, target: Span },
    Response { status: u16, reason: Span },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    raw: Box<[u8]>,
    pub start: StartLine,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// (name, value) spans, in order of appearance.
    headers: Vec<(Span, Span)>,
    /// Timestamp of the record in which the head began.
    pub start_ns: u64,
    /// Timestamp of the record that completed the head.
    pub end_ns: u64,
}

/// Builds spans from httparse's borrowed slices, which all point into the parsed buffer.
pub struct HeadBuilder<'a> {
    base: &'a [u8],
}

impl<'a> HeadBuilder<'a> {
    pub fn new(base: &'a [u8]) -> Self {
        Self { base }
    }

    /// The span of `part`, which must be a sub-slice of the buffer (httparse guarantees it);
    /// anything else yields an empty span rather than a panic.
    pub fn span(&self, part: &[u8]) -> Span {
        let base = self.base.as_ptr() as usize;
        let at = part.as_ptr() as usize;
        match at.checked_sub(base) {
            Some(start) if start + part.len() <= self.base.len() => Span {
                start: start as u32,
                end: (start + part.len()) as u32,
            },
            _ => Span::default(),
        }
    }

    pub fn finish(
        self,
        used: usize,
        start: StartLine,
        version: u8,
        headers: &[httparse::Header<'_>],
    ) -> Head {
        let headers = headers
            .iter()
            .map(|h| (self.span(h.name.as_bytes()), self.span(h.value)))
            .collect();
        Head {
            raw: self.base.get(..used).unwrap_or(self.base).into(),
            start,
            version,
            headers,
            start_ns: 0,
            end_ns: 0,
        }
    }
}

impl Head {
    fn text(&self, span: Span) -> &str {
        // Method, target, reason and header names are ASCII after httparse; lossy is not
        // needed, and invalid bytes (impossible) degrade to "".
        self.raw
            .get(span.range())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    fn bytes(&self, span: Span) -> &[u8] {
        self.raw.get(span.range()).unwrap_or(&[])
    }

    pub fn method(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method, .. } => Some(self.text(method)),
            StartLine::Response { .. } => None,
        }
    }

    pub fn target(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { target, .. } => Some(self.text(target)),
            StartLine::Response { .. } => None,
        }
    }

    /// The request target as sent (it may hold any byte httparse lets through).
    pub fn target_bytes(&self) -> Option<&[u8]> {
        match self.start {
            StartLine::Request { target, .. } => Some(self.bytes(target)),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { status, .. } => Some(status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.text(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// Headers in order: name as sent, raw value bytes.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .map(|&(n, v)| (self.text(n), self.bytes(v)))
    }

    /// Headers as raw bytes, without UTF-8 validation: for framing decisions on every message.
    pub fn raw_headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|&(n, v)| (self.bytes(n), self.bytes(v)))
    }

    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// First value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn with_times(mut self, start_ns: u64, end_ns: u64) -> Self {
        self.start_ns = start_ns;
        self.end_ns = end_ns;
        self
    }
}
