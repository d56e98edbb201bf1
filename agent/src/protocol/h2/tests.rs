//! Connections built frame by frame with a real HPACK encoder (loona-hpack): streams,
//! CONTINUATION, padding, gRPC trailers, resets, a late attach and a gap.

use super::*;
use crate::protocol::ProtocolStats;

struct Wire {
    encoder: loona_hpack::Encoder<'static>,
}

impl Wire {
    fn new() -> Self {
        Self {
            encoder: loona_hpack::Encoder::new(),
        }
    }

    fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        self.encoder
            .encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

fn settings() -> Vec<u8> {
    frame(frame::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])
}

struct Conn {
    parser: Http2Connection,
    stats: ProtocolStats,
    out: Vec<Exchange>,
    ts: u64,
}

impl Conn {
    fn new() -> Self {
        let mut stats = ProtocolStats::default();
        let parser = Http2Connection::new(Limits::default(), &mut stats);
        Self {
            parser,
            stats,
            out: Vec::new(),
            ts: 0,
        }
    }

    fn push(&mut self, direction: Direction, bytes: &[u8]) {
        self.ts += 1000;
        self.parser
            .push(direction, bytes, self.ts, &mut self.out, &mut self.stats)
            .expect("never errs");
    }

    fn close(&mut self) {
        self.parser.close(&mut self.out, &mut self.stats);
    }
}

const C: Direction = Direction::Egress;
const S: Direction = Direction::Ingress;

fn req(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "GET".into()),
        (":scheme", "https".into()),
        (":authority", "api.local".into()),
        (":path", path.into()),
        ("user-agent", "curl/7.88.1".into()),
        ("authorization", "Bearer abc.def".into()),
    ]
}

fn encode(wire: &mut Wire, fields: &[(&'static str, String)]) -> Vec<u8> {
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    wire.block(&pairs)
}

#[test]
fn concurrent_streams_pair_by_id_and_complete_at_end_stream() {
    let (mut cw, mut sw) = (Wire::new(), Wire::new());
    let mut c = Conn::new();
    // The client (this process) writes the preface, SETTINGS and two requests at once.
    let mut first = PREFACE.to_vec();
    first.extend(settings());
    first.extend(frame(
        frame::HEADERS,
        frame::END_HEADERS | frame::END_STREAM,
        1,
        &encode(&mut cw, &req("/a")),
    ));
    first.extend(frame(
        frame::HEADERS,
        frame::END_HEADERS | frame::END_STREAM,
        3,
        &encode(&mut cw, &req("/b?x=1")),
    ));
    c.push(C, &first);
    c.push(S, &settings());
    // Stream 3 answered first; stream 1's response head comes alone, then its body.
    let res = |status: &str| {
        vec![
            (":status", status.to_string()),
            ("content-type", "text/plain".into()),
        ]
    };
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            3,
            &encode(&mut sw, &res("404")),
        ),
    );
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS,
            1,
            &encode(&mut sw, &res("200")),
        ),
    );
    assert_eq!(c.out.len(), 1, "stream 1 is not over at its first HEADERS");
    c.push(S, &frame(frame::DATA, 0, 1, b"hello "));
    c.push(S, &frame(frame::DATA, frame::END_STREAM, 1, b"world"));
    assert_eq!(c.out.len(), 2);
    let (b, a) = (&c.out[0], &c.out[1]);
    assert_eq!(b.http2.as_ref().map(|h| h.stream_id), Some(3));
    let breq = &b.request.as_ref().expect("request").head;
    assert_eq!(
        (breq.method(), breq.target()),
        (Some("GET"), Some("/b?x=1"))
    );
    assert_eq!(breq.header("host"), Some(&b"api.local"[..]));
    assert_eq!(breq.header("authorization"), Some(&b"Bearer abc.def"[..]));
    assert_eq!(b.response.as_ref().and_then(|r| r.head.status()), Some(404));
    let ares = a.response.as_ref().expect("response");
    assert_eq!(ares.head.status(), Some(200));
    let body = ares.body.as_ref().expect("body");
    assert_eq!(
        (body.size, body.prefix.as_slice()),
        (11, &b"hello world"[..])
    );
    assert_eq!(c.parser.role_hint(), Some(Role::Client));
    assert_eq!(c.stats.h2.hpack_unsynced_fields, 0);
}

