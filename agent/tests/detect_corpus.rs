//! Detection quality on public corpora: libinjection's SQLi/XSS attack samples (detection rate,
//! printed) and its list of benign strings that fool naive detectors (false positives,
//! printed), each sent as a query parameter through INJ-1; and a benign API traffic corpus that
//! must produce no finding at all with every rule on.
//!
//!   cargo test -p agent --test detect_corpus -- --nocapture

mod common;

use agent::detect::{DetectConfig, Engine, content::Bodies, rules, view::View};
use agent::event::ExchangeEvent;
use common::{T0, event, get, payloads, percent_encode, samples};
use serde::Deserialize as _;
use serde_json::Value;

fn inj1_hits(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|line| {
            let e = get(&format!("/search?q={}", percent_encode(line)));
            View::of(&e, T0).is_some_and(|v| rules::inj1_sqli_xss(&v).is_some())
        })
        .count()
}

#[test]
fn libinjection_attack_samples_detection_rate() {
    for (family, floor) in [("sqli-", 0.95), ("xss-", 0.90)] {
        let lines = samples(family);
        let hits = inj1_hits(&lines);
        let rate = hits as f64 / lines.len() as f64;
        println!(
            "INJ-1 on libinjection {family}*: {hits}/{} detected ({:.1}%)",
            lines.len(),
            rate * 100.0
        );
        assert!(lines.len() > 100, "corpus missing");
        assert!(
            rate >= floor,
            "{family}: detection rate {rate:.3} below {floor}"
        );
    }
}

#[test]
fn libinjection_benign_look_alikes_false_positives() {
    let lines = samples("false_positives");
    let hits = inj1_hits(&lines);
    println!(
        "INJ-1 on libinjection false_positives.txt: {hits}/{} flagged",
        lines.len()
    );
    assert!(lines.len() > 50);
    assert!(
        hits * 20 <= lines.len(),
        "more than 5% of the benign look-alikes flagged: {hits}"
    );
}

/// Ordinary API traffic: CRUD by several users, searches with SQL-ish words, names with
/// apostrophes, pagination, dates, 16-digit order numbers that fail Luhn, UUIDs, login
/// failures well under the brute-force bar. Every rule on; no finding may come out.
fn benign_corpus() -> Vec<Value> {
    let mut out = Vec::new();
    let words = [
        "select a chair",
        "drop-down menu",
        "union station",
        "O'Brien",
        "insert coin",
        "where is my order",
        "1=1 puzzle book",
        "rock & roll",
        "<3 mugs",
        "script writing",
        "java update",
        "C++ primer",
        "50% off",
        "table/desk",
        "grep tips",
    ];
    let users: Vec<String> = (0..12).map(|u| format!("{:016x}", 0x1000 + u)).collect();
    for (u, token) in users.iter().enumerate() {
        let ip = format!("198.51.100.{}", u + 1);
        for i in 0..8 {
            let id = u * 100 + i;
            out.push(event(
                "GET",
                &format!("/api/v2/products/{id}"),
                200,
                Some(token),
                &ip,
            ));
            out.push(event(
                "GET",
                &format!(
                    "/api/v2/search?q={}&page={}&limit=50",
                    percent_encode(words[(u + i) % words.len()]),
                    i + 1
                ),
                200,
                Some(token),
                &ip,
            ));
        }
        out.push(event(
            "GET",
            "/api/v2/orders/4111111111111112?since=2024-05-01",
            200,
            Some(token),
            &ip,
        ));
        out.push(event(
            "PUT",
            &format!("/api/v2/users/{}", 1_234_567 + u as u64),
            204,
            Some(token),
            &ip,
        ));
        out.push(event(
            "GET",
            "/api/v2/carts/123e4567-e89b-12d3-a456-426614174000",
            200,
            Some(token),
            &ip,
        ));
        out.push(event(
            "DELETE",
            &format!("/api/v2/carts/{u}/items/7"),
            204,
            Some(token),
            &ip,
        ));
        out.push(event("POST", "/api/v2/login", 401, None, &ip));
        out.push(event("POST", "/api/v2/login", 200, None, &ip));
        out.push(event("GET", "/api/v2/missing", 404, Some(token), &ip));
        out.push(event("GET", "/healthz", 200, None, "10.0.0.1"));
        out.push(event("GET", "/static/app.9f3c2b1a.js", 200, None, &ip));
        out.push(event(
            "GET",
            "/api/v2/redirect?next=%2Faccount%2Fsettings",
            302,
            Some(token),
            &ip,
        ));
        out.push(event(
            "GET",
            "/api/v2/avatar?url=https%3A%2F%2Fcdn.example.com%2Fa.png",
            200,
            Some(token),
            &ip,
        ));
    }
    out
}

