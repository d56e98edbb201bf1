//! Count-only programs for `--probe-mode floor`: attached at exactly the points the capture
//! programs would use, they only count, so a benchmark can measure what the probe hits cost on
//! their own (uprobe trap, context switch into BPF, one per-CPU add) beside what capture adds.

use agent_common::event::counter;
use aya_ebpf::{
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};

use crate::emit::bump;

#[uprobe]
pub fn floor_entry(_ctx: ProbeContext) -> u32 {
    bump(counter::SSL_ENTRY_HITS, 1);
    0
}

#[uretprobe]
pub fn floor_return(_ctx: RetProbeContext) -> u32 {
    bump(counter::SSL_RETURN_HITS, 1);
    0
}

/// Go's returns are probed at their `ret` instructions with plain uprobes (see gotls.rs).
#[uprobe]
pub fn floor_go_return(_ctx: ProbeContext) -> u32 {
    bump(counter::SSL_RETURN_HITS, 1);
    0
}
