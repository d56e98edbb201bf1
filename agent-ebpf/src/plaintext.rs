//! Plain HTTP on sockets (HTTP/1, and h2c by its preface), captured from the read/write-family syscalls.
//!
//! Candidates are sockets made by connect/accept (the SOCKETS map knows them) and any other fd
//! that the fd table shows to be a socket at its first I/O (looked up once per fd). Each is
//! classified once by its first bytes outside any SSL call: an HTTP/1 request or status line
//! makes it an HTTP socket, captured from then on in both directions; anything else — a TLS
//! handshake, a database protocol, SSH — marks it "other" and none of its bytes ever leave the
//! kernel. An HTTP socket that later carries a TLS record (a CONNECT tunnel) stops being captured.

use agent_common::event::{
    DATA_NOT_CAPTURED, DATA_PLAINTEXT, DIRECTION_EGRESS, DataRecord, KIND_DATA, ROLE_UNKNOWN,
    counter,
};
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_probe_read_user, generated::bpf_get_current_cgroup_id,
};

use crate::{
    emit::{
        Payload, bump, capped, emit_buffer_global, emit_control, emit_payload, header, prepare,
    },
    filter::process_allowed,
    maps::{
        CLASS_HTTP, CLASS_OTHER, CLASS_UNKNOWN, IO_PLAIN, IO_SENDFILE, NOT_SOCKETS, PENDING_IO,
        PendingIo, SHAPE_BUF, SHAPE_MSG, SOCKETS, STREAMS, SocketState, StreamKey, StreamState,
        plaintext_enabled,
    },
    sock::sock_of_fd,
    syscalls::{end_stream, plaintext_stream_id, report_socket, socket_key},
};

/// iovecs walked per readv/writev/sendmsg/recvmsg; bytes in later ones are counted, not copied.
const MAX_IOV: u64 = 8;
/// `struct user_msghdr`: msg_iov at 16, msg_iovlen at 24.
const MSG_IOV_OFFSET: u64 = 16;
const MSG_IOVLEN_OFFSET: u64 = 24;

#[repr(C)]
#[derive(Clone, Copy)]
struct Iovec {
    base: u64,
    len: u64,
}

/// sys_enter of a read/write-family syscall outside an SSL call. True when the call is kept
/// (the fd is a socket that is or may become plain HTTP, of a process capture follows).
#[inline(always)]
pub fn on_enter(pid_tgid: u64, fd: i32, buf: u64, count: u64, direction: u32, shape: u32) -> bool {
    if fd < 0 || !plaintext_enabled() {
        return false;
    }
    let skey = socket_key(pid_tgid, fd);
    // SAFETY: values copied out.
    let socket = match unsafe { SOCKETS.get(&skey) }.copied() {
        Some(socket) => socket,
        None => {
            // An fd this process did not connect/accept itself: inherited across fork (servers
            // that fork per connection), or opened before the agent started. Look once.
            if unsafe { NOT_SOCKETS.get(&skey) }.is_some() {
                return false;
            }
            let Some(sk) = sock_of_fd(fd) else {
                let _ = NOT_SOCKETS.insert(&skey, &1, 0);
                return false;
            };
            let socket = SocketState {
                stream: 0,
                role: ROLE_UNKNOWN,
                class: CLASS_UNKNOWN,
                sk,
            };
            if SOCKETS.insert(&skey, &socket, 0).is_err() {
                bump(counter::STREAM_TABLE_FULL, 1);
                return false;
            }
            socket
        }
    };
    if socket.stream != 0 || socket.class == CLASS_OTHER {
        return false;
    }
    if !process_allowed() {
        bump(counter::FILTERED_CALLS, 1);
        return false;
    }
    let pending = PendingIo {
        stream: 0,
        buf,
        count,
        sk: 0,
        fd,
        kind: IO_PLAIN,
        shape,
        direction,
    };
    if PENDING_IO.insert(&pid_tgid, &pending, 0).is_err() {
        bump(counter::CALL_TABLE_FULL, 1);
    }
    true
}

