//! The API inventory learned from traffic: per host, method and route template — how often,
//! which statuses, whether authentication was seen — and the two inventory rules: INV-1 (a
//! route first seen after the learning period: a shadow or new API) and INV-2 (an older API
//! version still answering while a newer one exists).

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{route::version_number, view::View, windows::Keys};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RouteStats {
    pub requests: u64,
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub with_auth: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Sensitive data kinds seen on this route (DATA-1 in responses, DATA-2 in URLs).
    pub sensitive_data: Vec<String>,
    /// What the endpoint looks like (names, types, formats; never values).
    #[serde(default)]
    pub shape: super::shape::EndpointShape,
    /// What is normal for it: response sizes and latencies (ANOM-1, ANOM-2).
    #[serde(default)]
    pub baseline: super::baseline::Baseline,
}

/// One route of the inventory, with the text its digest was made from (for the dump).
struct Route {
    host: String,
    method: String,
    template: String,
    /// Digest of (host, method, template with `{version}`) and the version, when the template
    /// has a version segment: made once when the route is first seen, so INV-2 builds no text
    /// per exchange.
    version: Option<(u64, u32)>,
    stats: RouteStats,
}

pub struct Inventory {
    /// Digest of (host, method, template) → route. Bounded by `max_routes`.
    routes: HashMap<u64, Route, FxBuildHasher>,
    /// Digest of (host, method, template with its version segment as `{version}`) → the
    /// highest version seen: INV-2 in one lookup instead of a scan of the host's routes.
    versions: HashMap<u64, u32, FxBuildHasher>,
    max_routes: usize,
    pub overflow: u64,
    started_ms: Option<i64>,
    learning_ms: i64,
}

pub enum Seen {
    Known,
    /// First time seen; `after_learning` once the learning period is over.
    New {
        after_learning: bool,
    },
    Overflow,
}

/// `template` with its first `vN` segment replaced, and N.
fn versionless(template: &str) -> Option<(String, u32)> {
    // Most templates have no version segment: nothing to build (this runs per exchange).
    if !template.split('/').any(|s| version_number(s).is_some()) {
        return None;
    }
    let mut version = None;
    let mut out = String::with_capacity(template.len());
    for (i, segment) in template.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match version_number(segment) {
            Some(n) if version.is_none() => {
                version = Some(n);
                out.push_str("{version}");
            }
            _ => out.push_str(segment),
        }
    }
    version.map(|v| (out, v))
}

/// INV-2's key of a route with a version segment: the digest of (host, method, template with
/// `{version}`), and the version.
fn version_key(v: &View, template: &str, keys: &Keys) -> Option<(u64, u32)> {
    let (rest, version) = versionless(template)?;
    Some((keys.of(&[v.host, v.method, &rest]), version))
}

impl Inventory {
    pub fn new(max_routes: usize, learning_secs: u64) -> Self {
        Self {
            routes: HashMap::default(),
            versions: HashMap::default(),
            max_routes,
            overflow: 0,
            started_ms: None,
            learning_ms: learning_secs as i64 * 1000,
        }
    }

