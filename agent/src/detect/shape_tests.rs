use serde_json::json;

use super::*;
use crate::detect::test_events::{T0, exchange, typed};

fn learn_from(shape: &mut EndpointShape, event: serde_json::Value, req: &[u8], res: &[u8]) {
    let typed = typed(&event);
    let v = View::with_bodies(&typed, T0, req, res).expect("request");
    shape.learn(&v);
}

#[test]
fn learns_names_types_formats_and_required_members_never_values() {
    let mut shape = EndpointShape::default();
    let mut first = exchange(
        "POST",
        "/api/users?limit=10&since=2025-01-02T03:04:05Z&email=a@example.com",
        201,
        json!({ "content-type": "application/json", "x-tenant": "acme", "x-api-key": "[REDACTED:1]" }),
    );
    first["response"]["headers"] = json!({ "content-type": "application/json; charset=utf-8" });
    learn_from(
        &mut shape,
        first,
        br#"{"name":"alice","age":31,"tags":["a"],"home":{"ip":"10.1.2.3"}}"#,
        br#"{"id":"4f7e0a52-8d6b-4c1e-9a3f-2b5c7d9e1f00","created":"2025-01-02"}"#,
    );
    let second = exchange(
        "POST",
        "/api/users?limit=20",
        400,
        json!({ "content-type": "application/json" }),
    );
    learn_from(&mut shape, second, br#"{"name":"bob","age":2.5}"#, b"");
    assert_eq!(shape.samples, 2);
    let q = |n: &str| shape.query.get(n).expect(n);
    assert_eq!(
        (q("limit").seen, q("limit").types.clone()),
        (2, vec!["integer".to_owned()])
    );
    assert_eq!(q("since").format.as_deref(), Some("date-time"));
    assert_eq!(q("email").format.as_deref(), Some("email"));
    assert_eq!(shape.headers.get("x-tenant"), Some(&1));
    assert!(!shape.headers.contains_key("content-type"));
    assert_eq!(shape.auth.get("api-key-header:x-api-key"), Some(&1));
    let body = shape.request_body.as_ref().expect("request body");
    assert_eq!(body.seen, 2);
    assert_eq!(body.properties["name"].seen, 2);
    // 31 then 2.5: a number.
    assert_eq!(body.properties["age"].types, ["number"]);
    assert_eq!(
        body.properties["tags"]
            .items
            .as_ref()
            .map(|i| i.types.clone()),
        Some(vec!["string".to_owned()])
    );
    assert_eq!(
        body.properties["home"].properties["ip"].format.as_deref(),
        Some("ipv4")
    );
    let created = &shape.responses[&201];
    assert_eq!(created.media.get("application/json"), Some(&1));
    let res = created.body.as_ref().expect("response body");
    assert_eq!(res.properties["id"].format.as_deref(), Some("uuid"));
    assert_eq!(res.properties["created"].format.as_deref(), Some("date"));
    assert_eq!(shape.responses[&400].seen, 1);
    assert_eq!(shape.workloads, ["api"]);
    // No value reaches the shape.
    let text = serde_json::to_string(&shape).expect("json");
    for value in [
        "alice",
        "bob",
        "acme",
        "example.com",
        "10.1.2.3",
        "4f7e0a52",
        "2025-01",
    ] {
        assert!(!text.contains(value), "{value} leaked: {text}");
    }
    let back: EndpointShape = serde_json::from_str(&text).expect("round trip");
    assert_eq!(back.query["since"].format, shape.query["since"].format);
}

#[test]
fn bounded_and_sampled() {
    let mut shape = EndpointShape::default();
    let many: String = (0..200).map(|i| format!("p{i}=1&")).collect();
    learn_from(
        &mut shape,
        exchange("GET", &format!("/x?{many}"), 200, json!({})),
        b"",
        b"",
    );
    assert_eq!(shape.query.len(), MAX_NAMES);
    assert_eq!(shape.truncated, 200 - MAX_NAMES as u64);
    let deep = "[".repeat(100) + &"]".repeat(100);
    let mut body = JsonShape::fresh();
    body.learn(&serde_json::from_str(&deep).expect("json"), 0);
    // Nesting stops at MAX_DEPTH, where the cut is counted.
    let mut node = &body;
    for _ in 0..MAX_DEPTH {
        node = node.items.as_deref().expect("nested");
    }
    assert_eq!((node.truncated, node.items.is_none()), (1, true));
    assert!(EndpointShape::wants_sample(1) && EndpointShape::wants_sample(64));
    assert!(!EndpointShape::wants_sample(65) && EndpointShape::wants_sample(128));
}

#[test]
fn formats() {
    for (value, format) in [
        ("user@example.org", Some("email")),
        ("2025-11-29", Some("date")),
        ("2025-11-29T10:00:00Z", Some("date-time")),
        ("2025-11-29T10:00:00", None),
        ("https://api.example.org/x", Some("uri")),
        ("192.168.0.1", Some("ipv4")),
        ("fe80::1", Some("ipv6")),
        ("12:30", None),
        ("hello", None),
    ] {
        assert_eq!(string_format(value), format, "{value}");
    }
}
