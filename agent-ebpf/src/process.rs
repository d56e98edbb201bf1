//! Process lifetime: exec (to discover libraries and name short-lived processes) and exit.

use agent_common::event::{ExitRecord, KIND_EXEC, KIND_EXIT};
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes},
    macros::tracepoint,
    programs::TracePointContext,
};

use crate::{
    emit::{emit_control, header},
    maps::{CALLS, EXEC_SCRATCH, PENDING_IO},
};

/// Offset of `__data_loc char[] filename` in sched_process_exec (see its format file).
const EXEC_FILENAME_LOC_OFFSET: usize = 8;

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let Some(record) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's scratch slot.
    let record = unsafe { &mut *record };
    record.header = header(KIND_EXEC);
    record.comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
    record.filename = [0; agent_common::event::EXEC_FILENAME_BYTES];
    // SAFETY: the field exists at this offset in the tracepoint's format.
    if let Ok(loc) = unsafe { ctx.read_at::<u32>(EXEC_FILENAME_LOC_OFFSET) } {
        let src = (ctx.as_ptr() as u64 + (loc & 0xffff) as u64) as *const u8;
        // SAFETY: kernel string read, bounded by the destination.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(src, &mut record.filename) };
    }
    emit_control(record);
    0
}

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    // A thread that dies inside an SSL call never reaches the return probe.
    let _ = CALLS.remove(&pid_tgid);
    let _ = PENDING_IO.remove(&pid_tgid);
    // Only the thread-group leader's exit ends the process as far as userspace cares.
    if pid_tgid >> 32 == pid_tgid & 0xffff_ffff {
        emit_control(&ExitRecord {
            header: header(KIND_EXIT),
        });
    }
    0
}