#[test]
fn continuation_padding_priority_and_interim() {
    let (mut cw, mut sw) = (Wire::new(), Wire::new());
    let mut c = Conn::new();
    c.push(S, PREFACE);
    let mut fields = req("/upload");
    fields[0].1 = "POST".into();
    fields.push(("x-big", "v".repeat(3000)));
    let block = encode(&mut cw, &fields);
    let (head, tail) = block.split_at(100);
    // HEADERS with PADDED and PRIORITY, then two CONTINUATION frames.
    let mut payload = vec![3u8];
    payload.extend([0, 0, 0, 0, 16]);
    payload.extend(head);
    payload.extend([0; 3]);
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::PADDED | frame::PRIORITY_FLAG,
            1,
            &payload,
        ),
    );
    let (mid, end) = tail.split_at(tail.len() / 2);
    c.push(S, &frame(frame::CONTINUATION, 0, 1, mid));
    c.push(S, &frame(frame::CONTINUATION, frame::END_HEADERS, 1, end));
    // Padded DATA ending the request.
    let mut data = vec![4u8];
    data.extend(b"{\"a\":1}");
    data.extend([0; 4]);
    c.push(
        S,
        &frame(frame::DATA, frame::PADDED | frame::END_STREAM, 1, &data),
    );
    // 100 Continue, then the final response.
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS,
            1,
            &sw.block(&[(":status", "100")]),
        ),
    );
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &sw.block(&[(":status", "201")]),
        ),
    );
    assert_eq!(c.out.len(), 1);
    let x = &c.out[0];
    let r = x.request.as_ref().expect("request");
    assert_eq!(r.head.method(), Some("POST"));
    assert_eq!(r.head.header("x-big").map(<[u8]>::len), Some(3000));
    assert_eq!(
        r.body.as_ref().map(|b| b.prefix.as_slice()),
        Some(&b"{\"a\":1}"[..])
    );
    assert_eq!(x.response.as_ref().and_then(|r| r.head.status()), Some(201));
    assert_eq!(c.stats.h2.interim_responses, 1);
    assert_eq!(c.parser.role_hint(), Some(Role::Server));
}

#[test]
fn grpc_unary_streaming_and_trailers_only() {
    let (mut cw, mut sw) = (Wire::new(), Wire::new());
    let mut c = Conn::new();
    c.push(C, PREFACE);
    let call = |path: &str| {
        vec![
            (":method", "POST".to_string()),
            (":scheme", "https".into()),
            (":path", path.into()),
            (":authority", "grpc.local:50051".into()),
            ("content-type", "application/grpc".into()),
            ("grpc-encoding", "identity".into()),
            ("te", "trailers".into()),
        ]
    };
    let msg = |body: &[u8]| {
        let mut m = vec![0u8];
        m.extend((body.len() as u32).to_be_bytes());
        m.extend(body);
        m
    };
    // Server streaming: one request message, three response messages split oddly.
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS,
            1,
            &encode(&mut cw, &call("/demo.Greeter/ListHellos")),
        ),
    );
    c.push(
        C,
        &frame(frame::DATA, frame::END_STREAM, 1, &msg(b"\x0a\x03bob")),
    );
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS,
            1,
            &sw.block(&[(":status", "200"), ("content-type", "application/grpc")]),
        ),
    );
    let mut all = msg(b"one");
    all.extend(msg(b"two"));
    all.extend(msg(b"three"));
    let (x, y) = all.split_at(7);
    c.push(S, &frame(frame::DATA, 0, 1, x));
    c.push(S, &frame(frame::DATA, 0, 1, y));
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &sw.block(&[("grpc-status", "0")]),
        ),
    );
    // Trailers-Only error.
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS,
            3,
            &encode(&mut cw, &call("/demo.Greeter/SayHello")),
        ),
    );
    c.push(C, &frame(frame::DATA, frame::END_STREAM, 3, &msg(b"")));
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            3,
            &sw.block(&[
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "5"),
                ("grpc-message", "no%20such%20user"),
            ]),
        ),
    );
    // Cancelled by the client.
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS,
            5,
            &encode(&mut cw, &call("/demo.Greeter/SayHello")),
        ),
    );
    c.push(C, &frame(frame::RST_STREAM, 0, 5, &8u32.to_be_bytes()));
    assert_eq!(c.out.len(), 3);
    let g: Vec<&GrpcCall> = c
        .out
        .iter()
        .map(|x| x.grpc.as_deref().expect("grpc"))
        .collect();
    assert_eq!(
        (g[0].service.as_str(), g[0].method.as_str()),
        ("demo.Greeter", "ListHellos")
    );
    assert_eq!(
        (
            g[0].status_code,
            g[0].request_messages,
            g[0].response_messages
        ),
        (Some(0), 1, 3)
    );
    assert_eq!(g[0].encoding.as_deref(), Some("identity"));
    assert_eq!(
        (g[1].status_code, g[1].message.as_deref()),
        (Some(5), Some("no such user"))
    );
    assert_eq!(
        (
            g[2].status_code,
            c.out[2].http2.as_ref().and_then(|h| h.reset_code)
        ),
        (Some(1), Some(8))
    );
}

