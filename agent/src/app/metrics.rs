//! Prometheus `/metrics` and `/healthz` on a small HTTP/1 server (127.0.0.1 by default).
//!
//! The capture loop publishes a snapshot of its counters once a second; scrapes read the last
//! snapshot and never touch the loop. `/healthz` answers 200 while the loop keeps publishing
//! (it is stuck or gone otherwise: 503), so a liveness probe catches a wedged agent.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Bytes, service::service_fn};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use crate::{
    conn::ConnStats,
    kernel::counters::{AgentCounters, KernelCounters},
};

/// A loop that has not published for this long is reported unhealthy.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// What the capture loop publishes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub kernel: Option<KernelCounters>,
    pub agent: AgentCounters,
    pub conns: ConnStats,
    pub open_streams: u64,
    pub attached_libraries: u64,
    pub published: Option<Instant>,
    pub sinks: Vec<crate::output::SinkSnapshot>,
    pub findings: u64,
    pub workload: crate::enrich::workload::WorkloadStats,
    /// Enforcement (None when `[enforce] mode` was off at start): the agent's verdict outcomes
    /// and the kernel's head-scan counters (agent_common::enforce::counter order).
    pub enforce: Option<(
        crate::enforce::EnforceStats,
        [u64; agent_common::enforce::counter::COUNT as usize],
    )>,
}

pub type Shared = Arc<Mutex<Snapshot>>;

/// `"HOST:PORT"` or `"off"` (→ None); the error says what is allowed.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text == "off" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| "must be an IP:PORT such as \"127.0.0.1:9464\", or \"off\"".to_owned())
}

#[derive(Debug)]
struct SnapshotCollector(Shared);

type Family<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str, u64)]);

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, series): Family<'_>,
) -> std::fmt::Result {
    let metric = ConstCounter::new(0u64);
    let mut family = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    for &(label, value, n) in series {
        if label.is_empty() {
            // An unlabelled counter: one sample, no `{}`.
            return ConstCounter::new(n).encode(family);
        }
        ConstCounter::new(n).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, n: u64) -> std::fmt::Result {
    let metric = ConstGauge::new(n as i64);
    let family = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(family)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let s = self.0.lock().map(|s| s.clone()).unwrap_or_default();
        let k = s.kernel.unwrap_or_default();
        let (a, c) = (s.agent, s.conns);
        counter(
            &mut e,
            (
                "cleartap_exchanges",
                "HTTP exchanges rebuilt",
                &[("", "", c.exchanges)],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_events_written",
                "events written to the output",
                &[("", "", a.events_written)],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_records",
                "kernel records read",
                &[("", "", a.records)],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_payload_bytes",
                "payload bytes read from the kernel",
                &[("", "", a.payload_bytes)],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_dropped_records",
                "records lost, by cause",
                &[
                    ("cause", "ringbuf_full", k.ringbuf_full_records),
                    ("cause", "ringbuf_full_control", k.ringbuf_full_control),
                    ("cause", "call_table_full", k.call_table_full),
                    ("cause", "stream_table_full", k.stream_table_full),
                    ("cause", "undecodable", a.decode_errors),
                ],
            ),
        )?;
        let ie = a.internal_errors;
        counter(
            &mut e,
            (
                "cleartap_internal_errors",
                "items dropped by a contained internal error (a bug: please report), by stage",
                &[
                    ("stage", "conn", ie.get(crate::contain::Stage::Conn)),
                    ("stage", "event", ie.get(crate::contain::Stage::Event)),
                    ("stage", "detect", ie.get(crate::contain::Stage::Detect)),
                    ("stage", "output", ie.get(crate::contain::Stage::Output)),
                ],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_uncaptured_bytes",
                "payload bytes not captured, by cause",
                &[
                    ("cause", "ringbuf_full", k.ringbuf_full_bytes),
                    ("cause", "read_fault", k.read_fault_bytes),
                    ("cause", "capture_cap", k.truncated_bytes),
                    ("cause", "iovec_cap", k.iov_uncaptured_bytes),
                    ("cause", "sendfile", k.sendfile_bytes),
                    ("cause", "stream_gap", c.gap_bytes),
                ],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_stream_problems",
                "stream-level problems, by kind",
                &[
                    ("kind", "parse_error", c.parse_errors),
                    ("kind", "go_return_unmatched", k.go_returns_unmatched),
                    ("kind", "go_socket_unknown", k.go_socket_unknown),
                    ("kind", "desync", c.desyncs),
                    ("kind", "evicted", c.streams_evicted),
                    ("kind", "idle_expired", c.streams_idle_expired),
                    (
                        "kind",
                        "request_without_response",
                        c.requests_without_response,
                    ),
                    (
                        "kind",
                        "response_without_request",
                        c.responses_without_request,
                    ),
                ],
            ),
        )?;
        let h2 = &c.protocol.h2;
        counter(
            &mut e,
            (
                "cleartap_http2",
                "HTTP/2 parsing: connections, frames and every anomaly, by kind",
                &[
                    ("kind", "connections", h2.connections),
                    ("kind", "recognised", c.protocol.switched_to_h2),
                    ("kind", "upgraded", c.protocol.upgraded_to_h2),
                    ("kind", "back_to_http1", c.protocol.switched_to_h1),
                    ("kind", "frames", h2.frames),
                    ("kind", "header_blocks", h2.header_blocks),
                    ("kind", "hpack_unsynced_fields", h2.hpack_unsynced_fields),
                    ("kind", "hpack_dropped_fields", h2.hpack_dropped_fields),
                    ("kind", "hpack_errors", h2.hpack_errors),
                    ("kind", "oversized_blocks", h2.oversized_blocks),
                    ("kind", "protocol_errors", h2.protocol_errors),
                    ("kind", "resyncs", h2.resyncs),
                    ("kind", "skipped_bytes", h2.skipped_bytes),
                    ("kind", "streams_evicted", h2.streams_evicted),
                    ("kind", "orphan_frames", h2.orphan_frames),
                    ("kind", "interim_responses", h2.interim_responses),
                    ("kind", "unresolved_heads", h2.unresolved_heads),
                    ("kind", "restarts", h2.restarts),
                ],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_probe_hits",
                "TLS probe hits",
                &[
                    ("probe", "entry", k.ssl_entry_hits),
                    ("probe", "return", k.ssl_return_hits),
                ],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_filtered_calls",
                "calls skipped by filters",
                &[("", "", k.filtered_calls)],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_plain_sockets",
                "sockets classified by their first plaintext bytes",
                &[
                    ("class", "http", k.plain_sockets_http),
                    ("class", "other", k.plain_sockets_other),
                    ("class", "to_tls", k.plain_sockets_to_tls),
                ],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_attach_failures",
                "library attach failures",
                &[("", "", a.attach_failures)],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_libraries_released",
                "libraries detached as unused",
                &[("", "", a.libraries_released)],
            ),
        )?;
        counter(
            &mut e,
            (
                "cleartap_findings",
                "detection findings emitted",
                &[("", "", s.findings)],
            ),
        )?;
        sink_families(&mut e, &s.sinks)?;
        if let Some((stats, kernel)) = &s.enforce {
            enforce_families(&mut e, stats, kernel)?;
        }
        gauge(
            &mut e,
            "cleartap_attached_libraries",
            "TLS libraries attached now",
            s.attached_libraries,
        )?;
        gauge(
            &mut e,
            "cleartap_open_streams",
            "streams tracked now",
            s.open_streams,
        )?;
        workload_families(&mut e, &s.workload)
    }
}

