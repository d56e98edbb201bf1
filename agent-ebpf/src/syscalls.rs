//! Syscall tracepoints: which socket an SSL call uses (the I/O nested inside it), the role of a
//! socket (connect → client, accept → server) and its end (close).
//!
//! All sys_enter_* tracepoints used here carry the fd as their first argument at offset 16.

use agent_common::event::{
    CloseRecord, KIND_CLOSE, KIND_SOCKET, ROLE_CLIENT, ROLE_SERVER, ROLE_UNKNOWN, SocketRecord,
    counter,
};
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};

use crate::{
    emit::{bump, emit_control, header},
    filter::ports_allowed,
    maps::{CALLS, CONNECTING, SOCKETS, STREAMS, SocketState, StreamKey, StreamState},
    sock::fill_addresses,
};

const ARG0_OFFSET: usize = 16;
const RET_OFFSET: usize = 16;
const EINPROGRESS: i64 = 115;

#[inline(always)]
fn socket_key(pid_tgid: u64, fd: i64) -> u64 {
    (pid_tgid & 0xffff_ffff_0000_0000) | (fd as u64 & 0xffff_ffff)
}

#[inline(always)]
fn first_arg(ctx: &TracePointContext) -> Option<i64> {
    // SAFETY: every tracepoint attached to these programs has an 8-byte field at offset 16.
    unsafe { ctx.read_at::<i64>(ARG0_OFFSET) }.ok()
}

/// Runs for every read/write-family syscall on the host; returns at the first map miss unless
/// the thread is inside an SSL call whose socket has not been reported yet.
#[inline(always)]
fn on_socket_io(ctx: &TracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(call) = CALLS.get_ptr_mut(&pid_tgid) else {
        return;
    };
    // SAFETY: map value of this thread's in-flight call.
    let call = unsafe { &mut *call };
    if call.fd_seen != 0 {
        return;
    }
    call.fd_seen = 1;
    let Some(fd) = first_arg(ctx) else { return };
    let fd = fd as i32 as i64;
    let key = StreamKey {
        tgid: pid_tgid >> 32,
        ssl: call.ssl,
    };
    match STREAMS.get_ptr_mut(&key) {
        Some(state) => {
            // SAFETY: map value pointer.
            let state = unsafe { &mut *state };
            if state.fd == fd {
                return;
            }
            state.fd = fd;
        }
        None => {
            let state = StreamState {
                fd,
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
    let socket = SocketState {
        ssl: call.ssl,
        role,
        _pad: 0,
    };
    if SOCKETS.insert(&skey, &socket, 0).is_err() {
        bump(counter::STREAM_TABLE_FULL, 1);
    }
    let mut record = SocketRecord {
        header: header(KIND_SOCKET),
        ssl: call.ssl,
        fd: fd as i32,
        role,
        flags: 0,
        family: 0,
        local_port: 0,
        remote_port: 0,
        _pad: [0; 6],
        local_addr: [0; 16],
        remote_addr: [0; 16],
    };
    fill_addresses(fd as i32, &mut record);
    if !ports_allowed(record.local_port, record.remote_port) {
        // Unknown addresses (port 0) pass unless an include list exists; an excluded
        // connection is marked so its calls are skipped, and userspace never hears of it.
        if let Some(state) = STREAMS.get_ptr_mut(&key) {
            // SAFETY: map value pointer.
            unsafe { (*state).filtered = 1 };
        }
        return;
    }
    emit_control(&record);
}

macro_rules! socket_io_tracepoint {
    ($name:ident) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            on_socket_io(&ctx);
            0
        }
    };
}

socket_io_tracepoint!(sys_enter_read);
socket_io_tracepoint!(sys_enter_write);
socket_io_tracepoint!(sys_enter_readv);
socket_io_tracepoint!(sys_enter_writev);
socket_io_tracepoint!(sys_enter_recvfrom);
socket_io_tracepoint!(sys_enter_sendto);
socket_io_tracepoint!(sys_enter_recvmsg);
socket_io_tracepoint!(sys_enter_sendmsg);

#[inline(always)]
fn remember_role(pid_tgid: u64, fd: i64, role: u32) {
    let state = SocketState {
        ssl: 0,
        role,
        _pad: 0,
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
    if let Some(fd) = first_arg(&ctx) {
        let _ = CONNECTING.insert(&bpf_get_current_pid_tgid(), &(fd as u64), 0);
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
    // SAFETY: sys_exit_* tracepoints carry `long ret` at offset 16.
    let ret = unsafe { ctx.read_at::<i64>(RET_OFFSET) }.unwrap_or(-1);
    if ret == 0 || ret == -EINPROGRESS {
        remember_role(pid_tgid, fd as i64, ROLE_CLIENT);
    }
    0
}

#[inline(always)]
fn on_accept_exit(ctx: &TracePointContext) {
    // SAFETY: as above.
    let ret = unsafe { ctx.read_at::<i64>(RET_OFFSET) }.unwrap_or(-1);
    if ret >= 0 {
        remember_role(bpf_get_current_pid_tgid(), ret, ROLE_SERVER);
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
    let Some(fd) = first_arg(&ctx) else { return 0 };
    let fd = fd as i32 as i64;
    let pid_tgid = bpf_get_current_pid_tgid();
    let skey = socket_key(pid_tgid, fd);
    // SAFETY: value copied out.
    let Some(socket) = (unsafe { SOCKETS.get(&skey) }).copied() else {
        return 0;
    };
    let _ = SOCKETS.remove(&skey);
    if socket.ssl == 0 {
        return 0;
    }
    // The SSL* may be reused for the next connection: its stream state must start afresh.
    let _ = STREAMS.remove(&StreamKey {
        tgid: pid_tgid >> 32,
        ssl: socket.ssl,
    });
    emit_control(&CloseRecord {
        header: header(KIND_CLOSE),
        ssl: socket.ssl,
        fd: fd as i32,
        _pad: 0,
    });
    0
}
