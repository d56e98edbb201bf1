//! End-to-end: plain HTTP captured from socket syscalls (python's http.server, nginx with
//! writev, curl), and the guarantee that TLS sockets never ship their raw bytes. Root; CI runs
//! them.

use cleartap_e2e::{
    Agent, TempDir, WAIT, at, free_port, n,
    peers::{NGINX_FILE_BYTES, PLAIN_FILE_BYTES, curl, nginx, nginx_plain, python_http_server},
    pid_is, privileged, redaction_tag, run_client, s, summary_counter,
};
use serde_json::Value;

const CANARY: &str = "plain-canary-7f3a9c";

fn curl_port_and_size(out: &str) -> (u64, u64) {
    let f: Vec<u64> = out
        .split_whitespace()
        .map(|v| v.parse().expect("number"))
        .collect();
    (f[0], f[1])
}

#[test]
fn plain_http_between_python_http_server_and_curl() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("plain-python");
    let root = dir.path("root");
    std::fs::create_dir_all(&root).expect("root");
    std::fs::write(root.join("hello.txt"), "hello over plain http\n").expect("file");
    let port = free_port();
    let server = python_http_server(&root, port);
    let key_file = dir.path("token.key");
    let agent = Agent::start(&["--token-key-file", &key_file.to_string_lossy()]);
    // Created at start with a random key: the tags below are HMACs under it.
    let tag = redaction_tag(&key_file, CANARY);
    let auth = format!("Authorization: Bearer {CANARY}");
    let url = format!("http://127.0.0.1:{port}/hello.txt?q=plain&token={CANARY}");
    let (pid, out) = run_client(&mut curl(&[
        "-H",
        &auth,
        "-o",
        "/dev/null",
        "-w",
        "%{local_port} %{size_download}",
        &url,
    ]));
    let (local_port, size) = curl_port_and_size(&out);
    assert_eq!(size, 22);
    let client = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    let server_pid = server.0.id();
    let served = agent
        .wait_events(1, WAIT, |e| pid_is(e, server_pid))
        .remove(0);
    for (e, role, local, remote) in [
        (&client, "client", local_port, u64::from(port)),
        (&served, "server", u64::from(port), local_port),
    ] {
        assert_eq!(at(e, &["connection", "tls"]), &Value::Bool(false), "{e}");
        assert!(at(e, &["connection", "library"]).is_null(), "{e}");
        assert_eq!(s(at(e, &["connection", "role"])), role);
        assert_eq!(n(at(e, &["connection", "local", "port"])), local);
        assert_eq!(n(at(e, &["connection", "remote", "port"])), remote);
        assert_eq!(s(at(e, &["connection", "remote", "ip"])), "127.0.0.1");
        assert_eq!(s(at(e, &["request", "method"])), "GET");
        assert_eq!(s(at(e, &["request", "path"])), "/hello.txt");
        assert_eq!(
            s(at(e, &["request", "query"])),
            format!("q=plain&token={tag}")
        );
        assert_eq!(
            s(at(e, &["request", "headers", "authorization"])),
            format!("Bearer {tag}")
        );
        assert_eq!(n(at(e, &["response", "status"])), 200);
        assert_eq!(s(at(e, &["response", "version"])), "HTTP/1.0");
        assert_eq!(n(at(e, &["response", "body_size"])), 22);
        assert_eq!(n(at(e, &["response", "body_missing_bytes"])), 0);
    }
    assert_eq!(s(at(&client, &["process", "comm"])), "curl");
    let lines = agent.stop();
    let all = lines.join("\n");
    assert!(!all.contains(CANARY), "canary in diagnostics");
    assert!(summary_counter(&lines, "plain_sockets_http") >= 2);
    drop(server);
}

#[test]
fn plain_nginx_writev_response_of_100_kib() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("plain-nginx");
    let port = free_port();
    let server = nginx_plain(&dir, port, false);
    let agent = Agent::start(&[]);
    let url = format!("http://127.0.0.1:{port}/big.bin");
    let (pid, out) = run_client(&mut curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{local_port} %{size_download}",
        &url,
    ]));
    let (local_port, size) = curl_port_and_size(&out);
    assert_eq!(size, PLAIN_FILE_BYTES as u64);
    let nginx_pid = server.0.id();
    let served = agent
        .wait_events(1, WAIT, |e| pid_is(e, nginx_pid))
        .remove(0);
    let fetched = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    for e in [&served, &fetched] {
        assert_eq!(at(e, &["connection", "tls"]), &Value::Bool(false));
        assert_eq!(s(at(e, &["request", "path"])), "/big.bin");
        assert_eq!(n(at(e, &["response", "status"])), 200);
        assert_eq!(
            n(at(e, &["response", "body_size"])),
            PLAIN_FILE_BYTES as u64
        );
        assert_eq!(n(at(e, &["response", "body_missing_bytes"])), 0);
        assert_eq!(
            s(at(e, &["response", "headers", "content-length"])),
            PLAIN_FILE_BYTES.to_string()
        );
    }
    assert_eq!(s(at(&served, &["connection", "role"])), "server");
    assert_eq!(s(at(&served, &["process", "comm"])), "nginx");
    assert_eq!(
        n(at(&served, &["connection", "remote", "port"])),
        local_port
    );
    let lines = agent.stop();
    assert_eq!(summary_counter(&lines, "iov_uncaptured_bytes"), 0);
    assert_eq!(summary_counter(&lines, "ringbuf_full_records"), 0);
}

