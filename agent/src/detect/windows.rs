//! Rules over time, with bounded state: BOLA-1 (distinct object ids per actor and route),
//! TOK-1 (one token from many client addresses), TOK-2 (high error ratio per actor), AUTH-6
//! (authentication failures per client address). Every table has a size bound; when full the
//! least recently seen tenth is dropped and counted.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::{DetectConfig, view::View};

/// A map with a size bound: when full, the tenth least recently touched entries go.
pub struct Bounded<V> {
    entries: HashMap<String, (i64, V)>,
    max: usize,
    pub evicted: u64,
}

impl<V> Bounded<V> {
    pub fn new(max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max: max.max(10),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.entries.iter().map(|(k, (_, v))| (k, v))
    }

    pub fn entry(&mut self, key: &str, now: i64, new: impl FnOnce() -> V) -> &mut V {
        if !self.entries.contains_key(key) && self.entries.len() >= self.max {
            let mut ages: Vec<(i64, String)> = self
                .entries
                .iter()
                .map(|(k, (t, _))| (*t, k.clone()))
                .collect();
            ages.sort_unstable();
            for (_, k) in ages.into_iter().take(self.max / 10) {
                self.entries.remove(&k);
                self.evicted += 1;
            }
        }
        let slot = self
            .entries
            .entry(key.to_owned())
            .or_insert_with(|| (now, new()));
        slot.0 = now;
        &mut slot.1
    }
}

/// Events of one key inside a sliding window.
struct Window {
    start: i64,
    count: u64,
    errors: u64,
    distinct: HashSet<String>,
}

impl Window {
    fn new(now: i64) -> Self {
        Self {
            start: now,
            count: 0,
            errors: 0,
            distinct: HashSet::new(),
        }
    }

    /// Restarts the window once it is older than `length` ms.
    fn roll(&mut self, now: i64, length: i64) {
        if now - self.start > length {
            *self = Self::new(now);
        }
    }
}

pub struct Windows {
    usage: Bounded<Window>,
    bola: Bounded<Window>,
    token_ips: Bounded<Window>,
    token_agents: Bounded<Window>,
    actor_errors: Bounded<Window>,
    auth_failures: Bounded<Window>,
}

impl Windows {
    pub fn new(max_keys: usize) -> Self {
        Self {
            usage: Bounded::new(max_keys),
            bola: Bounded::new(max_keys),
            token_ips: Bounded::new(max_keys),
            token_agents: Bounded::new(max_keys),
            actor_errors: Bounded::new(max_keys),
            auth_failures: Bounded::new(max_keys),
        }
    }

    pub fn evicted(&self) -> u64 {
        self.bola.evicted
            + self.usage.evicted
            + self.token_ips.evicted
            + self.token_agents.evicted
            + self.actor_errors.evicted
            + self.auth_failures.evicted
    }

    /// BOLA-1: one actor reads many distinct object ids of one route within the window.
    pub fn bola1(
        &mut self,
        v: &View,
        template: &str,
        ids: &[String],
        c: &DetectConfig,
    ) -> Option<Value> {
        let id = ids.last()?;
        if !v.success() {
            return None;
        }
        let key = format!("{}|{}|{} {}", v.actor(), v.host, v.method, template);
        let w = self
            .bola
            .entry(&key, v.epoch_ms, || Window::new(v.epoch_ms));
        w.roll(v.epoch_ms, c.bola_window_secs as i64 * 1000);
        // The set never grows past the threshold: enough to decide, bounded memory.
        if w.distinct.len() < c.bola_distinct_ids as usize {
            w.distinct.insert(id.clone());
        }
        (w.distinct.len() >= c.bola_distinct_ids as usize).then(|| {
            json!({
                "distinct_ids": w.distinct.len(),
                "window_secs": c.bola_window_secs,
            })
        })
    }

    /// TOK-3: an actor's requests or response bytes in a minute pass the limits. `errors`
    /// holds the bytes here.
    pub fn tok3(&mut self, v: &View, c: &DetectConfig) -> Option<Value> {
        let actor = v.actor();
        let w = self
            .usage
            .entry(actor, v.epoch_ms, || Window::new(v.epoch_ms));
        w.roll(v.epoch_ms, 60_000);
        w.count += 1;
        w.errors = w.errors.saturating_add(v.response_bytes());
        (w.count >= c.tok3_requests_per_minute || w.errors >= c.tok3_bytes_per_minute)
            .then(|| json!({ "requests": w.count, "response_bytes": w.errors, "window_secs": 60 }))
    }

    /// TOK-1: one token used from several client addresses, or by several user agents, within
    /// the window.
    pub fn tok1(&mut self, v: &View, c: &DetectConfig) -> Option<Value> {
        let token = v.token?;
        if !v.user_agent.is_empty() {
            let w = self
                .token_agents
                .entry(token, v.epoch_ms, || Window::new(v.epoch_ms));
            w.roll(v.epoch_ms, c.tok1_window_secs as i64 * 1000);
            if w.distinct.len() < c.tok1_distinct_agents as usize {
                w.distinct.insert(v.user_agent.to_owned());
            }
            if w.distinct.len() >= c.tok1_distinct_agents as usize {
                return Some(json!({
                    "distinct_user_agents": w.distinct.len(),
                    "window_secs": c.tok1_window_secs,
                }));
            }
        }
        let ip = v.client_ip?.to_string();
        let w = self
            .token_ips
            .entry(token, v.epoch_ms, || Window::new(v.epoch_ms));
        w.roll(v.epoch_ms, c.tok1_window_secs as i64 * 1000);
        if w.distinct.len() < c.tok1_distinct_ips as usize {
            w.distinct.insert(ip);
        }
        (w.distinct.len() >= c.tok1_distinct_ips as usize).then(|| {
            let mut ips: Vec<&String> = w.distinct.iter().collect();
            ips.sort();
            json!({ "distinct_client_ips": ips, "window_secs": c.tok1_window_secs })
        })
    }

    /// TOK-2: an actor whose requests mostly fail (4xx) in the window.
    pub fn tok2(&mut self, v: &View, c: &DetectConfig) -> Option<Value> {
        let status = v.status?;
        let actor = v.actor();
        let w = self
            .actor_errors
            .entry(actor, v.epoch_ms, || Window::new(v.epoch_ms));
        w.roll(v.epoch_ms, 60_000);
        w.count += 1;
        if (400..500).contains(&status) {
            w.errors += 1;
        }
        let ratio = w.errors as f64 / w.count as f64;
        (w.count >= c.tok2_min_requests && ratio >= c.tok2_error_ratio)
            .then(|| json!({ "requests": w.count, "client_errors": w.errors, "window_secs": 60 }))
    }

    /// AUTH-6: many 401/403 answers to one client address (brute force, credential stuffing).
    pub fn auth6(&mut self, v: &View, c: &DetectConfig) -> Option<Value> {
        let ip = v.client_ip?;
        if !matches!(v.status, Some(401 | 403)) {
            return None;
        }
        let w = self
            .auth_failures
            .entry(&ip.to_string(), v.epoch_ms, || Window::new(v.epoch_ms));
        w.roll(v.epoch_ms, 60_000);
        w.count += 1;
        (w.count >= c.auth6_failures)
            .then(|| json!({ "auth_failures": w.count, "window_secs": 60 }))
    }
}
