//! The native JSON line of an exchange, written directly: byte for byte what serde_json writes
//! for `ExchangeEvent` (its serde form stays the schema, and `cleartap replay` reads it back
//! with serde), at a fraction of the cost. Rendering through serde was a quarter of the agent's
//! CPU per exchange: serde_json escapes strings a byte at a time and goes through `io::Write`
//! for every fragment; here strings are scanned eight bytes at a time and copied in runs.
//!
//! Equality with serde_json is the contract: unit tests beside it, `live_replay_equivalence`
//! over the recorded corpus, and the `exchange_path` fuzz target on hostile exchanges check it.

use crate::event::{
    Connection, Container, Endpoint, ExchangeEvent, Grpc, Headers, HttpVersion, JwtSummary,
    Kubernetes, Process, Request, Response,
};

/// Sized for a typical event with a browser's or an API client's headers: growing the buffer
/// copies it.
pub const CAPACITY: usize = 2048;

/// The native JSON of one exchange (no trailing newline).
pub fn render(event: &ExchangeEvent<'_>) -> String {
    let mut out = String::with_capacity(CAPACITY);
    render_into(event, &mut out);
    out
}

/// [`render`], appended to `out` (a buffer the caller keeps between events).
pub fn render_into(event: &ExchangeEvent<'_>, out: &mut String) {
    let mut w = Writer(std::mem::take(out));
    w.event(event);
    *out = w.0;
}

/// Written as a `String` from `&str` pieces and ASCII: no UTF-8 check of the whole event after.
struct Writer(String);

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` (little-endian) that needs escaping in JSON: a control
/// character (< 0x20), `"` or `\`. Bytes ≥ 0x80 (UTF-8) never do, as serde_json writes them.
/// A borrow can flag a byte above a flagged one, never below it: the lowest flag is exact.
fn escape_bits(word: u64) -> u64 {
    let below_space = word.wrapping_sub(LOW_BITS * 0x20) & !word;
    let quote = word ^ (LOW_BITS * u64::from(b'"'));
    let backslash = word ^ (LOW_BITS * u64::from(b'\\'));
    let zero_byte = |v: u64| v.wrapping_sub(LOW_BITS) & !v;
    (below_space | zero_byte(quote) | zero_byte(backslash)) & HIGH_BITS
}

/// Whether any byte of `word` needs escaping in JSON.
fn needs_escape(word: u64) -> bool {
    escape_bits(word) != 0
}

/// Whether no byte of `bytes` needs escaping, eight at a time. The bytes past the last whole
/// word are read as one more word ending at the last byte (overlapping words already checked);
/// strings under eight bytes as their first and last four, or their first, middle and last
/// byte, which between them cover every byte. Padding the tail in a stack buffer instead cost
/// a store-forwarding stall on every string (40 % of this function's time under load).
fn is_clean(bytes: &[u8]) -> bool {
    let word_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let quad_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    };
    let byte_at = |at: usize| u64::from(bytes.get(at).copied().unwrap_or(b' '));
    let n = bytes.len();
    if n >= 8 {
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            if needs_escape(chunk.try_into().map_or(0, u64::from_le_bytes)) {
                return false;
            }
        }
        words.remainder().is_empty() || !needs_escape(word_at(n - 8))
    } else if n >= 4 {
        !needs_escape(u64::from(quad_at(0)) | u64::from(quad_at(n - 4)) << 32)
    } else if n > 0 {
        // Spaces (which never need escaping) in the five bytes not read.
        let spaces = (LOW_BITS * u64::from(b' ')) & !0xff_ffff;
        !needs_escape(byte_at(0) | byte_at(n / 2) << 8 | byte_at(n - 1) << 16 | spaces)
    } else {
        true
    }
}

impl Writer {
    fn raw(&mut self, s: &str) {
        self.0.push_str(s);
    }

