//! A parsed message head, stored as its raw bytes plus offsets: one allocation for the bytes
//! and one for the header index, whatever the number of headers (per-header Strings were the
//! pipeline's largest cost). HTTP/1 heads keep the bytes as sent but for the names; HTTP/2 heads are written
//! from the decoded header list ([`Head::from_fields`]), pseudo-headers becoming the start
//! line.

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

/// HTTP version of one message. Only what the parsers produce is representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HttpVersion {
    #[serde(rename = "HTTP/1.0")]
    Http10,
    #[serde(rename = "HTTP/1.1")]
    Http11,
    #[serde(rename = "HTTP/2")]
    Http2,
}

impl HttpVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2",
        }
    }

    /// The number alone (`1.1`), as ECS and OCSF want it.
    pub fn number(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "1.0",
            HttpVersion::Http11 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }
}

/// The start of an HTTP/2 head, from its pseudo-headers.
#[derive(Debug, Clone, Copy)]
pub enum FieldStart<'a> {
    Request { method: &'a [u8], target: &'a [u8] },
    Response { status: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Span, target: Span },
    Response { status: u16, reason: Span },
}

/// A head's bytes, checked as UTF-8 once when the head is made: nearly every head is, and then
/// each name, value and start-line part is sliced as text without a check of its own (those
/// per-part checks were ~5 % of the instructions per exchange).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Raw {
    Text(Box<str>),
    Bytes(Box<[u8]>),
}

