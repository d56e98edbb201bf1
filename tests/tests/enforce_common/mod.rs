//! What the enforcement tests share: nginx (TLS and plain HTTP) serving `/secret` (a card
//! number: DATA-1 lists the route) and `/api/items/{id}`, an agent with the test's `[enforce]`,
//! and the traffic that lists token B as abusive.
// Each test crate that includes this module uses a part of it.
#![allow(dead_code)]

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cleartap_e2e::{
    Agent, Peer, TempDir, WAIT, agent_binary, free_port,
    peers::{SECRET_BODY, curl, nginx_api},
    redaction_tag,
};
use serde_json::Value;

pub const GOOD: &str = "token-a-reads-secrets-8c1f";
pub const BAD: &str = "token-b-enumerates-77d0";
pub const OTHER: &str = "token-c-under-load-1e9a";

pub struct Setup {
    pub dir: TempDir,
    pub _nginx: Peer,
    /// nginx's TLS port.
    pub port: u16,
    /// nginx's plain-HTTP port (the same server).
    pub plain_port: u16,
    pub agent: Agent,
    pub key_file: std::path::PathBuf,
}

pub fn start(tag: &str, enforce: &str) -> Setup {
    start_with_metrics(tag, enforce, "off")
}

pub fn start_with_metrics(tag: &str, enforce: &str, metrics: &str) -> Setup {
    let dir = TempDir::new(tag);
    let (port, plain_port) = (free_port(), free_port());
    let nginx = nginx_api(&dir, port, plain_port);
    let key_file = dir.path("token.key");
    let config = dir.path("cleartap.toml");
    std::fs::write(&config, with_audit_log(&dir, enforce)).expect("config");
    let agent = Agent::start(&[
        "--config",
        &config.to_string_lossy(),
        "--token-key-file",
        &key_file.to_string_lossy(),
        "--inventory-file",
        "off",
        "--metrics-listen",
        metrics,
    ]);
    agent.wait_stderr("enforcement ", WAIT);
    Setup {
        dir,
        _nginx: nginx,
        port,
        plain_port,
        agent,
        key_file,
    }
}

/// The `[enforce]` text with the audit log and the admin socket in the test's directory.
pub fn with_audit_log(dir: &TempDir, enforce: &str) -> String {
    format!(
        "{enforce}audit_log = \"{}\"\nadmin_socket = \"{}\"\n",
        dir.path("audit.jsonl").display(),
        dir.path("admin.sock").display()
    )
}

/// `cleartap ARGS --admin-socket …`: (success, the JSON answer).
pub fn admin(s: &Setup, args: &[&str]) -> (bool, Value) {
    let out = Command::new(agent_binary())
        .args(args)
        .arg("--admin-socket")
        .arg(s.dir.path("admin.sock"))
        .output()
        .expect("run cleartap");
    let answer = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "answer is not JSON ({e}): {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), answer)
}

/// (exit code, status code, body) of one curl request over TLS with `token`.
pub fn get(port: u16, token: &str, path: &str) -> (i32, String, String) {
    request(
        &format!("https://127.0.0.1:{port}{path}"),
        "api.test",
        token,
    )
}

/// The same over plain HTTP.
pub fn get_plain(port: u16, token: &str, path: &str) -> (i32, String, String) {
    request(&format!("http://127.0.0.1:{port}{path}"), "api.test", token)
}

/// (exit code, status code, body) of one curl request for `url` with `token`, naming `host`.
pub fn request(url: &str, host: &str, token: &str) -> (i32, String, String) {
    curl_answer(&[
        "-H",
        &format!("Host: {host}"),
        "-H",
        &format!("Authorization: Bearer {token}"),
        url,
    ])
}

/// (exit code, status code, body) of curl run with `args`.
pub fn curl_answer(args: &[&str]) -> (i32, String, String) {
    let out = curl(&[&["-w", "\n%{http_code}"], args].concat())
        .stderr(Stdio::null())
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        out.status.code().unwrap_or(-1),
        code.to_owned(),
        body.to_owned(),
    )
}

