//! Operators' hands on the lists: what is listed (`cleartap block list`), blocks by the tag
//! events show (`block add`), unblocks (`block remove`). Served over the admin socket
//! (admin.rs).

use agent_common::enforce::{ACTOR_ANY_ROUTE, ActorEntry, RouteEntry};

use super::{ANY_HOST, Enforcer, ListedActor, ListedRoute, listed_by, route_key};
use crate::kernel::control::VerdictMaps;

/// Credentials seen recently, tag → kernel key, so that an operator can block an actor by the
/// tag events show. Bounded; forgotten wholesale when full (counted).
const MAX_RECENT_CREDENTIALS: usize = 65536;

/// One list entry as `cleartap block list` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct EntryView {
    /// `actor:<key>`, `route:<key>` (hex) or `client:<ip>`: what `cleartap block remove` takes.
    pub id: String,
    pub kind: String,
    /// The actor's tag, or `METHOD template` of the route.
    pub what: String,
    pub host: Option<String>,
    pub listed_by: Vec<String>,
    pub any_route: bool,
    pub listed_until: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminError {
    #[error(
        "actor {0:?}: no credential with this tag was seen since the agent started (block by the [REDACTED:…] tag of a token the agent has seen, or by a client IP address)"
    )]
    UnknownActor(String),
    #[error(
        "actor {0:?} is a client address, and client addresses are not enforced: set [enforce] client_addresses = true (and SIGHUP)"
    )]
    ClientAddressesOff(String),
    #[error("route {0:?}: expected \"METHOD /template\", e.g. \"GET /api/items/{{id}}\"")]
    BadRoute(String),
    #[error("no list entry {0:?} (see `cleartap block list`)")]
    UnknownEntry(String),
    #[error("{0}")]
    Kernel(String),
}

impl<M: VerdictMaps> Enforcer<M> {
    /// Remembers the kernel key of a credential seen with this redaction tag (enforcement on),
    /// for operators' blocks by tag. No allocation when the tag is known.
    pub fn note_credential(&mut self, tag: &str, key: u64) {
        if self.recent.contains_key(tag) {
            return;
        }
        if self.recent.len() >= MAX_RECENT_CREDENTIALS {
            self.recent.clear();
            self.stats.recent_credentials_reset += 1;
        }
        self.recent.insert(tag.to_owned(), key);
    }

    /// Every list entry, actors first.
    pub fn list(&self) -> Vec<EntryView> {
        let until = |ms: i64| crate::event::build::rfc3339(i128::from(ms) * 1_000_000);
        let mut out: Vec<EntryView> = self
            .actors
            .iter()
            .map(|(key, a)| EntryView {
                id: format!("actor:{key:016x}"),
                kind: "actor".into(),
                what: a.token.clone().unwrap_or_default(),
                host: None,
                listed_by: listed_by(&a.rules, a.operator.as_ref()),
                any_route: a.any_route || self.config.any_route,
                listed_until: until(a.until_ms),
            })
            .collect();
        out.extend(self.clients.iter().map(|(ip, c)| EntryView {
            id: format!("client:{ip}"),
            kind: "client".into(),
            what: ip.to_string(),
            host: None,
            listed_by: listed_by(&c.rules, c.operator.as_ref()),
            any_route: c.any_route || self.config.any_route,
            listed_until: until(c.until_ms),
        }));
        out.extend(self.routes.iter().map(|(key, r)| EntryView {
            id: format!("route:{key:016x}"),
            kind: "route".into(),
            what: format!("{} {}", r.method, r.template),
            host: Some(r.host.clone()),
            listed_by: listed_by(&r.rules, r.operator.as_ref()),
            any_route: false,
            listed_until: until(r.until_ms),
        }));
        out.sort_by(|a, b| (&a.kind, &a.what).cmp(&(&b.kind, &b.what)));
        out
    }

