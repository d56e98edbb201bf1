//! The tables `cargo xtask bench overhead` prints: medians per configuration, ratios to no
//! agent and to the floors, latency, losses and kernel cost per program.

use crate::bench::{Config, Sample, median, summary_value};

/// Kernel cost per eBPF program of the last round of each cleartap configuration.
pub fn report_programs(samples: &[(Config, Vec<Sample>)]) {
    for (config, list) in samples {
        if !matches!(
            config,
            Config::OwnFloor | Config::Cleartap | Config::CleartapEnforce | Config::CleartapPaused
        ) {
            continue;
        }
        if let Some(last) = list.last() {
            println!(
                "  {} — kernel cost per program (last round, kernel.bpf_stats_enabled):",
                config.name()
            );
            // The floor writes no events; its exchanges are wrk's, both sides.
            let exchanges = if *config == Config::OwnFloor {
                2 * last.requests
            } else {
                last.exchanges
            };
            crate::bpf_stats::print(&last.programs, exchanges);
        }
    }
}

pub fn report(size: &str, samples: &[(Config, Vec<Sample>)]) {
    let median_rps = |wanted: Config| {
        samples
            .iter()
            .find(|(c, _)| *c == wanted)
            .filter(|(_, s)| !s.is_empty())
            .map(|(_, s)| median(&mut s.iter().map(|x| x.rps).collect::<Vec<_>>()))
    };
    let base = median_rps(Config::NoAgent).unwrap_or(0.0);
    println!("\n{size} responses");
    println!(
        "  {:<36} {:>9} {:>6} {:>8} {:>8} {:>8}  {:>7} {:>6} {:>10} {:>8}  rounds",
        "config",
        "median/s",
        "ratio",
        "+µs/req",
        "p50 µs",
        "p99 µs",
        "lost",
        "seen",
        "hits/exch",
        "µs/exch"
    );
    for (config, list) in samples {
        if list.is_empty() {
            continue;
        }
        let mut rps: Vec<f64> = list.iter().map(|s| s.rps).collect();
        let med = median(&mut rps);
        let added_us = if med > 0.0 && base > 0.0 {
            1e6 / med - 1e6 / base
        } else {
            0.0
        };
        let percentile = |f: fn(&Sample) -> Option<f64>| {
            let mut v: Vec<f64> = list.iter().filter_map(f).collect();
            if v.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.0}", median(&mut v))
            }
        };
        let last = list.last().cloned().unwrap_or_default();
        let (lost, seen, hits, cpu) = match config {
            Config::Cleartap
            | Config::CleartapMonitor
            | Config::CleartapEnforce
            | Config::CleartapExported
            | Config::CleartapPaused
            | Config::CleartapCaptureOnly => {
                let counter = |s: &Sample, key: &str| {
                    summary_value(&s.summary, key)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                let lost: u64 = list
                    .iter()
                    .map(|s| counter(s, "ringbuf_full_records") + counter(s, "gap_events"))
                    .sum();
                // Events per request over both sides (1.00 = client and server of every
                // request); the lowest round is shown.
                let seen = list
                    .iter()
                    .filter(|s| s.requests > 0 && *config != Config::CleartapCaptureOnly)
                    .map(|s| s.exchanges as f64 / (2.0 * s.requests as f64))
                    .fold(f64::INFINITY, f64::min);
                let hits = summary_value(&last.summary, "exchange").unwrap_or_else(|| "?".into());
                // A paused agent's CPU in the window is not its cost per exchange.
                let mut per: Vec<f64> = list
                    .iter()
                    .filter(|s| s.exchanges > 0 && *config != Config::CleartapPaused)
                    .map(|s| s.cpu_secs * 1e6 / s.exchanges as f64)
                    .collect();
                (
                    lost.to_string(),
                    if seen.is_finite() {
                        format!("{seen:.2}")
                    } else {
                        "-".into()
                    },
                    hits,
                    if per.is_empty() {
                        "-".into()
                    } else {
                        format!("{:.1}", median(&mut per))
                    },
                )
            }
            Config::Bpftrace | Config::OwnFloor => {
                let hits = if *config == Config::OwnFloor {
                    // Probe runs over the window (bpf_stats) per exchange, both sides.
                    let runs: u64 = last.programs.iter().map(|p| p.1).sum();
                    match 2 * last.requests {
                        0 => "?".into(),
                        exchanges => format!("{:.1}", runs as f64 / exchanges as f64),
                    }
                } else {
                    last.summary.clone()
                };
                ("-".into(), "-".into(), hits, "-".into())
            }
            _ => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let all: Vec<String> = list.iter().map(|s| format!("{:.0}", s.rps)).collect();
        println!(
            "  {:<36} {:>9.0} {:>6.2} {:>8.1} {:>8} {:>8}  {:>7} {:>6} {:>10} {:>8}  {}",
            config.name(),
            med,
            if base > 0.0 { med / base } else { 0.0 },
            added_us,
            percentile(|s| s.p50_us),
            percentile(|s| s.p99_us),
            lost,
            seen,
            hits,
            cpu,
            all.join(" ")
        );
    }
    // The targets: ≥ 0.85 of the own floor, ≥ 2.5 of the naive floor.
    if let Some(cleartap) = median_rps(Config::Cleartap) {
        for (floor, label, target) in [
            (Config::OwnFloor, "its own floor", 0.85),
            (
                Config::Bpftrace,
                "the naive floor (bpftrace, exported functions)",
                2.5,
            ),
        ] {
            if let Some(f) = median_rps(floor).filter(|f| *f > 0.0) {
                println!(
                    "  cleartap / {label}: {:.2} (target ≥ {target})",
                    cleartap / f
                );
            }
        }
    }
    // How the gap to the own floor splits: the kernel side alone (agent paused) against the
    // floor, and what the running agent takes on top of it.
    if let (Some(paused), Some(floor)) = (
        median_rps(Config::CleartapPaused),
        median_rps(Config::OwnFloor).filter(|f| *f > 0.0),
    ) {
        println!(
            "  cleartap's kernel side alone (agent paused) / its own floor: {:.2}",
            paused / floor
        );
        if let Some(cleartap) = median_rps(Config::Cleartap).filter(|c| *c > 0.0) {
            println!(
                "  cleartap / its kernel side alone: {:.2} (the running agent's share of the gap)",
                cleartap / paused
            );
        }
    }
}

