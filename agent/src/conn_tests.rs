use super::*;
use agent_common::event::{AF_INET, COMM_BYTES, KIND_DATA, KIND_SOCKET, RecordHeader};

const PID_TGID: u64 = (42 << 32) | 43;

fn data(direction: u32, offset: u64, payload: &[u8], ts: u64) -> DataRecord {
    DataRecord {
        header: RecordHeader {
            kind: KIND_DATA,
            _pad: 0,
            timestamp_ns: ts,
            pid_tgid: PID_TGID,
        },
        stream: 0x1000,
        stream_offset: offset,
        call_len: payload.len() as u32,
        payload_len: payload.len() as u32,
        direction,
        fd: 5,
        library_id: 2,
        flags: 0,
        comm: [0; COMM_BYTES],
        cgroup_id: 0,
    }
}

fn socket(role: u32) -> SocketRecord {
    SocketRecord {
        header: RecordHeader {
            kind: KIND_SOCKET,
            _pad: 0,
            timestamp_ns: 1,
            pid_tgid: PID_TGID,
        },
        stream: 0x1000,
        fd: 5,
        role,
        flags: SOCKET_ADDRESSES_KNOWN,
        family: AF_INET,
        local_port: 40000,
        remote_port: 443,
        _pad: [0; 6],
        local_addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        remote_addr: [127, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    }
}

fn feed(
    table: &mut ConnTable,
    direction: u32,
    offset: u64,
    payload: &[u8],
    ts: u64,
) -> Vec<ConnExchange> {
    let mut out = Vec::new();
    let mut record = data(direction, offset, payload, ts);
    record.comm[..4].copy_from_slice(b"curl");
    table.on_data(&record, payload, &mut out);
    out
}

#[test]
fn client_exchange_with_endpoints_and_split_records() {
    let mut table = ConnTable::new(TableLimits::default());
    let mut out = Vec::new();
    table.on_socket(&socket(ROLE_CLIENT), &mut out);
    let req = b"GET /x?y=1 HTTP/1.1\r\nHost: h\r\n\r\n";
    assert!(feed(&mut table, DIRECTION_EGRESS, 0, &req[..10], 10).is_empty());
    assert!(feed(&mut table, DIRECTION_EGRESS, 10, &req[10..], 11).is_empty());
    let res = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    let got = feed(&mut table, DIRECTION_INGRESS, 0, res, 20);
    assert_eq!(got.len(), 1);
    let c = &got[0].conn;
    assert_eq!(
        (c.tgid, c.tid, c.fd, c.role),
        (42, 43, Some(5), Role::Client)
    );
    let ep = c.endpoints.expect("endpoints");
    assert_eq!(ep.local.to_string(), "127.0.0.1:40000");
    assert_eq!(ep.remote.to_string(), "127.0.0.2:443");
    assert_eq!(c.comm(), "curl");
    assert_eq!(table.stats.exchanges, 1);
}

#[test]
fn duplicate_bytes_are_skipped_and_gaps_counted() {
    let mut table = ConnTable::new(TableLimits::default());
    let req = b"POST /u HTTP/1.1\r\nContent-Length: 20\r\n\r\n";
    feed(&mut table, DIRECTION_EGRESS, 0, req, 1);
    let body_at = req.len() as u64;
    feed(&mut table, DIRECTION_EGRESS, body_at, b"0123456789", 2);
    // Replay of the same bytes, then a 5-byte hole, then the rest.
    feed(&mut table, DIRECTION_EGRESS, body_at, b"0123456789", 3);
    feed(&mut table, DIRECTION_EGRESS, body_at + 15, b"56789", 4);
    assert_eq!(table.stats.duplicate_bytes, 10);
    assert_eq!(table.stats.gap_bytes, 5);
    assert_eq!(table.stats.desyncs, 0);
    let got = feed(
        &mut table,
        DIRECTION_INGRESS,
        0,
        b"HTTP/1.1 204 No Content\r\n\r\n",
        5,
    );
    let body = got[0]
        .exchange
        .request
        .as_ref()
        .and_then(|m| m.body.clone())
        .expect("body");
    assert_eq!((body.size, body.missing_bytes), (20, 5));
    // Role inferred from the traffic: this process wrote a request.
    assert_eq!(got[0].conn.role, Role::Client);
}

#[test]
fn server_role_inferred_and_close_flushes() {
    let mut table = ConnTable::new(TableLimits::default());
    feed(
        &mut table,
        DIRECTION_INGRESS,
        0,
        b"GET /a HTTP/1.0\r\n\r\n",
        1,
    );
    assert!(
        feed(
            &mut table,
            DIRECTION_EGRESS,
            0,
            b"HTTP/1.0 200 OK\r\n\r\npartial",
            2
        )
        .is_empty()
    );
    let mut out = Vec::new();
    table.close(
        StreamId {
            tgid: 42,
            stream: 0x1000,
        },
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].conn.role, Role::Server);
    assert!(table.is_empty());
}

