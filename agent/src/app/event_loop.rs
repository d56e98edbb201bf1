//! The agent's main loop: drains the ring buffer (woken by the kernel when a batch is large,
//! otherwise on a short timer, since records are submitted without wakeups), runs discovery and
//! housekeeping, and stops cleanly on SIGINT/SIGTERM.

use std::time::Duration;

use agent_common::names::MAP_EVENTS;
use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    app::pipeline::Pipeline,
    app::summary::summary,
    kernel::counters::KernelCounters,
    kernel::tls::{Attacher, discovery},
};

fn drain(ring: &mut RingBuf<MapData>, pipeline: &mut Pipeline) {
    while let Some(item) = ring.next() {
        pipeline.handle(&item);
    }
}

pub fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long each sink may take at exit to deliver what it holds (the rest stays spooled).
const SINK_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

pub struct Loop {
    pub ebpf: Ebpf,
    pub attacher: Attacher,
    pub pipeline: Pipeline,
    pub poll_interval: Duration,
    /// How often libraries nothing uses any more are looked for and released.
    pub library_sweep: Duration,
    /// Where the counters are published for /metrics, once a second.
    pub metrics: Option<crate::app::metrics::Shared>,
    pub reload: Reload,
    /// The enforcement admin socket, when enforcement is on.
    pub admin: Option<Admin>,
    /// Evidence from the decision service, when it runs.
    pub decisions: Option<tokio::sync::mpsc::Receiver<crate::enforce::evidence::EnforcementEvent>>,
    /// The `probes live` line, logged once the signal handlers are installed.
    pub live_line: String,
}

async fn next_decision(
    queue: &mut Option<tokio::sync::mpsc::Receiver<crate::enforce::evidence::EnforcementEvent>>,
) -> Option<crate::enforce::evidence::EnforcementEvent> {
    match queue {
        Some(q) => q.recv().await,
        None => std::future::pending().await,
    }
}

pub struct Admin {
    pub listener: tokio::net::UnixListener,
    pub path: std::path::PathBuf,
}

/// A request line read from an admin connection, and where its answer goes.
type AdminCall = (Vec<u8>, tokio::sync::oneshot::Sender<Vec<u8>>);

