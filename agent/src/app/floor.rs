//! `--probe-mode floor`: the probes' own cost, for `cargo xtask bench overhead`. Count-only
//! programs go on exactly the points capture would use (the same discovery and attach plans),
//! and nothing else runs: no socket hooks, no ring buffer, no pipeline. The ratio of cleartap's
//! throughput to this one's is what capture adds on top of the probe hits themselves.

use anyhow::Context as _;
use aya::Ebpf;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    config::Config,
    kernel::counters::KernelCounters,
    kernel::tls::{Attacher, ProbeMode},
};

pub fn run(mut ebpf: Ebpf, config: &Config) -> anyhow::Result<()> {
    Attacher::load_programs(&mut ebpf, ProbeMode::Floor)?;
    let mut attacher = Attacher::new(ProbeMode::Floor);
    super::attach_present_libraries(&mut attacher, &mut ebpf, config)?;
    let points: usize = attacher.libraries().iter().map(|l| l.points.len()).sum();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        log::info!(
            "probes live: floor mode, count-only probes on {} TLS libraries ({points} functions), no socket hooks, no capture, no events",
            attacher.libraries().len()
        );
        tokio::select! {
            _ = sigterm.recv() => log::info!("SIGTERM received: detaching"),
            _ = sigint.recv() => log::info!("SIGINT received: detaching"),
        }
        anyhow::Ok(())
    })?;
    let hits = KernelCounters::read(&ebpf).unwrap_or_default();
    log::info!(
        "exit summary: floor ssl_probe_hits={} entry_hits={} return_hits={}",
        hits.ssl_entry_hits.saturating_add(hits.ssl_return_hits),
        hits.ssl_entry_hits,
        hits.ssl_return_hits
    );
    // Dropping the object closes every program and its uprobe links.
    drop(ebpf);
    log::info!("all probes detached");
    Ok(())
}
