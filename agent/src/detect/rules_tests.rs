//! One positive and one or more negative cases per rule, benign look-alikes included.

use serde_json::{Value, json};

use super::*;
use crate::classify::{card_brand, luhn};
use crate::detect::test_events::{T0, exchange};

fn fires(rule: fn(&View) -> Option<Value>, event: &Value) -> Option<Value> {
    let typed = crate::detect::test_events::typed(event);
    rule(&View::of(&typed, T0).expect("view"))
}

#[test]
fn auth1_alg_none_accepted_only() {
    let mut e = exchange("GET", "/me", 200, json!({}));
    e["request"]["jwt"] = json!({ "alg": "none", "exp": null, "nbf": null, "iat": null });
    assert_eq!(
        fires(auth1_jwt_alg, &e),
        Some(json!({ "jwt_alg": "none", "status": 200 }))
    );
    e["request"]["jwt"]["alg"] = Value::Null;
    assert!(fires(auth1_jwt_alg, &e).is_some(), "missing alg");
    e["response"]["status"] = 401.into();
    assert_eq!(
        fires(auth1_jwt_alg, &e),
        None,
        "rejected: the API did its job"
    );
    e["response"]["status"] = 200.into();
    e["request"]["jwt"]["alg"] = "RS256".into();
    assert_eq!(fires(auth1_jwt_alg, &e), None);
}

#[test]
fn auth2_expired_accepted_with_skew() {
    let mut e = exchange("GET", "/me", 200, json!({}));
    let now = T0 / 1000;
    e["request"]["jwt"] = json!({ "alg": "RS256", "exp": now - 3600, "nbf": null, "iat": null });
    assert_eq!(
        fires(auth2_jwt_time, &e).map(|v| v["problem"].clone()),
        Some("expired".into())
    );
    e["request"]["jwt"]["exp"] = (now - 30).into();
    assert_eq!(fires(auth2_jwt_time, &e), None, "within clock skew");
    e["request"]["jwt"]["exp"] = (now + 3600).into();
    e["request"]["jwt"]["nbf"] = (now + 7200).into();
    assert_eq!(
        fires(auth2_jwt_time, &e).map(|v| v["problem"].clone()),
        Some("not_yet_valid".into())
    );
}

#[test]
fn auth5_credentials_in_url_and_basic_over_plaintext() {
    let e = exchange(
        "GET",
        "/x?user=a&password=[REDACTED:0011223344556677]",
        200,
        json!({}),
    );
    assert_eq!(
        fires(auth5_credentials_exposed, &e),
        Some(json!({ "problem": "credentials_in_url", "parameters": ["password"] }))
    );
    let mut basic = exchange(
        "GET",
        "/x",
        200,
        json!({ "authorization": "Basic [REDACTED:00]" }),
    );
    assert_eq!(
        fires(auth5_credentials_exposed, &basic),
        None,
        "Basic over TLS is fine"
    );
    basic["connection"]["tls"] = false.into();
    assert!(fires(auth5_credentials_exposed, &basic).is_some());
    assert_eq!(
        fires(
            auth5_credentials_exposed,
            &exchange("GET", "/x?q=1", 200, json!({}))
        ),
        None
    );
}

#[test]
fn data2_validated_numbers_only() {
    let card = exchange("GET", "/pay?card=4111%201111%201111%201111", 200, json!({}));
    assert_eq!(
        fires(data2_sensitive_in_url, &card),
        Some(json!({ "kinds": ["card:visa"] }))
    );
    let ssn = exchange("GET", "/people/078-05-1120", 200, json!({}));
    assert_eq!(
        fires(data2_sensitive_in_url, &ssn),
        Some(json!({ "kinds": ["ssn"] }))
    );
    // A 16-digit order number that fails Luhn, a bad SSN area, a timestamp.
    for path in [
        "/orders/4111111111111112",
        "/people/666-05-1120",
        "/t?ts=1763700000123",
    ] {
        assert_eq!(
            fires(
                data2_sensitive_in_url,
                &exchange("GET", path, 200, json!({}))
            ),
            None,
            "{path}"
        );
    }
}

