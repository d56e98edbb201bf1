//! End-to-end HTTP/2 and gRPC: real peers from apt (nginx with http2, curl, nghttp2's h2load,
//! nghttp and nghttpd, python3-grpcio), on loopback, asserting exact field values on both
//! sides of each connection.

use std::{collections::BTreeSet, process::Command, time::Duration};

use cleartap_e2e::{
    Agent, TempDir, WAIT, at, free_port, n,
    peers::{
        NGINX_FILE_BYTES, PYTHON, curl, grpc_server, grpc_web_server, h2c_upgrade_server, nghttpd,
        nginx_h2, peers_dir, test_python,
    },
    pid_is, privileged, run_client, s, summary_counter,
};
use serde_json::Value;

fn h2(e: &Value) -> bool {
    s(at(e, &["request", "version"])) == "HTTP/2"
}

#[test]
fn curl_http2_against_nginx_both_sides() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("h2-nginx");
    let port = free_port();
    let server = nginx_h2(&dir, port);
    let nginx_pid = server.0.id();
    let agent = Agent::start(&[]);
    let base = format!("https://127.0.0.1:{port}");
    let (pid, out) = run_client(&mut curl(&[
        "--http2",
        "-H",
        "Authorization: Bearer h2-s3cret",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{local_port}\n",
        &format!("{base}/file.bin"),
        &format!("{base}/api/items/7?fields=name"),
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("2 "),
        "curl did not speak HTTP/2: {out}"
    );
    let local_port: u64 = lines[0][2..].trim().parse().expect("port");
    let client = agent.wait_events(2, WAIT, |e| pid_is(e, pid));
    let server_side = agent.wait_events(2, WAIT, |e| pid_is(e, nginx_pid));
    for (events, role) in [(&client, "client"), (&server_side, "server")] {
        let mut events = events.clone();
        events.sort_by_key(|e| n(at(e, &["stream_id"])));
        let (file, item) = (&events[0], &events[1]);
        for e in [file, item] {
            assert_eq!(s(at(e, &["request", "version"])), "HTTP/2");
            assert_eq!(s(at(e, &["response", "version"])), "HTTP/2");
            assert_eq!(s(at(e, &["request", "method"])), "GET");
            assert_eq!(
                s(at(e, &["request", "headers", "host"])),
                format!("127.0.0.1:{port}")
            );
            assert_eq!(
                s(at(e, &["request", "headers", "user-agent"])),
                "curl/7.88.1"
            );
            let auth = s(at(e, &["request", "headers", "authorization"]));
            assert!(auth.starts_with("Bearer [REDACTED:"), "{auth}");
            assert_eq!(s(at(e, &["connection", "role"])), role);
            assert_eq!(at(e, &["connection", "tls"]), &Value::Bool(true));
            assert_eq!(n(at(e, &["response", "status"])), 200);
            assert!(at(e, &["request", "unresolved_fields"]).is_null());
            assert!(at(e, &["grpc"]).is_null());
        }
        // curl opens streams 1 and 3 on one connection.
        assert_eq!(n(at(file, &["stream_id"])), 1);
        assert_eq!(n(at(item, &["stream_id"])), 3);
        assert_eq!(s(at(file, &["request", "path"])), "/file.bin");
        assert!(at(file, &["request", "query"]).is_null());
        assert_eq!(
            n(at(file, &["response", "body_size"])),
            NGINX_FILE_BYTES as u64
        );
        assert_eq!(s(at(item, &["request", "path"])), "/api/items/7");
        assert_eq!(s(at(item, &["request", "query"])), "fields=name");
        assert_eq!(n(at(item, &["response", "body_size"])), 10);
        assert_eq!(
            s(at(item, &["response", "headers", "content-type"])),
            "application/json"
        );
    }
    let c = &client[0];
    assert_eq!(n(at(c, &["connection", "local", "port"])), local_port);
    assert_eq!(n(at(c, &["connection", "remote", "port"])), u64::from(port));
    assert_eq!(
        n(at(&server_side[0], &["connection", "remote", "port"])),
        local_port
    );
    assert!(
        !serde_json::to_string(&agent.events())
            .expect("json")
            .contains("h2-s3cret")
    );
    let summary = agent.stop();
    assert_eq!(summary_counter(&summary, "parse_errors"), 0);
    assert_eq!(summary_counter(&summary, "hpack_errors"), 0);
    assert_eq!(summary_counter(&summary, "protocol_errors"), 0);
}

#[test]
fn h2load_many_concurrent_streams_every_request_captured() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("h2-h2load");
    let port = free_port();
    let server = nginx_h2(&dir, port);
    let nginx_pid = server.0.id();
    let agent = Agent::start(&[]);
    const REQUESTS: usize = 600;
    let (pid, out) = run_client(Command::new("h2load").args([
        "-n",
        &REQUESTS.to_string(),
        "-c",
        "2",
        "-m",
        "100",
        &format!("https://127.0.0.1:{port}/api/items/9"),
    ]));
    assert!(out.contains(&format!("{REQUESTS} succeeded")), "{out}");
    let is_item = |e: &Value| h2(e) && s(at(e, &["request", "path"])) == "/api/items/9";
    let server_side = agent.wait_events(REQUESTS, WAIT, |e| pid_is(e, nginx_pid) && is_item(e));
    let client = agent.wait_events(REQUESTS, WAIT, |e| pid_is(e, pid) && is_item(e));
    for events in [&server_side, &client] {
        assert_eq!(events.len(), REQUESTS);
        // Each (connection, stream) once: no exchange collapsed into another or repeated.
        let keys: BTreeSet<(u64, u64)> = events
            .iter()
            .map(|e| {
                let port = n(at(e, &["connection", "local", "port"]))
                    + n(at(e, &["connection", "remote", "port"]));
                (port, n(at(e, &["stream_id"])))
            })
            .collect();
        assert_eq!(keys.len(), REQUESTS);
        for e in events.iter() {
            assert_eq!(n(at(e, &["response", "status"])), 200);
            assert_eq!(n(at(e, &["response", "body_size"])), 10);
        }
    }
    let summary = agent.stop();
    assert_eq!(summary_counter(&summary, "hpack_unsynced_fields"), 0);
    assert_eq!(summary_counter(&summary, "protocol_errors"), 0);
}

