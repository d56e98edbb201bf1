//! One sink = a bounded queue, a worker thread that batches and delivers through a transport,
//! retries with backoff, and a disk spool for what the queue cannot hold while the transport is
//! slow or down. The capture loop only ever does a non-blocking send (or, when the queue is
//! full, one append to the spool): a dead sink never blocks capture, and everything that
//! cannot be kept is counted.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::spool::Spool;

/// One rendered event: its line and its time (ms since the epoch; HEC wants it apart).
#[derive(Debug, Clone)]
pub struct Line {
    /// One allocation of exactly the line (an `Arc<String>` was two, one of them oversized).
    pub text: Arc<str>,
    pub epoch_ms: i64,
}

/// A delivery mechanism. `send` gets a non-empty batch and either delivers all of it or fails;
/// `Partial` lets a bulk API report that only some lines must be retried.
pub trait Transport: Send {
    fn send(&mut self, batch: &[Line]) -> Result<(), SendError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Nothing (or an unknown part) was delivered; the whole batch is retried.
    #[error("{0}")]
    Retry(String),
    /// These batch indices must be retried, the rest were delivered or permanently rejected
    /// (`rejected` of them, counted and not retried).
    #[error("{retry_count} lines to retry, {rejected} rejected: {reason}", retry_count = retry.len())]
    Partial {
        retry: Vec<usize>,
        rejected: u64,
        reason: String,
    },
}

#[derive(Debug, Default)]
pub struct SinkStats {
    pub delivered: AtomicU64,
    pub queue_depth: AtomicU64,
    pub spooled: AtomicU64,
    pub spool_bytes: AtomicU64,
    /// Lines lost: queue full without a spool, spool full, or left over at exit.
    pub dropped: AtomicU64,
    pub rejected: AtomicU64,
    pub failed_sends: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct Tuning {
    pub queue_events: usize,
    pub batch_max_events: usize,
    pub batch_max_wait: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// Lines gathered on the capture thread before one hand-over to the worker: one channel send
/// (and at most one wake-up of the worker) per batch instead of per line.
const HANDOVER_LINES: usize = 256;

pub struct SinkHandle {
    pub name: String,
    tx: Option<SyncSender<Vec<Line>>>,
    /// Offered, not yet handed over (see [`SinkHandle::hand_over`]).
    pending: Vec<Line>,
    /// Bound of the queue, in lines.
    queue_lines: u64,
    spool: Option<Arc<Mutex<Spool>>>,
    pub stats: Arc<SinkStats>,
    thread: Option<JoinHandle<()>>,
}

impl SinkHandle {
    pub fn start(
        name: String,
        transport: Box<dyn Transport>,
        spool: Option<Spool>,
        tuning: Tuning,
    ) -> std::io::Result<Self> {
        // The queue is bounded in lines (queue_depth); the channel only needs a slot per batch.
        let (tx, rx) = sync_channel(tuning.queue_events.div_ceil(HANDOVER_LINES).max(1) + 1);
        let queue_lines = tuning.queue_events as u64;
        let stats = Arc::new(SinkStats::default());
        let spool = spool.map(|s| Arc::new(Mutex::new(s)));
        let worker = Worker {
            name: name.clone(),
            transport,
            rx,
            spool: spool.clone(),
            stats: stats.clone(),
            tuning,
        };
        let thread = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || worker.run())?;
        Ok(Self {
            name,
            tx: Some(tx),
            pending: Vec::new(),
            queue_lines,
            spool,
            stats,
            thread: Some(thread),
        })
    }

    /// Takes a line for delivery; it reaches the worker at the next [`Self::hand_over`] (or
    /// at once when enough lines are waiting).
    pub fn offer(&mut self, line: Line) {
        if self.tx.is_none() {
            // Closed (shut down, or a failed restart): counted, never silent.
            self.stats.dropped.fetch_add(1, Relaxed);
            return;
        }
        self.pending.push(line);
        if self.pending.len() >= HANDOVER_LINES {
            self.hand_over();
        }
    }

    /// Hands the lines offered so far to the worker in one send. What the bounded queue has no
    /// room for goes to the spool, or is dropped and counted.
    pub fn hand_over(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let n = batch.len() as u64;
        // Bounded in lines, give or take one hand-over batch.
        let room = self.queue_lines > self.stats.queue_depth.load(Relaxed);
        let refused = match (&self.tx, room) {
            (Some(tx), true) => {
                // Counted before the send, so the worker never sees the depth go below zero.
                self.stats.queue_depth.fetch_add(n, Relaxed);
                match tx.try_send(batch) {
                    Ok(()) => None,
                    Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) => {
                        self.stats.queue_depth.fetch_sub(n, Relaxed);
                        Some(batch)
                    }
                }
            }
            _ => Some(batch),
        };
        for line in refused.iter().flatten() {
            if !spool_line(self.spool.as_ref(), line, &self.stats) {
                self.stats.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Closes the queue: the worker delivers (or spools) what it holds, then stops.
    pub fn close(&mut self) {
        self.hand_over();
        drop(self.tx.take());
    }

    /// Waits up to `deadline` for the worker to finish after `close`.
    pub fn join(&mut self, deadline: Duration) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let until = Instant::now() + deadline;
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            log::warn!(
                "sink {}: still delivering after {deadline:?}; undelivered events stay in its spool (if any) for the next start",
                self.name
            );
        }
    }
}

/// Appends to the spool; false when there is none, it is full or it failed.
fn spool_line(spool: Option<&Arc<Mutex<Spool>>>, line: &Line, stats: &SinkStats) -> bool {
    let Some(spool) = spool else { return false };
    let Ok(mut spool) = spool.lock() else {
        return false;
    };
    let stored = format!("{} {}", line.epoch_ms, line.text);
    match spool.push(&stored) {
        Ok(true) => {
            stats.spooled.fetch_add(1, Relaxed);
            stats.spool_bytes.store(spool.pending_bytes(), Relaxed);
            true
        }
        Ok(false) => false,
        Err(e) => {
            log::warn!("{e}");
            false
        }
    }
}

fn unspool(stored: &str) -> Line {
    let (epoch, text) = stored.split_once(' ').unwrap_or(("0", stored));
    Line {
        text: Arc::from(text),
        epoch_ms: epoch.parse().unwrap_or(0),
    }
}

struct Worker {
    name: String,
    transport: Box<dyn Transport>,
    rx: Receiver<Vec<Line>>,
    spool: Option<Arc<Mutex<Spool>>>,
    stats: Arc<SinkStats>,
    tuning: Tuning,
}

enum Source {
    Queue,
    Spool(Vec<String>),
}

impl Worker {
    fn spool_is_empty(&self) -> bool {
        self.spool
            .as_ref()
            .and_then(|s| s.lock().ok().map(|s| s.is_empty()))
            .unwrap_or(true)
    }