#[test]
fn inj1_libinjection_sqli_and_xss_not_benign_words() {
    let sqli = exchange(
        "GET",
        "/items?id=1%27%20OR%20%271%27%3D%271",
        200,
        json!({}),
    );
    assert_eq!(
        fires(inj1_sqli_xss, &sqli).map(|v| v["kind"].clone()),
        Some("sqli".into())
    );
    let xss = exchange(
        "GET",
        "/s?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        200,
        json!({}),
    );
    assert_eq!(
        fires(inj1_sqli_xss, &xss).map(|v| v["kind"].clone()),
        Some("xss".into())
    );
    // A product search containing "select", an apostrophe in a name.
    for q in [
        "/search?q=select+a+chair",
        "/search?q=O%27Brien",
        "/search?q=drop+shipping+union+jobs",
    ] {
        assert_eq!(
            fires(inj1_sqli_xss, &exchange("GET", q, 200, json!({}))),
            None,
            "{q}"
        );
    }
}

#[test]
fn inj1_reads_every_location_decoded() {
    let label = |path: &str, headers: Value| {
        fires(inj1_sqli_xss, &exchange("GET", path, 200, headers)).map(|v| {
            format!(
                "{} {}",
                v["kind"].as_str().unwrap_or(""),
                v["input"].as_str().unwrap_or("")
            )
        })
    };
    // sqlmap's header and cookie injection points, a parameter name, a path segment, and a
    // value URL-encoded twice.
    assert_eq!(
        label(
            "/a",
            json!({ "user-agent": "Mozilla/5.0' AND 1234=1234 AND 'x'='x" })
        )
        .as_deref(),
        Some("sqli header.user-agent")
    );
    assert_eq!(
        label("/a", json!({ "referer": "x\" OR 1=1 -- " })).as_deref(),
        Some("sqli header.referer")
    );
    assert_eq!(
        label(
            "/a",
            json!({ "cookie": "theme=dark; id=1%27%20OR%20%271%27%3D%271" })
        )
        .as_deref(),
        Some("sqli cookie.id")
    );
    assert_eq!(
        label("/a?%3Cscript%3Ealert(1)%3C%2Fscript%3E=1", json!({})).as_deref(),
        Some("xss query_name")
    );
    assert_eq!(
        label("/users/1%27%20OR%20%271%27%3D%271/orders", json!({})).as_deref(),
        Some("sqli path[1]")
    );
    assert_eq!(
        label("/s?q=1%2527%2520OR%2520%25271%2527%253D%25271", json!({})).as_deref(),
        Some("sqli query.q")
    );
    // Browsers' headers: structured ones are never read; a User-Agent without a quote, `=`,
    // comment or call never reaches libinjection.
    assert_eq!(
        label(
            "/a",
            json!({
                "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/135.0.0.0 Safari/537.36",
                "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                "accept-language": "en-US,en;q=0.9",
                "cookie": "session=07c5e47cc16c8f4e21021383c3c4aaa1; theme=dark",
            })
        ),
        None
    );
    assert!(!header_may_inject(
        "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101"
    ));
    assert!(header_may_inject("1 AND SLEEP(5)"));
}

#[test]
fn inj1_multi_line_text_is_judged_line_by_line() {
    // Source code in a JSON field: strings, operators and calls on every line.
    let code =
        "if fmt_base == 'n':\n    x = self._dump('-', a, alo, ahi)\nreturn '%' in scope_id\n";
    assert_eq!(multi_line_injection(code), None);
    let html =
        "<p>Nice</p>\n<p>See <a href=\"https://shop.example/\">the shop</a></p>\n<p>5 stars</p>";
    assert_eq!(multi_line_injection(html), None);
    // An attack spread over lines is still found on its own line.
    let sqli = "note\n1' UNION SELECT password FROM users -- \nthanks";
    assert_eq!(multi_line_injection(sqli).map(|(k, _, _)| k), Some("sqli"));
    let xss = "hello\n<img src=x onerror=alert(1)>\nbye";
    assert_eq!(multi_line_injection(xss).map(|(k, _, _)| k), Some("xss"));
    assert!(script_construct("<svg/onload = alert(1)>"));
    assert!(!script_construct("the only one= here"));
}