#[test]
fn nghttp_header_block_with_continuation_against_nghttpd() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("h2-nghttpd");
    let port = free_port();
    let server = nghttpd(&dir, port, true);
    let server_pid = server.0.id();
    let agent = Agent::start(&[]);
    // 20,000 bytes of header: more than one 16 KiB frame, so HEADERS + CONTINUATION.
    let big = "b".repeat(20_000);
    let (pid, _) = run_client(Command::new("nghttp").args([
        "-n",
        "-H",
        &format!("x-big: {big}"),
        &format!("https://127.0.0.1:{port}/file.bin"),
    ]));
    for who in [pid, server_pid] {
        let e = agent
            .wait_events(1, WAIT, |e| pid_is(e, who) && h2(e))
            .remove(0);
        assert_eq!(s(at(&e, &["request", "path"])), "/file.bin");
        assert_eq!(s(at(&e, &["request", "headers", "x-big"])), big);
        assert_eq!(n(at(&e, &["response", "status"])), 200);
        assert_eq!(
            n(at(&e, &["response", "body_size"])),
            NGINX_FILE_BYTES as u64
        );
        assert_eq!(
            n(at(&e, &["stream_id"])),
            13,
            "nghttp's first request stream"
        );
    }
    let summary = agent.stop();
    assert_eq!(summary_counter(&summary, "protocol_errors"), 0);
    assert_eq!(summary_counter(&summary, "oversized_blocks"), 0);
}

