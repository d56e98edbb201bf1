use super::*;
use crate::conn::{ConnInfo, Endpoints};
use crate::protocol::{
    Exchange,
    h1::{Limits, Pairing, StreamParser},
};

#[test]
fn routes_are_path_prefixes_and_empty_means_all() {
    let routes = ["/api/".to_owned(), "/login".to_owned()];
    assert!(body_allowed(Some("/api/v1/users"), &routes));
    assert!(body_allowed(Some("/login"), &routes));
    assert!(!body_allowed(Some("/static/app.js"), &routes));
    assert!(!body_allowed(None, &routes));
    assert!(body_allowed(Some("/anything"), &[]));
}

/// Runs real bytes through the parser and pairing, then renders: the golden file pins the
/// whole event shape, so a schema change shows up as a diff to review (UPDATE_GOLDEN=1).
fn exchange() -> ConnExchange {
    let limits = Limits {
        body_prefix_bytes: 16,
        ..Limits::default()
    };
    let (mut req, mut res) = (StreamParser::new(limits), StreamParser::new(limits));
    let mut pairing = Pairing::default();
    let mut out: Vec<Exchange> = Vec::new();
    req.push(
        b"POST /api/v1/users?id=7&api_key=k3y HTTP/1.1\r\nHost: api.local\r\n\
Authorization: Bearer eyJhbGciOiJub25lIn0.e30.\r\nCookie: sid=abc\r\nX-Request-Id: r-1\r\n\
Content-Length: 17\r\n\r\n{\"name\":\"alice\"}\n",
        1_000_000,
    );
    pairing.drive(&mut req, &mut out).expect("request parses");
    res.push(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\n\
Set-Cookie: b=2\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"id\"\r\n4\r\n:42}\r\n0\r\n\r\n",
        1_250_000,
    );
    pairing.drive(&mut res, &mut out).expect("response parses");
    ConnExchange {
        conn: ConnInfo {
            tgid: 4242,
            tid: 4243,
            comm: *b"curl\0\0\0\0\0\0\0\0\0\0\0\0",
            fd: Some(5),
            role: crate::event::Role::Client,
            endpoints: Some(Endpoints {
                local: "127.0.0.1:50000".parse().expect("addr"),
                remote: "127.0.0.1:8443".parse().expect("addr"),
            }),
            library_id: 1,
            tls: true,
            cgroup_id: 4026531835,
            stream: 0x5555_0000_1000,
        },
        exchange: out.pop().expect("one exchange"),
    }
}

fn golden_workload() -> crate::enrich::workload::Workload {
    crate::enrich::workload::Workload {
        container: crate::enrich::workload::cgroup::container_of_path(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f4c1d2e_3a4b_4c5d_8e9f_0123456789ab.slice/cri-containerd-8d2f0c1b7e3a4f5d9c6b0a1e2d3f4c5b6a7e8d9c0b1a2f3e4d5c6b7a8e9f0a1b.scope",
        )
        .map(std::sync::Arc::new),
        pod: Some(std::sync::Arc::new(crate::enrich::workload::PodMeta {
            name: "checkout-api-7c9d8f6b5-x2lqz".into(),
            namespace: "shop".into(),
            uid: "0f4c1d2e-3a4b-4c5d-8e9f-0123456789ab".into(),
        })),
    }
}

fn golden_context<'a>(
    workload: &'a crate::enrich::workload::Workload,
    key: &'a TokenKey,
) -> Enrichment<'a> {
    Enrichment {
        host: "node-1",
        exe: Some("/usr/bin/curl"),
        library: Some("/usr/lib/x86_64-linux-gnu/libssl.so.3"),
        library_version: None,
        monotonic_to_unix_ns: 1_763_700_000_000_000_000,
        body_routes: &[],
        event_body_bytes: 16,
        workload,
        node: Some("worker-3"),
        key,
        credential_key: None,
    }
}

