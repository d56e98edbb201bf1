//! Reads a socket's addresses from its `struct sock`, found either as a kprobe argument
//! (kprobe hooks) or by walking task → files → fdtable → file → socket → sock (tracepoint
//! hooks). Member offsets come from BTF in userspace (no CO-RE in Rust eBPF).

use agent_common::{
    enforce::GateKey,
    event::{AF_INET, AF_INET6, SOCKET_ADDRESSES_KNOWN, SocketRecord, counter},
};
use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_get_current_task};

use crate::{emit::bump, maps::kernel_offsets};

#[inline(always)]
unsafe fn read<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel tolerates bad addresses and reports an error.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// Fills family, ports and addresses of `record` for `fd` of the current task: from `sk` when a
/// kprobe saw the socket, else from the fd table (the tracepoint path, and the kprobe path's
/// fallback for a syscall that reached no TCP function). Leaves them zero and the flag clear
/// when offsets are unknown or the socket is not inet.
#[inline(always)]
pub fn fill_addresses(fd: i32, sk: u64, record: &mut SocketRecord) {
    if sk != 0 {
        if fill_from_sock(sk, record).is_some() {
            bump(counter::ADDRESSES_FROM_KPROBE, 1);
        }
        return;
    }
    if let Some(sk) = sock_of_fd(fd)
        && fill_from_sock(sk, record).is_some()
    {
        bump(counter::ADDRESSES_FROM_FD_TABLE, 1);
    }
}

/// The `struct sock *` behind `fd` of the current task, if `fd` is a socket.
#[inline(always)]
pub fn sock_of_fd(fd: i32) -> Option<u64> {
    match sock_of_fd_global(fd as u32 as u64) {
        0 => None,
        sk => Some(sk),
    }
}

/// Global BPF function (see agent-ebpf/build.rs): the walk is verified once. 0 = not a socket.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn sock_of_fd_global(fd: u64) -> u64 {
    walk_fd_table(fd as u32 as i32).unwrap_or(0)
}

#[inline(always)]
fn walk_fd_table(fd: i32) -> Option<u64> {
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
        read(socket, off.socket_sk)
    }
}

/// Where a socket's family, ports and addresses go: the fields of a record, written in place
/// (a temporary would add to a stack the 6.1 verifier already finds nearly full).
struct TupleOut<'a> {
    family: &'a mut u16,
    local_port: &'a mut u16,
    remote_port: &'a mut u16,
    local_addr: &'a mut [u8; 16],
    remote_addr: &'a mut [u8; 16],
}

#[inline(always)]
fn read_tuple(sk: u64, out: TupleOut) -> Option<()> {
    let off = kernel_offsets();
    if off.valid != 1 {
        return None;
    }
    unsafe {
        let family: u16 = read(sk, off.skc_family)?;
        *out.family = family;
        if family == AF_INET {
            let remote: [u8; 4] = read(sk, off.skc_daddr)?;
            let local: [u8; 4] = read(sk, off.skc_rcv_saddr)?;
            out.remote_addr[..4].copy_from_slice(&remote);
            out.local_addr[..4].copy_from_slice(&local);
        } else if family == AF_INET6 {
            *out.remote_addr = read(sk, off.skc_v6_daddr)?;
            *out.local_addr = read(sk, off.skc_v6_rcv_saddr)?;
        } else {
            return None;
        }
        let dport: u16 = read(sk, off.skc_dport)?;
        *out.remote_port = u16::from_be(dport);
        *out.local_port = read(sk, off.skc_num)?;
    }
    Some(())
}

/// Family, ports and addresses of a `struct sock`, as a gate key (the socket's own view).
#[inline(always)]
pub fn tuple_of_sock(sk: u64, tuple: &mut GateKey) -> Option<()> {
    read_tuple(
        sk,
        TupleOut {
            family: &mut tuple.family,
            local_port: &mut tuple.local_port,
            remote_port: &mut tuple.remote_port,
            local_addr: &mut tuple.local_addr,
            remote_addr: &mut tuple.remote_addr,
        },
    )
}

#[inline(always)]
fn fill_from_sock(sk: u64, record: &mut SocketRecord) -> Option<()> {
    read_tuple(
        sk,
        TupleOut {
            family: &mut record.family,
            local_port: &mut record.local_port,
            remote_port: &mut record.remote_port,
            local_addr: &mut record.local_addr,
            remote_addr: &mut record.remote_addr,
        },
    )?;
    record.flags |= SOCKET_ADDRESSES_KNOWN;
    Some(())
}