#[test]
fn h2c_prior_knowledge_and_upgrade_curl_against_nghttpd() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("h2c");
    let port = free_port();
    let server = nghttpd(&dir, port, false);
    let server_pid = server.0.id();
    let agent = Agent::start(&[]);
    let (pid, out) = run_client(&mut curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        &format!("http://127.0.0.1:{port}/file.bin"),
    ]));
    assert_eq!(out, "2");
    for (who, role) in [(pid, "client"), (server_pid, "server")] {
        let e = agent
            .wait_events(1, WAIT, |e| pid_is(e, who) && h2(e))
            .remove(0);
        assert_eq!(at(&e, &["connection", "tls"]), &Value::Bool(false));
        assert_eq!(s(at(&e, &["connection", "role"])), role);
        assert_eq!(n(at(&e, &["stream_id"])), 1);
        assert_eq!(s(at(&e, &["request", "path"])), "/file.bin");
        assert_eq!(
            n(at(&e, &["response", "body_size"])),
            NGINX_FILE_BYTES as u64
        );
    }
    // By `Upgrade: h2c`: the HTTP/1.1 request becomes stream 1, answered in HTTP/2.
    let up_port = free_port();
    let upgrade_server = h2c_upgrade_server(up_port);
    let server_pid = upgrade_server.0.id();
    let (pid, out) = run_client(&mut curl(&[
        "--http2",
        "-w",
        "%{http_version}",
        &format!("http://127.0.0.1:{up_port}/file.bin?upgrade=1"),
    ]));
    assert_eq!(out, "hello h2c\n2");
    for who in [pid, server_pid] {
        let e = agent
            .wait_events(1, WAIT, |e| {
                pid_is(e, who) && s(at(e, &["request", "query"])) == "upgrade=1"
            })
            .remove(0);
        assert_eq!(s(at(&e, &["request", "version"])), "HTTP/1.1");
        assert_eq!(s(at(&e, &["request", "headers", "upgrade"])), "h2c");
        assert_eq!(s(at(&e, &["response", "version"])), "HTTP/2");
        assert_eq!(n(at(&e, &["response", "status"])), 200);
        assert_eq!(n(at(&e, &["stream_id"])), 1);
        assert_eq!(n(at(&e, &["response", "body_size"])), 10);
        assert_eq!(
            s(at(&e, &["response", "headers", "content-type"])),
            "text/plain"
        );
    }
    let summary = agent.stop();
    assert_eq!(summary_counter(&summary, "protocol_errors"), 0);
}

fn grpc_call(port: u16, cert: &std::path::Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(peers_dir().join("grpc_peer.py"))
        .args(["call", &port.to_string()])
        .arg(cert)
        .args(extra);
    cmd
}

