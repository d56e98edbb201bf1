//! Inline enforcement, shared by both halves: the request-head scanner the kernel runs inside
//! the TLS probes, the keys it derives, and the records of the verdict and gate maps.
//!
//! The scanner is one byte-at-a-time state machine ([`HeadScan::step`]) so the very same code
//! runs in a `bpf_loop` callback in the kernel and in the agent's unit tests: the tests check
//! that the keys the kernel computes from a raw request head equal the keys the agent derives
//! from the parsed request (token → [`credential_key`], route template → [`RouteKey`]). It
//! never indexes or panics; unknown or malformed input ends the scan with `SCAN_NOT_HTTP` (the
//! request is allowed: enforcement fails open).

/// Bytes of a request head the kernel copies at a time (a power of two: indices are masked).
pub const HEAD_SCAN_BYTES: usize = 2048;

/// Longest request head the kernel judges, over one buffer or several (nginx's default
/// `large_client_header_buffers` is 8 KiB); a longer head is allowed and counted.
pub const HEAD_LIMIT_BYTES: u32 = 8192;

/// A head split over several reads or writes is resumed from its saved scan state only this
/// long after it started (a stream that stalls mid-head, or a reused stream id, starts over).
pub const HEAD_CONTINUE_NS: u64 = 10_000_000_000;

/// `EnforceSettings::mode`.
pub const MODE_OFF: u32 = 0;
/// Verdicts are computed and reported as `would_block`; nothing is stopped.
pub const MODE_MONITOR: u32 = 1;
/// Verdicts close the connection's egress gate and the agent resets it.
pub const MODE_ENFORCE: u32 = 2;

/// `EnforceSettings::points` bits and `VerdictRecord::point`.
pub const POINT_CLIENT_WRITE: u32 = 1;
pub const POINT_SERVER_READ: u32 = 2;

/// `VerdictRecord::action`.
pub const ACTION_WOULD_BLOCK: u32 = 1;
pub const ACTION_BLOCKED: u32 = 2;

/// `ActorEntry::flags`: the actor is denied on every route, not only on sensitive ones.
pub const ACTOR_ANY_ROUTE: u64 = 1;

/// `VerdictRecord::flags`: the connection's addresses were read (the gate key is valid).
pub const VERDICT_TUPLE_KNOWN: u32 = 1;
/// `VerdictRecord::flags`: the gate map was full or the tuple unknown: nothing was gated.
pub const VERDICT_GATE_FAILED: u32 = 2;
/// `VerdictRecord::flags`: judged on a plain-HTTP socket (a syscall), not at a TLS probe.
pub const VERDICT_PLAINTEXT: u32 = 4;

/// Route keys stand for these instead of the segment's bytes when a segment is a parameter.
pub const SEGMENT_ID: u64 = 0x1d;
pub const SEGMENT_UUID: u64 = 0x2d;
pub const SEGMENT_HEX: u64 = 0x3d;
pub const SEGMENT_TOKEN: u64 = 0x4d;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The scan's outcome (`HeadScan::done`).
pub const SCAN_RUNNING: u32 = 0;
/// The blank line ending the head was seen.
pub const SCAN_COMPLETE: u32 = 1;
/// Not an origin-form HTTP/1 request head: nothing to judge.
pub const SCAN_NOT_HTTP: u32 = 2;

/// Which credential the token key was taken from.
pub const CREDENTIAL_NONE: u32 = 0;
pub const CREDENTIAL_AUTHORIZATION: u32 = 1;
pub const CREDENTIAL_API_KEY: u32 = 2;

const S_METHOD: u32 = 0;
const S_PATH: u32 = 1;
const S_REQUEST_LINE_REST: u32 = 2;
const S_LINE_START: u32 = 3;
const S_NAME: u32 = 4;
const S_SKIP_LINE: u32 = 5;
const S_VALUE_SPACE: u32 = 6;
const S_SCHEME: u32 = 7;
const S_SCHEME_SPACE: u32 = 8;
const S_CREDENTIAL: u32 = 9;
const S_BLANK_CR: u32 = 10;
const S_HOST_SPACE: u32 = 11;
const S_HOST: u32 = 12;