    /// An operator's block: the actor (by tag, or a client IP address) on the route
    /// (`METHOD /template`), or on every route without one. Both join the lists, like
    /// detection's entries (the kernel denies every listed actor on every listed route).
    /// Returns the ids made.
    pub fn add_manual(
        &mut self,
        actor: &str,
        route: Option<&str>,
        ttl_secs: u64,
        reason: &str,
        now_ms: i64,
        now_mono_ns: u64,
    ) -> Result<Vec<String>, AdminError> {
        let route = route
            .map(|r| {
                let (method, template) = r
                    .split_once(' ')
                    .filter(|(m, t)| !m.is_empty() && t.starts_with('/'))
                    .ok_or_else(|| AdminError::BadRoute(r.to_owned()))?;
                Ok::<_, AdminError>((method.to_ascii_uppercase(), template.to_owned()))
            })
            .transpose()?;
        let until_ms = now_ms + (ttl_secs.min(self.config.max_ttl_secs) * 1000) as i64;
        let expires_ns = self.expires_ns(until_ms, now_ms, now_mono_ns);
        let reason = format!("operator: {reason}");
        let mut ids = if let Ok(ip) = actor.parse::<std::net::IpAddr>() {
            if !self.config.client_addresses {
                return Err(AdminError::ClientAddressesOff(actor.to_owned()));
            }
            let why = super::clients::ClientListing {
                because: None,
                operator: Some(reason.clone()),
                any_route: route.is_none(),
                until_ms,
            };
            self.list_client(ip, why, now_ms, now_mono_ns)
                .ok_or_else(|| AdminError::Kernel("the client address list is full".into()))?
                .map_err(|e| AdminError::Kernel(e.to_string()))?;
            vec![format!("client:{ip}")]
        } else {
            self.add_actor_by_tag(actor, route.is_none(), &reason, until_ms, expires_ns)?
        };
        if let Some((method, template)) = route {
            let rkey = route_key(&method, &template);
            let entry = self.routes.entry(rkey).or_insert_with(|| ListedRoute {
                // An operator's route holds on every virtual host (host-agnostic key).
                host: ANY_HOST.to_owned(),
                method,
                template,
                rules: Vec::new(),
                operator: None,
                until_ms,
            });
            entry.operator = Some(reason);
            entry.until_ms = entry.until_ms.max(until_ms);
            self.maps
                .put_route(rkey, &RouteEntry { expires_ns })
                .map_err(|e| AdminError::Kernel(e.to_string()))?;
            ids.push(format!("route:{rkey:016x}"));
        }
        Ok(ids)
    }

    /// Lists the actor whose credential events tag `actor` (the operator's reason on it);
    /// returns its id.
    fn add_actor_by_tag(
        &mut self,
        actor: &str,
        any_route: bool,
        reason: &str,
        until_ms: i64,
        expires_ns: u64,
    ) -> Result<Vec<String>, AdminError> {
        let tag = crate::detect::view::redaction_tag(actor)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("[REDACTED:{actor}]"));
        let key = *self
            .recent
            .get(&tag)
            .or_else(|| {
                self.actors
                    .iter()
                    .find(|(_, a)| a.token.as_deref() == Some(tag.as_str()))
                    .map(|(k, _)| k)
            })
            .ok_or_else(|| AdminError::UnknownActor(actor.to_owned()))?;
        self.dirty = true;
        let entry = self.actors.entry(key).or_insert_with(|| ListedActor {
            token: Some(tag.clone()),
            rules: Vec::new(),
            operator: None,
            any_route: false,
            until_ms,
        });
        entry.operator = Some(reason.to_owned());
        entry.until_ms = entry.until_ms.max(until_ms);
        entry.any_route |= any_route;
        let flags = if entry.any_route || self.config.any_route {
            ACTOR_ANY_ROUTE
        } else {
            0
        };
        self.maps
            .put_actor(key, &ActorEntry { expires_ns, flags })
            .map_err(|e| AdminError::Kernel(e.to_string()))?;
        Ok(vec![format!("actor:{key:016x}")])
    }

    /// Removes a list entry here and in the kernel (an operator's unblock). Detection may list
    /// the actor or route again on its next finding.
    pub fn remove(&mut self, id: &str) -> Result<(), AdminError> {
        let unknown = || AdminError::UnknownEntry(id.to_owned());
        let (kind, hex) = id.split_once(':').ok_or_else(unknown)?;
        if kind == "client" {
            let ip = hex.parse().map_err(|_| unknown())?;
            return self
                .unlist_client(ip)
                .ok_or_else(unknown)?
                .map_err(|e| AdminError::Kernel(e.to_string()));
        }
        let key = u64::from_str_radix(hex, 16).map_err(|_| unknown())?;
        self.dirty = true;
        let result = match kind {
            "actor" if self.actors.remove(&key).is_some() => self.maps.remove_actor(key),
            "route" if self.routes.remove(&key).is_some() => self.maps.remove_route(key),
            _ => return Err(unknown()),
        };
        result.map_err(|e| AdminError::Kernel(e.to_string()))
    }
}
