//! gRPC over HTTP/2 (and the stream-level facts gRPC-Web shares): the call named by `:path`,
//! the status from trailers (or a Trailers-Only reply), and length-prefixed messages counted
//! per direction as DATA arrives, whatever the frame boundaries.

/// One call's summary, as the event's `grpc` object carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcCall {
    pub service: String,
    pub method: String,
    pub status_code: Option<u32>,
    /// `grpc-message`, percent-decoded (lossy UTF-8).
    pub message: Option<String>,
    /// `grpc-encoding` of the request (per-message compression), when sent.
    pub encoding: Option<String>,
    pub request_messages: u64,
    pub response_messages: u64,
    /// Messages with the compressed flag set, both directions.
    pub compressed_messages: u64,
}

/// The canonical name of a status code (grpc/doc/statuscodes.md).
pub fn status_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// The gRPC status a client reports for a stream reset with this HTTP/2 error code
/// (grpc/doc/PROTOCOL-HTTP2.md, "Errors").
pub fn status_of_reset(error_code: u32) -> u32 {
    match error_code {
        0x7 => 14, // REFUSED_STREAM → UNAVAILABLE
        0x8 => 1,  // CANCEL → CANCELLED
        0xb => 8,  // ENHANCE_YOUR_CALM → RESOURCE_EXHAUSTED
        0xc => 7,  // INADEQUATE_SECURITY → PERMISSION_DENIED
        _ => 13,   // every other code → INTERNAL
    }
}

/// `application/grpc…` (gRPC, gRPC-Web), but not `application/grpc-web-text`, whose body is
/// base64 and is not decoded.
pub fn is_grpc(content_type: &[u8]) -> bool {
    let ct = content_type.trim_ascii();
    let text = b"application/grpc-web-text";
    ct.len() >= 16
        && ct
            .get(..16)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"application/grpc"))
        && !ct
            .get(..text.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(text))
}

/// A gRPC-Web call carried by HTTP/1.1: the call from the request line, the status from the
/// response headers (Trailers-Only) or from the trailer frame in the body, the messages as
/// the HTTP/1 parser counted them while the bodies streamed by.
pub fn call_over_http1(
    request: &crate::protocol::Message,
    response: Option<&crate::protocol::Message>,
) -> GrpcCall {
    let target = request.head.target().unwrap_or_default();
    let path = target.split('?').next().unwrap_or(target);
    let (service, method) = call_of(path);
    let counter = |m: Option<&crate::protocol::Message>| {
        m.and_then(|m| m.body.as_ref())
            .and_then(|b| b.grpc.as_deref())
            .cloned()
            .unwrap_or_default()
    };
    let (sent, received) = (counter(Some(request)), counter(response));
    let header = |name: &str| response.and_then(|r| r.head.header(name));
    let (mut status_code, mut message) = (
        header("grpc-status")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse().ok()),
        header("grpc-message").map(decode_message),
    );
    if status_code.is_none() && !received.web_trailers.is_empty() {
        (status_code, message) = {
            let (s, m) = web_trailers(&received.web_trailers);
            (s, message.or(m))
        };
    }
    GrpcCall {
        service,
        method,
        status_code,
        message,
        encoding: request
            .head
            .header("grpc-encoding")
            .map(|e| String::from_utf8_lossy(e).into_owned()),
        request_messages: sent.messages,
        response_messages: received.messages,
        compressed_messages: sent.compressed + received.compressed,
    }
}

/// `/package.Service/Method` → (service, method); anything else keeps the path as service.
pub fn call_of(path: &str) -> (String, String) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    match trimmed.split_once('/') {
        Some((service, method)) if !method.contains('/') => (service.into(), method.into()),
        _ => (trimmed.into(), String::new()),
    }
}

