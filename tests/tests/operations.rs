//! End-to-end: the configuration file commands (`cleartap config default|check`) and the
//! Prometheus /metrics and /healthz endpoints of a live agent.

use std::{
    io::{Read as _, Write as _},
    process::Command,
};

use cleartap_e2e::{
    Agent, TempDir, WAIT, agent_binary, free_port,
    peers::{curl, nginx},
    pid_is, privileged, run_client,
};

fn cleartap(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(agent_binary())
        .args(args)
        .env_remove("CLEARTAP_CONFIG")
        .output()
        .expect("run cleartap");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_default_round_trips_and_check_names_bad_fields() {
    let dir = TempDir::new("config");
    let (ok, default, _) = cleartap(&["config", "default"]);
    assert!(ok);
    assert!(default.contains("[capture]") && default.contains("listen = \"127.0.0.1:9464\""));
    let good = dir.path("good.toml");
    std::fs::write(&good, &default).expect("write");
    let (ok, out, err) = cleartap(&["config", "check", "--config", &good.to_string_lossy()]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("ok: {} (with environment and flags)", good.display())
    );
    for (text, field) in [
        (
            "[kernel]\nring_buffer_mib = 3\n",
            "kernel.ring_buffer_mib = 3: must be a power of two",
        ),
        ("[capture]\nsocket_hooks = \"fentry\"\n", "socket_hooks"),
        ("[filters]\nport = [443]\n", "unknown field `port`"),
        ("[metrics]\nlisten = \"everywhere\"\n", "metrics.listen"),
        (
            "[[sinks]]\ntype = \"http\"\nurl = \"ftp://siem\"\n",
            "sinks[0].url",
        ),
        ("[[sinks]]\ntype = \"file\"\n", "sinks[0].path: required"),
        (
            "[[sinks]]\ntype = \"stdout\"\naddress = \"x\"\n",
            "sinks[0].address: only applies",
        ),
        ("[[sinks]]\ntype = \"kafka\"\n", "unknown variant `kafka`"),
    ] {
        let bad = dir.path("bad.toml");
        std::fs::write(&bad, text).expect("write");
        let (ok, _, err) = cleartap(&["config", "check", "--config", &bad.to_string_lossy()]);
        assert!(!ok, "{text} accepted");
        assert!(err.contains(field), "{text:?}: {err}");
    }
    let (ok, _, err) = cleartap(&["config", "check", "--config", "/nonexistent/c.toml"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/c.toml"), "{err}");
}

fn line_count(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn wait_line_count(path: &std::path::Path, n: usize) {
    let deadline = std::time::Instant::now() + WAIT;
    while line_count(path) < n && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(line_count(path), n, "{}", path.display());
}

/// SIGHUP re-reads the config file: the file sink reopens its path (logrotate moved the old
/// file away), a broken config changes nothing, and settings that need a restart are named.
#[test]
fn sighup_reopens_files_and_rejects_a_broken_config() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("sighup");
    let port = free_port();
    let server = nginx(&dir, port);
    let events = dir.path("out/events.jsonl");
    let config = |extra: &str| {
        format!(
            "[filters]\ncomms = [\"curl\", \"nginx\"]\n{extra}\n[[sinks]]\ntype = \"stdout\"\n\
[[sinks]]\nname = \"file\"\ntype = \"file\"\npath = \"{}\"\nspool_dir = \"{}\"\n",
            events.display(),
            dir.path("spool").display()
        )
    };
    let config_path = dir.path("cleartap.toml");
    std::fs::write(&config_path, config("")).expect("config");
    let agent = Agent::start(&["--config", &config_path.to_string_lossy()]);
    let fetch = |n: usize| {
        let url = format!("https://127.0.0.1:{port}/file.bin?round={n}");
        let (pid, _) = run_client(&mut curl(&["-o", "/dev/null", &url]));
        agent.wait_events(1, WAIT, |e| pid_is(e, pid));
        let nginx_pid = server.0.id();
        agent.wait_events(n, WAIT, |e| pid_is(e, nginx_pid));
    };
    fetch(1);
    wait_line_count(&events, 2);
    // logrotate's move, then SIGHUP: the sink opens a new file at the path.
    let moved = dir.path("out/events.jsonl.moved");
    std::fs::rename(&events, &moved).expect("rotate");
    agent.signal(libc::SIGHUP);
    agent.wait_stderr("SIGHUP: sinks restarted", WAIT);
    fetch(2);
    wait_line_count(&events, 2);
    assert_eq!(line_count(&moved), 2);
    // A broken file: reported with its field, nothing changes, capture goes on.
    std::fs::write(&config_path, config("[kernel]\nring_buffer_mib = 3\n")).expect("config");
    agent.signal(libc::SIGHUP);
    let line = agent.wait_stderr("configuration not reloaded", WAIT);
    assert!(line.contains("kernel.ring_buffer_mib"), "{line}");
    fetch(3);
    wait_line_count(&events, 4);
    // A setting that needs a restart is named.
    std::fs::write(&config_path, config("[streams]\nmax_streams = 100\n")).expect("config");
    agent.signal(libc::SIGHUP);
    agent.wait_stderr(
        "max_streams changed; that takes effect after a restart",
        WAIT,
    );
    assert!(agent.is_running());
    agent.stop();
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn metrics_and_healthz_of_a_live_agent() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("metrics");
    let port = free_port();
    let server = nginx(&dir, port);
    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let agent = Agent::start(&[
        "--metrics-listen",
        &listen,
        "--comm",
        "curl",
        "--comm",
        "nginx",
    ]);
    // Ready once the capture loop has published its first snapshot, which happens just after
    // the `probes live` line the harness waits for: poll briefly, as a readiness probe would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (mut status, mut body) = http_get(metrics_port, "/healthz");
    while status != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        (status, body) = http_get(metrics_port, "/healthz");
    }
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let url = format!("https://127.0.0.1:{port}/file.bin");
    let (pid, _) = run_client(&mut curl(&["-o", "/dev/null", &url]));
    agent.wait_events(1, WAIT, |e| pid_is(e, pid));
    let nginx_pid = server.0.id();
    agent.wait_events(1, WAIT, |e| pid_is(e, nginx_pid));
    // Snapshots are published once a second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (status, metrics) = http_get(metrics_port, "/metrics");
    assert_eq!(status, 200);
    for line in [
        "cleartap_exchanges_total 2",
        "cleartap_events_written_total 2",
        "cleartap_dropped_records_total{cause=\"ringbuf_full\"} 0",
        "cleartap_uncaptured_bytes_total{cause=\"stream_gap\"} 0",
        "cleartap_plain_sockets_total{class=\"http\"} 0",
        "# TYPE cleartap_attached_libraries gauge",
        "# EOF",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line:?} missing:\n{metrics}"
        );
    }
    let (status, _) = http_get(metrics_port, "/nope");
    assert_eq!(status, 404);
    agent.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_err());
}

/// A shared key that was never made (the Kubernetes Secret mounted read-only and empty): the
/// node's own key file is used, created once and kept, and the agent says why.
#[test]
fn missing_shared_token_key_falls_back_to_the_node_key() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("key-fallback");
    let shared = dir.path("secret-mount");
    std::fs::create_dir_all(&shared).expect("mount dir");
    // A read-only "Secret mount": even root cannot create the key file there.
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
        .arg(&shared)
        .status()
        .expect("mount");
    assert!(status.success());
    let node_key = dir.path("node.key");
    let agent = Agent::start(&[
        "--token-key-file",
        &shared.join("token.key").to_string_lossy(),
        "--token-key-fallback-file",
        &node_key.to_string_lossy(),
        "--inventory-file",
        "off",
        "--metrics-listen",
        "off",
    ]);
    let line = agent.wait_stderr("instead: redaction tags and enforcement keys", WAIT);
    assert!(
        line.contains(&node_key.to_string_lossy().into_owned()),
        "{line}"
    );
    agent.stop();
    let _ = Command::new("umount").arg(&shared).status();
    assert_eq!(std::fs::read(&node_key).map(|k| k.len()).ok(), Some(32));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&node_key).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode.ok(), Some(0o600));
}
