//! Uprobes on Go's crypto/tls: `(*Conn).Read` and `(*Conn).Write` at their entry and at every
//! return instruction of the function (found by decoding it in userspace). Never uretprobes:
//! Go copies goroutine stacks when they grow, and a return address rewritten by a uretprobe
//! would crash the program ("unexpected return pc").
//!
//! Go's register ABI (amd64, Go ≥ 1.17): receiver in RAX, the slice's pointer and length in
//! RBX and RCX; at a return, n in RAX.
//!
//! Reads are captured at their returns (the bytes exist only then). Writes are captured at
//! entry: a Go client reads responses on another goroutine, often another CPU, which could
//! report the response before the write's return reported the request; and Go's Write sends
//! all of its bytes or leaves the connection failed for good, so the entry's length is what
//! goes out. Write therefore has no return probes at all. R14 holds the running goroutine (`g`), which stays the
//! same from entry to return even when the goroutine moves to another thread, so calls are
//! keyed by (tgid, g), never by thread.
//!
//! The socket comes from the connection itself: `*tls.Conn` → its `net.Conn` (an interface
//! whose data word points at a `*net.TCPConn`) → `*netFD` → `poll.FD.Sysfd`. These layouts
//! have not changed since Go 1.17; a wrapped connection breaks the chain, and the fd-table
//! walk (it must be a socket of this process) rejects what the chain read.

use agent_common::{
    enforce::{POINT_CLIENT_WRITE, counter as enforce_counter},
    event::{DIRECTION_EGRESS, DIRECTION_INGRESS, ROLE_CLIENT, ROLE_SERVER, ROLE_UNKNOWN, counter},
};
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, generated::bpf_get_attach_cookie},
    macros::{map, uprobe},
    maps::LruHashMap,
    programs::ProbeContext,
};

use crate::{
    emit::bump,
    enforce,
    filter::process_allowed,
    maps::{CLASS_OTHER, SOCKETS, STREAMS, SocketState, SslCall, StreamKey, StreamState},
    openssl::capture,
    sock::sock_of_fd,
    syscalls::{report_socket, socket_key},
};

/// In-flight Go TLS calls by (tgid, goroutine). LRU and large: a goroutine parked in Read on an
/// idle keep-alive connection holds its entry for as long as the connection is idle; an entry
/// evicted before its return is counted there (GO_RETURNS_UNMATCHED).
#[map]
pub static GO_CALLS: LruHashMap<GoCallKey, SslCall> = LruHashMap::with_max_entries(65536, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoCallKey {
    pub tgid: u64,
    pub goroutine: u64,
}

/// Offset of `isClient` in `crypto/tls.Conn` (after the 16-byte `conn net.Conn`).
const CONN_IS_CLIENT: u64 = 16;
/// Offset of the interface's data word in `net.Conn`.
const IFACE_DATA: u64 = 8;
/// Offset of `Sysfd` in `net.netFD` (its `pfd poll.FD` starts with the 16-byte `fdMutex`).
const NETFD_SYSFD: u64 = 16;
/// Fds above this are not believed (a broken chain reads arbitrary words).
const MAX_FD: u64 = 1 << 24;

#[uprobe]
pub fn go_tls_read_entry(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIRECTION_INGRESS);
    0
}

#[uprobe]
pub fn go_tls_write_entry(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIRECTION_EGRESS);
    0
}

/// Attached at every return instruction of `(*Conn).Read`.
#[uprobe]
pub fn go_tls_return(ctx: ProbeContext) -> u32 {
    bump(counter::SSL_RETURN_HITS, 1);
    // SAFETY: the uprobe context is the user registers.
    let (goroutine, ret) = unsafe { ((*ctx.regs).r14, (*ctx.regs).rax) };
    let pid_tgid = bpf_get_current_pid_tgid();
    let key = GoCallKey {
        tgid: pid_tgid >> 32,
        goroutine,
    };
    // SAFETY: copied out before removal.
    let Some(call) = (unsafe { GO_CALLS.get(&key) }).copied() else {
        bump(counter::GO_RETURNS_UNMATCHED, 1);
        return 0;
    };
    let _ = GO_CALLS.remove(&key);
    // n int: a Read that returns n > 0 with an error still delivered n bytes.
    let n = ret as i64;
    if n <= 0 {
        return 0;
    }
    capture(pid_tgid, &call, n as u64);
    0
}