/// sys_exit of a syscall `on_enter` kept, which moved `ret` (> 0) bytes. True when they were
/// plain HTTP (captured, or past the capture's own limits).
#[inline(always)]
pub fn on_exit(pid_tgid: u64, io: &PendingIo, ret: u64) -> bool {
    let Some(socket) = SOCKETS.get_ptr_mut(&socket_key(pid_tgid, io.fd)) else {
        return false;
    };
    // SAFETY: map value pointer.
    let socket = unsafe { &mut *socket };
    let Some(iov) = iov_array(io) else {
        return false;
    };
    let Some(first) = segment(io, iov, 0) else {
        return false;
    };
    let seen = if first.len < ret { first.len } else { ret };
    // SAFETY: user memory read; a fault means nothing to look at.
    let Ok(head) = (unsafe { bpf_probe_read_user(first.base as *const [u8; 8]) }) else {
        return false;
    };
    if socket.class == CLASS_UNKNOWN {
        if !looks_like_http(&head, seen) {
            socket.class = CLASS_OTHER;
            bump(counter::PLAIN_SOCKETS_OTHER, 1);
            return false;
        }
        if socket.sk == 0 {
            socket.sk = if io.sk != 0 {
                io.sk
            } else {
                sock_of_fd(io.fd).unwrap_or(0)
            };
        }
    }
    let stream = plaintext_stream_id(socket.sk, io.fd);
    if socket.class == CLASS_UNKNOWN {
        if !report_socket(stream, io.fd, io.sk, socket.role) {
            socket.class = CLASS_OTHER;
            bump(counter::FILTERED_CALLS, 1);
            return false;
        }
        socket.class = CLASS_HTTP;
        bump(counter::PLAIN_SOCKETS_HTTP, 1);
    } else if socket.class == CLASS_HTTP {
        if looks_like_tls_handshake(&head, seen) {
            socket.class = CLASS_OTHER;
            bump(counter::PLAIN_SOCKETS_TO_TLS, 1);
            end_stream(pid_tgid, stream, io.fd);
            return false;
        }
    } else {
        return false;
    }
    let key = StreamKey {
        tgid: pid_tgid >> 32,
        stream: stream,
    };
    let base_offset = claim_offsets(&key, io, ret);
    let payload = Payload {
        stream: stream,
        buf: first.base,
        len: ret,
        stream_offset: base_offset,
        direction: io.direction,
        fd: io.fd,
        library_id: 0,
        flags: DATA_PLAINTEXT,
    };
    if io.shape == SHAPE_BUF {
        emit_payload(&payload);
        return true;
    }
    if !prepare(&payload) {
        return true;
    }
    let cap = capped(ret);
    let done = emit_iov_global(iov.0, iov.1, cap, base_offset);
    if done < cap {
        bump(counter::IOV_UNCAPTURED_BYTES, cap - done);
    }
    true
}

/// Copies `len` bytes spread over the iovec array `iov` (`count` entries, at most MAX_IOV
/// walked) into records of the prepared scratch record; returns the bytes covered. A global
/// BPF function (see agent-ebpf/build.rs) whose every iteration has one way on, so the verifier
/// checks it once and in linear time.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn emit_iov_global(iov: u64, count: u64, len: u64, stream_offset: u64) -> u64 {
    let mut done = 0u64;
    for index in 0..MAX_IOV {
        if done >= len || index >= count {
            break;
        }
        // SAFETY: user memory read of one iovec.
        let Ok(seg) = (unsafe { bpf_probe_read_user((iov + index * 16) as *const Iovec) }) else {
            break;
        };
        let left = len - done;
        let take = if seg.len < left { seg.len } else { left };
        // `take` never exceeds the per-call cap, which one buffer copy covers in full.
        emit_buffer_global(seg.base, take, stream_offset + done);
        done += take;
    }
    done
}

/// sys_enter of sendfile onto a socket already carrying plain HTTP: its exit records where the
/// file's bytes went, so a body sent that way keeps the parser in step (a counted gap).
#[inline(always)]
pub fn on_sendfile_enter(pid_tgid: u64, fd: i32) {
    if fd < 0 || !plaintext_enabled() {
        return;
    }
    // SAFETY: value copied out.
    let Some(socket) = (unsafe { SOCKETS.get(&socket_key(pid_tgid, fd)) }).copied() else {
        return;
    };
    if socket.class != CLASS_HTTP {
        return;
    }
    let pending = PendingIo {
        stream: 0,
        buf: 0,
        count: 0,
        sk: 0,
        fd,
        kind: IO_SENDFILE,
        shape: SHAPE_BUF,
        direction: DIRECTION_EGRESS,
    };
    if PENDING_IO.insert(&pid_tgid, &pending, 0).is_err() {
        bump(counter::CALL_TABLE_FULL, 1);
    }
}

