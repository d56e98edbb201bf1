use serde_json::{Value, json};

use super::*;
use crate::detect::{
    DetectConfig, Engine,
    content::Bodies,
    test_events::{T0, exchange},
};

#[test]
fn delays_asked_for_by_sql_payloads() {
    assert_eq!(requested_delay_ms("1 AND SLEEP(5)"), Some(5000));
    assert_eq!(requested_delay_ms("1;SELECT pg_sleep(2.5)--"), Some(2500));
    assert_eq!(requested_delay_ms("1 and sleep/**/(3)"), Some(3000));
    assert_eq!(
        requested_delay_ms("1'; WAITFOR DELAY '0:0:4'--"),
        Some(4000)
    );
    assert_eq!(requested_delay_ms("x' OR dbms_lock.sleep(1)--"), Some(1000));
    // Too short to tell from ordinary latency, absurdly long, or no delay at all.
    assert_eq!(requested_delay_ms("sleep(0.1)"), None);
    assert_eq!(requested_delay_ms("sleep(99999)"), None);
    assert_eq!(requested_delay_ms("1 OR 1=1"), None);
    assert_eq!(requested_delay_ms("/* unterminated sleep(5)"), None);
    assert_eq!(requested_delay_ms("é sleep(2) é"), Some(2000));
}

fn findings(event: &Value, bodies: &Bodies) -> Vec<Value> {
    let mut engine = Engine::new(DetectConfig::default());
    engine.inspect_json(event, T0, bodies)
}

fn inj(found: &[Value], id: &str) -> Value {
    found
        .iter()
        .find(|f| f["rule"]["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no {id} in {found:#?}"))
}

#[test]
fn time_based_sqli_confirmed_only_when_the_server_waited() {
    let path = "/items?id=1%20AND%20SLEEP(2)";
    let mut slow = exchange("GET", path, 200, json!({}));
    slow["latency_us"] = json!(2_004_000);
    let confirmed = inj(&findings(&slow, &Bodies::default()), "INJ-1");
    assert_eq!(confirmed["rule"]["confidence"], "high");
    assert_eq!(confirmed["evidence"]["requested_delay_ms"], 2000);
    assert_eq!(confirmed["evidence"]["confirmed_by"], "response_delay");
    assert_eq!(confirmed["evidence"]["latency_ms"], 2004);
    let fast = exchange("GET", path, 200, json!({}));
    let unconfirmed = inj(&findings(&fast, &Bodies::default()), "INJ-1");
    assert_eq!(unconfirmed["rule"]["confidence"], "medium");
    assert_eq!(unconfirmed["evidence"]["requested_delay_ms"], 2000);
    assert!(unconfirmed["evidence"].get("confirmed_by").is_none());
}

#[test]
fn errors_files_and_metadata_confirm() {
    let error = Bodies {
        request: Vec::new().into(),
        response: b"ERROR: You have an error in your SQL syntax near ''1''"
            .to_vec()
            .into(),
        ..Default::default()
    };
    let sqli = exchange("GET", "/items?id=1'%20OR%20'1'='1", 500, json!({}));
    let found = findings(&sqli, &error);
    let f = inj(&found, "INJ-1");
    assert_eq!(f["evidence"]["confirmed_by"], "error_in_response");
    assert_eq!(f["evidence"]["error"], "sql_error");
    assert_eq!(f["rule"]["confidence"], "high");
    let passwd = Bodies {
        request: Vec::new().into(),
        response: b"root:x:0:0:root:/root:/bin/bash\n".to_vec().into(),
        ..Default::default()
    };
    let traversal = exchange("GET", "/files?name=..%2F..%2Fetc%2Fpasswd", 200, json!({}));
    let f = inj(&findings(&traversal, &passwd), "INJ-2");
    assert_eq!(f["evidence"]["confirmed_by"], "file_contents");
    assert_eq!(f["rule"]["confidence"], "high");
    let f = inj(&findings(&traversal, &Bodies::default()), "INJ-2");
    assert!(f["evidence"].get("confirmed_by").is_none());
    assert_eq!(f["rule"]["confidence"], "medium");
    let metadata = Bodies {
        request: Vec::new().into(),
        response: b"ami-id\nhostname\ninstance-id\n".to_vec().into(),
        ..Default::default()
    };
    let ssrf = exchange(
        "GET",
        "/fetch?url=http://169.254.169.254/latest/meta-data/",
        200,
        json!({}),
    );
    let f = inj(&findings(&ssrf, &metadata), "SSRF-1");
    assert_eq!(f["evidence"]["confirmed_by"], "metadata_response");
    assert_eq!(f["rule"]["confidence"], "high");
}