/// `grpc-message` is percent-encoded (PROTOCOL-HTTP2.md).
pub fn decode_message(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let hex = |at: usize| raw.get(at).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// gRPC-Web sends its trailers in the body, as a frame whose flag has bit 7 set.
const WEB_TRAILERS_FLAG: u8 = 0x80;
/// Bytes of a gRPC-Web trailer frame kept (status and message fit many times over).
const WEB_TRAILERS_KEPT: usize = 512;

/// Walks the 5-byte message prefixes (flag, big-endian length) of one direction's DATA.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessageCounter {
    /// Bytes of the current message's prefix seen so far, and the prefix.
    prefix_seen: u8,
    prefix: [u8; 5],
    /// Body bytes of the current message still to come.
    remaining: u64,
    pub messages: u64,
    pub compressed: u64,
    /// Inside a gRPC-Web trailer frame: its bytes are kept, not counted as a message.
    in_trailers: bool,
    pub web_trailers: Vec<u8>,
}

impl MessageCounter {
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = (self.remaining.min(data.len() as u64)) as usize;
                if self.in_trailers {
                    let room = WEB_TRAILERS_KEPT.saturating_sub(self.web_trailers.len());
                    self.web_trailers
                        .extend_from_slice(data.get(..take.min(room)).unwrap_or_default());
                }
                self.remaining -= take as u64;
                data = data.get(take..).unwrap_or_default();
                continue;
            }
            let Some((&byte, rest)) = data.split_first() else {
                break;
            };
            data = rest;
            if let Some(slot) = self.prefix.get_mut(self.prefix_seen as usize) {
                *slot = byte;
            }
            self.prefix_seen += 1;
            if self.prefix_seen == 5 {
                self.prefix_seen = 0;
                self.in_trailers = self.prefix[0] & WEB_TRAILERS_FLAG != 0;
                if !self.in_trailers {
                    self.messages += 1;
                    if self.prefix[0] & 1 != 0 {
                        self.compressed += 1;
                    }
                }
                self.remaining = u64::from(u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]));
            }
        }
    }

    /// Bytes of this direction were lost: the message boundaries are no longer known.
    pub fn lost(&mut self) {
        *self = Self {
            messages: self.messages,
            compressed: self.compressed,
            // Unknowable from here: stop counting rather than count garbage.
            remaining: u64::MAX,
            web_trailers: std::mem::take(&mut self.web_trailers),
            ..Self::default()
        };
    }
}

/// `grpc-status` and `grpc-message` from a gRPC-Web trailer frame (`name:value\r\n` lines).
pub fn web_trailers(block: &[u8]) -> (Option<u32>, Option<String>) {
    let (mut status, mut message) = (None, None);
    for line in block.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        if name.trim_ascii().eq_ignore_ascii_case(b"grpc-status") {
            status = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        } else if name.trim_ascii().eq_ignore_ascii_case(b"grpc-message") {
            message = Some(decode_message(value));
        }
    }
    (status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_messages_across_splits() {
        let mut c = MessageCounter::default();
        let mut wire = vec![0, 0, 0, 0, 3, b'a', b'b', b'c'];
        wire.extend([1, 0, 0, 0, 0]);
        wire.extend([0, 0, 0, 0, 2, b'x', b'y']);
        for chunk in wire.chunks(3) {
            c.push(chunk);
        }
        assert_eq!((c.messages, c.compressed), (3, 1));
    }

    #[test]
    fn names_and_paths() {
        assert_eq!(
            call_of("/helloworld.Greeter/SayHello"),
            ("helloworld.Greeter".into(), "SayHello".into())
        );
        assert_eq!(status_name(5), "NOT_FOUND");
        assert_eq!(status_of_reset(0x8), 1);
        assert!(is_grpc(b"application/grpc+proto"));
        assert!(!is_grpc(b"application/json"));
        assert_eq!(decode_message(b"no%20such%20user%2"), "no such user%2");
    }

    #[test]
    fn grpc_web_trailers_in_the_body() {
        let mut c = MessageCounter::default();
        let mut body = vec![0, 0, 0, 0, 2, 8, 1];
        let trailers = b"grpc-status:7\r\ngrpc-message:tenant%20mismatch\r\n";
        body.push(0x80);
        body.extend((trailers.len() as u32).to_be_bytes());
        body.extend(trailers);
        for chunk in body.chunks(4) {
            c.push(chunk);
        }
        assert_eq!(c.messages, 1);
        assert_eq!(
            web_trailers(&c.web_trailers),
            (Some(7), Some("tenant mismatch".into()))
        );
    }
}
