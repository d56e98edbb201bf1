//! Injection detection on public attack wordlists: PayloadsAllTheThings' intruder and payload
//! lists (copied into tests/corpus/payloadsallthethings, MIT) and wfuzz's injection wordlists
//! (installed by Debian's `wfuzz` package), per family; and checks that the cheap skips in
//! INJ-1 never hide what libinjection would find.
//!
//!   cargo test -p agent --test detect_wordlists -- --nocapture

mod common;

use agent::detect::{content::Bodies, rules, view::View};
use agent::event::ExchangeEvent;
use common::{T0, event, get, payloads, percent_encode, samples};
use serde::Deserialize as _;
use serde_json::Value;

/// INJ-3's kind for one request, if it fired.
fn inj3_kind(event: &Value) -> Option<String> {
    let typed: ExchangeEvent =
        agent::event::ExchangeEvent::deserialize(event.clone()).expect("event");
    let bodies = Bodies::default();
    let v = View::with_bodies(&typed, T0, &bodies.request, &bodies.response).expect("view");
    agent::detect::inject::inj3(&v).map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
}

/// PayloadsAllTheThings' template-injection fuzz list as a query value, its Log4Shell lookups as
/// a User-Agent, its CRLF list as the request path: the share INJ-3 names with the right kind.
#[test]
fn inj3_on_public_payload_lists() {
    let mut report = Vec::new();
    let mut rate = |family: &str, kind: &str, events: Vec<(String, Value)>| {
        let total = events.len();
        let missed: Vec<String> = events
            .iter()
            .filter(|(_, e)| inj3_kind(e).as_deref() != Some(kind))
            .map(|(p, _)| p.clone())
            .collect();
        let share = 100.0 * (total - missed.len()) as f64 / total as f64;
        println!(
            "INJ-3 {family}: {}/{total} ({share:.1} %)",
            total - missed.len()
        );
        for m in &missed {
            println!("  missed: {m}");
        }
        report.push((family.to_owned(), share));
    };
    rate(
        "template injection (ssti.fuzz, query value)",
        "template_injection",
        payloads("ssti.fuzz")
            .into_iter()
            .map(|p| {
                let e = event(
                    "GET",
                    &format!("/render?tpl={}", percent_encode(&p)),
                    200,
                    None,
                    "203.0.113.9",
                );
                (p, e)
            })
            .collect(),
    );
    rate(
        "JNDI lookups (Log4Shell.md, User-Agent)",
        "jndi_lookup",
        payloads("log4shell.txt")
            .into_iter()
            .map(|p| {
                let mut e = event("GET", "/", 200, None, "203.0.113.9");
                e["request"]["headers"]["user-agent"] = Value::from(p.clone());
                (p, e)
            })
            .collect(),
    );
    rate(
        "CRLF (crlfinjection.txt, path)",
        "crlf_injection",
        payloads("crlfinjection.txt")
            .into_iter()
            .map(|p| {
                let e = event("GET", &p, 200, None, "203.0.113.9");
                (p, e)
            })
            .collect(),
    );
    for (family, share) in report {
        assert!(
            share >= 90.0,
            "INJ-3 {family}: {share:.1} % detected, under 90 %"
        );
    }
}

/// libinjection's benign look-alikes through INJ-3, as query values and as User-Agents.
#[test]
fn inj3_benign_look_alikes() {
    let lines = samples("false_positives");
    let mut flagged = Vec::new();
    for line in &lines {
        let query = event(
            "GET",
            &format!("/search?q={}", percent_encode(line)),
            200,
            None,
            "203.0.113.9",
        );
        let mut header = event("GET", "/", 200, None, "203.0.113.9");
        header["request"]["headers"]["user-agent"] = Value::from(line.clone());
        if let Some(kind) = inj3_kind(&query).or_else(|| inj3_kind(&header)) {
            flagged.push(format!("{kind}: {line}"));
        }
    }
    println!(
        "INJ-3 benign look-alikes flagged: {} of {}",
        flagged.len(),
        lines.len()
    );
    for f in &flagged {
        println!("  {f}");
    }
    assert!(flagged.is_empty(), "{flagged:#?}");
}

