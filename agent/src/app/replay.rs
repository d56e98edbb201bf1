//! `cleartap replay FILE`: the detections over saved exchange events, without eBPF — for
//! testing rules, tuning thresholds and investigating. Reads the agent's own JSON lines (native
//! exchanges; findings and other lines in the file are skipped and counted), in file order, each
//! at its own `time`.

use std::{
    io::{BufRead, Write},
    path::Path,
    time::Instant,
};

use crate::{
    detect::{DetectConfig, Engine},
    event::{ExchangeEvent, SCHEMA},
};

#[derive(Debug, Default)]
pub struct ReplaySummary {
    pub exchanges: u64,
    pub skipped_lines: u64,
    pub findings: u64,
    pub by_rule: std::collections::BTreeMap<String, u64>,
    /// Time of the latest exchange replayed (dynamic lists are dumped as of then).
    pub last_epoch_ms: i64,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing findings: {0}")]
    Write(#[source] std::io::Error),
}

/// Runs `config`'s detections over `input`, writing findings (JSON lines) to `out`.
pub fn run(
    mut input: impl BufRead,
    source: &Path,
    config: DetectConfig,
    out: &mut impl Write,
) -> Result<(ReplaySummary, Engine), ReplayError> {
    let mut engine = Engine::new(config);
    let mut summary = ReplaySummary::default();
    let started = Instant::now();
    // One line buffer, reused: events borrow their text from it while they are judged.
    let mut line = String::new();
    loop {
        line.clear();
        let read = input.read_line(&mut line).map_err(|e| ReplayError::Read {
            path: source.display().to_string(),
            source: e,
        })?;
        if read == 0 {
            break;
        }
        // Parsed once, whole: a line that is no exchange event (a finding, an inventory, text)
        // fails to parse or carries another schema.
        let event =
            match serde_json::from_str::<ExchangeEvent<'_>>(line.trim_end_matches(['\n', '\r'])) {
                Ok(event) if event.schema == SCHEMA => event,
                _ => {
                    summary.skipped_lines += 1;
                    continue;
                }
            };
        let Some(when) = event.epoch_ms() else {
            summary.skipped_lines += 1;
            continue;
        };
        summary.exchanges += 1;
        let bodies = crate::detect::content::Bodies::from_event(&event);
        summary.last_epoch_ms = summary.last_epoch_ms.max(when);
        for finding in engine.inspect(&event, when, &bodies) {
            summary.findings += 1;
            *summary
                .by_rule
                .entry(finding.rule.as_str().to_owned())
                .or_default() += 1;
            let text = serde_json::to_string(&finding).map_err(std::io::Error::from);
            writeln!(out, "{}", text.map_err(ReplayError::Write)?).map_err(ReplayError::Write)?;
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok((summary, engine))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_exchanges_and_skips_other_lines() {
        let mut lines = String::new();
        for i in 1..=25 {
            let mut e = crate::detect::test_events::exchange(
                "GET",
                &format!("/users/{i}"),
                200,
                serde_json::json!({}),
            );
            e["time"] = format!("2025-11-21T04:40:{:02}Z", i % 60).into();
            lines.push_str(
                &crate::detect::test_events::with_token(e, "eeeeeeeeeeeeeeee").to_string(),
            );
            lines.push('\n');
        }
        lines.push_str("{\"schema\":\"cleartap.finding/1\"}\nnot json\n");
        // An exchange in every field but its schema (another version, say): not replayed.
        let mut other =
            crate::detect::test_events::exchange("GET", "/users/1", 200, serde_json::json!({}));
        other["schema"] = "cleartap.http_exchange/2".into();
        lines.push_str(&other.to_string());
        lines.push_str("\r\n\n");
        let mut out = Vec::new();
        let (summary, _) = run(
            lines.as_bytes(),
            Path::new("-"),
            DetectConfig::default(),
            &mut out,
        )
        .expect("replay");
        assert_eq!(
            (summary.exchanges, summary.skipped_lines, summary.findings),
            (25, 4, 1)
        );
        let finding: serde_json::Value =
            serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap_or(b""))
                .expect("finding json");
        assert_eq!(finding["rule"]["id"], "BOLA-1");
        assert_eq!(finding["time"], "2025-11-21T04:40:20Z");
    }
}
