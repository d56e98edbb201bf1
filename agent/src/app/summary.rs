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
    if agent.bench_dropped_exchanges > 0 {
        s.push_str(&format!(
            " bench_dropped_exchanges={} (--bench-capture-only: no events, no detections)",
            agent.bench_dropped_exchanges
        ));
    }
    let h2 = &conns.protocol.h2;
    if h2.connections > 0 {
        s.push_str(&format!(
            " | http2: connections={} (recognised={} upgraded={} back_to_http1={}) frames={} header_blocks={} hpack_unsynced_fields={} \
hpack_dropped_fields={} hpack_errors={} oversized_blocks={} protocol_errors={} resyncs={} \
skipped_bytes={} streams_evicted={} orphan_frames={} interim_responses={} unresolved_heads={} restarts={}",
            h2.connections,
            conns.protocol.switched_to_h2,
            conns.protocol.upgraded_to_h2,
            conns.protocol.switched_to_h1,
            h2.frames,
            h2.header_blocks,
            h2.hpack_unsynced_fields,
            h2.hpack_dropped_fields,
            h2.hpack_errors,
            h2.oversized_blocks,
            h2.protocol_errors,
            h2.resyncs,
            h2.skipped_bytes,
            h2.streams_evicted,
            h2.orphan_frames,
            h2.interim_responses,
            h2.unresolved_heads,
            h2.restarts,
        ));
    }
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
iov_uncaptured_bytes={} sendfile_bytes={} addresses_from_kprobe={} addresses_from_fd_table={} \
go_returns_unmatched={} go_socket_unknown={}",
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
                k.go_returns_unmatched,
                k.go_socket_unknown,
            ));
        }
        None => s.push_str(" | kernel counters unavailable"),
    }
    s
}

/// The enforcement line of the exit summary: the agent's verdict outcomes and list mirror, and
/// the kernel's head-scan counters (every head not judged is counted: enforcement fails open).
pub fn enforcement<M: crate::kernel::control::VerdictMaps>(
    enforcer: &crate::enforce::Enforcer<M>,
) -> String {
    use agent_common::enforce::counter as k;
    let s = enforcer.stats;
    let kc = enforcer.kernel_counters();
    let at = |i: u32| kc.get(i as usize).copied().unwrap_or(0);
    format!(
        "enforcement: mode={} verdicts={} would_block={} blocked={} reset={} reset_failed={} \
actors_listed={} routes_listed={} clients_listed={} actors_not_enforceable={} routes_not_enforceable={} list_full={} map_errors={} tripped={} \
decision_service_verdicts={} decision_evidence_dropped={} | \
kernel: heads_scanned={} heads_plaintext={} heads_split={} heads_unparsed={} heads_without_token={} would_block={} blocked={} \
gate_failed={} packets_dropped={} lsm_denied={} verdicts_lost={}",
        enforcer.mode().as_str(),
        s.verdicts,
        s.would_block,
        s.blocked,
        s.reset,
        s.reset_failed,
        s.actors_listed,
        s.routes_listed,
        s.clients_listed,
        s.actors_not_enforceable,
        s.routes_not_enforceable,
        s.list_full,
        s.map_errors,
        s.tripped,
        s.decisions,
        crate::enforce::decision::DROPPED.load(std::sync::atomic::Ordering::Relaxed),
        at(k::HEADS_SCANNED),
        at(k::HEADS_PLAINTEXT),
        at(k::HEADS_SPLIT),
        at(k::HEADS_UNPARSED),
        at(k::HEADS_WITHOUT_TOKEN),
        at(k::WOULD_BLOCK),
        at(k::BLOCKED),
        at(k::GATE_FAILED),
        at(k::PACKETS_DROPPED),
        at(k::LSM_DENIED),
        at(k::VERDICTS_LOST),
    )
}
