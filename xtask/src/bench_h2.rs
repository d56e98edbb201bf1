//! `cargo xtask bench http2`: what capture costs an HTTP/2 server, measured in one run.
//!
//! nginx (TLS + http2, one worker) serves a 100-byte and a 16 KiB file to h2load (one thread,
//! `--connections` connections, `--streams` concurrent streams each). Rounds alternate between
//! no agent and cleartap with its defaults; medians of the rounds and the ratio are printed,
//! with events per request (both ends are captured: nginx and h2load, so 2 is complete),
//! records lost and agent CPU per exchange.

use std::{path::Path, process::Command, time::Duration};

use anyhow::Context as _;

use crate::bench::{median, spawn_tool, start_nginx_with, summary_value};

#[derive(Debug, Clone, clap::Args)]
pub struct Http2Args {
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 8)]
    connections: u32,
    /// Concurrent streams per connection (h2load -m).
    #[arg(long, default_value_t = 10)]
    streams: u32,
}

/// (requests per second, requests done) from h2load's report.
fn h2load(url: &str, seconds: u64, args: &Http2Args) -> anyhow::Result<(f64, u64)> {
    let out = Command::new("h2load")
        .args([
            "-t1",
            &format!("-c{}", args.connections),
            &format!("-m{}", args.streams),
            &format!("-D{seconds}"),
            "-H",
            "authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln",
            url,
        ])
        .output()
        .context("running h2load (apt: nghttp2-client)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("finished in"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim().strip_suffix("req/s"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no req/s in h2load output: {text}"))?;
    let done = text
        .lines()
        .find_map(|l| l.strip_prefix("requests:"))
        .and_then(|l| {
            l.split(',')
                .find_map(|p| p.trim().strip_suffix(" succeeded"))
        })
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no succeeded count in h2load output: {text}"))?;
    Ok((rps, done))
}

pub fn http2(args: &Http2Args, agent: &Path) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cleartap-bench-h2-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let nginx = start_nginx_with(&dir, "ssl http2")?;
    println!(
        "http2: nginx 1 worker TLS+h2 on 127.0.0.1:{}, h2load -t1 -c{} -m{} -D{}, {} rounds",
        nginx.port, args.connections, args.streams, args.seconds, args.rounds
    );
    println!(
        "| response | no agent req/s | cleartap req/s | ratio | events/request | records lost | agent µs/exch |"
    );
    println!("|---|---|---|---|---|---|---|");
    for name in ["100B", "16KiB"] {
        let url = format!("https://127.0.0.1:{}/{name}", nginx.port);
        let (mut base, mut with, mut per_request, mut lost, mut cpu) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 1..=args.rounds {
            h2load(&url, 1, args)?;
            let (rps, _) = h2load(&url, args.seconds, args)?;
            base.push(rps);
            let mut tool = spawn_tool(Command::new(agent).env("RUST_LOG", "info"))?;
            tool.wait_for("probes live", Duration::from_secs(60))?;
            h2load(&url, 1, args)?;
            // Events of the warm-up drain before the window opens.
            std::thread::sleep(Duration::from_millis(500));
            let (cpu0, lines0) = (tool.cpu_secs(), tool.stdout_lines());
            let (rps, done) = h2load(&url, args.seconds, args)?;
            // Exchanges still in the pipeline when h2load ends are written within moments.
            std::thread::sleep(Duration::from_millis(1500));
            let events = tool.stdout_lines() - lines0;
            let cpu_secs = tool.cpu_secs() - cpu0;
            let lines = tool.stop();
            let summary = lines
                .iter()
                .rev()
                .find(|l| l.contains("exit summary"))
                .cloned()
                .unwrap_or_default();
            with.push(rps);
            per_request.push(events as f64 / done.max(1) as f64);
            lost.push(
                summary_value(&summary, "ringbuf_full_records")
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN),
            );
            cpu.push(cpu_secs * 1e6 / events.max(1) as f64);
            eprintln!(
                "bench http2: {name} round {round}: no agent {:.0} req/s, cleartap {rps:.0} req/s, {events} events for {done} requests",
                base.last().copied().unwrap_or(0.0)
            );
        }
        let (b, w) = (median(&mut base), median(&mut with));
        println!(
            "| {name} | {b:.0} | {w:.0} | {:.2} | {:.2} | {:.0} | {:.1} |",
            w / b,
            median(&mut per_request),
            median(&mut lost),
            median(&mut cpu)
        );
    }
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
