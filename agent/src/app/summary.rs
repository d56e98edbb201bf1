//! The exit summary (and the line logged when kernel-side losses grow): every counter of both
//! halves on one line, so nothing lost goes unsaid.

use crate::{
    conn::ConnStats,
    contain::Stage,
    kernel::counters::{AgentCounters, KernelCounters},
};

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