/// PayloadsAllTheThings' intruder lists per family (command injection, directory traversal,
/// file inclusion, XSS, NoSQL), each line as a query value: the share any injection rule
/// (INJ-1, INJ-2, INJ-3) flags. Lines that are not attacks on their own (a bare `;`, `|`, `'`,
/// or a file name without any traversal) are counted as misses: the rate is what a user of
/// these lists would see. The floors are what is measured (the bar is 90 %).
#[test]
fn injection_rules_on_public_intruder_lists() {
    let mut report = Vec::new();
    for (family, file, floor) in [
        ("command injection", "command_exec.txt", 0.90),
        ("directory traversal", "directory_traversal.txt", 0.95),
        // What is missed are bare file names of applications (config.php, db.php) with no
        // traversal, which APIs also take as values.
        ("file inclusion", "jhaddix_lfi.txt", 0.95),
        ("xss", "intruders_xss.txt", 0.95),
        ("nosql", "nosql.txt", 0.80),
    ] {
        let lines = payloads(file);
        let mut missed = Vec::new();
        for line in &lines {
            if !any_injection(&percent_encode(line)) {
                missed.push(line.clone());
            }
        }
        let rate = 1.0 - missed.len() as f64 / lines.len() as f64;
        println!(
            "{family} ({file}): {}/{} ({:.1} %); missed e.g. {:?}",
            lines.len() - missed.len(),
            lines.len(),
            rate * 100.0,
            missed
                .iter()
                .take(if std::env::var_os("SHOW").is_some() {
                    400
                } else {
                    8
                })
                .collect::<Vec<_>>()
        );
        report.push((family, rate, floor));
    }
    for (family, rate, floor) in report {
        assert!(rate >= floor, "{family}: {rate:.3} below {floor}");
    }
}

/// Where Debian's `wfuzz` package (apt; the PyPI wheels do not carry them) keeps its wordlists.
const WFUZZ_INJECTIONS: &str = "/usr/share/wfuzz/wordlist/Injections";

/// Any injection rule's finding for a raw (URL-encoded) query value of the `id` parameter.
fn any_injection(raw_value: &str) -> bool {
    let e = get(&format!("/api/items?id={raw_value}"));
    let v = View::of(&e, T0).expect("view");
    rules::inj1_sqli_xss(&v).is_some()
        || rules::inj2_traversal_command_nosql(&v).is_some()
        || agent::detect::inject::inj3(&v).is_some()
}

/// wfuzz's injection wordlists, each line put into the URL as wfuzz sends it. The lists mix
/// attacks with the probes fuzzers try first (see `fuzz_fragment`): those are printed and not
/// counted. Of the rest, ≥ 90 % per list must be flagged by an injection rule.
#[test]
fn wfuzz_injection_wordlists() {
    if !std::path::Path::new(WFUZZ_INJECTIONS).is_dir() {
        let message = format!("{WFUZZ_INJECTIONS} missing (apt install wfuzz)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("skipped: {message}; `cargo xtask test` installs it");
        return;
    }
    let mut report = Vec::new();
    for file in [
        "SQL.txt",
        "XSS.txt",
        "Traversal.txt",
        "XML.txt",
        "All_attack.txt",
    ] {
        let path = format!("{WFUZZ_INJECTIONS}/{file}");
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("wordlist")).into_owned();
        let mut fragments = Vec::new();
        let mut attacks = 0;
        let mut missed = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if fuzz_fragment(line) {
                fragments.push(line.to_owned());
                continue;
            }
            attacks += 1;
            if !any_injection(&as_sent_in_url(line)) {
                missed.push(line.to_owned());
            }
        }
        let rate = 1.0 - missed.len() as f64 / attacks.max(1) as f64;
        println!(
            "wfuzz {file}: {}/{attacks} ({:.1} %); fragments not counted: {fragments:?}; missed: {missed:?}",
            attacks - missed.len(),
            rate * 100.0
        );
        assert!(attacks >= 10, "{file}: {attacks}");
        report.push((file, rate));
    }
    for (file, rate) in report {
        assert!(rate >= 0.90, "wfuzz {file}: {rate:.3} below 0.90");
    }
}