#[test]
fn benign_api_traffic_produces_no_findings() {
    let mut engine = Engine::new(DetectConfig::default());
    let corpus = benign_corpus();
    let mut findings = Vec::new();
    for (i, e) in corpus.iter().enumerate() {
        let e: ExchangeEvent<'_> =
            agent::event::ExchangeEvent::deserialize(e.clone()).expect("exchange event");
        findings.extend(engine.inspect(&e, T0 + i as i64 * 50, &Bodies::default()));
    }
    println!(
        "benign API corpus: {} exchanges, {} findings",
        corpus.len(),
        findings.len()
    );
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(engine.stats.exchanges_judged as usize, corpus.len());
}

/// INJ-1 skips libinjection for values made only of letters, digits and `_`: that must
/// never hide an attack libinjection would find. Checked on every corpus line of that shape,
/// and on keyword-glued tokens built to probe it.
#[test]
fn plain_tokens_are_never_injections() {
    let mut probes: Vec<String> = ["sqli-", "xss-", "false_positives"]
        .iter()
        .flat_map(|f| samples(f))
        .filter(|l| rules::plain_token(l))
        .collect();
    let words = [
        "1",
        "0x1",
        "or",
        "and",
        "union",
        "select",
        "sleep",
        "xor",
        "1e1",
        "not",
        "null",
        "true",
        "0",
        "_",
        "admin",
        "benchmark",
        "waitfor",
        "delay",
        "having",
        "script",
        "javascript",
        "onerror",
        "alert",
        "svg",
        "from",
        "where",
        "char",
        "exec",
        "drop",
    ];
    for a in words {
        for b in words {
            for c in words {
                probes.push(format!("{a}{b}{c}"));
                probes.push(format!("{a}_{b}_{c}"));
            }
        }
    }
    let mut checked = 0;
    for p in probes.iter().filter(|p| rules::plain_token(p)) {
        checked += 1;
        assert!(
            !libinjectionrs::detect_sqli(p.as_bytes()).is_injection(),
            "libinjection finds SQLi in plain token {p:?}"
        );
        assert!(
            !libinjectionrs::detect_xss(p.as_bytes()).is_injection(),
            "libinjection finds XSS in plain token {p:?}"
        );
    }
    println!("plain tokens checked against libinjection: {checked}");
    assert!(checked > 20_000, "{checked}");
}

/// One request of tests/corpus/benign/benign_api.jsonl.gz as an event; each from its own
/// client address so volume rules see ordinary traffic.
fn benign_event(request: &Value, i: usize) -> Value {
    let path = request["path"].as_str().expect("path");
    let query = request.get("query").cloned().unwrap_or(Value::Null);
    let body = request["body"].as_str().unwrap_or("");
    let mut e = event(
        request["method"].as_str().expect("method"),
        path,
        200,
        None,
        &format!("203.0.{}.{}", (i / 250) % 250, i % 250 + 1),
    );
    e["request"]["query"] = query;
    e["request"]["headers"] = request["headers"].clone();
    e["request"]["body_size"] = Value::from(body.len());
    e
}