#[test]
fn an_endpoint_that_is_always_slow_confirms_nothing() {
    let mut engine = Engine::new(DetectConfig::default());
    let slow = |path: &str, latency_us: u64| {
        let mut e = exchange("GET", path, 200, json!({}));
        e["latency_us"] = json!(latency_us);
        e
    };
    // The endpoint's usual answer takes 3 s.
    for i in 0..60 {
        engine.inspect_json(
            &slow(&format!("/report?id={i}"), 3_000_000),
            T0 + i,
            &Bodies::default(),
        );
    }
    let attack = "/report?id=1%20AND%20SLEEP(2)";
    let found = engine.inspect_json(&slow(attack, 3_100_000), T0 + 100, &Bodies::default());
    let f = inj(&found, "INJ-1");
    assert!(f["evidence"].get("confirmed_by").is_none(), "{f:#}");
    assert_eq!(f["rule"]["confidence"], "medium");
    // Two seconds on top of its usual three: confirmed (a new actor, so not deduplicated).
    let mut later = slow(attack, 5_100_000);
    later["connection"]["remote"]["ip"] = json!("192.0.2.99");
    let found = engine.inspect_json(&later, T0 + 200, &Bodies::default());
    let f = inj(&found, "INJ-1");
    assert_eq!(f["evidence"]["confirmed_by"], "response_delay");
    let usual = f["evidence"]["usual_latency_ms"]
        .as_u64()
        .expect("usual latency");
    assert!((2_500..=3_500).contains(&usual), "{usual}");
}

#[test]
fn reflected_script_confirms_xss_only_when_unescaped_in_html() {
    let mut xss = exchange(
        "GET",
        "/search?q=%3Cscript%3Ealert(document.domain)%3C%2Fscript%3E",
        200,
        json!({}),
    );
    xss["response"]["headers"] = json!({ "content-type": "text/html; charset=utf-8" });
    let page = |body: &str| Bodies {
        request: Vec::new().into(),
        response: body.as_bytes().to_vec().into(),
        ..Default::default()
    };
    let reflected = page("<html><p>Results for <script>alert(document.domain)</script></p>");
    let f = inj(&findings(&xss, &reflected), "INJ-1");
    assert_eq!(f["evidence"]["kind"], "xss");
    assert_eq!(f["evidence"]["confirmed_by"], "reflected_script");
    assert_eq!(f["rule"]["confidence"], "high");
    // Escaped output, or the same bytes in a JSON answer, confirm nothing.
    let escaped =
        page("<html><p>Results for &lt;script&gt;alert(document.domain)&lt;/script&gt;</p>");
    let f = inj(&findings(&xss, &escaped), "INJ-1");
    assert!(f["evidence"].get("confirmed_by").is_none(), "{f:#}");
    assert_eq!(f["rule"]["confidence"], "medium");
    xss["response"]["headers"] = json!({ "content-type": "application/json" });
    let f = inj(&findings(&xss, &reflected), "INJ-1");
    assert!(f["evidence"].get("confirmed_by").is_none(), "{f:#}");
    // An attribute payload comes back from its event handler on.
    assert!(reflected_check(
        "\" onmouseover=alert(1) x=\"",
        "<input value=\"\" onmouseover=alert(1) x=\"\">"
    ));
    assert!(!reflected_check("no construct here", "no construct here"));
}

fn reflected_check(payload: &str, body: &str) -> bool {
    reflected(payload, body)
}
