//! Inline enforcement end to end (root; CI runs it): nginx serves `/secret` (a card number:
//! DATA-1 lists the route) and `/api/items/{id}`; token B enumerates items past BOLA-1's
//! threshold (listed as abusive); then B's `GET /secret` is stopped in the kernel — on the
//! client side it never reaches nginx, on the server side its response never leaves — while
//! token A and B's other routes go on, under a wrk load that sees no error. Monitor mode, the
//! TTL cap, the SIGHUP kill switch and SIGKILL (no stale gate) are checked too.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use cleartap_e2e::{
    Agent, TempDir, WAIT, free_port,
    peers::{SECRET_BODY, curl, nginx_gateway},
    privileged, redaction_tag,
};
use serde_json::Value;

mod enforce_common;
use enforce_common::*;

#[test]
fn client_side_block_keeps_the_request_on_the_node() {
    if !privileged() {
        return;
    }
    let s = start("enforce-client", "[enforce]\nmode = \"enforce\"\n");
    let line = s.agent.wait_stderr("probes live", WAIT);
    assert!(
        line.contains("enforcement enforce (verdicts at TLS and plain-HTTP client writes and server reads; cgroup_skb egress gate on"),
        "{line}"
    );
    build_lists(&s);
    let load = wrk_with(s.port, OTHER, 3);
    let (code, status, body) = get(s.port, BAD, "/secret");
    assert_ne!(code, 0, "the blocked request failed in curl");
    assert_eq!((status.as_str(), body.as_str()), ("000", ""));
    assert_eq!(get(s.port, BAD, "/public").1, "200", "B on another route");
    assert_eq!(
        get(s.port, GOOD, "/secret").2,
        SECRET_BODY,
        "A on the route"
    );
    // GOOD → BAD → GOOD with curl's connection reuse: BAD's connection is reset, the next
    // request opens another one.
    let url = format!("https://127.0.0.1:{}/secret", s.port);
    let mut args: Vec<String> = Vec::new();
    for (i, token) in [GOOD, BAD, GOOD].into_iter().enumerate() {
        if i > 0 {
            args.extend(["--next".into(), "-sk".into()]);
        }
        let auth = format!("Authorization: Bearer {token}");
        args.extend(["-H".into(), "Host: api.test".into(), "-H".into(), auth]);
        args.extend([
            "-w".into(),
            "%{http_code} ".into(),
            "-o".into(),
            "/dev/null".into(),
        ]);
        args.push(url.clone());
    }
    let out = curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stderr(Stdio::null())
        .output()
        .expect("curl --next");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 000 200 ");
    assert_wrk_clean(load);
    let found = s
        .agent
        .wait_events(2, WAIT, |e| e["schema"] == "cleartap.enforcement/1");
    for e in &found {
        assert_evidence(e, &s, "tls_write_entry", "client", "curl");
    }
    // The blocked requests never reached nginx; A's did.
    assert_eq!(secret_requests_in_access_log(&s, BAD), 0);
    assert_eq!(secret_requests_in_access_log(&s, GOOD), 4);
    // curl retries a request whose reused connection died on a new connection: that retry
    // is judged and stopped too.
    let blocked = enforcements(&s.agent);
    assert!(blocked.len() >= 2, "{blocked:#?}");
    // Kill switch: [enforce] mode = "off" and SIGHUP.
    std::fs::write(
        s.dir.path("cleartap.toml"),
        with_audit_log(&s.dir, "[enforce]\nmode = \"off\"\n"),
    )
    .expect("config");
    s.agent.signal(libc::SIGHUP);
    s.agent.wait_stderr("SIGHUP: enforcement now off", WAIT);
    assert_eq!(get(s.port, BAD, "/secret").2, SECRET_BODY, "kill switch");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(enforcements(&s.agent).len(), blocked.len());
    let summary = s.agent.stop();
    let line = summary
        .iter()
        .find(|l| l.contains("enforcement: mode=off"))
        .expect("enforcement summary");
    let n = blocked.len();
    // The audit log on disk holds the same evidence, line for line.
    let audit = std::fs::read_to_string(s.dir.path("audit.jsonl")).expect("audit log");
    let audited: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect();
    assert_eq!(audited, blocked);
    assert!(line.contains("audit log: errors=0 rotations=0"), "{line}");
    assert!(
        line.contains(&format!(
            "verdicts={n} would_block=0 blocked=0 reset={n} reset_failed=0"
        )),
        "{line}"
    );
}

