//! The native event's JSON Schema (schema/http_exchange.schema.json) against the golden event,
//! and proof that it rejects what it must. Every event of the privileged end-to-end tests is
//! also validated, by the harness, as it arrives.

use cleartap_e2e::event_schema;
use serde_json::Value;

fn golden() -> Value {
    let text = include_str!("../../agent/tests/golden/exchange_event.json");
    serde_json::from_str(text).expect("golden event")
}

#[test]
fn golden_event_is_valid() {
    let schema = event_schema();
    let event = golden();
    if let Err(e) = schema.validate(&event) {
        panic!("{e} at {}", e.instance_path());
    }
}

/// Breaks one thing in an event.
type Mutation = fn(&mut Value);

#[test]
fn schema_rejects_missing_wrong_and_extra_fields() {
    let schema = event_schema();
    let cases: [(&str, Mutation); 6] = [
        ("missing connection.tls", |e| {
            e["connection"].as_object_mut().map(|c| c.remove("tls"));
        }),
        ("role outside the enum", |e| {
            e["connection"]["role"] = "peer".into()
        }),
        ("status out of range", |e| {
            e["response"]["status"] = 42.into()
        }),
        ("bad ip", |e| {
            e["connection"]["remote"]["ip"] = "10.0.0.999".into()
        }),
        ("unknown top-level field", |e| e["extra"] = 1.into()),
        ("upper-case header name", |e| {
            e["request"]["headers"]["Host"] = "x".into();
        }),
    ];
    for (what, mutate) in cases {
        let mut event = golden();
        mutate(&mut event);
        assert!(!schema.is_valid(&event), "{what} was accepted");
    }
    // null request/response/endpoints are valid (unknown, never guessed).
    let mut event = golden();
    event["request"] = Value::Null;
    event["connection"]["local"] = Value::Null;
    assert!(schema.is_valid(&event));
}
