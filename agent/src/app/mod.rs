//! Start-up: checks, kernel offsets, eBPF load and attach, library discovery, then the loop.

pub mod event_loop;
mod floor;
pub mod install;
pub mod metrics;
pub mod pipeline;
pub mod replay;
pub mod summary;
pub mod token_key;

use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::{
    app::event_loop::{Loop, monotonic_now_ns},
    app::pipeline::Pipeline,
    config::{Config, SocketHooks},
    conn::{ConnTable, TableLimits},
    kernel::loader::{self, LoadOptions},
    kernel::offsets as btf_offsets,
    kernel::tls::{Attacher, ProbeMode, discovery},
    protocol::h1::Limits,
};

const TRACEFS: &str = "/sys/kernel/tracing";

fn ensure_tracefs() {
    if std::path::Path::new(TRACEFS).join("events").exists() {
        return;
    }
    log::info!("tracefs not mounted; mounting it at {TRACEFS}");
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", TRACEFS])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        log::warn!("could not mount tracefs at {TRACEFS}; tracepoint attach may fail");
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buffer and its length are valid.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    crate::kernel::decode::c_string(&buf)
}

fn monotonic_to_unix_ns() -> i128 {
    let mono = monotonic_now_ns() as i128;
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    unix - mono
}

/// Loads (or creates) the redaction key. A key file that cannot be created (a read-only mount)
/// falls back to `fallback` (this node's own file) when given, else to a key for this run only;
/// a malformed one is an error.
fn load_token_key(
    path: &std::path::Path,
    fallback: Option<&std::path::Path>,
) -> anyhow::Result<crate::classify::redact::TokenKey> {
    use crate::app::token_key::{TokenKeyError, load_or_create, random_key};
    let loaded = |(key, created): ([u8; 32], bool), path: &std::path::Path| {
        if created {
            log::info!("created redaction key {}", path.display());
        }
        key
    };
    let key = match load_or_create(path) {
        Ok(found) => loaded(found, path),
        Err(e @ TokenKeyError::Length { .. }) => return Err(e.into()),
        Err(e) => match fallback.map(|f| (f, load_or_create(f))) {
            Some((f, Ok(found))) => {
                log::warn!(
                    "{e}; using this node's key {} instead: redaction tags and enforcement keys are not shared with other nodes (create the shared key, e.g. the cleartap-token-key Secret)",
                    f.display()
                );
                loaded(found, f)
            }
            Some((_, Err(e @ TokenKeyError::Length { .. }))) => return Err(e.into()),
            _ => {
                log::warn!(
                    "{e}; using a key for this run only: redaction tags will differ after a restart"
                );
                random_key().context("reading /dev/urandom")?
            }
        },
    };
    Ok(crate::classify::redact::TokenKey::new(&key))
}

/// Picks and attaches the socket hooks; returns a description for the start-up log line.
fn attach_socket_hooks(ebpf: &mut aya::Ebpf, wanted: SocketHooks) -> anyhow::Result<String> {
    let has_kprobes = loader::kernel_has_kprobes();
    match wanted {
        SocketHooks::Tracepoint => Ok("tracepoints + fd-table walk (as configured)".into()),
        SocketHooks::Auto if !has_kprobes => {
            Ok("tracepoints + fd-table walk (this kernel has no kprobes)".into())
        }
        SocketHooks::Kprobe if !has_kprobes => bail!(
            "--socket-hooks kprobe: this kernel has no kprobes (no /sys/bus/event_source/devices/kprobe); use auto or tracepoint"
        ),
        SocketHooks::Kprobe => {
            let n = loader::attach_socket_kprobes(ebpf)?;
            Ok(format!("{n} kprobes (tcp_sendmsg, tcp_recvmsg)"))
        }
        SocketHooks::Auto => match loader::attach_socket_kprobes(ebpf) {
            Ok(n) => Ok(format!("{n} kprobes (tcp_sendmsg, tcp_recvmsg)")),
            // The fd-table walk still finds every socket; only the cheaper path is lost.
            Err(e) => {
                log::warn!("{e}; falling back to the fd-table walk");
                Ok("tracepoints + fd-table walk (kprobe attach failed)".into())
            }
        },
    }
}

