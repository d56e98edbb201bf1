use super::*;

fn drain(p: &mut StreamParser, method: Option<&str>) -> Result<Vec<ParseEvent>, ParseError> {
    let mut out = Vec::new();
    while let Some(e) = p.poll(method)? {
        out.push(e);
    }
    Ok(out)
}

fn feed_all(p: &mut StreamParser, parts: &[&[u8]], method: Option<&str>) -> Vec<ParseEvent> {
    let mut in_place = StreamParser::new(p.limits);
    let (mut out, mut read_in_place) = (Vec::new(), Vec::new());
    for (i, part) in parts.iter().enumerate() {
        p.push(part, i as u64 + 1);
        out.extend(drain(p, method).expect("parses"));
        read_in_place
            .extend(feed_in_place(&mut in_place, part, i as u64 + 1, method).expect("parses"));
    }
    assert_eq!(
        out, read_in_place,
        "buffered and read in place give the same events"
    );
    assert_eq!(p.buffered(), in_place.buffered());
    out
}

/// One record through the live path: read in place, what is left kept.
fn feed_in_place(
    p: &mut StreamParser,
    record: &[u8],
    ts_ns: u64,
    method: Option<&str>,
) -> Result<Vec<ParseEvent>, ParseError> {
    p.begin(ts_ns);
    let mut input = record;
    let mut out = Vec::new();
    while let Some(e) = p.poll_input(method, &mut input)? {
        out.push(e);
    }
    p.keep(input);
    Ok(out)
}

/// Every stream below, cut into three records at every pair of offsets, gives the same events
/// (and leaves the same bytes buffered) whether records are buffered or read in place.
#[test]
fn reading_records_in_place_equals_buffering_them_at_every_cut() {
    let streams: [(&[u8], Option<&str>); 6] = [
        (
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
            None,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
            None,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.0 200 OK\r\n\r\nuntil close",
            None,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
            Some("HEAD"),
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            None,
        ),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\nGET /next HTTP/1.1\r\n\r\n", None),
    ];
    for (stream, method) in streams {
        for first in 0..=stream.len() {
            for second in first..=stream.len() {
                let parts = [&stream[..first], &stream[first..second], &stream[second..]];
                let (mut buffered, mut in_place) = (
                    StreamParser::new(Limits::default()),
                    StreamParser::new(Limits::default()),
                );
                for (i, part) in parts.iter().enumerate() {
                    buffered.push(part, i as u64 + 1);
                    let a = drain(&mut buffered, method);
                    let b = feed_in_place(&mut in_place, part, i as u64 + 1, method);
                    assert_eq!(a, b, "cut at {first}/{second}, record {i}");
                    assert_eq!(buffered.buffered(), in_place.buffered());
                    assert_eq!(buffered.switched(), in_place.switched());
                }
                assert_eq!(buffered.take_switched(), in_place.take_switched());
                assert_eq!(buffered.finish(), in_place.finish());
            }
        }
    }
}

fn heads(events: &[ParseEvent]) -> Vec<&Head> {
    events
        .iter()
        .filter_map(|e| match e {
            ParseEvent::Head(h) => Some(h),
            _ => None,
        })
        .collect()
}

fn bodies(events: &[ParseEvent]) -> Vec<&BodySummary> {
    events
        .iter()
        .filter_map(|e| match e {
            ParseEvent::Complete(b) => Some(b),
            _ => None,
        })
        .collect()
}

#[test]
fn request_split_across_records_byte_by_byte() {
    let msg = b"POST /api/v1/items?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    let parts: Vec<&[u8]> = msg.chunks(1).collect();
    let mut p = StreamParser::new(Limits::default());
    let events = feed_all(&mut p, &parts, None);
    assert_eq!(p.kind(), StreamKind::Requests);
    let h = heads(&events);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].method(), Some("POST"));
    assert_eq!(h[0].target(), Some("/api/v1/items?x=1"));
    assert_eq!(h[0].header("content-length"), Some(&b"5"[..]));
    assert_eq!(h[0].start_ns, 1);
    let b = bodies(&events);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].size, 5);
    assert_eq!(b[0].prefix, b"hello");
    assert_eq!(b[0].end_ns, msg.len() as u64);
}

#[test]
fn pipelined_requests_in_one_record() {
    let msg = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nDELETE /c HTTP/1.1\r\nContent-Length: 2\r\n\r\nok";
    let mut p = StreamParser::new(Limits::default());
    let events = feed_all(&mut p, &[msg], None);
    let targets: Vec<_> = heads(&events)
        .iter()
        .map(|h| h.target().expect("request").to_owned())
        .collect();
    assert_eq!(targets, ["/a", "/b", "/c"]);
    assert_eq!(
        bodies(&events).iter().map(|b| b.size).collect::<Vec<_>>(),
        [0, 0, 2]
    );
}

