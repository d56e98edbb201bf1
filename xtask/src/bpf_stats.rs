//! Per-program kernel cost during a measurement: `kernel.bpf_stats_enabled` is switched on for
//! the run (and restored after, even on error), and the run count and run time of each eBPF
//! program of the agent come from `bpftool prog show --json`, as deltas over the window.

use std::{collections::BTreeMap, process::Command};

use anyhow::Context as _;

const SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Keeps BPF run-time statistics on while it lives.
pub struct StatsOn {
    previous: String,
}

impl StatsOn {
    pub fn enable() -> anyhow::Result<Self> {
        let previous = std::fs::read_to_string(SYSCTL)
            .with_context(|| format!("reading {SYSCTL}"))?
            .trim()
            .to_owned();
        std::fs::write(SYSCTL, "1").with_context(|| format!("writing 1 to {SYSCTL}"))?;
        Ok(Self { previous })
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(SYSCTL, &self.previous) {
            eprintln!("bench: restoring {SYSCTL} to {}: {e}", self.previous);
        }
    }
}

/// (runs, run time ns) per program name, for the programs `pid` holds.
pub type Snapshot = BTreeMap<String, (u64, u64)>;

pub fn snapshot(pid: u32) -> Snapshot {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output();
    let Ok(out) = out else {
        return Snapshot::new();
    };
    let progs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let ids = program_ids(pid);
    let mut by_name = Snapshot::new();
    for p in progs {
        if !p["id"].as_u64().is_some_and(|id| ids.contains(&id)) {
            continue;
        }
        let name = p["name"].as_str().unwrap_or("?").to_owned();
        let slot = by_name.entry(name).or_insert((0, 0));
        slot.0 += p["run_cnt"].as_u64().unwrap_or(0);
        slot.1 += p["run_time_ns"].as_u64().unwrap_or(0);
    }
    by_name
}

/// Ids of the eBPF programs `pid` holds open (`prog_id:` in /proc/PID/fdinfo): bpftool's own
/// pid column needs a bpftool built with skeletons, which Debian's is not.
fn program_ids(pid: u32) -> std::collections::BTreeSet<u64> {
    let dir = format!("/proc/{pid}/fdinfo");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Default::default();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect()
}

/// What ran between two snapshots: (program, runs, ns) with runs > 0, most time first.
pub fn delta(before: &Snapshot, after: &Snapshot) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = after
        .iter()
        .map(|(name, (runs, ns))| {
            let (r0, n0) = before.get(name).copied().unwrap_or((0, 0));
            (name.clone(), runs.saturating_sub(r0), ns.saturating_sub(n0))
        })
        .filter(|(_, runs, _)| *runs > 0)
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.2));
    out
}

/// The per-program table of one measurement.
pub fn print(programs: &[(String, u64, u64)], exchanges: u64) {
    if programs.is_empty() {
        println!("    (no per-program statistics: bpftool missing, or no runs)");
        return;
    }
    println!(
        "    {:<24} {:>12} {:>10} {:>12} {:>14}",
        "eBPF program", "runs", "ns/run", "runs/exch", "ns/exchange"
    );
    let per = |v: u64| {
        if exchanges > 0 {
            v as f64 / exchanges as f64
        } else {
            0.0
        }
    };
    let mut total = 0u64;
    for (name, runs, ns) in programs {
        total += ns;
        println!(
            "    {:<24} {:>12} {:>10.0} {:>12.2} {:>14.0}",
            name,
            runs,
            *ns as f64 / (*runs).max(1) as f64,
            per(*runs),
            per(*ns)
        );
    }
    println!(
        "    {:<24} {:>12} {:>10} {:>12} {:>14.0}",
        "all programs",
        "",
        "",
        "",
        per(total)
    );
}
