//! The request-head scanner: one byte-at-a-time state machine, run by the eBPF programs in a
//! `bpf_loop` callback and by the agent's tests alike.

use super::{
    CREDENTIAL_API_KEY, CREDENTIAL_AUTHORIZATION, CREDENTIAL_NONE, SCAN_COMPLETE, SCAN_NOT_HTTP,
    SCAN_RUNNING, SEGMENT_HEX, SEGMENT_ID, SEGMENT_TOKEN, SEGMENT_UUID,
    keys::{
        FNV_OFFSET, HOST_MARK, MAX_HOST_BYTES, MAX_SCHEME_BYTES, Sip24, combine, fnv, is_space,
        lower,
    },
};

pub(crate) const S_METHOD: u32 = 0;
pub(crate) const S_PATH: u32 = 1;
pub(crate) const S_REQUEST_LINE_REST: u32 = 2;
pub(crate) const S_LINE_START: u32 = 3;
pub(crate) const S_NAME: u32 = 4;
pub(crate) const S_SKIP_LINE: u32 = 5;
pub(crate) const S_VALUE_SPACE: u32 = 6;
pub(crate) const S_SCHEME: u32 = 7;
pub(crate) const S_SCHEME_SPACE: u32 = 8;
pub(crate) const S_CREDENTIAL: u32 = 9;
pub(crate) const S_BLANK_CR: u32 = 10;
pub(crate) const S_HOST_SPACE: u32 = 11;
pub(crate) const S_HOST: u32 = 12;

const MAX_METHOD_BYTES: u32 = 16;
const NAME_DEAD: u32 = u32::MAX;
const AUTHORIZATION: &[u8] = b"authorization:";
const API_KEY: &[u8] = b"x-api-key:";
const HOST: &[u8] = b"host:";

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

/// One lower-cased name byte against `name`: the position advances while the bytes match and
/// is NAME_DEAD from the first that does not.
#[inline(always)]
fn match_name(pos: &mut u32, name: &[u8], l: u8) {
    if *pos == NAME_DEAD {
        return;
    }
    match name.get(*pos as usize) {
        Some(&expected) if expected == l => *pos += 1,
        _ => *pos = NAME_DEAD,
    }
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
        match_name(&mut self.auth_pos, AUTHORIZATION, l);
        match_name(&mut self.key_pos, API_KEY, l);
        match_name(&mut self.host_pos, HOST, l);
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