#[test]
fn server_side_alone_stops_the_response_and_sigkill_leaves_no_gate() {
    if !privileged() {
        return;
    }
    let metrics_port = free_port();
    let s = start_with_metrics(
        "enforce-server",
        "[enforce]\nmode = \"enforce\"\nclient_side = false\n",
        &format!("127.0.0.1:{metrics_port}"),
    );
    build_lists(&s);
    let (code, status, body) = get(s.port, BAD, "/secret");
    assert_ne!(code, 0);
    assert_eq!((status.as_str(), body.as_str()), ("000", ""));
    // nginx read and answered it; the answer never left.
    assert_eq!(secret_requests_in_access_log(&s, BAD), 1);
    assert_eq!(get(s.port, GOOD, "/secret").2, SECRET_BODY);
    let found = s
        .agent
        .wait_events(1, WAIT, |e| e["schema"] == "cleartap.enforcement/1");
    assert_evidence(&found[0], &s, "tls_read_return", "server", "nginx");
    // The counters on /metrics (published once a second).
    std::thread::sleep(Duration::from_millis(1500));
    let metrics = metrics_text(metrics_port);
    for line in [
        "cleartap_enforce_verdicts_total{action=\"reset\"} 1",
        "cleartap_enforce_verdicts_total{action=\"reset_failed\"} 0",
        "cleartap_enforce_list_updates_total{list=\"abusive_actors\"} 1",
        "cleartap_enforce_list_updates_total{list=\"sensitive_routes\"} 1",
        "cleartap_enforce_problems_total{kind=\"gate_failed\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }
    // Operators: the lists as the agent holds them, an unblock, a block by tag, the switch.
    let (ok, listed) = admin(&s, &["block", "list"]);
    assert!(ok, "{listed:#}");
    let entries = listed["entries"].as_array().expect("entries");
    let tag = redaction_tag(&s.key_file, BAD);
    let actor = entries
        .iter()
        .find(|e| e["kind"] == "actor")
        .expect("listed actor");
    assert_eq!(actor["what"], tag.as_str());
    assert_eq!(actor["listed_by"], serde_json::json!(["BOLA-1"]));
    let route = entries
        .iter()
        .find(|e| e["kind"] == "route")
        .expect("listed route");
    assert_eq!(route["what"], "GET /secret");
    assert_eq!(route["listed_by"], serde_json::json!(["DATA-1"]));
    let (ok, _) = admin(&s, &["block", "remove", actor["id"].as_str().unwrap_or("")]);
    assert!(ok);
    assert_eq!(get(s.port, BAD, "/secret").2, SECRET_BODY, "unblocked");
    let (ok, added) = admin(
        &s,
        &[
            "block",
            "add",
            "--actor",
            &tag,
            "--route",
            "GET /secret",
            "--reason",
            "ticket 42",
        ],
    );
    assert!(ok, "{added:#}");
    assert_eq!(get(s.port, BAD, "/secret").1, "000", "blocked again");
    let found = s
        .agent
        .wait_events(2, WAIT, |e| e["schema"] == "cleartap.enforcement/1");
    assert_eq!(
        found[1]["actor"]["listed_by"],
        serde_json::json!(["operator"])
    );
    // The operator's route holds on every host; DATA-1's entry for this host is found first.
    assert_eq!(
        found[1]["route"]["listed_by"],
        serde_json::json!(["DATA-1"])
    );
    assert_eq!(found[1]["route"]["listed_for_host"], "api.test");
    let (ok, unknown) = admin(
        &s,
        &["block", "add", "--actor", "[REDACTED:0000000000000000]"],
    );
    assert!(
        !ok && unknown["error"]
            .as_str()
            .is_some_and(|e| e.contains("no credential"))
    );
    let (ok, switched) = admin(&s, &["enforce", "monitor"]);
    assert!(ok && switched["mode"] == "monitor", "{switched:#}");
    assert_eq!(get(s.port, BAD, "/secret").2, SECRET_BODY, "monitor mode");
    let found = s
        .agent
        .wait_events(3, WAIT, |e| e["schema"] == "cleartap.enforcement/1");
    assert_eq!(found[2]["action"], "would_block");
    // SIGKILL: the gate and the verdicts die with the agent.
    s.agent.signal(libc::SIGKILL);
    let deadline = Instant::now() + WAIT;
    while s.agent.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(s.port, BAD, "/secret").2, SECRET_BODY, "no stale gate");
}

