//! Reliability under abuse, end to end (root; CI runs them): overload is counted and survived,
//! restarted targets are captured again, SIGTERM under load leaves nothing attached, and
//! garbage inside TLS connections never crashes the agent.

use std::{
    io::Write,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cleartap_e2e::{
    Agent, TempDir, WAIT, at, free_port,
    peers::{curl, nginx, python_server},
    pid_is, privileged, run_client,
};

fn wrk(url: &str, seconds: u32) -> std::process::Child {
    Command::new("wrk")
        .args(["-t1", "-c8", &format!("-d{seconds}s"), url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wrk (apt: wrk)")
}

/// Requests wrk completed, asserting it saw no socket errors and no non-2xx answers.
fn wrk_result(child: std::process::Child) -> u64 {
    let out = child.wait_with_output().expect("wrk output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Socket errors"),
        "the workload saw errors: {text}"
    );
    assert!(
        !text.contains("Non-2xx"),
        "the workload saw failures: {text}"
    );
    text.lines()
        .find_map(|l| {
            l.split_once(" requests in ")
                .map(|(n, _)| n.trim().parse().unwrap_or(0))
        })
        .expect("wrk request count")
}

fn summary_value(lines: &[String], key: &str) -> u64 {
    lines
        .iter()
        .find(|l| l.contains("exit summary"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .and_then(|v| v.trim_end_matches([')', ',']).parse().ok())
        })
        .unwrap_or_else(|| panic!("no {key} in exit summary: {lines:#?}"))
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

/// A 1 MiB ring drained every 300 ms with wakeups off cannot hold 16 KiB responses at full
/// speed: far beyond what this configuration keeps up with. The agent must stay up with bounded
/// memory, count what it lost, and the workload must not notice.
#[test]
fn overload_is_counted_and_survived() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("overload");
    let port = free_port();
    let _server = nginx(&dir, port);
    std::fs::write(dir.path("www/big.bin"), vec![b'b'; 16 * 1024]).expect("big file");
    let agent = Agent::start(&[
        "--ring-buffer-mib",
        "1",
        "--poll-interval-ms",
        "300",
        "--wakeup-bytes",
        "1000000000",
    ]);
    let load = wrk(&format!("https://127.0.0.1:{port}/big.bin"), 4);
    let mut peak_rss = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        peak_rss = peak_rss.max(rss_kib(agent.pid()));
        std::thread::sleep(Duration::from_millis(200));
    }
    let requests = wrk_result(load);
    assert!(
        requests > 1000,
        "load too light to mean anything: {requests}"
    );
    assert!(agent.is_running(), "the agent died under overload");
    // 1 MiB ring + bounded tables: far below this; a leak under loss would not be.
    assert!(peak_rss < 256 * 1024, "agent RSS reached {peak_rss} KiB");
    let lines = agent.stop();
    let lost = summary_value(&lines, "ringbuf_full_records");
    assert!(lost > 0, "expected counted losses: {lines:#?}");
}

/// Kill a TLS server and start it again on the same port: its new process is captured within
/// two seconds of starting.
#[test]
fn restarted_server_is_captured_again_within_two_seconds() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("restart");
    let port = free_port();
    let agent = Agent::start(&[]);
    let first = python_server(&dir, port);
    let first_pid = first.0.id();
    let url = format!("https://127.0.0.1:{port}/before");
    run_client(&mut curl(&["-o", "/dev/null", &url]));
    agent.wait_events(1, WAIT, |e| pid_is(e, first_pid));
    drop(first);
    let restarted_at = Instant::now();
    let second = python_server(&dir, port);
    let second_pid = second.0.id();
    let url = format!("https://127.0.0.1:{port}/after");
    run_client(&mut curl(&["-o", "/dev/null", &url]));
    let e = agent
        .wait_events(1, Duration::from_secs(2), |e| pid_is(e, second_pid))
        .remove(0);
    assert!(restarted_at.elapsed() < Duration::from_secs(3));
    assert_eq!(at(&e, &["request", "path"]).as_str(), Some("/after"));
    assert_eq!(at(&e, &["connection", "role"]).as_str(), Some("server"));
    agent.stop();
}

/// SIGTERM while the workload runs: clean exit, every cleartap program gone from the kernel,
/// output flushed as whole JSON lines (the harness parses each), workload unharmed.
#[test]
fn sigterm_under_load_detaches_every_probe() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("sigterm");
    let port = free_port();
    let server = nginx(&dir, port);
    let agent = Agent::start(&[]);
    let load = wrk(&format!("https://127.0.0.1:{port}/file.bin"), 4);
    std::thread::sleep(Duration::from_millis(1500));
    let events_before = agent.events().len();
    let lines = agent.stop();
    let requests = wrk_result(load);
    assert!(requests > 100, "{requests}");
    assert!(events_before > 0, "nothing captured before the signal");
    assert!(summary_value(&lines, "exchanges") > 0);
    let programs = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .expect("bpftool (apt: bpftool)");
    let listing = String::from_utf8_lossy(&programs.stdout);
    for name in [
        "ssl_read_entry",
        "ssl_return",
        "ssl_check_entry",
        "sys_enter_write",
        "sched_process_exec",
    ] {
        assert!(
            !listing.contains(&format!("name {name} ")),
            "{name} still loaded:\n{listing}"
        );
    }
    // The server keeps serving without the agent.
    run_client(&mut curl(&[
        "-o",
        "/dev/null",
        &format!("https://127.0.0.1:{port}/file.bin"),
    ]));
    drop(server);
}

/// Random bytes (and a truncated request) sent inside real TLS connections to nginx and to the
/// Python server: counted as parse errors, no crash, and capture still works afterwards.
#[test]
fn random_bytes_inside_tls_never_crash_the_agent() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("garbage");
    let (nginx_port, py_port) = (free_port(), free_port());
    let _nginx = nginx(&dir, nginx_port);
    let _py = python_server(&dir, py_port);
    let agent = Agent::start(&[]);
    let mut seed = 0x1234_5678_9abc_def0u64;
    for round in 0..6u32 {
        let port = if round % 2 == 0 { nginx_port } else { py_port };
        let mut garbage: Vec<u8> = (0..4096)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        if round == 4 {
            garbage =
                b"POST /half HTTP/1.1\r\nContent-Length: 100000\r\n\r\nonly a little".to_vec();
        }
        let mut client = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-connect",
                &format!("127.0.0.1:{port}"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        if let Some(mut stdin) = client.stdin.take() {
            let _ = stdin.write_all(&garbage);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while client.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = client.kill();
        let _ = client.wait();
        assert!(agent.is_running(), "agent died on garbage round {round}");
    }
    let (pid, _) = run_client(&mut curl(&[
        "-o",
        "/dev/null",
        &format!("https://127.0.0.1:{nginx_port}/file.bin?after=garbage"),
    ]));
    let e = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    assert_eq!(
        at(&e, &["request", "query"]).as_str(),
        Some("after=garbage")
    );
    let lines = agent.stop();
    assert!(
        summary_value(&lines, "parse_errors") > 0,
        "garbage should be counted: {lines:#?}"
    );
}
