//! Records written to the ring buffer. Every record starts with [`RecordHeader`].

/// Bytes of payload carried by one data record; larger SSL calls are split into several records.
pub const DATA_CHUNK_BYTES: usize = 16 * 1024;
/// Hard upper bound of bytes captured from a single SSL call (the runtime cap may be lower).
pub const MAX_CHUNKS_PER_CALL: usize = 16;
pub const CAPTURE_LIMIT_BYTES: usize = DATA_CHUNK_BYTES * MAX_CHUNKS_PER_CALL;
pub const EXEC_FILENAME_BYTES: usize = 256;
pub const COMM_BYTES: usize = 16;

pub const KIND_DATA: u32 = 1;
pub const KIND_SOCKET: u32 = 2;
pub const KIND_CLOSE: u32 = 3;
pub const KIND_EXEC: u32 = 4;
pub const KIND_EXIT: u32 = 5;
/// An enforcement verdict (agent_common::enforce::VerdictRecord).
pub const KIND_VERDICT: u32 = 6;

/// Payload written by the process (SSL_write): for a client the request, for a server the response.
pub const DIRECTION_EGRESS: u32 = 0;
/// Payload read by the process (SSL_read).
pub const DIRECTION_INGRESS: u32 = 1;

pub const ROLE_UNKNOWN: u32 = 0;
pub const ROLE_CLIENT: u32 = 1;
pub const ROLE_SERVER: u32 = 2;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// `SocketRecord::flags`: the addresses were read from the kernel socket.
pub const SOCKET_ADDRESSES_KNOWN: u32 = 1;

/// `DataRecord::flags`: bytes read or written on a socket directly (plain HTTP, no TLS library).
pub const DATA_PLAINTEXT: u32 = 1;
/// `DataRecord::flags`: `call_len` bytes moved without passing through user memory (sendfile);
/// the record carries no payload, only their place in the stream.
pub const DATA_NOT_CAPTURED: u32 = 2;

/// Stream ids (the `ssl` field of records) of plaintext sockets have this bit set: the kernel
/// `struct sock *` (bit 63 is set in every kernel address on x86-64 and arm64), or this bit | fd
/// when the socket is unknown. User-space pointers never have it, so no id collides with an
/// `SSL *`.
pub const PLAINTEXT_STREAM_BIT: u64 = 1 << 63;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: u32,
    pub _pad: u32,
    /// CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns).
    pub timestamp_ns: u64,
    /// tgid << 32 | tid, as bpf_get_current_pid_tgid returns it.
    pub pid_tgid: u64,
}

/// Plaintext moved by one SSL call (or one chunk of it). `payload_len` bytes follow the struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRecord {
    pub header: RecordHeader,
    /// The `SSL *` of the call: with the tgid it names one TLS stream.
    pub stream: u64,
    /// Offset of the first payload byte within this direction of the stream. Offsets advance by
    /// the whole call length even when bytes were not captured, so userspace can see gaps.
    pub stream_offset: u64,
    /// Bytes the SSL call moved in total.
    pub call_len: u32,
    /// Bytes of payload in this record.
    pub payload_len: u32,
    pub direction: u32,
    /// Socket fd if the kernel has already tied this stream to one, else -1.
    pub fd: i32,
    /// Attach cookie of the probe: identifies the library file in userspace (0 for plaintext).
    pub library_id: u32,
    /// DATA_* bits.
    pub flags: u32,
    pub comm: [u8; COMM_BYTES],
    /// cgroup v2 id of the task (bpf_get_current_cgroup_id): the container, where there is one.
    pub cgroup_id: u64,
}

/// The kernel tied a TLS stream to a socket fd (the first syscall nested in an SSL call).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketRecord {
    pub header: RecordHeader,
    pub stream: u64,
    pub fd: i32,
    pub role: u32,
    pub flags: u32,
    pub family: u16,
    /// Host byte order.
    pub local_port: u16,
    /// Host byte order.
    pub remote_port: u16,
    pub _pad: [u8; 6],
    /// IPv4 in the first four bytes, network order; IPv6 all sixteen.
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}

/// A socket that carried a TLS stream was closed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseRecord {
    pub header: RecordHeader,
    pub stream: u64,
    pub fd: i32,
    pub _pad: u32,
}

/// A process called execve; lets userspace find new libraries and name short-lived processes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    pub header: RecordHeader,
    pub comm: [u8; COMM_BYTES],
    pub filename: [u8; EXEC_FILENAME_BYTES],
}

/// A whole process (thread group) exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitRecord {
    pub header: RecordHeader,
}

