//! Counters from both halves: the kernel's per-CPU array (summed) and the agent's own.
//! app/summary.rs writes them all at exit and whenever kernel-side losses grow.

use agent_common::{event::counter, names::MAP_COUNTERS};
use aya::{Ebpf, maps::PerCpuArray};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelCounters {
    pub ringbuf_full_records: u64,
    pub ringbuf_full_bytes: u64,
    pub ringbuf_full_control: u64,
    pub truncated_bytes: u64,
    pub read_fault_bytes: u64,
    pub call_table_full: u64,
    pub stream_table_full: u64,
    pub ssl_entry_hits: u64,
    pub ssl_return_hits: u64,
    pub data_records: u64,
    pub wakeups: u64,
    pub filtered_calls: u64,
    pub plain_sockets_http: u64,
    pub plain_sockets_other: u64,
    pub plain_sockets_to_tls: u64,
    pub addresses_from_kprobe: u64,
    pub addresses_from_fd_table: u64,
    pub iov_uncaptured_bytes: u64,
    pub sendfile_bytes: u64,
    pub go_returns_unmatched: u64,
    pub go_socket_unknown: u64,
}

impl KernelCounters {
    pub fn read(ebpf: &Ebpf) -> Option<Self> {
        let map = ebpf.map(MAP_COUNTERS)?;
        let array: PerCpuArray<_, u64> = PerCpuArray::try_from(map).ok()?;
        let sum = |index: u32| -> u64 {
            array
                .get(&index, 0)
                .map(|values| values.iter().copied().fold(0u64, u64::saturating_add))
                .unwrap_or(0)
        };
        Some(Self {
            ringbuf_full_records: sum(counter::RINGBUF_FULL_RECORDS),
            ringbuf_full_bytes: sum(counter::RINGBUF_FULL_BYTES),
            ringbuf_full_control: sum(counter::RINGBUF_FULL_CONTROL),
            truncated_bytes: sum(counter::TRUNCATED_BYTES),
            read_fault_bytes: sum(counter::READ_FAULT_BYTES),
            call_table_full: sum(counter::CALL_TABLE_FULL),
            stream_table_full: sum(counter::STREAM_TABLE_FULL),
            ssl_entry_hits: sum(counter::SSL_ENTRY_HITS),
            ssl_return_hits: sum(counter::SSL_RETURN_HITS),
            data_records: sum(counter::DATA_RECORDS),
            wakeups: sum(counter::WAKEUPS),
            filtered_calls: sum(counter::FILTERED_CALLS),
            plain_sockets_http: sum(counter::PLAIN_SOCKETS_HTTP),
            plain_sockets_other: sum(counter::PLAIN_SOCKETS_OTHER),
            plain_sockets_to_tls: sum(counter::PLAIN_SOCKETS_TO_TLS),
            addresses_from_kprobe: sum(counter::ADDRESSES_FROM_KPROBE),
            addresses_from_fd_table: sum(counter::ADDRESSES_FROM_FD_TABLE),
            iov_uncaptured_bytes: sum(counter::IOV_UNCAPTURED_BYTES),
            sendfile_bytes: sum(counter::SENDFILE_BYTES),
            go_returns_unmatched: sum(counter::GO_RETURNS_UNMATCHED),
            go_socket_unknown: sum(counter::GO_SOCKET_UNKNOWN),
        })
    }

    /// Anything lost in the kernel (as opposed to merely counted).
    pub fn losses(&self) -> u64 {
        self.ringbuf_full_records
            + self.ringbuf_full_control
            + self.read_fault_bytes
            + self.call_table_full
            + self.stream_table_full
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AgentCounters {
    pub records: u64,
    pub decode_errors: u64,
    pub payload_bytes: u64,
    pub events_written: u64,
    /// `--bench-capture-only`: exchanges rebuilt and dropped on purpose.
    pub bench_dropped_exchanges: u64,
    pub rescans_dropped: u64,
    pub attach_failures: u64,
    pub libraries_released: u64,
    /// Panics contained in per-record and per-exchange work, per stage.
    pub internal_errors: crate::contain::InternalErrors,
}
