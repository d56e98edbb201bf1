//! httparse over one HTTP/1.x head, into the owned [`Head`] the rest of the agent reads.

use crate::protocol::head::{Head, HeadBuilder, HttpVersion, StartLine};

use super::stream::ParseError;

/// The head and the bytes it used.
pub(crate) type ParsedHead = (Head, usize);

/// `101 Switching Protocols` with `Upgrade: h2c` (RFC 7540 §3.2).
pub(super) fn switches_to_h2(head: &Head) -> bool {
    head.status() == Some(101)
        && head
            .header("upgrade")
            .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"h2c"))
}

// `#[inline]`: once visible outside this module (head.rs's tests use it) the compiler stopped
// inlining these into the parser's head step, +150 instructions per exchange under callgrind.
#[inline]
pub(crate) fn parse_request<'b>(
    bytes: &'b [u8],
    headers: &mut [std::mem::MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<ParsedHead>, ParseError> {
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(bytes, headers) {
        Ok(httparse::Status::Complete(used)) => {
            let b = HeadBuilder::new(bytes);
            let start = StartLine::Request {
                method: b.span(req.method.unwrap_or_default().as_bytes()),
                target: b.span(req.path.unwrap_or_default().as_bytes()),
            };
            let version = match req.version {
                Some(0) => HttpVersion::Http10,
                _ => HttpVersion::Http11,
            };
            Ok(Some((b.finish(used, start, version, req.headers), used)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(ParseError::Head(e.to_string())),
    }
}

#[inline]
pub(super) fn parse_response<'b>(
    bytes: &'b [u8],
    headers: &mut [std::mem::MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<ParsedHead>, ParseError> {
    let mut res = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, bytes, headers)
    {
        Ok(httparse::Status::Complete(used)) => {
            let b = HeadBuilder::new(bytes);
            let start = StartLine::Response {
                status: res.code.unwrap_or_default(),
                reason: b.span(res.reason.unwrap_or_default().as_bytes()),
            };
            let version = match res.version {
                Some(0) => HttpVersion::Http10,
                _ => HttpVersion::Http11,
            };
            Ok(Some((b.finish(used, start, version, res.headers), used)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(ParseError::Head(e.to_string())),
    }
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