#[inline(always)]
fn enter(ctx: &ProbeContext, direction: u32) {
    bump(counter::SSL_ENTRY_HITS, 1);
    if !process_allowed() {
        bump(counter::FILTERED_CALLS, 1);
        return;
    }
    // SAFETY: the uprobe context is the user registers.
    let (conn, buf, len, goroutine) = unsafe {
        (
            (*ctx.regs).rax,
            (*ctx.regs).rbx,
            (*ctx.regs).rcx,
            (*ctx.regs).r14,
        )
    };
    if conn == 0 || goroutine == 0 {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: helper valid in uprobe context; 0 when no cookie was set.
    let library_id = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    let fd = bind_socket(pid_tgid, conn);
    let call = SslCall {
        stream: conn,
        buf,
        len_out: 0,
        direction,
        is_ex: 0,
        library_id,
        fd_seen: (fd >= 0) as u32,
        verdict_pending: 0,
        verdict_credential: 0,
        verdict_token: 0,
        verdict_route: 0,
    };
    // A client's request is judged before it is encrypted; with the socket unknown (a wrapped
    // connection) the verdict is reported with its gate failed.
    if direction == DIRECTION_EGRESS
        && let Some(settings) = enforce::active_at(POINT_CLIENT_WRITE)
        && let Some(hit) = enforce::judge(
            &settings,
            POINT_CLIENT_WRITE,
            &StreamKey {
                tgid: pid_tgid >> 32,
                stream: conn,
            },
            buf,
            len,
            enforce_counter::COUNT,
        )
    {
        enforce::decide(&settings, POINT_CLIENT_WRITE, conn, fd, &hit);
    }
    if direction == DIRECTION_EGRESS {
        if len > 0 {
            capture(pid_tgid, &call, len);
        }
        return;
    }
    let key = GoCallKey {
        tgid: pid_tgid >> 32,
        goroutine,
    };
    if GO_CALLS.insert(&key, &call, 0).is_err() {
        bump(counter::CALL_TABLE_FULL, 1);
    }
}

#[inline(always)]
fn read_word(addr: u64) -> Option<u64> {
    // SAFETY: bpf_probe_read_user tolerates bad addresses and reports an error.
    unsafe { bpf_probe_read_user(addr as *const u64) }.ok()
}

/// The connection's socket fd, from the `tls.Conn` → `net.Conn` → `netFD` chain, validated
/// against this process's fd table; -1 when the chain does not lead to a socket. A wrapper
/// that embeds the `net.Conn` as its first field (what listeners that limit or count
/// connections do) is looked through once.
#[inline(always)]
fn socket_fd(conn: u64) -> i32 {
    let Some(data) = read_word(conn + IFACE_DATA) else {
        return -1;
    };
    let fd = fd_of_tcp_conn(data);
    if fd >= 0 {
        return fd;
    }
    match read_word(data + IFACE_DATA) {
        Some(inner) => fd_of_tcp_conn(inner),
        None => -1,
    }
}

/// The fd of the `*net.TCPConn` at `tcp_conn` (its first word is the `*netFD`), if that is a
/// socket of this process.
#[inline(always)]
fn fd_of_tcp_conn(tcp_conn: u64) -> i32 {
    let Some(netfd) = read_word(tcp_conn) else {
        return -1;
    };
    let Some(fd) = read_word(netfd + NETFD_SYSFD) else {
        return -1;
    };
    if fd >= MAX_FD || sock_of_fd(fd as i32).is_none() {
        return -1;
    }
    fd as i32
}

/// Ties stream `conn` to its socket the first time it is seen (and again if the fd changed):
/// the stream's fd, the socket marked as TLS (never captured raw), the socket record with
/// addresses. Returns the fd, or -1 when unknown.
#[inline(always)]
fn bind_socket(pid_tgid: u64, conn: u64) -> i32 {
    let key = StreamKey {
        tgid: pid_tgid >> 32,
        stream: conn,
    };
    // SAFETY: value copied out.
    if let Some(state) = unsafe { STREAMS.get(&key) }
        && state.fd >= 0
    {
        return state.fd as i32;
    }
    let fd = socket_fd(conn);
    if fd < 0 {
        bump(counter::GO_SOCKET_UNKNOWN, 1);
        return -1;
    }
    let mut state = StreamState {
        fd: fd as i64,
        egress_offset: 0,
        ingress_offset: 0,
        filtered: 0,
    };
    // SAFETY: value copied out.
    if let Some(old) = unsafe { STREAMS.get(&key) } {
        state.egress_offset = old.egress_offset;
        state.ingress_offset = old.ingress_offset;
    }
    let skey = socket_key(pid_tgid, fd);
    // accept/connect told the role when they ran after the agent started; else tls.Conn knows.
    // SAFETY: value copied out.
    let mut role = unsafe { SOCKETS.get(&skey) }.map_or(ROLE_UNKNOWN, |s| s.role);
    if role == ROLE_UNKNOWN {
        // SAFETY: a bool in the process's memory; a failed read leaves the role unknown.
        role = match unsafe { bpf_probe_read_user((conn + CONN_IS_CLIENT) as *const u8) } {
            Ok(1) => ROLE_CLIENT,
            Ok(0) => ROLE_SERVER,
            _ => ROLE_UNKNOWN,
        };
    }
    let socket = SocketState {
        stream: conn,
        role,
        class: CLASS_OTHER,
        sk: 0,
    };
    if SOCKETS.insert(&skey, &socket, 0).is_err() {
        bump(counter::STREAM_TABLE_FULL, 1);
    }
    if !report_socket(conn, fd, 0, role) {
        state.filtered = 1;
    }
    if STREAMS.insert(&key, &state, 0).is_err() {
        bump(counter::STREAM_TABLE_FULL, 1);
    }
    fd
}