async fn accept_admin(
    admin: &Option<Admin>,
) -> std::io::Result<(tokio::net::UnixStream, tokio::net::unix::SocketAddr)> {
    match admin {
        Some(a) => a.listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Reads one bounded request line off the capture loop (a slow client cannot stall it), hands
/// it to the loop, and writes the answer back.
async fn serve_admin_connection(
    stream: tokio::net::UnixStream,
    calls: tokio::sync::mpsc::Sender<AdminCall>,
) {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
    let (read, mut write) = stream.into_split();
    let mut reader =
        tokio::io::BufReader::new(read).take(crate::enforce::admin::MAX_REQUEST_BYTES as u64);
    let mut line = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read_until(b'\n', &mut line));
    if !matches!(read.await, Ok(Ok(n)) if n > 0) {
        return;
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    if calls.send((line, reply)).await.is_err() {
        return;
    }
    if let Ok(mut answer) = answer.await {
        answer.push(b'\n');
        let _ = write.write_all(&answer).await;
    }
}

/// What SIGHUP needs: how to read the configuration again, and what is running now.
pub struct Reload {
    pub loader: crate::config::file::Loader,
    pub running: crate::config::Config,
}

impl Loop {
    fn sync_attacher_counters(&mut self) {
        self.pipeline.counters.attach_failures = self.attacher.attach_failures;
        self.pipeline.counters.libraries_released = self.attacher.libraries_released;
    }

    fn publish(&mut self) {
        if self.metrics.is_none() {
            return;
        }
        self.sync_attacher_counters();
        let snapshot = crate::app::metrics::Snapshot {
            kernel: KernelCounters::read(&self.ebpf),
            agent: self.pipeline.counters,
            conns: self.pipeline.conns.stats,
            open_streams: self.pipeline.conns.len() as u64,
            attached_libraries: self.attacher.attached_count() as u64,
            published: Some(std::time::Instant::now()),
            sinks: self.pipeline.output.snapshot(),
            findings: self
                .pipeline
                .detect
                .as_ref()
                .map_or(0, |e| e.stats.findings),
            workload: self.pipeline.workloads.stats(),
            enforce: self
                .pipeline
                .enforce
                .as_ref()
                .map(|e| (e.stats, e.kernel_counters())),
        };
        if let Some(shared) = &self.metrics
            && let Ok(mut slot) = shared.lock()
        {
            *slot = snapshot;
        }
    }

    /// Writes the API inventory to --inventory-file (atomically: a temporary file renamed).
    fn dump_inventory(&self, why: &str) {
        let path = &self.reload.running.inventory_file;
        let Some(engine) = &self.pipeline.detect else {
            return;
        };
        if path == "off" {
            return;
        }
        let path = std::path::Path::new(path);
        let tmp = path.with_extension("json.tmp");
        let inventory = engine.dump(crate::app::event_loop::unix_now_ms());
        let result = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, inventory.to_string()))
            .and_then(|()| std::fs::rename(&tmp, path));
        match result {
            Ok(()) => log::info!("{why}: API inventory written to {}", path.display()),
            Err(e) => log::warn!(
                "{why}: writing the API inventory to {}: {e}",
                path.display()
            ),
        }
        // OpenAPI beside it: <dir>/openapi/HOST.openapi.yaml, one per host.
        let dir = path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join("openapi");
        match write_openapi(&dir, &inventory) {
            Ok(n) => log::info!(
                "{why}: {n} OpenAPI document(s) written to {}",
                dir.display()
            ),
            Err(e) => log::warn!("{why}: writing OpenAPI documents to {}: {e}", dir.display()),
        }
    }

    /// SIGHUP: reads the configuration again; restarts the sinks with it (which reopens
    /// files and re-reads auth headers; spools carry over) and names the settings that need a
    /// restart. A configuration that does not load changes nothing.
    fn reload(&mut self) {
        let new = match self.reload.loader.load() {
            Ok(c) => c,
            Err(e) => {
                log::error!(
                    "SIGHUP: configuration not reloaded, still running the previous one: {e}"
                );
                return;
            }
        };
        let pending = crate::config::file::restart_needed(&self.reload.running, &new);
        if !pending.is_empty() {
            log::warn!(
                "SIGHUP: {} changed; that takes effect after a restart",
                pending.join(", ")
            );
        }
        self.reload_enforcement(&new.enforce);
        // Specs are re-read on every SIGHUP: the files may have changed under the same names.
        if (new.inventory != self.reload.running.inventory || !new.inventory.specs.is_empty())
            && let Some(engine) = self.pipeline.detect.as_mut()
        {
            match crate::detect::specs::ApiSpecs::load(&new.inventory) {
                Ok(specs) => {
                    log::info!(
                        "SIGHUP: API specs: {} operations from {} files",
                        specs.operations,
                        specs.files
                    );
                    engine.set_specs(specs);
                    self.reload.running.inventory = new.inventory.clone();
                }
                Err(e) => log::error!("SIGHUP: {e}; still judging against the previous specs"),
            }
        }
        // The old sinks finish (what they cannot deliver stays in their spools) before the new
        // ones open the same files and spool directories.
        let old = self.pipeline.output.shutdown(Duration::from_secs(2));
        log::info!("SIGHUP: sinks stopped: {}", crate::output::summary(&old));
        let host = self.pipeline.host().to_owned();
        match crate::output::Output::start(&new.sinks, &host) {
            Ok(output) => {
                self.pipeline.output = output;
                self.reload.running.sinks = new.sinks;
                log::info!("SIGHUP: sinks restarted from the configuration");
            }
            Err(e) => {
                log::error!("SIGHUP: {e}; restarting the previous sinks");
                match crate::output::Output::start(&self.reload.running.sinks, &host) {
                    Ok(output) => self.pipeline.output = output,
                    Err(e) => log::error!("SIGHUP: previous sinks failed to start too: {e}"),
                }
            }
        }
    }

    /// `[enforce]` changes apply at once (the kill switch is `mode = "off"` and a SIGHUP, or
    /// `--enforce off` at the next start). Enforcement started off has no gate to switch on:
    /// that needs a restart.
    fn reload_enforcement(&mut self, new: &crate::enforce::EnforceConfig) {
        let Some(enforcer) = self.pipeline.enforce.as_mut() else {
            if new.mode != crate::enforce::Mode::Off {
                log::warn!(
                    "SIGHUP: [enforce] mode {} needs a restart (the agent started with enforcement off)",
                    new.mode.as_str()
                );
            }
            return;
        };
        if enforcer.config() == new {
            return;
        }
        match enforcer.reconfigure(new.clone()) {
            Ok(()) => log::info!("SIGHUP: enforcement now {}", new.mode.as_str()),
            Err(e) => log::error!("SIGHUP: enforcement settings not applied: {e}"),
        }
        self.reload.running.enforce = new.clone();
    }

    pub async fn run(mut self) -> anyhow::Result<()> {
        let map = self
            .ebpf
            .take_map(MAP_EVENTS)
            .context("ring buffer map missing from the eBPF object")?;
        let ring = RingBuf::try_from(map).context("opening the ring buffer")?;
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged while the AsyncFd
        // owns the RingBuf.
        let mut ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow::anyhow!("registering the ring buffer with tokio: {e}"))?;
        let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
        let mut sigusr1 =
            signal(SignalKind::user_defined1()).context("installing SIGUSR1 handler")?;
        log::info!("{}", self.live_line);
        let mut poll = tokio::time::interval(self.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut housekeeping = tokio::time::interval(Duration::from_secs(5));
        let mut library_sweep = tokio::time::interval(self.library_sweep);
        library_sweep.reset();
        let mut publish = tokio::time::interval(Duration::from_secs(1));
        let (admin_calls, mut admin_queue) = tokio::sync::mpsc::channel::<AdminCall>(16);
        let mut last_losses = 0u64;
        // Healthy from the loop's first turn, not from the first timer tick after it.
        self.publish();

        let stop = loop {
            tokio::select! {
                guard = ring.readable_mut() => {
                    let mut guard = guard.context("waiting on the ring buffer")?;
                    drain(guard.get_inner_mut(), &mut self.pipeline);
                    guard.clear_ready();
                }
                _ = poll.tick() => {
                    drain(ring.get_mut(), &mut self.pipeline);
                    self.attacher.verify(&mut self.ebpf);
                    for pid in self.pipeline.due_rescans() {
                        for path in discovery::candidates_of_process(pid) {
                            if let Err(e) = self.attacher.attach(&mut self.ebpf, &path, Some(pid)) {
                                if e.is_vanished() {
                                    log::debug!("{e}");
                                } else {
                                    log::warn!("{e}");
                                }
                            }
                        }
                    }
                }
                _ = housekeeping.tick() => {
                    self.pipeline.expire_idle(monotonic_now_ns());
                    if let Some(enforcer) = self.pipeline.enforce.as_mut() {
                        enforcer.expire(unix_now_ms());
                        enforcer.publish_if_dirty();
                    }
                    if let Some(k) = KernelCounters::read(&self.ebpf)
                        && k.losses() > last_losses
                    {
                        log::warn!("kernel-side losses grew: {}", summary(Some(&k), &self.pipeline.counters, &self.pipeline.conns.stats));
                        last_losses = k.losses();
                    }
                }
                _ = publish.tick() => self.publish(),
                _ = library_sweep.tick() => {
                    let mapped = discovery::mapped_files();
                    self.attacher.release_unused(&mut self.ebpf, &mapped);
                }
                accepted = accept_admin(&self.admin) => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(serve_admin_connection(stream, admin_calls.clone()));
                    }
                }
                Some((line, reply)) = admin_queue.recv() => {
                    let answer = match self.pipeline.enforce.as_mut() {
                        Some(enforcer) => crate::enforce::admin::handle(
                            enforcer,
                            &line,
                            unix_now_ms(),
                            monotonic_now_ns(),
                        ),
                        None => crate::enforce::admin::Response {
                            error: Some("enforcement is off".into()),
                            ..Default::default()
                        },
                    };
                    let _ = reply.send(serde_json::to_vec(&answer).unwrap_or_default());
                    if let Some(enforcer) = self.pipeline.enforce.as_mut() {
                        enforcer.publish_if_dirty();
                    }
                }
                Some(event) = next_decision(&mut self.decisions) => {
                    if let Some(enforcer) = self.pipeline.enforce.as_mut() {
                        enforcer.stats.decisions += 1;
                    }
                    self.pipeline.write_evidence(&event);
                }
                _ = sighup.recv() => self.reload(),
                _ = sigusr1.recv() => self.dump_inventory("SIGUSR1"),
                _ = sigterm.recv() => break "SIGTERM",
                _ = sigint.recv() => break "SIGINT",
            }
            self.pipeline.flush(&self.attacher).context("output")?;
        };

        log::info!("{stop} received: draining and detaching");
        drain(ring.get_mut(), &mut self.pipeline);
        self.pipeline.close_all();
        self.pipeline.flush(&self.attacher).context("output")?;
        self.sync_attacher_counters();
        let kernel = KernelCounters::read(&self.ebpf);
        self.dump_inventory("exit");
        let sinks = self.pipeline.output.shutdown(SINK_SHUTDOWN_DEADLINE);
        log::info!(
            "exit summary: {} | {}",
            summary(
                kernel.as_ref(),
                &self.pipeline.counters,
                &self.pipeline.conns.stats
            ),
            crate::output::summary(&sinks)
        );
        let w = self.pipeline.workloads.stats();
        log::info!(
            "workloads: cgroups_resolved={} cgroups_unresolved={} cgroup_cache_resets={}{}",
            w.cgroups_resolved,
            w.cgroups_unresolved,
            w.cgroup_cache_resets,
            match self.pipeline.workloads.node() {
                Some(node) => format!(
                    " | kubernetes node={node} synced={} pods={} pods_dropped={} api_errors={} relists={} unusable_objects={}",
                    w.api_synced,
                    w.pods_known,
                    w.pods_dropped,
                    w.api_errors,
                    w.api_relists,
                    w.api_unusable
                ),
                None => " | kubernetes off".into(),
            }
        );
        if let Some(engine) = &self.pipeline.detect {
            let clean = engine.clean_input_counts();
            log::info!(
                "detections: {} exchanges judged, {} findings, {} repeats suppressed, {} table evictions, {} routes in the inventory ({} not tracked), inputs known clean {} / judged {}",
                engine.stats.exchanges_judged,
                engine.stats.findings,
                engine.stats.suppressed_repeats,
                engine.state_evictions(),
                engine.inventory.routes(),
                engine.inventory.overflow,
                clean.0,
                clean.1
            );
        }
        if let Some(enforcer) = &self.pipeline.enforce {
            let (errors, rotations) = self
                .pipeline
                .audit
                .as_ref()
                .map_or((0, 0), |a| (a.errors, a.rotations));
            log::info!(
                "{} | audit log: errors={errors} rotations={rotations}",
                crate::app::summary::enforcement(enforcer)
            );
        }
        if let Some(admin) = self.admin.take() {
            drop(admin.listener);
            let _ = std::fs::remove_file(&admin.path);
        }
        drop(ring);
        // Dropping the Ebpf object detaches every probe and closes every map.
        drop(self.ebpf);
        log::info!("all probes detached");
        Ok(())
    }
}

/// One OpenAPI document per host of `inventory`, as YAML files in `dir` (each written to a
/// temporary name, then renamed).
fn write_openapi(dir: &std::path::Path, inventory: &serde_json::Value) -> anyhow::Result<usize> {
    use crate::output::openapi;
    let docs = openapi::documents(inventory)?;
    std::fs::create_dir_all(dir)?;
    for (host, doc) in &docs {
        let path = dir.join(format!("{}.openapi.yaml", openapi::file_stem(host)));
        let tmp = path.with_extension("yaml.tmp");
        std::fs::write(&tmp, openapi::to_yaml(doc)?)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(docs.len())
}
