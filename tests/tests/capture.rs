//! End-to-end: the real cleartap binary against real TLS clients and servers on loopback.
//! Run as root (CI does); see the harness for what happens otherwise.

use std::process::Command;

use cleartap_e2e::{
    Agent, TempDir, WAIT, at, free_port, n,
    peers::{NGINX_FILE_BYTES, PYTHON, curl, nginx, peers_dir, python_server, s_server},
    pid_is, privileged, run_client, s, summary_counter,
};
use serde_json::Value;

#[test]
fn curl_against_openssl_s_server() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("s-server");
    let port = free_port();
    let server = s_server(&dir, port);
    let agent = Agent::start(&[]);
    let url = format!("https://127.0.0.1:{port}/x?y=1");
    let (pid, out) = run_client(&mut curl(&[
        "-H",
        "X-Cleartap-Test: s-server",
        "-o",
        "/dev/null",
        "-w",
        "%{local_port} %{size_download} %{http_code}",
        &url,
    ]));
    let fields: Vec<u64> = out
        .split_whitespace()
        .map(|f| f.parse().expect("number"))
        .collect();
    let (local_port, size, code) = (fields[0], fields[1], fields[2]);
    assert_eq!(code, 200);
    let e = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    assert_eq!(s(at(&e, &["schema"])), "cleartap.http_exchange/1");
    assert_eq!(s(at(&e, &["process", "comm"])), "curl");
    assert_eq!(s(at(&e, &["process", "exe"])), "/usr/bin/curl");
    assert_eq!(s(at(&e, &["request", "method"])), "GET");
    assert_eq!(s(at(&e, &["request", "path"])), "/x");
    assert_eq!(s(at(&e, &["request", "query"])), "y=1");
    assert_eq!(s(at(&e, &["request", "version"])), "HTTP/1.1");
    assert_eq!(
        s(at(&e, &["request", "headers", "x-cleartap-test"])),
        "s-server"
    );
    assert_eq!(n(at(&e, &["request", "body_size"])), 0);
    assert_eq!(n(at(&e, &["response", "status"])), 200);
    assert_eq!(n(at(&e, &["response", "body_size"])), size);
    assert_eq!(s(at(&e, &["connection", "role"])), "client");
    assert_eq!(at(&e, &["connection", "tls"]), &Value::Bool(true));
    assert!(s(at(&e, &["connection", "library"])).contains("libssl.so"));
    assert_eq!(s(at(&e, &["connection", "remote", "ip"])), "127.0.0.1");
    assert_eq!(
        n(at(&e, &["connection", "remote", "port"])),
        u64::from(port)
    );
    assert_eq!(s(at(&e, &["connection", "local", "ip"])), "127.0.0.1");
    assert_eq!(n(at(&e, &["connection", "local", "port"])), local_port);
    assert!(at(&e, &["latency_us"]).is_u64());
    // s_server reads through an SSL BIO, which calls OpenSSL's internal read function directly:
    // only the internal attach points (the default) see its side.
    let server_side = agent
        .wait_events(1, WAIT, |e| pid_is(e, server.0.id()))
        .remove(0);
    assert_eq!(s(at(&server_side, &["connection", "role"])), "server");
    assert_eq!(s(at(&server_side, &["request", "path"])), "/x");
    assert_eq!(
        n(at(&server_side, &["connection", "remote", "port"])),
        local_port
    );
    agent.stop();
}

#[test]
fn curl_against_nginx_both_sides() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("nginx");
    let port = free_port();
    let server = nginx(&dir, port);
    let nginx_pid = server.0.id();
    let agent = Agent::start(&[]);
    let url = format!("https://127.0.0.1:{port}/file.bin?a=b&token=s3cret");
    let (pid, out) = run_client(&mut curl(&[
        "-H",
        "Authorization: Bearer s3cret-value",
        "-o",
        "/dev/null",
        "-w",
        "%{local_port}",
        &url,
    ]));
    let local_port: u64 = out.trim().parse().expect("port");
    let client = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    let server_side = agent
        .wait_events(1, WAIT, |e| pid_is(e, nginx_pid))
        .remove(0);
    for e in [&client, &server_side] {
        assert_eq!(s(at(e, &["request", "method"])), "GET");
        assert_eq!(s(at(e, &["request", "path"])), "/file.bin");
        // Credentials never reach the output.
        let query = s(at(e, &["request", "query"]));
        assert!(query.starts_with("a=b&token=[REDACTED:"), "{query}");
        let auth = s(at(e, &["request", "headers", "authorization"]));
        assert!(
            auth.starts_with("Bearer [REDACTED:") && auth.len() == 34,
            "{auth}"
        );
        assert_eq!(n(at(e, &["response", "status"])), 200);
        assert_eq!(
            n(at(e, &["response", "body_size"])),
            NGINX_FILE_BYTES as u64
        );
    }
    assert!(
        !serde_json::to_string(&agent.events())
            .expect("json")
            .contains("s3cret")
    );
    assert_eq!(s(at(&client, &["connection", "role"])), "client");
    assert_eq!(n(at(&client, &["connection", "local", "port"])), local_port);
    assert_eq!(
        n(at(&client, &["connection", "remote", "port"])),
        u64::from(port)
    );
    assert_eq!(s(at(&server_side, &["connection", "role"])), "server");
    assert_eq!(s(at(&server_side, &["process", "comm"])), "nginx");
    assert_eq!(
        n(at(&server_side, &["connection", "local", "port"])),
        u64::from(port)
    );
    assert_eq!(
        n(at(&server_side, &["connection", "remote", "port"])),
        local_port
    );
    agent.stop();
}

