//! Detections: exchange events in, findings out (schema `cleartap.finding/1`). Rules read the
//! native event — the same redacted JSON the sinks get — so `cleartap replay` over saved events
//! gives what the live agent gave. Server-side exchanges are judged (the API this node serves);
//! a client's copy of the same exchange is not judged twice.

pub mod content;
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
pub const CATALOGUE: [RuleInfo; 20] = [
    rule!(
        "AUTH-3",
        "Token that never expires or lives too long accepted",
        "API2:2023",
        "medium",
        "high"
    ),
    rule!(
        "AUTH-4",
        "Unauthenticated access to a normally authenticated route",
        "API2:2023",
        "high",
        "medium"
    ),
    rule!(
        "TOK-3",
        "Excessive usage or exfiltration by one actor",
        "API4:2023",
        "high",
        "medium"
    ),
    rule!(
        "DATA-1",
        "Sensitive data in a response",
        "API3:2023",
        "high",
        "high"
    ),
    rule!(
        "CFG-1",
        "Stack trace or database error in a response",
        "API8:2023",
        "medium",
        "high"
    ),
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
    /// Client address ranges never judged (`10.0.0.0/8`, `fd00::/8`).
    pub allow_cidrs: Vec<String>,
    /// TOK-1: one token from this many user agents within tok1_window_secs.
    pub tok1_distinct_agents: u64,
    /// Body bytes per message the rules may read (never shown in events); 0: none.
    pub body_tap_bytes: usize,
    /// AUTH-3: accepted JWTs living longer than this (exp - iat).
    pub max_token_lifetime_secs: u64,
    /// AUTH-4: a route is "normally authenticated" after this many requests, this share with
    /// credentials.
    pub auth4_min_requests: u64,
    pub auth4_auth_ratio: f64,
    /// TOK-3: requests or response bytes per actor per minute.
    pub tok3_requests_per_minute: u64,
    pub tok3_bytes_per_minute: u64,
    /// How long an actor stays on the abusive list after a finding against it.
    pub abusive_ttl_secs: u64,
    /// How long a route stays on the sensitive-data list after a DATA-1 finding on it.
    pub sensitive_ttl_secs: u64,
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
            allow_cidrs: Vec::new(),
            tok1_distinct_agents: 4,
            body_tap_bytes: 4096,
            max_token_lifetime_secs: 7 * 24 * 3600,
            auth4_min_requests: 20,
            auth4_auth_ratio: 0.9,
            tok3_requests_per_minute: 600,
            tok3_bytes_per_minute: 100 << 20,
            abusive_ttl_secs: 3600,
            sensitive_ttl_secs: 24 * 3600,
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
        at_least("tok3_requests_per_minute", self.tok3_requests_per_minute, 1)?;
        at_least("tok1_distinct_agents", self.tok1_distinct_agents, 2)?;
        for cidr in &self.allow_cidrs {
            if cidr.parse::<ipnet::IpNet>().is_err() {
                return Err(format!(
                    "detect.allow_cidrs: {cidr:?} is not a network like \"10.0.0.0/8\" or \"fd00::/8\""
                ));
            }
        }
        at_least("auth4_min_requests", self.auth4_min_requests, 1)?;
        if self.body_tap_bytes > 65_536 {
            return Err(format!(
                "detect.body_tap_bytes = {}: must be at most 65536",
                self.body_tap_bytes
            ));
        }
        if !(0.0..=1.0).contains(&self.auth4_auth_ratio) || self.auth4_auth_ratio == 0.0 {
            return Err(format!(
                "detect.auth4_auth_ratio = {}: must be in (0, 1]",
                self.auth4_auth_ratio
            ));
        }
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

/// The sensitive data kinds DATA-1/DATA-2 found in this exchange.
fn hits_kinds(hits: &[(&'static str, Value)]) -> Vec<String> {
    hits.iter()
        .filter(|(id, _)| *id == "DATA-1" || *id == "DATA-2")
        .flat_map(|(_, e)| e["kinds"].as_array().cloned().unwrap_or_default())
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect()
}

pub struct Engine {
    config: DetectConfig,
    windows: Windows,
    pub inventory: Inventory,
    /// (rule, actor, route) → (last emitted ms, repeats since).
    dedup: Bounded<(i64, u64)>,
    allow_nets: Vec<ipnet::IpNet>,
    /// Dynamic lists for layered rules: actor → (until ms, why); "host METHOD template" →
    /// (until ms, why). Both age out and are dumped with the inventory.
    abusive: Bounded<(i64, String)>,
    sensitive: Bounded<(i64, String)>,
    pub stats: DetectStats,
}

/// Rules whose findings put the actor on the abusive list.
const ABUSE_RULES: [&str; 8] = [
    "AUTH-1", "AUTH-6", "TOK-2", "BOLA-1", "INJ-1", "INJ-2", "SSRF-1", "SCAN-1",
];

impl Engine {
    pub fn new(config: DetectConfig) -> Self {
        Self {
            windows: Windows::new(config.max_keys),
            inventory: Inventory::new(config.max_routes, config.inventory_learning_secs),
            dedup: Bounded::new(config.max_keys),
            allow_nets: config
                .allow_cidrs
                .iter()
                .filter_map(|c| c.parse().ok())
                .collect(),
            abusive: Bounded::new(config.max_keys),
            sensitive: Bounded::new(config.max_routes),
            stats: DetectStats::default(),
            config,
        }
    }

    pub fn state_evictions(&self) -> u64 {
        self.windows.evicted() + self.dedup.evicted + self.abusive.evicted + self.sensitive.evicted
    }

    /// Body bytes per message the rules want (the parser keeps at least this many).
    pub fn body_tap_bytes(&self) -> usize {
        self.config.body_tap_bytes
    }

    /// The inventory and the dynamic lists (what is on them now, and until when).
    pub fn dump(&self, now_ms: i64) -> Value {
        let list = |b: &Bounded<(i64, String)>| -> Vec<Value> {
            let mut items: Vec<Value> = b
                .iter()
                .filter(|(_, (until, _))| *until > now_ms)
                .map(|(k, (until, why))| json!({ "key": k, "until_ms": until, "because": why }))
                .collect();
            items.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
            items
        };
        let mut out = self.inventory.to_json();
        out["dynamic_lists"] = json!({
            "abusive_actors": list(&self.abusive),
            "sensitive_routes": list(&self.sensitive),
        });
        out
    }

    fn on(&self, id: &str) -> bool {
        !self.config.disabled_rules.iter().any(|d| d == id)
    }

    /// Findings for one exchange event (the native JSON) that happened at `epoch_ms`, with the
    /// body bytes the rules may read.
    pub fn inspect(
        &mut self,
        event: &Value,
        epoch_ms: i64,
        bodies: &content::Bodies,
    ) -> Vec<Value> {
        let Some(v) = View::with_bodies(event, epoch_ms, &bodies.request, &bodies.response) else {
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
            || v.client_ip
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| self.allow_nets.iter().any(|n| n.contains(&ip)))
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
        // Borrowed, not cloned: this runs for every exchange.
        let c = &self.config;
        for (id, found) in [
            (
                "AUTH-3",
                rules::auth3_token_hygiene(&v, c.max_token_lifetime_secs as i64),
            ),
            (
                "DATA-1",
                content::data1_sensitive_in_response(v.response_body),
            ),
            ("CFG-1", content::cfg1_error_disclosure(v.response_body)),
        ] {
            if self.on(id)
                && let Some(evidence) = found
            {
                hits.push((id, evidence));
            }
        }
        if self.on("AUTH-4")
            && !v.has_credentials()
            && v.success()
            && let Some((requests, with_auth)) = self.inventory.auth_baseline(&v, &template)
            && requests >= c.auth4_min_requests
            && with_auth as f64 / requests as f64 >= c.auth4_auth_ratio
        {
            hits.push((
                "AUTH-4",
                json!({ "route_requests": requests, "route_requests_with_credentials": with_auth }),
            ));
        }
        if self.on("TOK-3") {
            let route_key = format!("{} {} {template}", v.host, v.method);
            let actor = v.actor();
            let abusive = self
                .abusive
                .get(&actor)
                .filter(|(until, _)| *until > v.epoch_ms)
                .map(|(_, why)| why.clone());
            let sensitive = self
                .sensitive
                .get(&route_key)
                .filter(|(until, _)| *until > v.epoch_ms)
                .is_some();
            if let Some(e) = self.windows.tok3(&v, c) {
                hits.push(("TOK-3", e));
            } else if let Some(why) = abusive
                && sensitive
                && v.success()
            {
                // Layered: an actor already seen abusing reads a route known to return
                // sensitive data.
                hits.push((
                    "TOK-3",
                    json!({ "layered": "abusive_actor_on_sensitive_route", "actor_listed_for": why }),
                ));
            }
        }
        if self.on("BOLA-1")
            && let Some(e) = self.windows.bola1(&v, &template, &ids, c)
        {
            hits.push(("BOLA-1", e));
        }
        if self.on("TOK-1")
            && let Some(e) = self.windows.tok1(&v, c)
        {
            hits.push(("TOK-1", e));
        }
        if self.on("TOK-2")
            && let Some(e) = self.windows.tok2(&v, c)
        {
            hits.push(("TOK-2", e));
        }
        if self.on("AUTH-6")
            && let Some(e) = self.windows.auth6(&v, c)
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
        let ttl_abuse = c.abusive_ttl_secs as i64 * 1000;
        let ttl_sensitive = c.sensitive_ttl_secs as i64 * 1000;
        for (id, _) in &hits {
            if ABUSE_RULES.contains(id) {
                *self
                    .abusive
                    .entry(&v.actor(), v.epoch_ms, || (0, String::new())) =
                    (v.epoch_ms + ttl_abuse, (*id).to_owned());
            }
            if *id == "DATA-1" || *id == "DATA-2" {
                self.inventory
                    .note_sensitive(&v, &template, &hits_kinds(&hits));
            }
            if *id == "DATA-1" {
                let route_key = format!("{} {} {template}", v.host, v.method);
                *self
                    .sensitive
                    .entry(&route_key, v.epoch_ms, || (0, String::new())) =
                    (v.epoch_ms + ttl_sensitive, "DATA-1".to_owned());
            }
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
