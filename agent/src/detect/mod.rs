//! Detections: exchange events in, findings out (schema `cleartap.finding/1`). Rules read the
//! native event — the same redacted JSON the sinks get — so `cleartap replay` over saved events
//! gives what the live agent gave. Server-side exchanges are judged (the API this node serves);
//! a client's copy of the same exchange is not judged twice.

pub mod inventory;
pub mod jwt;
pub mod route;
pub mod rules;
#[cfg(test)]
pub(crate) mod test_events;
pub mod view;
pub mod windows;

use serde::Deserialize;
use serde_json::{Value, json};

use inventory::{Inventory, Seen};
use view::View;
use windows::{Bounded, Windows};

pub struct RuleInfo {
    pub id: &'static str,
    pub title: &'static str,
    pub owasp: &'static str,
    pub severity: &'static str,
    pub confidence: &'static str,
}

macro_rules! rule {
    ($id:literal, $title:literal, $owasp:literal, $sev:literal, $conf:literal) => {
        RuleInfo {
            id: $id,
            title: $title,
            owasp: $owasp,
            severity: $sev,
            confidence: $conf,
        }
    };
}

/// Every rule this build knows (DESIGN.md's catalogue ids).
pub const CATALOGUE: [RuleInfo; 15] = [
    rule!(
        "AUTH-1",
        "JWT with alg none or missing accepted",
        "API2:2023",
        "critical",
        "high"
    ),
    rule!(
        "AUTH-2",
        "Expired or not-yet-valid JWT accepted",
        "API2:2023",
        "high",
        "high"
    ),
    rule!(
        "AUTH-5",
        "Credentials exposed in the URL or over plain HTTP",
        "API2:2023",
        "medium",
        "high"
    ),
    rule!(
        "AUTH-6",
        "Authentication failures from one client (brute force)",
        "API2:2023",
        "high",
        "medium"
    ),
    rule!(
        "TOK-1",
        "One token used from several client addresses",
        "API2:2023",
        "medium",
        "medium"
    ),
    rule!(
        "TOK-2",
        "High client-error ratio for one actor",
        "API2:2023",
        "medium",
        "medium"
    ),
    rule!(
        "BOLA-1",
        "Object id enumeration by one actor on one route",
        "API1:2023",
        "high",
        "medium"
    ),
    rule!(
        "DATA-2",
        "Sensitive data in the URL",
        "API3:2023",
        "medium",
        "high"
    ),
    rule!(
        "INJ-1",
        "SQL injection or XSS in a request parameter",
        "API8:2023",
        "high",
        "high"
    ),
    rule!(
        "INJ-2",
        "Path traversal, command or NoSQL injection in a request",
        "API8:2023",
        "high",
        "medium"
    ),
    rule!(
        "SSRF-1",
        "Request parameter points at an internal address",
        "API7:2023",
        "high",
        "medium"
    ),
    rule!("SCAN-1", "Known scanner", "API8:2023", "low", "high"),
    rule!(
        "CFG-2",
        "CORS lets any origin read credentialed responses",
        "API8:2023",
        "medium",
        "high"
    ),
    rule!(
        "INV-1",
        "New route after the learning period (shadow API)",
        "API9:2023",
        "low",
        "medium"
    ),
    rule!(
        "INV-2",
        "Older API version still in use",
        "API9:2023",
        "low",
        "medium"
    ),
];

pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    CATALOGUE.iter().find(|r| r.id == id)
}

