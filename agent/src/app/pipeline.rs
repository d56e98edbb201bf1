//! Record handling after decode: routes records to the connection table, process table and
//! library discovery, and sends finished exchanges to the output stage.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use crate::{
    classify::redact::TokenKey,
    conn::{ConnExchange, ConnTable, StreamId},
    contain::{Stage, contained},
    enforce::{Enforcer, VerdictContext},
    enrich::process::ProcessTable,
    event::build::{Enrichment, build, start_epoch_ms},
    kernel::control::EnforceMaps,
    kernel::counters::AgentCounters,
    kernel::decode::{Record, c_string, decode},
    kernel::recording::Recorder,
    kernel::tls::Attacher,
    output::{Output, OutputError},
};

/// After an exec, look for new libraries at these delays (the dynamic loader maps them within
/// milliseconds; later dlopen calls are caught by the later looks).
const RESCAN_DELAYS: [Duration; 3] = [
    Duration::from_millis(5),
    Duration::from_millis(100),
    Duration::from_millis(600),
];
const MAX_PENDING_RESCANS: usize = 8192;

/// The body bytes the detection rules may read for an exchange (decompressed), borrowed.
pub fn body_tap(item: &ConnExchange) -> crate::detect::content::Bodies<'_> {
    fn prefix(m: Option<&crate::protocol::Message>) -> &[u8] {
        m.and_then(|m| m.body.as_ref())
            .map_or(&[][..], |b| b.prefix.as_slice())
    }
    let response = item.exchange.response.as_ref();
    let encoding = response
        .and_then(|r| r.head.header("content-encoding"))
        .and_then(|v| std::str::from_utf8(v).ok());
    crate::detect::content::Bodies::from_raw(
        prefix(item.exchange.request.as_ref()),
        prefix(response),
        encoding,
    )
    .with_request_cookie(raw_cookie(item))
}

/// The request's Cookie header(s) as sent, joined as HTTP/2 joins its cookie crumbs: events
/// redact cookies whole, and the injection rules read each cookie's value.
fn raw_cookie(item: &ConnExchange) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let Some(request) = item.exchange.request.as_ref() else {
        return Cow::Borrowed("");
    };
    let mut values = request
        .head
        .raw_headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"cookie"))
        .map(|(_, value)| String::from_utf8_lossy(value));
    let Some(first) = values.next() else {
        return Cow::Borrowed("");
    };
    values.fold(first, |mut all, more| {
        let joined = all.to_mut();
        joined.push_str("; ");
        joined.push_str(&more);
        all
    })
}

pub struct Pipeline {
    pub conns: ConnTable,
    pub processes: ProcessTable,
    /// Container and pod of each cgroup.
    pub workloads: crate::enrich::workload::Workloads,
    pub counters: AgentCounters,
    pub output: Output,
    /// `--body-route` prefixes (empty: bodies of every route, when body capture is on).
    pub body_routes: Vec<String>,
    /// The detection engine; None when detections are off.
    pub detect: Option<crate::detect::Engine>,
    /// The enforcement stage; None when `[enforce] mode = "off"`.
    pub enforce: Option<Enforcer<EnforceMaps>>,
    /// `[enforce] audit_log`, when enforcement is on and the log is not off.
    pub audit: Option<crate::enforce::audit::AuditLog>,
    /// Body bytes events show (`--body-prefix-bytes`); the parser may keep more for the rules.
    pub event_body_bytes: usize,
    /// `--bench-capture-only`: finished exchanges are counted and dropped.
    pub capture_only: bool,
    host: String,
    monotonic_to_unix_ns: i128,
    rescans: VecDeque<(Instant, u32, usize)>,
    finished: Vec<ConnExchange>,
    last_decode_error_log: Option<Instant>,
    exited: Vec<u32>,
    recorder: Option<Recorder>,
    key: TokenKey,
}

