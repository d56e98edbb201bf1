//! Inline enforcement: a verdict on each request head at the TLS probes (the server at the
//! return of its read, the client at the entry of its write) and, through `enforce_plain`, at
//! the plain-HTTP socket syscalls; and the gates that stop a judged connection's packets until
//! the agent has reset it.
//!
//! The verdict: the head is scanned (agent_common::enforce::HeadScan, one `bpf_loop` step per
//! byte, 2 KiB copied at a time, up to 8 KiB, resumed across the stream's reads or writes when
//! it is split) for its credential, route and host; a listed actor on a route listed for the
//! request's host or for every host (or a listed actor flagged for every route), or — at a
//! server's read with client addresses on — a listed client address, is a hit. In monitor mode a hit is only reported; in enforce mode
//! the connection's 4-tuple enters ENFORCE_GATE, whose `cgroup_skb/egress` program drops the
//! connection's packets (RST segments pass, so the agent's reset reaches the peer). Anything
//! that cannot be judged is allowed and counted: enforcement fails open. Nothing is pinned: the
//! gate and its maps go with the agent.

use agent_common::{
    enforce::{
        ACTION_BLOCKED, ACTION_WOULD_BLOCK, ACTOR_ANY_ROUTE, ActorEntry, CREDENTIAL_CLIENT_ADDRESS,
        ClientKey, EnforceSettings, GateEntry, GateKey, HEAD_CONTINUE_NS, HEAD_LIMIT_BYTES,
        HEAD_SCAN_BYTES, HeadScan, MODE_MONITOR, MODE_OFF, POINT_CLIENT_WRITE, POINT_SERVER_READ,
        RouteEntry, SCAN_COMPLETE, SCAN_NOT_HTTP, SCAN_RUNNING, SETTINGS_CLIENT_ADDRESSES,
        VERDICT_GATE_FAILED, VERDICT_PLAINTEXT, VERDICT_TUPLE_KNOWN, VerdictRecord, counter,
    },
    event::{AF_INET, AF_INET6, COMM_BYTES, KIND_VERDICT, PLAINTEXT_STREAM_BIT},
};
use aya_ebpf::{
    bindings::{__sk_buff, BPF_RB_FORCE_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_ktime_get_ns,
        generated::{
            bpf_get_current_cgroup_id, bpf_loop, bpf_probe_read_user, bpf_skb_load_bytes_relative,
        },
    },
    macros::{cgroup_skb, lsm, map},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::{LsmContext, SkBuffContext},
};

use crate::{
    emit::header,
    maps::StreamKey,
    sock::{sock_of_fd, tuple_of_sock},
};

#[map]
pub static ENFORCE_SETTINGS: Array<EnforceSettings> = Array::with_max_entries(1, 0);

/// Listed actors by credential key; entries expire on their own (`expires_ns`).
#[map]
pub static ENFORCE_ACTORS: HashMap<u64, ActorEntry> = HashMap::with_max_entries(65536, 0);

/// Listed routes by route key.
#[map]
pub static ENFORCE_ROUTES: HashMap<u64, RouteEntry> = HashMap::with_max_entries(16384, 0);

/// Connections whose egress is stopped. LRU: a full gate evicts its oldest entry rather than
/// refusing a new block.
#[map]
pub static ENFORCE_GATE: LruHashMap<GateKey, GateEntry> = LruHashMap::with_max_entries(16384, 0);

#[map]
pub static ENFORCE_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Per-CPU scan state, the head bytes and the verdict being built (too big for the stack).
#[repr(C)]
pub struct HeadScratch {
    pub scan: HeadScan,
    pub verdict: VerdictRecord,
    /// The user memory being scanned and how many of its bytes: the scan copies it into `buf`
    /// one window at a time.
    pub src: u64,
    pub len: u64,
    pub buf: [u8; HEAD_SCAN_BYTES],
}

#[map]
static HEAD_SCRATCH: PerCpuArray<HeadScratch> = PerCpuArray::with_max_entries(1, 0);

/// Scan state of request heads that did not end in the bytes of their read or write, by
/// stream: the next read or write of the stream goes on from it. LRU: an abandoned head is
/// forgotten, and one older than HEAD_CONTINUE_NS is not resumed.
#[map]
static HEAD_CONTINUATION: LruHashMap<StreamKey, HeadScan> = LruHashMap::with_max_entries(16384, 0);

