//! Syscall tracepoints: which socket an SSL call uses (the I/O nested inside it), plaintext
//! socket I/O (handed to `plaintext`), the role of a socket (connect → client, accept → server)
//! and its end (close).
//!
//! The sys_enter_* tracepoints used here carry the fd at offset 16, the buffer (or iovec array,
//! or msghdr) at 24 and the length (or iovec count) at 32; sys_exit_* carry `long ret` at 16.

use agent_common::enforce::{POINT_CLIENT_WRITE, POINT_SERVER_READ};
use agent_common::event::{
    CloseRecord, DIRECTION_EGRESS, DIRECTION_INGRESS, KIND_CLOSE, KIND_SOCKET,
    PLAINTEXT_STREAM_BIT, ROLE_CLIENT, ROLE_SERVER, ROLE_UNKNOWN, SocketRecord, counter,
};
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};

use crate::{
    emit::{bump, emit_control, header},
    enforce,
    enforce_plain::{self, PlainRequest},
    filter::ports_allowed,
    maps::{
        CALLS, CLASS_HTTP, CLASS_OTHER, CLASS_UNKNOWN, CONNECTING, IO_PLAIN, IO_SENDFILE,
        IO_SSL_SOCKET, NOT_SOCKETS, PENDING_IO, PendingIo, SHAPE_BUF, SHAPE_IOV, SHAPE_MSG,
        SOCKETS, STREAMS, SocketState, SslCall, StreamKey, StreamState,
    },
    plaintext,
    sock::{fill_addresses, sock_of_fd},
};

const FD_OFFSET: usize = 16;
const BUF_OFFSET: usize = 24;
const COUNT_OFFSET: usize = 32;
const RET_OFFSET: usize = 16;
const EINPROGRESS: i64 = 115;

#[inline(always)]
pub fn socket_key(pid_tgid: u64, fd: i32) -> u64 {
    (pid_tgid & 0xffff_ffff_0000_0000) | (fd as u32 as u64)
}

#[inline(always)]
fn arg(ctx: &TracePointContext, offset: usize) -> Option<u64> {
    // SAFETY: every tracepoint attached to these programs has 8-byte fields at these offsets.
    unsafe { ctx.read_at::<u64>(offset) }.ok()
}

#[inline(always)]
fn syscall_ret(ctx: &TracePointContext) -> i64 {
    // SAFETY: sys_exit_* tracepoints carry `long ret` at offset 16.
    unsafe { ctx.read_at::<i64>(RET_OFFSET) }.unwrap_or(-1)
}

/// Runs for every read/write-family syscall on the host; returns after one or two map misses
/// unless the thread is inside an SSL call or the fd is a socket that may carry plain HTTP.
#[inline(always)]
fn on_io_enter(ctx: &TracePointContext, direction: u32, shape: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(fd) = arg(ctx, FD_OFFSET) else {
        return;
    };
    let fd = fd as i32;
    if let Some(call) = CALLS.get_ptr_mut(&pid_tgid) {
        // SAFETY: map value of this thread's in-flight call.
        bind_ssl_socket(pid_tgid, unsafe { &mut *call }, fd);
        return;
    }
    let (Some(buf), Some(count)) = (arg(ctx, BUF_OFFSET), arg(ctx, COUNT_OFFSET)) else {
        return;
    };
    let kept = plaintext::on_enter(pid_tgid, fd, buf, count, direction, shape);
    // A client's plain request is judged before any of it leaves (last: a tail call).
    if kept && direction == DIRECTION_EGRESS {
        enforce_plain::hand_over(
            ctx,
            PlainRequest {
                buf,
                len: count,
                fd,
                shape,
                direction,
                _pad: 0,
            },
        );
    }
}

