//! Connection table: one entry per TLS stream (tgid, SSL*), reassembling each direction by byte
//! offset and feeding the HTTP parsers. Bounded in entries and idle time; every eviction, gap and
//! parse error is counted.

use rustc_hash::FxHashMap;

use agent_common::event::{
    COMM_BYTES, DATA_NOT_CAPTURED, DATA_PLAINTEXT, DIRECTION_EGRESS, DIRECTION_INGRESS, DataRecord,
    PLAINTEXT_STREAM_BIT, ROLE_CLIENT, ROLE_SERVER, SOCKET_ADDRESSES_KNOWN, SocketRecord,
};

use crate::protocol::{ConnectionParser, Direction, Exchange, Parser, ProtocolStats, h1::Limits};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub tgid: u32,
    pub stream: u64,
}

/// Which end of the connection the process is (the typed exchange carries the same value).
pub use crate::protocol::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub local: std::net::SocketAddr,
    pub remote: std::net::SocketAddr,
}

/// What is known of the connection when an exchange is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    pub tgid: u32,
    pub tid: u32,
    /// Kernel task name, NUL-padded (see [`ConnInfo::comm`]).
    pub comm: [u8; COMM_BYTES],
    pub fd: Option<i32>,
    pub role: Role,
    pub endpoints: Option<Endpoints>,
    pub library_id: u32,
    /// False for plain HTTP captured from socket syscalls.
    pub tls: bool,
    /// cgroup v2 id of the process at its first captured call.
    pub cgroup_id: u64,
    /// The kernel's stream key within the process (TLS object or socket address).
    pub stream: u64,
}