/// Where the machine's CPU goes per request, and what the own-floor target leaves the agent.
///
/// On a machine that wrk and nginx keep busy (little idle time), requests per second are the
/// cores' time divided by the CPU one request costs everyone: cleartap reaches 0.85 of its own
/// floor only if it adds at most `floor / 0.85 − floor` CPU per request, its kernel programs
/// and its agent together. Printing both sides of that sum shows which part of the gap is
/// which, and whether the target can hold on this machine at all.
pub fn report_cpu(samples: &[(Config, Vec<Sample>)]) {
    let list = |wanted: Config| {
        samples
            .iter()
            .find(|(c, _)| *c == wanted)
            .map(|(_, s)| s.as_slice())
            .filter(|s| !s.is_empty())
    };
    // Medians over rounds of a per-request quantity.
    let per_request = |wanted: Config, f: &dyn Fn(&Sample) -> f64| {
        list(wanted).map(|l| {
            let mut v: Vec<f64> = l
                .iter()
                .filter(|s| s.requests > 0)
                .map(|s| f(s) * 1e6 / s.requests as f64)
                .collect();
            median(&mut v)
        })
    };
    let machine = |c: Config| per_request(c, &|s| s.machine.busy_secs);
    let idle = |c: Config| {
        list(c).map(|l| median(&mut l.iter().map(|s| s.machine.idle_share()).collect::<Vec<_>>()))
    };
    // The last round's programs (bpf_stats is read for it), per request of that round.
    let programs = |c: Config| {
        list(c)
            .and_then(|l| l.last())
            .filter(|s| s.requests > 0)
            .map(|s| s.programs.iter().map(|p| p.2).sum::<u64>() as f64 / 1e3 / s.requests as f64)
    };
    println!("  CPU per request, whole machine (busy time in the window ÷ requests; medians):");
    for c in [
        Config::NoAgent,
        Config::OwnFloor,
        Config::Cleartap,
        Config::CleartapPaused,
    ] {
        if let (Some(us), Some(idle)) = (machine(c), idle(c)) {
            println!(
                "    {:<36} {:>6.1} µs  ({:.0} % of the machine idle)",
                c.name(),
                us,
                idle * 100.0
            );
        }
    }
    let (Some(floor), Some(cleartap)) = (machine(Config::OwnFloor), machine(Config::Cleartap))
    else {
        return;
    };
    let agent = per_request(Config::Cleartap, &|s| s.cpu_secs).unwrap_or(0.0);
    let kernel = programs(Config::Cleartap).unwrap_or(0.0);
    let floor_programs = programs(Config::OwnFloor).unwrap_or(0.0);
    let kernel_extra = kernel - floor_programs;
    println!(
        "    cleartap − own floor: {:+.1} µs per request = agent {agent:.1} + eBPF programs beyond the floor's {kernel_extra:.1} + the rest {:+.1} (probe entry and exit, wake-ups, the server and client themselves)",
        cleartap - floor,
        cleartap - floor - agent - kernel_extra
    );
    if let Some(capture) = per_request(Config::CleartapCaptureOnly, &|s| s.cpu_secs) {
        println!(
            "    agent CPU per exchange: capture alone (--bench-capture-only: records, streams, HTTP parsing, pairing) {:.2} µs; building, judging and writing the event add {:.2} (defaults)",
            capture / 2.0,
            (agent - capture) / 2.0
        );
    }
    let allowed = floor / 0.85 - floor;
    let left = allowed - kernel_extra;
    if left > 0.0 {
        println!(
            "    0.85 × own floor allows {allowed:.1} µs per request on top of the floor; the eBPF programs take {kernel_extra:.1} of it, leaving the agent {:.2} µs per exchange (two per request); it uses {:.2}",
            left / 2.0,
            agent / 2.0
        );
    } else {
        println!(
            "    0.85 × own floor allows {allowed:.1} µs per request on top of the floor; the eBPF programs alone take {kernel_extra:.1}: the target cannot hold here even with an agent that costs nothing (it uses {:.2} µs per exchange)",
            agent / 2.0
        );
    }
    if idle(Config::OwnFloor).is_some_and(|i| i > 0.10) {
        println!(
            "    (the machine was not saturated at the floor: requests/s then depend on more than CPU per request)"
        );
    }
}