const MAX_METHOD_BYTES: u32 = 16;
const MAX_SCHEME_BYTES: u32 = 16;
const NAME_DEAD: u32 = u32::MAX;
const AUTHORIZATION: &[u8] = b"authorization:";
const API_KEY: &[u8] = b"x-api-key:";
const HOST: &[u8] = b"host:";
/// Mixed into a route key with its host, so no host-specific key equals a host-agnostic one.
const HOST_MARK: u64 = 0x6f73_745f_6b65_7968;
/// Longest Host value hashed; a longer one gives no host key (and no host-specific match).
const MAX_HOST_BYTES: u32 = 255;

/// Segment classification bits (`HeadScan::seg_flags`).
const SEG_ALL_DIGIT: u32 = 1;
const SEG_ALL_HEX: u32 = 2;
const SEG_HAS_DIGIT: u32 = 4;
const SEG_UUID: u32 = 8;
const SEG_TOKEN_CHARS: u32 = 16;
const SEG_FRESH: u32 = SEG_ALL_DIGIT | SEG_ALL_HEX | SEG_UUID | SEG_TOKEN_CHARS;

/// State of one head scan. Kept in a map value in the kernel (the 6.1 verifier loses track of
/// loop state kept on a callback's stack).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadScan {
    pub state: u32,
    pub done: u32,
    pub method_len: u32,
    pub path_started: u32,
    pub seg_len: u32,
    pub seg_flags: u32,
    pub seg_switches: u32,
    /// 0 = start or not alphanumeric, 1 = letter, 2 = digit.
    pub prev_class: u32,
    pub auth_pos: u32,
    pub key_pos: u32,
    /// CREDENTIAL_* of the value being read.
    pub value_kind: u32,
    pub scheme_len: u32,
    /// An Authorization / X-Api-Key header line was seen (whatever its value's shape).
    pub auth_seen: u32,
    pub key_seen: u32,
    /// The first Authorization's / X-Api-Key's credential was taken into `auth_token` /
    /// `key_token`.
    pub auth_ok: u32,
    pub key_ok: u32,
    pub seg_hash: u64,
    pub route_key: u64,
    pub auth_token: u64,
    pub key_token: u64,
    pub sip_key: [u64; 2],
    pub sip: [u64; 4],
    pub sip_tail: u64,
    pub sip_len: u64,
    pub host_pos: u32,
    /// A Host header line was seen (only the first counts).
    pub host_seen: u32,
    pub host_len: u32,
    /// The value is a bracketed IPv6 literal (`[::1]:443`): its `:` are not the port's.
    pub host_bracket: u32,
    /// FNV-1a of the lower-cased host without its port.
    pub host_hash: u64,
    /// Head bytes scanned so far, over every buffer of this head.
    pub scanned: u32,
    pub _pad: u32,
    /// When the head's first bytes were scanned (CLOCK_MONOTONIC ns; kernel only).
    pub started_ns: u64,
}

#[inline(always)]
fn fnv(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(FNV_PRIME)
}

#[inline(always)]
fn combine(route: u64, segment: u64) -> u64 {
    (route ^ segment).wrapping_mul(FNV_PRIME)
}

#[inline(always)]
fn lower(c: u8) -> u8 {
    if c.is_ascii_uppercase() { c | 0x20 } else { c }
}

#[inline(always)]
fn is_space(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    let [v0, v1, v2, v3] = v;
    *v0 = v0.wrapping_add(*v1);
    *v1 = v1.rotate_left(13);
    *v1 ^= *v0;
    *v0 = v0.rotate_left(32);
    *v2 = v2.wrapping_add(*v3);
    *v3 = v3.rotate_left(16);
    *v3 ^= *v2;
    *v0 = v0.wrapping_add(*v3);
    *v3 = v3.rotate_left(21);
    *v3 ^= *v0;
    *v2 = v2.wrapping_add(*v1);
    *v1 = v1.rotate_left(17);
    *v1 ^= *v2;
    *v2 = v2.rotate_left(32);
}