#[test]
fn chunked_response_with_extensions_and_trailers() {
    let msg = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n";
    for split in [1usize, 3, 7, msg.len()] {
        let parts: Vec<&[u8]> = msg.chunks(split).collect();
        let mut p = StreamParser::new(Limits::default());
        let events = feed_all(&mut p, &parts, Some("GET"));
        assert_eq!(p.kind(), StreamKind::Responses);
        let b = bodies(&events);
        assert_eq!(b.len(), 1, "split {split}");
        assert_eq!(b[0].size, 9);
        assert_eq!(b[0].prefix, b"Wikipedia");
        assert!(!p.mid_message());
    }
}

#[test]
fn head_response_has_no_body_even_with_content_length() {
    let msg = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    let mut p = StreamParser::new(Limits::default());
    let events = feed_all(&mut p, &[msg], Some("HEAD"));
    assert_eq!(bodies(&events).len(), 2);
    assert!(bodies(&events).iter().all(|b| b.size == 0));
}

#[test]
fn interim_100_continue_then_final() {
    let msg = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    let mut p = StreamParser::new(Limits::default());
    let events = feed_all(&mut p, &[msg], Some("POST"));
    let statuses: Vec<u16> = heads(&events)
        .iter()
        .map(|h| h.status().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [100, 201]);
    assert_eq!(
        bodies(&events).iter().map(|b| b.size).collect::<Vec<_>>(),
        [0, 2]
    );
}

#[test]
fn not_modified_and_close_delimited() {
    let mut p = StreamParser::new(Limits::default());
    let events = feed_all(
        &mut p,
        &[b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"],
        Some("GET"),
    );
    assert_eq!(bodies(&events).len(), 1);

    let mut p = StreamParser::new(Limits::default());
    let events = feed_all(
        &mut p,
        &[b"HTTP/1.0 200 OK\r\n\r\nsome", b" more"],
        Some("GET"),
    );
    assert_eq!(
        heads(&events)[0].version,
        crate::protocol::HttpVersion::Http10
    );
    assert!(bodies(&events).is_empty());
    let body = p.finish().expect("close completes the body");
    assert_eq!(body.size, 9);
    assert_eq!(body.prefix, b"some more");
}

#[test]
fn body_prefix_is_bounded() {
    let mut p = StreamParser::new(Limits {
        max_head_bytes: 1024,
        body_prefix_bytes: 4,
    });
    let events = feed_all(
        &mut p,
        &[b"PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"],
        None,
    );
    let b = bodies(&events);
    assert_eq!(b[0].size, 10);
    assert_eq!(b[0].prefix, b"0123");
}

#[test]
fn gap_inside_known_length_body_keeps_sync() {
    let mut p = StreamParser::new(Limits::default());
    p.push(
        b"POST /up HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789",
        1,
    );
    assert_eq!(heads(&drain(&mut p, None).expect("ok")).len(), 1);
    assert!(p.gap(80));
    p.push(b"0123456789", 2);
    p.push(b"GET /next HTTP/1.1\r\n\r\n", 3);
    let events = drain(&mut p, None).expect("ok");
    let b = bodies(&events);
    assert_eq!(b[0].size, 100);
    assert_eq!(b[0].missing_bytes, 80);
    assert_eq!(heads(&events).len(), 1);
}

#[test]
fn gap_in_head_resyncs_on_next_record() {
    let mut p = StreamParser::new(Limits::default());
    p.push(b"GET /partial HTTP/1.1\r\nHo", 1);
    assert!(drain(&mut p, None).expect("ok").is_empty());
    assert!(!p.gap(10));
    p.push(b"GET /after HTTP/1.1\r\n\r\n", 2);
    let events = drain(&mut p, None).expect("ok");
    assert_eq!(heads(&events).len(), 1);
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let cases: [&[u8]; 6] = [
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"\x00\x01\x02garbage\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
    ];
    for case in cases {
        let mut p = StreamParser::new(Limits::default());
        p.push(case, 1);
        assert!(
            drain(&mut p, Some("GET")).is_err(),
            "{:?}",
            String::from_utf8_lossy(case)
        );
        // After an error the parser waits for the next record and parses it cleanly.
        p.push(b"GET /ok HTTP/1.1\r\n\r\n", 2);
        if p.kind() == StreamKind::Requests {
            assert_eq!(heads(&drain(&mut p, None).expect("recovers")).len(), 1);
        }
    }
}

#[test]
fn oversized_head_is_rejected() {
    let mut p = StreamParser::new(Limits {
        max_head_bytes: 64,
        body_prefix_bytes: 0,
    });
    let mut big = b"GET / HTTP/1.1\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 200));
    p.push(&big, 1);
    assert_eq!(drain(&mut p, None), Err(ParseError::HeadTooLarge(64)));
}

#[test]
fn random_bytes_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let alphabet = b"GET HTTP/1.1\r\n: 0123456789abcdefContent-Length;chunked";
    for round in 0..2000 {
        let mut p = StreamParser::new(Limits {
            max_head_bytes: 256,
            body_prefix_bytes: 8,
        });
        for part in 0..4 {
            let len = (seed % 40) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            p.push(&data, part);
            if round % 7 == 0 {
                p.gap(seed % 50);
            }
            let _ = drain(&mut p, Some("GET"));
        }
        let _ = p.finish();
    }
}
