//! Verdicts on plain HTTP: a client's request judged at the entry of its write, a server's at
//! the exit of its read, on the sockets plaintext capture follows.
//!
//! The judging runs in a program of its own, reached by a tail call from the syscall
//! programs: those have no room left on 6.1's 512-byte stack for the head scan (building it
//! in pushed `sys_enter_write` and `sys_exit_read` past it), and a tail call starts on a fresh
//! stack. The syscall program leaves the call's arguments in a per-CPU slot and jumps; when the
//! jump cannot happen (the program is not loaded: enforcement off) nothing is judged.

use agent_common::{
    enforce::{POINT_CLIENT_WRITE, POINT_SERVER_READ, counter as enforce_counter},
    event::{DIRECTION_EGRESS, PLAINTEXT_STREAM_BIT},
};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::{map, tracepoint},
    maps::{PerCpuArray, ProgramArray},
    programs::TracePointContext,
};

use crate::{
    enforce,
    maps::{SHAPE_BUF, SHAPE_MSG, StreamKey},
};

/// `struct user_msghdr`: msg_iov at 16.
const MSG_IOV_OFFSET: u64 = 16;

/// One syscall's request bytes, handed to [`enforce_plain_judge`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PlainRequest {
    /// The buffer, iovec array or msghdr, as `shape` says.
    pub buf: u64,
    /// Bytes the call moves (a write's count, a read's return value).
    pub len: u64,
    pub fd: i32,
    pub shape: u32,
    pub direction: u32,
    pub _pad: u32,
}

#[map]
static PLAIN_REQUEST: PerCpuArray<PlainRequest> = PerCpuArray::with_max_entries(1, 0);

/// Slot 0: `enforce_plain_judge`, set by the agent when enforcement is on.
#[map]
pub static ENFORCE_JUMP: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Hands the call to the judge when verdicts are taken at its point. Jumps away on success:
/// call it last.
#[inline(always)]
pub fn hand_over(ctx: &TracePointContext, request: PlainRequest) {
    let point = if request.direction == DIRECTION_EGRESS {
        POINT_CLIENT_WRITE
    } else {
        POINT_SERVER_READ
    };
    if enforce::active_at(point).is_none() {
        return;
    }
    let Some(slot) = PLAIN_REQUEST.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; the tail call below runs on this CPU before anything else.
    unsafe {
        *slot = request;
        ENFORCE_JUMP.tail_call(ctx, 0);
    }
}

/// The continuation key of a plain socket's head: by fd (its kernel socket may not be known
/// at a client's first write).
#[inline(always)]
pub fn head_key(tgid: u64, fd: i32) -> StreamKey {
    StreamKey {
        tgid,
        stream: PLAINTEXT_STREAM_BIT | fd as u32 as u64,
    }
}

#[tracepoint]
pub fn enforce_plain_judge(_ctx: TracePointContext) -> u32 {
    judge_plain();
    0
}

#[inline(always)]
fn judge_plain() -> Option<()> {
    let r = PLAIN_REQUEST.get(0).copied()?;
    let point = if r.direction == DIRECTION_EGRESS {
        POINT_CLIENT_WRITE
    } else {
        POINT_SERVER_READ
    };
    let settings = enforce::active_at(point)?;
    // The head is judged in the call's first buffer (a head spread over a writev's iovecs is
    // judged in its first and resumed at the next call, as a split head).
    let (base, seg_len) = if r.shape == SHAPE_BUF {
        (r.buf, r.len)
    } else {
        let iov = if r.shape == SHAPE_MSG {
            // SAFETY: user memory read; a fault leaves the call unjudged.
            unsafe { bpf_probe_read_user((r.buf + MSG_IOV_OFFSET) as *const u64) }.ok()?
        } else {
            r.buf
        };
        // SAFETY: as above, one iovec {base, len}.
        let first = unsafe { bpf_probe_read_user(iov as *const [u64; 2]) }.ok()?;
        (first[0], first[1])
    };
    let len = if seg_len < r.len { seg_len } else { r.len };
    let pid_tgid = bpf_get_current_pid_tgid();
    let key = head_key(pid_tgid >> 32, r.fd);
    let hit = enforce::judge(
        &settings,
        point,
        &key,
        base,
        len,
        enforce_counter::HEADS_PLAINTEXT,
    )?;
    enforce::decide(&settings, point, key.stream, r.fd, &hit);
    Some(())
}
