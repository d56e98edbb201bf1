//! `cargo xtask soak`: cleartap under steady TLS load for a long time (10 minutes by default),
//! sampling its RSS and open fds; prints the series and whether they stayed flat. Not in CI.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    bench::{Tool, spawn_tool, start_nginx},
    wrk::wrk_with,
};

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Minutes of load.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 30)]
    every: u64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

pub fn soak(args: &SoakArgs, agent: &Path) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cleartap-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let nginx = start_nginx(&dir)?;
    let mut tool: Tool = spawn_tool(&mut Command::new(agent))?;
    tool.wait_for("probes live", Duration::from_secs(60))?;
    let pid = tool.pid();
    println!(
        "soak: {} min of wrk against nginx TLS (keep-alive and Connection: close alternating), sample every {} s",
        args.minutes, args.every
    );
    println!(
        "  {:>6} {:>10} {:>5} {:>12}",
        "t (s)", "RSS KiB", "fds", "events"
    );
    let start = Instant::now();
    let end = start + Duration::from_secs(args.minutes * 60);
    let mut samples: Vec<(u64, u64, usize)> = Vec::new();
    let mut close = false;
    while Instant::now() < end {
        let url = format!("https://127.0.0.1:{}/100B", nginx.port);
        let extra: &[&str] = if close {
            &["-H", "Connection: close"]
        } else {
            &[]
        };
        close = !close;
        wrk_with(&url, args.every, 4, extra)?;
        let sample = (start.elapsed().as_secs(), rss_kib(pid), fds(pid));
        println!(
            "  {:>6} {:>10} {:>5} {:>12}",
            sample.0,
            sample.1,
            sample.2,
            tool.stdout_lines()
        );
        samples.push(sample);
    }
    let lines = tool.stop();
    if let Some(summary) = lines.iter().find(|l| l.contains("exit summary")) {
        println!("  {summary}");
    }
    let quarter = (samples.len() / 4).max(1);
    let first = median(samples.iter().take(quarter).map(|s| s.1).collect());
    let last = median(samples.iter().rev().take(quarter).map(|s| s.1).collect());
    let fd_first = samples.first().map_or(0, |s| s.2);
    let fd_last = samples.last().map_or(0, |s| s.2);
    let growth = last as f64 / first.max(1) as f64;
    println!(
        "RSS median first quarter {first} KiB, last quarter {last} KiB ({:+.1}%); fds {fd_first} -> {fd_last}: {}",
        (growth - 1.0) * 100.0,
        if growth < 1.10 && fd_last <= fd_first + 2 {
            "flat"
        } else {
            "GROWING"
        }
    );
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
