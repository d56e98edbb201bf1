//! Reads a socket's addresses from the kernel by walking task → files → fdtable → file →
//! socket → sock with member offsets that userspace resolved from BTF (no CO-RE in Rust eBPF).

use agent_common::event::{AF_INET, AF_INET6, SOCKET_ADDRESSES_KNOWN, SocketRecord};
use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_get_current_task};

use crate::maps::kernel_offsets;

#[inline(always)]
unsafe fn read<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel tolerates bad addresses and reports an error.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// Fills family, ports and addresses of `record` for `fd` of the current task. Leaves them zero
/// and the flag clear when offsets are unknown or the fd is not an inet socket.
#[inline(always)]
pub fn fill_addresses(fd: i32, record: &mut SocketRecord) {
    let _ = try_fill(fd, record);
}

#[inline(always)]
fn try_fill(fd: i32, record: &mut SocketRecord) -> Option<()> {
    let off = kernel_offsets();
    if off.valid != 1 || fd < 0 {
        return None;
    }
    // SAFETY: helper without preconditions.
    let task = unsafe { bpf_get_current_task() };
    unsafe {
        let files: u64 = read(task, off.task_files)?;
        let fdt: u64 = read(files, off.files_fdt)?;
        let max_fds: u32 = read(fdt, off.fdtable_max_fds)?;
        if fd as u32 >= max_fds {
            return None;
        }
        let fd_array: u64 = read(fdt, off.fdtable_fd)?;
        let file: u64 = read(fd_array + (fd as u64) * 8, 0)?;
        let socket: u64 = read(file, off.file_private_data)?;
        // A socket's file points back at it; anything else is not a socket.
        let back: u64 = read(socket, off.socket_file)?;
        if back != file {
            return None;
        }
        let sk: u64 = read(socket, off.socket_sk)?;
        let family: u16 = read(sk, off.skc_family)?;
        record.family = family;
        if family == AF_INET {
            let remote: [u8; 4] = read(sk, off.skc_daddr)?;
            let local: [u8; 4] = read(sk, off.skc_rcv_saddr)?;
            record.remote_addr[..4].copy_from_slice(&remote);
            record.local_addr[..4].copy_from_slice(&local);
        } else if family == AF_INET6 {
            record.remote_addr = read(sk, off.skc_v6_daddr)?;
            record.local_addr = read(sk, off.skc_v6_rcv_saddr)?;
        } else {
            return None;
        }
        let dport: u16 = read(sk, off.skc_dport)?;
        record.remote_port = u16::from_be(dport);
        record.local_port = read(sk, off.skc_num)?;
        record.flags |= SOCKET_ADDRESSES_KNOWN;
    }
    Some(())
}