pub fn metrics_text(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics port");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    text
}

/// Findings of `rule` on the server at `port` (the agent sees the whole host: other traffic
/// must not count).
pub fn findings_of(agent: &Agent, rule: &str, port: u16) -> usize {
    agent
        .findings()
        .iter()
        .filter(|f| f["rule"]["id"] == rule)
        .filter(|f| f["exchange"]["connection"]["local"]["port"] == port)
        .count()
}

/// A reads /secret (DATA-1 lists it); B enumerates 25 items (BOLA-1 lists B).
pub fn build_lists(s: &Setup) {
    assert_eq!(get(s.port, GOOD, "/secret").2, SECRET_BODY);
    for id in 1..=25 {
        assert_eq!(get(s.port, BAD, &format!("/api/items/{id}")).1, "200");
    }
    let deadline = Instant::now() + WAIT;
    while (findings_of(&s.agent, "DATA-1", s.port) == 0
        || findings_of(&s.agent, "BOLA-1", s.port) == 0)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        findings_of(&s.agent, "DATA-1", s.port),
        1,
        "{:#?}",
        s.agent.findings()
    );
    assert_eq!(
        findings_of(&s.agent, "BOLA-1", s.port),
        1,
        "{:#?}",
        s.agent.findings()
    );
    // The lists reach the kernel at the flush that wrote the findings.
    std::thread::sleep(Duration::from_millis(300));
}

pub fn enforcements(agent: &Agent) -> Vec<Value> {
    agent
        .events()
        .into_iter()
        .filter(|e| e["schema"] == "cleartap.enforcement/1")
        .collect()
}

/// Requests for /secret with `token` that nginx received.
pub fn secret_requests_in_access_log(s: &Setup, token: &str) -> usize {
    let line = format!("GET /secret Bearer {token}");
    std::fs::read_to_string(s.dir.path("access.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == line)
        .count()
}

pub fn assert_evidence(e: &Value, s: &Setup, point: &str, role: &str, comm: &str) {
    assert_eq!(e["action"], "reset", "{e:#}");
    assert_eq!(e["mode"], "enforce");
    assert_eq!(e["point"], point);
    assert_eq!(e["gates"], serde_json::json!(["cgroup_skb_egress"]));
    assert_eq!(e["policy"], "abusive_actor_on_sensitive_route");
    assert_eq!(
        e["actor"]["token"],
        redaction_tag(&s.key_file, BAD).as_str()
    );
    assert_eq!(e["actor"]["credential"], "authorization");
    assert_eq!(e["actor"]["listed_by"], serde_json::json!(["BOLA-1"]));
    assert_eq!(e["route"]["method"], "GET");
    assert_eq!(e["route"]["template"], "/secret");
    assert_eq!(e["route"]["listed_for_host"], "api.test");
    assert_eq!(e["route"]["listed_by"], serde_json::json!(["DATA-1"]));
    assert_eq!(e["process"]["comm"], comm);
    assert_eq!(e["connection"]["role"], role);
    let server_port = if role == "server" { "local" } else { "remote" };
    assert_eq!(e["connection"][server_port]["port"], s.port);
    assert_eq!(e["reset"]["done"], true);
    assert!(
        e["reset"]["decision_to_reset_us"].as_u64().is_some(),
        "{e:#}"
    );
}

pub fn wrk_with(port: u16, token: &str, seconds: u32) -> std::process::Child {
    Command::new("wrk")
        .args(["-t1", "-c4", &format!("-d{seconds}s")])
        .args([
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Host: api.test",
        ])
        .arg(format!("https://127.0.0.1:{port}/secret"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wrk (apt: wrk)")
}

pub fn assert_wrk_clean(child: std::process::Child) {
    let out = child.wait_with_output().expect("wrk output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(!text.contains("Socket errors"), "load saw errors: {text}");
    assert!(!text.contains("Non-2xx"), "load saw failures: {text}");
}
