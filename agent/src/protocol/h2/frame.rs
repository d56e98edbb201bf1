//! HTTP/2 framing (RFC 9113 §4): the 9-byte frame header, the rules a header must satisfy to be
//! taken for one, and the client connection preface. Nothing here trusts a length: frames are
//! read from a per-direction queue only once complete, and anything longer than the largest
//! frame the protocol allows is a lost position, never an allocation.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const HEADER_LEN: usize = 9;

/// The protocol's ceiling (2^24 - 1); peers negotiate less, but the agent never saw the
/// SETTINGS of a connection it joined late.
pub const MAX_FRAME_LEN: u32 = (1 << 24) - 1;

/// SETTINGS_MAX_FRAME_SIZE's initial value (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME_LEN: u32 = 1 << 14;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// The reserved high bit is cleared.
    pub stream: u32,
}

impl FrameHeader {
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Self {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    /// Whether this header obeys the per-type rules of RFC 9113 §6 (length, stream id, flags):
    /// what re-synchronisation and recognition by shape rely on. Unknown types are plausible
    /// only when `allow_unknown` (extensions exist, but a random byte is more likely).
    pub fn plausible(&self, raw_reserved_bit: bool, allow_unknown: bool) -> bool {
        if raw_reserved_bit || self.len > MAX_FRAME_LEN {
            return false;
        }
        let on_stream = self.stream != 0;
        let flags_within = |allowed: u8| self.flags & !allowed == 0;
        match self.kind {
            DATA => on_stream && flags_within(END_STREAM | PADDED),
            HEADERS => on_stream && flags_within(END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG),
            PRIORITY => on_stream && self.len == 5 && self.flags == 0,
            RST_STREAM => on_stream && self.len == 4 && self.flags == 0,
            SETTINGS => !on_stream && self.len.is_multiple_of(6) && flags_within(ACK),
            PUSH_PROMISE => on_stream && flags_within(END_HEADERS | PADDED),
            PING => !on_stream && self.len == 8 && flags_within(ACK),
            GOAWAY => !on_stream && self.len >= 8 && self.flags == 0,
            WINDOW_UPDATE => self.len == 4 && self.flags == 0,
            CONTINUATION => on_stream && flags_within(END_HEADERS),
            // Extension frames are small; a long one is far more likely misread bytes (the
            // preface of a new connection under a reused key reads as a 5 MiB frame).
            _ => allow_unknown && self.len <= DEFAULT_MAX_FRAME_LEN,
        }
    }
}

/// Whether the frame header at the start of `bytes` has its reserved stream-id bit set.
pub fn reserved_bit(bytes: &[u8]) -> bool {
    bytes.get(5).is_some_and(|b| b & 0x80 != 0)
}

/// How `bytes` (the first bytes of a record) start: the preface, a run of plausible frames,
/// or neither. A record is one TLS read or write, and HTTP/2 implementations write whole
/// frames, so a connection joined late still shows frame boundaries at record starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The preface, or as much of it as the bytes hold.
    Preface,
    /// At least one complete plausible frame of a known type, and every frame header within
    /// the bytes plausible.
    Frames,
    NotHttp2,
}

pub fn shape(bytes: &[u8]) -> Shape {
    if bytes.is_empty() {
        return Shape::NotHttp2;
    }
    let n = bytes.len().min(PREFACE.len());
    if bytes.get(..n) == PREFACE.get(..n) && n >= 4 {
        return Shape::Preface;
    }
    let mut at = 0usize;
    let mut complete = 0usize;
    // A few headers are enough; a record of many frames is not walked to its end.
    for _ in 0..8 {
        let rest = bytes.get(at..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        let Some(header) = FrameHeader::parse(rest) else {
            // A trailing partial header: no evidence either way.
            break;
        };
        if !header.plausible(reserved_bit(rest), false) {
            return Shape::NotHttp2;
        }
        at = at.saturating_add(HEADER_LEN + header.len as usize);
        if at <= bytes.len() {
            complete += 1;
        }
    }
    if complete >= 1 {
        Shape::Frames
    } else {
        Shape::NotHttp2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend([kind, flags]);
        out.extend(stream.to_be_bytes());
        out.extend(payload);
        out
    }

    #[test]
    fn shapes() {
        assert_eq!(shape(PREFACE), Shape::Preface);
        assert_eq!(shape(b"PRI * HT"), Shape::Preface);
        assert_eq!(shape(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Shape::NotHttp2);
        assert_eq!(shape(b"HTTP/1.1 200 OK\r\n\r\n"), Shape::NotHttp2);
        let settings = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
        assert_eq!(shape(&settings), Shape::Frames);
        let mut two = frame(HEADERS, END_HEADERS, 1, b"\x82\x84");
        two.extend(frame(DATA, END_STREAM, 1, b"hello"));
        assert_eq!(shape(&two), Shape::Frames);
        // SETTINGS on a stream, PING of the wrong length: not frames.
        assert_eq!(shape(&frame(SETTINGS, 0, 1, &[])), Shape::NotHttp2);
        assert_eq!(shape(&frame(PING, 0, 0, &[0; 7])), Shape::NotHttp2);
        // A TLS record header is not a frame.
        assert_eq!(
            shape(&[0x17, 0x03, 0x03, 0x00, 0x20, 0, 0, 0, 0, 0]),
            Shape::NotHttp2
        );
    }

    #[test]
    fn reserved_bit_masked_and_reported() {
        let f = frame(DATA, 0, 0x8000_0001, b"");
        let h = FrameHeader::parse(&f).expect("header");
        assert_eq!(h.stream, 1);
        assert!(reserved_bit(&f));
        assert!(!h.plausible(true, true));
    }
}
