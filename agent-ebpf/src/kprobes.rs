//! Kprobe socket hooks (used where the kernel has kprobes): tcp_sendmsg and tcp_recvmsg get the
//! `struct sock *` as their first argument. When the calling thread has a socket syscall whose
//! exit will report a socket, the sock is remembered so the report reads the addresses straight
//! from it instead of walking the task's fd table.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::kprobe, programs::ProbeContext};

use crate::maps::PENDING_IO;

#[inline(always)]
fn note_sock(ctx: &ProbeContext) {
    let Some(io) = PENDING_IO.get_ptr_mut(&bpf_get_current_pid_tgid()) else {
        return;
    };
    let Some(sk) = ctx.arg::<u64>(0) else {
        return;
    };
    // SAFETY: map value of this thread's pending syscall.
    let io = unsafe { &mut *io };
    if io.sk == 0 {
        io.sk = sk;
    }
}

#[kprobe]
pub fn tcp_sendmsg_entry(ctx: ProbeContext) -> u32 {
    note_sock(&ctx);
    0
}

#[kprobe]
pub fn tcp_recvmsg_entry(ctx: ProbeContext) -> u32 {
    note_sock(&ctx);
    0
}