#[test]
fn monitor_mode_reports_and_entries_expire() {
    if !privileged() {
        return;
    }
    let s = start(
        "enforce-monitor",
        "[enforce]\nmode = \"monitor\"\nmax_ttl_secs = 3\n",
    );
    build_lists(&s);
    assert_eq!(get(s.port, BAD, "/secret").2, SECRET_BODY);
    let found = s
        .agent
        .wait_events(1, WAIT, |e| e["schema"] == "cleartap.enforcement/1");
    let e = &found[0];
    assert_eq!(e["action"], "would_block", "{e:#}");
    assert_eq!(e["mode"], "monitor");
    assert_eq!(e["gates"], serde_json::json!([]));
    assert_eq!(e["reset"]["attempted"], false);
    assert_eq!(e["reset"]["reason"], "monitor_mode");
    // The client and the server both judged the one request.
    std::thread::sleep(Duration::from_millis(300));
    let points: Vec<String> = enforcements(&s.agent)
        .iter()
        .map(|e| e["point"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(points.len(), 2, "{points:?}");
    assert!(
        points.contains(&"tls_write_entry".to_owned())
            && points.contains(&"tls_read_return".to_owned())
    );
    // Past max_ttl_secs the kernel entries no longer count.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(get(s.port, BAD, "/secret").2, SECRET_BODY);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        enforcements(&s.agent).len(),
        2,
        "expired entries made no verdict"
    );
    s.agent.stop();
}

/// (status, body) of a plain-HTTP request through the gateway with `token`.
fn through_gateway(port: u16, token: &str, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

#[test]
fn decision_service_behind_nginx_auth_request_denies_and_fails_open() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("enforce-gateway");
    let (port, decision_port) = (free_port(), free_port());
    let gateway = nginx_gateway(&dir, port, decision_port);
    let key_file = dir.path("token.key");
    let config = dir.path("cleartap.toml");
    // The kernel's own verdict at nginx's plain-HTTP read is left out: this test is about the
    // gateway's question (curl, the client, is not a process the agent follows here).
    let enforce = format!(
        "[enforce]\nmode = \"enforce\"\nserver_side = false\ndecision_listen = \"127.0.0.1:{decision_port}\"\n"
    );
    std::fs::write(&config, with_audit_log(&dir, &enforce)).expect("config");
    let agent = Agent::start(&[
        "--config",
        &config.to_string_lossy(),
        "--token-key-file",
        &key_file.to_string_lossy(),
        "--inventory-file",
        "off",
        "--metrics-listen",
        "off",
        "--pid",
        &gateway.0.id().to_string(),
    ]);
    agent.wait_stderr("decision service on http://127.0.0.1", WAIT);
    // The gateway's plain-HTTP exchanges build the lists, as TLS ones do.
    assert_eq!(through_gateway(port, GOOD, "/secret").1, SECRET_BODY);
    for id in 1..=25 {
        assert_eq!(
            through_gateway(port, BAD, &format!("/api/items/{id}")).0,
            "200"
        );
    }
    let deadline = Instant::now() + WAIT;
    while (findings_of(&agent, "DATA-1", port) == 0 || findings_of(&agent, "BOLA-1", port) == 0)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(through_gateway(port, BAD, "/secret").0, "403");
    assert_eq!(through_gateway(port, BAD, "/public").0, "200");
    assert_eq!(through_gateway(port, GOOD, "/secret").1, SECRET_BODY);
    let found = agent.wait_events(1, WAIT, |e| e["schema"] == "cleartap.enforcement/1");
    let e = &found[0];
    assert_eq!(e["action"], "blocked", "{e:#}");
    assert_eq!(e["point"], "decision_service");
    assert_eq!(e["gates"], serde_json::json!(["decision_service"]));
    assert_eq!(e["actor"]["token"], redaction_tag(&key_file, BAD).as_str());
    assert_eq!(e["actor"]["listed_by"], serde_json::json!(["BOLA-1"]));
    assert_eq!(e["route"]["template"], "/secret");
    assert_eq!(e["route"]["listed_by"], serde_json::json!(["DATA-1"]));
    let log = std::fs::read_to_string(dir.path("gateway-access.log")).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l == format!("GET /secret 403 Bearer {BAD}")),
        "{log}"
    );
    // Agent down: the gateway fails open.
    let summary = agent.stop();
    assert!(
        summary
            .iter()
            .any(|l| l.contains("decision_service_verdicts=1 decision_evidence_dropped=0")),
        "{summary:#?}"
    );
    assert_eq!(
        through_gateway(port, BAD, "/secret").1,
        SECRET_BODY,
        "fail open"
    );
}
