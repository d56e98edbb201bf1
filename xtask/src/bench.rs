//! `cargo xtask bench overhead`: what capture costs a TLS web server, measured in one run.
//!
//! nginx (TLS, one worker, keep-alive) serves a small and a 16 KiB file to wrk on loopback.
//! Rounds alternate between: no agent; cleartap's own floor (`--probe-mode floor`: count-only
//! probes at exactly the points cleartap chose, nothing else); cleartap (defaults); cleartap
//! with enforcement in monitor and enforce mode (every request head scanned in the kernel; the
//! lists are empty, so nothing is blocked and the cost is the verdict path's own); cleartap
//! with `--probe-mode exported` (the plain probes, for before/after); cleartap with its agent
//! paused (SIGSTOP) through the window and a 1 GiB ring buffer — every program runs and every
//! record is written, nothing is consumed until the window ends: the kernel side's cost alone,
//! and after the window the agent drains it all, so losses and seen still check capture; a bpftrace script that
//! only counts uprobe+uretprobe hits on the same OpenSSL functions; bcc's sslsniff. Medians and
//! ratios to the no-agent run of the same round set are printed, with cleartap's losses, probe
//! hits per exchange, agent CPU per exchange, the share of requests seen as events on both
//! sides, wrk's p50/p99 latency, and cleartap's ratio to its own floor and to the naive one
//! (bpftrace). Throughput numbers live here, never in tests.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

#[derive(Debug, Clone, clap::Args)]
pub struct OverheadArgs {
    /// Measurement rounds per configuration (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 6)]
    seconds: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 8)]
    connections: u32,
}

/// Every request carries a bearer token, as API calls do: the enforcement configurations scan
/// and hash it in the kernel.
const BEARER: [&str; 2] = [
    "-H",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJlLWJlbmNo",
];

/// The paused agent's ring buffer (the largest the agent accepts): the window is shortened
/// so that what the kernel writes in it fits (see [`paused_window_secs`]).
const PAUSED_RING_MIB: u64 = 1024;

const LIBSSL: &str = "/lib/x86_64-linux-gnu/libssl.so.3";
const SIZES: [(&str, usize); 2] = [("100B", 100), ("16KiB", 16 * 1024)];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Config {
    NoAgent,
    OwnFloor,
    Cleartap,
    CleartapMonitor,
    CleartapEnforce,
    CleartapExported,
    CleartapPaused,
    CleartapCaptureOnly,
    Bpftrace,
    Sslsniff,
}

impl Config {
    const ALL: [Config; 10] = [
        Config::NoAgent,
        Config::OwnFloor,
        Config::Cleartap,
        Config::CleartapMonitor,
        Config::CleartapEnforce,
        Config::CleartapExported,
        Config::CleartapPaused,
        Config::CleartapCaptureOnly,
        Config::Bpftrace,
        Config::Sslsniff,
    ];
    pub(crate) fn name(self) -> &'static str {
        match self {
            Config::NoAgent => "no agent",
            Config::OwnFloor => "own floor (count-only, same points)",
            Config::Cleartap => "cleartap",
            Config::CleartapMonitor => "cleartap --enforce monitor",
            Config::CleartapEnforce => "cleartap --enforce enforce",
            Config::CleartapExported => "cleartap --probe-mode exported",
            Config::CleartapPaused => "cleartap, agent paused (kernel only)",
            Config::CleartapCaptureOnly => "cleartap --bench-capture-only",
            Config::Bpftrace => "bpftrace count-only",
            Config::Sslsniff => "bcc sslsniff",
        }
    }
}

#[derive(Default, Clone)]
pub(crate) struct Sample {
    pub(crate) rps: f64,
    /// wrk's requests completed and latency percentiles (µs).
    pub(crate) requests: u64,
    pub(crate) p50_us: Option<f64>,
    pub(crate) p99_us: Option<f64>,
    /// cleartap only: exchanges seen during the window, agent CPU seconds in it, exit summary.
    pub(crate) exchanges: u64,
    pub(crate) cpu_secs: f64,
    pub(crate) summary: String,
    /// cleartap only: (eBPF program, runs, run-time ns) over the window.
    pub(crate) programs: Vec<(String, u64, u64)>,
    /// The whole machine over the window (/proc/stat): CPU seconds busy and idle, all cores.
    pub(crate) machine: MachineCpu,
}

/// CPU time of the whole machine, all cores, in seconds: what wrk, nginx, the agent, the
/// probes and everything else used, and what was left idle.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct MachineCpu {
    pub(crate) busy_secs: f64,
    pub(crate) idle_secs: f64,
}