fn enforce_families(
    e: &mut DescriptorEncoder<'_>,
    s: &crate::enforce::EnforceStats,
    k: &[u64; agent_common::enforce::counter::COUNT as usize],
) -> std::fmt::Result {
    use agent_common::enforce::counter as kc;
    let at = |i: u32| k.get(i as usize).copied().unwrap_or(0);
    counter(
        e,
        (
            "cleartap_enforce_verdicts",
            "kernel enforcement verdicts, by what came of them",
            &[
                ("action", "would_block", s.would_block),
                ("action", "blocked", s.blocked),
                ("action", "reset", s.reset),
                ("action", "reset_failed", s.reset_failed),
            ],
        ),
    )?;
    counter(
        e,
        (
            "cleartap_enforce_heads",
            "request heads at a verdict point, by outcome (unparsed and tokenless heads are allowed)",
            &[
                ("outcome", "scanned", at(kc::HEADS_SCANNED)),
                ("outcome", "scanned_plaintext", at(kc::HEADS_PLAINTEXT)),
                ("outcome", "split", at(kc::HEADS_SPLIT)),
                ("outcome", "unparsed", at(kc::HEADS_UNPARSED)),
                ("outcome", "without_token", at(kc::HEADS_WITHOUT_TOKEN)),
            ],
        ),
    )?;
    counter(
        e,
        (
            "cleartap_enforce_problems",
            "enforcement problems, by kind",
            &[
                ("kind", "gate_failed", at(kc::GATE_FAILED)),
                ("kind", "verdict_lost", at(kc::VERDICTS_LOST)),
                ("kind", "actor_not_enforceable", s.actors_not_enforceable),
                ("kind", "route_not_enforceable", s.routes_not_enforceable),
                ("kind", "list_full", s.list_full),
                ("kind", "map_error", s.map_errors),
                ("kind", "tripped_to_monitor", s.tripped),
            ],
        ),
    )?;
    counter(
        e,
        (
            "cleartap_enforce_packets_dropped",
            "egress packets the gate dropped",
            &[("", "", at(kc::PACKETS_DROPPED))],
        ),
    )?;
    counter(
        e,
        (
            "cleartap_enforce_sends_denied",
            "sends on gated connections the BPF-LSM gate refused",
            &[("", "", at(kc::LSM_DENIED))],
        ),
    )?;
    counter(
        e,
        (
            "cleartap_enforce_list_updates",
            "list entries mirrored into the kernel, by list",
            &[
                ("list", "abusive_actors", s.actors_listed),
                ("list", "sensitive_routes", s.routes_listed),
                ("list", "abusive_clients", s.clients_listed),
            ],
        ),
    )
}

