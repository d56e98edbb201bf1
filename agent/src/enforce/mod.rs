//! The enforcement stage: mirrors the lists detection maintains (abusive actors, sensitive
//! routes) into the kernel's verdict maps through `kernel::control`, and turns each kernel
//! verdict into a reset of the connection and a `cleartap.enforcement/1` evidence event.
//!
//! Policy: a listed actor (by its credential's kernel key) on a listed route (method + route
//! template), or on any route with `any_route`. Entries expire in the kernel on their own
//! (the earlier of the detection TTL and `max_ttl_secs`); `max_blocks_per_minute` falls back to
//! monitor mode when tripped. `allow_actors`, `allow_cidrs` and `allow_routes` keep working
//! because an allowed actor or route never reaches the lists.

pub mod admin;
pub mod audit;
pub mod clients;
pub mod config;
pub mod decision;
pub mod evidence;
mod operator;
pub mod reset;
mod verdict;

use std::collections::HashMap;

use agent_common::enforce::{
    ACTOR_ANY_ROUTE, ActorEntry, EnforceSettings, RouteEntry, RouteKey, SETTINGS_CLIENT_ADDRESSES,
};

pub use config::{EnforceConfig, Mode};
use evidence::Listing;
pub use operator::{AdminError, EntryView};

use crate::{
    detect::{ListChange, RuleId},
    kernel::control::{ControlError, VerdictMaps},
};

/// `listed_for_host` of a route listed for every virtual host (an operator's entry).
pub const ANY_HOST: &str = "*";

/// Mirror sizes: those of the kernel maps (agent-ebpf/src/enforce.rs).
const MAX_ACTORS: usize = 65536;
const MAX_ROUTES: usize = 16384;

#[derive(Debug, Clone)]
struct ListedActor {
    token: Option<String>,
    rules: Vec<RuleId>,
    /// Why an operator listed it (`cleartap block add --reason`), if one did.
    operator: Option<String>,
    /// Denied on every route (an operator entry without a route, or `any_route`).
    any_route: bool,
    until_ms: i64,
}

#[derive(Debug, Clone)]
struct ListedRoute {
    host: String,
    method: String,
    template: String,
    rules: Vec<RuleId>,
    operator: Option<String>,
    until_ms: i64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EnforceStats {
    pub verdicts: u64,
    pub would_block: u64,
    pub blocked: u64,
    pub reset: u64,
    pub reset_failed: u64,
    pub actors_listed: u64,
    pub routes_listed: u64,
    /// Client addresses listed (mirrored into ENFORCE_CLIENTS).
    pub clients_listed: u64,
    /// Abusive actors without a credential the kernel can identify (client addresses, or
    /// credentials of another shape): listed by detection, not enforceable in the kernel.
    pub actors_not_enforceable: u64,
    /// Sensitive routes whose Host value is too long for the kernel to key.
    pub routes_not_enforceable: u64,
    /// List entries not mirrored because the mirror (and kernel map) was full.
    pub list_full: u64,
    pub map_errors: u64,
    /// Times the blocks-per-minute cap switched enforcement to monitor.
    pub tripped: u64,
    /// Times the table of recently seen credentials was full and forgotten.
    pub recent_credentials_reset: u64,
    /// Verdicts of the decision service (deny, or would-deny in monitor mode).
    pub decisions: u64,
}

/// What a verdict's evidence needs from the rest of the agent.
pub struct VerdictContext<'a> {
    pub host: &'a str,
    pub exe: Option<&'a str>,
    pub monotonic_to_unix_ns: i128,
}

pub struct Enforcer<M: VerdictMaps> {
    config: EnforceConfig,
    mode: Mode,
    maps: M,
    credential_key: [u64; 2],
    actors: HashMap<u64, ListedActor>,
    routes: HashMap<u64, ListedRoute>,
    /// Listed client addresses (`[enforce] client_addresses`).
    clients: HashMap<std::net::IpAddr, ListedActor>,
    /// (minute number, blocks in it) for the blocks-per-minute cap.
    window: (u64, u64),
    recent: HashMap<String, u64>,
    /// The decision service's copy of the lists, and whether it is behind.
    shared: Option<decision::SharedLists>,
    dirty: bool,
    /// The gates attached at start, strongest first (`bpf_lsm`, `cgroup_skb_egress`).
    pub gates: Vec<&'static str>,
    pub stats: EnforceStats,
}

fn add_rule(rules: &mut Vec<RuleId>, rule: RuleId) {
    if !rules.contains(&rule) {
        rules.push(rule);
    }
}

fn route_of(method: &str, template: &str) -> RouteKey {
    template
        .split('/')
        .fold(RouteKey::method(method.as_bytes()), |k, segment| {
            k.segment(segment.as_bytes())
        })
}