#[test]
fn table_is_bounded() {
    let mut table = ConnTable::new(TableLimits {
        max_streams: 4,
        ..TableLimits::default()
    });
    for i in 0..10u64 {
        let mut r = data(DIRECTION_EGRESS, 0, b"GET / HTTP/1.1\r\n\r\n", i);
        r.stream = i;
        let mut out = Vec::new();
        table.on_data(&r, b"GET / HTTP/1.1\r\n\r\n", &mut out);
    }
    assert_eq!(table.len(), 4);
    assert_eq!(table.stats.streams_evicted, 6);
    assert_eq!(table.stats.requests_without_response, 6);
}

#[test]
fn plaintext_streams_are_marked_not_tls_and_kept_apart_from_tls() {
    let mut table = ConnTable::new(TableLimits::default());
    let mut out = Vec::new();
    let plain_id = PLAINTEXT_STREAM_BIT | 5;
    let mut plain_socket = socket(ROLE_SERVER);
    plain_socket.stream = plain_id;
    table.on_socket(&plain_socket, &mut out);
    let mut req = data(
        DIRECTION_INGRESS,
        0,
        b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n",
        10,
    );
    req.stream = plain_id;
    req.library_id = 0;
    req.flags = agent_common::event::DATA_PLAINTEXT;
    table.on_data(&req, b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n", &mut out);
    let mut res = data(DIRECTION_EGRESS, 0, b"HTTP/1.1 204 No Content\r\n\r\n", 20);
    res.stream = plain_id;
    res.library_id = 0;
    res.flags = agent_common::event::DATA_PLAINTEXT;
    table.on_data(&res, b"HTTP/1.1 204 No Content\r\n\r\n", &mut out);
    // A TLS stream of the same process: its own entry, tls = true.
    let tls = feed(
        &mut table,
        DIRECTION_EGRESS,
        0,
        b"GET /t HTTP/1.1\r\nHost: h\r\n\r\n",
        30,
    );
    assert!(tls.is_empty());
    assert_eq!(out.len(), 1);
    let c = &out[0].conn;
    assert!(!c.tls);
    assert_eq!((c.role, c.fd, c.library_id), (Role::Server, Some(5), 0));
    let mut more = Vec::new();
    table.on_data(
        &data(DIRECTION_INGRESS, 0, b"HTTP/1.1 204 No Content\r\n\r\n", 40),
        b"HTTP/1.1 204 No Content\r\n\r\n",
        &mut more,
    );
    assert_eq!(more.len(), 1);
    assert!(more[0].conn.tls);
}

#[test]
fn sendfile_bytes_complete_a_body_as_missing_bytes() {
    let mut table = ConnTable::new(TableLimits::default());
    let mut out = Vec::new();
    table.on_socket(&socket(ROLE_SERVER), &mut out);
    assert!(
        feed(
            &mut table,
            DIRECTION_INGRESS,
            0,
            b"GET /f HTTP/1.1\r\nHost: h\r\n\r\n",
            10
        )
        .is_empty()
    );
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";
    assert!(feed(&mut table, DIRECTION_EGRESS, 0, head, 20).is_empty());
    let mut file = data(DIRECTION_EGRESS, head.len() as u64, b"", 30);
    file.call_len = 12;
    file.flags = agent_common::event::DATA_NOT_CAPTURED | agent_common::event::DATA_PLAINTEXT;
    table.on_data(&file, b"", &mut out);
    assert_eq!(out.len(), 1);
    let res = out[0].exchange.response.as_ref().expect("response");
    let body = res.body.as_ref().expect("body");
    assert_eq!((body.size, body.missing_bytes), (12, 12));
    assert_eq!(table.stats.uncaptured_file_bytes, 12);
    assert_eq!(table.stats.gap_bytes, 0);
}

#[test]
fn a_call_beyond_the_capture_cap_ends_its_body_at_once() {
    // One TLS write of head + 1 MiB body: the kernel captured the first part and reported the
    // tail as not captured; the response is complete without waiting for a next record.
    let mut table = ConnTable::new(TableLimits::default());
    let mut out = Vec::new();
    table.on_socket(&socket(ROLE_SERVER), &mut out);
    assert!(
        feed(
            &mut table,
            DIRECTION_INGRESS,
            0,
            b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n",
            10
        )
        .is_empty()
    );
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n";
    let mut first = head.to_vec();
    first.extend_from_slice(&[b'x'; 100]);
    assert!(feed(&mut table, DIRECTION_EGRESS, 0, &first, 20).is_empty());
    let mut tail = data(DIRECTION_EGRESS, first.len() as u64, b"", 30);
    tail.call_len = 1_048_576 - 100;
    tail.flags = agent_common::event::DATA_NOT_CAPTURED;
    table.on_data(&tail, b"", &mut out);
    assert_eq!(out.len(), 1);
    let res = out[0].exchange.response.as_ref().expect("response");
    let body = res.body.as_ref().expect("body");
    assert_eq!((body.size, body.missing_bytes), (1_048_576, 1_048_476));
    assert_eq!(table.stats.uncaptured_file_bytes, 0, "not a sendfile");
    assert_eq!(table.stats.gap_bytes, 0);
}