#[test]
fn exchange_event_matches_golden_file() {
    let (workload, key) = (golden_workload(), TokenKey::for_tests());
    let item = exchange();
    let event = build(&item, &golden_context(&workload, &key));
    let rendered = serde_json::to_string_pretty(&event).expect("json") + "\n";
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/exchange_event.json"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &rendered).expect("write golden");
    }
    let golden = std::fs::read_to_string(path).expect("golden file (UPDATE_GOLDEN=1 creates it)");
    assert_eq!(rendered, golden);
    // Replay reads the same JSON back into the same typed record (less the stream key, which
    // is never written).
    let mut back: ExchangeEvent<'_> = serde_json::from_str(&golden).expect("golden parses");
    back.connection.stream = event.connection.stream;
    assert_eq!(back, event);
}

#[test]
fn cached_seconds_format_like_the_time_crate() {
    let reference = |ns: i128| {
        time::OffsetDateTime::from_unix_timestamp_nanos(ns)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    };
    let mut ns: i128 = 1_763_700_000_000_000_000;
    for step in [
        1,
        7,
        999_999_999,
        1_000_000_000,
        123_456_789,
        10,
        1_500_000_000,
        86_400_000_000_000,
    ] {
        for _ in 0..50 {
            ns += step;
            assert_eq!(rfc3339(ns), reference(ns), "{ns}");
        }
    }
    for ns in [
        0,
        1,
        999_999_999,
        -1,
        -1_500_000_000,
        253_402_300_799_999_999_999,
        // Either side of the i64 fast path's bounds.
        i128::from(i64::MAX),
        i128::from(i64::MAX) + 1,
        i128::from(i64::MIN),
        i128::from(i64::MIN) - 1,
    ] {
        assert_eq!(rfc3339(ns), reference(ns), "{ns}");
    }
}

#[test]
fn time_is_rfc3339_utc() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_500_000_000), "1970-01-01T00:00:01.5Z");
}

/// Runs one request and one response through the real parser and pairing.
fn exchange_of(request: &[u8], response: &[u8]) -> ConnExchange {
    let limits = Limits::default();
    let (mut req, mut res) = (StreamParser::new(limits), StreamParser::new(limits));
    let mut pairing = Pairing::default();
    let mut out: Vec<Exchange> = Vec::new();
    req.push(request, 1_000);
    pairing.drive(&mut req, &mut out).expect("request parses");
    res.push(response, 2_000);
    pairing.drive(&mut res, &mut out).expect("response parses");
    let mut item = exchange();
    item.exchange = out.pop().expect("one exchange");
    item
}

#[test]
fn hostile_heads_are_shown_lossily_and_never_leak_credentials() {
    let (workload, key) = (golden_workload(), TokenKey::for_tests());
    let item = exchange_of(
        b"GET /h/\xc3\xa9t\xc3\xa9?q=\xc3\xa9&token=s3cret HTTP/1.1\r\nHost: a\r\nAuthorization: Basic\xc3\xa9 x\r\nX-Bin: \xff\xfe\r\n\r\n",
        b"HTTP/1.1 200 \xff\xfe\xc3\r\nSet-Cookie: \xff=\xfe\r\nContent-Length: 0\r\n\r\n",
    );
    let event = build(&item, &golden_context(&workload, &key));
    let request = event.request.as_ref().expect("request");
    assert_eq!(request.path, "/h/été");
    assert_eq!(
        request.query.as_deref(),
        Some(format!("q=é&token={}", key.marker(b"s3cret")).as_str())
    );
    assert_eq!(
        request.headers.get("authorization"),
        Some(format!("Basicé {}", key.marker(b"x")).as_str())
    );
    assert_eq!(request.headers.get("x-bin"), Some("\u{fffd}\u{fffd}"));
    let response = event.response.as_ref().expect("response");
    // httparse itself gives an empty reason when the phrase is not UTF-8.
    assert_eq!(response.reason, "");
    assert_eq!(
        response.headers.get("set-cookie"),
        Some(key.marker(b"\xff=\xfe").as_str())
    );
    let text = serde_json::to_string(&event).expect("json");
    assert!(!text.contains("s3cr") && !text.contains("\"x\""), "{text}");
    let back: ExchangeEvent<'_> = serde_json::from_str(&text).expect("replay reads it");
    assert_eq!(back.request, event.request);
}