    fn key(&mut self, first: bool, name: &str) {
        if !first {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(name);
        self.0.push_str("\":");
    }

    /// A JSON string, escaped as serde_json escapes it.
    fn string(&mut self, s: &str) {
        let bytes = s.as_bytes();
        self.0.reserve(bytes.len() + 2);
        self.0.push('"');
        if is_clean(bytes) {
            // Nearly every string: one copy, no per-byte work.
            self.0.push_str(s);
        } else {
            self.escaped(s);
        }
        self.0.push('"');
    }

    /// The slow path of [`Self::string`]: unescaped runs copied whole, escapes between them,
    /// the next byte to escape found eight bytes at a time. Out of line, so that the common
    /// path's call saves no registers for it.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut run_start = 0;
        let mut at = 0;
        while let Some(&byte) = bytes.get(at) {
            if let Some(word) = bytes.get(at..at + 8).and_then(|w| w.try_into().ok()) {
                let bits = escape_bits(u64::from_le_bytes(word));
                if bits == 0 {
                    at += 8;
                    continue;
                }
                // The lowest flag is exact: bytes before it need nothing.
                at += (bits.trailing_zeros() / 8) as usize;
            }
            let byte = bytes.get(at).copied().unwrap_or(byte);
            if let Some((escape, len)) = escape_of(byte) {
                // Runs end at ASCII bytes (the escaped ones), so they are whole characters.
                self.0.push_str(s.get(run_start..at).unwrap_or_default());
                for c in escape.get(..len).unwrap_or_default() {
                    self.0.push(char::from(*c));
                }
                run_start = at + 1;
            }
            at += 1;
        }
        self.0.push_str(s.get(run_start..).unwrap_or_default());
    }

    fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.raw("null"),
        }
    }

    fn number(&mut self, n: impl itoa::Integer) {
        let mut buf = itoa::Buffer::new();
        self.0.push_str(buf.format(n));
    }

    fn opt_number(&mut self, n: Option<impl itoa::Integer>) {
        match n {
            Some(n) => self.number(n),
            None => self.raw("null"),
        }
    }

    fn event(&mut self, e: &ExchangeEvent<'_>) {
        self.raw("{\"schema\":");
        self.string(&e.schema);
        self.raw(",\"time\":");
        self.string(&e.time);
        self.raw(",\"host\":");
        self.string(&e.host);
        self.raw(",\"process\":");
        self.process(&e.process);
        if let Some(c) = &e.container {
            self.raw(",\"container\":");
            self.container(c);
        }
        if let Some(k) = &e.kubernetes {
            self.raw(",\"kubernetes\":");
            self.kubernetes(k);
        }
        self.raw(",\"connection\":");
        self.connection(&e.connection);
        self.raw(",\"request\":");
        match &e.request {
            Some(r) => self.request(r),
            None => self.raw("null"),
        }
        self.raw(",\"response\":");
        match &e.response {
            Some(r) => self.response(r),
            None => self.raw("null"),
        }
        self.raw(",\"latency_us\":");
        self.opt_number(e.latency_us);
        self.raw(",\"duration_us\":");
        self.opt_number(e.duration_us);
        if let Some(id) = e.stream_id {
            self.raw(",\"stream_id\":");
            self.number(id);
        }
        if let Some(code) = e.reset_code {
            self.raw(",\"reset_code\":");
            self.number(code);
        }
        if let Some(g) = &e.grpc {
            self.raw(",\"grpc\":");
            self.grpc(g);
        }
        self.0.push('}');
    }

    fn process(&mut self, p: &Process<'_>) {
        self.raw("{\"pid\":");
        self.number(p.pid);
        self.raw(",\"tid\":");
        self.number(p.tid);
        self.raw(",\"comm\":");
        self.string(&p.comm);
        self.raw(",\"exe\":");
        self.opt_string(p.exe.as_deref());
        self.raw(",\"cgroup_id\":");
        self.number(p.cgroup_id);
        self.0.push('}');
    }

    fn container(&mut self, c: &Container<'_>) {
        self.raw("{\"id\":");
        self.string(&c.id);
        if let Some(runtime) = &c.runtime {
            self.raw(",\"runtime\":");
            self.string(runtime);
        }
        self.0.push('}');
    }

    fn kubernetes(&mut self, k: &Kubernetes<'_>) {
        self.raw("{\"node\":");
        self.string(&k.node);
        for (name, value) in [
            ("namespace", &k.namespace),
            ("pod", &k.pod),
            ("pod_uid", &k.pod_uid),
        ] {
            if let Some(value) = value {
                self.key(false, name);
                self.string(value);
            }
        }
        self.0.push('}');
    }

    fn endpoint(&mut self, e: Option<&Endpoint>) {
        let Some(e) = e else {
            self.raw("null");
            return;
        };
        self.0.push_str("{\"ip\":\"");
        // Addresses print as ASCII digits, dots, colons and hex: nothing to escape. IPv4 (the
        // common case) without the formatter, which was 4 % of the instructions per exchange.
        match e.ip {
            std::net::IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.0.push('.');
                    }
                    self.number(octet);
                }
            }
            ip => {
                let _ = std::fmt::Write::write_fmt(&mut self.0, format_args!("{ip}"));
            }
        }
        self.0.push_str("\",\"port\":");
        self.number(e.port);
        self.0.push('}');
    }

    fn connection(&mut self, c: &Connection<'_>) {
        self.raw("{\"local\":");
        self.endpoint(c.local.as_ref());
        self.raw(",\"remote\":");
        self.endpoint(c.remote.as_ref());
        self.raw(",\"role\":");
        self.string(c.role.as_str());
        self.raw(",\"tls\":");
        self.raw(if c.tls { "true" } else { "false" });
        self.raw(",\"library\":");
        self.opt_string(c.library.as_deref());
        if let Some(version) = &c.library_version {
            self.raw(",\"library_version\":");
            self.string(version);
        }
        self.raw(",\"fd\":");
        self.opt_number(c.fd);
        self.0.push('}');
    }

    fn headers(&mut self, headers: &Headers<'_>) {
        self.0.push('{');
        for (i, h) in headers.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            // `Headers` keeps names lower case.
            self.string(&h.name);
            self.0.push(':');
            self.string(&h.value);
        }
        self.0.push('}');
    }

    fn jwt(&mut self, jwt: Option<&JwtSummary>) {
        let Some(j) = jwt else {
            self.raw("null");
            return;
        };
        self.raw("{\"alg\":");
        self.opt_string(j.alg.as_deref());
        self.raw(",\"exp\":");
        self.opt_number(j.exp);
        self.raw(",\"nbf\":");
        self.opt_number(j.nbf);
        self.raw(",\"iat\":");
        self.opt_number(j.iat);
        self.0.push('}');
    }

    fn request(&mut self, r: &Request<'_>) {
        self.raw("{\"method\":");
        self.string(&r.method);
        self.raw(",\"path\":");
        self.string(&r.path);
        self.raw(",\"query\":");
        self.opt_string(r.query.as_deref());
        self.message(
            r.version,
            &r.headers,
            (r.body_size, &r.body_prefix, r.body_missing_bytes),
            r.unresolved_fields,
        );
        self.raw(",\"jwt\":");
        self.jwt(r.jwt.as_ref());
        self.0.push('}');
    }

    fn response(&mut self, r: &Response<'_>) {
        self.raw("{\"status\":");
        self.number(r.status);
        self.raw(",\"reason\":");
        self.string(&r.reason);
        self.message(
            r.version,
            &r.headers,
            (r.body_size, &r.body_prefix, r.body_missing_bytes),
            r.unresolved_fields,
        );
        self.0.push('}');
    }

    /// The fields requests and responses share, in their order: version, headers, body size,
    /// prefix and missing bytes, and the unresolved HTTP/2 fields when there are any.
    fn message(
        &mut self,
        version: HttpVersion,
        headers: &Headers<'_>,
        (body_size, body_prefix, body_missing_bytes): (Option<u64>, &str, u64),
        unresolved_fields: u32,
    ) {
        self.raw(",\"version\":");
        self.string(version.as_str());
        self.raw(",\"headers\":");
        self.headers(headers);
        self.raw(",\"body_size\":");
        self.opt_number(body_size);
        self.raw(",\"body_prefix\":");
        self.string(body_prefix);
        self.raw(",\"body_missing_bytes\":");
        self.number(body_missing_bytes);
        if unresolved_fields != 0 {
            self.raw(",\"unresolved_fields\":");
            self.number(unresolved_fields);
        }
    }

    fn grpc(&mut self, g: &Grpc<'_>) {
        self.raw("{\"service\":");
        self.string(&g.service);
        self.raw(",\"method\":");
        self.string(&g.method);
        self.raw(",\"status_code\":");
        self.opt_number(g.status_code);
        self.raw(",\"status_name\":");
        self.opt_string(g.status_name.as_deref());
        self.raw(",\"message\":");
        self.opt_string(g.message.as_deref());
        self.raw(",\"encoding\":");
        self.opt_string(g.encoding.as_deref());
        self.raw(",\"request_messages\":");
        self.number(g.request_messages);
        self.raw(",\"response_messages\":");
        self.number(g.response_messages);
        self.0.push('}');
    }
}

/// serde_json's escape for one byte, if it needs one: the bytes and how many of them.
fn escape_of(byte: u8) -> Option<([u8; 6], usize)> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = |c: u8| Some(([b'\\', c, 0, 0, 0, 0], 2));
    match byte {
        b'"' => short(b'"'),
        b'\\' => short(b'\\'),
        0x08 => short(b'b'),
        0x0c => short(b'f'),
        b'\n' => short(b'n'),
        b'\r' => short(b'r'),
        b'\t' => short(b't'),
        0..=0x1f => Some((
            [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0'),
                HEX.get(usize::from(byte & 0xf)).copied().unwrap_or(b'0'),
            ],
            6,
        )),
        _ => None,
    }
}

#[cfg(test)]
#[path = "native_event_tests.rs"]
mod tests;
