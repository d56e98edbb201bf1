//! The keys both halves derive: a credential's SipHash-2-4 under the enforcement key (fed one
//! byte at a time in the kernel), a route's FNV key built segment by segment, on a virtual host
//! or on every host.

use super::{SEGMENT_HEX, SEGMENT_ID, SEGMENT_TOKEN, SEGMENT_UUID};

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub(crate) const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Mixed into a route key with its host, so no host-specific key equals a host-agnostic one.
pub(crate) const HOST_MARK: u64 = 0x6f73_745f_6b65_7968;
/// Longest Host value hashed; a longer one gives no host key (and no host-specific match).
pub(crate) const MAX_HOST_BYTES: u32 = 255;
/// Longest Authorization scheme taken (`Bearer`, `Basic`, …).
pub(crate) const MAX_SCHEME_BYTES: u32 = 16;

#[inline(always)]
pub(crate) fn fnv(hash: u64, byte: u8) -> u64 {
    (hash ^ byte as u64).wrapping_mul(FNV_PRIME)
}

#[inline(always)]
pub(crate) fn combine(route: u64, segment: u64) -> u64 {
    (route ^ segment).wrapping_mul(FNV_PRIME)
}

#[inline(always)]
pub(crate) fn lower(c: u8) -> u8 {
    if c.is_ascii_uppercase() { c | 0x20 } else { c }
}

#[inline(always)]
pub(crate) fn is_space(c: u8) -> bool {
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
    pub(crate) v: [u64; 4],
    pub(crate) tail: u64,
    pub(crate) len: u64,
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

pub(crate) fn trim_start(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if !is_space(*first) {
            break;
        }
        v = rest;
    }
    v
}