/// With sendfile the body goes file → socket: nginx's event keeps the body's size and says all
/// of it is missing (not lost: `uncaptured_file_bytes`), while curl's side sees every byte.
#[test]
fn plain_nginx_sendfile_body_is_sized_and_marked_missing() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("plain-sendfile");
    let port = free_port();
    let server = nginx_plain(&dir, port, true);
    let agent = Agent::start(&[]);
    let url = format!("http://127.0.0.1:{port}/big.bin");
    let (pid, _) = run_client(&mut curl(&["-o", "/dev/null", &url]));
    let nginx_pid = server.0.id();
    let served = agent
        .wait_events(1, WAIT, |e| pid_is(e, nginx_pid))
        .remove(0);
    let fetched = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    let size = PLAIN_FILE_BYTES as u64;
    assert_eq!(n(at(&served, &["response", "status"])), 200);
    assert_eq!(n(at(&served, &["response", "body_size"])), size);
    assert_eq!(n(at(&served, &["response", "body_missing_bytes"])), size);
    assert_eq!(n(at(&fetched, &["response", "body_size"])), size);
    assert_eq!(n(at(&fetched, &["response", "body_missing_bytes"])), 0);
    let lines = agent.stop();
    assert_eq!(summary_counter(&lines, "sendfile_bytes"), size);
    assert_eq!(summary_counter(&lines, "uncaptured_file_bytes"), size);
    assert_eq!(summary_counter(&lines, "gap_bytes"), 0);
}

/// TLS connections are classified by their first bytes (a handshake) and never shipped raw:
/// every event is tls=true and no socket was taken for plain HTTP.
#[test]
fn tls_sockets_never_ship_raw_bytes() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("plain-tls");
    let port = free_port();
    let server = nginx(&dir, port);
    let agent = Agent::start(&["--comm", "curl", "--comm", "nginx"]);
    let url = format!("https://127.0.0.1:{port}/file.bin");
    let (pid, _) = run_client(&mut curl(&["-o", "/dev/null", &url]));
    let e = agent.wait_events(1, WAIT, |e| pid_is(e, pid)).remove(0);
    assert_eq!(at(&e, &["connection", "tls"]), &Value::Bool(true));
    assert_eq!(
        n(at(&e, &["response", "body_size"])),
        NGINX_FILE_BYTES as u64
    );
    let nginx_pid = server.0.id();
    agent.wait_events(1, WAIT, |e| pid_is(e, nginx_pid));
    let lines = agent.stop();
    assert_eq!(summary_counter(&lines, "plain_sockets_http"), 0);
    // curl's and nginx's sockets both started with a TLS handshake.
    assert!(summary_counter(&lines, "plain_sockets_other") >= 2);
}

#[test]
fn no_plaintext_flag_turns_plain_capture_off() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("plain-off");
    let port = free_port();
    let _server = nginx_plain(&dir, port, false);
    let agent = Agent::start(&["--no-plaintext"]);
    let url = format!("http://127.0.0.1:{port}/big.bin");
    let (pid, _) = run_client(&mut curl(&["-o", "/dev/null", &url]));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(agent.events().iter().all(|e| !pid_is(e, pid)));
    assert!(
        agent
            .stderr_lines()
            .iter()
            .any(|l| l.contains("plain HTTP off"))
    );
    let lines = agent.stop();
    assert_eq!(summary_counter(&lines, "plain_sockets_http"), 0);
}

/// Bodies are shown only when asked for, and only for the routes listed.
#[test]
fn body_prefix_only_for_listed_routes() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("body-routes");
    let port = free_port();
    let _server = nginx_plain(&dir, port, false);
    let agent = Agent::start(&["--body-prefix-bytes", "64", "--body-route", "/api/"]);
    let (pid, _) = run_client(&mut curl(&[
        "-o",
        "/dev/null",
        &format!("http://127.0.0.1:{port}/big.bin"),
        "-o",
        "/dev/null",
        &format!("http://127.0.0.1:{port}/api/missing"),
    ]));
    let body = format!(r#"{{"user":"a","password":"{CANARY}"}}"#);
    let (post_pid, _) = run_client(&mut curl(&[
        "-o",
        "/dev/null",
        "-H",
        "Content-Type: application/json",
        "--data",
        &body,
        &format!("http://127.0.0.1:{port}/api/login"),
    ]));
    let events = agent.wait_events(2, WAIT, |e| pid_is(e, pid));
    let login = agent
        .wait_events(1, WAIT, |e| pid_is(e, post_pid))
        .remove(0);
    let shown = s(at(&login, &["request", "body_prefix"]));
    assert!(
        shown.starts_with(r#"{"user":"a","password":"[REDACTED:"#),
        "{shown}"
    );
    assert!(!shown.contains(CANARY), "{shown}");
    let by_path = |p: &str| {
        events
            .iter()
            .find(|e| s(at(e, &["request", "path"])) == p)
            .unwrap_or_else(|| panic!("no event for {p}: {events:#?}"))
    };
    let big = by_path("/big.bin");
    assert_eq!(s(at(big, &["response", "body_prefix"])), "");
    assert_eq!(
        n(at(big, &["response", "body_size"])),
        PLAIN_FILE_BYTES as u64
    );
    let api = by_path("/api/missing");
    assert_eq!(n(at(api, &["response", "status"])), 404);
    assert!(
        s(at(api, &["response", "body_prefix"]))
            .starts_with("<html>\r\n<head><title>404 Not Found</title>"),
        "{api}"
    );
    agent.stop();
}