#[test]
fn python_ssl_client_uses_the_ex_functions() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("python-client");
    let port = free_port();
    let _server = nginx(&dir, port);
    // The exported SSL_read_ex/SSL_write_ex probes (the fallback path) are what this covers;
    // the default internal attach points are exercised by every other test.
    let agent = Agent::start(&["--probe-mode", "exported"]);
    let mut cmd = Command::new(PYTHON);
    cmd.arg(peers_dir().join("https_client.py"))
        .arg(port.to_string())
        .arg("/file.bin?lang=python");
    let (pid, out) = run_client(&mut cmd);
    let fields: Vec<u64> = out
        .split_whitespace()
        .map(|f| f.parse().expect("number"))
        .collect();
    assert_eq!(fields[..2], [200, NGINX_FILE_BYTES as u64]);
    let e = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    assert_eq!(s(at(&e, &["request", "path"])), "/file.bin");
    assert_eq!(s(at(&e, &["request", "query"])), "lang=python");
    assert_eq!(s(at(&e, &["request", "headers", "x-from"])), "python-e2e");
    assert_eq!(n(at(&e, &["response", "status"])), 200);
    assert_eq!(
        n(at(&e, &["response", "body_size"])),
        NGINX_FILE_BYTES as u64
    );
    assert_eq!(n(at(&e, &["connection", "local", "port"])), fields[2]);
    assert_eq!(
        n(at(&e, &["connection", "remote", "port"])),
        u64::from(port)
    );
    assert_eq!(s(at(&e, &["connection", "role"])), "client");
    agent.stop();
}

#[test]
fn post_200_kib_body_to_python_server() {
    if !privileged() {
        return;
    }
    const BODY: usize = 200 * 1024;
    let dir = TempDir::new("post");
    let port = free_port();
    let server = python_server(&dir, port);
    let server_pid = server.0.id();
    let body_file = dir.path("body.bin");
    std::fs::write(&body_file, vec![b'p'; BODY]).expect("body file");
    let agent = Agent::start(&["--body-prefix-bytes", "8"]);
    let url = format!("https://127.0.0.1:{port}/upload?kind=big");
    let data = format!("@{}", body_file.display());
    let (pid, out) = run_client(&mut curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &data,
        &url,
    ]));
    assert_eq!(out.trim(), format!("{{\"received\": {BODY}}}"));
    let client = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    let server_side = agent
        .wait_events(1, WAIT, |e| pid_is(e, server_pid))
        .remove(0);
    for e in [&client, &server_side] {
        assert_eq!(s(at(e, &["request", "method"])), "POST");
        assert_eq!(s(at(e, &["request", "path"])), "/upload");
        assert_eq!(n(at(e, &["request", "body_size"])), BODY as u64);
        assert_eq!(n(at(e, &["request", "body_missing_bytes"])), 0);
        assert_eq!(s(at(e, &["request", "body_prefix"])), "pppppppp");
        assert_eq!(n(at(e, &["response", "status"])), 200);
        assert_eq!(s(at(e, &["response", "body_prefix"])), "{\"receiv");
        assert_eq!(
            n(at(e, &["response", "body_size"])),
            out.trim().len() as u64
        );
    }
    assert_eq!(s(at(&server_side, &["connection", "role"])), "server");
    assert_eq!(
        s(at(&server_side, &["process", "exe"])),
        "/usr/bin/python3.11"
    );
    agent.stop();
}

#[test]
fn fifty_keep_alive_requests_on_one_connection() {
    if !privileged() {
        return;
    }
    const N: usize = 50;
    let dir = TempDir::new("keepalive");
    let port = free_port();
    let _server = nginx(&dir, port);
    let agent = Agent::start(&[]);
    let urls: Vec<String> = (1..=N)
        .map(|i| format!("https://127.0.0.1:{port}/k/{i}?i={i}"))
        .collect();
    let mut args = vec!["-w", "%{local_port}\\n", "-o", "/dev/null"];
    for url in &urls {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    let (pid, out) = run_client(&mut curl(&args));
    let ports: std::collections::BTreeSet<&str> = out.lines().collect();
    assert_eq!(ports.len(), 1, "curl used one connection: {out}");
    let local_port: u64 = ports.iter().next().expect("port").parse().expect("number");
    let events = agent.wait_events(N, WAIT, |e| pid_is(e, pid));
    assert_eq!(events.len(), N);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(s(at(e, &["request", "path"])), format!("/k/{}", i + 1));
        assert_eq!(s(at(e, &["request", "query"])), format!("i={}", i + 1));
        assert_eq!(n(at(e, &["response", "status"])), 200);
        assert_eq!(n(at(e, &["response", "body_size"])), 2);
        assert_eq!(n(at(e, &["connection", "local", "port"])), local_port);
    }
    // Ctrl-C must be as clean as SIGTERM.
    let lines = agent.stop_with(libc::SIGINT);
    let summary = lines
        .iter()
        .find(|l| l.contains("exit summary"))
        .expect("summary");
    assert!(summary.contains("ringbuf_full_records=0"), "{summary}");
    assert!(summary.contains("gap_events=0"), "{summary}");
}