/// The first syscall nested in an SSL call names the stream's socket. The socket record itself
/// is written at the syscall's exit, when a kprobe may have seen the `struct sock`.
#[inline(always)]
fn bind_ssl_socket(pid_tgid: u64, call: &mut SslCall, fd: i32) {
    // A block judged before the socket was known waits for a syscall on a socket: an info
    // callback may write to stderr first (curl -v does, inside SSL_write).
    if call.verdict_pending != 0 && sock_of_fd(fd).is_some() {
        call.verdict_pending = 0;
        if let Some(settings) = enforce::settings() {
            let hit = enforce::Pending {
                token_key: call.verdict_token,
                route_key: call.verdict_route,
                credential: call.verdict_credential,
                route_listed: 1,
            };
            enforce::decide(&settings, POINT_CLIENT_WRITE, call.stream, fd, &hit);
        }
    }
    if call.fd_seen != 0 {
        return;
    }
    call.fd_seen = 1;
    let key = StreamKey {
        tgid: pid_tgid >> 32,
        stream: call.stream,
    };
    match STREAMS.get_ptr_mut(&key) {
        Some(state) => {
            // SAFETY: map value pointer.
            let state = unsafe { &mut *state };
            if state.fd == fd as i64 {
                return;
            }
            state.fd = fd as i64;
        }
        None => {
            let state = StreamState {
                fd: fd as i64,
                egress_offset: 0,
                ingress_offset: 0,
                filtered: 0,
            };
            if STREAMS.insert(&key, &state, 0).is_err() {
                bump(counter::STREAM_TABLE_FULL, 1);
            }
        }
    }
    let skey = socket_key(pid_tgid, fd);
    // SAFETY: value copied out.
    let role = unsafe { SOCKETS.get(&skey) }.map_or(ROLE_UNKNOWN, |s| s.role);
    // A socket under an SSL call carries TLS: its raw bytes are never captured.
    let socket = SocketState {
        stream: call.stream,
        role,
        class: CLASS_OTHER,
        sk: 0,
    };
    if SOCKETS.insert(&skey, &socket, 0).is_err() {
        bump(counter::STREAM_TABLE_FULL, 1);
    }
    let pending = PendingIo {
        stream: call.stream,
        buf: 0,
        count: 0,
        sk: 0,
        fd,
        kind: IO_SSL_SOCKET,
        shape: SHAPE_BUF,
        direction: 0,
    };
    if PENDING_IO.insert(&pid_tgid, &pending, 0).is_err() {
        bump(counter::CALL_TABLE_FULL, 1);
    }
}

#[inline(always)]
fn on_io_exit(ctx: &TracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: value copied out before removal.
    let Some(io) = (unsafe { PENDING_IO.get(&pid_tgid) }).copied() else {
        return;
    };
    let _ = PENDING_IO.remove(&pid_tgid);
    if io.kind == IO_SSL_SOCKET {
        // SAFETY: value copied out.
        let role =
            unsafe { SOCKETS.get(&socket_key(pid_tgid, io.fd)) }.map_or(ROLE_UNKNOWN, |s| s.role);
        if !report_socket(io.stream, io.fd, io.sk, role) {
            if let Some(state) = STREAMS.get_ptr_mut(&StreamKey {
                tgid: pid_tgid >> 32,
                stream: io.stream,
            }) {
                // SAFETY: map value pointer.
                unsafe { (*state).filtered = 1 };
            }
        }
    } else if io.kind == IO_PLAIN {
        let ret = syscall_ret(ctx);
        // A server's plain request is judged once read (last: a tail call).
        if ret > 0
            && plaintext::on_exit(pid_tgid, &io, ret as u64)
            && io.direction == DIRECTION_INGRESS
        {
            enforce_plain::hand_over(
                ctx,
                PlainRequest {
                    buf: io.buf,
                    len: ret as u64,
                    fd: io.fd,
                    shape: io.shape,
                    direction: io.direction,
                    _pad: 0,
                },
            );
        }
    } else if io.kind == IO_SENDFILE {
        let ret = syscall_ret(ctx);
        if ret > 0 {
            plaintext::on_sendfile_exit(pid_tgid, &io, ret as u64);
        }
    }
}

/// Writes the socket record of stream `ssl`; false (and nothing written) when a port filter
/// excludes the connection. Unknown addresses (port 0) pass unless an include list exists.
#[inline(always)]
pub fn report_socket(ssl: u64, fd: i32, sk: u64, role: u32) -> bool {
    let mut record = SocketRecord {
        header: header(KIND_SOCKET),
        stream: ssl,
        fd,
        role,
        flags: 0,
        family: 0,
        local_port: 0,
        remote_port: 0,
        _pad: [0; 6],
        local_addr: [0; 16],
        remote_addr: [0; 16],
    };
    fill_addresses(fd, sk, &mut record);
    if !ports_allowed(record.local_port, record.remote_port) {
        return false;
    }
    emit_control(&record);
    true
}

macro_rules! io_tracepoints {
    ($enter:ident, $exit:ident, $direction:expr, $shape:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            on_io_enter(&ctx, $direction, $shape);
            0
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            on_io_exit(&ctx);
            0
        }
    };
}

io_tracepoints!(sys_enter_read, sys_exit_read, DIRECTION_INGRESS, SHAPE_BUF);
io_tracepoints!(sys_enter_write, sys_exit_write, DIRECTION_EGRESS, SHAPE_BUF);
io_tracepoints!(
    sys_enter_readv,
    sys_exit_readv,
    DIRECTION_INGRESS,
    SHAPE_IOV
);
io_tracepoints!(
    sys_enter_writev,
    sys_exit_writev,
    DIRECTION_EGRESS,
    SHAPE_IOV
);
io_tracepoints!(
    sys_enter_recvfrom,
    sys_exit_recvfrom,
    DIRECTION_INGRESS,
    SHAPE_BUF
);
io_tracepoints!(
    sys_enter_sendto,
    sys_exit_sendto,
    DIRECTION_EGRESS,
    SHAPE_BUF
);
io_tracepoints!(
    sys_enter_recvmsg,
    sys_exit_recvmsg,
    DIRECTION_INGRESS,
    SHAPE_MSG
);
io_tracepoints!(
    sys_enter_sendmsg,
    sys_exit_sendmsg,
    DIRECTION_EGRESS,
    SHAPE_MSG
);