/// `[detect]` of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    pub enabled: bool,
    pub disabled_rules: Vec<String>,
    pub bola_distinct_ids: u64,
    pub bola_window_secs: u64,
    pub tok1_distinct_ips: u64,
    pub tok1_window_secs: u64,
    pub tok2_min_requests: u64,
    pub tok2_error_ratio: f64,
    pub auth6_failures: u64,
    pub inventory_learning_secs: u64,
    pub max_routes: usize,
    pub max_keys: usize,
    /// A finding repeats (rule, actor, route) at most once per this many seconds.
    pub dedup_secs: u64,
    /// Request path prefixes never judged.
    pub allow_routes: Vec<String>,
    /// Actors (token tags `[REDACTED:…]` or client IPs) never judged.
    pub allow_actors: Vec<String>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            disabled_rules: Vec::new(),
            bola_distinct_ids: 20,
            bola_window_secs: 60,
            tok1_distinct_ips: 3,
            tok1_window_secs: 300,
            tok2_min_requests: 20,
            tok2_error_ratio: 0.5,
            auth6_failures: 10,
            inventory_learning_secs: 300,
            max_routes: 10_000,
            max_keys: 50_000,
            dedup_secs: 600,
            allow_routes: Vec::new(),
            allow_actors: Vec::new(),
        }
    }
}