fn workload_families(
    e: &mut DescriptorEncoder<'_>,
    w: &crate::enrich::workload::WorkloadStats,
) -> std::fmt::Result {
    counter(
        e,
        (
            "cleartap_cgroups",
            "cgroups looked up for container enrichment, by result",
            &[
                ("result", "resolved", w.cgroups_resolved),
                ("result", "unresolved", w.cgroups_unresolved),
            ],
        ),
    )?;
    counter(
        e,
        (
            "cleartap_kubernetes_api_errors",
            "failed Kubernetes API requests (retried with backoff)",
            &[("", "", w.api_errors)],
        ),
    )?;
    counter(
        e,
        (
            "cleartap_kubernetes_unusable_objects",
            "watch lines or objects that did not parse or were too long",
            &[("", "", w.api_unusable)],
        ),
    )?;
    gauge(
        e,
        "cleartap_kubernetes_pods",
        "pods of this node in the enrichment index",
        w.pods_known,
    )?;
    gauge(
        e,
        "cleartap_kubernetes_synced",
        "1 once the pod list of this node has been read",
        u64::from(w.api_synced),
    )?;
    Ok(())
}

fn sink_families(
    e: &mut DescriptorEncoder<'_>,
    sinks: &[crate::output::SinkSnapshot],
) -> std::fmt::Result {
    type Pick = fn(&crate::output::SinkSnapshot) -> u64;
    let counters: [(&str, &str, Pick); 5] = [
        ("cleartap_sink_delivered", "events a sink delivered", |s| {
            s.delivered
        }),
        (
            "cleartap_sink_spooled",
            "events a sink spooled to disk",
            |s| s.spooled,
        ),
        (
            "cleartap_sink_dropped",
            "events a sink lost (queue and spool full, or exit)",
            |s| s.dropped,
        ),
        (
            "cleartap_sink_rejected",
            "events the receiver refused for good",
            |s| s.rejected,
        ),
        (
            "cleartap_sink_failed_sends",
            "delivery attempts that failed",
            |s| s.failed_sends,
        ),
    ];
    let gauges: [(&str, &str, Pick); 2] = [
        (
            "cleartap_sink_spool_bytes",
            "bytes waiting in a sink's spool",
            |s| s.spool_bytes,
        ),
        (
            "cleartap_sink_queue_depth",
            "events waiting in a sink's memory queue",
            |s| s.queue_depth,
        ),
    ];
    for (name, help, pick) in counters {
        let mut family =
            e.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
        for s in sinks {
            ConstCounter::new(pick(s))
                .encode(family.encode_family(&[("sink", s.name.as_str())])?)?;
        }
    }
    for (name, help, pick) in gauges {
        let mut family =
            e.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
        for s in sinks {
            ConstGauge::new(pick(s) as i64)
                .encode(family.encode_family(&[("sink", s.name.as_str())])?)?;
        }
    }
    Ok(())
}

fn text_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn answer(path: &str, registry: &Registry, shared: &Shared) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => {
                    let mut r = text_response(StatusCode::OK, body);
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    r
                }
                Err(_) => text_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding failed\n".into(),
                ),
            }
        }
        "/healthz" => {
            let fresh = shared
                .lock()
                .ok()
                .and_then(|s| s.published)
                .is_some_and(|t| t.elapsed() < STALE_AFTER);
            if fresh {
                text_response(StatusCode::OK, "ok\n".into())
            } else {
                text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "capture loop not running\n".into(),
                )
            }
        }
        _ => text_response(StatusCode::NOT_FOUND, "try /metrics or /healthz\n".into()),
    }
}

/// Binds `addr` (an error names the address) and serves on the current tokio runtime.
pub async fn serve(addr: SocketAddr, shared: Shared) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(shared.clone())));
    let registry = Arc::new(registry);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (registry, shared) = (registry.clone(), shared.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let response = answer(req.uri().path(), &registry, &shared);
                    async move { Ok::<_, Infallible>(response) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(())
}