impl Pipeline {
    pub fn new(
        conns: ConnTable,
        output: Output,
        host: String,
        monotonic_to_unix_ns: i128,
        key: TokenKey,
    ) -> Self {
        Self {
            conns,
            processes: ProcessTable::default(),
            workloads: crate::enrich::workload::Workloads::default(),
            counters: AgentCounters::default(),
            output,
            body_routes: Vec::new(),
            detect: None,
            enforce: None,
            audit: None,
            event_body_bytes: 0,
            capture_only: false,
            host,
            monotonic_to_unix_ns,
            rescans: VecDeque::new(),
            finished: Vec::new(),
            last_decode_error_log: None,
            exited: Vec::new(),
            recorder: None,
            key,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn record_to(&mut self, recorder: Recorder) {
        self.recorder = Some(recorder);
    }

    /// Handles one raw kernel record; a bug it triggers costs that record only.
    pub fn handle(&mut self, bytes: &[u8]) {
        let mut errors = self.counters.internal_errors;
        contained(Stage::Conn, &mut errors, || self.handle_record(bytes));
        self.counters.internal_errors = errors;
    }

    fn handle_record(&mut self, bytes: &[u8]) {
        self.counters.records += 1;
        if let Some(recorder) = self.recorder.as_mut()
            && let Err(e) = recorder.write(bytes)
        {
            log::error!("{e}; raw recording stopped");
            self.recorder = None;
        }
        let record = match decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.counters.decode_errors += 1;
                // Rate-limited: a corrupt stream must not flood stderr.
                if self
                    .last_decode_error_log
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
                {
                    log::warn!(
                        "dropping undecodable record: {e} (total {})",
                        self.counters.decode_errors
                    );
                    self.last_decode_error_log = Some(Instant::now());
                }
                return;
            }
        };
        // What the process and workload tables learn from the record; then the connection
        // table's own dispatch (shared with recorded input).
        match &record {
            Record::Data(data, payload) => {
                self.counters.payload_bytes += payload.len() as u64;
                // Learn the exe while the process is alive (short-lived ones are gone by flush),
                // once per stream rather than per record.
                let tgid = (data.header.pid_tgid >> 32) as u32;
                if !self.conns.contains(StreamId {
                    tgid,
                    stream: data.stream,
                }) {
                    self.processes.learn(tgid);
                }
                // A hash lookup when known; the stream may predate its first data record (a
                // socket record opens it), so this is not tied to the stream's first record.
                self.workloads.learn(tgid, data.cgroup_id);
            }
            Record::Socket(_) | Record::Close(_) => {}
            Record::Exec(exec) => {
                let pid = (exec.header.pid_tgid >> 32) as u32;
                self.processes.on_exec(pid, c_string(&exec.filename));
                self.schedule_rescan(pid, 0);
            }
            Record::Exit(exit) => {
                // Forgotten only after the next flush: its exchanges still need its exe.
                self.exited.push((exit.header.pid_tgid >> 32) as u32);
            }
            Record::Verdict(verdict) => self.on_verdict(verdict),
        }
        self.conns.on_record(&record, &mut self.finished);
    }

    /// A kernel verdict: reset the connection now (the gate holds it until then), and write
    /// the evidence.
    fn on_verdict(&mut self, verdict: &agent_common::enforce::VerdictRecord) {
        let Some(enforcer) = self.enforce.as_mut() else {
            return;
        };
        let tgid = (verdict.header.pid_tgid >> 32) as u32;
        self.processes.learn(tgid);
        let ctx = VerdictContext {
            host: &self.host,
            exe: self.processes.exe(tgid),
            monotonic_to_unix_ns: self.monotonic_to_unix_ns,
        };
        let event = enforcer.on_verdict(
            verdict,
            &ctx,
            crate::enforce::reset::reset,
            crate::app::event_loop::monotonic_now_ns,
        );
        self.write_evidence(&event);
    }

    /// Evidence of a verdict (the kernel's or the decision service's) to every sink and the
    /// audit log.
    pub fn write_evidence(&mut self, event: &crate::enforce::evidence::EnforcementEvent) {
        let errors = &mut self.counters.internal_errors;
        let output = &mut self.output;
        if let Some(Err(e)) = contained(Stage::Output, errors, || output.write_enforcement(event)) {
            log::error!("enforcement evidence not written: {e}");
        }
        if let Some(audit) = self.audit.as_mut() {
            match crate::output::native_json(event) {
                Ok(line) => audit.append(&line),
                Err(e) => log::error!("enforcement evidence not audited: {e}"),
            }
        }
    }

    /// Mirrors what detection listed into the kernel (enforcement on).
    fn sync_lists(&mut self) {
        let (Some(engine), Some(enforcer)) = (self.detect.as_mut(), self.enforce.as_mut()) else {
            return;
        };
        let changes = engine.take_list_changes();
        if !changes.is_empty() {
            enforcer.apply(
                changes,
                crate::app::event_loop::unix_now_ms(),
                crate::app::event_loop::monotonic_now_ns(),
            );
        }
        enforcer.publish_if_dirty();
    }