#[test]
fn grpc_python_unary_streaming_and_error_status() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("grpc");
    let port = free_port();
    let server = grpc_server(&dir, port);
    let server_pid = server.0.id();
    let agent = Agent::start(&[]);
    let (pid, out) = run_client(&mut grpc_call(port, &dir.path("cert.pem"), &[]));
    assert_eq!(out, "hello alice\n3\nNOT_FOUND no such user: nobody\n");
    for who in [pid, server_pid] {
        let calls = agent.wait_events(3, WAIT, |e| pid_is(e, who) && at(e, &["grpc"]).is_object());
        assert_eq!(calls.len(), 3, "{calls:#?}");
        let find = |method: &str, status: u64| {
            calls
                .iter()
                .find(|e| {
                    s(at(e, &["grpc", "method"])) == method
                        && n(at(e, &["grpc", "status_code"])) == status
                })
                .unwrap_or_else(|| panic!("no {method} with status {status}: {calls:#?}"))
        };
        let unary = find("SayHello", 0);
        let streaming = find("ListHellos", 0);
        let error = find("SayHello", 5);
        for e in [unary, streaming, error] {
            assert_eq!(s(at(e, &["request", "version"])), "HTTP/2");
            assert_eq!(s(at(e, &["request", "method"])), "POST");
            assert_eq!(s(at(e, &["grpc", "service"])), "demo.Greeter");
            assert_eq!(n(at(e, &["grpc", "request_messages"])), 1);
            assert!(
                s(at(e, &["request", "headers", "content-type"])).starts_with("application/grpc")
            );
        }
        assert_eq!(s(at(unary, &["request", "path"])), "/demo.Greeter/SayHello");
        assert_eq!(s(at(unary, &["grpc", "status_name"])), "OK");
        assert_eq!(n(at(unary, &["grpc", "response_messages"])), 1);
        assert_eq!(n(at(streaming, &["grpc", "response_messages"])), 3);
        assert_eq!(s(at(error, &["grpc", "status_name"])), "NOT_FOUND");
        assert_eq!(s(at(error, &["grpc", "message"])), "no such user: nobody");
        assert_eq!(n(at(error, &["grpc", "response_messages"])), 0);
    }
    // Detection reads the strings inside protobuf messages: SQL injection in field 1.
    let (pid, out) = run_client(&mut grpc_call(
        port,
        &dir.path("cert.pem"),
        &["--name", "x' UNION SELECT password FROM users --"],
    ));
    assert_eq!(out, "hello x' UNION SELECT password FROM users --\n");
    let e = agent
        .wait_events(1, WAIT, |e| pid_is(e, pid) && at(e, &["grpc"]).is_object())
        .remove(0);
    // Bodies are not shown by default; the finding names the field the walk found.
    assert_eq!(s(at(&e, &["request", "path"])), "/demo.Greeter/SayHello");
    let finding = agent
        .wait_events(1, WAIT, |f| {
            f["schema"] == "cleartap.finding/1"
                && f["rule"]["id"] == "INJ-1"
                && pid_is(&f["exchange"], server_pid)
        })
        .remove(0);
    assert_eq!(
        s(at(&finding, &["evidence", "input"])),
        "body.grpc.1",
        "{finding:#}"
    );
    agent.stop();
}

#[test]
fn grpc_connection_opened_before_the_agent() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("grpc-late");
    let port = free_port();
    let server = grpc_server(&dir, port);
    let server_pid = server.0.id();
    // The client's channel (one HTTP/2 connection) is up and busy before the agent starts.
    let mut client = grpc_call(
        port,
        &dir.path("cert.pem"),
        &["--repeat", "40", "--pause", "0.25"],
    )
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("start gRPC client");
    std::thread::sleep(Duration::from_secs(2));
    let agent = Agent::start(&[]);
    let status = client.wait().expect("client");
    assert!(status.success());
    // gRPC indexes :path, content-type and the like on the first call, so a decoder that
    // joins later cannot resolve them: they are left out and counted, and without a resolved
    // content-type there is no `grpc` object.
    let events = agent.wait_events(10, WAIT, |e| pid_is(e, server_pid) && h2(e));
    for e in &events {
        // Every field is either what was sent or left out with its count — never a guess.
        let path = s(at(e, &["request", "path"]));
        let unresolved = n(at(e, &["request", "unresolved_fields"]));
        assert!(
            ["/demo.Greeter/SayHello", "/demo.Greeter/ListHellos"].contains(&path)
                || (path.is_empty() && unresolved > 0),
            "{e:#}"
        );
        assert_eq!(s(at(e, &["request", "method"])), "POST");
        assert!(n(at(e, &["stream_id"])) > 1, "{e:#}");
        if let Some(method) = at(e, &["grpc", "method"])
            .as_str()
            .filter(|m| !m.is_empty())
        {
            assert!(["SayHello", "ListHellos"].contains(&method), "{e:#}");
        }
        let status = at(e, &["grpc", "status_code"]);
        assert!(status.is_null() || [0, 5].contains(&n(status)), "{e:#}");
    }
    let summary = agent.stop();
    // The connection was joined late: references to entries inserted before were counted.
    assert!(summary_counter(&summary, "hpack_unsynced_fields") >= 10);
    assert_eq!(summary_counter(&summary, "hpack_errors"), 0);
}

