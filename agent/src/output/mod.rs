//! The output stage: renders typed exchanges and findings — native JSON (their serde form),
//! OCSF and ECS (formats.rs) — once per format in use, and offers each rendered line to every
//! configured sink. Events leave the agent only through
//! here. Sinks deliver on their own threads (sink.rs); nothing here waits on a network.

pub mod drift_report;
pub mod formats;
pub mod http_sink;
pub mod native_event;
pub mod openapi;
pub mod sink;
pub mod sink_config;
pub mod spool;
pub mod transports;

use std::{sync::atomic::Ordering::Relaxed, time::Duration};

use formats::Format;

use crate::{detect::Finding, event::ExchangeEvent};
use sink::SinkHandle;
use sink_config::{SinkConfig, SinkError};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("serialising an event failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// The native JSON line of an exchange or finding: the serde form of the typed record, the
/// one writer for live output (replay reads it back with serde). sonic-rs was measured here as
/// a drop-in and was no faster without compile-time SIMD features, which a portable binary
/// cannot assume.
pub fn native_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, OutputError> {
    // Sized for a typical event (~1 KiB): serde_json's default 128 bytes grew by copying four
    // times per event.
    let mut out = Vec::with_capacity(NATIVE_CAPACITY);
    serde_json::to_writer(&mut out, value)?;
    // serde_json writes only valid UTF-8.
    String::from_utf8(out).map_err(|e| OutputError::Json(serde::ser::Error::custom(e)))
}

const NATIVE_CAPACITY: usize = 1536;

/// Per-sink counters at one moment (for the exit summary and /metrics).
#[derive(Debug, Clone, Default)]
pub struct SinkSnapshot {
    pub name: String,
    pub delivered: u64,
    pub queue_depth: u64,
    pub spooled: u64,
    pub spool_bytes: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub failed_sends: u64,
}

pub struct Output {
    sinks: Vec<(Format, SinkHandle)>,
    /// Where the native line is rendered before it is copied into each sink's batch: kept
    /// between events, so rendering allocates nothing.
    scratch: String,
    pub events_written: u64,
    pub findings_written: u64,
    pub enforcements_written: u64,
}

impl Output {
    /// Starts every sink; with none configured, one native stdout sink.
    pub fn start(configs: &[SinkConfig], host: &str) -> Result<Self, OutputError> {
        let default = [SinkConfig::default()];
        let configs = if configs.is_empty() {
            &default[..]
        } else {
            configs
        };
        let mut sinks = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let handle = sink_config::start(i, c, host)?;
            log::info!(
                "sink {} ({:?}, {:?} format) started",
                handle.name,
                c.kind,
                c.format.unwrap_or(Format::Native)
            );
            sinks.push((c.format.unwrap_or(Format::Native), handle));
        }
        Ok(Self {
            sinks,
            scratch: String::with_capacity(native_event::CAPACITY),
            events_written: 0,
            findings_written: 0,
            enforcements_written: 0,
        })
    }

    /// Renders an exchange once per format in use and offers it to every sink.
    pub fn write(&mut self, event: &ExchangeEvent<'_>, epoch_ms: i64) -> Result<(), OutputError> {
        self.offer(
            |scratch| {
                native_event::render_into(event, scratch);
                Ok(())
            },
            || formats::ocsf(event, epoch_ms).to_string(),
            || formats::ecs(event).to_string(),
            epoch_ms,
        )?;
        self.events_written += 1;
        Ok(())
    }

    /// Renders a finding once per format in use and offers it to every sink.
    pub fn write_finding(&mut self, finding: &Finding, epoch_ms: i64) -> Result<(), OutputError> {
        self.offer(
            |scratch| native_json(finding).map(|text| scratch.push_str(&text)),
            || formats::finding_ocsf(finding, epoch_ms).to_string(),
            || formats::finding_ecs(finding).to_string(),
            epoch_ms,
        )?;
        self.findings_written += 1;
        Ok(())
    }

    /// Renders the evidence of an enforcement verdict once per format in use.
    pub fn write_enforcement(
        &mut self,
        event: &crate::enforce::evidence::EnforcementEvent,
    ) -> Result<(), OutputError> {
        let epoch_ms = crate::app::event_loop::unix_now_ms();
        self.offer(
            |scratch| native_json(event).map(|text| scratch.push_str(&text)),
            || formats::enforcement_ocsf(event, epoch_ms).to_string(),
            || formats::enforcement_ecs(event).to_string(),
            epoch_ms,
        )?;
        self.enforcements_written += 1;
        Ok(())
    }

    /// Renders what the sinks need (the native line into the kept scratch buffer, appended to
    /// by `native`) and copies it into each sink's batch.
    fn offer(
        &mut self,
        native: impl FnOnce(&mut String) -> Result<(), OutputError>,
        ocsf: impl FnOnce() -> String,
        ecs: impl FnOnce() -> String,
        epoch_ms: i64,
    ) -> Result<(), OutputError> {
        let needs = |f: Format| self.sinks.iter().any(|(g, _)| *g == f);
        let (wants_native, wants_ocsf, wants_ecs) = (
            needs(Format::Native),
            needs(Format::Ocsf),
            needs(Format::Ecs),
        );
        self.scratch.clear();
        if wants_native {
            native(&mut self.scratch)?;
        }
        let ocsf = wants_ocsf.then(ocsf);
        let ecs = wants_ecs.then(ecs);
        for (format, sink) in &mut self.sinks {
            let text = match format {
                Format::Native => wants_native.then_some(self.scratch.as_str()),
                Format::Ocsf => ocsf.as_deref(),
                Format::Ecs => ecs.as_deref(),
            };
            if let Some(text) = text {
                sink.offer(text, epoch_ms);
            }
        }
        Ok(())
    }

    /// Hands what was offered since the last call to the sink workers (once per drain of the
    /// kernel's buffer, so a worker is woken once per batch, not once per event).
    pub fn hand_over(&mut self) {
        for (_, sink) in &mut self.sinks {
            sink.hand_over();
        }
    }

    pub fn snapshot(&self) -> Vec<SinkSnapshot> {
        self.sinks.iter().map(|(_, s)| snapshot_of(s)).collect()
    }

    /// Lets every sink deliver what it holds (waiting up to `deadline` for each); returns the
    /// final counts.
    pub fn shutdown(&mut self, deadline: Duration) -> Vec<SinkSnapshot> {
        for (_, s) in &mut self.sinks {
            s.close();
        }
        for (_, s) in &mut self.sinks {
            s.join(deadline);
        }
        self.snapshot()
    }
}

fn snapshot_of(s: &SinkHandle) -> SinkSnapshot {
    SinkSnapshot {
        name: s.name.clone(),
        delivered: s.stats.delivered.load(Relaxed),
        queue_depth: s.stats.queue_depth.load(Relaxed),
        spooled: s.stats.spooled.load(Relaxed),
        spool_bytes: s.stats.spool_bytes.load(Relaxed),
        dropped: s.stats.dropped.load(Relaxed),
        rejected: s.stats.rejected.load(Relaxed),
        failed_sends: s.stats.failed_sends.load(Relaxed),
    }
}

/// One summary fragment per sink for the exit line.
pub fn summary(sinks: &[SinkSnapshot]) -> String {
    sinks
        .iter()
        .map(|s| {
            format!(
                "sink {}: delivered={} queued={} spooled={} spool_bytes={} dropped={} rejected={} failed_sends={}",
                s.name, s.delivered, s.queue_depth, s.spooled, s.spool_bytes, s.dropped, s.rejected, s.failed_sends
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