    /// Counts the exchange against its route (`route` = digest of host, method, template).
    pub fn record(&mut self, v: &View, template: &str, route: u64, keys: &Keys) -> Seen {
        let started = *self.started_ms.get_or_insert(v.epoch_ms);
        let seen = if self.routes.contains_key(&route) {
            Seen::Known
        } else if self.routes.len() >= self.max_routes {
            // Checked before any insertion: Host headers come from the network.
            self.overflow += 1;
            return Seen::Overflow;
        } else {
            Seen::New {
                after_learning: v.epoch_ms - started > self.learning_ms,
            }
        };
        let versions = &mut self.versions;
        let entry = self.routes.entry(route).or_insert_with(|| {
            let version = version_key(v, template, keys).inspect(|&(digest, version)| {
                let highest = versions.entry(digest).or_insert(version);
                *highest = (*highest).max(version);
            });
            Route {
                host: v.host.to_owned(),
                method: v.method.to_owned(),
                template: template.to_owned(),
                version,
                stats: RouteStats {
                    first_seen_ms: v.epoch_ms,
                    ..RouteStats::default()
                },
            }
        });
        let stats = &mut entry.stats;
        stats.requests += 1;
        stats.last_seen_ms = v.epoch_ms;
        match v.status.unwrap_or(0) / 100 {
            2 => stats.status_2xx += 1,
            3 => stats.status_3xx += 1,
            4 => stats.status_4xx += 1,
            5 => stats.status_5xx += 1,
            _ => {}
        }
        if v.has_credentials() {
            stats.with_auth += 1;
        }
        if super::shape::EndpointShape::wants_sample(stats.requests) {
            stats.shape.learn(v);
        }
        stats.baseline.record(
            v.event.response.as_ref().and_then(|r| r.body_size),
            v.event.latency_us,
        );
        seen
    }

    /// GraphQL operations seen on a route.
    pub fn note_graphql(&mut self, route: u64, operations: &[super::graphql::Operation]) {
        if let Some(r) = self.routes.get_mut(&route) {
            r.stats.shape.note_graphql(operations);
        }
    }

    /// (requests, 4xx + 5xx responses) seen on the route so far.
    pub fn error_counts(&self, route: u64) -> Option<(u64, u64)> {
        let s = &self.routes.get(&route)?.stats;
        Some((s.requests, s.status_4xx + s.status_5xx))
    }

    /// The route's baseline, to judge an exchange against before it joins it.
    pub fn baseline(&self, route: u64) -> Option<&super::baseline::Baseline> {
        self.routes.get(&route).map(|r| &r.stats.baseline)
    }

    /// Adds sensitive data kinds seen on a route (kept sorted, at most 16).
    pub fn note_sensitive(&mut self, route: u64, kinds: &[String]) {
        let Some(entry) = self.routes.get_mut(&route) else {
            return;
        };
        let stats = &mut entry.stats;
        for k in kinds {
            if stats.sensitive_data.len() < 16 && !stats.sensitive_data.contains(k) {
                stats.sensitive_data.push(k.clone());
            }
        }
        stats.sensitive_data.sort();
    }

    /// (requests, requests with credentials) seen on this route so far.
    pub fn auth_baseline(&self, route: u64) -> Option<(u64, u64)> {
        let stats = &self.routes.get(&route)?.stats;
        Some((stats.requests, stats.with_auth))
    }

    /// INV-2: `template` has a version segment `vN` and the same route exists with a higher
    /// version on this host. Returns the highest such version. A tracked route's version key
    /// was made when it was first seen (no text built per exchange); one the inventory had no
    /// room for is keyed here.
    pub fn newer_version(
        &self,
        v: &View,
        template: &str,
        route: u64,
        keys: &Keys,
    ) -> Option<String> {
        let (digest, version) = match self.routes.get(&route) {
            Some(tracked) => tracked.version?,
            None => version_key(v, template, keys)?,
        };
        let highest = *self.versions.get(&digest)?;
        (highest > version).then(|| format!("v{highest}"))
    }

    /// Route templates tracked.
    pub fn routes(&self) -> usize {
        self.routes.len()
    }

    /// The whole inventory as JSON (dumped on demand and at exit), hosts and routes sorted.
    pub fn to_json(&self) -> Value {
        let mut hosts: BTreeMap<&str, BTreeMap<String, Value>> = BTreeMap::new();
        for r in self.routes.values() {
            hosts.entry(&r.host).or_default().insert(
                format!("{} {}", r.method, r.template),
                serde_json::to_value(&r.stats).unwrap_or(Value::Null),
            );
        }
        json!({
            "schema": "cleartap.inventory/1",
            "routes": self.routes.len(),
            "routes_not_tracked": self.overflow,
            "hosts": hosts,
        })
    }
}
