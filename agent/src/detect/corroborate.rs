//! Layered injection findings: an injection the request carries is *confirmed* when the
//! response shows it worked — the server took as long as a time-delay payload asked for
//! (time-based blind SQL injection), an error or stack trace came back for an SQL payload, an
//! HTML page came back with the script a cross-site scripting payload carried (unescaped), a
//! system file's contents came back for a traversal, or a metadata service's answer for an
//! internal URL. Confirmed findings say how (`confirmed_by` in the evidence) and carry high
//! confidence; the others keep their rule's (medium).

use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Value, json};

use super::{catalogue::RuleId, view::View};

/// A delay that lands this close to what was asked counts (servers add their own time).
const DELAY_SHARE: f64 = 0.9;
/// Delays shorter than this are not believed: ordinary latency reaches them.
const MIN_DELAY_MS: u64 = 500;
/// Delays longer than this are not parsed (no server waits an hour to answer).
const MAX_DELAY_MS: u64 = 600_000;

fn delay_patterns() -> &'static (Regex, Regex) {
    static P: OnceLock<(Regex, Regex)> = OnceLock::new();
    P.get_or_init(|| {
        (
            // SLEEP(5) (MySQL, SQLite functions), pg_sleep(5), dbms_lock.sleep(5)
            crate::classify::static_regex(r"(?i)sleep\s*\(\s*(\d{1,6}(?:\.\d{1,3})?)\s*\)"),
            // WAITFOR DELAY '0:0:5' (SQL Server)
            crate::classify::static_regex(
                r"(?i)waitfor\s+delay\s+'(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d{1,3})?)'",
            ),
        )
    })
}

/// The delay (ms) an SQL payload asks the database for, if it asks for one. SQL comments are
/// read as spaces first (`SLEEP/**/(5)`).
pub fn requested_delay_ms(payload: &str) -> Option<u64> {
    let text = without_sql_comments(payload);
    let (sleep, waitfor) = delay_patterns();
    let secs = if let Some(c) = sleep.captures(&text) {
        c.get(1)?.as_str().parse::<f64>().ok()?
    } else {
        let c = waitfor.captures(&text)?;
        let part = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<f64>().ok());
        part(1)? * 3600.0 + part(2)? * 60.0 + part(3)?
    };
    let ms = (secs * 1000.0) as u64;
    (MIN_DELAY_MS..=MAX_DELAY_MS).contains(&ms).then_some(ms)
}

fn without_sql_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(rest.get(..start).unwrap_or_default());
        out.push(' ');
        rest = match rest.get(start + 2..).and_then(|r| r.find("*/")) {
            Some(end) => rest.get(start + 2 + end + 2..).unwrap_or_default(),
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// What a system file looks like when a traversal read it.
const FILE_MARKERS: [&str; 3] = ["root:x:0:0:", "[boot loader]", "; for 16-bit app support"];
/// What a cloud metadata service's answer contains.
const METADATA_MARKERS: [&str; 4] = [
    "ami-id",
    "instance-id",
    "computeMetadata",
    "iam/security-credentials",
];

/// Adds `confirmed_by` (and what confirmed it) to the evidence of injection hits the response
/// corroborates. `hits` are this exchange's, CFG-1 included; `usual_latency_us` is the
/// endpoint's median latency when its baseline has enough samples: a delay counts only on top
/// of it, so an endpoint that is always slow confirms nothing.
pub fn apply(hits: &mut [(RuleId, Value)], v: &View, usual_latency_us: Option<u64>) {
    let error_kind = hits
        .iter()
        .find(|(id, _)| *id == RuleId::Cfg1)
        .and_then(|(_, e)| e["kind"].as_str().map(str::to_owned));
    let latency_ms = v.event.latency_us.map(|us| us / 1000);
    let usual_ms = usual_latency_us.map_or(0, |us| us / 1000);
    for (id, evidence) in hits.iter_mut() {
        let kind = evidence["kind"].as_str().unwrap_or_default();
        let confirmation = match (*id, kind) {
            (RuleId::Inj1, "sqli") => {
                let delayed = evidence["requested_delay_ms"]
                    .as_u64()
                    .zip(latency_ms)
                    .filter(|&(asked, took)| {
                        took.saturating_sub(usual_ms) as f64 >= asked as f64 * DELAY_SHARE
                    });
                match (delayed, &error_kind) {
                    (Some((_, took)), _) => Some(json!({
                        "confirmed_by": "response_delay",
                        "latency_ms": took,
                        "usual_latency_ms": usual_latency_us.map(|us| us / 1000),
                    })),
                    (None, Some(error)) => {
                        Some(json!({ "confirmed_by": "error_in_response", "error": error }))
                    }
                    _ => None,
                }
            }
            (RuleId::Inj1, "xss") => {
                let html = v
                    .response_header("content-type")
                    .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
                let payload = html
                    .then(|| evidence["input"].as_str())
                    .flatten()
                    .and_then(|label| super::rules::inj1_input_value(v, label));
                payload
                    .filter(|p| reflected(p, v.response_text()))
                    .map(|_| json!({ "confirmed_by": "reflected_script" }))
            }
            (RuleId::Inj2, "path_traversal") => {
                let text = v.response_text();
                FILE_MARKERS
                    .iter()
                    .any(|m| text.contains(m))
                    .then(|| json!({ "confirmed_by": "file_contents" }))
            }
            (RuleId::Ssrf1, _) => {
                let text = v.response_text();
                (v.success() && METADATA_MARKERS.iter().any(|m| text.contains(m)))
                    .then(|| json!({ "confirmed_by": "metadata_response" }))
            }
            _ => None,
        };
        if let (Some(Value::Object(add)), Value::Object(into)) = (confirmation, evidence) {
            into.extend(add);
        }
    }
}

/// Bytes of the payload's script construct that must come back verbatim.
const REFLECTION_BYTES: usize = 48;

/// Whether an HTML response carries the payload's script construct unescaped: from its first
/// `<` (a tag), else from `javascript:` or an event handler, up to [`REFLECTION_BYTES`]. An
/// application that escapes its output sends `&lt;` instead and confirms nothing.
fn reflected(payload: &str, body: &str) -> bool {
    let lower = payload.to_ascii_lowercase();
    let start = payload
        .find('<')
        .or_else(|| lower.find("javascript:"))
        .or_else(|| super::rules::event_handlers(&lower).next());
    let Some(start) = start else {
        return false;
    };
    let mut end = (start + REFLECTION_BYTES).min(payload.len());
    while !payload.is_char_boundary(end) {
        end -= 1;
    }
    let construct = payload.get(start..end).unwrap_or_default();
    construct.len() >= 6 && body.contains(construct)
}

/// Whether a finding's evidence says the response confirmed it.
pub fn confirmed(evidence: &Value) -> bool {
    evidence.get("confirmed_by").is_some()
}

#[cfg(test)]
#[path = "corroborate_tests.rs"]
mod tests;