    /// Moves everything queued into the spool (keeps order while the spool is being drained,
    /// and frees the queue while the transport is down). Returns false once the queue is
    /// closed and empty.
    fn queue_to_spool(&self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(lines) => {
                    self.stats
                        .queue_depth
                        .fetch_sub(lines.len() as u64, Relaxed);
                    for line in &lines {
                        if !spool_line(self.spool.as_ref(), line, &self.stats) {
                            self.stats.dropped.fetch_add(1, Relaxed);
                        }
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// The next batch: from the spool while it has lines (order), else from the queue.
    fn next_batch(&self, open: &mut bool) -> (Vec<Line>, Source) {
        if !self.spool_is_empty() {
            *open &= self.queue_to_spool();
            if let Some(spool) = &self.spool
                && let Ok(mut s) = spool.lock()
            {
                match s.peek(self.tuning.batch_max_events) {
                    Ok(stored) => {
                        let lines = stored.iter().map(|l| unspool(l)).collect();
                        return (lines, Source::Spool(stored));
                    }
                    Err(e) => log::warn!("sink {}: {e}", self.name),
                }
            }
        }
        let mut batch = Vec::new();
        let until = Instant::now() + self.tuning.batch_max_wait;
        while batch.len() < self.tuning.batch_max_events {
            let wait = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(lines) => {
                    self.stats
                        .queue_depth
                        .fetch_sub(lines.len() as u64, Relaxed);
                    if batch.is_empty() {
                        batch = lines;
                    } else {
                        batch.extend(lines);
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    *open = false;
                    break;
                }
            }
        }
        (batch, Source::Queue)
    }

    fn run(mut self) {
        let mut open = true;
        let mut backoff = self.tuning.backoff_min;
        let mut last_error_log: Option<Instant> = None;
        loop {
            let (batch, source) = self.next_batch(&mut open);
            if batch.is_empty() {
                if !open && self.spool_is_empty() {
                    return;
                }
                continue;
            }
            match self.transport.send(&batch) {
                Ok(()) => {
                    self.stats.delivered.fetch_add(batch.len() as u64, Relaxed);
                    self.settle(&source);
                    backoff = self.tuning.backoff_min;
                }
                Err(e) => {
                    self.stats.failed_sends.fetch_add(1, Relaxed);
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        log::warn!("sink {}: {e}; retrying in {backoff:?}", self.name);
                        last_error_log = Some(Instant::now());
                    }
                    let retry: Vec<&Line> = match &e {
                        SendError::Retry(_) => batch.iter().collect(),
                        SendError::Partial {
                            retry, rejected, ..
                        } => {
                            self.stats.rejected.fetch_add(*rejected, Relaxed);
                            let delivered = batch.len() as u64 - retry.len() as u64 - rejected;
                            self.stats.delivered.fetch_add(delivered, Relaxed);
                            retry.iter().filter_map(|&i| batch.get(i)).collect()
                        }
                    };
                    match source {
                        // Spooled lines stay at the head unless only some need retrying.
                        Source::Spool(_) if matches!(e, SendError::Retry(_)) => {}
                        _ => {
                            if let Source::Spool(_) = &source {
                                self.settle(&source);
                            }
                            for line in retry {
                                if !spool_line(self.spool.as_ref(), line, &self.stats) {
                                    self.stats.dropped.fetch_add(1, Relaxed);
                                }
                            }
                        }
                    }
                    if !open && self.spool.is_none() {
                        return;
                    }
                    self.sleep(backoff, &mut open);
                    backoff = (backoff * 2).min(self.tuning.backoff_max);
                }
            }
        }
    }

    fn settle(&self, source: &Source) {
        if let Source::Spool(stored) = source
            && let Some(spool) = &self.spool
            && let Ok(mut s) = spool.lock()
        {
            if let Err(e) = s.commit(stored) {
                log::warn!("sink {}: {e}", self.name);
            }
            self.stats.spool_bytes.store(s.pending_bytes(), Relaxed);
        }
    }

    /// Waits out a backoff while keeping the queue drained into the spool.
    fn sleep(&self, total: Duration, open: &mut bool) {
        let until = Instant::now() + total;
        while Instant::now() < until {
            if self.spool.is_some() {
                *open &= self.queue_to_spool();
            }
            if !*open {
                return;
            }
            std::thread::sleep(Duration::from_millis(50).min(total));
        }
    }
}
