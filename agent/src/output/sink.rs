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

/// One rendered event as a transport sees it: its line and its time (ms since the epoch; HEC
/// wants it apart), borrowed from the [`Batch`] that carries it.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub text: &'a str,
    pub epoch_ms: i64,
}

/// Lines on their way to a worker, their texts back to back in one buffer: offering a line is
/// a copy into it. A line of its own per event was a ~1 KiB allocation on the capture thread
/// and a free on the worker's, and glibc sorts its small free chunks before every such
/// allocation (malloc_consolidate). The worker hands emptied batches back, so in steady state
/// nothing is allocated per line or per batch.
#[derive(Debug, Default)]
pub struct Batch {
    text: String,
    /// Where each line ends in `text`, and its time.
    ends: Vec<(usize, i64)>,
}

impl Batch {
    fn with_capacity(bytes: usize, lines: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(lines),
        }
    }

    pub fn push(&mut self, text: &str, epoch_ms: i64) {
        self.text.push_str(text);
        self.ends.push((self.text.len(), epoch_ms));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Whether `bytes` more would grow the buffer (a copy of everything in it).
    fn would_grow(&self, bytes: usize) -> bool {
        self.text.capacity() - self.text.len() < bytes
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    pub fn lines(&self) -> impl Iterator<Item = Line<'_>> {
        let mut start = 0;
        self.ends.iter().map(move |&(end, epoch_ms)| {
            // Ends are pushed after whole `&str`s, so every range is on a char boundary.
            let text = self.text.get(start..end).unwrap_or_default();
            start = end;
            Line { text, epoch_ms }
        })
    }
}