/// SipHash-2-4, one byte at a time (the kernel cannot hold the credential in one buffer it
/// can hash in one go). Equal to the reference SipHash-2-4 of the concatenated bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sip24 {
    v: [u64; 4],
    tail: u64,
    len: u64,
}

impl Sip24 {
    pub fn new(key: [u64; 2]) -> Self {
        let [k0, k1] = key;
        Self {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            len: 0,
        }
    }

    #[inline(always)]
    pub fn byte(&mut self, c: u8) {
        self.tail |= (c as u64) << (8 * (self.len & 7));
        self.len += 1;
        if self.len & 7 == 0 {
            let m = self.tail;
            self.v[3] ^= m;
            sip_round(&mut self.v);
            sip_round(&mut self.v);
            self.v[0] ^= m;
            self.tail = 0;
        }
    }

    pub fn finish(mut self) -> u64 {
        let b = (self.len << 56) | self.tail;
        self.v[3] ^= b;
        sip_round(&mut self.v);
        sip_round(&mut self.v);
        self.v[0] ^= b;
        self.v[2] ^= 0xff;
        for _ in 0..4 {
            sip_round(&mut self.v);
        }
        let [v0, v1, v2, v3] = self.v;
        v0 ^ v1 ^ v2 ^ v3
    }
}

/// The kernel's identity of a credential: SipHash-2-4 under the enforcement key.
pub fn credential_key(key: [u64; 2], credential: &[u8]) -> u64 {
    let mut sip = Sip24::new(key);
    for c in credential {
        sip.byte(*c);
    }
    sip.finish()
}

/// Builds the route key of `METHOD` + a route template segment by segment: what the kernel
/// computes from a raw request target, the agent computes from the template the inventory made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteKey(u64);

impl RouteKey {
    pub fn method(method: &[u8]) -> Self {
        let mut h = FNV_OFFSET;
        for c in method {
            h = fnv(h, *c);
        }
        Self(h)
    }

    /// One segment of the template: a literal or `{id}` / `{uuid}` / `{hex}` / `{token}`.
    pub fn segment(self, segment: &[u8]) -> Self {
        let value = match segment {
            b"{id}" => SEGMENT_ID,
            b"{uuid}" => SEGMENT_UUID,
            b"{hex}" => SEGMENT_HEX,
            b"{token}" => SEGMENT_TOKEN,
            literal => {
                let mut h = FNV_OFFSET;
                for c in literal {
                    h = fnv(h, *c);
                }
                h
            }
        };
        Self(combine(self.0, value))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// The key of this route on one virtual host (`host` as [`host_of`] gives it); the
    /// kernel looks up this key first, then the host-agnostic one.
    pub fn on_host(self, host: &[u8]) -> Self {
        let mut h = FNV_OFFSET;
        for c in host {
            h = fnv(h, lower(*c));
        }
        Self(combine(self.0, h ^ HOST_MARK))
    }
}

/// The host of a Host header value as the kernel keys it: leading spaces skipped, then a
/// bracketed IPv6 literal up to its `]`, or a name up to its port's `:` (or a space). None when
/// it is longer than the kernel hashes.
pub fn host_of(value: &[u8]) -> Option<&[u8]> {
    let value = trim_start(value);
    let end = if value.first() == Some(&b'[') {
        value
            .iter()
            .position(|c| *c == b']' || is_space(*c) || *c == b'\r' || *c == b'\n')
            .map_or(value.len(), |i| {
                if value.get(i) == Some(&b']') {
                    i + 1
                } else {
                    i
                }
            })
    } else {
        value
            .iter()
            .position(|c| *c == b':' || is_space(*c) || *c == b'\r' || *c == b'\n')
            .unwrap_or(value.len())
    };
    let host = value.get(..end)?;
    (host.len() <= MAX_HOST_BYTES as usize).then_some(host)
}

impl HeadScan {
    pub fn new(sip_key: [u64; 2]) -> Self {
        Self {
            route_key: FNV_OFFSET,
            host_hash: FNV_OFFSET,
            sip_key,
            ..Self::default()
        }
    }