#[test]
fn late_attach_resolves_new_fields_and_marks_old_ones() {
    let (mut cw, mut sw) = (Wire::new(), Wire::new());
    // loona-hpack inserts only names outside the static table, so custom fields stand for
    // what real encoders index.
    let with = |path: &str, extra: (&'static str, &str)| {
        let mut f = req(path);
        f.push((extra.0, extra.1.to_string()));
        f
    };
    // Before the attach: a first exchange the agent never sees inserts x-tenant.
    let _unseen = encode(&mut cw, &with("/a", ("x-tenant", "acme")));
    let _unseen_res = sw.block(&[(":status", "200"), ("x-served-by", "edge-1")]);
    let mut c = Conn::new();
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            3,
            &encode(&mut cw, &with("/a", ("x-tenant", "acme"))),
        ),
    );
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            3,
            &sw.block(&[(":status", "200"), ("x-served-by", "edge-1")]),
        ),
    );
    // Stream 5 inserts x-trace: seen, so it resolves when stream 7 refers to it.
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            5,
            &encode(&mut cw, &with("/b", ("x-trace", "t1"))),
        ),
    );
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            5,
            &sw.block(&[(":status", "200")]),
        ),
    );
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            7,
            &encode(&mut cw, &with("/b", ("x-trace", "t1"))),
        ),
    );
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            7,
            &sw.block(&[(":status", "200")]),
        ),
    );
    assert_eq!(c.out.len(), 3);
    let r3 = &c.out[0].request.as_ref().expect("request").head;
    assert_eq!((r3.method(), r3.target()), (Some("GET"), Some("/a")));
    assert_eq!(r3.header("x-tenant"), None);
    assert_eq!(r3.unresolved_fields, 1);
    assert_eq!(
        c.out[0].response.as_ref().map(|r| r.head.unresolved_fields),
        Some(1)
    );
    let r7 = &c.out[2].request.as_ref().expect("request").head;
    assert_eq!(r7.header("x-trace"), Some(&b"t1"[..]));
    assert_eq!(r7.unresolved_fields, 0);
    assert_eq!(c.stats.h2.hpack_unsynced_fields, 2);
    // Nothing was invented: every resolved value is one that was sent.
    for x in &c.out {
        let h = &x.request.as_ref().expect("request").head;
        for (_, v) in h.headers() {
            assert!(
                [&b"api.local"[..], b"curl/7.88.1", b"Bearer abc.def", b"t1"].contains(&v),
                "{v:?}"
            );
        }
    }
}

