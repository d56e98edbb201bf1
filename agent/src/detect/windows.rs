//! Rules over time, with bounded state: BOLA-1 (distinct object ids per actor and route),
//! TOK-1 (one token from many client addresses or user agents), TOK-2 (high error ratio per
//! actor), TOK-3 (usage per actor), AUTH-6 (authentication failures per client address). Every
//! table has a size bound; when full the least recently seen tenth is dropped and counted.
//!
//! Tables are keyed by 64-bit digests of the key text ([`Keys`]), so judging an exchange
//! allocates no key strings. The digest is SipHash with a per-process random key: a remote
//! client cannot make two actors share a window by choosing colliding names.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hash, Hasher},
};

use rustc_hash::FxBuildHasher;
use serde_json::{Value, json};

use super::{DetectConfig, view::View};

/// Digests of key text: keyed once per process.
pub struct Keys(std::collections::hash_map::RandomState);

impl Keys {
    pub fn new() -> Self {
        Self(std::collections::hash_map::RandomState::new())
    }

    /// The digest of `parts` (length-prefixed, so ("ab","c") and ("a","bc") differ).
    pub fn of(&self, parts: &[&str]) -> u64 {
        let mut h = self.0.build_hasher();
        for p in parts {
            p.len().hash(&mut h);
            h.write(p.as_bytes());
        }
        h.finish()
    }

    /// The digest of a tag and some bytes.
    pub fn of_bytes(&self, tag: &str, bytes: &[u8]) -> u64 {
        let mut h = self.0.build_hasher();
        tag.len().hash(&mut h);
        h.write(tag.as_bytes());
        h.write(bytes);
        h.finish()
    }

    /// The digest of a client address, from its bytes (no text made).
    pub fn of_address(&self, ip: std::net::IpAddr) -> u64 {
        match ip {
            std::net::IpAddr::V4(ip) => self.of_bytes("ip", &ip.octets()),
            std::net::IpAddr::V6(ip) => self.of_bytes("ip", &ip.octets()),
        }
    }

    /// The digest of two digests.
    pub fn pair(&self, a: u64, b: u64) -> u64 {
        let mut h = self.0.build_hasher();
        a.hash(&mut h);
        b.hash(&mut h);
        h.finish()
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

/// An actor's use in TOK-3's one-minute window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub requests: u64,
    pub response_bytes: u64,
}

impl Usage {
    pub fn evidence(self) -> Value {
        json!({ "requests": self.requests, "response_bytes": self.response_bytes, "window_secs": 60 })
    }
}

/// A map with a size bound: when full, the tenth least recently touched entries go.
pub struct Bounded<K, V> {
    entries: HashMap<K, (i64, V), FxBuildHasher>,
    max: usize,
    pub evicted: u64,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    pub fn new(max: usize) -> Self {
        Self {
            entries: HashMap::default(),
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

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, (_, v))| (k, v))
    }

    /// The entry of `key`, made with `new` if absent (after making room), marked used `now`.
    pub fn entry<Q>(&mut self, key: &Q, now: i64, new: impl FnOnce() -> V) -> &mut V
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.entries.contains_key(key) && self.entries.len() >= self.max {
            // Amortised: a tenth goes at once, so this sort runs once per max/10 inserts.
            let mut ages: Vec<(i64, K)> = self
                .entries
                .iter()
                .map(|(k, (t, _))| (*t, k.clone()))
                .collect();
            ages.sort_unstable_by_key(|(t, _)| *t);
            for (_, k) in ages.into_iter().take(self.max / 10) {
                self.entries.remove::<K>(&k);
                self.evicted += 1;
            }
        }
        // For digest keys `to_owned` is a copy; string keys are only used off the hot path.
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
    /// Digests of distinct values seen (ids, user agents), at most the rule's threshold.
    distinct: Vec<u64>,
    /// Distinct client addresses (TOK-1 shows them as evidence), at most the threshold.
    addresses: Vec<std::net::IpAddr>,
}

impl Window {
    fn new(now: i64) -> Self {
        Self {
            start: now,
            count: 0,
            errors: 0,
            distinct: Vec::new(),
            addresses: Vec::new(),
        }
    }

    /// Restarts the window once it is older than `length` ms.
    fn roll(&mut self, now: i64, length: i64) {
        if now - self.start > length {
            *self = Self::new(now);
        }
    }

    /// Adds a distinct value while fewer than `limit` are known: enough to decide, bounded.
    fn note(&mut self, value: u64, limit: usize) -> usize {
        if self.distinct.len() < limit && !self.distinct.contains(&value) {
            self.distinct.push(value);
        }
        self.distinct.len()
    }
}

/// The per-exchange digests every windowed rule keys by, made once.
pub struct ExchangeKeys {
    /// The actor (token tag, else client address).
    pub actor: u64,
    /// Host, method and route template.
    pub route: u64,
}