    fn fail(&mut self) {
        self.done = SCAN_NOT_HTTP;
    }

    fn start_segment(&mut self) {
        self.seg_len = 0;
        self.seg_flags = SEG_FRESH;
        self.seg_switches = 0;
        self.prev_class = 0;
        self.seg_hash = FNV_OFFSET;
    }

    /// Mirrors the agent's `detect::route::param_kind`.
    fn end_segment(&mut self) {
        let f = self.seg_flags;
        let len = self.seg_len;
        let value = if len == 0 {
            self.seg_hash
        } else if f & SEG_ALL_DIGIT != 0 {
            SEGMENT_ID
        } else if len == 36 && f & SEG_UUID != 0 {
            SEGMENT_UUID
        } else if len >= 8 && f & SEG_ALL_HEX != 0 && f & SEG_HAS_DIGIT != 0 {
            SEGMENT_HEX
        } else if len >= 8 && self.seg_switches >= 3 && f & SEG_TOKEN_CHARS != 0 {
            SEGMENT_TOKEN
        } else {
            self.seg_hash
        };
        self.route_key = combine(self.route_key, value);
    }

    fn segment_byte(&mut self, c: u8) {
        let i = self.seg_len;
        let digit = c.is_ascii_digit();
        let alpha = c.is_ascii_alphabetic();
        if !digit {
            self.seg_flags &= !SEG_ALL_DIGIT;
        } else {
            self.seg_flags |= SEG_HAS_DIGIT;
        }
        if !c.is_ascii_hexdigit() {
            self.seg_flags &= !SEG_ALL_HEX;
        }
        let uuid_ok = if i == 8 || i == 13 || i == 18 || i == 23 {
            c == b'-'
        } else {
            i < 36 && c.is_ascii_hexdigit()
        };
        if !uuid_ok {
            self.seg_flags &= !SEG_UUID;
        }
        if !(digit || alpha || c == b'-' || c == b'_') {
            self.seg_flags &= !SEG_TOKEN_CHARS;
        }
        let class = if digit {
            2
        } else if alpha {
            1
        } else {
            0
        };
        if class != 0 && self.prev_class != 0 && class != self.prev_class {
            self.seg_switches = self.seg_switches.saturating_add(1);
        }
        self.prev_class = class;
        self.seg_hash = fnv(self.seg_hash, c);
        self.seg_len = self.seg_len.saturating_add(1);
    }

    fn start_value(&mut self, kind: u32) {
        self.value_kind = kind;
        self.scheme_len = 0;
        let sip = Sip24::new(self.sip_key);
        self.sip = sip.v;
        self.sip_tail = 0;
        self.sip_len = 0;
        self.state = S_VALUE_SPACE;
    }

    fn credential_byte(&mut self, c: u8) {
        let mut sip = Sip24 {
            v: self.sip,
            tail: self.sip_tail,
            len: self.sip_len,
        };
        sip.byte(c);
        self.sip = sip.v;
        self.sip_tail = sip.tail;
        self.sip_len = sip.len;
    }

    fn end_credential(&mut self) {
        if self.sip_len == 0 {
            return;
        }
        let sip = Sip24 {
            v: self.sip,
            tail: self.sip_tail,
            len: self.sip_len,
        };
        let key = sip.finish();
        if self.value_kind == CREDENTIAL_AUTHORIZATION {
            self.auth_token = key;
            self.auth_ok = 1;
        } else if self.value_kind == CREDENTIAL_API_KEY {
            self.key_token = key;
            self.key_ok = 1;
        }
    }

    /// The end of a header line (`c` is the byte that ended it).
    fn end_line(&mut self, c: u8) {
        self.state = if c == b'\n' {
            S_LINE_START
        } else {
            S_SKIP_LINE
        };
    }

