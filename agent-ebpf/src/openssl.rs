//! Uprobes on OpenSSL's read/write functions: the exported SSL_read / SSL_read_ex / SSL_write /
//! SSL_write_ex, or (cheaper, see agent/src/kernel/tls/attach_point.rs) the internal functions they
//! call, which have the `_ex` signature `(ssl, buf, num, size_t *processed)`.
//!
//! Entry records the arguments per thread; the shared return probe learns how many bytes the
//! call really moved and copies exactly those. Capturing writes at entry would be one probe hit
//! cheaper but wrong: a non-blocking SSL_write that returns WANT_WRITE is retried with the same
//! buffer, and partial writes move fewer bytes than asked; only the return value says.

use agent_common::{
    enforce::{
        EnforceSettings, MODE_ENFORCE, POINT_CLIENT_WRITE, POINT_SERVER_READ,
        counter as enforce_counter,
    },
    event::{DIRECTION_EGRESS, DIRECTION_INGRESS, counter},
};
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user, generated::bpf_get_attach_cookie},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};

use crate::{
    emit::{Payload, bump, emit_payload},
    enforce,
    filter::process_allowed,
    maps::{CALLS, CHECKS, CheckCall, LIB_CHECKS, STREAMS, SslCall, StreamKey, StreamState},
};

#[uprobe]
pub fn ssl_read_entry(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIRECTION_INGRESS, false);
    0
}

#[uprobe]
pub fn ssl_read_ex_entry(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIRECTION_INGRESS, true);
    0
}

#[uprobe]
pub fn ssl_write_entry(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIRECTION_EGRESS, false);
    0
}

#[uprobe]
pub fn ssl_write_ex_entry(ctx: ProbeContext) -> u32 {
    enter(&ctx, DIRECTION_EGRESS, true);
    0
}

/// On an exported wrapper while its internal attach point is being verified: remember the
/// arguments; the internal entry on this thread must see the same ones.
#[uprobe]
pub fn ssl_check_entry(ctx: ProbeContext) -> u32 {
    let (Some(ssl), Some(buf)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return 0;
    };
    // SAFETY: helper valid in uprobe context.
    let library_id = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    if let Some(check) = LIB_CHECKS.get_ptr_mut(library_id as u32) {
        // SAFETY: per-CPU slot.
        unsafe { (*check).wrapper_hits += 1 };
    }
    let call = CheckCall {
        stream: ssl,
        buf,
        library_id,
    };
    let _ = CHECKS.insert(&bpf_get_current_pid_tgid(), &call, 0);
    0
}

#[inline(always)]
fn verify(pid_tgid: u64, ssl: u64, buf: u64, library_id: u32) {
    // SAFETY: value copied out.
    let Some(pending) = (unsafe { CHECKS.get(&pid_tgid) }).copied() else {
        return;
    };
    if pending.library_id != library_id as u64 {
        return;
    }
    let _ = CHECKS.remove(&pid_tgid);
    if let Some(check) = LIB_CHECKS.get_ptr_mut(library_id) {
        // SAFETY: per-CPU slot.
        unsafe {
            if pending.stream == ssl && pending.buf == buf {
                (*check).matches += 1;
            } else {
                (*check).mismatches += 1;
            }
        }
    }
}