/// Per-CPU counters in the COUNTERS array, indexed by these constants.
pub mod counter {
    /// Records lost because the ring buffer was full.
    pub const RINGBUF_FULL_RECORDS: u32 = 0;
    /// Payload bytes lost because the ring buffer was full.
    pub const RINGBUF_FULL_BYTES: u32 = 1;
    /// Bytes of SSL calls beyond the per-call capture cap.
    pub const TRUNCATED_BYTES: u32 = 2;
    /// Payload reads from process memory that failed (bytes not captured).
    pub const READ_FAULT_BYTES: u32 = 3;
    /// In-flight SSL calls not tracked because the call table was full.
    pub const CALL_TABLE_FULL: u32 = 4;
    /// Stream or socket table insertions that failed.
    pub const STREAM_TABLE_FULL: u32 = 5;
    /// SSL entry probe hits.
    pub const SSL_ENTRY_HITS: u32 = 6;
    /// SSL return probe hits.
    pub const SSL_RETURN_HITS: u32 = 7;
    /// Data records submitted.
    pub const DATA_RECORDS: u32 = 8;
    /// Forced ring-buffer wakeups.
    pub const WAKEUPS: u32 = 9;
    /// Non-data records lost because the ring buffer was full.
    pub const RINGBUF_FULL_CONTROL: u32 = 10;
    /// SSL calls not captured because a filter excluded the process or the connection.
    pub const FILTERED_CALLS: u32 = 11;
    /// Plaintext sockets whose first bytes looked like HTTP/1 (captured from then on).
    pub const PLAIN_SOCKETS_HTTP: u32 = 12;
    /// Plaintext sockets whose first bytes were something else (TLS, databases…): never shipped.
    pub const PLAIN_SOCKETS_OTHER: u32 = 13;
    /// HTTP sockets that switched to TLS (e.g. after CONNECT): capture stopped before the
    /// first TLS record.
    pub const PLAIN_SOCKETS_TO_TLS: u32 = 14;
    /// Socket addresses read from the `struct sock *` a kprobe saw (kprobe hooks).
    pub const ADDRESSES_FROM_KPROBE: u32 = 15;
    /// Socket addresses read by walking the task's fd table (tracepoint hooks).
    pub const ADDRESSES_FROM_FD_TABLE: u32 = 16;
    /// Bytes of vectored socket I/O beyond the iovecs the kernel side walks (not captured).
    pub const IOV_UNCAPTURED_BYTES: u32 = 17;
    /// Bytes sendfile moved from files onto HTTP sockets (never in user memory: counted only).
    pub const SENDFILE_BYTES: u32 = 18;
    /// Go TLS returns whose entry was not found (evicted from the call table, or the probes
    /// were attached while the call was in flight): that call's bytes are not captured.
    pub const GO_RETURNS_UNMATCHED: u32 = 19;
    /// Go TLS calls whose connection did not lead to a socket of the process (a wrapped
    /// net.Conn): captured, with addresses unknown.
    pub const GO_SOCKET_UNKNOWN: u32 = 20;
    pub const COUNT: u32 = 21;
}

/// Kernel-side filters: map values and FILTER_FLAGS bits.
pub mod filter {
    /// Map value: capture only listed keys (when a list of this kind has any include).
    pub const INCLUDE: u8 = 1;
    /// Map value: never capture this key.
    pub const EXCLUDE: u8 = 2;
    pub const PID_ACTIVE: u32 = 1 << 0;
    pub const PID_INCLUDE: u32 = 1 << 1;
    pub const COMM_ACTIVE: u32 = 1 << 2;
    pub const COMM_INCLUDE: u32 = 1 << 3;
    pub const CGROUP_ACTIVE: u32 = 1 << 4;
    pub const CGROUP_INCLUDE: u32 = 1 << 5;
    pub const PORT_ACTIVE: u32 = 1 << 6;
    pub const PORT_INCLUDE: u32 = 1 << 7;
    /// Entries per filter map.
    pub const MAX_ENTRIES: u32 = 1024;
}

/// Library ids (attach cookies) are below this; per-library arrays have this many slots.
pub const MAX_LIBRARIES: u32 = 256;

/// Runtime check of a chosen internal attach point, per library (per CPU; userspace sums):
/// how often the exported wrapper was entered, and whether the internal function then saw the
/// same (ssl, buf) arguments on the same thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LibCheck {
    pub wrapper_hits: u64,
    pub matches: u64,
    pub mismatches: u64,
}

/// Kernel struct member offsets (bytes) resolved from BTF in userspace. `valid == 1` once filled.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub valid: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_private_data: u32,
    pub socket_file: u32,
    pub socket_sk: u32,
    pub skc_family: u32,
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    pub skc_dport: u32,
    pub skc_num: u32,
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    pub _pad: u32,
}

const _: () = {
    assert!(core::mem::size_of::<RecordHeader>() == 24);
    assert!(core::mem::size_of::<DataRecord>() == 88);
    assert!(core::mem::size_of::<SocketRecord>() == 88);
    assert!(core::mem::size_of::<CloseRecord>() == 40);
    assert!(core::mem::size_of::<ExecRecord>() == 296);
    assert!(core::mem::size_of::<ExitRecord>() == 24);
    assert!(core::mem::size_of::<KernelOffsets>() == 64);
    assert!(core::mem::size_of::<LibCheck>() == 24);
    assert!(DATA_CHUNK_BYTES.is_power_of_two());
};