#[test]
fn gap_loses_place_then_resyncs_at_a_record_of_frames() {
    let (mut cw, mut sw) = (Wire::new(), Wire::new());
    let mut c = Conn::new();
    c.push(C, PREFACE);
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &encode(&mut cw, &req("/a")),
        ),
    );
    assert!(!c.parser.gap(S, 500, &mut c.stats));
    // Mid-frame garbage (the rest of a lost frame) is skipped, then frames resume.
    c.push(S, b"tail of a lost DATA frame");
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &sw.block(&[(":status", "204")]),
        ),
    );
    assert_eq!(c.stats.h2.resyncs, 1);
    assert_eq!(c.out.len(), 1);
    assert_eq!(
        c.out[0].response.as_ref().and_then(|r| r.head.status()),
        Some(204)
    );
    // A request never answered is reported at close, alone.
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS,
            3,
            &encode(&mut cw, &req("/b")),
        ),
    );
    c.close();
    assert_eq!(c.out.len(), 2);
    assert!(c.out[1].response.is_none());
}

#[test]
fn bounded_streams_and_hostile_frames() {
    let mut cw = Wire::new();
    let mut c = Conn::new();
    c.push(C, PREFACE);
    for id in 0..1100u32 {
        c.push(
            C,
            &frame(
                frame::HEADERS,
                frame::END_HEADERS,
                2 * id + 1,
                &encode(&mut cw, &req("/x")),
            ),
        );
    }
    assert_eq!(c.stats.h2.streams_evicted, 1100 - 1024);
    assert_eq!(c.parser.streams.len(), 1024);
    // A frame header that breaks the rules loses the position instead of trusting it.
    c.push(C, &frame(frame::PING, 0, 7, &[0; 8]));
    assert_eq!(c.stats.h2.protocol_errors, 1);
    // A HEADERS interrupted by another frame before END_HEADERS: error counted, no panic.
    c.push(C, &frame(frame::SETTINGS, 0, 0, &[]));
    c.push(C, &frame(frame::HEADERS, 0, 3001, &[0x82]));
    c.push(C, &frame(frame::DATA, 0, 3001, b"x"));
    assert_eq!(c.stats.h2.protocol_errors, 2);
}

#[test]
fn a_new_connection_under_a_reused_key_starts_clean() {
    let (mut cw, mut sw) = (Wire::new(), Wire::new());
    let mut c = Conn::new();
    c.push(S, PREFACE);
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS,
            1,
            &encode(&mut cw, &req("/old")),
        ),
    );
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS,
            1,
            &sw.block(&[(":status", "200")]),
        ),
    );
    // The old connection ends unseen; a new one (fresh encoders) reuses the key.
    let (mut cw, mut sw) = (Wire::new(), Wire::new());
    c.push(C, &settings());
    c.push(S, PREFACE);
    assert_eq!(c.stats.h2.restarts, 1);
    assert_eq!(
        c.out.len(),
        1,
        "the open stream of the old connection is reported"
    );
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &encode(&mut cw, &req("/new")),
        ),
    );
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &sw.block(&[(":status", "200")]),
        ),
    );
    assert_eq!(c.out.len(), 2);
    let head = &c.out[1].request.as_ref().expect("request").head;
    assert_eq!(head.target(), Some("/new"));
    assert_eq!(head.unresolved_fields, 0);
}

#[test]
fn upgrade_h2c_makes_the_http1_request_stream_1() {
    use crate::protocol::{Parser, h1};
    let mut sw = Wire::new();
    let limits = crate::protocol::Limits::default();
    let mut stats = ProtocolStats::default();
    let mut parser = Parser::new(h1::Limits::default());
    let mut out = Vec::new();
    parser
        .push_with(
            &limits,
            C,
            b"GET /up HTTP/1.1\r\nHost: h2c.local\r\nConnection: Upgrade, HTTP2-Settings\r\n\
Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
            1,
            &mut out,
            &mut stats,
        )
        .expect("request");
    let mut answer =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    answer.extend(settings());
    parser
        .push_with(&limits, S, &answer, 2, &mut out, &mut stats)
        .expect("101");
    assert_eq!(stats.upgraded_to_h2, 1);
    assert!(matches!(parser, Parser::Http2(_)));
    let mut preface = PREFACE.to_vec();
    preface.extend(settings());
    parser
        .push_with(&limits, C, &preface, 3, &mut out, &mut stats)
        .expect("preface");
    let mut response = frame(
        frame::HEADERS,
        frame::END_HEADERS,
        1,
        &sw.block(&[(":status", "200")]),
    );
    response.extend(frame(frame::DATA, frame::END_STREAM, 1, b"upgraded"));
    parser
        .push_with(&limits, S, &response, 4, &mut out, &mut stats)
        .expect("response");
    assert_eq!(out.len(), 1);
    let x = &out[0];
    let request = &x.request.as_ref().expect("request").head;
    assert_eq!(
        (request.method(), request.target()),
        (Some("GET"), Some("/up"))
    );
    assert_eq!(request.version, crate::protocol::HttpVersion::Http11);
    let response = x.response.as_ref().expect("response");
    assert_eq!(response.head.version, crate::protocol::HttpVersion::Http2);
    assert_eq!(response.body.as_ref().map(|b| b.size), Some(8));
    assert_eq!(x.http2.as_ref().map(|h| h.stream_id), Some(1));
    assert_eq!(stats.h2.protocol_errors, 0);
}