impl ConnInfo {
    /// The task name up to its NUL; invalid UTF-8 is cut at the first bad byte.
    pub fn comm(&self) -> &str {
        let end = self
            .comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.comm.len());
        let bytes = self.comm.get(..end).unwrap_or_default();
        match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => bytes
                .get(..e.valid_up_to())
                .and_then(|valid| std::str::from_utf8(valid).ok())
                .unwrap_or(""),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnExchange {
    pub conn: ConnInfo,
    pub exchange: Exchange,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnStats {
    pub streams_opened: u64,
    pub streams_evicted: u64,
    pub streams_idle_expired: u64,
    pub gap_events: u64,
    pub gap_bytes: u64,
    pub duplicate_bytes: u64,
    pub parse_errors: u64,
    pub desyncs: u64,
    pub exchanges: u64,
    pub requests_without_response: u64,
    pub responses_without_request: u64,
    /// Bytes sent from files with sendfile: in the stream, never captured (not a loss).
    pub uncaptured_file_bytes: u64,
    pub protocol: ProtocolStats,
}

#[derive(Debug, Clone, Copy)]
pub struct TableLimits {
    pub max_streams: usize,
    pub idle_timeout_ns: u64,
    pub http: Limits,
    pub http2: crate::protocol::h2::Limits,
}

impl Default for TableLimits {
    fn default() -> Self {
        Self {
            max_streams: 16_384,
            idle_timeout_ns: 300 * 1_000_000_000,
            http: Limits::default(),
            http2: crate::protocol::h2::Limits::default(),
        }
    }
}

struct Conn {
    info: ConnInfo,
    /// Next expected stream offset, by [`Direction::index`].
    next_offset: [u64; 2],
    parser: Parser,
    last_seen_ns: u64,
}

impl Conn {
    fn new(id: StreamId, limits: &TableLimits) -> Self {
        Self {
            info: ConnInfo {
                tgid: id.tgid,
                tid: id.tgid,
                comm: [0; COMM_BYTES],
                fd: None,
                role: Role::Unknown,
                endpoints: None,
                library_id: 0,
                tls: id.stream & PLAINTEXT_STREAM_BIT == 0,
                cgroup_id: 0,
                stream: id.stream,
            },
            next_offset: [0, 0],
            parser: Parser::new(limits.http),
            last_seen_ns: 0,
        }
    }
}

pub struct ConnTable {
    /// Keys come from the kernel, not from peers, so a fast non-keyed hash is safe here.
    /// Boxed: a `Conn` is ~900 bytes, and the table's slots (a power of two, at most 7/8 full)
    /// held them inline — 10k open connections took 17.6 MiB; a pointer per slot halves it.
    conns: FxHashMap<StreamId, Box<Conn>>,
    limits: TableLimits,
    pub stats: ConnStats,
    /// Exchanges one record completed, kept between records so that the common case (one
    /// exchange per response) allocates nothing.
    scratch: Vec<Exchange>,
}

fn direction_of(direction: u32) -> Option<Direction> {
    match direction {
        DIRECTION_EGRESS => Some(Direction::Egress),
        DIRECTION_INGRESS => Some(Direction::Ingress),
        _ => None,
    }
}

impl ConnTable {
    pub fn new(limits: TableLimits) -> Self {
        Self {
            conns: FxHashMap::default(),
            limits,
            stats: ConnStats::default(),
            scratch: Vec::new(),
        }
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.conns.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Evicts the stream idle the longest if `id` is new and the table is full; its pending
    /// requests are reported.
    fn make_room(&mut self, id: StreamId, out: &mut Vec<ConnExchange>) {
        if self.conns.contains_key(&id) || self.conns.len() < self.limits.max_streams {
            return;
        }
        if let Some(oldest) = self
            .conns
            .iter()
            .min_by_key(|(_, c)| c.last_seen_ns)
            .map(|(k, _)| *k)
        {
            self.stats.streams_evicted += 1;
            self.close(oldest, out);
        }
    }

    /// The stream's entry (created if new, after making room), with the counters borrowed
    /// alongside so callers can count while holding the entry.
    fn entry(
        &mut self,
        id: StreamId,
        now_ns: u64,
        out: &mut Vec<ConnExchange>,
    ) -> (&mut Conn, &mut ConnStats) {
        self.make_room(id, out);
        let Self {
            conns,
            limits,
            stats,
            ..
        } = self;
        let conn = conns.entry(id).or_insert_with(|| {
            stats.streams_opened += 1;
            Box::new(Conn::new(id, limits))
        });
        conn.last_seen_ns = conn.last_seen_ns.max(now_ns);
        (conn, stats)
    }

    /// The one dispatch of decoded records to the table, for live and recorded input alike.
    /// Exec records concern the process table only.
    pub fn on_record(
        &mut self,
        record: &crate::kernel::decode::Record<'_>,
        out: &mut Vec<ConnExchange>,
    ) {
        use crate::kernel::decode::Record;
        match record {
            Record::Data(data, payload) => self.on_data(data, payload, out),
            Record::Socket(socket) => self.on_socket(socket, out),
            Record::Close(close) => self.close(
                StreamId {
                    tgid: (close.header.pid_tgid >> 32) as u32,
                    stream: close.stream,
                },
                out,
            ),
            Record::Exit(exit) => self.close_process((exit.header.pid_tgid >> 32) as u32, out),
            Record::Exec(_) | Record::Verdict(_) => {}
        }
    }

    pub fn on_socket(&mut self, record: &SocketRecord, out: &mut Vec<ConnExchange>) {
        let id = StreamId {
            tgid: (record.header.pid_tgid >> 32) as u32,
            stream: record.stream,
        };
        // Same SSL* on another socket without a close seen: a new connection. (A plaintext
        // stream is named by its socket: another fd there is a duplicate of the same socket.)
        let plaintext = id.stream & PLAINTEXT_STREAM_BIT != 0;
        if !plaintext
            && self
                .conns
                .get(&id)
                .is_some_and(|c| c.info.fd.is_some_and(|fd| fd != record.fd))
        {
            self.close(id, out);
        }
        let (conn, _) = self.entry(id, record.header.timestamp_ns, out);
        if !plaintext || conn.info.fd.is_none() {
            conn.info.fd = Some(record.fd);
        }
        conn.info.role = match record.role {
            ROLE_CLIENT => Role::Client,
            ROLE_SERVER => Role::Server,
            // ROLE_UNKNOWN (connect/accept not seen) keeps what the traffic suggested.
            _ => conn.info.role,
        };
        if record.flags & SOCKET_ADDRESSES_KNOWN != 0 {
            conn.info.endpoints = endpoints(record);
        }
    }

    pub fn on_data(&mut self, record: &DataRecord, payload: &[u8], out: &mut Vec<ConnExchange>) {
        let Some(direction) = direction_of(record.direction) else {
            self.stats.parse_errors += 1;
            return;
        };
        let id = StreamId {
            tgid: (record.header.pid_tgid >> 32) as u32,
            stream: record.stream,
        };
        let ts = record.header.timestamp_ns;
        let mut exchanges = std::mem::take(&mut self.scratch);
        let limits = crate::protocol::Limits {
            http1: self.limits.http,
            http2: self.limits.http2,
        };
        let (conn, stats) = self.entry(id, ts, out);
        if conn.info.comm[0] == 0 {
            conn.info.comm = record.comm;
            conn.info.tid = record.header.pid_tgid as u32;
            conn.info.library_id = record.library_id;
            conn.info.cgroup_id = record.cgroup_id;
        }
        if conn.info.fd.is_none() && record.fd >= 0 {
            conn.info.fd = Some(record.fd);
        }
        let Conn {
            next_offset,
            parser,
            ..
        } = conn;
        let Some(next_offset) = next_offset.get_mut(direction.index()) else {
            return;
        };
        // The bytes this record adds to the stream (none for sendfile: only a gap).
        let mut fresh: &[u8] = &[];
        if record.flags & DATA_NOT_CAPTURED != 0 {
            // sendfile (bytes that never passed through user memory) or a call's tail beyond
            // the capture cap (counted by the kernel as truncated): they take their place in
            // the stream as missing bytes, so a body sent that way still ends where it should.
            let end = record
                .stream_offset
                .saturating_add(u64::from(record.call_len));
            if end <= *next_offset {
                return;
            }
            let start = record.stream_offset.max(*next_offset);
            if start > *next_offset {
                let missing = start - *next_offset;
                stats.gap_events += 1;
                stats.gap_bytes = stats.gap_bytes.saturating_add(missing);
                if !parser.gap(direction, missing, &mut stats.protocol) {
                    stats.desyncs += 1;
                }
            }
            if record.flags & DATA_PLAINTEXT != 0 {
                stats.uncaptured_file_bytes =
                    stats.uncaptured_file_bytes.saturating_add(end - start);
            }
            if !parser.gap(direction, end - start, &mut stats.protocol) {
                stats.desyncs += 1;
            }
            *next_offset = end;
        } else {
            // Offsets come from the kernel but are still untrusted: all arithmetic saturates.
            let mut payload = payload;
            let mut offset = record.stream_offset;
            if offset < *next_offset {
                // Overlap with bytes already seen: keep only the new tail.
                let overlap = (*next_offset - offset).min(payload.len() as u64) as usize;
                stats.duplicate_bytes = stats.duplicate_bytes.saturating_add(overlap as u64);
                payload = payload.get(overlap..).unwrap_or_default();
                offset = offset.saturating_add(overlap as u64);
            }
            if payload.is_empty() {
                return;
            }
            if offset > *next_offset {
                let missing = offset - *next_offset;
                stats.gap_events += 1;
                stats.gap_bytes = stats.gap_bytes.saturating_add(missing);
                if !parser.gap(direction, missing, &mut stats.protocol) {
                    stats.desyncs += 1;
                }
            }
            *next_offset = offset.saturating_add(payload.len() as u64);
            fresh = payload;
        }
        // Pushed even when empty: a gap may have completed a message.
        if parser
            .push_with(
                &limits,
                direction,
                fresh,
                ts,
                &mut exchanges,
                &mut stats.protocol,
            )
            .is_err()
        {
            stats.parse_errors += 1;
        }
        // A role learned from the traffic when connect/accept was not seen (older connections).
        if conn.info.role == Role::Unknown {
            conn.info.role = conn.parser.role_hint().unwrap_or(Role::Unknown);
        }
        let info = conn.info;
        self.emit(info, &mut exchanges, out);
        // Kept unless a burst of pipelined exchanges grew it.
        if exchanges.capacity() <= 16 {
            self.scratch = exchanges;
        }
    }

    /// Moves `exchanges` (left empty) to `out`, counted.
    fn emit(&mut self, info: ConnInfo, exchanges: &mut Vec<Exchange>, out: &mut Vec<ConnExchange>) {
        for exchange in exchanges.drain(..) {
            self.stats.exchanges += 1;
            if exchange.response.is_none() {
                self.stats.requests_without_response += 1;
            }
            if exchange.request.is_none() {
                self.stats.responses_without_request += 1;
            }
            out.push(ConnExchange {
                conn: info,
                exchange,
            });
        }
    }

    /// The socket closed or the stream is dropped: finish what can be finished.
    pub fn close(&mut self, id: StreamId, out: &mut Vec<ConnExchange>) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        let mut exchanges = Vec::new();
        conn.parser.close(&mut exchanges, &mut self.stats.protocol);
        self.emit(conn.info, &mut exchanges, out);
    }

    pub fn close_process(&mut self, tgid: u32, out: &mut Vec<ConnExchange>) {
        let ids: Vec<StreamId> = self
            .conns
            .keys()
            .filter(|k| k.tgid == tgid)
            .copied()
            .collect();
        for id in ids {
            self.close(id, out);
        }
    }

    pub fn expire_idle(&mut self, now_ns: u64, out: &mut Vec<ConnExchange>) {
        let timeout = self.limits.idle_timeout_ns;
        let idle: Vec<StreamId> = self
            .conns
            .iter()
            .filter(|(_, c)| now_ns.saturating_sub(c.last_seen_ns) > timeout)
            .map(|(k, _)| *k)
            .collect();
        for id in idle {
            self.stats.streams_idle_expired += 1;
            self.close(id, out);
        }
    }

    pub fn close_all(&mut self, out: &mut Vec<ConnExchange>) {
        let ids: Vec<StreamId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, out);
        }
    }
}

