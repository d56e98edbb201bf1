//! The engine: runs the catalogue's rules over each typed exchange — request-phase rules first
//! (they need only the request: see [`Engine::judge_request`]), then the rules that need the
//! response or state over many exchanges — with bounded state, deduplication, allowlists and
//! the dynamic lists (abusive actors, sensitive routes) that layered rules and enforcement use.

use serde_json::{Value, json};

use super::{
    DetectConfig,
    catalogue::{CATALOGUE, RuleId},
    clean_values::CleanValues,
    content, corroborate,
    finding::{
        Actor, ExchangeProcess, ExchangeRequest, ExchangeResponse, ExchangeSummary, Finding, Route,
        StreamIdentity,
    },
    inventory::{Inventory, Seen},
    route, rules,
    view::View,
    windows::{Bounded, ExchangeKeys, Keys, Windows},
};
use crate::event::{ExchangeEvent, Role};

#[derive(Debug, Default, Clone, Copy)]
pub struct DetectStats {
    pub exchanges_judged: u64,
    pub findings: u64,
    pub suppressed_repeats: u64,
}

type StatelessRule = fn(&View) -> Option<Value>;

#[path = "engine_request.rs"]
mod request;
pub use request::RequestVerdict;

/// Stateless rules that need the response.
const EXCHANGE_RULES: [(RuleId, StatelessRule); 3] = [
    (RuleId::Auth1, rules::auth1_jwt_alg),
    (RuleId::Auth2, rules::auth2_jwt_time),
    (RuleId::Cfg2, rules::cfg2_cors),
];

/// The sensitive data kinds DATA-1/DATA-2 found in this exchange.
fn hits_kinds(hits: &[(RuleId, Value)]) -> Vec<String> {
    hits.iter()
        .filter(|(id, _)| matches!(id, RuleId::Data1 | RuleId::Data2))
        .flat_map(|(_, e)| e["kinds"].as_array().cloned().unwrap_or_default())
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect()
}

/// A dynamic list entry made or extended, for the enforcement stage to mirror in the kernel.
#[derive(Debug, Clone, PartialEq)]
pub enum ListChange {
    Actor {
        /// The redaction tag of the actor's credential, when it has one.
        token: Option<String>,
        client_ip: Option<String>,
        /// The kernel's key of the credential (event::Request::credential_key).
        credential_key: Option<u64>,
        until_ms: i64,
        because: RuleId,
    },
    Route {
        host: String,
        method: String,
        template: String,
        until_ms: i64,
        because: RuleId,
    },
}