impl Raw {
    fn new(bytes: Vec<u8>) -> Raw {
        match String::from_utf8(bytes) {
            Ok(text) => Raw::Text(text.into_boxed_str()),
            Err(e) => Raw::Bytes(e.into_bytes().into_boxed_slice()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Raw::Text(t) => t.as_bytes(),
            Raw::Bytes(b) => b,
        }
    }

    /// The span as text: None when it is not UTF-8 (or, impossibly, out of range).
    fn text(&self, span: Span) -> Option<&str> {
        match self {
            // Spans end at ASCII delimiters, so they fall on character boundaries; `get`
            // checks that anyway.
            Raw::Text(t) => t.get(span.range()),
            Raw::Bytes(b) => b
                .get(span.range())
                .and_then(|b| std::str::from_utf8(b).ok()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    raw: Raw,
    pub start: StartLine,
    pub version: HttpVersion,
    /// (name, value) spans, in order of appearance.
    headers: Vec<(Span, Span)>,
    /// Timestamp of the record in which the head began.
    pub start_ns: u64,
    /// Timestamp of the record that completed the head.
    pub end_ns: u64,
    /// HTTP/2: header fields HPACK could not resolve (indexed from table entries inserted
    /// before the agent attached). Left out of the head, never guessed.
    pub unresolved_fields: u32,
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// `word` with its ASCII upper-case letters lowered, eight bytes at once; other bytes (UTF-8
/// included) unchanged. Adding to the low seven bits of each byte cannot carry into the next.
fn lower_word(word: u64) -> u64 {
    let seven = word & !HIGH_BITS;
    let at_least_a = seven + LOW_BITS * u64::from(0x80 - b'A');
    let above_z = seven + LOW_BITS * u64::from(0x80 - b'Z' - 1);
    let upper = at_least_a & !above_z & !word & HIGH_BITS;
    word | (upper >> 2)
}

/// ASCII lower-casing in place, a word at a time (a byte loop was ~180 instructions per
/// header name). Lowering is idempotent, so the last word may overlap the one before it.
fn lower_ascii(bytes: &mut [u8]) {
    let n = bytes.len();
    if n < 8 {
        bytes.make_ascii_lowercase();
        return;
    }
    let mut lower_at = |at: usize| {
        if let Some(chunk) = bytes.get_mut(at..at + 8)
            && let Ok(word) = <[u8; 8]>::try_from(&*chunk)
        {
            chunk.copy_from_slice(&lower_word(u64::from_le_bytes(word)).to_le_bytes());
        }
    };
    for at in (0..n - 7).step_by(8) {
        lower_at(at);
    }
    if !n.is_multiple_of(8) {
        lower_at(n - 8);
    }
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
        version: HttpVersion,
        headers: &[httparse::Header<'_>],
    ) -> Head {
        let headers: Vec<(Span, Span)> = headers
            .iter()
            .map(|h| (self.span(h.name.as_bytes()), self.span(h.value)))
            .collect();
        let mut raw = self.base.get(..used).unwrap_or(self.base).to_vec();
        for (name, _) in &headers {
            if let Some(name) = raw.get_mut(name.range()) {
                lower_ascii(name);
            }
        }
        Head {
            raw: Raw::new(raw),
            start,
            version,
            headers,
            start_ns: 0,
            end_ns: 0,
            unresolved_fields: 0,
        }
    }
}

impl Head {
    /// An HTTP/2 head from its start and its regular (non-pseudo) fields, in order.
    pub fn from_fields<'f>(
        start: FieldStart<'_>,
        fields: impl Iterator<Item = (&'f [u8], &'f [u8])>,
        unresolved_fields: u32,
    ) -> Head {
        let mut raw = Vec::new();
        let span = |raw: &mut Vec<u8>, bytes: &[u8]| {
            let start = raw.len() as u32;
            raw.extend_from_slice(bytes);
            Span {
                start,
                end: raw.len() as u32,
            }
        };
        let start = match start {
            FieldStart::Request { method, target } => StartLine::Request {
                method: span(&mut raw, method),
                target: span(&mut raw, target),
            },
            FieldStart::Response { status } => StartLine::Response {
                status,
                reason: Span::default(),
            },
        };
        let headers = fields
            .map(|(n, v)| {
                let name = span(&mut raw, n);
                if let Some(name) = raw.get_mut(name.range()) {
                    lower_ascii(name);
                }
                (name, span(&mut raw, v))
            })
            .collect();
        Head {
            raw: Raw::new(raw),
            start,
            version: HttpVersion::Http2,
            headers,
            start_ns: 0,
            end_ns: 0,
            unresolved_fields,
        }
    }

    fn text(&self, span: Span) -> &str {
        // Method, target, reason and header names are ASCII after httparse; lossy is not
        // needed, and invalid bytes (impossible) degrade to "".
        self.raw.text(span).unwrap_or("")
    }

    fn bytes(&self, span: Span) -> &[u8] {
        self.raw.as_bytes().get(span.range()).unwrap_or(&[])
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

    /// Headers in order: name in lower case, raw value bytes.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .map(|&(n, v)| (self.text(n), self.bytes(v)))
    }

    /// Headers in order: name in lower case, raw value bytes, and the value as text when it is valid
    /// UTF-8 (known without a check of its own when the whole head is).
    pub fn headers_with_text(&self) -> impl Iterator<Item = (&str, &[u8], Option<&str>)> {
        self.headers
            .iter()
            .map(|&(n, v)| (self.text(n), self.bytes(v), self.raw.text(v)))
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
        // Compared as bytes: validating every name as UTF-8 on each lookup showed in profiles.
        self.raw_headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    pub fn with_times(mut self, start_ns: u64, end_ns: u64) -> Self {
        self.start_ns = start_ns;
        self.end_ns = end_ns;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Head {
        let mut headers = [const { std::mem::MaybeUninit::uninit() }; 16];
        match crate::protocol::h1::head_parse::parse_request(bytes, &mut headers) {
            Ok(Some((head, _))) => head,
            other => panic!("not a complete head: {other:?}"),
        }
    }

    #[test]
    fn text_of_a_utf8_head_and_of_one_with_invalid_bytes_agree_on_the_valid_parts() {
        let valid = parse("GET /café HTTP/1.1\r\nHost: a\r\nX-Name: zoë\r\n\r\n".as_bytes());
        assert!(matches!(valid.raw, Raw::Text(_)));
        assert_eq!(valid.method(), Some("GET"));
        assert_eq!(valid.target(), Some("/café"));
        let list: Vec<_> = valid.headers_with_text().collect();
        assert_eq!(
            list,
            [
                ("host", &b"a"[..], Some("a")),
                ("x-name", "zoë".as_bytes(), Some("zoë"))
            ]
        );

        // obs-text that is not UTF-8 in one value: the head keeps its bytes, the other parts
        // still read as text, that value has none.
        let invalid = parse(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Name: zo\xeb\r\n\r\n");
        assert!(matches!(invalid.raw, Raw::Bytes(_)));
        assert_eq!(invalid.method(), Some("GET"));
        assert_eq!(invalid.target(), Some("/x"));
        let list: Vec<_> = invalid.headers_with_text().collect();
        assert_eq!(
            list,
            [
                ("host", &b"a"[..], Some("a")),
                ("x-name", &b"zo\xeb"[..], None)
            ]
        );
        assert_eq!(invalid.header("x-name"), Some(&b"zo\xeb"[..]));
    }

    #[test]
    fn names_are_lowered_as_to_ascii_lowercase_lowers_them() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..40 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Every byte value, with letters and their neighbours more often.
                        if seed.is_multiple_of(3) {
                            b"@AZ[`az{"[(seed >> 8) as usize % 8]
                        } else {
                            (seed >> 16) as u8
                        }
                    })
                    .collect();
                let mut lowered = bytes.clone();
                lower_ascii(&mut lowered);
                assert_eq!(lowered, bytes.to_ascii_lowercase(), "{bytes:?}");
            }
        }
    }

    #[test]
    fn http2_heads_from_fields_read_the_same() {
        let head = Head::from_fields(
            FieldStart::Request {
                method: b"POST",
                target: b"/api",
            },
            [
                (&b"Content-Type"[..], &b"application/json"[..]),
                (b"x-bin", b"\xff"),
            ]
            .into_iter(),
            0,
        );
        assert_eq!(head.method(), Some("POST"));
        assert_eq!(head.target(), Some("/api"));
        let list: Vec<_> = head.headers_with_text().collect();
        assert_eq!(
            list,
            [
                (
                    "content-type",
                    &b"application/json"[..],
                    Some("application/json")
                ),
                ("x-bin", &b"\xff"[..], None)
            ]
        );
    }
}
