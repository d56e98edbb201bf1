//! Client addresses on the abusive list: actors that detection knows only by address (AUTH-6
//! without a token) and operators' blocks by IP. Denied at servers' reads only — where the
//! client is the other end of the connection — and only with `[enforce] client_addresses`
//! (off by default: the clients behind one NAT or proxy share its address).

use std::net::IpAddr;

use agent_common::{
    enforce::{ACTOR_ANY_ROUTE, ActorEntry, ClientKey},
    event::{AF_INET, AF_INET6},
};

use super::{Enforcer, ListedActor, MAX_ACTORS, add_rule};
use crate::{detect::RuleId, kernel::control::VerdictMaps};

/// The kernel's key of a client address (as the gate holds a peer's address).
pub fn client_key(ip: IpAddr) -> ClientKey {
    let mut key = ClientKey::default();
    match ip {
        IpAddr::V4(v4) => {
            key.family = AF_INET;
            key.addr[..4].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            key.family = AF_INET6;
            key.addr = v6.octets();
        }
    }
    key
}

/// Why a client address is listed.
pub(super) struct ClientListing {
    pub because: Option<RuleId>,
    pub operator: Option<String>,
    /// Denied on every route (an operator's block without a route).
    pub any_route: bool,
    pub until_ms: i64,
}

impl<M: VerdictMaps> Enforcer<M> {
    /// Lists `ip` (or extends its entry) here and in the kernel. None when client addresses
    /// are not enforced (counted as not enforceable) or the list is full (counted).
    pub(super) fn list_client(
        &mut self,
        ip: IpAddr,
        why: ClientListing,
        now_ms: i64,
        now_mono_ns: u64,
    ) -> Option<Result<(), crate::kernel::control::ControlError>> {
        if !self.config.client_addresses {
            self.stats.actors_not_enforceable += 1;
            return None;
        }
        if !self.clients.contains_key(&ip) && self.clients.len() >= MAX_ACTORS {
            self.stats.list_full += 1;
            return None;
        }
        self.dirty = true;
        let entry = self.clients.entry(ip).or_insert_with(|| ListedActor {
            token: None,
            rules: Vec::new(),
            operator: None,
            any_route: false,
            until_ms: why.until_ms,
        });
        if let Some(rule) = why.because {
            add_rule(&mut entry.rules, rule);
        }
        if why.operator.is_some() {
            entry.operator = why.operator;
        }
        entry.any_route |= why.any_route;
        entry.until_ms = entry.until_ms.max(why.until_ms);
        let (until, any_route) = (entry.until_ms, entry.any_route);
        self.stats.clients_listed += 1;
        let kernel = ActorEntry {
            expires_ns: self.expires_ns(until, now_ms, now_mono_ns),
            flags: if self.config.any_route || any_route {
                ACTOR_ANY_ROUTE
            } else {
                0
            },
        };
        Some(self.maps.put_client(&client_key(ip), &kernel))
    }

    /// Drops `ip` here and in the kernel.
    pub(super) fn unlist_client(
        &mut self,
        ip: IpAddr,
    ) -> Option<Result<(), crate::kernel::control::ControlError>> {
        self.clients.remove(&ip)?;
        self.dirty = true;
        Some(self.maps.remove_client(&client_key(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_addresses_as_the_gate_does() {
        let v4 = client_key("203.0.113.9".parse().expect("ip"));
        assert_eq!(v4.family, AF_INET);
        assert_eq!(&v4.addr[..4], &[203, 0, 113, 9]);
        assert_eq!(&v4.addr[4..], &[0; 12]);
        let v6 = client_key("2001:db8::1".parse().expect("ip"));
        assert_eq!(v6.family, AF_INET6);
        assert_eq!(v6.addr[0..2], [0x20, 0x01]);
        assert_eq!(v6.addr[15], 1);
    }
}