    /// Consumes one byte of the head. After `done` is set, further bytes are ignored.
    pub fn step(&mut self, c: u8) {
        if self.done != SCAN_RUNNING {
            return;
        }
        match self.state {
            S_METHOD => {
                if c == b' ' && self.method_len > 0 {
                    self.state = S_PATH;
                    self.start_segment();
                } else if c.is_ascii_uppercase() && self.method_len < MAX_METHOD_BYTES {
                    self.route_key = fnv(self.route_key, c);
                    self.method_len += 1;
                } else {
                    self.fail();
                }
            }
            S_PATH => {
                if self.path_started == 0 {
                    // Origin form only: `*` and absolute URIs are left alone.
                    if c != b'/' {
                        self.fail();
                        return;
                    }
                    self.path_started = 1;
                    self.end_segment();
                    self.start_segment();
                } else if c == b'/' {
                    self.end_segment();
                    self.start_segment();
                } else if c == b'?' || c == b' ' {
                    self.end_segment();
                    self.state = S_REQUEST_LINE_REST;
                } else if c == b'\r' || c == b'\n' {
                    self.fail();
                } else {
                    self.segment_byte(c);
                }
            }
            S_REQUEST_LINE_REST | S_SKIP_LINE => {
                if c == b'\n' {
                    self.state = S_LINE_START;
                }
            }
            S_LINE_START => {
                if c == b'\r' {
                    self.state = S_BLANK_CR;
                } else if c == b'\n' {
                    self.done = SCAN_COMPLETE;
                } else {
                    self.auth_pos = 0;
                    self.key_pos = 0;
                    self.host_pos = 0;
                    self.state = S_NAME;
                    self.name_byte(c);
                }
            }
            S_BLANK_CR => {
                if c == b'\n' {
                    self.done = SCAN_COMPLETE;
                } else {
                    self.fail();
                }
            }
            S_NAME => self.name_byte(c),
            S_VALUE_SPACE => {
                if is_space(c) {
                } else if c == b'\r' || c == b'\n' {
                    self.end_line(c);
                } else if self.value_kind == CREDENTIAL_AUTHORIZATION {
                    self.scheme_len = 1;
                    self.state = S_SCHEME;
                } else {
                    self.state = S_CREDENTIAL;
                    self.credential_byte(c);
                }
            }
            S_SCHEME => {
                if c == b' ' {
                    self.state = S_SCHEME_SPACE;
                } else if c == b'\r' || c == b'\n' || self.scheme_len >= MAX_SCHEME_BYTES {
                    // No `scheme credentials` shape: no token taken from this header.
                    self.value_kind = CREDENTIAL_NONE;
                    if c == b'\r' || c == b'\n' {
                        self.end_line(c);
                    } else {
                        self.state = S_SKIP_LINE;
                    }
                } else {
                    self.scheme_len += 1;
                }
            }
            S_SCHEME_SPACE => {
                if is_space(c) {
                } else if c == b'\r' || c == b'\n' {
                    self.end_line(c);
                } else {
                    self.state = S_CREDENTIAL;
                    self.credential_byte(c);
                }
            }
            S_CREDENTIAL => {
                if is_space(c) || c == b'\r' || c == b'\n' {
                    self.end_credential();
                    self.end_line(c);
                } else {
                    self.credential_byte(c);
                }
            }
            S_HOST_SPACE => {
                if is_space(c) {
                } else if c == b'\r' || c == b'\n' {
                    self.end_line(c);
                } else if c == b':' {
                    // Only a port: the empty host.
                    self.state = S_SKIP_LINE;
                } else {
                    self.host_bracket = u32::from(c == b'[');
                    self.state = S_HOST;
                    self.host_byte(c);
                }
            }
            S_HOST => {
                if c == b'\r' || c == b'\n' {
                    self.end_line(c);
                } else if is_space(c) || (c == b':' && self.host_bracket == 0) {
                    self.state = S_SKIP_LINE;
                } else {
                    self.host_byte(c);
                    if c == b']' && self.host_bracket != 0 {
                        self.state = S_SKIP_LINE;
                    }
                }
            }
            _ => self.fail(),
        }
    }

    fn host_byte(&mut self, c: u8) {
        if self.host_len >= MAX_HOST_BYTES {
            // Too long to be a host name: no host key (a host-agnostic listing still applies).
            self.host_len = u32::MAX;
            self.state = S_SKIP_LINE;
            return;
        }
        self.host_hash = fnv(self.host_hash, lower(c));
        self.host_len += 1;
    }

