//! Maps and globals. Sizes here are defaults; the loader may resize EVENTS.

use agent_common::event::{
    CAPTURE_LIMIT_BYTES, DataRecord, ExecRecord, KernelOffsets, LibCheck, MAX_LIBRARIES, counter,
    filter,
};
use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// In-flight SSL call per thread (pid_tgid): set at entry, consumed at return, dropped at thread
/// exit. A plain (preallocated) hash: inserted and deleted on every call, where an LRU map's
/// list locks cost more; it cannot leak past thread exit, and a full table is counted.
#[map]
pub static CALLS: HashMap<u64, SslCall> = HashMap::with_max_entries(32768, 0);

/// Per TLS stream (tgid, SSL*): socket fd and byte offsets of both directions.
#[map]
pub static STREAMS: LruHashMap<StreamKey, StreamState> = LruHashMap::with_max_entries(65536, 0);

/// Per socket (tgid << 32 | fd): role from connect/accept, the SSL* bound to it, and what its
/// plaintext looks like. Only sockets made by connect/accept (or used under an SSL call) are here.
#[map]
pub static SOCKETS: LruHashMap<u64, SocketState> = LruHashMap::with_max_entries(65536, 0);

/// (tgid << 32 | fd) of fds found not to be sockets at their first I/O, so the fd table is
/// walked once per fd, not per syscall. Forgotten at close and dup2/dup3 onto the fd.
#[map]
pub static NOT_SOCKETS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(65536, 0);

/// Per thread: a socket syscall whose exit has work to do (report the socket of an SSL stream,
/// or capture plaintext). Set at sys_enter, consumed at sys_exit, dropped at thread exit.
#[map]
pub static PENDING_IO: HashMap<u64, PendingIo> = HashMap::with_max_entries(32768, 0);

/// connect() in progress per thread: the fd, until sys_exit_connect tells whether it worked.
#[map]
pub static CONNECTING: LruHashMap<u64, u64> = LruHashMap::with_max_entries(8192, 0);

/// Per-CPU template of the data records of one call (prepared once, copied into each chunk's
/// ring-buffer reservation).
#[map]
pub static DATA_SCRATCH: PerCpuArray<DataScratch> = PerCpuArray::with_max_entries(1, 0);

/// Wrapper calls awaiting the internal call they should make, per thread (runtime check).
#[map]
pub static CHECKS: LruHashMap<u64, CheckCall> = LruHashMap::with_max_entries(4096, 0);

