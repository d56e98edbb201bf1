//! Counters from both halves, and the summary logged at exit (and when drops grow).

use agent_common::{event::counter, names::MAP_COUNTERS};
use aya::{Ebpf, maps::PerCpuArray};

use crate::{conn::ConnStats, contain::Stage};

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
    pub rescans_dropped: u64,
    pub attach_failures: u64,
    pub libraries_released: u64,
    /// Panics contained in per-record and per-exchange work, per stage.
    pub internal_errors: crate::contain::InternalErrors,
}

pub fn summary(
    kernel: Option<&KernelCounters>,
    agent: &AgentCounters,
    conns: &ConnStats,
) -> String {
    let mut s = format!(
        "exchanges={} events_written={} records={} payload_bytes={} decode_errors={} \
parse_errors={} desyncs={} gap_events={} gap_bytes={} duplicate_bytes={} \
requests_without_response={} responses_without_request={} uncaptured_file_bytes={} \
streams_opened={} streams_evicted={} streams_idle_expired={} rescans_dropped={} attach_failures={} libraries_released={} \
internal_errors={} (conn={} event={} detect={} output={})",
        conns.exchanges,
        agent.events_written,
        agent.records,
        agent.payload_bytes,
        agent.decode_errors,
        conns.parse_errors,
        conns.desyncs,
        conns.gap_events,
        conns.gap_bytes,
        conns.duplicate_bytes,
        conns.requests_without_response,
        conns.responses_without_request,
        conns.uncaptured_file_bytes,
        conns.streams_opened,
        conns.streams_evicted,
        conns.streams_idle_expired,
        agent.rescans_dropped,
        agent.attach_failures,
        agent.libraries_released,
        agent.internal_errors.total(),
        agent.internal_errors.get(Stage::Conn),
        agent.internal_errors.get(Stage::Event),
        agent.internal_errors.get(Stage::Detect),
        agent.internal_errors.get(Stage::Output),
    );
    match kernel {
        Some(k) => {
            let hits = k.ssl_entry_hits + k.ssl_return_hits;
            let per_exchange = if conns.exchanges > 0 {
                format!("{:.1}", hits as f64 / conns.exchanges as f64)
            } else {
                "n/a".into()
            };
            s.push_str(&format!(
                " | kernel: ringbuf_full_records={} ringbuf_full_bytes={} ringbuf_full_control={} \
truncated_bytes={} read_fault_bytes={} call_table_full={} stream_table_full={} \
ssl_probe_hits={} (entry={} return={}, per exchange={}) data_records={} forced_wakeups={} \
filtered_calls={} plain_sockets_http={} plain_sockets_other={} plain_sockets_to_tls={} \
iov_uncaptured_bytes={} sendfile_bytes={} addresses_from_kprobe={} addresses_from_fd_table={}",
                k.ringbuf_full_records,
                k.ringbuf_full_bytes,
                k.ringbuf_full_control,
                k.truncated_bytes,
                k.read_fault_bytes,
                k.call_table_full,
                k.stream_table_full,
                hits,
                k.ssl_entry_hits,
                k.ssl_return_hits,
                per_exchange,
                k.data_records,
                k.wakeups,
                k.filtered_calls,
                k.plain_sockets_http,
                k.plain_sockets_other,
                k.plain_sockets_to_tls,
                k.iov_uncaptured_bytes,
                k.sendfile_bytes,
                k.addresses_from_kprobe,
                k.addresses_from_fd_table,
            ));
        }
        None => s.push_str(" | kernel counters unavailable"),
    }
    s
}