    /// Header-name matching against `authorization:`, `x-api-key:` and `host:` at once. An
    /// Authorization credential wins over an API key, as in the agent's actor.
    fn name_byte(&mut self, c: u8) {
        if c == b'\r' || c == b'\n' {
            self.end_line(c);
            return;
        }
        let l = lower(c);
        if self.auth_pos != NAME_DEAD {
            match AUTHORIZATION.get(self.auth_pos as usize) {
                Some(&expected) if expected == l => self.auth_pos += 1,
                _ => self.auth_pos = NAME_DEAD,
            }
        }
        if self.key_pos != NAME_DEAD {
            match API_KEY.get(self.key_pos as usize) {
                Some(&expected) if expected == l => self.key_pos += 1,
                _ => self.key_pos = NAME_DEAD,
            }
        }
        if self.host_pos != NAME_DEAD {
            match HOST.get(self.host_pos as usize) {
                Some(&expected) if expected == l => self.host_pos += 1,
                _ => self.host_pos = NAME_DEAD,
            }
        }
        // Only the first header of each name counts, as the agent reads them: a second one
        // appended by the client cannot hide the first.
        if self.auth_pos as usize == AUTHORIZATION.len() {
            if self.auth_seen != 0 {
                self.state = S_SKIP_LINE;
            } else {
                self.auth_seen = 1;
                self.start_value(CREDENTIAL_AUTHORIZATION);
            }
        } else if self.key_pos as usize == API_KEY.len() {
            if self.key_seen != 0 {
                self.state = S_SKIP_LINE;
            } else {
                self.key_seen = 1;
                self.start_value(CREDENTIAL_API_KEY);
            }
        } else if self.host_pos as usize == HOST.len() {
            if self.host_seen != 0 {
                self.state = S_SKIP_LINE;
            } else {
                self.host_seen = 1;
                self.state = S_HOST_SPACE;
            }
        } else if self.auth_pos == NAME_DEAD
            && self.key_pos == NAME_DEAD
            && self.host_pos == NAME_DEAD
        {
            self.state = S_SKIP_LINE;
        }
    }

    /// Which credential identifies the actor: the first Authorization header when there is
    /// one (even of a shape that gives no token), else the first X-Api-Key — as the agent's
    /// event builder decides.
    pub fn credential(&self) -> u32 {
        if self.auth_seen != 0 {
            if self.auth_ok != 0 {
                CREDENTIAL_AUTHORIZATION
            } else {
                CREDENTIAL_NONE
            }
        } else if self.key_ok != 0 {
            CREDENTIAL_API_KEY
        } else {
            CREDENTIAL_NONE
        }
    }

    /// The route key for the request's virtual host: the host of the first Host header
    /// (lower-cased, without its port), or the empty host when there is none. None when the
    /// Host value is too long to be one.
    pub fn host_route_key(&self) -> Option<u64> {
        (self.host_len != u32::MAX).then(|| combine(self.route_key, self.host_hash ^ HOST_MARK))
    }

    /// The token key when the scan took one from the credential that counts.
    pub fn token(&self) -> Option<u64> {
        match self.credential() {
            CREDENTIAL_AUTHORIZATION => Some(self.auth_token),
            CREDENTIAL_API_KEY => Some(self.key_token),
            _ => None,
        }
    }
}

/// The credential the kernel identifies an actor by, from a header value as the agent parsed
/// it: for `Authorization` the word after the scheme (`Bearer abc` → `abc`), for `X-Api-Key`
/// the first word. None when the value has no such shape (the kernel takes none either).
pub fn credential_of<'v>(lower_name: &str, value: &'v [u8]) -> Option<&'v [u8]> {
    let value = trim_start(value);
    let word = match lower_name {
        "authorization" => {
            let scheme_end = value.iter().position(|c| *c == b' ')?;
            if scheme_end == 0 || scheme_end > MAX_SCHEME_BYTES as usize {
                return None;
            }
            trim_start(value.get(scheme_end..)?)
        }
        "x-api-key" => value,
        _ => return None,
    };
    let end = word
        .iter()
        .position(|c| is_space(*c) || *c == b'\r' || *c == b'\n')
        .unwrap_or(word.len());
    let word = word.get(..end)?;
    (!word.is_empty()).then_some(word)
}

