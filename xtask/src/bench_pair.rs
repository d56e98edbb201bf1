//! `cargo xtask bench pair --baseline OLD [--candidate NEW]`: two agent binaries measured on
//! the very same traffic at the same time.
//!
//! Alternating binaries between windows compares them across the machine's changes of speed
//! (±20 % between runs here), which hides a 5 % change under many rounds. Here both agents run
//! at once, each with its own probes and ring buffer, on one nginx (TLS, one worker) + `wrk -t1
//! -c8` window with a bearer token: both see every exchange, so each one's CPU divided by the
//! events it wrote is its cost per exchange under identical conditions, and the per-round ratio
//! candidate / baseline cancels the machine's speed. The start order alternates between rounds
//! (the second agent to attach sees the first one's probes in the same functions). A round
//! counts only if neither agent lost a record and both wrote the same number of events.

use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context as _, bail};

use crate::bench::{Tool, counter, exit_summary, median, spawn_tool, start_nginx};

#[derive(Debug, Clone, clap::Args)]
pub struct PairArgs {
    /// The agent binary to compare against (for instance one built from the previous commit).
    #[arg(long)]
    baseline: std::path::PathBuf,
    /// The agent binary measured; defaults to this tree's release build.
    #[arg(long)]
    candidate: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    #[arg(long, default_value_t = 4)]
    seconds: u64,
    #[arg(long, default_value_t = 8)]
    connections: u32,
}

const BEARER: [&str; 2] = [
    "-H",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwYWlyIn0.c2lnbmF0dXJlLXBhaXI",
];

fn start_agent(binary: &Path) -> anyhow::Result<Tool> {
    let mut tool = spawn_tool(
        Command::new(binary)
            .env("RUST_LOG", "info")
            // Both agents run at once: neither may hold the metrics port.
            .args(["--metrics-listen", "off"]),
    )?;
    tool.wait_for("probes live", Duration::from_secs(60))
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(tool)
}

/// One agent's share of a window: CPU seconds and events written inside it.
struct Window {
    cpu0: f64,
    events0: u64,
}

impl Window {
    fn open(tool: &Tool) -> Self {
        Self {
            cpu0: tool.cpu_secs(),
            events0: tool.stdout_lines(),
        }
    }

    /// (µs of agent CPU per event, events) since `open`.
    fn close(&self, tool: &Tool) -> (f64, u64) {
        let events = tool.stdout_lines() - self.events0;
        let cpu = tool.cpu_secs() - self.cpu0;
        (cpu * 1e6 / events.max(1) as f64, events)
    }
}

fn lost(tool: Tool) -> u64 {
    counter(&exit_summary(&tool.stop()), "ringbuf_full_records")
}

pub fn pair(args: &PairArgs, default_candidate: &Path) -> anyhow::Result<()> {
    let candidate = args.candidate.as_deref().unwrap_or(default_candidate);
    for binary in [args.baseline.as_path(), candidate] {
        if !binary.is_file() {
            bail!("{}: no such agent binary", binary.display());
        }
    }
    let dir = std::env::temp_dir().join(format!("cleartap-bench-pair-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let nginx = start_nginx(&dir)?;
    println!(
        "pair: baseline {}, candidate {}; both at once on nginx 1 worker TLS 127.0.0.1:{} + wrk -t1 -c{} -d{}s, {} rounds",
        args.baseline.display(),
        candidate.display(),
        nginx.port,
        args.connections,
        args.seconds,
        args.rounds
    );
    println!(
        "| response | baseline µs/exch | candidate µs/exch | candidate / baseline (median, range) | rounds kept |"
    );
    println!("|---|---|---|---|---|");
    for name in ["100B", "16KiB"] {
        let url = format!("https://127.0.0.1:{}/{name}", nginx.port);
        let (mut base, mut cand, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=args.rounds {
            let order = if round % 2 == 1 {
                [args.baseline.as_path(), candidate]
            } else {
                [candidate, args.baseline.as_path()]
            };
            let first = start_agent(order[0])?;
            let second = start_agent(order[1])?;
            let (baseline_tool, candidate_tool) = if round % 2 == 1 {
                (first, second)
            } else {
                (second, first)
            };
            crate::wrk::run(&url, 1, args.connections, &BEARER)?;
            // The warm-up's events drain before the window opens.
            std::thread::sleep(Duration::from_millis(500));
            let (wb, wc) = (Window::open(&baseline_tool), Window::open(&candidate_tool));
            let run = crate::wrk::run(&url, args.seconds, args.connections, &BEARER)?;
            std::thread::sleep(Duration::from_millis(1500));
            let ((b_us, b_events), (c_us, c_events)) =
                (wb.close(&baseline_tool), wc.close(&candidate_tool));
            let (b_lost, c_lost) = (lost(baseline_tool), lost(candidate_tool));
            let kept = b_lost == 0 && c_lost == 0 && b_events == c_events && b_events > 0;
            eprintln!(
                "bench pair: {name} round {round}: {:.0} req/s; baseline {b_us:.2} µs/exch ({b_events} events, {b_lost} lost), candidate {c_us:.2} µs/exch ({c_events} events, {c_lost} lost){}",
                run.rps,
                if kept { "" } else { " — not counted" }
            );
            if kept {
                base.push(b_us);
                cand.push(c_us);
                ratios.push(c_us / b_us);
            }
        }
        if ratios.is_empty() {
            println!("| {name} | — | — | no round without losses or with equal event counts | 0 |");
            continue;
        }
        let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = ratios.iter().copied().fold(0.0, f64::max);
        println!(
            "| {name} | {:.2} | {:.2} | {:.3} ({lowest:.3}–{highest:.3}) | {} |",
            median(&mut base),
            median(&mut cand),
            median(&mut ratios),
            ratios.len()
        );
    }
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
