//! Plain HTTP/1 on sockets, captured from the read/write-family syscalls.
//!
//! Only sockets made by connect/accept are candidates (the SOCKETS map knows them), and each is
//! classified once by its first bytes outside any SSL call: an HTTP/1 request or status line
//! makes it an HTTP socket, captured from then on in both directions; anything else — a TLS
//! handshake, a database protocol, SSH — marks it "other" and none of its bytes ever leave the
//! kernel. An HTTP socket that later carries a TLS record (a CONNECT tunnel) stops being captured.

use agent_common::event::{
    DATA_PLAINTEXT, DIRECTION_EGRESS, MAX_CHUNKS_PER_CALL, PLAINTEXT_STREAM_BIT, counter,
};
use aya_ebpf::helpers::bpf_probe_read_user;

use crate::{
    emit::{Payload, bump, capped, emit_chunk, emit_payload, prepare},
    filter::process_allowed,
    maps::{
        CLASS_HTTP, CLASS_OTHER, CLASS_UNKNOWN, IO_PLAIN, PENDING_IO, PendingIo, SHAPE_BUF,
        SHAPE_MSG, SOCKETS, STREAMS, StreamKey, StreamState, plaintext_enabled,
    },
    syscalls::{end_stream, report_socket, socket_key},
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

/// sys_enter of a read/write-family syscall outside an SSL call.
#[inline(always)]
pub fn on_enter(pid_tgid: u64, fd: i32, buf: u64, count: u64, direction: u32, shape: u32) {
    if fd < 0 || !plaintext_enabled() {
        return;
    }
    // SAFETY: value copied out.
    let Some(socket) = (unsafe { SOCKETS.get(&socket_key(pid_tgid, fd)) }).copied() else {
        return;
    };
    if socket.ssl != 0 || socket.class == CLASS_OTHER {
        return;
    }
    if !process_allowed() {
        bump(counter::FILTERED_CALLS, 1);
        return;
    }
    let pending = PendingIo {
        ssl: 0,
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
}

/// sys_exit of a syscall `on_enter` kept, which moved `ret` (> 0) bytes.
#[inline(always)]
pub fn on_exit(pid_tgid: u64, io: &PendingIo, ret: u64) {
    let Some(socket) = SOCKETS.get_ptr_mut(&socket_key(pid_tgid, io.fd)) else {
        return;
    };
    // SAFETY: map value pointer.
    let socket = unsafe { &mut *socket };
    let Some(iov) = iov_array(io) else {
        return;
    };
    let Some(first) = segment(io, iov, 0) else {
        return;
    };
    let seen = if first.len < ret { first.len } else { ret };
    // SAFETY: user memory read; a fault means nothing to look at.
    let Ok(head) = (unsafe { bpf_probe_read_user(first.base as *const [u8; 8]) }) else {
        return;
    };
    let stream = PLAINTEXT_STREAM_BIT | io.fd as u32 as u64;
    if socket.class == CLASS_UNKNOWN {
        if !looks_like_http(&head, seen) {
            socket.class = CLASS_OTHER;
            bump(counter::PLAIN_SOCKETS_OTHER, 1);
            return;
        }
        if !report_socket(stream, io.fd, io.sk, socket.role) {
            socket.class = CLASS_OTHER;
            bump(counter::FILTERED_CALLS, 1);
            return;
        }
        socket.class = CLASS_HTTP;
        bump(counter::PLAIN_SOCKETS_HTTP, 1);
    } else if socket.class == CLASS_HTTP {
        if looks_like_tls_handshake(&head, seen) {
            socket.class = CLASS_OTHER;
            bump(counter::PLAIN_SOCKETS_TO_TLS, 1);
            end_stream(pid_tgid, stream, io.fd);
            return;
        }
    } else {
        return;
    }
    let key = StreamKey {
        tgid: pid_tgid >> 32,
        ssl: stream,
    };
    let base_offset = claim_offsets(&key, io, ret);
    let payload = Payload {
        ssl: stream,
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
        return;
    }
    emit_vectored(&payload, io, iov, first);
}

/// Copies a vectored call's bytes chunk by chunk, moving to the next iovec as each runs out:
/// one flat loop (chunks + iovec steps) keeps the verifier's work linear.
#[inline(always)]
fn emit_vectored(payload: &Payload, io: &PendingIo, iov: (u64, u64), first: Iovec) {
    if !prepare(payload) {
        return;
    }
    let cap = capped(payload.len);
    let mut seg = first;
    let mut index = 0u64;
    let mut seg_done = 0u64;
    let mut done = 0u64;
    for _ in 0..(MAX_CHUNKS_PER_CALL as u64 + MAX_IOV) {
        if done >= cap {
            break;
        }
        if seg_done >= seg.len {
            index += 1;
            let Some(next) = segment(io, iov, index) else {
                break;
            };
            if index >= MAX_IOV {
                break;
            }
            seg = next;
            seg_done = 0;
            continue;
        }
        let seg_left = seg.len - seg_done;
        let left = cap - done;
        let covered = emit_chunk(
            seg.base + seg_done,
            if seg_left < left { seg_left } else { left },
            payload.stream_offset + done,
        );
        seg_done += covered;
        done += covered;
    }
    if done < cap {
        bump(counter::IOV_UNCAPTURED_BYTES, cap - done);
    }
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

/// An HTTP/1 request line (a method and a space) or status line (`HTTP/`) at the start.
#[inline(always)]
fn looks_like_http(head: &[u8; 8], seen: u64) -> bool {
    if seen < 4 {
        return false;
    }
    let word = [head[0], head[1], head[2], head[3]];
    matches!(
        &word,
        b"GET " | b"PUT " | b"POST" | b"HEAD" | b"DELE" | b"PATC" | b"OPTI" | b"CONN" | b"TRAC"
    ) || (seen >= 5 && &word == b"HTTP" && head[4] == b'/')
}

/// A TLS handshake record header (type 22, version 3.1-3.4): a tunnel switching to TLS.
#[inline(always)]
fn looks_like_tls_handshake(head: &[u8; 8], seen: u64) -> bool {
    seen >= 3 && head[0] == 0x16 && head[1] == 0x03 && head[2] >= 1 && head[2] <= 4
}
