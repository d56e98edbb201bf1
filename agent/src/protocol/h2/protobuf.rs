//! Protobuf bodies without a schema: a bounded walk of the wire format (RFC-less, but
//! protobuf.dev/programming-guides/encoding) inside gRPC's length-prefixed messages. It renders
//! a body prefix for the event (`1: "alice" 2: 150 3: {1: "x"}`) and hands detection the
//! strings inside messages. A length-delimited field is a string when it is printable UTF-8,
//! else a nested message when it parses as one to its end, else bytes; nothing is guessed
//! beyond that, and a cut (the prefix ends mid-field) ends the walk with `…`.

use std::fmt::Write;

/// Nesting followed; deeper messages are shown as bytes.
const MAX_DEPTH: usize = 8;
/// Fields visited per body, all messages and depths together.
const MAX_FIELDS: usize = 512;
/// Strings handed to detection per body.
const MAX_STRINGS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The next (field number, value), or None at the end or at anything malformed or cut.
fn field<'a>(bytes: &mut &'a [u8]) -> Option<(u64, Value<'a>)> {
    let key = varint(bytes)?;
    let number = key >> 3;
    if number == 0 || number > (1 << 29) {
        return None;
    }
    let value = match key & 7 {
        0 => Value::Varint(varint(bytes)?),
        1 => {
            let (v, rest) = bytes.split_first_chunk::<8>()?;
            *bytes = rest;
            Value::Fixed64(u64::from_le_bytes(*v))
        }
        2 => {
            let len = usize::try_from(varint(bytes)?).ok()?;
            let (v, rest) = bytes.split_at_checked(len)?;
            *bytes = rest;
            Value::Bytes(v)
        }
        5 => {
            let (v, rest) = bytes.split_first_chunk::<4>()?;
            *bytes = rest;
            Value::Fixed32(u32::from_le_bytes(*v))
        }
        // Groups (3, 4) are long deprecated; 6 and 7 do not exist.
        _ => return None,
    };
    Some((number, value))
}

fn printable(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    (!text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')))
    .then_some(text)
}

/// Whether `bytes` is a whole message (every field well-formed to the end).
fn is_message(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    let mut fields = 0;
    while !rest.is_empty() {
        if field(&mut rest).is_none() || fields > MAX_FIELDS {
            return false;
        }
        fields += 1;
    }
    fields > 0
}

/// The messages of a gRPC body: (compressed, message bytes, complete).
fn messages(body: &[u8]) -> impl Iterator<Item = (bool, &[u8], bool)> {
    let mut rest = body;
    std::iter::from_fn(move || {
        let (prefix, after) = rest.split_first_chunk::<5>()?;
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        let take = len.min(after.len());
        let (message, tail) = after.split_at(take);
        rest = tail;
        Some((prefix[0] & 1 != 0, message, take == len))
    })
}

struct Walker<'o> {
    fields: usize,
    strings: Option<&'o mut Vec<(String, String)>>,
    text: Option<&'o mut String>,
    max_text: usize,
}

impl Walker<'_> {
    fn full(&self) -> bool {
        self.fields >= MAX_FIELDS || self.text.as_ref().is_some_and(|t| t.len() >= self.max_text)
    }

    fn write(&mut self, piece: std::fmt::Arguments<'_>) {
        if let Some(t) = self.text.as_mut() {
            let _ = t.write_fmt(piece);
        }
    }

    /// Walks one message; false when it ended at a malformed or cut field (already marked).
    fn message(&mut self, mut bytes: &[u8], path: &str, depth: usize) -> bool {
        let mut first = true;
        while !bytes.is_empty() && !self.full() {
            let Some((number, value)) = field(&mut bytes) else {
                self.write(format_args!("{}…", if first { "" } else { " " }));
                return false;
            };
            self.fields += 1;
            if !first {
                self.write(format_args!(" "));
            }
            first = false;
            match value {
                Value::Varint(v) => self.write(format_args!("{number}: {v}")),
                Value::Fixed64(v) => self.write(format_args!("{number}: 0x{v:016x}")),
                Value::Fixed32(v) => self.write(format_args!("{number}: 0x{v:08x}")),
                Value::Bytes(b) => {
                    let field_path = format!("{path}.{number}");
                    if let Some(text) = printable(b) {
                        self.write(format_args!("{number}: {text:?}"));
                        if let Some(s) = self.strings.as_mut()
                            && s.len() < MAX_STRINGS
                        {
                            s.push((field_path, text.to_owned()));
                        }
                    } else if depth < MAX_DEPTH && is_message(b) {
                        self.write(format_args!("{number}: {{"));
                        self.message(b, &field_path, depth + 1);
                        self.write(format_args!("}}"));
                    } else {
                        self.write(format_args!("{number}: <{} bytes>", b.len()));
                    }
                }
            }
        }
        true
    }

    fn body(&mut self, body: &[u8]) {
        for (i, (compressed, message, complete)) in messages(body).enumerate() {
            if self.full() {
                break;
            }
            if i > 0 {
                self.write(format_args!(" | "));
            }
            if compressed {
                self.write(format_args!("<compressed {} bytes>", message.len()));
                continue;
            }
            if self.message(message, "body.grpc", 0) && !complete {
                self.write(format_args!("…"));
            }
        }
    }
}

/// The strings inside the gRPC messages of a body prefix, with their field paths
/// (`body.grpc.1.2`), for the detection rules.
pub fn strings(body: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    Walker {
        fields: 0,
        strings: Some(&mut out),
        text: None,
        max_text: 0,
    }
    .body(body);
    out
}

/// The body prefix as text: messages separated by ` | `, at most about `max` bytes.
pub fn render(body: &[u8], max: usize) -> String {
    let mut text = String::new();
    Walker {
        fields: 0,
        strings: None,
        text: Some(&mut text),
        max_text: max,
    }
    .body(body);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend((message.len() as u32).to_be_bytes());
        out.extend(message);
        out
    }

    #[test]
    fn renders_and_extracts_nested_strings() {
        // {1: "alice", 2: 150, 3: {1: "' OR 1=1 --"}}
        let mut inner = vec![0x0a, 11];
        inner.extend(b"' OR 1=1 --");
        let mut msg = vec![0x0a, 5];
        msg.extend(b"alice");
        msg.extend([0x10, 0x96, 0x01, 0x1a, inner.len() as u8]);
        msg.extend(&inner);
        let mut body = grpc(&msg);
        body.extend(grpc(b"\x08\x01"));
        assert_eq!(
            render(&body, 256),
            r#"1: "alice" 2: 150 3: {1: "' OR 1=1 --"} | 1: 1"#
        );
        assert_eq!(
            strings(&body),
            vec![
                ("body.grpc.1".to_string(), "alice".to_string()),
                ("body.grpc.3.1".to_string(), "' OR 1=1 --".to_string()),
            ]
        );
    }

    #[test]
    fn cut_compressed_and_garbage_end_quietly() {
        let mut msg = vec![0x0a, 20];
        msg.extend(b"only part");
        assert_eq!(render(&grpc(&msg)[..14], 256), "…");
        assert_eq!(
            render(&[1, 0, 0, 0, 3, 1, 2, 3], 256),
            "<compressed 3 bytes>"
        );
        assert_eq!(render(&grpc(&[0xff; 12]), 256), "…");
        assert_eq!(render(&grpc(&[0x0a, 2, 0xff, 0x00]), 256), "1: <2 bytes>");
        assert!(strings(&[0, 0xff, 0xff, 0xff, 0xff]).is_empty());
    }
}