pub struct Windows {
    usage: Bounded<u64, Window>,
    bola: Bounded<u64, Window>,
    token_ips: Bounded<u64, Window>,
    token_agents: Bounded<u64, Window>,
    actor_errors: Bounded<u64, Window>,
    auth_failures: Bounded<u64, Window>,
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
        keys: &Keys,
        k: &ExchangeKeys,
        id: Option<&str>,
        c: &DetectConfig,
    ) -> Option<Value> {
        let id = id?;
        if !v.success() {
            return None;
        }
        let key = keys.pair(k.actor, k.route);
        let w = self
            .bola
            .entry(&key, v.epoch_ms, || Window::new(v.epoch_ms));
        w.roll(v.epoch_ms, c.bola_window_secs as i64 * 1000);
        let limit = c.bola_distinct_ids as usize;
        let distinct = w.note(keys.of(&[id]), limit);
        (distinct >= limit).then(|| {
            json!({
                "distinct_ids": distinct,
                "window_secs": c.bola_window_secs,
            })
        })
    }

    /// TOK-3: an actor's requests or response bytes in a minute pass the limits. `errors`
    /// holds the bytes here. Typed, not JSON: past the limit every request trips it and all
    /// but one per dedup window are suppressed.
    pub fn tok3(&mut self, v: &View, k: &ExchangeKeys, c: &DetectConfig) -> Option<Usage> {
        let w = self
            .usage
            .entry(&k.actor, v.epoch_ms, || Window::new(v.epoch_ms));
        w.roll(v.epoch_ms, 60_000);
        w.count += 1;
        w.errors = w.errors.saturating_add(v.response_bytes());
        (w.count >= c.tok3_requests_per_minute || w.errors >= c.tok3_bytes_per_minute).then_some(
            Usage {
                requests: w.count,
                response_bytes: w.errors,
            },
        )
    }

    /// TOK-1: one token used from several client addresses, or by several user agents, within
    /// the window.
    pub fn tok1(&mut self, v: &View, keys: &Keys, c: &DetectConfig) -> Option<Value> {
        let token = keys.of(&[v.token?]);
        if !v.user_agent.is_empty() {
            let w = self
                .token_agents
                .entry(&token, v.epoch_ms, || Window::new(v.epoch_ms));
            w.roll(v.epoch_ms, c.tok1_window_secs as i64 * 1000);
            let limit = c.tok1_distinct_agents as usize;
            let distinct = w.note(keys.of(&[v.user_agent]), limit);
            if distinct >= limit {
                return Some(json!({
                    "distinct_user_agents": distinct,
                    "window_secs": c.tok1_window_secs,
                }));
            }
        }
        let ip = v.client_ip?;
        let w = self
            .token_ips
            .entry(&token, v.epoch_ms, || Window::new(v.epoch_ms));
        w.roll(v.epoch_ms, c.tok1_window_secs as i64 * 1000);
        let limit = c.tok1_distinct_ips as usize;
        if w.addresses.len() < limit && !w.addresses.contains(&ip) {
            w.addresses.push(ip);
        }
        (w.addresses.len() >= limit).then(|| {
            let mut ips: Vec<String> = w.addresses.iter().map(ToString::to_string).collect();
            ips.sort();
            json!({ "distinct_client_ips": ips, "window_secs": c.tok1_window_secs })
        })
    }

    /// TOK-2: an actor whose requests mostly fail (4xx) in the window.
    pub fn tok2(&mut self, v: &View, k: &ExchangeKeys, c: &DetectConfig) -> Option<Value> {
        let status = v.status?;
        let w = self
            .actor_errors
            .entry(&k.actor, v.epoch_ms, || Window::new(v.epoch_ms));
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
    pub fn auth6(&mut self, v: &View, keys: &Keys, c: &DetectConfig) -> Option<Value> {
        let ip = v.client_ip?;
        if !matches!(v.status, Some(401 | 403)) {
            return None;
        }
        let key = keys.of_address(ip);
        let w = self
            .auth_failures
            .entry(&key, v.epoch_ms, || Window::new(v.epoch_ms));
        w.roll(v.epoch_ms, 60_000);
        w.count += 1;
        (w.count >= c.auth6_failures)
            .then(|| json!({ "auth_failures": w.count, "window_secs": 60 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_evicts_the_least_recent_tenth_and_counts() {
        let mut b: Bounded<u64, u32> = Bounded::new(20);
        for i in 0..20u64 {
            *b.entry(&i, i as i64, || 0) += 1;
        }
        *b.entry(&0, 100, || 0) += 1; // 0 is now the most recent
        *b.entry(&99, 101, || 0) += 1;
        assert_eq!((b.len(), b.evicted), (19, 2));
        assert_eq!(b.get(&0), Some(&2));
        assert_eq!(b.get(&1), None);
        assert_eq!(b.get(&2), None);
    }

    #[test]
    fn key_digests_separate_parts() {
        let k = Keys::new();
        assert_ne!(k.of(&["ab", "c"]), k.of(&["a", "bc"]));
        assert_eq!(k.of(&["ab", "c"]), k.of(&["ab", "c"]));
    }
}