/// Feeds recorded records through decode → conn → http, without the process table or output:
/// the pure pipeline, as benchmarks and regression tests need it.
pub fn replay<'a>(
    records: impl IntoIterator<Item = &'a [u8]>,
    table: &mut ConnTable,
    out: &mut Vec<ConnExchange>,
) -> ReplayStats {
    use crate::kernel::decode::decode;
    let mut stats = ReplayStats::default();
    for bytes in records {
        stats.records += 1;
        match decode(bytes) {
            Ok(record) => table.on_record(&record, out),
            Err(_) => stats.decode_errors += 1,
        }
    }
    table.close_all(out);
    stats
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    pub records: u64,
    pub decode_errors: u64,
}

/// The address of a kernel socket record (`family`, 16 bytes, IPv4 in the first four); an
/// IPv4-mapped IPv6 address is shown as IPv4.
pub fn ip_of(family: u16, bytes: &[u8; 16]) -> Option<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match family {
        agent_common::event::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        agent_common::event::AF_INET6 => {
            let v6 = Ipv6Addr::from(*bytes);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

fn endpoints(record: &SocketRecord) -> Option<Endpoints> {
    use std::net::SocketAddr;
    Some(Endpoints {
        local: SocketAddr::new(ip_of(record.family, &record.local_addr)?, record.local_port),
        remote: SocketAddr::new(
            ip_of(record.family, &record.remote_addr)?,
            record.remote_port,
        ),
    })
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