#[inline(always)]
fn enter(ctx: &ProbeContext, direction: u32, is_ex: bool) {
    bump(counter::SSL_ENTRY_HITS, 1);
    let (Some(ssl), Some(buf)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: helper valid in uprobe context; 0 when no cookie was set.
    let library_id = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    // The runtime check of the attach point counts every process's calls, filtered or not:
    // the wrapper probe cannot filter, so skipping here would look like missed calls.
    if is_ex {
        verify(pid_tgid, ssl, buf, library_id);
    }
    if !process_allowed() {
        bump(counter::FILTERED_CALLS, 1);
        return;
    }
    let len_out = if is_ex {
        ctx.arg::<u64>(3).unwrap_or(0)
    } else {
        0
    };
    let mut call = SslCall {
        stream: ssl,
        buf,
        len_out,
        direction,
        is_ex: is_ex as u32,
        library_id,
        fd_seen: 0,
        verdict_pending: 0,
        verdict_credential: 0,
        verdict_token: 0,
        verdict_route: 0,
    };
    if direction == DIRECTION_EGRESS
        && let Some(settings) = enforce::active_at(POINT_CLIENT_WRITE)
    {
        judge_client_write(ctx, &settings, &mut call, pid_tgid, is_ex);
    }
    if CALLS.insert(&pid_tgid, &call, 0).is_err() {
        bump(counter::CALL_TABLE_FULL, 1);
    }
}

/// A client's request is judged before it is encrypted and sent: on a block with the socket
/// known the gate closes now; otherwise the first socket syscall nested in this write does it.
#[inline(always)]
fn judge_client_write(
    ctx: &ProbeContext,
    settings: &EnforceSettings,
    call: &mut SslCall,
    pid_tgid: u64,
    is_ex: bool,
) {
    let num = ctx.arg::<u64>(2).unwrap_or(0);
    let len = if is_ex { num } else { num & 0x7fff_ffff };
    let key = StreamKey {
        tgid: pid_tgid >> 32,
        stream: call.stream,
    };
    let Some(hit) = enforce::judge(
        settings,
        POINT_CLIENT_WRITE,
        &key,
        call.buf,
        len,
        enforce_counter::COUNT,
    ) else {
        return;
    };
    // SAFETY: value copied out.
    let fd = unsafe { STREAMS.get(&key) }.map_or(-1, |s| s.fd as i32);
    if fd < 0 && settings.mode == MODE_ENFORCE {
        call.verdict_pending = 1;
        call.verdict_credential = hit.credential;
        call.verdict_token = hit.token_key;
        call.verdict_route = hit.route_key;
        return;
    }
    enforce::decide(settings, POINT_CLIENT_WRITE, call.stream, fd, &hit);
}

#[uretprobe]
pub fn ssl_return(ctx: RetProbeContext) -> u32 {
    bump(counter::SSL_RETURN_HITS, 1);
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out before the entry is removed.
    let Some(call) = (unsafe { CALLS.get(&pid_tgid) }).copied() else {
        return 0;
    };
    let _ = CALLS.remove(&pid_tgid);
    // All these functions return int. The `_ex` family reports success as 1 (the internal
    // functions as > 0) with the byte count in *processed.
    let ret = ctx.ret::<u64>() as i32;
    let len = if call.is_ex != 0 {
        if ret <= 0 || call.len_out == 0 {
            return 0;
        }
        // SAFETY: reading a size_t from the caller's memory; failure means nothing to capture.
        match unsafe { bpf_probe_read_user(call.len_out as *const u64) } {
            Ok(n) => n,
            Err(_) => return 0,
        }
    } else if ret > 0 {
        ret as u64
    } else {
        return 0;
    };
    capture(pid_tgid, &call, len);
    0
}

/// What every TLS stack's return does once it knows how many bytes the call moved: advance
/// the stream's offsets, judge a server's request (enforcement), emit the payload.
#[inline(always)]
pub fn capture(pid_tgid: u64, call: &SslCall, len: u64) {
    if len == 0 {
        return;
    }
    let key = StreamKey {
        tgid: pid_tgid >> 32,
        stream: call.stream,
    };
    let (fd, stream_offset) = match STREAMS.get_ptr_mut(&key) {
        Some(state) => {
            // SAFETY: map value pointer; concurrent updates from another thread of the same
            // process on the same SSL* are already a bug in the application.
            let state = unsafe { &mut *state };
            if state.filtered != 0 {
                bump(counter::FILTERED_CALLS, 1);
                return;
            }
            let offset = if call.direction == DIRECTION_EGRESS {
                let o = state.egress_offset;
                state.egress_offset = o + len;
                o
            } else {
                let o = state.ingress_offset;
                state.ingress_offset = o + len;
                o
            };
            (state.fd as i32, offset)
        }
        None => {
            let mut state = StreamState {
                fd: -1,
                egress_offset: 0,
                ingress_offset: 0,
                filtered: 0,
            };
            if call.direction == DIRECTION_EGRESS {
                state.egress_offset = len;
            } else {
                state.ingress_offset = len;
            }
            if STREAMS.insert(&key, &state, 0).is_err() {
                bump(counter::STREAM_TABLE_FULL, 1);
            }
            (-1, 0)
        }
    };
    // The server judges the request it just read; its response will not leave on a block.
    if call.direction == DIRECTION_INGRESS
        && let Some(settings) = enforce::active_at(POINT_SERVER_READ)
        && let Some(hit) = enforce::judge(
            &settings,
            POINT_SERVER_READ,
            &StreamKey {
                tgid: pid_tgid >> 32,
                stream: call.stream,
            },
            call.buf,
            len,
            enforce_counter::COUNT,
        )
    {
        enforce::decide(&settings, POINT_SERVER_READ, call.stream, fd, &hit);
    }
    emit_payload(&Payload {
        stream: call.stream,
        buf: call.buf,
        len,
        stream_offset,
        direction: call.direction,
        fd,
        library_id: call.library_id,
        flags: 0,
    });
}