#[test]
fn node_http2_client_with_its_own_openssl() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("h2-node");
    let port = free_port();
    let _server = nginx_h2(&dir, port);
    let agent = Agent::start(&[]);
    let mut cmd = Command::new("node");
    cmd.arg(peers_dir().join("node_h2_get.js"))
        .arg(port.to_string())
        .args(["/file.bin", "/api/items/3", "1500"]);
    let (pid, out) = run_client(&mut cmd);
    assert_eq!(out, format!("200 {NGINX_FILE_BYTES}\n200 10\n"));
    let mut events = agent.wait_events(2, WAIT, |e| pid_is(e, pid) && h2(e));
    events.sort_by_key(|e| n(at(e, &["stream_id"])));
    let node = std::fs::canonicalize("/usr/bin/node").expect("node");
    for (e, (stream, path, size)) in events.iter().zip([
        (1, "/file.bin", NGINX_FILE_BYTES as u64),
        (3, "/api/items/3", 10),
    ]) {
        assert_eq!(s(at(e, &["connection", "library"])), node.to_string_lossy());
        assert_eq!(s(at(e, &["connection", "role"])), "client");
        assert_eq!(n(at(e, &["stream_id"])), stream);
        assert_eq!(s(at(e, &["request", "path"])), path);
        assert_eq!(s(at(e, &["request", "headers", "x-from"])), "node-h2");
        assert_eq!(
            s(at(e, &["request", "headers", "host"])),
            format!("127.0.0.1:{port}")
        );
        assert_eq!(n(at(e, &["response", "status"])), 200);
        assert_eq!(n(at(e, &["response", "body_size"])), size);
    }
    agent.stop();
}

#[test]
fn grpc_web_over_http1_with_sonora() {
    if !privileged() {
        return;
    }
    let Some(python) = test_python() else {
        return;
    };
    let port = free_port();
    let server = grpc_web_server(&python, port);
    let server_pid = server.0.id();
    let agent = Agent::start(&[]);
    let (pid, out) = run_client(
        Command::new(&python)
            .arg(peers_dir().join("grpc_web_peer.py"))
            .args(["call", &port.to_string()]),
    );
    assert_eq!(out, "hello alice\nNOT_FOUND no such user: nobody\n");
    for who in [pid, server_pid] {
        let calls = agent.wait_events(2, WAIT, |e| pid_is(e, who) && at(e, &["grpc"]).is_object());
        for e in &calls {
            assert_eq!(s(at(e, &["request", "version"])), "HTTP/1.1");
            assert_eq!(s(at(e, &["request", "path"])), "/demo.Greeter/SayHello");
            assert!(
                s(at(e, &["request", "headers", "content-type"]))
                    .starts_with("application/grpc-web")
            );
            assert_eq!(at(e, &["connection", "tls"]), &Value::Bool(false));
            assert_eq!(s(at(e, &["grpc", "service"])), "demo.Greeter");
            assert_eq!(s(at(e, &["grpc", "method"])), "SayHello");
            assert_eq!(n(at(e, &["grpc", "request_messages"])), 1);
            assert!(at(e, &["stream_id"]).is_null());
        }
        let ok = calls
            .iter()
            .find(|e| n(at(e, &["grpc", "status_code"])) == 0)
            .unwrap_or_else(|| panic!("no OK call: {calls:#?}"));
        assert_eq!(n(at(ok, &["grpc", "response_messages"])), 1);
        let error = calls
            .iter()
            .find(|e| n(at(e, &["grpc", "status_code"])) == 5)
            .unwrap_or_else(|| panic!("no NOT_FOUND call: {calls:#?}"));
        assert_eq!(s(at(error, &["grpc", "status_name"])), "NOT_FOUND");
        assert_eq!(s(at(error, &["grpc", "message"])), "no such user: nobody");
    }
    agent.stop();
}