/// A list entry is reported again when its expiry moved at least this much: a listed actor
/// hit on every exchange must not rewrite kernel maps on every exchange.
const LIST_REFRESH_MS: i64 = 60_000;

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
    /// `allow_actors` entries that are addresses, parsed once.
    allow_addresses: Vec<std::net::IpAddr>,
    /// Dynamic lists for layered rules: actors (by their text) and routes (by their digest).
    /// Both age out and are dumped with the inventory.
    abusive: Bounded<String, Listed>,
    sensitive: Bounded<u64, Listed>,
    keys: Keys,
    pub stats: DetectStats,
    /// When set (enforcement is on), list entries made or extended are kept in
    /// `list_changes` until taken.
    pub track_lists: bool,
    list_changes: Vec<ListChange>,
    /// Indexed by `RuleId as usize`.
    enabled: [bool; CATALOGUE.len()],
    /// The team's API specifications (`[inventory] specs`), for INV-3…6.
    specs: super::specs::ApiSpecs,
    /// Per (actor, route): (requests, 4xx + 5xx responses), for ANOM-2's error ratio.
    actor_route: Bounded<u64, (u64, u64)>,
    /// Routes INV-3 has looked at under the current specs (bounded like the inventory).
    spec_checked: std::collections::HashSet<u64, rustc_hash::FxBuildHasher>,
    /// Inputs the input rules found clean, by place and value (bounded).
    clean_values: CleanValues,
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
            allow_addresses: config
                .allow_actors
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
            abusive: Bounded::new(config.max_keys),
            actor_route: Bounded::new(config.max_keys),
            sensitive: Bounded::new(config.max_routes),
            stats: DetectStats::default(),
            track_lists: false,
            list_changes: Vec::new(),
            keys: Keys::new(),
            enabled: std::array::from_fn(|i| {
                CATALOGUE
                    .get(i)
                    .is_some_and(|r| !config.disabled_rules.iter().any(|d| d == r.code))
            }),
            config,
            specs: super::specs::ApiSpecs::default(),
            spec_checked: Default::default(),
            clean_values: CleanValues::default(),
        }
    }

    /// Replaces the API specifications drift is judged against (at start and on SIGHUP).
    pub fn set_specs(&mut self, specs: super::specs::ApiSpecs) {
        self.specs = specs;
        self.spec_checked.clear();
    }

    /// List entries made or extended since the last call (only with `track_lists`).
    pub fn take_list_changes(&mut self) -> Vec<ListChange> {
        std::mem::take(&mut self.list_changes)
    }

    pub fn state_evictions(&self) -> u64 {
        self.windows.evicted()
            + self.dedup.evicted
            + self.abusive.evicted
            + self.sensitive.evicted
            + self.actor_route.evicted
    }

    /// Values the input rules (INJ-1/2/3) skipped because each had found them clean before at
    /// the same place, and values they looked up and judged.
    pub fn clean_input_counts(&self) -> (u64, u64) {
        (self.clean_values.hits, self.clean_values.misses)
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

    /// Whether this exchange is judged at all: server side, not allowlisted.
    fn judged(&self, v: &View) -> bool {
        if v.event.connection.role == Role::Client {
            return false;
        }
        !(self
            .config
            .allow_routes
            .iter()
            .any(|r| v.path.starts_with(r.as_str()))
            || self
                .config
                .allow_actors
                .iter()
                .any(|a| Some(a.as_str()) == v.token)
            || v.client_ip.is_some_and(|ip| {
                self.allow_addresses.contains(&ip)
                    || self.allow_nets.iter().any(|n| n.contains(&ip))
            }))
    }

    /// Findings for one exchange that happened at `epoch_ms`, with the body bytes the rules may
    /// read: the request verdict first, then the rules that need the response or history.
    pub fn inspect(
        &mut self,
        event: &ExchangeEvent<'_>,
        epoch_ms: i64,
        bodies: &content::Bodies,
    ) -> Vec<Finding> {
        // Client-side copies of exchanges are never judged: left before the view is built.
        if event.connection.role == Role::Client {
            return Vec::new();
        }
        let Some(v) = View::with_tap(event, epoch_ms, bodies) else {
            return Vec::new();
        };
        if !self.judged(&v) {
            return Vec::new();
        }
        let verdict = self.request_verdict(&v);
        self.stats.exchanges_judged += 1;
        let (template, last_id) = route::template(v.path);
        let k = ExchangeKeys {
            actor: v.actor_digest(&self.keys),
            route: self.keys.of(&[v.host, v.method, &template]),
        };
        let mut hits: Vec<(RuleId, Value)> = verdict.hits;
        for (id, rule) in EXCHANGE_RULES {
            if self.on(id)
                && let Some(evidence) = rule(&v)
            {
                hits.push((id, evidence));
            }
        }
        // Borrowed, not cloned: this runs for every exchange.
        let c = &self.config;
        // Hits whose evidence is written only if reported (see `Deferred`): their place in
        // `hits` (which holds Null for them until then) and what they found. Two at most,
        // AUTH-3's before TOK-3's: no allocation for them on every exchange.
        let mut deferred: [Option<(usize, Deferred)>; 2] = [None, None];
        if self.on(RuleId::Auth3)
            && let Some(problem) = rules::auth3_token_hygiene(&v, c.max_token_lifetime_secs as i64)
        {
            deferred[0] = Some((hits.len(), Deferred::Auth3(problem)));
            hits.push((RuleId::Auth3, Value::Null));
        }
        for (id, found) in [
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
        // A delay only counts beyond what the endpoint usually takes (its median, once known;
        // the histogram's quantiles are bucket tops, so the bucket's lower edge, ÷√2). Looked
        // up only for the rare exchange whose SQL payload asked for a delay.
        let asked_delay = hits
            .iter()
            .any(|(_, e)| e.get("requested_delay_ms").is_some());
        let usual_latency_us = asked_delay
            .then(|| self.inventory.baseline(k.route))
            .flatten()
            .filter(|b| b.latency_us.count >= c.anomaly_min_samples)
            .and_then(|b| b.latency_us.quantile(0.5))
            .map(|top| top.saturating_mul(1000) / 1414);
        corroborate::apply(&mut hits, &v, usual_latency_us);
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
            let abusive = verdict.actor_listed_for;
            let sensitive = self
                .sensitive
                .get(&k.route)
                .is_some_and(|l| l.until_ms > v.epoch_ms);
            if let Some(usage) = self.windows.tok3(&v, &k, c) {
                deferred[1] = Some((hits.len(), Deferred::Tok3(usage)));
                hits.push((RuleId::Tok3, Value::Null));
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
        // Judged before this exchange joins the endpoint's baseline.
        if let Some(baseline) = self.inventory.baseline(k.route) {
            let (anom1, anom2) = baseline.judge(
                event.response.as_ref().and_then(|r| r.body_size),
                event.latency_us,
                super::baseline::Thresholds {
                    min_samples: c.anomaly_min_samples,
                    size_factor: c.anom1_size_factor,
                    latency_factor: c.anom2_latency_factor,
                },
            );
            let anom2 = anom2.or_else(|| {
                // An actor failing on an endpoint where everyone else succeeds (probing,
                // enumeration, a broken integration): its error ratio against the endpoint's.
                let error = v.status.is_some_and(|s| s >= 400);
                let (endpoint_requests, endpoint_errors) =
                    self.inventory.error_counts(k.route).unwrap_or((0, 0));
                let mixed = k.actor.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.route;
                let (requests, errors) = self.actor_route.entry(&mixed, v.epoch_ms, || (0, 0));
                *requests += 1;
                *errors += u64::from(error);
                let (others, others_errors) = (
                    endpoint_requests.saturating_sub(*requests - 1),
                    endpoint_errors.saturating_sub(*errors - u64::from(error)),
                );
                let actor_ratio = *errors as f64 / *requests as f64;
                let others_ratio = others_errors as f64 / others.max(1) as f64;
                (*requests >= c.anom2_min_actor_requests
                    && others >= c.anomaly_min_samples
                    && actor_ratio >= 0.5
                    && others_ratio <= 0.1)
                    .then(|| {
                        json!({
                            "baseline": "error_ratio",
                            "samples": others,
                            "endpoint_error_ratio": (others_ratio * 1000.0).round() / 1000.0,
                            "actor_error_ratio": (actor_ratio * 1000.0).round() / 1000.0,
                            "actor_requests": *requests,
                        })
                    })
            });
            for (id, evidence) in [(RuleId::Anom1, anom1), (RuleId::Anom2, anom2)] {
                if let Some(e) = evidence
                    && self.on(id)
                {
                    hits.push((id, e));
                }
            }
        }
        if let Seen::New {
            after_learning: true,
        } = self.inventory.record(&v, &template, k.route, &self.keys)
            && self.on(RuleId::Inv1)
        {
            hits.push((RuleId::Inv1, json!({ "first_seen": event.time })));
        }
        if self.on(RuleId::Inv2)
            && let Some(newer) = self
                .inventory
                .newer_version(&v, &template, k.route, &self.keys)
        {
            hits.push((RuleId::Inv2, json!({ "newer_version": newer })));
        }
        if let Some(gql) = super::graphql::request(&v) {
            self.inventory.note_graphql(k.route, &gql.operations);
            let c = &self.config;
            let answered = v.status.is_some_and(|s| (200..300).contains(&s));
            let intro = gql.operations.iter().find(|o| o.introspection);
            if let Some(op) = intro
                && answered
                && (v.response_text().contains("__schema") || v.response_text().contains("__type"))
                && self.on(RuleId::Gql1)
            {
                hits.push((
                    RuleId::Gql1,
                    json!({ "operation": op.name, "kind": op.kind }),
                ));
            }
            let aliases: usize = gql.operations.iter().map(|o| o.aliases).sum();
            if (gql.batch > c.gql_max_batch || aliases > c.gql_max_aliases) && self.on(RuleId::Gql2)
            {
                hits.push((
                    RuleId::Gql2,
                    json!({ "batched_operations": gql.batch, "aliases": aliases,
                            "limits": { "batch": c.gql_max_batch, "aliases": c.gql_max_aliases } }),
                ));
            }
            let depth = gql.operations.iter().map(|o| o.depth).max().unwrap_or(0);
            if depth > c.gql_max_depth && self.on(RuleId::Gql3) {
                hits.push((
                    RuleId::Gql3,
                    json!({ "depth": depth, "limit": c.gql_max_depth }),
                ));
            }
        }
        if !self.specs.is_empty() {
            if self.spec_checked.len() >= self.config.max_routes {
                self.spec_checked.clear();
            }
            let first_time = self.spec_checked.insert(k.route);
            let data_found = hits.iter().any(|(id, _)| *id == RuleId::Data1);
            let enabled = self.enabled;
            super::specs::drift(
                &self.specs,
                &v,
                &template,
                first_time,
                |id| enabled.get(id as usize).copied().unwrap_or(false),
                data_found,
                &mut hits,
            );
        }
        let ttl_abuse = c.abusive_ttl_secs as i64 * 1000;
        let ttl_sensitive = c.sensitive_ttl_secs as i64 * 1000;
        for (id, _) in &hits {
            if id.info().lists_actor {
                let until_ms = v.epoch_ms + ttl_abuse;
                let slot = self.abusive.entry(v.actor(), v.epoch_ms, Listed::default);
                let moved = slot.until_ms + LIST_REFRESH_MS <= until_ms;
                *slot = Listed {
                    key: v.actor().to_owned(),
                    until_ms,
                    because: id.as_str().to_owned(),
                };
                if self.track_lists && moved {
                    self.list_changes.push(ListChange::Actor {
                        token: v.token.map(str::to_owned),
                        client_ip: v.client_ip_text(),
                        credential_key: v.event.request.as_ref().and_then(|r| r.credential_key),
                        until_ms,
                        because: *id,
                    });
                }
            }
            if matches!(id, RuleId::Data1 | RuleId::Data2) {
                self.inventory.note_sensitive(k.route, &hits_kinds(&hits));
            }
            if *id == RuleId::Data1 {
                let until_ms = v.epoch_ms + ttl_sensitive;
                let slot = self.sensitive.entry(&k.route, v.epoch_ms, Listed::default);
                let moved = slot.until_ms + LIST_REFRESH_MS <= until_ms;
                *slot = Listed {
                    key: format!("{} {} {template}", v.host, v.method),
                    until_ms,
                    because: RuleId::Data1.as_str().to_owned(),
                };
                if self.track_lists && moved {
                    self.list_changes.push(ListChange::Route {
                        host: v.host.to_owned(),
                        method: v.method.to_owned(),
                        template: template.clone(),
                        until_ms,
                        because: RuleId::Data1,
                    });
                }
            }
        }
        let mut deferred = deferred.into_iter().flatten().peekable();
        hits.into_iter()
            .enumerate()
            .filter_map(|(at, (id, evidence))| {
                let found = deferred.next_if(|(i, _)| *i == at).map(|(_, d)| d);
                let evidence = move || found.map_or(evidence, Deferred::evidence);
                self.finding(id, evidence, &v, &template, &k)
            })
            .collect()
    }

    /// The finding, unless the same (rule, actor, route) was reported within dedup_secs.
    fn finding(
        &mut self,
        id: RuleId,
        evidence: impl FnOnce() -> Value,
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
        let evidence = evidence();
        self.stats.findings += 1;
        let e = v.event;
        let c = &e.connection;
        let confidence = if corroborate::confirmed(&evidence) {
            super::catalogue::Confidence::High
        } else {
            id.info().confidence
        };
        Some(Finding {
            rule: id,
            confidence,
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

/// Evidence of rules that fire on every exchange of a steady client (a long-lived token, a
/// rate past TOK-3's limit): kept typed and written as JSON only for the exchange whose
/// finding is reported, not for the repeats deduplication suppresses.
enum Deferred {
    Auth3(rules::TokenProblem),
    Tok3(super::windows::Usage),
}

impl Deferred {
    fn evidence(self) -> Value {
        match self {
            Deferred::Auth3(problem) => problem.evidence(),
            Deferred::Tok3(usage) => usage.evidence(),
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
