//! Inline enforcement beyond one whole TLS head per call (root; CI runs it): plain HTTP judged
//! at the socket syscalls on both sides, routes listed for one virtual host only, request
//! heads split over several writes and reads, and heads longer than one scan window.

use std::{process::Command, time::Duration};

use cleartap_e2e::{WAIT, peers::SECRET_BODY, privileged};
use serde_json::Value;

mod enforce_common;
use enforce_common::*;

/// Sends a GET of `path` with `token` over TLS from Python's ssl module, the head in two
/// writes cut `cut` bytes into the Authorization value, 300 ms apart. Returns the response's
/// first line, or what ended the connection instead.
fn split_request(port: u16, token: &str, path: &str, cut: usize) -> String {
    let script = r#"
import socket, ssl, sys, time
port, token, path, cut = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
head = (f"GET {path} HTTP/1.1\r\nHost: api.test\r\nAccept: */*\r\n"
        f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n").encode()
at = head.index(b"Bearer ") + len("Bearer ") + cut
try:
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
    s.sendall(head[:at])
    time.sleep(0.3)
    s.sendall(head[at:])
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print(data.split(b"\r\n")[0].decode() if data else "closed without a response")
except Exception as e:
    print(f"failed: {type(e).__name__}")
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .args([
            port.to_string(),
            token.to_owned(),
            path.to_owned(),
            cut.to_string(),
        ])
        .output()
        .expect("run python3");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A GET over TLS whose head carries `X-Pad` headers of these sizes before Authorization
/// (nginx takes lines up to 8 KiB).
fn long_head(port: u16, token: &str, pads: &[usize]) -> (i32, String, String) {
    let mut args: Vec<String> = vec!["-H".into(), "Host: api.test".into()];
    for (i, pad) in pads.iter().enumerate() {
        args.extend(["-H".into(), format!("X-Pad-{i}: {}", "p".repeat(*pad))]);
    }
    args.extend([
        "-H".into(),
        format!("Authorization: Bearer {token}"),
        format!("https://127.0.0.1:{port}/secret"),
    ]);
    curl_answer(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn switch(s: &Setup, enforce: &str) {
    std::fs::write(s.dir.path("cleartap.toml"), with_audit_log(&s.dir, enforce)).expect("config");
    s.agent.signal(libc::SIGHUP);
    s.agent.wait_stderr("SIGHUP: enforcement now enforce", WAIT);
}

fn counter(summary: &[String], name: &str) -> u64 {
    summary
        .iter()
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_else(|| panic!("{name} not in {summary:#?}"))
}

fn nth_enforcement(s: &Setup, n: usize) -> Value {
    let found = s
        .agent
        .wait_events(n, WAIT, |e| e["schema"] == "cleartap.enforcement/1");
    found[n - 1].clone()
}

#[test]
fn plain_http_and_virtual_hosts_are_judged() {
    if !privileged() {
        return;
    }
    let s = start("enforce-plain", "[enforce]\nmode = \"enforce\"\n");
    build_lists(&s);
    // Client side: curl's plain request is stopped at its send, before nginx sees it.
    let (code, status, body) = get_plain(s.plain_port, BAD, "/secret");
    assert_ne!(code, 0, "the blocked request failed in curl");
    assert_eq!((status.as_str(), body.as_str()), ("000", ""));
    assert_eq!(secret_requests_in_access_log(&s, BAD), 0);
    let e = nth_enforcement(&s, 1);
    assert_eq!(e["action"], "reset", "{e:#}");
    assert_eq!(e["point"], "socket_write_entry");
    assert_eq!(e["process"]["comm"], "curl");
    assert_eq!(e["connection"]["role"], "client");
    assert_eq!(e["connection"]["remote"]["port"], s.plain_port);
    assert_eq!(e["actor"]["listed_by"], serde_json::json!(["BOLA-1"]));
    assert_eq!(e["route"]["template"], "/secret");
    assert_eq!(e["route"]["listed_for_host"], "api.test");
    assert_eq!(get_plain(s.plain_port, GOOD, "/secret").2, SECRET_BODY);
    assert_eq!(get_plain(s.plain_port, BAD, "/public").1, "200");
    // The route was listed for api.test: the same path on another virtual host is another
    // route, over TLS and plain HTTP alike. (Each is allowed once: its answer has the card
    // number, so DATA-1 then lists that host's route too.)
    let url = format!("https://127.0.0.1:{}/secret", s.port);
    assert_eq!(request(&url, "www.test", BAD).2, SECRET_BODY);
    let url = format!("http://127.0.0.1:{}/secret", s.plain_port);
    assert_eq!(request(&url, "other.test:80", BAD).2, SECRET_BODY);
    assert_eq!(request(&url, "API.test:80", BAD).1, "000", "case and port");
    assert_eq!(nth_enforcement(&s, 2)["point"], "socket_write_entry");
    // Server side alone: nginx reads the request, its answer never leaves.
    switch(&s, "[enforce]\nmode = \"enforce\"\nclient_side = false\n");
    let before = enforcements(&s.agent).len();
    // (the two on other hosts reached nginx)
    assert_eq!(secret_requests_in_access_log(&s, BAD), 2);
    let (code, status, _) = get_plain(s.plain_port, BAD, "/secret");
    assert_ne!(code, 0);
    assert_eq!(status, "000");
    assert_eq!(secret_requests_in_access_log(&s, BAD), 3);
    let e = nth_enforcement(&s, before + 1);
    assert_eq!(e["point"], "socket_read_exit", "{e:#}");
    assert_eq!(e["process"]["comm"], "nginx");
    assert_eq!(e["connection"]["role"], "server");
    assert_eq!(e["connection"]["local"]["port"], s.plain_port);
    assert_eq!(e["reset"]["done"], true);
    let summary = s.agent.stop();
    assert!(counter(&summary, "heads_plaintext") >= 3, "{summary:#?}");
}

#[test]
fn split_and_long_heads_are_judged() {
    if !privileged() {
        return;
    }
    let s = start("enforce-split", "[enforce]\nmode = \"enforce\"\n");
    build_lists(&s);
    // A head sent in two TLS writes, cut inside the token: judged at the client's second
    // write, which never leaves; nginx never gets a whole request.
    let answer = split_request(s.port, BAD, "/secret", 5);
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(secret_requests_in_access_log(&s, BAD), 0);
    let e = nth_enforcement(&s, 1);
    assert_eq!(e["point"], "tls_write_entry", "{e:#}");
    assert_eq!(e["process"]["comm"], "python3");
    assert_eq!(e["actor"]["listed_by"], serde_json::json!(["BOLA-1"]));
    // The same for a good token goes through whole.
    assert_eq!(split_request(s.port, GOOD, "/secret", 5), "HTTP/1.1 200 OK");
    // A head longer than one 2 KiB scan window, its credential past the first.
    let (code, status, _) = long_head(s.port, BAD, &[5000]);
    assert_ne!(code, 0);
    assert_eq!(status, "000");
    let e = nth_enforcement(&s, 2);
    assert_eq!(e["point"], "tls_write_entry", "{e:#}");
    assert_eq!(long_head(s.port, GOOD, &[5000]).2, SECRET_BODY);
    // Past the 8 KiB limit the head is allowed (fail open) and counted.
    assert_eq!(long_head(s.port, BAD, &[4500, 4500]).2, SECRET_BODY);
    // Server side alone: nginx's two reads of the split head.
    assert_eq!(secret_requests_in_access_log(&s, BAD), 1, "the allowed one");
    switch(&s, "[enforce]\nmode = \"enforce\"\nclient_side = false\n");
    let answer = split_request(s.port, BAD, "/secret", 5);
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(secret_requests_in_access_log(&s, BAD), 2);
    let e = nth_enforcement(&s, 3);
    assert_eq!(e["point"], "tls_read_return", "{e:#}");
    assert_eq!(e["process"]["comm"], "nginx");
    std::thread::sleep(Duration::from_millis(200));
    let summary = s.agent.stop();
    assert!(counter(&summary, "heads_split") >= 4, "{summary:#?}");
    assert!(counter(&summary, "heads_unparsed") >= 1, "{summary:#?}");
}

#[test]
fn client_addresses_are_denied_at_server_reads_when_enabled() {
    if !privileged() {
        return;
    }
    let s = start(
        "enforce-clients",
        "[enforce]\nmode = \"enforce\"\nclient_addresses = true\n",
    );
    // Without a listed actor nothing stops A; then an operator lists A's address for /secret.
    assert_eq!(get(s.port, GOOD, "/secret").2, SECRET_BODY);
    let (ok, added) = admin(
        &s,
        &[
            "block",
            "add",
            "--actor",
            "127.0.0.1",
            "--route",
            "GET /secret",
            "--reason",
            "ticket 7",
        ],
    );
    assert!(ok, "{added:#}");
    assert_eq!(added["ids"][0], "client:127.0.0.1", "{added:#}");
    // Any credential from that address on that route: nginx reads it, its answer never leaves.
    let (code, status, _) = get(s.port, GOOD, "/secret");
    assert_ne!(code, 0);
    assert_eq!(status, "000");
    let e = nth_enforcement(&s, 1);
    assert_eq!(e["point"], "tls_read_return", "{e:#}");
    assert_eq!(e["actor"]["credential"], "client_address");
    assert_eq!(e["actor"]["client_ip"], "127.0.0.1");
    assert_eq!(e["actor"]["token"], Value::Null);
    assert_eq!(e["actor"]["listed_by"], serde_json::json!(["operator"]));
    assert_eq!(e["process"]["comm"], "nginx");
    assert_eq!(get_plain(s.plain_port, GOOD, "/secret").1, "000", "plain");
    assert_eq!(nth_enforcement(&s, 2)["point"], "socket_read_exit");
    assert_eq!(get(s.port, GOOD, "/public").1, "200", "another route");
    let (ok, _) = admin(&s, &["block", "remove", "client:127.0.0.1"]);
    assert!(ok);
    assert_eq!(get(s.port, GOOD, "/secret").2, SECRET_BODY, "unblocked");
    let summary = s.agent.stop();
    assert!(counter(&summary, "clients_listed") >= 1, "{summary:#?}");
}