/// The kernel's host-agnostic key of `method` + template (operators' entries: every host).
pub fn route_key(method: &str, template: &str) -> u64 {
    route_of(method, template).get()
}

/// The kernel's key of `method` + template on the virtual host a Host value names (port and
/// case do not matter; an absent Host is the empty host), as the kernel computes it from a
/// request head. None when the value is too long for the kernel to key.
pub fn host_route_key(host: &str, method: &str, template: &str) -> Option<u64> {
    let host = agent_common::enforce::host_of(host.as_bytes())?;
    Some(route_of(method, template).on_host(host).get())
}

/// The rule ids that listed an entry, and `operator` when an operator did.
fn listed_by(rules: &[RuleId], operator: Option<&String>) -> Vec<String> {
    rules
        .iter()
        .map(|r| r.as_str().to_owned())
        .chain(operator.map(|_| "operator".to_owned()))
        .collect()
}

fn listing(rules: &[RuleId], operator: Option<&String>, until_ms: i64) -> Listing {
    Listing {
        listed_by: listed_by(rules, operator),
        listed_until: crate::event::build::rfc3339(i128::from(until_ms) * 1_000_000),
    }
}

impl<M: VerdictMaps> Enforcer<M> {
    pub fn new(
        config: EnforceConfig,
        maps: M,
        credential_key: [u64; 2],
    ) -> Result<Self, ControlError> {
        let mut enforcer = Self {
            mode: config.mode,
            config,
            maps,
            credential_key,
            actors: HashMap::new(),
            routes: HashMap::new(),
            clients: HashMap::new(),
            window: (0, 0),
            recent: HashMap::new(),
            shared: None,
            dirty: false,
            gates: vec!["cgroup_skb_egress"],
            stats: EnforceStats::default(),
        };
        enforcer.write_settings()?;
        Ok(enforcer)
    }

    /// The lists for the decision service, kept current from now on (`publish_if_dirty`).
    pub fn share(&mut self) -> decision::SharedLists {
        let shared = self.shared.get_or_insert_with(Default::default).clone();
        self.dirty = true;
        self.publish_if_dirty();
        shared
    }

    /// Refreshes the decision service's copy when the lists or settings changed.
    pub fn publish_if_dirty(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let Some(shared) = &self.shared else {
            return;
        };
        let actors = self
            .actors
            .iter()
            .map(|(k, a)| {
                let entry = decision::Entry {
                    what: a.token.clone().unwrap_or_default(),
                    host: None,
                    listing: Some(listing(&a.rules, a.operator.as_ref(), a.until_ms)),
                    until_ms: a.until_ms,
                    any_route: a.any_route,
                };
                (*k, entry)
            })
            .collect();
        let routes = self
            .routes
            .iter()
            .map(|(k, r)| {
                let entry = decision::Entry {
                    what: format!("{} {}", r.method, r.template),
                    host: Some(r.host.clone()),
                    listing: Some(listing(&r.rules, r.operator.as_ref(), r.until_ms)),
                    until_ms: r.until_ms,
                    any_route: false,
                };
                (*k, entry)
            })
            .collect();
        let lists = decision::Lists {
            mode: self.mode,
            any_route: self.config.any_route,
            sip_key: self.credential_key,
            actors,
            routes,
        };
        if let Ok(mut slot) = shared.write() {
            *slot = lists;
        }
    }

    fn write_settings(&mut self) -> Result<(), ControlError> {
        self.dirty = true;
        self.maps.set_settings(&EnforceSettings {
            mode: self.mode.kernel(),
            points: self.config.points(),
            sip_key: self.credential_key,
            gate_ttl_ns: self.config.gate_ttl_secs.saturating_mul(1_000_000_000),
            flags: if self.config.client_addresses {
                SETTINGS_CLIENT_ADDRESSES
            } else {
                0
            },
        })
    }

