use std::borrow::Cow;

use serde_json::{Value, json};

use super::*;

fn typed(event: &Value) -> ExchangeEvent<'static> {
    use serde::Deserialize as _;
    ExchangeEvent::deserialize(event.clone()).expect("event matches the exchange schema")
}

fn assert_same(event: &ExchangeEvent<'_>) {
    let serde = serde_json::to_string(event).expect("serde");
    assert_eq!(render(event), serde);
}

/// Every field present, every optional one absent, and hostile strings.
fn full() -> Value {
    json!({
        "schema": "cleartap.http_exchange/1", "time": "2025-11-21T04:40:00.5Z", "host": "n1",
        "process": { "pid": 4294967295u32, "tid": 0, "comm": "ng\"inx\\", "exe": "/usr/sbin/nginx", "cgroup_id": u64::MAX },
        "container": { "id": "abc", "runtime": "containerd" },
        "kubernetes": { "node": "n", "namespace": "default", "pod": "p-1", "pod_uid": "u" },
        "connection": { "local": { "ip": "2001:db8::1", "port": 443 }, "remote": { "ip": "192.0.2.7", "port": 0 },
                        "role": "server", "tls": true, "library": "libssl.so.3", "library_version": "go1.21.13", "fd": -1 },
        "request": { "method": "POST", "path": "/a/\u{e9}\u{1F600}", "query": "q=\u{1}\u{1f}\u{7f}",
                     "version": "HTTP/2",
                     "headers": { "host": "x", "x-odd": "tab\there\nnew\rline\u{8}\u{c}\"q\"\\", "authorization": "Bearer [REDACTED:0011223344556677]" },
                     "body_size": 12, "body_prefix": "{\"a\":\"b\"}\u{0}", "body_missing_bytes": 3,
                     "unresolved_fields": 2, "jwt": { "alg": "none", "exp": -5, "nbf": null, "iat": 1700000000 } },
        "response": { "status": 200, "reason": "OK", "version": "HTTP/1.1", "headers": {},
                      "body_size": null, "body_prefix": "", "body_missing_bytes": 0, "unresolved_fields": 7 },
        "latency_us": 17, "duration_us": null, "stream_id": 3, "reset_code": 8,
        "grpc": { "service": "pkg.Svc", "method": "Get", "status_code": 5, "status_name": "NOT_FOUND",
                  "message": "no\nsuch", "encoding": null, "request_messages": 1, "response_messages": 0 }
    })
}

#[test]
fn every_field_as_serde_writes_it() {
    assert_same(&typed(&full()));
    let mut sparse = full();
    let fields = sparse.as_object_mut().expect("object");
    for absent in ["container", "kubernetes", "stream_id", "reset_code", "grpc"] {
        fields.remove(absent);
    }
    fields.insert("request".into(), Value::Null);
    fields.insert("response".into(), Value::Null);
    fields.insert("latency_us".into(), Value::Null);
    sparse["connection"] = json!({ "local": null, "remote": null, "role": "unknown", "tls": false,
                                   "library": null, "fd": null });
    sparse["process"]["exe"] = Value::Null;
    sparse["container"] = json!({ "id": "only" });
    sparse["kubernetes"] = json!({ "node": "only" });
    assert_same(&typed(&sparse));
    let mut no_jwt = full();
    no_jwt["request"]["jwt"] = Value::Null;
    no_jwt["request"]["query"] = Value::Null;
    no_jwt["request"]["unresolved_fields"] = json!(0);
    no_jwt["request"]["headers"] =
        json!({ "Content-Type": "a", "X-UPPER": "b", "X-\u{c9}T\u{1}\"Q\\": "c" });
    assert_same(&typed(&no_jwt));
}

/// Strings of every byte class at every offset from the 8-byte scan's word boundaries.
#[test]
fn strings_escape_as_serde_escapes_them() {
    let specials = [
        "\u{0}",
        "\u{1f}",
        "\"",
        "\\",
        "\n",
        "\t",
        "\u{8}",
        "\u{c}",
        "\r",
        "\u{7f}",
        "é",
        "\u{1F600}",
        " ",
        "a",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..5000 {
        let len = usize::try_from(next() % 40).unwrap_or(0);
        let mut s = String::new();
        for _ in 0..len {
            let pick = usize::try_from(next() % specials.len() as u64).unwrap_or(0);
            s.push_str(specials.get(pick).copied().unwrap_or("a"));
        }
        let mut w = Writer(String::new());
        w.string(&s);
        assert_eq!(w.0, serde_json::to_string(&s).expect("serde"), "{s:?}");
    }
}

#[test]
fn escape_scan_flags_exactly_the_bytes_serde_escapes() {
    for byte in 0u8..=255 {
        let word = u64::from_le_bytes([b'a', b'b', byte, b'c', b'd', b'e', b'f', b'g']);
        assert_eq!(needs_escape(word), escape_of(byte).is_some(), "{byte:#x}");
    }
}

/// Every length around the word sizes, with one byte that needs escaping at every position
/// (or none): the word reads must cover each byte exactly as a byte scan does.
#[test]
fn clean_check_covers_every_byte_at_every_length() {
    for len in 0..=40 {
        for bad in [b'"', b'\\', b'\n', 0u8, 0x1f] {
            for at in (0..len).map(Some).chain([None]) {
                let mut bytes = vec![b'a'; len];
                if let Some(slot) = at.and_then(|at| bytes.get_mut(at)) {
                    *slot = bad;
                }
                let expected = bytes.iter().all(|&b| escape_of(b).is_none());
                assert_eq!(is_clean(&bytes), expected, "len {len}, {bad:#x} at {at:?}");
            }
        }
    }
}

/// Live events keep header names as sent (`Content-Type`); both writers lower them.
#[test]
fn header_names_as_sent_are_written_lower_case() {
    let mut event = typed(&full());
    let mut headers = Headers::new();
    for (name, value) in [
        ("Content-Type", "text/html"),
        ("X-\u{c9}T\u{1}\"Q\\", "v"),
        (
            "ALLCAPS-NAME-THAT-IS-LONGER-THAN-SIXTY-FOUR-BYTES-TO-LEAVE-THE-STACK-BUFFER",
            "w",
        ),
    ] {
        headers.push(Cow::Borrowed(name), Cow::Borrowed(value));
    }
    if let Some(response) = event.response.as_mut() {
        response.headers = headers;
    }
    assert_same(&event);
    assert!(render(&event).contains(r#""content-type":"text/html""#));
}