impl MachineCpu {
    /// Since boot, from the first line of /proc/stat (USER_HZ ticks; 100 per second on Linux
    /// for every architecture this runs on).
    pub(crate) fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<f64> = stat
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cpu "))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let at = |i: usize| ticks.get(i).copied().unwrap_or(0.0) / 100.0;
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        Self {
            busy_secs: at(0) + at(1) + at(2) + at(5) + at(6) + at(7),
            idle_secs: at(3) + at(4),
        }
    }

    pub(crate) fn since(self, before: Self) -> Self {
        Self {
            busy_secs: self.busy_secs - before.busy_secs,
            idle_secs: self.idle_secs - before.idle_secs,
        }
    }

    /// Share of the machine's CPU time left idle.
    pub(crate) fn idle_share(self) -> f64 {
        let all = self.busy_secs + self.idle_secs;
        if all > 0.0 { self.idle_secs / all } else { 0.0 }
    }
}

pub struct Tool {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout_lines: Arc<AtomicU64>,
    /// Stdout lines parsed as JSON and kept by the filter of [`spawn_tool_keeping`].
    kept: Arc<Mutex<Vec<serde_json::Value>>>,
}

type Keep = Box<dyn Fn(&serde_json::Value) -> bool + Send>;

pub fn spawn_tool(cmd: &mut Command) -> anyhow::Result<Tool> {
    spawn_tool_with(cmd, None)
}

/// As [`spawn_tool`], also keeping the stdout lines (JSON events) that `keep` accepts: for
/// runs whose events are few and must be checked field by field.
pub fn spawn_tool_keeping(
    cmd: &mut Command,
    keep: impl Fn(&serde_json::Value) -> bool + Send + 'static,
) -> anyhow::Result<Tool> {
    spawn_tool_with(cmd, Some(Box::new(keep)))
}

fn spawn_tool_with(cmd: &mut Command, keep: Option<Keep>) -> anyhow::Result<Tool> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let stdout_lines = Arc::new(AtomicU64::new(0));
    let kept = Arc::new(Mutex::new(Vec::new()));
    let (out, err) = (child.stdout.take(), child.stderr.take());
    if let Some(out) = out {
        let lines = stdout_lines.clone();
        let seen = stderr.clone();
        let kept = kept.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.fetch_add(1, Ordering::Relaxed);
                if let Some(keep) = &keep
                    && let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                    && keep(&event)
                {
                    kept.lock().map(|mut v| v.push(event)).ok();
                }
                // bpftrace prints its banner on stdout; keep short lines for readiness checks.
                if line.len() < 200 {
                    seen.lock().map(|mut v| v.push(line)).ok();
                }
            }
        });
    }
    if let Some(err) = err {
        let seen = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                seen.lock().map(|mut v| v.push(line)).ok();
            }
        });
    }
    Ok(Tool {
        child,
        stderr,
        stdout_lines,
        kept,
    })
}

impl Tool {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The events kept so far (see [`spawn_tool_keeping`]).
    pub fn kept(&self) -> Vec<serde_json::Value> {
        self.kept.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn stdout_lines(&self) -> u64 {
        self.stdout_lines.load(Ordering::Relaxed)
    }

    fn lines(&self) -> Vec<String> {
        self.stderr.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.lines().iter().any(|l| l.contains(needle)) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let lines = self.lines();
                // The first lines that name a cause beat a Python traceback's tail.
                let causes: Vec<&String> = lines
                    .iter()
                    .filter(|l| {
                        let l = l.to_ascii_lowercase();
                        l.contains("unable") || l.contains("error") || l.contains("not found")
                    })
                    .take(3)
                    .collect();
                let shown = if causes.is_empty() {
                    lines
                        .iter()
                        .rev()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" | ")
                } else {
                    causes
                        .iter()
                        .map(|s| s.trim().to_owned())
                        .collect::<Vec<_>>()
                        .join(" | ")
                };
                bail!("exited with {status} before `{needle}`: {shown}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("no `{needle}` within {timeout:?}")
    }

    pub fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the `(comm)`: state is 3rd, utime 14th, stime 15th overall.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    pub fn stop(mut self) -> Vec<String> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc_kill(self.child.id() as i32, 2) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return self.lines();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.lines()
    }
}

const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

/// Records the kernel writes per request, both sides: payload plus record headers and the
/// socket/close records, generously rounded up.
fn ring_bytes_per_request(size: usize) -> u64 {
    2 * (size as u64 + 1024)
}