/// A hit taken at a client's write before its socket was known: finished by the first socket
/// syscall nested in the write (which happens before any byte leaves).
#[derive(Clone, Copy)]
pub struct Pending {
    pub token_key: u64,
    pub route_key: u64,
    pub credential: u32,
    /// The route is listed (a client-address candidate may also hit on an unlisted route,
    /// when its entry holds for every route).
    pub route_listed: u32,
}

/// Listed client addresses, denied at server reads when SETTINGS_CLIENT_ADDRESSES is set.
#[map]
pub static ENFORCE_CLIENTS: HashMap<ClientKey, ActorEntry> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn bump(index: u32) {
    if let Some(slot) = ENFORCE_COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub fn settings() -> Option<EnforceSettings> {
    // SAFETY: value copied out.
    ENFORCE_SETTINGS.get(0).copied()
}

/// Whether verdicts are taken at `point` now (one map read; the cost when enforcement is off).
#[inline(always)]
pub fn active_at(point: u32) -> Option<EnforceSettings> {
    let s = settings()?;
    (s.mode != MODE_OFF && s.points & point != 0).then_some(s)
}

/// `bpf_loop` takes its callback's context on the stack: it carries the scratch pointer (the
/// scan state itself stays in the map value, where the 6.1 verifier keeps track of it).
#[repr(C)]
struct LoopCtx {
    scratch: *mut HeadScratch,
}

extern "C" fn scan_byte(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's LoopCtx, holding this CPU's HeadScratch (see `judge`); the
    // index is masked, and the copy's length bounded by the buffer's.
    unsafe {
        let scratch = (*ctx.cast::<LoopCtx>()).scratch;
        let at = (index as usize) & (HEAD_SCAN_BYTES - 1);
        if at == 0 && index != 0 {
            // The next window of a head longer than the buffer.
            let left = (*scratch).len.saturating_sub(index);
            if left == 0 {
                return 1;
            }
            let n = if left > HEAD_SCAN_BYTES as u64 {
                HEAD_SCAN_BYTES as u64
            } else {
                left
            };
            let n = ((n - 1) & (HEAD_SCAN_BYTES as u64 - 1)) + 1;
            if bpf_probe_read_user(
                (*scratch).buf.as_mut_ptr().cast(),
                n as u32,
                ((*scratch).src + index) as *const _,
            ) != 0
            {
                (*scratch).scan.done = SCAN_NOT_HTTP;
                return 1;
            }
        }
        let c = (*scratch).buf[at];
        (*scratch).scan.step(c);
        if (*scratch).scan.done != SCAN_RUNNING {
            return 1;
        }
    }
    0
}

/// A listed route: the route on the request's virtual host first, then on every host.
#[inline(always)]
fn listed_route(key: u64, now: u64) -> bool {
    // SAFETY: value copied out.
    unsafe { ENFORCE_ROUTES.get(&key) }
        .copied()
        .is_some_and(|r| r.expires_ns > now)
}

/// Scans the request bytes at `buf` (`len` bytes of plaintext of stream `key`, at verdict
/// point `point`) as a head, or as the rest of a head an earlier call at the same point began: the hit, when a listed
/// actor asks for a listed route. `extra` is one more counter bumped per head scanned (or
/// `counter::COUNT` for none). The caller reports the hit with [`decide`].
#[inline(always)]
pub fn judge(
    settings: &EnforceSettings,
    point: u32,
    key: &StreamKey,
    buf: u64,
    len: u64,
    extra: u32,
) -> Option<Pending> {
    if len == 0 {
        return None;
    }
    let scratch = HEAD_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot; nothing else runs on this CPU while we do.
    let s = unsafe { &mut *scratch };
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut resumed = false;
    // A stream's request heads go one way: a client's writes or a server's reads. The other
    // way (a server's response write, seen at the same probe as a client's request) has a key
    // of its own, so it never resumes a head.
    let key = &StreamKey {
        tgid: key.tgid,
        stream: continuation_stream(key.stream, point),
    };
    if let Some(saved) = HEAD_CONTINUATION.get_ptr(key) {
        // SAFETY: map value pointer; copied into this CPU's slot before the entry goes.
        unsafe {
            if (*saved).started_ns + HEAD_CONTINUE_NS > now {
                core::ptr::copy_nonoverlapping(saved, &raw mut s.scan, 1);
                resumed = true;
            }
        }
        let _ = HEAD_CONTINUATION.remove(key);
    }
    let budget = if resumed {
        (HEAD_LIMIT_BYTES - s.scan.scanned.min(HEAD_LIMIT_BYTES)) as u64
    } else {
        HEAD_LIMIT_BYTES as u64
    };
    let n = if len > budget { budget } else { len };
    if n == 0 {
        bump(counter::HEADS_UNPARSED);
        return None;
    }
    // The first window. LLVM knows its length is in [1, HEAD_SCAN_BYTES] and would drop a
    // mask; 6.1's verifier may not (a length spilled to the stack before it was bounded comes
    // back unbounded). An opaque reload keeps the mask next to the helper call.
    let first = if n > HEAD_SCAN_BYTES as u64 {
        HEAD_SCAN_BYTES as u64
    } else {
        n
    };
    // SAFETY: a plain local.
    let first = unsafe { core::ptr::read_volatile(&first) };
    let first = ((first - 1) & (HEAD_SCAN_BYTES as u64 - 1)) + 1;
    // SAFETY: destination is the scratch buffer (HEAD_SCAN_BYTES long), first is bounded.
    if unsafe { bpf_probe_read_user(s.buf.as_mut_ptr().cast(), first as u32, buf as *const _) } != 0
    {
        return None;
    }
    if !resumed {
        // Cheap rejects before the scan: a request starts with an upper-case method letter,
        // and the same probes see every response (a server's write, a client's read).
        if !s.buf[0].is_ascii_uppercase() || (first >= 5 && s.buf[..5] == *b"HTTP/") {
            return None;
        }
        s.scan = HeadScan::new(settings.sip_key);
        s.scan.started_ns = now;
        bump(counter::HEADS_SCANNED);
        bump(extra);
    }
    s.src = buf;
    s.len = n;
    let mut loop_ctx = LoopCtx { scratch };
    // SAFETY: the callback is a static function; its context outlives the call.
    unsafe {
        bpf_loop(
            n as u32,
            scan_byte as *mut core::ffi::c_void,
            (&raw mut loop_ctx).cast(),
            0,
        );
    }
    s.scan.scanned = s.scan.scanned.saturating_add(n as u32);
    if s.scan.done == SCAN_RUNNING && n == len && s.scan.scanned < HEAD_LIMIT_BYTES {
        // The head goes on in the stream's next read or write.
        if !resumed {
            bump(counter::HEADS_SPLIT);
        }
        if HEAD_CONTINUATION.insert(key, &s.scan, 0).is_err() {
            bump(counter::HEADS_UNPARSED);
        }
        return None;
    }
    if s.scan.done != SCAN_COMPLETE {
        bump(counter::HEADS_UNPARSED);
        return None;
    }
    let token = s.scan.token();
    if token.is_none() {
        bump(counter::HEADS_WITHOUT_TOKEN);
    }
    // SAFETY: values copied out.
    let actor = token
        .and_then(|t| unsafe { ENFORCE_ACTORS.get(&t) }.copied())
        .filter(|a| a.expires_ns > now);
    let by_address = point == POINT_SERVER_READ && settings.flags & SETTINGS_CLIENT_ADDRESSES != 0;
    if actor.is_none() && !by_address {
        return None;
    }
    let any_host = s.scan.route_key;
    let listed = match s.scan.host_route_key() {
        Some(on_host) if listed_route(on_host, now) => Some(on_host),
        _ if listed_route(any_host, now) => Some(any_host),
        _ => None,
    };
    if let Some(actor) = actor
        && (listed.is_some() || actor.flags & ACTOR_ANY_ROUTE != 0)
    {
        return Some(Pending {
            token_key: token.unwrap_or(0),
            route_key: listed.unwrap_or(any_host),
            credential: s.scan.credential(),
            route_listed: listed.is_some() as u32,
        });
    }
    // The client's address may be listed: `decide` looks once the connection is known.
    by_address.then_some(Pending {
        token_key: 0,
        route_key: listed.unwrap_or(any_host),
        credential: CREDENTIAL_CLIENT_ADDRESS,
        route_listed: listed.is_some() as u32,
    })
}

/// Whether the client at the other end of the server's connection (`gate`) is listed for this
/// route: when the route is listed, or when its entry holds for every route.
#[inline(always)]
fn client_listed(gate: &GateKey, route_listed: u32) -> bool {
    let key = ClientKey {
        family: gate.family,
        _pad: [0; 6],
        addr: gate.remote_addr,
    };
    // SAFETY: value copied out.
    let Some(entry) = (unsafe { ENFORCE_CLIENTS.get(&key) }).copied() else {
        return false;
    };
    // SAFETY: helper without preconditions.
    entry.expires_ns > unsafe { bpf_ktime_get_ns() }
        && (route_listed != 0 || entry.flags & ACTOR_ANY_ROUTE != 0)
}

/// The continuation key's stream: bit 62 (never set in a user-space pointer, nor in the
/// plaintext ids, which set bit 63 over a kernel address or an fd) marks a server's reads.
#[inline(always)]
fn continuation_stream(stream: u64, point: u32) -> u64 {
    if point == POINT_SERVER_READ {
        stream ^ (1 << 62)
    } else {
        stream
    }
}

/// A stream's connection is going away: a head it left unfinished is not resumed by the next
/// connection that gets the same stream id.
#[inline(always)]
pub fn forget_head(key: &StreamKey) {
    for point in [POINT_CLIENT_WRITE, POINT_SERVER_READ] {
        let _ = HEAD_CONTINUATION.remove(&StreamKey {
            tgid: key.tgid,
            stream: continuation_stream(key.stream, point),
        });
    }
}

/// Reports a hit and, in enforce mode, closes the gate of `fd`'s connection.
#[inline(always)]
pub fn decide(settings: &EnforceSettings, point: u32, stream: u64, fd: i32, hit: &Pending) {
    let Some(scratch) = HEAD_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot.
    let v = unsafe { &mut (*scratch).verdict };
    v.header = header(KIND_VERDICT);
    v.stream = stream;
    v.token_key = hit.token_key;
    v.route_key = hit.route_key;
    v.fd = fd;
    v.point = point;
    v.credential = hit.credential;
    v.flags = if stream & PLAINTEXT_STREAM_BIT != 0 {
        VERDICT_PLAINTEXT
    } else {
        0
    };
    v.gate = GateKey::default();
    v.comm = bpf_get_current_comm().unwrap_or([0u8; COMM_BYTES]);
    // SAFETY: helper without preconditions.
    v.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    if let Some(sk) = sock_of_fd(fd)
        && tuple_of_sock(sk, &mut v.gate).is_some()
    {
        v.flags |= VERDICT_TUPLE_KNOWN;
    }
    if hit.credential == CREDENTIAL_CLIENT_ADDRESS
        && (v.flags & VERDICT_TUPLE_KNOWN == 0 || !client_listed(&v.gate, hit.route_listed))
    {
        return;
    }
    if settings.mode == MODE_MONITOR {
        v.action = ACTION_WOULD_BLOCK;
        bump(counter::WOULD_BLOCK);
    } else {
        v.action = ACTION_BLOCKED;
        bump(counter::BLOCKED);
        // SAFETY: helper without preconditions.
        let expires_ns = unsafe { bpf_ktime_get_ns() } + settings.gate_ttl_ns;
        if v.flags & VERDICT_TUPLE_KNOWN == 0
            || ENFORCE_GATE
                .insert(&v.gate, &GateEntry { expires_ns }, 0)
                .is_err()
        {
            v.flags |= VERDICT_GATE_FAILED;
            bump(counter::GATE_FAILED);
        }
    }
    // A verdict wakes the agent at once: the reset should follow the decision closely.
    if crate::maps::EVENTS
        .output::<VerdictRecord>(v, BPF_RB_FORCE_WAKEUP as u64)
        .is_err()
    {
        bump(counter::VERDICTS_LOST);
    }
}

/// `-ECONNRESET`: what a denied send returns to the process.
const ECONNRESET: i32 = 104;

/// The BPF-LSM gate, where the kernel lets LSM programs attach (Debian's 6.1 does; kernels
/// without BPF trampolines do not): a send on a gated connection fails with ECONNRESET before
/// anything is queued. Defers to an earlier LSM's refusal.
#[lsm(hook = "socket_sendmsg")]
pub fn enforce_lsm_sendmsg(ctx: LsmContext) -> i32 {
    // socket_sendmsg(struct socket *sock, struct msghdr *msg, int size), then the previous ret.
    let previous: i32 = ctx.arg(3);
    if previous != 0 {
        return previous;
    }
    let sock: u64 = ctx.arg(0);
    lsm_gate(sock).unwrap_or(0)
}

#[inline(always)]
fn lsm_gate(sock: u64) -> Option<i32> {
    let off = crate::maps::kernel_offsets();
    if off.valid != 1 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel tolerates bad addresses and reports an error.
    let sk: u64 = unsafe {
        aya_ebpf::helpers::bpf_probe_read_kernel((sock + off.socket_sk as u64) as *const u64)
    }
    .ok()?;
    let mut key = GateKey::default();
    tuple_of_sock(sk, &mut key)?;
    // SAFETY: value copied out.
    let entry = unsafe { ENFORCE_GATE.get(&key) }.copied()?;
    // SAFETY: helper without preconditions.
    if entry.expires_ns <= unsafe { bpf_ktime_get_ns() } {
        return None;
    }
    bump(counter::LSM_DENIED);
    Some(-ECONNRESET)
}

const BPF_HDR_START_NET: u32 = 1;
const IPPROTO_TCP: u8 = 6;
const TCP_FLAG_RST: u8 = 0x04;
const SK_PASS: i32 = 1;
const SK_DROP: i32 = 0;

/// The egress gate, attached to the cgroup v2 root: drops the packets of gated connections,
/// except RST segments.
#[cgroup_skb(egress)]
pub fn enforce_egress_gate(ctx: SkBuffContext) -> i32 {
    gate(&ctx).unwrap_or(SK_PASS)
}

#[inline(always)]
fn gate(ctx: &SkBuffContext) -> Option<i32> {
    let skb: *const __sk_buff = ctx.skb.skb;
    let mut key = GateKey::default();
    // SAFETY: context fields readable by cgroup_skb programs (the skb's socket).
    unsafe {
        let family = (*skb).family;
        key.family = family as u16;
        if family == AF_INET as u32 {
            key.local_addr[..4].copy_from_slice(&(*skb).local_ip4.to_ne_bytes());
            key.remote_addr[..4].copy_from_slice(&(*skb).remote_ip4.to_ne_bytes());
        } else if family == AF_INET6 as u32 {
            let l = (*skb).local_ip6;
            let r = (*skb).remote_ip6;
            for i in 0..4 {
                key.local_addr[i * 4..i * 4 + 4].copy_from_slice(&l[i].to_ne_bytes());
                key.remote_addr[i * 4..i * 4 + 4].copy_from_slice(&r[i].to_ne_bytes());
            }
        } else {
            return None;
        }
        key.local_port = (*skb).local_port as u16;
        // remote_port is the network-order port; little-endian kernels shift it into the
        // upper half of the field.
        let raw = (*skb).remote_port;
        let be = if raw > 0xffff { raw >> 16 } else { raw };
        key.remote_port = u16::from_be(be as u16);
    }
    // SAFETY: value copied out.
    let entry = unsafe { ENFORCE_GATE.get(&key) }.copied()?;
    // SAFETY: helper without preconditions.
    if entry.expires_ns <= unsafe { bpf_ktime_get_ns() } {
        let _ = ENFORCE_GATE.remove(&key);
        return None;
    }
    if tcp_flags(ctx, key.family)? & TCP_FLAG_RST != 0 {
        return Some(SK_PASS);
    }
    bump(counter::PACKETS_DROPPED);
    Some(SK_DROP)
}

/// TCP flags of the packet, None when it is not TCP (or the headers cannot be read).
#[inline(always)]
fn tcp_flags(ctx: &SkBuffContext, family: u16) -> Option<u8> {
    let mut ip = [0u8; 40];
    let (proto, header_len) = if family == AF_INET {
        load(ctx, 0, &mut ip[..20])?;
        (ip[9], ((ip[0] & 0x0f) as u32) * 4)
    } else {
        load(ctx, 0, &mut ip[..40])?;
        (ip[6], 40)
    };
    if proto != IPPROTO_TCP {
        return None;
    }
    let mut flags = [0u8; 1];
    load(ctx, header_len + 13, &mut flags)?;
    Some(flags[0])
}

#[inline(always)]
fn load(ctx: &SkBuffContext, offset: u32, to: &mut [u8]) -> Option<()> {
    // SAFETY: `to` is a stack buffer of the given length.
    let ret = unsafe {
        bpf_skb_load_bytes_relative(
            ctx.skb.skb as *const _,
            offset,
            to.as_mut_ptr().cast(),
            to.len() as u32,
            BPF_HDR_START_NET,
        )
    };
    (ret == 0).then_some(())
}