#[test]
fn http1_under_the_key_of_a_lost_http2_connection_takes_over() {
    use crate::protocol::{Parser, h1};
    let mut cw = Wire::new();
    let limits = crate::protocol::Limits::default();
    let mut stats = ProtocolStats::default();
    let mut parser = Parser::new(h1::Limits::default());
    let mut out = Vec::new();
    let mut first = PREFACE.to_vec();
    first.extend(frame(
        frame::HEADERS,
        frame::END_HEADERS,
        1,
        &encode(&mut cw, &req("/h2")),
    ));
    parser
        .push_with(&limits, C, &first, 1, &mut out, &mut stats)
        .expect("h2");
    assert!(matches!(parser, Parser::Http2(_)));
    // The key comes back with HTTP/1, at a frame boundary: HTTP/1 takes over at once.
    for (d, bytes) in [
        (C, &b"GET /h1 HTTP/1.1\r\nHost: a\r\n\r\n"[..]),
        (S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ] {
        parser
            .push_with(&limits, d, bytes, 2, &mut out, &mut stats)
            .expect("h1");
    }
    assert_eq!(stats.switched_to_h1, 1);
    assert!(matches!(parser, Parser::Http1(_)));
    // The open HTTP/2 stream was reported when HTTP/1 took over, then the HTTP/1 exchange.
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0].request.as_ref().and_then(|r| r.head.target()),
        Some("/h2")
    );
    assert_eq!(
        out[1].request.as_ref().and_then(|r| r.head.target()),
        Some("/h1")
    );
    assert_eq!(
        out[1].response.as_ref().and_then(|r| r.head.status()),
        Some(200)
    );
    assert!(h1::starts_like_a_head(b"POST /x HTTP/1.1"));
    assert!(!h1::starts_like_a_head(b"\x00\x00\x04\x08\x00"));
    assert!(!h1::starts_like_a_head(b"PRI * HTTP/2.0\r\n"));
}

#[test]
fn push_promise_is_the_request_of_the_promised_stream() {
    let (mut cw, mut sw) = (Wire::new(), Wire::new());
    let mut c = Conn::new();
    c.push(C, PREFACE);
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &encode(&mut cw, &req("/page")),
        ),
    );
    let mut promise = 2u32.to_be_bytes().to_vec();
    promise.extend(encode(&mut sw, &req("/style.css")));
    c.push(
        S,
        &frame(frame::PUSH_PROMISE, frame::END_HEADERS, 1, &promise),
    );
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &sw.block(&[(":status", "200")]),
        ),
    );
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS,
            2,
            &sw.block(&[(":status", "200"), ("content-type", "text/css")]),
        ),
    );
    c.push(S, &frame(frame::DATA, frame::END_STREAM, 2, b"a{}"));
    assert_eq!(c.out.len(), 2);
    let pushed = &c.out[1];
    assert_eq!(pushed.http2.as_ref().map(|h| h.stream_id), Some(2));
    assert_eq!(
        pushed.request.as_ref().and_then(|r| r.head.target()),
        Some("/style.css")
    );
    assert_eq!(
        pushed
            .response
            .as_ref()
            .and_then(|r| r.body.as_ref())
            .map(|b| b.size),
        Some(3)
    );
    assert_eq!(c.parser.role_hint(), Some(Role::Client));
}

