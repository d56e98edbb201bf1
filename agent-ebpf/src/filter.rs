//! Volume filters applied in the kernel, before anything is copied: by process id, task name,
//! cgroup and port, each as include (only these) or exclude. Userspace fills the maps and sets
//! FILTER_FLAGS before load; with no flag set every check is one global read.

use agent_common::event::filter::{
    CGROUP_ACTIVE, CGROUP_INCLUDE, COMM_ACTIVE, COMM_INCLUDE, EXCLUDE, INCLUDE, PID_ACTIVE,
    PID_INCLUDE, PORT_ACTIVE, PORT_INCLUDE,
};
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, generated::bpf_get_current_cgroup_id,
};

use crate::maps::{FILTER_CGROUPS, FILTER_COMMS, FILTER_PIDS, FILTER_PORTS, filter_flags};

/// `verdict` is the map value for the key (None: not listed). An excluded key always fails; an
/// include list, when there is one, must list the key.
#[inline(always)]
fn passes(verdict: Option<u8>, include_list: bool) -> bool {
    match verdict {
        Some(EXCLUDE) => false,
        Some(INCLUDE) => true,
        _ => !include_list,
    }
}

/// Whether the current process's TLS calls are captured at all.
#[inline(always)]
pub fn process_allowed() -> bool {
    let flags = filter_flags();
    if flags & PID_ACTIVE != 0 {
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        // SAFETY: the value is copied out of the map.
        if !passes(
            unsafe { FILTER_PIDS.get(&tgid) }.copied(),
            flags & PID_INCLUDE != 0,
        ) {
            return false;
        }
    }
    if flags & COMM_ACTIVE != 0 {
        let comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
        // SAFETY: as above.
        if !passes(
            unsafe { FILTER_COMMS.get(&comm) }.copied(),
            flags & COMM_INCLUDE != 0,
        ) {
            return false;
        }
    }
    if flags & CGROUP_ACTIVE != 0 {
        // SAFETY: helper without preconditions.
        let cgroup = unsafe { bpf_get_current_cgroup_id() };
        // SAFETY: as above.
        if !passes(
            unsafe { FILTER_CGROUPS.get(&cgroup) }.copied(),
            flags & CGROUP_INCLUDE != 0,
        ) {
            return false;
        }
    }
    true
}

/// Whether a connection with these ports is captured: an excluded port on either side drops
/// it; an include list must name one of them.
#[inline(always)]
pub fn ports_allowed(local: u16, remote: u16) -> bool {
    let flags = filter_flags();
    if flags & PORT_ACTIVE == 0 {
        return true;
    }
    // SAFETY: values are copied out of the map.
    let (a, b) = unsafe {
        (
            FILTER_PORTS.get(&local).copied(),
            FILTER_PORTS.get(&remote).copied(),
        )
    };
    if a == Some(EXCLUDE) || b == Some(EXCLUDE) {
        return false;
    }
    flags & PORT_INCLUDE == 0 || a == Some(INCLUDE) || b == Some(INCLUDE)
}
