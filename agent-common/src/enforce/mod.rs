//! Inline enforcement, shared by both halves: the request-head scanner the kernel runs inside
//! the TLS probes and at the plain-HTTP syscalls, the keys it derives, and the records of the
//! verdict and gate maps.
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
/// Not a credential: the client's address (a server-side verdict on a listed client address).
pub const CREDENTIAL_CLIENT_ADDRESS: u32 = 3;

/// `EnforceSettings::flags`: listed client addresses are denied too (at server reads).
pub const SETTINGS_CLIENT_ADDRESSES: u64 = 1;

mod keys;
mod scan;

pub use keys::*;
pub use scan::*;

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
    /// SETTINGS_* bits.
    pub flags: u64,
}

/// A listed client address (key of ENFORCE_CLIENTS; its value is an [`ActorEntry`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// AF_INET or AF_INET6.
    pub family: u16,
    pub _pad: [u8; 6],
    /// IPv4 in the first four bytes (network order), IPv6 all sixteen: as [`GateKey`] holds it.
    pub addr: [u8; 16],
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
    assert!(core::mem::size_of::<EnforceSettings>() == 40);
    assert!(core::mem::size_of::<ClientKey>() == 24);
    assert!(core::mem::size_of::<VerdictRecord>() == 136);
};

#[cfg(test)]
mod tests;
