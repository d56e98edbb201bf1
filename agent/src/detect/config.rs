//! `[detect]` of the configuration: thresholds, windows, allowlists, bounds — validated with
//! errors that name the key.

use serde::Deserialize;

use super::catalogue::{CATALOGUE, RuleId};

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
    /// ANOM-1/2 judge an endpoint only after this many exchanges taught its baseline.
    pub anomaly_min_samples: u64,
    /// ANOM-1: a response larger than this many times the endpoint's p99 size (≥ 4 KiB).
    pub anom1_size_factor: f64,
    /// ANOM-2: a response slower than this many times the endpoint's p99 latency (≥ 100 ms).
    pub anom2_latency_factor: f64,
    /// ANOM-2 (error ratio): an actor with at least this many requests on an endpoint, half of
    /// them failing, where the others fail at most one in ten.
    pub anom2_min_actor_requests: u64,
    /// GQL-2: more operations than this batched in one request, or more aliases than
    /// `gql_max_aliases` in it.
    pub gql_max_batch: usize,
    pub gql_max_aliases: usize,
    /// GQL-3: selection sets nested deeper than this.
    pub gql_max_depth: usize,
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
            anomaly_min_samples: 50,
            anom1_size_factor: 10.0,
            anom2_latency_factor: 20.0,
            anom2_min_actor_requests: 20,
            gql_max_batch: 10,
            gql_max_aliases: 15,
            gql_max_depth: 10,
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
        at_least("anomaly_min_samples", self.anomaly_min_samples, 10)?;
        for (name, factor) in [
            ("anom1_size_factor", self.anom1_size_factor),
            ("anom2_latency_factor", self.anom2_latency_factor),
        ] {
            if !(factor.is_finite() && factor > 1.0) {
                return Err(format!(
                    "detect.{name} = {factor}: must be a number above 1"
                ));
            }
        }
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
