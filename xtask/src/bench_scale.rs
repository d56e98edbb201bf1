//! `cargo xtask bench scale`: cleartap where load is shaped unlike the steady 8-connection bench.
//!
//! - Connections: wrk with 8 and with `--connections` (2,000) keep-alive TLS connections to one
//!   nginx worker: requests/s beside no agent, agent CPU per exchange and RSS, events per request.
//! - Processes: `--processes-per-second` short-lived curl processes, each one HTTPS request:
//!   every exchange must be captured on both sides; agent CPU per process (exec discovery).
//! - Download: one `--download-mib` MiB file over TLS with curl: throughput beside no agent, the
//!   body size each side's event reports (it must be exact), records lost.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{
    bench::{
        Tool, counter, exit_summary, median, self_signed_cert, spawn_tool, spawn_tool_keeping,
    },
    wrk::wrk_report,
};

#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Rounds of the connection measurement (medians reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent keep-alive connections of the wide measurement.
    #[arg(long, default_value_t = 2000)]
    connections: u32,
    /// Short-lived client processes started per second.
    #[arg(long, default_value_t = 100)]
    processes_per_second: u32,
    /// Size of the TLS download.
    #[arg(long, default_value_t = 1024)]
    download_mib: u64,
}

const BEARER: &str = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzY2FsZSJ9.c2ln";

struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// nginx with room for thousands of connections, a 100-byte file and a sparse download.
fn start_nginx(dir: &Path, download_bytes: u64) -> anyhow::Result<Nginx> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("100B"), vec![b'x'; 100])?;
    std::fs::File::create(www.join("download"))?.set_len(download_bytes)?;
    let (cert, key) = self_signed_cert(dir)?;
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\nworker_rlimit_nofile 16384;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 8192; }}\nhttp {{\n access_log off;\n client_body_temp_path {d}/body;\n \
         keepalive_requests 1000000;\n keepalive_timeout 120s;\n server {{\n  listen 127.0.0.1:{port} ssl backlog=4096;\n  \
         ssl_certificate {};\n  ssl_certificate_key {};\n  root {};\n }}\n}}\n",
        cert.display(),
        key.display(),
        www.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .spawn()
        .context("starting nginx")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nginx did not listen on {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Nginx { child, port })
}