fn trim_start(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if !is_space(*first) {
            break;
        }
        v = rest;
    }
    v
}

/// Enforcement switches, one map slot: changing the mode is one map write.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnforceSettings {
    pub mode: u32,
    /// POINT_* bits: where verdicts are taken.
    pub points: u32,
    /// SipHash key of credentials, derived from the redaction key.
    pub sip_key: [u64; 2],
    /// Gate entries live this long (CLOCK_MONOTONIC ns) unless the agent removes them first.
    pub gate_ttl_ns: u64,
}

/// A listed actor (key: its credential key).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActorEntry {
    /// CLOCK_MONOTONIC ns after which the entry no longer counts.
    pub expires_ns: u64,
    pub flags: u64,
}

/// A listed route (key: its route key).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteEntry {
    pub expires_ns: u64,
}

/// A connection whose egress is stopped, as the socket sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GateKey {
    pub family: u16,
    /// Host byte order.
    pub local_port: u16,
    /// Host byte order.
    pub remote_port: u16,
    pub _pad: u16,
    /// IPv4 in the first four bytes (network order), IPv6 all sixteen.
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateEntry {
    pub expires_ns: u64,
}

/// A kernel verdict: a listed actor's request on a listed route.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerdictRecord {
    pub header: crate::event::RecordHeader,
    pub stream: u64,
    pub token_key: u64,
    pub route_key: u64,
    pub fd: i32,
    /// ACTION_*.
    pub action: u32,
    /// POINT_*.
    pub point: u32,
    /// VERDICT_* bits.
    pub flags: u32,
    /// CREDENTIAL_*.
    pub credential: u32,
    pub _pad: u32,
    pub gate: GateKey,
    pub cgroup_id: u64,
    pub comm: [u8; crate::event::COMM_BYTES],
}

/// Counters of the enforcement path (ENFORCE_COUNTERS, per CPU).
pub mod counter {
    /// Request heads scanned at a verdict point.
    pub const HEADS_SCANNED: u32 = 0;
    /// Heads not judged: not origin-form HTTP/1, or longer than the scan window (fail open).
    pub const HEADS_UNPARSED: u32 = 1;
    /// Heads without a credential the kernel can identify.
    pub const HEADS_WITHOUT_TOKEN: u32 = 2;
    /// Verdicts: would_block (monitor) and blocked (enforce).
    pub const WOULD_BLOCK: u32 = 3;
    pub const BLOCKED: u32 = 4;
    /// Blocks whose gate could not be set (tuple unknown or gate map full).
    pub const GATE_FAILED: u32 = 5;
    /// Egress packets dropped by the gate (RST segments always pass).
    pub const PACKETS_DROPPED: u32 = 6;
    /// Verdict records lost because the ring buffer was full.
    pub const VERDICTS_LOST: u32 = 7;
    /// Sends on gated connections the BPF-LSM gate refused (ECONNRESET).
    pub const LSM_DENIED: u32 = 8;
    /// Heads whose scan went on in a later read or write of the same stream (split heads).
    pub const HEADS_SPLIT: u32 = 9;
    /// Heads judged on plain-HTTP sockets (also counted in HEADS_SCANNED).
    pub const HEADS_PLAINTEXT: u32 = 10;
    pub const COUNT: u32 = 11;
}

const _: () = {
    assert!(HEAD_SCAN_BYTES.is_power_of_two());
    assert!(core::mem::size_of::<HeadScan>() == 200);
    assert!(core::mem::size_of::<GateKey>() == 40);
    assert!(core::mem::size_of::<EnforceSettings>() == 32);
    assert!(core::mem::size_of::<VerdictRecord>() == 136);
};

#[cfg(test)]
#[path = "enforce_tests.rs"]
mod tests;