#[test]
fn cookie_crumbs_are_joined_with_semicolons() {
    let mut cw = Wire::new();
    let mut c = Conn::new();
    c.push(C, PREFACE);
    let mut fields = req("/c");
    fields.push(("cookie", "a=1".into()));
    fields.push(("x-mid", "m".into()));
    fields.push(("cookie", "b=2".into()));
    c.push(
        C,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &encode(&mut cw, &fields),
        ),
    );
    c.close();
    let head = &c.out[0].request.as_ref().expect("request").head;
    assert_eq!(head.header("cookie"), Some(&b"a=1; b=2"[..]));
    let names: Vec<&str> = head.headers().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["host", "user-agent", "authorization", "cookie", "x-mid"]
    );
}

#[test]
fn grpc_web_over_http1_counts_messages_and_reads_body_trailers() {
    use crate::protocol::{Parser, h1};
    let limits = crate::protocol::Limits::default();
    let mut stats = ProtocolStats::default();
    let mut parser = Parser::new(h1::Limits::default());
    let mut out = Vec::new();
    let framed = |flag: u8, body: &[u8]| {
        let mut m = vec![flag];
        m.extend((body.len() as u32).to_be_bytes());
        m.extend(body);
        m
    };
    let message = framed(0, b"\x0a\x05alice");
    let mut request = format!(
        "POST /demo.Greeter/SayHello HTTP/1.1\r\nHost: web\r\n\
content-type: application/grpc-web+proto\r\ncontent-length: {}\r\n\r\n",
        message.len()
    )
    .into_bytes();
    request.extend(&message);
    let mut body = framed(0, b"\x0a\x0bhello alice");
    body.extend(framed(0x80, b"grpc-status:0\r\ngrpc-message:\r\n"));
    let mut response = b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc-web+proto\r\n\
transfer-encoding: chunked\r\n\r\n"
        .to_vec();
    // The body in two chunks, split inside the trailer frame.
    let (a, b) = body.split_at(20);
    for chunk in [a, b] {
        response.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        response.extend(chunk);
        response.extend(b"\r\n");
    }
    response.extend(b"0\r\n\r\n");
    for (d, bytes) in [(C, request.as_slice()), (S, response.as_slice())] {
        parser
            .push_with(&limits, d, bytes, 1, &mut out, &mut stats)
            .expect("parses");
    }
    assert_eq!(out.len(), 1);
    let call = out[0].grpc.as_deref().expect("grpc-web call");
    assert_eq!(
        (call.service.as_str(), call.method.as_str()),
        ("demo.Greeter", "SayHello")
    );
    assert_eq!((call.request_messages, call.response_messages), (1, 1));
    assert_eq!(call.status_code, Some(0));
    assert!(out[0].http2.is_none());
}

/// A client's GOAWAY counts the server's streams (last id 0: it never accepted a push), so its
/// own request in flight still gets its response; a server's GOAWAY ends the client's streams
/// above its last id, reported without a response.
#[test]
fn goaway_concerns_the_streams_its_receiver_opened() {
    let (mut cw, mut sw) = (Wire::new(), Wire::new());
    let mut c = Conn::new();
    let mut first = PREFACE.to_vec();
    first.extend(settings());
    for id in [1, 3] {
        first.extend(frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            id,
            &encode(&mut cw, &req("/a")),
        ));
    }
    c.push(C, &first);
    // The client says goodbye (last server stream 0) before stream 1's answer is seen.
    c.push(C, &frame(frame::GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0]));
    assert!(c.out.is_empty(), "{:?}", c.out.len());
    // The server answers stream 1, then goes away having processed nothing above 1.
    let res = vec![(":status", "200".to_string())];
    c.push(
        S,
        &frame(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &encode(&mut sw, &res),
        ),
    );
    c.push(S, &frame(frame::GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]));
    assert_eq!(c.out.len(), 2);
    let ids: Vec<Option<u32>> = c
        .out
        .iter()
        .map(|e| e.http2.as_ref().map(|h| h.stream_id))
        .collect();
    assert_eq!(ids, [Some(1), Some(3)]);
    assert_eq!(
        c.out[0].response.as_ref().and_then(|r| r.head.status()),
        Some(200)
    );
    assert!(c.out[1].response.is_none());
}