/// A fuzzer's probe rather than an attack: special characters alone however they are encoded
/// (`'`, `--`, `'%20;`, `../` excepted, `\x27`, `&#x3C;`, `\u003c`, `<>"'%;)(&+`, `?x=|`), or a lone SQL word
/// or number (`select`, `order by`, `PRINT @@variable`, `-268435455`, `TRUE`): values an API
/// receives every day.
fn fuzz_fragment(line: &str) -> bool {
    let decoded = percent_decode(line);
    let mut rest = decoded.as_str();
    let (mut chars, mut letters) = (0, 0);
    while let Some(c) = rest.chars().next() {
        let escape_len = escape_at(rest);
        rest = rest.get(escape_len.max(c.len_utf8())..).unwrap_or_default();
        if escape_len == 0 && c.is_ascii_alphanumeric() {
            letters += 1;
        }
        if !c.is_whitespace() || escape_len > 0 {
            chars += 1;
        }
    }
    let words = decoded.split_whitespace().count();
    chars <= 2
        || (letters <= 1 && !decoded.contains(".."))
        || (words <= 2
            && decoded
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " @.,_-$".contains(c)))
}

/// Length of one escape at the start of `s` (`\xNN`, `\uNNNN`, `\0`, `\t`, `&#…;`, `&lt`,
/// `#xD`), 0 when none.
fn escape_at(s: &str) -> usize {
    let b = s.as_bytes();
    match (b.first(), b.get(1)) {
        (Some(b'\\'), Some(b'x')) => 4,
        (Some(b'\\'), Some(b'u')) => 6,
        (Some(b'\\'), Some(_)) => 2,
        (Some(b'#'), Some(b'x')) => 3,
        (Some(b'&'), Some(_)) => {
            let body = b
                .iter()
                .skip(1)
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'#')
                .count();
            let semi = usize::from(b.get(1 + body) == Some(&b';'));
            if body == 0 { 0 } else { 1 + body + semi }
        }
        _ => 0,
    }
}

/// `line` as wfuzz puts it into a URL: its own `%XX` escapes stay (the server decodes them
/// once), every other byte a URL cannot carry is escaped.
fn as_sent_in_url(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    for (i, &c) in b.iter().enumerate() {
        let escape_follows = c == b'%'
            && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if escape_follows || c.is_ascii_alphanumeric() || b"-_.~".contains(&c) {
            out.push(char::from(c));
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(h)) => {
                out.push(h);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// INJ-1 skips libinjection for prose (letters, spaces, `.,!?:`, no SQL statement word): that
/// must never hide an attack libinjection would find. Checked on every line of every corpus
/// here (attacks, look-alikes, benign bodies and values).
#[test]
fn plain_prose_is_never_an_injection() {
    let mut lines = samples("");
    for file in [
        "ssti.fuzz",
        "command_exec.txt",
        "jhaddix_lfi.txt",
        "intruders_xss.txt",
        "nosql.txt",
    ] {
        lines.extend(payloads(file));
    }
    // Probes: SQL's own words that are not statements, glued into phrases with ordinary ones.
    let words = [
        "or", "and", "not", "null", "true", "false", "like", "is", "in", "between", "exists",
        "where", "from", "order", "by", "group", "limit", "case", "when", "then", "else", "end",
        "xor", "div", "mod", "admin", "user", "id", "name", "table", "a", "x",
    ];
    for a in words {
        for b in words {
            for c in ["", " or", " and", " x", ".", "!"] {
                lines.push(format!("{a} {b}{c}"));
                lines.push(format!("{a}: {b}{c} {a}"));
            }
        }
    }
    let mut checked = 0;
    for line in &lines {
        if rules::plain_prose(line) {
            checked += 1;
            assert!(
                !libinjectionrs::detect_sqli(line.as_bytes()).is_injection()
                    && !libinjectionrs::detect_xss(line.as_bytes()).is_injection(),
                "libinjection flags prose: {line}"
            );
        }
    }
    println!("prose lines checked against libinjection: {checked}");
    assert!(checked > 8_000, "{checked}");
}