impl DetectConfig {
    /// Errors name the key (`detect.…`) and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        for id in &self.disabled_rules {
            if rule_info(id).is_none() {
                let known: Vec<&str> = CATALOGUE.iter().map(|r| r.id).collect();
                return Err(format!(
                    "detect.disabled_rules: unknown rule {id:?}; known: {}",
                    known.join(", ")
                ));
            }
        }
        let at_least = |name: &str, v: u64, min: u64| {
            if v < min {
                Err(format!("detect.{name} = {v}: must be at least {min}"))
            } else {
                Ok(())
            }
        };
        at_least("bola_distinct_ids", self.bola_distinct_ids, 2)?;
        at_least("bola_window_secs", self.bola_window_secs, 1)?;
        at_least("tok1_distinct_ips", self.tok1_distinct_ips, 2)?;
        at_least("tok1_window_secs", self.tok1_window_secs, 1)?;
        at_least("tok2_min_requests", self.tok2_min_requests, 1)?;
        at_least("auth6_failures", self.auth6_failures, 1)?;
        at_least("max_routes", self.max_routes as u64, 1)?;
        at_least("max_keys", self.max_keys as u64, 100)?;
        if !(0.0..=1.0).contains(&self.tok2_error_ratio) || self.tok2_error_ratio == 0.0 {
            return Err(format!(
                "detect.tok2_error_ratio = {}: must be in (0, 1]",
                self.tok2_error_ratio
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct DetectStats {
    pub exchanges_judged: u64,
    pub findings: u64,
    pub suppressed_repeats: u64,
}

type StatelessRule = fn(&View) -> Option<Value>;

pub struct Engine {
    config: DetectConfig,
    windows: Windows,
    pub inventory: Inventory,
    /// (rule, actor, route) → (last emitted ms, repeats since).
    dedup: Bounded<(i64, u64)>,
    pub stats: DetectStats,
}

impl Engine {
    pub fn new(config: DetectConfig) -> Self {
        Self {
            windows: Windows::new(config.max_keys),
            inventory: Inventory::new(config.max_routes, config.inventory_learning_secs),
            dedup: Bounded::new(config.max_keys),
            stats: DetectStats::default(),
            config,
        }
    }

    pub fn state_evictions(&self) -> u64 {
        self.windows.evicted() + self.dedup.evicted
    }

    fn on(&self, id: &str) -> bool {
        !self.config.disabled_rules.iter().any(|d| d == id)
    }

    /// Findings for one exchange event (the native JSON) that happened at `epoch_ms`.
    pub fn inspect(&mut self, event: &Value, epoch_ms: i64) -> Vec<Value> {
        let Some(v) = View::of(event, epoch_ms) else {
            return Vec::new();
        };
        if event["connection"]["role"] == "client" {
            return Vec::new();
        }
        if self
            .config
            .allow_routes
            .iter()
            .any(|r| v.path.starts_with(r.as_str()))
            || self
                .config
                .allow_actors
                .iter()
                .any(|a| Some(a.as_str()) == v.token || Some(a.as_str()) == v.client_ip)
        {
            return Vec::new();
        }
        self.stats.exchanges_judged += 1;
        let (template, ids) = route::template(v.path);
        let mut hits: Vec<(&'static str, Value)> = Vec::new();
        let stateless: [(&str, StatelessRule); 9] = [
            ("AUTH-1", rules::auth1_jwt_alg),
            ("AUTH-2", rules::auth2_jwt_time),
            ("AUTH-5", rules::auth5_credentials_exposed),
            ("DATA-2", rules::data2_sensitive_in_url),
            ("INJ-1", rules::inj1_sqli_xss),
            ("INJ-2", rules::inj2_traversal_command_nosql),
            ("SSRF-1", rules::ssrf1_internal_url),
            ("SCAN-1", rules::scan1_scanner),
            ("CFG-2", rules::cfg2_cors),
        ];
        for (id, rule) in stateless {
            if self.on(id)
                && let Some(evidence) = rule(&v)
            {
                hits.push((id, evidence));
            }
        }
        let c = self.config.clone();
        if self.on("BOLA-1")
            && let Some(e) = self.windows.bola1(&v, &template, &ids, &c)
        {
            hits.push(("BOLA-1", e));
        }
        if self.on("TOK-1")
            && let Some(e) = self.windows.tok1(&v, &c)
        {
            hits.push(("TOK-1", e));
        }
        if self.on("TOK-2")
            && let Some(e) = self.windows.tok2(&v, &c)
        {
            hits.push(("TOK-2", e));
        }
        if self.on("AUTH-6")
            && let Some(e) = self.windows.auth6(&v, &c)
        {
            hits.push(("AUTH-6", e));
        }
        if let Seen::New {
            after_learning: true,
        } = self.inventory.record(&v, &template)
            && self.on("INV-1")
        {
            hits.push(("INV-1", json!({ "first_seen": event["time"] })));
        }
        if self.on("INV-2")
            && let Some(newer) = self.inventory.newer_version(&v, &template)
        {
            hits.push(("INV-2", json!({ "newer_version": newer })));
        }
        hits.into_iter()
            .filter_map(|(id, evidence)| self.finding(id, evidence, &v, &template))
            .collect()
    }

    /// The finding event, unless the same (rule, actor, route) was reported within dedup_secs.
    fn finding(&mut self, id: &str, evidence: Value, v: &View, template: &str) -> Option<Value> {
        let info = rule_info(id)?;
        let actor = v.actor();
        let key = format!("{id}|{actor}|{}|{} {template}", v.host, v.method);
        let window = self.config.dedup_secs as i64 * 1000;
        let slot = self.dedup.entry(&key, v.epoch_ms, || (i64::MIN, 0));
        if slot.0 != i64::MIN && v.epoch_ms - slot.0 < window {
            slot.1 += 1;
            self.stats.suppressed_repeats += 1;
            return None;
        }
        let occurrences = slot.1 + 1;
        *slot = (v.epoch_ms, 0);
        self.stats.findings += 1;
        let e = v.event;
        Some(json!({
            "schema": "cleartap.finding/1",
            "time": e["time"],
            "host": e["host"],
            "rule": {
                "id": info.id,
                "title": info.title,
                "owasp": info.owasp,
                "severity": info.severity,
                "confidence": info.confidence,
            },
            "actor": { "token": v.token, "client_ip": v.client_ip },
            "route": { "host": v.host, "method": v.method, "template": template },
            "evidence": evidence,
            "occurrences": occurrences,
            "exchange": {
                "time": e["time"],
                "process": { "pid": e["process"]["pid"], "comm": e["process"]["comm"], "exe": e["process"]["exe"] },
                "connection": {
                    "local": e["connection"]["local"],
                    "remote": e["connection"]["remote"],
                    "role": e["connection"]["role"],
                    "tls": e["connection"]["tls"],
                },
                "request": { "method": v.method, "path": v.path, "query": v.query },
                "response": { "status": v.status },
            },
        }))
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