/// A libssl that no process mapped when the agent started (a private copy: new inode) is
/// attached within a second of the exec of the process that loads it.
#[test]
fn private_library_is_attached_on_first_use_released_when_gone_and_reattached() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("late-lib");
    let port = free_port();
    let _server = nginx(&dir, port);
    let system_lib = discovery_system_libssl();
    let lib_dir = dir.path("privlib");
    std::fs::create_dir_all(&lib_dir).expect("lib dir");
    let copy = lib_dir.join(system_lib.file_name().expect("file name"));
    std::fs::copy(&system_lib, &copy).expect("copy libssl");
    let agent = Agent::start(&["--library-sweep-secs", "1"]);
    let shown = copy.to_string_lossy().into_owned();
    let fetch = |query: &str| {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(peers_dir().join("delayed_https_client.py"))
            .arg(port.to_string())
            .arg(format!("/file.bin?{query}"))
            .arg("1.0")
            .env("LD_LIBRARY_PATH", &lib_dir);
        let (pid, out) = run_client(&mut cmd);
        assert_eq!(out.trim(), format!("200 {NGINX_FILE_BYTES}"));
        let e = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
        assert_eq!(s(at(&e, &["request", "query"])), query);
        assert_eq!(s(at(&e, &["connection", "library"])), shown);
    };
    fetch("late=1");
    let lines_with = |needle: &str| {
        agent
            .stderr_lines()
            .iter()
            .filter(|l| l.contains(needle) && l.contains(&shown))
            .count()
    };
    assert_eq!(lines_with("attached to"), 1, "no attach line for the copy");
    // The process is gone; once the file is too, the sweep releases its probes (and inode).
    std::fs::remove_file(&copy).expect("remove the copy");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while lines_with("released") == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(lines_with("released"), 1, "{:#?}", agent.stderr_lines());
    // A new file at the same path (a restarted container, an upgrade): attached again.
    std::fs::copy(&system_lib, &copy).expect("copy libssl again");
    fetch("again=1");
    assert_eq!(lines_with("attached to"), 2);
    let lines = agent.stop();
    assert_eq!(summary_counter(&lines, "libraries_released"), 1);
}

/// The libssl that Debian's python3 loads, found through its _ssl module's dependencies.
fn discovery_system_libssl() -> std::path::PathBuf {
    let out = Command::new(PYTHON)
        .args(["-c", "import _ssl; print(_ssl.__file__)"])
        .output()
        .expect("python3");
    let module = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let ldd = Command::new("ldd").arg(&module).output().expect("ldd");
    String::from_utf8_lossy(&ldd.stdout)
        .lines()
        .find_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            name.starts_with("libssl.so")
                .then(|| rest.split_whitespace().next().map(std::path::PathBuf::from))?
        })
        .expect("python's _ssl links libssl")
}

/// `--probe-mode floor` (the bench's own floor): count-only probes on the same internal points,
/// every entry matched by a return, and nothing else — no event, no socket hook.
#[test]
fn floor_mode_counts_probe_hits_and_captures_nothing() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("floor");
    let port = free_port();
    let _server = nginx(&dir, port);
    let agent = Agent::start(&["--probe-mode", "floor"]);
    let url = format!("https://127.0.0.1:{port}/file.bin");
    let requests = 3;
    let urls: Vec<&str> = (0..requests).map(|_| url.as_str()).collect();
    let mut args = vec!["-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null"];
    args.extend(urls);
    let (_, _) = run_client(&mut curl(&args));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let events = agent.events();
    let lines = agent.stop();
    assert!(
        lines.iter().any(|l| l.contains("probes live: floor mode")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("[internal read @0x")),
        "floor mode must choose the internal points as auto does: {lines:#?}"
    );
    assert!(events.is_empty(), "{events:#?}");
    let entry = summary_counter(&lines, "entry_hits");
    let ret = summary_counter(&lines, "return_hits");
    // At least a read and a write on each side of each request.
    assert!(entry >= 4 * requests as u64, "entry_hits={entry}");
    // Every entry has its return; a blocking read elsewhere on the node may be in flight.
    assert!(
        ret <= entry && entry - ret <= 4,
        "entry_hits={entry} return_hits={ret}"
    );
}