/// ≥ 10,000 ordinary API requests built from real-world values (generate.py beside the corpus
/// says which): searches with quotes and SQL words, names with apostrophes, rich text with
/// HTML, file paths, code in JSON, URLs in parameters, non-ASCII text, real browsers'
/// User-Agents, cookies and referers. Every injection rule reads every location; at most
/// 0.1 % may be flagged.
fn benign_real_world_requests() -> Vec<Value> {
    use std::io::Read as _;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/benign/benign_api.jsonl.gz"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("benign corpus"))
        .read_to_string(&mut text)
        .expect("gzip");
    let requests: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("request"))
        .collect();
    assert!(requests.len() >= 10_000, "{}", requests.len());
    requests
}

#[test]
fn benign_real_world_corpus_false_positive_rate() {
    let requests = benign_real_world_requests();
    let mut flagged: Vec<(String, String)> = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let e = benign_event(request, i);
        let typed: ExchangeEvent<'_> = agent::event::ExchangeEvent::deserialize(e).expect("event");
        let body = request["body"].as_str().unwrap_or("").as_bytes();
        let bodies = Bodies::from_raw(body, b"", None);
        let v = View::with_bodies(&typed, T0, &bodies.request, &bodies.response).expect("view");
        let hits = [
            ("INJ-1", rules::inj1_sqli_xss(&v)),
            ("INJ-2", rules::inj2_traversal_command_nosql(&v)),
            ("INJ-3", agent::detect::inject::inj3(&v)),
            ("SSRF-1", rules::ssrf1_internal_url(&v)),
        ];
        for (rule, hit) in hits {
            if let Some(evidence) = hit {
                flagged.push((rule.to_owned(), format!("{evidence} in {request}")));
            }
        }
    }
    println!(
        "benign real-world corpus: {} requests, {} flagged ({:.3}%)",
        requests.len(),
        flagged.len(),
        flagged.len() as f64 * 100.0 / requests.len() as f64
    );
    for (rule, what) in flagged.iter().take(20) {
        println!("  {rule}: {}", what.chars().take(400).collect::<String>());
    }
    assert!(
        flagged.len() * 1000 <= requests.len(),
        "more than 0.1% of the benign corpus flagged: {}",
        flagged.len()
    );
}