#[test]
fn inj2_kinds_and_benign_look_alikes() {
    let kinds = [
        ("/files?name=..%2F..%2Fetc%2Fpasswd", "path_traversal"),
        ("/static/..%252f..%252fetc/passwd", "path_traversal"),
        (
            "/ping?host=8.8.8.8%3Bcat%20%2Fetc%2Fshadow",
            "command_injection",
        ),
        ("/ping?host=%60id%60", "command_injection"),
        ("/users?name[$ne]=x", "nosql_operator"),
    ];
    for (path, kind) in kinds {
        let e = exchange("GET", path, 200, json!({}));
        assert_eq!(
            fires(inj2_traversal_command_nosql, &e).map(|v| v["kind"].clone()),
            Some(kind.into()),
            "{path}"
        );
    }
    for path in [
        "/docs/a.b/c",
        "/q?text=rock+%26+roll",
        "/q?price=%243",
        "/q?note=see+you+later;+bye",
    ] {
        assert_eq!(
            fires(
                inj2_traversal_command_nosql,
                &exchange("GET", path, 200, json!({}))
            ),
            None,
            "{path}"
        );
    }
}

#[test]
fn ssrf1_internal_targets_only() {
    let cases = [
        (
            "/fetch?url=http://169.254.169.254/latest/meta-data/",
            Some("cloud_metadata"),
        ),
        (
            "/fetch?url=http%3A%2F%2Flocalhost%3A8080%2Fadmin",
            Some("loopback"),
        ),
        ("/fetch?target=10.1.2.3", Some("private")),
        ("/fetch?url=https://example.com/a.png", None),
        ("/fetch?version=10.1.2", None),
        ("/fetch?name=localhostname", None),
    ];
    for (path, want) in cases {
        let got = fires(ssrf1_internal_url, &exchange("GET", path, 200, json!({})));
        assert_eq!(
            got.map(|v| v["target"].clone()),
            want.map(Value::from),
            "{path}"
        );
    }
}

#[test]
fn scan1_and_cfg2() {
    let scanner = exchange(
        "GET",
        "/",
        404,
        json!({ "user-agent": "sqlmap/1.7.2#stable (https://sqlmap.org)" }),
    );
    assert_eq!(
        fires(scan1_scanner, &scanner),
        Some(json!({ "scanner": "sqlmap" }))
    );
    assert_eq!(
        fires(scan1_scanner, &exchange("GET", "/", 200, json!({}))),
        None
    );
    let mut cors = exchange("GET", "/me", 200, json!({}));
    cors["response"]["headers"] =
        json!({ "access-control-allow-origin": "*", "access-control-allow-credentials": "true" });
    assert!(fires(cfg2_cors, &cors).is_some());
    cors["response"]["headers"]["access-control-allow-credentials"] = "false".into();
    assert_eq!(fires(cfg2_cors, &cors), None);
}

#[test]
fn luhn_and_brands() {
    assert!(luhn(b"79927398713"));
    assert!(!luhn(b"79927398710"));
    assert_eq!(card_brand("5555 5555 5555 4444"), Some("mastercard"));
    assert_eq!(card_brand("378282246310005"), Some("amex"));
    assert_eq!(
        card_brand("1234567812345670"),
        None,
        "Luhn-valid but no issuer"
    );
}

#[test]
fn multipart_fields_are_locations() {
    let body: &[u8] = b"--b0undary\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n1' OR '1'='1\r\n--b0undary\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"..%2f..%2fetc%2fpasswd\"\r\n\r\nGIF89a\r\n--b0undary--\r\n";
    let event = exchange(
        "POST",
        "/api/upload",
        200,
        json!({ "content-type": "multipart/form-data; boundary=b0undary" }),
    );
    let typed = crate::detect::test_events::typed(&event);
    let v = View::with_bodies(&typed, T0, body, b"").expect("view");
    let sqli = inj1_sqli_xss(&v).expect("INJ-1");
    assert_eq!(sqli["input"], "body.multipart.title");
    let traversal = inj2_traversal_command_nosql(&v).expect("INJ-2");
    assert_eq!(traversal["kind"], "path_traversal");
    assert_eq!(traversal["input"], "body.multipart.upload.filename");
}
