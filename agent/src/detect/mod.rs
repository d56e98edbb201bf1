//! Detections: exchange events in, findings out (schema `cleartap.finding/1`). Rules read the
//! native event — the same redacted JSON the sinks get — so `cleartap replay` over saved events
//! gives what the live agent gave. Server-side exchanges are judged (the API this node serves);
//! a client's copy of the same exchange is not judged twice.

pub mod catalogue;
pub mod content;
pub mod finding;
pub mod inventory;
pub mod route;
pub mod rules;
#[cfg(test)]
pub(crate) mod test_events;
pub mod view;
pub mod windows;

use serde::Deserialize;
use serde_json::{Value, json};

pub use catalogue::{CATALOGUE, RuleId, RuleInfo};
pub use finding::Finding;
use finding::{
    Actor, ExchangeProcess, ExchangeRequest, ExchangeResponse, ExchangeSummary, Route,
    StreamIdentity,
};
use inventory::{Inventory, Seen};
use view::View;
use windows::{Bounded, ExchangeKeys, Keys, Windows};

use crate::event::{ExchangeEvent, Role};

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
            if RuleId::parse(id).is_none() {
                let known: Vec<&str> = CATALOGUE.iter().map(|r| r.code).collect();
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
fn hits_kinds(hits: &[(RuleId, Value)]) -> Vec<String> {
    hits.iter()
        .filter(|(id, _)| matches!(id, RuleId::Data1 | RuleId::Data2))
        .flat_map(|(_, e)| e["kinds"].as_array().cloned().unwrap_or_default())
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect()
}

/// An entry of a dynamic list: what is listed, why, and until when.
#[derive(Debug, Clone, Default)]
struct Listed {
    key: String,
    until_ms: i64,
    because: String,
}

pub struct Engine {
    config: DetectConfig,
    windows: Windows,
    pub inventory: Inventory,
    /// Digest of (rule, actor, route) → (last emitted ms, repeats since).
    dedup: Bounded<u64, (i64, u64)>,
    allow_nets: Vec<ipnet::IpNet>,
    /// Dynamic lists for layered rules: actors (by their text) and routes (by their digest).
    /// Both age out and are dumped with the inventory.
    abusive: Bounded<String, Listed>,
    sensitive: Bounded<u64, Listed>,
    keys: Keys,
    pub stats: DetectStats,
    /// Indexed by `RuleId as usize`.
    enabled: [bool; CATALOGUE.len()],
}

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
            keys: Keys::new(),
            enabled: std::array::from_fn(|i| {
                CATALOGUE
                    .get(i)
                    .is_some_and(|r| !config.disabled_rules.iter().any(|d| d == r.code))
            }),
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
        fn list<'a>(entries: impl Iterator<Item = &'a Listed>, now_ms: i64) -> Vec<Value> {
            let mut items: Vec<&Listed> = entries.filter(|l| l.until_ms > now_ms).collect();
            items.sort_by(|a, b| a.key.cmp(&b.key));
            items
                .into_iter()
                .map(|l| json!({ "key": l.key, "until_ms": l.until_ms, "because": l.because }))
                .collect()
        }
        let mut out = self.inventory.to_json();
        if let Some(o) = out.as_object_mut() {
            o.insert(
                "dynamic_lists".to_owned(),
                json!({
                    "abusive_actors": list(self.abusive.iter().map(|(_, l)| l), now_ms),
                    "sensitive_routes": list(self.sensitive.iter().map(|(_, l)| l), now_ms),
                }),
            );
        }
        out
    }

    fn on(&self, id: RuleId) -> bool {
        self.enabled.get(id as usize).copied().unwrap_or(false)
    }

    /// Findings for one exchange event (the native JSON) that happened at `epoch_ms`, with the
    /// body bytes the rules may read.
    pub fn inspect(
        &mut self,
        event: &ExchangeEvent<'_>,
        epoch_ms: i64,
        bodies: &content::Bodies,
    ) -> Vec<Finding> {
        let Some(v) = View::with_bodies(event, epoch_ms, &bodies.request, &bodies.response) else {
            return Vec::new();
        };
        if event.connection.role == Role::Client {
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
                .any(|a| Some(a.as_str()) == v.token || a.parse().ok() == v.client_ip)
            || v.client_ip
                .is_some_and(|ip| self.allow_nets.iter().any(|n| n.contains(&ip)))
        {
            return Vec::new();
        }
        self.stats.exchanges_judged += 1;
        let (template, last_id) = route::template(v.path);
        let k = ExchangeKeys {
            actor: self.keys.of(&[v.actor()]),
            route: self.keys.of(&[v.host, v.method, &template]),
        };
        let mut hits: Vec<(RuleId, Value)> = Vec::new();
        let stateless: [(RuleId, StatelessRule); 9] = [
            (RuleId::Auth1, rules::auth1_jwt_alg),
            (RuleId::Auth2, rules::auth2_jwt_time),
            (RuleId::Auth5, rules::auth5_credentials_exposed),
            (RuleId::Data2, rules::data2_sensitive_in_url),
            (RuleId::Inj1, rules::inj1_sqli_xss),
            (RuleId::Inj2, rules::inj2_traversal_command_nosql),
            (RuleId::Ssrf1, rules::ssrf1_internal_url),
            (RuleId::Scan1, rules::scan1_scanner),
            (RuleId::Cfg2, rules::cfg2_cors),
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
                RuleId::Auth3,
                rules::auth3_token_hygiene(&v, c.max_token_lifetime_secs as i64),
            ),
            (
                RuleId::Data1,
                content::data1_sensitive_in_response(v.response_text()),
            ),
            (
                RuleId::Cfg1,
                content::cfg1_error_disclosure(v.response_text()),
            ),
        ] {
            if self.on(id)
                && let Some(evidence) = found
            {
                hits.push((id, evidence));
            }
        }
        if self.on(RuleId::Auth4)
            && !v.has_credentials()
            && v.success()
            && let Some((requests, with_auth)) = self.inventory.auth_baseline(k.route)
            && requests >= c.auth4_min_requests
            && with_auth as f64 / requests as f64 >= c.auth4_auth_ratio
        {
            hits.push((
                RuleId::Auth4,
                json!({ "route_requests": requests, "route_requests_with_credentials": with_auth }),
            ));
        }
        if self.on(RuleId::Tok3) {
            let abusive = self
                .abusive
                .get(v.actor())
                .filter(|l| l.until_ms > v.epoch_ms)
                .map(|l| l.because.clone());
            let sensitive = self
                .sensitive
                .get(&k.route)
                .is_some_and(|l| l.until_ms > v.epoch_ms);
            if let Some(e) = self.windows.tok3(&v, &k, c) {
                hits.push((RuleId::Tok3, e));
            } else if let Some(why) = abusive
                && sensitive
                && v.success()
            {
                // Layered: an actor already seen abusing reads a route known to return
                // sensitive data.
                hits.push((
                    RuleId::Tok3,
                    json!({ "layered": "abusive_actor_on_sensitive_route", "actor_listed_for": why }),
                ));
            }
        }
        if self.on(RuleId::Bola1)
            && let Some(e) = self.windows.bola1(&v, &self.keys, &k, last_id, c)
        {
            hits.push((RuleId::Bola1, e));
        }
        if self.on(RuleId::Tok1)
            && let Some(e) = self.windows.tok1(&v, &self.keys, c)
        {
            hits.push((RuleId::Tok1, e));
        }
        if self.on(RuleId::Tok2)
            && let Some(e) = self.windows.tok2(&v, &k, c)
        {
            hits.push((RuleId::Tok2, e));
        }
        if self.on(RuleId::Auth6)
            && let Some(e) = self.windows.auth6(&v, &self.keys, c)
        {
            hits.push((RuleId::Auth6, e));
        }
        if let Seen::New {
            after_learning: true,
        } = self.inventory.record(&v, &template, k.route, &self.keys)
            && self.on(RuleId::Inv1)
        {
            hits.push((RuleId::Inv1, json!({ "first_seen": event.time })));
        }
        if self.on(RuleId::Inv2)
            && let Some(newer) = self.inventory.newer_version(&v, &template, &self.keys)
        {
            hits.push((RuleId::Inv2, json!({ "newer_version": newer })));
        }
        let ttl_abuse = c.abusive_ttl_secs as i64 * 1000;
        let ttl_sensitive = c.sensitive_ttl_secs as i64 * 1000;
        for (id, _) in &hits {
            if id.info().lists_actor {
                *self.abusive.entry(v.actor(), v.epoch_ms, Listed::default) = Listed {
                    key: v.actor().to_owned(),
                    until_ms: v.epoch_ms + ttl_abuse,
                    because: id.as_str().to_owned(),
                };
            }
            if matches!(id, RuleId::Data1 | RuleId::Data2) {
                self.inventory.note_sensitive(k.route, &hits_kinds(&hits));
            }
            if *id == RuleId::Data1 {
                *self.sensitive.entry(&k.route, v.epoch_ms, Listed::default) = Listed {
                    key: format!("{} {} {template}", v.host, v.method),
                    until_ms: v.epoch_ms + ttl_sensitive,
                    because: RuleId::Data1.as_str().to_owned(),
                };
            }
        }
        hits.into_iter()
            .filter_map(|(id, evidence)| self.finding(id, evidence, &v, &template, &k))
            .collect()
    }

    /// The finding, unless the same (rule, actor, route) was reported within dedup_secs.
    fn finding(
        &mut self,
        id: RuleId,
        evidence: Value,
        v: &View,
        template: &str,
        k: &ExchangeKeys,
    ) -> Option<Finding> {
        let key = self.keys.pair(self.keys.pair(k.actor, k.route), id as u64);
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
        let c = &e.connection;
        Some(Finding {
            rule: id,
            host: e.host.to_string(),
            actor: Actor {
                token: v.token.map(str::to_owned),
                client_ip: v.client_ip_text(),
            },
            route: Route {
                host: v.host.to_owned(),
                method: v.method.to_owned(),
                template: template.to_owned(),
            },
            evidence,
            occurrences,
            exchange: ExchangeSummary {
                time: e.time.to_string(),
                process: ExchangeProcess {
                    pid: e.process.pid,
                    comm: e.process.comm.to_string(),
                    exe: e.process.exe.as_deref().map(str::to_owned),
                },
                request: ExchangeRequest {
                    method: v.method.to_owned(),
                    path: v.path.to_owned(),
                    query: v.query.map(str::to_owned),
                },
                response: ExchangeResponse { status: v.status },
            },
            stream: StreamIdentity {
                pid: e.process.pid,
                stream: c.stream,
                fd: c.fd,
                local: c.local,
                remote: c.remote,
                role: c.role,
                tls: c.tls,
            },
            epoch_ms: v.epoch_ms,
        })
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