#[inline(always)]
pub fn on_sendfile_exit(pid_tgid: u64, io: &PendingIo, ret: u64) {
    // SAFETY: value copied out.
    let Some(socket) = (unsafe { SOCKETS.get(&socket_key(pid_tgid, io.fd)) }).copied() else {
        return;
    };
    if socket.class != CLASS_HTTP {
        return;
    }
    let stream = plaintext_stream_id(socket.sk, io.fd);
    let key = StreamKey {
        tgid: pid_tgid >> 32,
        stream: stream,
    };
    let offset = claim_offsets(&key, io, ret);
    bump(counter::SENDFILE_BYTES, ret);
    emit_control(&DataRecord {
        header: header(KIND_DATA),
        stream: stream,
        stream_offset: offset,
        call_len: if ret > u32::MAX as u64 {
            u32::MAX
        } else {
            ret as u32
        },
        payload_len: 0,
        direction: DIRECTION_EGRESS,
        fd: io.fd,
        library_id: 0,
        flags: DATA_PLAINTEXT | DATA_NOT_CAPTURED,
        comm: bpf_get_current_comm().unwrap_or([0u8; 16]),
        // SAFETY: helper without preconditions.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
    });
}

/// The iovec array and its length for vectored shapes; (0, 0) for a plain buffer.
#[inline(always)]
fn iov_array(io: &PendingIo) -> Option<(u64, u64)> {
    if io.shape == SHAPE_BUF {
        return Some((0, 0));
    }
    if io.shape == SHAPE_MSG {
        // SAFETY: user memory reads; failures end the capture of this call.
        let iov = unsafe { bpf_probe_read_user((io.buf + MSG_IOV_OFFSET) as *const u64) }.ok()?;
        let count =
            unsafe { bpf_probe_read_user((io.buf + MSG_IOVLEN_OFFSET) as *const u64) }.ok()?;
        return Some((iov, count));
    }
    Some((io.buf, io.count))
}

/// Segment `index` of the call's data: the buffer itself, or one iovec.
#[inline(always)]
fn segment(io: &PendingIo, (iov, count): (u64, u64), index: u64) -> Option<Iovec> {
    if io.shape == SHAPE_BUF {
        return Some(Iovec {
            base: io.buf,
            len: u64::MAX,
        });
    }
    if index >= count {
        return None;
    }
    // SAFETY: user memory read of one iovec.
    unsafe { bpf_probe_read_user((iov + index * 16) as *const Iovec) }.ok()
}

/// Reserves `len` bytes of the stream's offsets in the call's direction; returns the first.
#[inline(always)]
fn claim_offsets(key: &StreamKey, io: &PendingIo, len: u64) -> u64 {
    let egress = io.direction == DIRECTION_EGRESS;
    if let Some(state) = STREAMS.get_ptr_mut(key) {
        // SAFETY: map value pointer.
        let state = unsafe { &mut *state };
        let offset = if egress {
            &mut state.egress_offset
        } else {
            &mut state.ingress_offset
        };
        let first = *offset;
        *offset = first + len;
        return first;
    }
    let state = StreamState {
        fd: io.fd as i64,
        egress_offset: if egress { len } else { 0 },
        ingress_offset: if egress { 0 } else { len },
        filtered: 0,
    };
    if STREAMS.insert(key, &state, 0).is_err() {
        bump(counter::STREAM_TABLE_FULL, 1);
    }
    0
}

/// An HTTP/1 request line (a method and a space), a status line (`HTTP/`), or h2c: the HTTP/2
/// client preface (`PRI * HTTP/2.0`) or a server's first SETTINGS frame, at the start.
#[inline(always)]
fn looks_like_http(head: &[u8; 8], seen: u64) -> bool {
    if seen < 4 {
        return false;
    }
    let word = [head[0], head[1], head[2], head[3]];
    matches!(
        &word,
        b"GET "
            | b"PUT "
            | b"POST"
            | b"HEAD"
            | b"DELE"
            | b"PATC"
            | b"OPTI"
            | b"CONN"
            | b"TRAC"
            | b"PRI "
    ) || (seen >= 5 && &word == b"HTTP" && head[4] == b'/')
        || looks_like_h2_settings(head, seen)
}

/// An HTTP/2 server's first bytes on an h2c connection: its SETTINGS frame (stream 0, no
/// flags, a small length that is a multiple of 6), written before it reads the preface.
#[inline(always)]
fn looks_like_h2_settings(head: &[u8; 8], seen: u64) -> bool {
    let len = (u32::from(head[1]) << 8) | u32::from(head[2]);
    seen >= 9
        && head[0] == 0
        && len % 6 == 0
        && len <= 60
        && head[3] == 0x04
        && head[4] == 0
        && head[5] == 0
        && head[6] == 0
        && head[7] == 0
}

/// A TLS handshake record header (type 22, version 3.1-3.4): a tunnel switching to TLS.
#[inline(always)]
fn looks_like_tls_handshake(head: &[u8; 8], seen: u64) -> bool {
    seen >= 3 && head[0] == 0x16 && head[1] == 0x03 && head[2] >= 1 && head[2] <= 4
}