/// A delivery mechanism. `send` gets a non-empty batch and either delivers all of it or fails;
/// `Partial` lets a bulk API report that only some lines must be retried.
pub trait Transport: Send {
    fn send(&mut self, batch: &[Line<'_>]) -> Result<(), SendError>;
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
/// A batch's buffer: about HANDOVER_LINES events with a typical set of headers. A batch is
/// handed over before a line would make it grow.
const BATCH_BYTES: usize = 256 * 1024;
/// Emptied batches waiting for reuse.
const SPARE_BATCHES: usize = 4;

pub struct SinkHandle {
    pub name: String,
    tx: Option<SyncSender<Batch>>,
    /// Offered, not yet handed over (see [`SinkHandle::hand_over`]).
    pending: Batch,
    /// Batches the worker has emptied, to fill again.
    spare: Receiver<Batch>,
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
        let (spare_tx, spare) = sync_channel(SPARE_BATCHES);
        let stats = Arc::new(SinkStats::default());
        let spool = spool.map(|s| Arc::new(Mutex::new(s)));
        let worker = Worker {
            name: name.clone(),
            transport,
            rx,
            spare: spare_tx,
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
            pending: Batch::with_capacity(BATCH_BYTES, HANDOVER_LINES),
            spare,
            queue_lines,
            spool,
            stats,
            thread: Some(thread),
        })
    }

    /// Takes a line for delivery; it reaches the worker at the next [`Self::hand_over`] (or
    /// at once when enough lines are waiting).
    pub fn offer(&mut self, text: &str, epoch_ms: i64) {
        if self.tx.is_none() {
            // Closed (shut down, or a failed restart): counted, never silent.
            self.stats.dropped.fetch_add(1, Relaxed);
            return;
        }
        if !self.pending.is_empty() && self.pending.would_grow(text.len()) {
            self.hand_over();
        }
        self.pending.push(text, epoch_ms);
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
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Batch::with_capacity(BATCH_BYTES, HANDOVER_LINES));
        let batch = std::mem::replace(&mut self.pending, next);
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
        for line in refused.iter().flat_map(Batch::lines) {
            if !spool_line(self.spool.as_ref(), &line, &self.stats) {
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
fn spool_line(spool: Option<&Arc<Mutex<Spool>>>, line: &Line<'_>, stats: &SinkStats) -> bool {
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

fn unspool(stored: &str) -> Line<'_> {
    let (epoch, text) = stored.split_once(' ').unwrap_or(("0", stored));
    Line {
        text,
        epoch_ms: epoch.parse().unwrap_or(0),
    }
}

struct Worker {
    name: String,
    transport: Box<dyn Transport>,
    rx: Receiver<Batch>,
    /// Where emptied batches go back to the capture thread.
    spare: SyncSender<Batch>,
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
                    for line in lines.lines() {
                        if !spool_line(self.spool.as_ref(), &line, &self.stats) {
                            self.stats.dropped.fetch_add(1, Relaxed);
                        }
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// The next lines to send: from the spool while it has lines (order), else what the queue
    /// holds (the hand-overs as they came, up to `batch_max_events` lines).
    fn next_batches(&self, open: &mut bool) -> (Vec<Batch>, Source) {
        if !self.spool_is_empty() {
            *open &= self.queue_to_spool();
            if let Some(spool) = &self.spool
                && let Ok(mut s) = spool.lock()
            {
                match s.peek(self.tuning.batch_max_events) {
                    Ok(stored) => {
                        let mut lines = Batch::default();
                        for line in stored.iter().map(|l| unspool(l)) {
                            lines.push(line.text, line.epoch_ms);
                        }
                        return (vec![lines], Source::Spool(stored));
                    }
                    Err(e) => log::warn!("sink {}: {e}", self.name),
                }
            }
        }
        let mut batches = Vec::new();
        let mut lines = 0;
        let until = Instant::now() + self.tuning.batch_max_wait;
        while lines < self.tuning.batch_max_events {
            let wait = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(batch) => {
                    self.stats
                        .queue_depth
                        .fetch_sub(batch.len() as u64, Relaxed);
                    lines += batch.len();
                    batches.push(batch);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    *open = false;
                    break;
                }
            }
        }
        (batches, Source::Queue)
    }

    fn run(mut self) {
        let mut open = true;
        let mut backoff = self.tuning.backoff_min;
        let mut last_error_log: Option<Instant> = None;
        loop {
            let (batches, source) = self.next_batches(&mut open);
            let batch: Vec<Line<'_>> = batches.iter().flat_map(Batch::lines).collect();
            if batch.is_empty() {
                if !open && self.spool_is_empty() {
                    return;
                }
                continue;
            }
            let stop = match self.transport.send(&batch) {
                Ok(()) => {
                    self.stats.delivered.fetch_add(batch.len() as u64, Relaxed);
                    self.settle(&source);
                    backoff = self.tuning.backoff_min;
                    false
                }
                Err(e) => {
                    self.stats.failed_sends.fetch_add(1, Relaxed);
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        log::warn!("sink {}: {e}; retrying in {backoff:?}", self.name);
                        last_error_log = Some(Instant::now());
                    }
                    let retry: Vec<&Line<'_>> = match &e {
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
                    let stop = !open && self.spool.is_none();
                    if !stop {
                        self.sleep(backoff, &mut open);
                        backoff = (backoff * 2).min(self.tuning.backoff_max);
                    }
                    stop
                }
            };
            drop(batch);
            self.recycle(batches);
            if stop {
                return;
            }
        }
    }

    /// Hands emptied batches back for the capture thread to fill (dropped when it has enough,
    /// or when it is gone).
    fn recycle(&self, batches: Vec<Batch>) {
        for mut batch in batches {
            // Not a batch that grew around an outsized line: spares stay at BATCH_BYTES.
            if (BATCH_BYTES..2 * BATCH_BYTES).contains(&batch.text.capacity()) {
                batch.clear();
                let _ = self.spare.try_send(batch);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(batch: &Batch) -> Vec<(String, i64)> {
        batch
            .lines()
            .map(|l| (l.text.to_owned(), l.epoch_ms))
            .collect()
    }

    #[test]
    fn a_batch_gives_back_each_line_with_its_time() {
        let mut batch = Batch::default();
        assert!(batch.lines().next().is_none());
        batch.push("{\"a\":1}", 10);
        batch.push("", 11);
        batch.push("{\"é\":\"ü\"}", 12);
        batch.push("x", 13);
        batch.push("{\"b\":2}", 14);
        assert_eq!(batch.len(), 5);
        assert_eq!(
            texts(&batch),
            [
                ("{\"a\":1}".to_owned(), 10),
                (String::new(), 11),
                ("{\"é\":\"ü\"}".to_owned(), 12),
                ("x".to_owned(), 13),
                ("{\"b\":2}".to_owned(), 14),
            ]
        );
    }

    /// Keeps what it is sent, for the test to read after the worker stops.
    struct Keep(Arc<Mutex<Vec<(String, i64)>>>);

    impl Transport for Keep {
        fn send(&mut self, batch: &[Line<'_>]) -> Result<(), SendError> {
            let mut kept = self
                .0
                .lock()
                .map_err(|_| SendError::Retry("poisoned".into()))?;
            kept.extend(batch.iter().map(|l| (l.text.to_owned(), l.epoch_ms)));
            Ok(())
        }
    }

    /// Offers `texts` to a sink over [`Keep`] (a hand-over every `hand_over_every` lines) and
    /// asserts they all arrive, in order, with their times.
    fn assert_delivered_in_order(texts: &[String], hand_over_every: usize) {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let tuning = Tuning {
            // Room for every hand-over: the test offers faster than the worker delivers.
            queue_events: 1_000_000,
            batch_max_events: 100,
            batch_max_wait: Duration::from_millis(5),
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(10),
        };
        let mut sink = SinkHandle::start("t".into(), Box::new(Keep(kept.clone())), None, tuning)
            .expect("start");
        for (i, text) in texts.iter().enumerate() {
            sink.offer(text, i as i64);
            if i % hand_over_every == 0 {
                sink.hand_over();
            }
        }
        sink.close();
        sink.join(Duration::from_secs(10));
        let kept = kept.lock().expect("kept");
        let expected: Vec<(String, i64)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as i64))
            .collect();
        assert!(
            *kept == expected,
            "{} lines kept of {}",
            kept.len(),
            texts.len()
        );
        assert_eq!(sink.stats.delivered.load(Relaxed), texts.len() as u64);
        assert_eq!(sink.stats.dropped.load(Relaxed), 0);
        assert_eq!(sink.stats.queue_depth.load(Relaxed), 0);
    }

    #[test]
    fn offered_lines_reach_the_transport_in_order_across_hand_overs() {
        // Enough hand-overs that batches come back from the worker and are filled again.
        let texts: Vec<String> = (0..HANDOVER_LINES * 12 + 7)
            .map(|i| format!("{{\"n\":{i}}}"))
            .collect();
        assert_delivered_in_order(&texts, 50);
    }

    #[test]
    fn lines_larger_than_a_batch_are_delivered_whole() {
        // Lines that fill a batch's buffer, and one larger than it, between small ones.
        let texts: Vec<String> = [100_000, 3, 200_000, 2 * BATCH_BYTES, 7, BATCH_BYTES - 1, 1]
            .iter()
            .enumerate()
            .map(|(i, &n)| format!("{i}{}", "é".repeat(n / 2)))
            .collect();
        assert_delivered_in_order(&texts, 1000);
    }
}