    pub fn credential_key(&self) -> [u64; 2] {
        self.credential_key
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The kill switch and its reverse: one map write.
    pub fn set_mode(&mut self, mode: Mode) -> Result<(), ControlError> {
        self.mode = mode;
        self.write_settings()
    }

    /// SIGHUP: a new `[enforce]` takes effect with one settings write (mode, points); entries
    /// already in the kernel keep their expiry, new ones follow the new TTL cap and scope.
    pub fn reconfigure(&mut self, config: EnforceConfig) -> Result<(), ControlError> {
        self.mode = config.mode;
        self.config = config;
        self.write_settings()
    }

    pub fn config(&self) -> &EnforceConfig {
        &self.config
    }

    /// Kernel expiry of an entry listed until `until_ms`, capped by `max_ttl_secs`.
    fn expires_ns(&self, until_ms: i64, now_ms: i64, now_mono_ns: u64) -> u64 {
        let ttl_ms = (until_ms - now_ms)
            .max(0)
            .min(self.config.max_ttl_secs.saturating_mul(1000) as i64);
        now_mono_ns.saturating_add(ttl_ms as u64 * 1_000_000)
    }

    fn note(&mut self, result: Result<(), ControlError>) {
        if let Err(e) = result {
            self.stats.map_errors += 1;
            if self.stats.map_errors == 1 {
                log::error!("enforcement: {e}");
            }
        }
    }

    /// Mirrors list entries detection made or extended into the kernel.
    pub fn apply(&mut self, changes: Vec<ListChange>, now_ms: i64, now_mono_ns: u64) {
        self.dirty |= !changes.is_empty();
        for change in changes {
            match change {
                ListChange::Actor {
                    token,
                    client_ip,
                    credential_key,
                    until_ms,
                    because,
                } => {
                    let Some(key) = credential_key else {
                        // Known by address only: a client-address entry, when those are on.
                        let Some(ip) = client_ip.and_then(|ip| ip.parse().ok()) else {
                            self.stats.actors_not_enforceable += 1;
                            continue;
                        };
                        let why = clients::ClientListing {
                            because: Some(because),
                            operator: None,
                            any_route: false,
                            until_ms,
                        };
                        if let Some(result) = self.list_client(ip, why, now_ms, now_mono_ns) {
                            self.note(result);
                        }
                        continue;
                    };
                    if !self.actors.contains_key(&key) && self.actors.len() >= MAX_ACTORS {
                        self.stats.list_full += 1;
                        continue;
                    }
                    let entry = self.actors.entry(key).or_insert_with(|| ListedActor {
                        token,
                        rules: Vec::new(),
                        operator: None,
                        any_route: false,
                        until_ms,
                    });
                    add_rule(&mut entry.rules, because);
                    entry.until_ms = entry.until_ms.max(until_ms);
                    let (until, any_route) = (entry.until_ms, entry.any_route);
                    self.stats.actors_listed += 1;
                    let kernel = ActorEntry {
                        expires_ns: self.expires_ns(until, now_ms, now_mono_ns),
                        flags: if self.config.any_route || any_route {
                            ACTOR_ANY_ROUTE
                        } else {
                            0
                        },
                    };
                    let result = self.maps.put_actor(key, &kernel);
                    self.note(result);
                }
                ListChange::Route {
                    host,
                    method,
                    template,
                    until_ms,
                    because,
                } => {
                    // Listed for the host it was seen on: the same path on another virtual
                    // host of the node is another route.
                    let Some(key) = host_route_key(&host, &method, &template) else {
                        self.stats.routes_not_enforceable += 1;
                        continue;
                    };
                    if !self.routes.contains_key(&key) && self.routes.len() >= MAX_ROUTES {
                        self.stats.list_full += 1;
                        continue;
                    }
                    let entry = self.routes.entry(key).or_insert_with(|| ListedRoute {
                        host,
                        method,
                        template,
                        rules: Vec::new(),
                        operator: None,
                        until_ms,
                    });
                    add_rule(&mut entry.rules, because);
                    entry.until_ms = entry.until_ms.max(until_ms);
                    let until = entry.until_ms;
                    self.stats.routes_listed += 1;
                    let kernel = RouteEntry {
                        expires_ns: self.expires_ns(until, now_ms, now_mono_ns),
                    };
                    let result = self.maps.put_route(key, &kernel);
                    self.note(result);
                }
            }
        }
    }

    /// Forgets entries past their time, here and in the kernel (where they already stopped
    /// counting; this frees their slots).
    pub fn expire(&mut self, now_ms: i64) {
        let gone: Vec<u64> = self
            .actors
            .iter()
            .filter(|(_, a)| a.until_ms <= now_ms)
            .map(|(k, _)| *k)
            .collect();
        self.dirty |= !gone.is_empty();
        for key in gone {
            self.actors.remove(&key);
            let result = self.maps.remove_actor(key);
            self.note(result);
        }
        let gone: Vec<u64> = self
            .routes
            .iter()
            .filter(|(_, r)| r.until_ms <= now_ms)
            .map(|(k, _)| *k)
            .collect();
        self.dirty |= !gone.is_empty();
        for key in gone {
            self.routes.remove(&key);
            let result = self.maps.remove_route(key);
            self.note(result);
        }
        let gone: Vec<std::net::IpAddr> = self
            .clients
            .iter()
            .filter(|(_, c)| c.until_ms <= now_ms)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in gone {
            if let Some(result) = self.unlist_client(ip) {
                self.note(result);
            }
        }
    }

    /// ENFORCE_COUNTERS of the kernel side.
    pub fn kernel_counters(&self) -> [u64; agent_common::enforce::counter::COUNT as usize] {
        self.maps.counters()
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
