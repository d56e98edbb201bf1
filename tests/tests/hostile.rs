//! No input can crash the agent: a raw TLS client sends hostile requests (non-ASCII and invalid
//! UTF-8 in every part of the head, Authorization schemes and credentials included, NUL bytes,
//! thousands of headers, a 100 KB query, deep JSON, CL+TE smuggling shapes, chunk-size
//! overflow) to a live TLS server that answers some of them with hostile responses (a gzip
//! bomb, chunk-size overflow, deep JSON, invalid UTF-8 in the head, a binary body). After each
//! case the client makes an ordinary request; the agent must still be up, must have captured
//! every one of those, and must have needed no containment (internal_errors=0). Root; CI runs it.

use std::{process::Command, time::Duration};

use cleartap_e2e::{
    Agent, Peer, TempDir, WAIT, free_port, make_cert,
    peers::{PYTHON, peers_dir},
    privileged, redaction_tag, run_client, summary_counter, wait_for_port,
};
use serde_json::Value;

const CASES: usize = 16;

fn server_events(agent: &Agent) -> Vec<Value> {
    agent
        .events()
        .into_iter()
        .filter(|e| e["connection"]["role"] == "server")
        .collect()
}

fn with_path<'a>(events: &'a [Value], path: &str) -> Option<&'a Value> {
    events.iter().find(|e| e["request"]["path"] == path)
}

#[test]
fn hostile_requests_and_responses_never_stop_capture() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("hostile");
    let port = free_port();
    let (cert, key) = make_cert(&dir);
    let server = Command::new(PYTHON)
        .arg(peers_dir().join("hostile_peer.py"))
        .args(["server", &port.to_string()])
        .arg(&cert)
        .arg(&key)
        .spawn()
        .expect("start the hostile TLS server");
    let server = Peer(server, "hostile server");
    wait_for_port(port, "hostile TLS server");
    let key_file = dir.path("token.key");
    let agent = Agent::start(&[
        "--token-key-file",
        &key_file.to_string_lossy(),
        "--inventory-file",
        "off",
        "--pid",
        &server.0.id().to_string(),
        "--body-prefix-bytes",
        "64",
    ]);
    let mut client = Command::new(PYTHON);
    client
        .arg(peers_dir().join("hostile_peer.py"))
        .args(["client", &port.to_string()]);
    let (_, out) = run_client(&mut client);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), CASES, "{out}");
    assert!(lines.iter().all(|l| l.ends_with("after=200")), "{out}");
    assert!(agent.is_running(), "the agent died");

    // Capture went on after every hostile case.
    agent.wait_events(CASES, WAIT, |e| {
        e["connection"]["role"] == "server"
            && e["request"]["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/after/"))
            && e["response"]["status"] == 200
    });
    let events = server_events(&agent);
    for n in 1..=CASES {
        let after = with_path(&events, &format!("/after/{n}"))
            .unwrap_or_else(|| panic!("no event for /after/{n}: {events:#?}"));
        assert_eq!(after["response"]["status"], 200);
        assert_eq!(after["request"]["headers"]["host"], "api.test");
    }

    // The exchanges that are valid HTTP are there, with exact values.
    let basic = with_path(&events, "/h/1").expect("Basic with a non-ASCII scheme");
    let tag_x = redaction_tag(&key_file, "x");
    assert_eq!(
        basic["request"]["headers"]["authorization"],
        Value::from(format!("Basicé {tag_x}"))
    );
    let bearer = with_path(&events, "/h/2").expect("Bearer with invalid UTF-8");
    let authorization = bearer["request"]["headers"]["authorization"]
        .as_str()
        .unwrap_or("");
    assert!(
        authorization.starts_with("Bearer [REDACTED:") && !authorization.contains('\u{fffd}'),
        "{authorization}"
    );
    let non_ascii = with_path(&events, "/h/3").expect("invalid UTF-8 scheme and cookie");
    let cookie = non_ascii["request"]["headers"]["cookie"]
        .as_str()
        .unwrap_or("");
    assert!(cookie.starts_with("[REDACTED:"), "{cookie}");
    let deep = with_path(&events, "/h/8").expect("deep JSON request");
    assert_eq!(deep["request"]["body_size"], 120_001);
    let deep_response = with_path(&events, "/r/deep-json").expect("deep JSON response");
    assert_eq!(deep_response["response"]["body_size"], 120_001);
    let bomb = with_path(&events, "/r/gzip-bomb").expect("gzip bomb response");
    assert_eq!(bomb["response"]["status"], 200);
    assert_eq!(bomb["response"]["headers"]["content-encoding"], "gzip");
    let bad_head = with_path(&events, "/r/bad-head").expect("invalid UTF-8 response head");
    assert_eq!(bad_head["response"]["headers"]["x-bin"], "\u{fffd}\u{fffd}");
    assert!(
        bad_head["response"]["headers"]["set-cookie"]
            .as_str()
            .is_some_and(|c| c.starts_with("[REDACTED:")),
        "{bad_head:#?}"
    );
    let binary = with_path(&events, "/r/binary").expect("binary response");
    assert_eq!(binary["response"]["body_size"], 64);

    std::thread::sleep(Duration::from_millis(200));
    let summary = agent.stop();
    assert_eq!(
        summary_counter(&summary, "internal_errors"),
        0,
        "{summary:#?}"
    );
    // What was not HTTP is counted, not silently dropped.
    assert!(
        summary_counter(&summary, "parse_errors") > 0,
        "{summary:#?}"
    );
    drop(server);
}