/// Seconds of load for the paused configuration: `seconds`, or less when what the kernel would
/// write at the own floor's rate would not fit in 80 % of the ring (at least 1 s; a fuller ring
/// shows as lost records in the table).
fn paused_window_secs(seconds: u64, size: usize, floor_rps: Option<f64>) -> u64 {
    let Some(rps) = floor_rps.filter(|r| *r > 0.0) else {
        return 1;
    };
    let fits = (PAUSED_RING_MIB << 20) as f64 * 0.8 / (rps * ring_bytes_per_request(size) as f64);
    (fits.floor() as u64).clamp(1, seconds.max(1))
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// (requests per second, requests done) from wrk's report on stdout; `stderr` joins the error.
/// A self-signed certificate and key for localhost in `dir` (cert.pem, key.pem).
pub fn self_signed_cert(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()?
        .success();
    if !ok {
        bail!("openssl req failed");
    }
    Ok((cert, key))
}

pub struct Nginx {
    child: Child,
    pub port: u16,
    _dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too; SIGKILL would orphan them.
        // SAFETY: kill(2) on our own child.
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let _ = self.child.wait();
    }
}

pub fn start_nginx(dir: &Path) -> anyhow::Result<Nginx> {
    start_nginx_with(dir, "ssl")
}

/// nginx as [`start_nginx`] with `listen_flags` after the address (`ssl`, or `ssl http2`).
pub fn start_nginx_with(dir: &Path, listen_flags: &str) -> anyhow::Result<Nginx> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    for (name, size) in SIZES {
        std::fs::write(www.join(name), vec![b'x'; size])?;
    }
    let (cert, key) = self_signed_cert(dir)?;
    let d = dir.display();
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n access_log off;\n \
         client_body_temp_path {d}/body;\n keepalive_requests 1000000;\n server {{\n  listen 127.0.0.1:{port} {listen_flags};\n  \
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
    Ok(Nginx {
        child,
        port,
        _dir: dir.to_owned(),
    })
}

fn bpftrace_script() -> String {
    let fns = ["SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex"];
    let probes = |kind: &str| {
        fns.iter()
            .map(|f| format!("{kind}:{LIBSSL}:{f}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{} {{ @entry = count(); }}\n{} {{ @ret = count(); }}\n",
        probes("uprobe"),
        probes("uretprobe")
    )
}

/// bcc needs kernel headers; apt has none for this kernel, so sslsniff may not start here.
fn sslsniff_command() -> Command {
    let mut cmd = Command::new("sslsniff-bpfcc");
    cmd.args(["--no-gnutls", "--no-nss"]);
    cmd
}

fn start(config: Config, agent: &Path, dir: &Path) -> anyhow::Result<Option<Tool>> {
    Ok(Some(match config {
        Config::NoAgent => return Ok(None),
        Config::OwnFloor => {
            let mut tool = spawn_tool(Command::new(agent).args(["--probe-mode", "floor"]))?;
            tool.wait_for("probes live", Duration::from_secs(60))?;
            tool
        }
        Config::Cleartap
        | Config::CleartapMonitor
        | Config::CleartapEnforce
        | Config::CleartapExported
        | Config::CleartapPaused
        | Config::CleartapCaptureOnly => {
            let mut cmd = Command::new(agent);
            match config {
                Config::CleartapExported => {
                    cmd.args(["--probe-mode", "exported"]);
                }
                Config::CleartapMonitor => {
                    cmd.args(["--enforce", "monitor"]);
                }
                Config::CleartapEnforce => {
                    cmd.args(["--enforce", "enforce"]);
                }
                Config::CleartapPaused => {
                    cmd.args(["--ring-buffer-mib", &PAUSED_RING_MIB.to_string()]);
                }
                Config::CleartapCaptureOnly => {
                    cmd.arg("--bench-capture-only");
                }
                _ => {}
            }
            let mut tool = spawn_tool(&mut cmd)?;
            tool.wait_for("probes live", Duration::from_secs(60))?;
            tool
        }
        Config::Bpftrace => {
            let script = dir.join("count.bt");
            std::fs::write(&script, bpftrace_script())?;
            let mut tool = spawn_tool(Command::new("bpftrace").arg(&script))?;
            tool.wait_for("Attaching", Duration::from_secs(60))?;
            std::thread::sleep(Duration::from_secs(1));
            tool
        }
        Config::Sslsniff => {
            let mut tool = spawn_tool(&mut sslsniff_command())?;
            tool.wait_for("FUNC", Duration::from_secs(120))?;
            tool
        }
    }))
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// The agent's exit summary among a stopped tool's stderr lines ("" when it has none).
pub fn exit_summary(lines: &[String]) -> String {
    lines
        .iter()
        .rev()
        .find(|l| l.contains("exit summary"))
        .cloned()
        .unwrap_or_default()
}

/// A counter of the exit summary; u64::MAX when missing, so that a check for 0 fails.
pub fn counter(summary: &str, key: &str) -> u64 {
    summary_value(summary, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

pub fn summary_value(summary: &str, key: &str) -> Option<String> {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_end_matches([')', ',']).to_owned())
}

pub fn overhead(args: &OverheadArgs, agent: &Path) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("cleartap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let nginx = start_nginx(&dir)?;
    // Per-program run counts and times for the whole run; the previous setting comes back when
    // this guard drops.
    let _stats = crate::bpf_stats::StatsOn::enable()
        .map_err(|e| eprintln!("bench: no per-program statistics: {e:#}"))
        .ok();
    let mut unavailable: Vec<(Config, String)> = Vec::new();
    println!(
        "overhead: nginx 1 worker TLS on 127.0.0.1:{}, wrk -t1 -c{} -d{}s, {} rounds, configs alternate within each round",
        nginx.port, args.connections, args.seconds, args.rounds
    );
    for (name, size) in SIZES {
        let url = format!("https://127.0.0.1:{}/{name}", nginx.port);
        let mut samples: Vec<(Config, Vec<Sample>)> =
            Config::ALL.iter().map(|c| (*c, Vec::new())).collect();
        // The own floor's latest throughput: it sizes the paused run's window.
        let mut floor_rps: Option<f64> = None;
        for round in 1..=args.rounds {
            for (config, list) in samples.iter_mut() {
                if unavailable.iter().any(|(c, _)| c == config) {
                    continue;
                }
                let tool = match start(*config, agent, &dir) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("bench: {} unavailable: {e:#}", config.name());
                        unavailable.push((*config, format!("{e:#}")));
                        continue;
                    }
                };
                // Warm-up: TLS sessions, and for cleartap the runtime check of attach points.
                crate::wrk::run(&url, 1, args.connections, &BEARER)?;
                let (cpu0, lines0) = tool.as_ref().map_or((0.0, 0), |t| {
                    (t.cpu_secs(), t.stdout_lines.load(Ordering::Relaxed))
                });
                let programs0 = tool.as_ref().map(|t| crate::bpf_stats::snapshot(t.pid()));
                let paused = *config == Config::CleartapPaused;
                let seconds = if paused {
                    paused_window_secs(args.seconds, size, floor_rps)
                } else {
                    args.seconds
                };
                if let (true, Some(t)) = (paused, &tool) {
                    // Let the agent finish the warm-up's events first.
                    std::thread::sleep(Duration::from_millis(500));
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc_kill(t.pid() as i32, SIGSTOP) };
                }
                let machine0 = MachineCpu::now();
                let run = crate::wrk::run(&url, seconds, args.connections, &BEARER);
                let machine = MachineCpu::now().since(machine0);
                if let (true, Some(t)) = (paused, &tool) {
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc_kill(t.pid() as i32, SIGCONT) };
                }
                let run = run?;
                let mut sample = Sample {
                    rps: run.rps,
                    requests: run.requests,
                    p50_us: run.p50_us,
                    p99_us: run.p99_us,
                    machine,
                    ..Sample::default()
                };
                if let Some(tool) = tool {
                    if let Some(before) = &programs0 {
                        let after = crate::bpf_stats::snapshot(tool.pid());
                        sample.programs = crate::bpf_stats::delta(before, &after);
                    }
                    sample.cpu_secs = tool.cpu_secs() - cpu0;
                    // Counted after the agent has drained and exited: every event of the
                    // window's requests is in, whatever the output lag.
                    let written = tool.stdout_lines.clone();
                    let lines = tool.stop();
                    sample.exchanges = if *config == Config::CleartapCaptureOnly {
                        // It writes no events: wrk's requests of the window, both sides.
                        2 * run.requests
                    } else {
                        written.load(Ordering::Relaxed) - lines0
                    };
                    sample.summary = lines
                        .iter()
                        .rev()
                        .find(|l| {
                            l.contains("exit summary")
                                || l.starts_with("@entry")
                                || l.starts_with("@ret")
                        })
                        .cloned()
                        .unwrap_or_default();
                    if *config == Config::Bpftrace {
                        sample.summary = lines
                            .iter()
                            .filter(|l| l.starts_with('@'))
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(" ");
                    }
                }
                eprintln!(
                    "bench: {name} round {round} {:<32} {:>9.0} req/s",
                    config.name(),
                    run.rps
                );
                if *config == Config::OwnFloor {
                    floor_rps = Some(sample.rps);
                }
                list.push(sample);
            }
        }
        crate::bench_report::report(name, &samples);
        crate::bench_report::report_cpu(&samples);
        crate::bench_report::report_programs(&samples);
    }
    for (config, reason) in &unavailable {
        println!("{}: not measured: {reason}", config.name());
    }
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