/// sqlmap's requests at --level 3 --risk 2, rendered by tests/corpus/sqlmap/render.py from the
/// installed PyPI sqlmap (its GPL data is not copied into this repository). Needs a python
/// that imports sqlmap: CLEARTAP_TEST_PYTHON (`cargo xtask test` makes one), else python3.
fn sqlmap_requests() -> Option<Vec<Value>> {
    let python = std::env::var("CLEARTAP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/sqlmap/render.py");
    let out = std::process::Command::new(&python).arg(script).output();
    let why = match out {
        Ok(o) if o.status.success() => {
            return Some(
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("rendered request"))
                    .collect(),
            );
        }
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    let message = format!("sqlmap corpus unavailable ({python} {script}): {why}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("skipped: {message}; `cargo xtask test` installs sqlmap");
    None
}

/// Every sqlmap request as the `id` query value: the share INJ-1 reports as SQL injection, per
/// technique (boolean, error, inline, stacked, time-based, UNION); each must be ≥ 90 %.
#[test]
fn sqlmap_requests_detected_per_technique() {
    let Some(requests) = sqlmap_requests() else {
        return;
    };
    let mut per: std::collections::BTreeMap<String, (usize, usize, Vec<String>)> =
        std::collections::BTreeMap::new();
    for r in &requests {
        let value = r["value"].as_str().expect("value");
        let e = get(&format!("/items?id={}", percent_encode(value)));
        let v = View::of(&e, T0).expect("view");
        let hit = rules::inj1_sqli_xss(&v).is_some_and(|f| f["kind"] == "sqli");
        let entry = per
            .entry(r["technique"].as_str().expect("technique").to_owned())
            .or_default();
        entry.0 += 1;
        if hit {
            entry.1 += 1;
        } else if entry.2.len() < 3 {
            entry.2.push(value.to_owned());
        }
    }
    assert!(per.len() >= 5, "{per:?}");
    for (technique, (total, hits, missed)) in &per {
        let rate = *hits as f64 / *total as f64;
        println!(
            "INJ-1 on sqlmap {technique}: {hits}/{total} ({:.1} %); missed e.g. {missed:?}",
            rate * 100.0
        );
        assert!(rate >= 0.90, "{technique}: {rate:.3} below 0.90");
    }
}

/// The engine judges INJ-1/2/3 in one walk of the inputs and skips values each rule found clean
/// before at the same place: its findings must be exactly the three rules' own, alone, on the
/// benign real-world corpus with attack samples planted in its values (query, cookie, header),
/// every request judged twice so the second pass reads remembered values.
#[test]
fn shared_input_walk_finds_what_each_rule_finds_alone() {
    let requests = benign_real_world_requests();
    let mut attacks = samples("sqli-");
    attacks.extend(samples("xss-"));
    for file in [
        "directory_traversal.txt",
        "command_exec.txt",
        "ssti.fuzz",
        "log4shell.txt",
        "nosql.txt",
        "crlfinjection.txt",
    ] {
        attacks.extend(payloads(file));
    }
    // Included files by URL (INJ-3 judges them by the parameter's name), then every tenth
    // sample: the corpus has room for 2,400 attacks.
    let attacks: Vec<String> = ["http://evil.example/shell.txt", "ftp://10.0.0.1/x"]
        .map(str::to_owned)
        .into_iter()
        .chain(attacks.into_iter().step_by(10))
        .collect();
    // Each attack in five places in a row: a structured header (INJ-1/2 skip it: clean there),
    // a custom header, a cookie, an ordinary and an include-named parameter. A value remembered
    // clean at one place must not pass unjudged at another.
    let mut events: Vec<Value> = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let mut e = benign_event(request, i);
        if let Some(attack) = attacks.get(i / 5) {
            let query = |name: &str| Value::from(format!("{name}={}", percent_encode(attack)));
            match i % 5 {
                0 => e["request"]["headers"]["accept-language"] = Value::from(attack.as_str()),
                1 => e["request"]["headers"]["x-note"] = Value::from(attack.as_str()),
                2 => e["request"]["headers"]["cookie"] = Value::from(format!("s={attack}")),
                3 => e["request"]["query"] = query("q"),
                _ => e["request"]["query"] = query("file"),
            }
        }
        events.push(e);
    }
    let mut engine = Engine::new(DetectConfig::default());
    let mut found = 0;
    for round in 0..2 {
        for (i, (e, request)) in events.iter().zip(&requests).enumerate() {
            let typed: ExchangeEvent<'_> =
                agent::event::ExchangeEvent::deserialize(e.clone()).expect("event");
            let body = request["body"].as_str().unwrap_or("").as_bytes();
            let bodies = Bodies::from_raw(body, b"", None);
            let v = View::with_bodies(&typed, T0, &bodies.request, &bodies.response).expect("view");
            let alone: Vec<(&str, Value)> = [
                ("INJ-1", rules::inj1_sqli_xss(&v)),
                ("INJ-2", rules::inj2_traversal_command_nosql(&v)),
                ("INJ-3", agent::detect::inject::inj3(&v)),
            ]
            .into_iter()
            .filter_map(|(id, hit)| Some((id, hit?)))
            .collect();
            let verdict = engine.judge_request(&typed, T0, &bodies).expect("judged");
            let shared: Vec<(&str, Value)> = verdict
                .hits
                .into_iter()
                .filter(|(id, _)| id.as_str().starts_with("INJ-"))
                .map(|(id, evidence)| (id.as_str(), evidence))
                .collect();
            assert_eq!(shared, alone, "round {round}, request {i}: {e}");
            found += alone.len();
        }
    }
    println!(
        "{} requests × 2, {} attacks planted, {found} INJ findings, equal",
        events.len(),
        attacks.len()
    );
    assert!(
        found > 2 * attacks.len().min(events.len() / 2) / 2,
        "{found}"
    );
}