/// Attaches to every TLS library given with --library, preloaded for new processes, or mapped
/// by a running process. Only a library named with --library is fatal when it fails.
fn attach_present_libraries(
    attacher: &mut Attacher,
    ebpf: &mut aya::Ebpf,
    config: &Config,
) -> anyhow::Result<()> {
    let mut candidates: Vec<(std::path::PathBuf, Option<u32>)> = Vec::new();
    candidates.extend(config.libraries.iter().map(|p| (p.clone(), None)));
    candidates.extend(
        discovery::tls_libraries_for_new_processes()
            .into_iter()
            .map(|p| (p, None)),
    );
    for pid in discovery::all_pids() {
        candidates.extend(
            discovery::candidates_of_process(pid)
                .into_iter()
                .map(|p| (p, Some(pid))),
        );
    }
    for (path, pid) in candidates {
        if let Err(e) = attacher.attach(ebpf, &path, pid) {
            if config.libraries.contains(&path) {
                return Err(e).context("attaching to a library given with --library");
            }
            if e.is_vanished() {
                log::debug!("{e}");
            } else {
                log::warn!("{e}");
            }
        }
    }
    Ok(())
}

pub fn run(config: Config, loader: crate::config::file::Loader) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "cleartap must run as root: loading eBPF programs and uprobes needs CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE (or CAP_SYS_ADMIN)"
        );
    }
    let filters = config.filters();
    filters.validate()?;
    let token_key = load_token_key(
        &config.token_key_file,
        config.token_key_fallback_file.as_deref(),
    )?;
    ensure_tracefs();
    let offsets = match btf_offsets::resolve(btf_offsets::VMLINUX_BTF) {
        Ok(o) => o,
        Err(e) => {
            log::warn!("{e}; local/remote addresses will be reported as null");
            Default::default()
        }
    };
    let mut ebpf = loader::load(&LoadOptions {
        capture_max_bytes: config.capture_max_bytes,
        filter_flags: filters.flags(),
        wakeup_bytes: config.wakeup_bytes,
        ring_buffer_bytes: config.ring_buffer_mib * 1024 * 1024,
        offsets,
        plaintext: !config.no_plaintext,
    })?;
    filters.install(&mut ebpf)?;
    if !filters.is_empty() {
        log::info!("kernel filters: {filters:?}");
    }
    if config.probe_mode == ProbeMode::Floor {
        return floor::run(ebpf, &config);
    }
    let tracepoints = loader::attach_tracepoints(&mut ebpf)?;
    let hooks = attach_socket_hooks(&mut ebpf, config.socket_hooks)?;
    Attacher::load_programs(&mut ebpf, config.probe_mode)?;

    let mut attacher = Attacher::new(config.probe_mode);
    attach_present_libraries(&mut attacher, &mut ebpf, &config)?;
    if attacher.libraries().is_empty() {
        log::warn!(
            "no TLS library found yet; new processes are watched and attached when they map one"
        );
    }
    let (enforcer, enforcement) =
        start_enforcement(&mut ebpf, &config, token_key.credential_key())?;
    // Said by the event loop once its signal handlers are in place: a supervisor (or a test)
    // that stops the agent as soon as it reads this line gets a clean shutdown, never the
    // default action of SIGTERM.
    let live_line = format!(
        "probes live: {tracepoints} tracepoints, socket hooks: {hooks}, {} TLS libraries, plain HTTP {}; enforcement {enforcement}; capture cap {} bytes per call, ring buffer {} MiB",
        attacher.libraries().len(),
        if config.no_plaintext { "off" } else { "on" },
        config.capture_max_bytes,
        config.ring_buffer_mib
    );

    let limits = TableLimits {
        max_streams: config.max_streams as usize,
        idle_timeout_ns: config.idle_timeout_secs.saturating_mul(1_000_000_000),
        http: Limits {
            // The parser keeps what events show, or what the detection rules read if more.
            body_prefix_bytes: (config.body_prefix_bytes as usize).max(if config.detect.enabled {
                config.detect.body_tap_bytes
            } else {
                0
            }),
            ..Limits::default()
        },
        http2: crate::protocol::h2::Limits {
            body_prefix_bytes: (config.body_prefix_bytes as usize).max(if config.detect.enabled {
                config.detect.body_tap_bytes
            } else {
                0
            }),
            ..crate::protocol::h2::Limits::default()
        },
    };
    let host = hostname();
    let output = crate::output::Output::start(&config.sinks, &host)?;
    let mut pipeline = Pipeline::new(
        ConnTable::new(limits),
        output,
        host,
        monotonic_to_unix_ns(),
        token_key,
    );
    pipeline.body_routes = config.body_routes.clone();
    pipeline.event_body_bytes = config.body_prefix_bytes as usize;
    pipeline.capture_only = config.bench_capture_only;
    if config.bench_capture_only {
        log::warn!(
            "--bench-capture-only: exchanges are rebuilt and dropped, no events or detections (a benchmark mode)"
        );
    }
    // Capture alone has no engine: nothing is judged, and no empty inventory is written at exit
    // over the one a real run left.
    if config.detect.enabled && !config.bench_capture_only {
        let mut engine = crate::detect::Engine::new(config.detect.clone());
        engine.track_lists = enforcer.is_some();
        let specs = crate::detect::specs::ApiSpecs::load(&config.inventory)?;
        if !specs.is_empty() {
            log::info!(
                "API specs: {} operations from {} files; traffic is judged against them (INV-3…6)",
                specs.operations,
                specs.files
            );
        }
        engine.set_specs(specs);
        pipeline.detect = Some(engine);
    }
    if enforcer.is_some() && config.enforce.audit_log != "off" {
        let path = std::path::Path::new(&config.enforce.audit_log);
        pipeline.audit = Some(crate::enforce::audit::AuditLog::open(
            path,
            config.enforce.audit_log_max_bytes,
        )?);
    }
    pipeline.enforce = enforcer;
    if let Some(api) = kubernetes_api(&config)? {
        pipeline.workloads.watch_pods(api)?;
    }
    if let Some(path) = &config.record_raw {
        pipeline.record_to(crate::kernel::recording::Recorder::create(path)?);
        log::warn!(
            "recording raw records with plaintext payloads to {}",
            path.display()
        );
    }
    // Start-up parsed ELF files and BTF; give that memory back before the long run.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let listen = crate::app::metrics::parse_listen(&config.metrics_listen).map_err(|allowed| {
        anyhow::anyhow!("--metrics-listen {:?}: {allowed}", config.metrics_listen)
    })?;
    let host_name = pipeline.host().to_owned();
    runtime.block_on(async move {
        let metrics = match listen {
            Some(addr) => {
                let shared = crate::app::metrics::Shared::default();
                crate::app::metrics::serve(addr, shared.clone())
                    .await
                    .with_context(|| format!("serving metrics on {addr} (--metrics-listen)"))?;
                log::info!("metrics on http://{addr}/metrics, health on http://{addr}/healthz");
                Some(shared)
            }
            None => None,
        };
        let mut pipeline = pipeline;
        let admin = match (&pipeline.enforce, config.enforce.admin_socket.as_str()) {
            (Some(_), path) if path != "off" => {
                let path = std::path::PathBuf::from(path);
                match crate::enforce::admin::listen(&path) {
                    Ok(listener) => {
                        log::info!(
                            "admin socket {} (cleartap block …, cleartap enforce MODE)",
                            path.display()
                        );
                        Some(crate::app::event_loop::Admin { listener, path })
                    }
                    // Enforcement still runs; the kill switch is then SIGHUP with the file.
                    Err(e) => {
                        log::warn!(
                            "admin socket {} ([enforce] admin_socket): {e}; no `cleartap block`/`cleartap enforce` for this run (switch with [enforce] mode and SIGHUP)",
                            path.display()
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        let decisions = match (&mut pipeline.enforce, config.enforce.decision_listen.as_str()) {
            (Some(enforcer), listen) if listen != "off" => {
                let addr: std::net::SocketAddr = listen
                    .parse()
                    .with_context(|| format!("[enforce] decision_listen = {listen:?}"))?;
                let (events, queue) = tokio::sync::mpsc::channel(1024);
                crate::enforce::decision::serve(addr, enforcer.share(), events, host_name.clone())
                    .await
                    .with_context(|| format!("decision service on {addr} ([enforce] decision_listen)"))?;
                log::info!("decision service on http://{addr}/ (nginx auth_request, Traefik ForwardAuth, Envoy ext_authz)");
                Some(queue)
            }
            _ => None,
        };
        Loop {
            ebpf,
            attacher,
            pipeline,
            admin,
            decisions,
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            library_sweep: Duration::from_secs(config.library_sweep_secs),
            metrics,
            live_line,
            reload: crate::app::event_loop::Reload {
                loader,
                running: config,
            },
        }
        .run()
        .await
    })
}

type StartedEnforcer = Option<crate::enforce::Enforcer<crate::kernel::control::EnforceMaps>>;

/// The enforcement stage, when `[enforce] mode` is not off: the verdict maps, the egress gate
/// on the cgroup v2 root (a reset alone still acts where it cannot attach), and the settings;
/// with its description for the `probes live` line.
fn start_enforcement(
    ebpf: &mut aya::Ebpf,
    config: &Config,
    credential_key: [u64; 2],
) -> anyhow::Result<(StartedEnforcer, String)> {
    use crate::{enforce::Mode, kernel::control};
    let settings = &config.enforce;
    if settings.mode == Mode::Off {
        return Ok((None, "off".into()));
    }
    let maps = control::EnforceMaps::take(ebpf)?;
    // Gates, strongest first; attached in monitor mode too, so that switching to enforce needs
    // no restart.
    let mut gates: Vec<&'static str> = Vec::new();
    let mut described: Vec<String> = Vec::new();
    match control::attach_lsm_gate(ebpf) {
        Ok(()) => {
            gates.push("bpf_lsm");
            described.push("BPF-LSM socket_sendmsg gate".into());
        }
        Err(e) => log::info!(
            "{:#}; the cgroup_skb gate acts alone",
            anyhow::Error::from(e)
        ),
    }
    match control::attach_egress_gate(ebpf) {
        Ok(root) => {
            gates.push("cgroup_skb_egress");
            described.push(format!("cgroup_skb egress gate on {root}"));
        }
        Err(e) => log::warn!(
            "{:#}; without it, blocks rely on the BPF-LSM gate (if any) and the connection reset",
            anyhow::Error::from(e)
        ),
    }
    // Plain HTTP is judged where plaintext capture follows it.
    let plain = !config.no_plaintext
        && match control::load_plain_judge(ebpf) {
            Ok(()) => true,
            Err(e) => {
                log::warn!(
                    "{:#}; plain HTTP is not judged (TLS still is)",
                    anyhow::Error::from(e)
                );
                false
            }
        };
    let gate = if described.is_empty() {
        "no gate".to_owned()
    } else {
        described.join(" + ")
    };
    let stacks = if plain { "TLS and plain-HTTP" } else { "TLS" };
    let points = match (settings.client_side, settings.server_side) {
        (true, true) => format!("{stacks} client writes and server reads"),
        (true, false) => format!("{stacks} client writes"),
        _ => format!("{stacks} server reads"),
    };
    let description = format!(
        "{} (verdicts at {points}; {gate} + sock_diag reset; policy: abusive actor x {} route)",
        settings.mode.as_str(),
        if settings.any_route {
            "any"
        } else {
            "sensitive"
        }
    );
    let mut enforcer = crate::enforce::Enforcer::new(settings.clone(), maps, credential_key)
        .context("writing the enforcement settings")?;
    enforcer.gates = gates;
    Ok((Some(enforcer), description))
}

/// Where to watch pods, if anywhere: --kubernetes-api, else the in-cluster service account.
fn kubernetes_api(
    config: &Config,
) -> anyhow::Result<Option<crate::enrich::workload::api::ApiConfig>> {
    use crate::{config::Toggle, enrich::workload::api::ApiConfig};
    if config.kubernetes == Toggle::Off {
        return Ok(None);
    }
    let node = config.node_name.clone();
    let mut api = match (&config.kubernetes_api, ApiConfig::in_cluster(node.clone())) {
        (Some(url), _) => ApiConfig::new(url.clone(), None, None, node)?,
        (None, Some(in_cluster)) => in_cluster?,
        (None, None) if config.kubernetes == Toggle::On => anyhow::bail!(
            "--kubernetes on, but this is not a pod (KUBERNETES_SERVICE_HOST is unset) and no \
--kubernetes-api was given"
        ),
        (None, None) => {
            log::debug!("pod enrichment off: not in a Kubernetes pod");
            return Ok(None);
        }
    };
    if let Some(token) = &config.kubernetes_token_file {
        api.token_file = Some(token.clone());
    }
    if let Some(ca) = &config.kubernetes_ca_file {
        api.ca_file = Some(ca.clone());
    }
    Ok(Some(api))
}
