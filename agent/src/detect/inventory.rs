//! The API inventory learned from traffic: per host, method and route template — how often,
//! which statuses, whether authentication was seen — and the two inventory rules: INV-1 (a
//! route first seen after the learning period: a shadow or new API) and INV-2 (an older API
//! version still answering while a newer one exists).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::{route::version_number, view::View};

#[derive(Debug, Default, Clone, Serialize)]
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
}

pub struct Inventory {
    /// host → "METHOD template" → stats. Bounded by `max_routes` in total.
    routes: BTreeMap<String, BTreeMap<String, RouteStats>>,
    count: usize,
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

impl Inventory {
    pub fn new(max_routes: usize, learning_secs: u64) -> Self {
        Self {
            routes: BTreeMap::new(),
            count: 0,
            max_routes,
            overflow: 0,
            started_ms: None,
            learning_ms: learning_secs as i64 * 1000,
        }
    }

    pub fn record(&mut self, v: &View, template: &str) -> Seen {
        let started = *self.started_ms.get_or_insert(v.epoch_ms);
        let key = format!("{} {template}", v.method);
        let known = self
            .routes
            .get(v.host)
            .is_some_and(|h| h.contains_key(&key));
        let seen = if known {
            Seen::Known
        } else if self.count >= self.max_routes {
            // Checked before any insertion: Host headers come from the network, and an empty
            // per-host map for each new one would grow without bound.
            self.overflow += 1;
            return Seen::Overflow;
        } else {
            self.count += 1;
            Seen::New {
                after_learning: v.epoch_ms - started > self.learning_ms,
            }
        };
        let host = self.routes.entry(v.host.to_owned()).or_default();
        let stats = host.entry(key).or_insert_with(|| RouteStats {
            first_seen_ms: v.epoch_ms,
            ..RouteStats::default()
        });
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
        seen
    }

    /// Adds sensitive data kinds seen on a route (kept sorted, at most 16).
    pub fn note_sensitive(&mut self, v: &View, template: &str, kinds: &[String]) {
        let Some(stats) = self
            .routes
            .get_mut(v.host)
            .and_then(|h| h.get_mut(&format!("{} {template}", v.method)))
        else {
            return;
        };
        for k in kinds {
            if stats.sensitive_data.len() < 16 && !stats.sensitive_data.contains(k) {
                stats.sensitive_data.push(k.clone());
            }
        }
        stats.sensitive_data.sort();
    }

    /// (requests, requests with credentials) seen on this route so far.
    pub fn auth_baseline(&self, v: &View, template: &str) -> Option<(u64, u64)> {
        let stats = self
            .routes
            .get(v.host)?
            .get(&format!("{} {template}", v.method))?;
        Some((stats.requests, stats.with_auth))
    }

    /// INV-2: `template` has a version segment `vN` and the same route exists with a higher
    /// version on this host. Returns the newer version.
    pub fn newer_version(&self, v: &View, template: &str) -> Option<String> {
        let segments: Vec<&str> = template.split('/').collect();
        let (at, version) = segments
            .iter()
            .enumerate()
            .find_map(|(i, s)| version_number(s).map(|n| (i, n)))?;
        let host = self.routes.get(v.host)?;
        host.keys().find_map(|key| {
            let (method, other) = key.split_once(' ')?;
            if method != v.method {
                return None;
            }
            let others: Vec<&str> = other.split('/').collect();
            if others.len() != segments.len() {
                return None;
            }
            let newer = version_number(others.get(at)?).filter(|n| *n > version)?;
            let same_rest = others
                .iter()
                .zip(&segments)
                .enumerate()
                .all(|(i, (a, b))| i == at || a == b);
            same_rest.then(|| format!("v{newer}"))
        })
    }

    /// Route templates tracked.
    pub fn routes(&self) -> usize {
        self.count
    }

    /// The whole inventory as JSON (dumped on demand and at exit).
    pub fn to_json(&self) -> Value {
        let hosts: serde_json::Map<String, Value> = self
            .routes
            .iter()
            .map(|(host, routes)| {
                let routes: serde_json::Map<String, Value> = routes
                    .iter()
                    .map(|(k, s)| (k.clone(), serde_json::to_value(s).unwrap_or(Value::Null)))
                    .collect();
                (host.clone(), Value::Object(routes))
            })
            .collect();
        json!({
            "schema": "cleartap.inventory/1",
            "routes": self.count,
            "routes_not_tracked": self.overflow,
            "hosts": hosts,
        })
    }
}