/// sendfile(out_fd, in_fd, offset, count): file bytes onto a socket, never in user memory.
#[tracepoint]
pub fn sys_enter_sendfile64(ctx: TracePointContext) -> u32 {
    if let Some(fd) = arg(&ctx, FD_OFFSET) {
        plaintext::on_sendfile_enter(bpf_get_current_pid_tgid(), fd as i32);
    }
    0
}

#[tracepoint]
pub fn sys_exit_sendfile64(ctx: TracePointContext) -> u32 {
    on_io_exit(&ctx);
    0
}

#[inline(always)]
fn remember_role(pid_tgid: u64, fd: i32, role: u32) {
    let state = SocketState {
        stream: 0,
        role,
        class: CLASS_UNKNOWN,
        sk: 0,
    };
    if SOCKETS
        .insert(&socket_key(pid_tgid, fd), &state, 0)
        .is_err()
    {
        bump(counter::STREAM_TABLE_FULL, 1);
    }
}

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    if let Some(fd) = arg(&ctx, FD_OFFSET) {
        let _ = CONNECTING.insert(&bpf_get_current_pid_tgid(), &fd, 0);
    }
    0
}

#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: value copied out.
    let Some(fd) = (unsafe { CONNECTING.get(&pid_tgid) }).copied() else {
        return 0;
    };
    let _ = CONNECTING.remove(&pid_tgid);
    let ret = syscall_ret(&ctx);
    if ret == 0 || ret == -EINPROGRESS {
        remember_role(pid_tgid, fd as i32, ROLE_CLIENT);
    }
    0
}

#[inline(always)]
fn on_accept_exit(ctx: &TracePointContext) {
    let ret = syscall_ret(ctx);
    if ret >= 0 {
        remember_role(bpf_get_current_pid_tgid(), ret as i32, ROLE_SERVER);
    }
}

#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    on_accept_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    on_accept_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    if let Some(fd) = arg(&ctx, FD_OFFSET) {
        forget_fd(fd as i32);
    }
    0
}

/// dup2/dup3 close `newfd` (their second argument) without a close syscall.
#[inline(always)]
fn on_dup_enter(ctx: &TracePointContext) {
    if let Some(fd) = arg(ctx, BUF_OFFSET) {
        forget_fd(fd as i32);
    }
}

#[tracepoint]
pub fn sys_enter_dup2(ctx: TracePointContext) -> u32 {
    on_dup_enter(&ctx);
    0
}

#[tracepoint]
pub fn sys_enter_dup3(ctx: TracePointContext) -> u32 {
    on_dup_enter(&ctx);
    0
}

/// The fd is going away: its socket state goes, and a stream on it ends.
#[inline(always)]
fn forget_fd(fd: i32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let skey = socket_key(pid_tgid, fd);
    let _ = NOT_SOCKETS.remove(&skey);
    // SAFETY: value copied out.
    let Some(socket) = (unsafe { SOCKETS.get(&skey) }).copied() else {
        return;
    };
    let _ = SOCKETS.remove(&skey);
    if enforce::active_at(POINT_CLIENT_WRITE | POINT_SERVER_READ).is_some() {
        enforce::forget_head(&enforce_plain::head_key(pid_tgid >> 32, fd));
        if socket.stream != 0 {
            enforce::forget_head(&StreamKey {
                tgid: pid_tgid >> 32,
                stream: socket.stream,
            });
        }
    }
    let stream = if socket.stream != 0 {
        socket.stream
    } else if socket.class == CLASS_HTTP {
        plaintext_stream_id(socket.sk, fd)
    } else {
        return;
    };
    // The SSL* (or fd) may be reused for the next connection: its state must start afresh.
    end_stream(pid_tgid, stream, fd);
}

/// A plaintext stream is named by its kernel socket (bit 63 is set in every kernel address on
/// x86-64 and arm64, never in a user-space `SSL *`), or by bit 63 | fd when the socket is unknown.
#[inline(always)]
pub fn plaintext_stream_id(sk: u64, fd: i32) -> u64 {
    if sk != 0 {
        sk | PLAINTEXT_STREAM_BIT
    } else {
        PLAINTEXT_STREAM_BIT | fd as u32 as u64
    }
}

#[inline(always)]
pub fn end_stream(pid_tgid: u64, stream: u64, fd: i32) {
    let _ = STREAMS.remove(&StreamKey {
        tgid: pid_tgid >> 32,
        stream: stream,
    });
    emit_control(&CloseRecord {
        header: header(KIND_CLOSE),
        stream: stream,
        fd,
        _pad: 0,
    });
}