/// (requests/s, requests done) of wrk with `connections`, its fd limit raised to the hard one.
fn wrk(url: &str, seconds: u64, connections: u32) -> anyhow::Result<(f64, u64)> {
    let script = format!(
        "ulimit -n \"$(ulimit -Hn)\" && exec wrk -t1 -c{connections} -d{seconds}s --timeout 10s -H '{BEARER}' {url}"
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .context("running wrk")?;
    wrk_report(&out.stdout, &out.stderr)
}

fn start_agent(agent: &Path, keep: Option<fn(&Value) -> bool>) -> anyhow::Result<Tool> {
    let mut cmd = Command::new(agent);
    cmd.env("RUST_LOG", "info");
    let mut tool = match keep {
        Some(keep) => spawn_tool_keeping(&mut cmd, keep)?,
        None => spawn_tool(&mut cmd)?,
    };
    tool.wait_for("probes live", Duration::from_secs(60))?;
    Ok(tool)
}

fn connections(args: &ScaleArgs, agent: &Path, port: u16) -> anyhow::Result<()> {
    let url = format!("https://127.0.0.1:{port}/100B");
    println!(
        "\nconnections: wrk -t1 -cN -d{}s against nginx (1 worker, TLS, 100 B), {} rounds",
        args.seconds, args.rounds
    );
    println!(
        "| connections | no agent req/s | cleartap req/s | ratio | events/request | records lost | agent µs/exch | agent RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for conns in [8, args.connections] {
        let (mut base, mut with, mut per_request, mut lost, mut cpu, mut rss) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for round in 1..=args.rounds {
            base.push(wrk(&url, args.seconds, conns)?.0);
            let tool = start_agent(agent, None)?;
            wrk(&url, 1, conns)?;
            std::thread::sleep(Duration::from_millis(500));
            let (cpu0, lines0) = (tool.cpu_secs(), tool.stdout_lines());
            let (rps, done) = wrk(&url, args.seconds, conns)?;
            std::thread::sleep(Duration::from_millis(1500));
            let events = tool.stdout_lines() - lines0;
            cpu.push((tool.cpu_secs() - cpu0) * 1e6 / events.max(1) as f64);
            rss.push(tool.rss_kib() as f64 / 1024.0);
            let summary = exit_summary(&tool.stop());
            with.push(rps);
            per_request.push(events as f64 / done.max(1) as f64);
            lost.push(counter(&summary, "ringbuf_full_records") as f64);
            eprintln!(
                "bench scale: {conns} connections round {round}: no agent {:.0} req/s, cleartap {rps:.0} req/s, {events} events for {done} requests",
                base.last().copied().unwrap_or(0.0)
            );
        }
        let (b, w) = (median(&mut base), median(&mut with));
        println!(
            "| {conns} | {b:.0} | {w:.0} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} |",
            w / b,
            median(&mut per_request),
            median(&mut lost),
            median(&mut cpu),
            median(&mut rss)
        );
    }
    Ok(())
}

fn is_100b_exchange(e: &Value) -> bool {
    e["request"]["path"] == "/100B"
}

fn processes(args: &ScaleArgs, agent: &Path, port: u16) -> anyhow::Result<()> {
    let url = format!("https://127.0.0.1:{port}/100B");
    let tool = start_agent(agent, Some(is_100b_exchange))?;
    let cpu0 = tool.cpu_secs();
    let interval = Duration::from_secs(1) / args.processes_per_second.max(1);
    let start = Instant::now();
    let mut children = Vec::new();
    let mut next = start;
    while start.elapsed() < Duration::from_secs(args.seconds) {
        let child = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-H", BEARER, &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting curl")?;
        children.push(child);
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let started = children.len();
    let rate = started as f64 / start.elapsed().as_secs_f64();
    let mut failed = 0;
    for mut child in children {
        if !child.wait().map(|s| s.success()).unwrap_or(false) {
            failed += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let cpu = tool.cpu_secs() - cpu0;
    let events = tool.kept();
    let summary = exit_summary(&tool.stop());
    let side = |role: &str| {
        events
            .iter()
            .filter(|e| e["connection"]["role"] == role && e["response"]["status"] == 200)
            .count()
    };
    let (client, server) = (side("client"), side("server"));
    println!(
        "\nprocesses: {started} curl processes ({rate:.0}/s over {} s), one HTTPS request each, {failed} failed",
        args.seconds
    );
    println!(
        "| requests | client-side events (curl) | server-side events (nginx) | records lost | rescans dropped | agent CPU per process |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {client} | {server} | {} | {} | {:.0} µs |",
        started - failed,
        counter(&summary, "ringbuf_full_records"),
        counter(&summary, "rescans_dropped"),
        cpu * 1e6 / started.max(1) as f64
    );
    Ok(())
}

fn is_download(e: &Value) -> bool {
    e["request"]["path"] == "/download"
}

/// (bytes/s, bytes) of one curl download.
fn download(url: &str) -> anyhow::Result<(f64, u64)> {
    let out = Command::new("curl")
        .args([
            "-sk",
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{speed_download} %{size_download}",
            "-H",
            BEARER,
            url,
        ])
        .output()
        .context("running curl")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    match (fields.next().flatten(), fields.next().flatten()) {
        (Some(speed), Some(size)) => Ok((speed, size as u64)),
        _ => bail!("unexpected curl output: {text}"),
    }
}

fn large_download(args: &ScaleArgs, agent: &Path, port: u16) -> anyhow::Result<()> {
    let url = format!("https://127.0.0.1:{port}/download");
    let expected = args.download_mib << 20;
    // Warm-up (page cache, CPU clocks), then rounds alternating no agent and cleartap; the
    // events and counters shown are the last round's.
    download(&url)?;
    let (mut base, mut with) = (Vec::new(), Vec::new());
    let (mut size, mut events, mut summary) = (0, Vec::new(), String::new());
    for _ in 0..args.rounds {
        base.push(download(&url)?.0);
        let tool = start_agent(agent, Some(is_download))?;
        let (speed, got) = download(&url)?;
        with.push(speed);
        size = got;
        std::thread::sleep(Duration::from_millis(2000));
        events = tool.kept();
        summary = exit_summary(&tool.stop());
    }
    let (base, with) = (median(&mut base), median(&mut with));
    println!(
        "\ndownload: {} MiB over TLS (HTTP/1.1, curl ← nginx), {} rounds (medians)",
        args.download_mib, args.rounds
    );
    println!(
        "| no agent MiB/s | cleartap MiB/s | ratio | curl got | event body_size (client, server) | body_missing_bytes (client, server) | records lost | gap bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let field = |role: &str, key: &str| {
        events
            .iter()
            .find(|e| e["connection"]["role"] == role)
            .map_or("none".to_owned(), |e| e["response"][key].to_string())
    };
    println!(
        "| {:.0} | {:.0} | {:.2} | {} | {}, {} | {}, {} | {} | {} |",
        base / 1048576.0,
        with / 1048576.0,
        with / base,
        if size == expected {
            "exact".to_owned()
        } else {
            format!("{size} of {expected}")
        },
        field("client", "body_size"),
        field("server", "body_size"),
        field("client", "body_missing_bytes"),
        field("server", "body_missing_bytes"),
        counter(&summary, "ringbuf_full_records"),
        counter(&summary, "gap_bytes"),
    );
    Ok(())
}

pub fn scale(args: &ScaleArgs, agent: &Path) -> anyhow::Result<()> {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("cleartap-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> anyhow::Result<()> {
        let nginx = start_nginx(&dir, args.download_mib << 20)?;
        println!(
            "scale: nginx 1 worker on 127.0.0.1:{}, cleartap with its defaults",
            nginx.port
        );
        connections(args, agent, nginx.port)?;
        processes(args, agent, nginx.port)?;
        large_download(args, agent, nginx.port)?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