#[test]
fn native_writer_is_serde_json_byte_for_byte() {
    let (workload, key) = (golden_workload(), TokenKey::for_tests());
    let golden = exchange();
    let hostile = exchange_of(
        b"GET /h/\xc3\xa9?q=%22%5C HTTP/1.1\r\nHost: a\\\"b\r\nX-Ctl: a\tb\r\nX-Bin: \xff\xc3\xa9\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Quote: \"\\\r\nContent-Length: 15\r\n\r\n\x01\x08\x0c\n\r\t\x1f\x7f\"\\\xc3\xa9\xe2\x80\xa8",
    );
    assert!(
        hostile
            .exchange
            .response
            .as_ref()
            .and_then(|r| r.body.as_ref())
            .is_some()
    );
    for item in [&golden, &hostile] {
        let event = build(item, &golden_context(&workload, &key));
        assert_eq!(
            crate::output::native_json(&event).expect("sonic"),
            serde_json::to_string(&event).expect("serde_json")
        );
    }
}

/// An HTTP/2 gRPC call through the real HTTP/2 parser (frames and HPACK from loona-hpack's
/// encoder): the golden file pins `stream_id`, `grpc` and the pseudo-header mapping.
fn grpc_exchange() -> ConnExchange {
    use crate::protocol::{
        ConnectionParser, Direction, ProtocolStats,
        h2::{Http2Connection, Limits as H2Limits, frame::PREFACE},
    };
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend([kind, flags]);
        out.extend(stream.to_be_bytes());
        out.extend(payload);
        out
    }
    let mut stats = ProtocolStats::default();
    let limits = H2Limits {
        body_prefix_bytes: 16,
        ..H2Limits::default()
    };
    let mut conn = Http2Connection::new(limits, &mut stats);
    let (mut cw, mut sw) = (loona_hpack::Encoder::new(), loona_hpack::Encoder::new());
    let mut out = Vec::new();
    let request = cw.encode([
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"https"),
        (b":path", b"/shop.Orders/Get"),
        (b":authority", b"orders.shop:443"),
        (b"content-type", b"application/grpc"),
        (b"authorization", b"Bearer s3cret-token"),
    ]);
    let mut egress = PREFACE.to_vec();
    egress.extend(frame(1, 4, 1, &request));
    egress.extend(frame(0, 1, 1, b"\x00\x00\x00\x00\x03\x08\x96\x01"));
    conn.push(Direction::Egress, &egress, 1_000_000, &mut out, &mut stats)
        .expect("parses");
    let head = sw.encode([
        (&b":status"[..], &b"200"[..]),
        (b"content-type", b"application/grpc"),
    ]);
    let trailers = sw.encode([
        (&b"grpc-status"[..], &b"7"[..]),
        (b"grpc-message", b"tenant%20mismatch"),
    ]);
    let mut ingress = frame(1, 4, 1, &head);
    ingress.extend(frame(0, 0, 1, b"\x00\x00\x00\x00\x00"));
    ingress.extend(frame(1, 5, 1, &trailers));
    conn.push(
        Direction::Ingress,
        &ingress,
        1_250_000,
        &mut out,
        &mut stats,
    )
    .expect("parses");
    let mut item = exchange();
    item.exchange = out.pop().expect("one exchange");
    item
}

#[test]
fn grpc_event_matches_golden_file() {
    let (workload, key) = (golden_workload(), TokenKey::for_tests());
    let item = grpc_exchange();
    let event = build(&item, &golden_context(&workload, &key));
    let rendered = serde_json::to_string_pretty(&event).expect("json") + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/grpc_event.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &rendered).expect("write golden");
    }
    let golden = std::fs::read_to_string(path).expect("golden file (UPDATE_GOLDEN=1 creates it)");
    assert_eq!(rendered, golden);
    assert!(!golden.contains("s3cret"));
    let mut back: ExchangeEvent<'_> = serde_json::from_str(&golden).expect("golden parses");
    back.connection.stream = event.connection.stream;
    assert_eq!(back, event);
    assert_eq!(
        crate::output::native_json(&event).expect("native"),
        serde_json::to_string(&event).expect("serde_json")
    );
}