#[map]
pub static LIB_CHECKS: PerCpuArray<LibCheck> = PerCpuArray::with_max_entries(MAX_LIBRARIES, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct CheckCall {
    pub stream: u64,
    pub buf: u64,
    pub library_id: u64,
}

#[map]
pub static FILTER_PIDS: HashMap<u32, u8> = HashMap::with_max_entries(filter::MAX_ENTRIES, 0);
#[map]
pub static FILTER_COMMS: HashMap<[u8; 16], u8> = HashMap::with_max_entries(filter::MAX_ENTRIES, 0);
#[map]
pub static FILTER_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(filter::MAX_ENTRIES, 0);
#[map]
pub static FILTER_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(filter::MAX_ENTRIES, 0);

/// Which filter maps are in use (agent_common::event::filter bits); 0 = capture everything.
#[unsafe(no_mangle)]
pub static FILTER_FLAGS: u32 = 0;

#[inline(always)]
pub fn filter_flags() -> u32 {
    // SAFETY: a global the loader may rewrite before load.
    unsafe { core::ptr::read_volatile(&FILTER_FLAGS) }
}

/// 1 = capture plain HTTP on sockets (set by the loader).
#[unsafe(no_mangle)]
pub static PLAINTEXT_ENABLED: u32 = 1;

#[inline(always)]
pub fn plaintext_enabled() -> bool {
    // SAFETY: a global the loader may rewrite before load.
    let enabled = unsafe { core::ptr::read_volatile(&PLAINTEXT_ENABLED) };
    enabled == 1
}

/// Consumer position (+1) at this CPU's last forced wakeup.
#[map]
pub static WAKEUP_AT_CONSUMER: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecRecord> = PerCpuArray::with_max_entries(1, 0);

/// Bytes captured from one SSL call at most (set by the loader; clamped to CAPTURE_LIMIT_BYTES).
#[unsafe(no_mangle)]
pub static CAPTURE_MAX_BYTES: u32 = CAPTURE_LIMIT_BYTES as u32;

/// Force a consumer wakeup once this many bytes are pending; below it submits do not wake.
#[unsafe(no_mangle)]
pub static WAKEUP_BYTES: u64 = 256 * 1024;

#[unsafe(no_mangle)]
pub static KERNEL_OFFSETS: KernelOffsets = KernelOffsets {
    valid: 0,
    task_files: 0,
    files_fdt: 0,
    fdtable_max_fds: 0,
    fdtable_fd: 0,
    file_private_data: 0,
    socket_file: 0,
    socket_sk: 0,
    skc_family: 0,
    skc_daddr: 0,
    skc_rcv_saddr: 0,
    skc_dport: 0,
    skc_num: 0,
    skc_v6_daddr: 0,
    skc_v6_rcv_saddr: 0,
    _pad: 0,
};

#[repr(C)]
#[derive(Clone, Copy)]
pub struct SslCall {
    pub stream: u64,
    pub buf: u64,
    /// `size_t *` out-argument of the `_ex` functions.
    pub len_out: u64,
    pub direction: u32,
    pub is_ex: u32,
    pub library_id: u32,
    /// Set once a nested syscall has reported the fd, so later syscalls in the call skip work.
    pub fd_seen: u32,
    /// 1 when a client write was judged a block before its socket was known: the first nested
    /// socket syscall (before any byte leaves) closes the gate. The hit's keys follow.
    pub verdict_pending: u32,
    pub verdict_credential: u32,
    pub verdict_token: u64,
    pub verdict_route: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct StreamKey {
    pub tgid: u64,
    pub stream: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct StreamState {
    pub fd: i64,
    pub egress_offset: u64,
    pub ingress_offset: u64,
    /// Set when a port filter excluded the connection: its calls are not captured.
    pub filtered: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct SocketState {
    pub stream: u64,
    pub role: u32,
    /// CLASS_*: what the first plaintext bytes on the socket looked like.
    pub class: u32,
    /// The kernel `struct sock *`, once known: names the plaintext stream, so fds duplicated
    /// onto one socket (a forked server reading fd 0, writing fd 1) share it.
    pub sk: u64,
}

/// Nothing moved on the socket outside an SSL call yet.
pub const CLASS_UNKNOWN: u32 = 0;
/// First bytes were an HTTP/1 request or response line: plaintext is captured.
pub const CLASS_HTTP: u32 = 1;
/// TLS (bound to an SSL*, or a TLS record seen) or another protocol: never captured raw.
pub const CLASS_OTHER: u32 = 2;

pub const IO_SSL_SOCKET: u32 = 1;
pub const IO_PLAIN: u32 = 2;
pub const IO_SENDFILE: u32 = 3;

/// read/write/recvfrom/sendto: `buf` is the data.
pub const SHAPE_BUF: u32 = 0;
/// readv/writev: `buf` is an iovec array of `count` entries.
pub const SHAPE_IOV: u32 = 1;
/// recvmsg/sendmsg: `buf` is a `struct user_msghdr`.
pub const SHAPE_MSG: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingIo {
    /// IO_SSL_SOCKET: the SSL* whose socket is reported at exit.
    pub stream: u64,
    pub buf: u64,
    pub count: u64,
    /// The `struct sock *` a kprobe saw during the syscall (kprobe hooks), else 0.
    pub sk: u64,
    pub fd: i32,
    pub kind: u32,
    pub shape: u32,
    pub direction: u32,
}

#[repr(C)]
pub struct DataScratch {
    pub record: DataRecord,
}

#[inline(always)]
pub fn capture_max_bytes() -> u64 {
    // SAFETY: a global the loader may rewrite before load; volatile keeps it from being folded.
    let configured = unsafe { core::ptr::read_volatile(&CAPTURE_MAX_BYTES) } as u64;
    if configured > CAPTURE_LIMIT_BYTES as u64 {
        CAPTURE_LIMIT_BYTES as u64
    } else {
        configured
    }
}

#[inline(always)]
pub fn wakeup_bytes() -> u64 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&WAKEUP_BYTES) }
}

#[inline(always)]
pub fn kernel_offsets() -> KernelOffsets {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(&KERNEL_OFFSETS) }
}