    fn schedule_rescan(&mut self, pid: u32, attempt: usize) {
        let Some(delay) = RESCAN_DELAYS.get(attempt) else {
            return;
        };
        if self.rescans.len() >= MAX_PENDING_RESCANS {
            self.counters.rescans_dropped += 1;
            return;
        }
        self.rescans
            .push_back((Instant::now() + *delay, pid, attempt));
    }

    /// Processes whose libraries are due for a look.
    pub fn due_rescans(&mut self) -> Vec<u32> {
        let now = Instant::now();
        let mut due = Vec::new();
        let mut later = VecDeque::with_capacity(self.rescans.len());
        while let Some((at, pid, attempt)) = self.rescans.pop_front() {
            if at <= now {
                due.push((pid, attempt));
            } else {
                later.push_back((at, pid, attempt));
            }
        }
        self.rescans = later;
        for &(pid, attempt) in &due {
            self.schedule_rescan(pid, attempt + 1);
        }
        due.into_iter().map(|(pid, _)| pid).collect()
    }

    /// Builds the typed exchange of each finished item, judges it, and hands it and its
    /// findings to the sinks.
    pub fn flush(&mut self, attacher: &Attacher) -> Result<(), OutputError> {
        let mut finished = std::mem::take(&mut self.finished);
        if self.capture_only {
            self.counters.bench_dropped_exchanges += finished.len() as u64;
            finished.clear();
        }
        let emitted = finished
            .drain(..)
            .try_for_each(|item| self.emit(&item, attacher));
        // The emptied vector goes back with its capacity: the next drain's exchanges are
        // pushed into it without growing it again (each exchange is a few hundred bytes).
        if self.finished.is_empty() {
            self.finished = finished;
        }
        emitted?;
        self.sync_lists();
        self.output.hand_over();
        self.counters.events_written = self.output.events_written;
        if let Some(recorder) = self.recorder.as_mut()
            && let Err(e) = recorder.flush()
        {
            log::error!("{e}; raw recording stopped");
            self.recorder = None;
        }
        for pid in self.exited.drain(..) {
            self.processes.on_exit(pid);
        }
        Ok(())
    }

    /// One exchange through event → detect → output; each stage's bugs are contained apart,
    /// so a rule that trips still lets the exchange itself be written.
    fn emit(&mut self, item: &ConnExchange, attacher: &Attacher) -> Result<(), OutputError> {
        let exe = self.processes.exe(item.conn.tgid);
        let library = attacher.library_path(item.conn.library_id);
        let workload = self.workloads.resolve(item.conn.cgroup_id);
        let ctx = Enrichment {
            host: &self.host,
            exe,
            library,
            library_version: attacher.library_version(item.conn.library_id),
            monotonic_to_unix_ns: self.monotonic_to_unix_ns,
            body_routes: &self.body_routes,
            event_body_bytes: self.event_body_bytes,
            workload: &workload,
            node: self.workloads.node(),
            key: &self.key,
            credential_key: self.enforce.as_ref().map(|e| e.credential_key()),
        };
        let errors = &mut self.counters.internal_errors;
        let epoch_ms = start_epoch_ms(item, self.monotonic_to_unix_ns);
        let Some(event) = contained(Stage::Event, errors, || build(item, &ctx)) else {
            return Ok(());
        };
        // Operators block by the tag events show: remember which kernel key it stands for.
        if let Some(enforcer) = self.enforce.as_mut()
            && let Some(request) = &event.request
            && let Some(key) = request.credential_key
            && let Some(tag) = request
                .headers
                .get("authorization")
                .or_else(|| request.headers.get("x-api-key"))
                .and_then(crate::detect::view::redaction_tag)
        {
            enforcer.note_credential(tag, key);
        }
        let findings = match self.detect.as_mut() {
            None => Vec::new(),
            Some(engine) => contained(Stage::Detect, errors, || {
                // The rules read the typed exchange plus the bounded body tap that events do
                // not show.
                engine.inspect(&event, epoch_ms, &body_tap(item))
            })
            .unwrap_or_default(),
        };
        let output = &mut self.output;
        let written = contained(Stage::Output, errors, || -> Result<(), OutputError> {
            output.write(&event, epoch_ms)?;
            for finding in &findings {
                output.write_finding(finding, epoch_ms)?;
            }
            Ok(())
        });
        written.unwrap_or(Ok(()))
    }

    pub fn expire_idle(&mut self, now_ns: u64) {
        self.conns.expire_idle(now_ns, &mut self.finished);
    }

    pub fn close_all(&mut self) {
        self.conns.close_all(&mut self.finished);
    }
}
