use std::collections::HashMap;

use agent_common::enforce::{
    ACTION_BLOCKED, ACTION_WOULD_BLOCK, ActorEntry, ClientKey, EnforceSettings, GateKey, HeadScan,
    MODE_MONITOR, POINT_SERVER_READ, RouteEntry, SCAN_COMPLETE, VERDICT_TUPLE_KNOWN, VerdictRecord,
    counter,
};

use super::{evidence::Action, *};
use crate::{classify::redact::TokenKey, detect::route};

#[derive(Default)]
struct FakeMaps {
    settings: Option<EnforceSettings>,
    actors: HashMap<u64, ActorEntry>,
    routes: HashMap<u64, RouteEntry>,
    clients: HashMap<ClientKey, ActorEntry>,
    gates_removed: Vec<GateKey>,
}

impl VerdictMaps for FakeMaps {
    fn set_settings(&mut self, s: &EnforceSettings) -> Result<(), ControlError> {
        self.settings = Some(*s);
        Ok(())
    }
    fn put_actor(&mut self, key: u64, e: &ActorEntry) -> Result<(), ControlError> {
        self.actors.insert(key, *e);
        Ok(())
    }
    fn remove_actor(&mut self, key: u64) -> Result<(), ControlError> {
        self.actors.remove(&key);
        Ok(())
    }
    fn put_route(&mut self, key: u64, e: &RouteEntry) -> Result<(), ControlError> {
        self.routes.insert(key, *e);
        Ok(())
    }
    fn remove_route(&mut self, key: u64) -> Result<(), ControlError> {
        self.routes.remove(&key);
        Ok(())
    }
    fn put_client(&mut self, key: &ClientKey, e: &ActorEntry) -> Result<(), ControlError> {
        self.clients.insert(*key, *e);
        Ok(())
    }
    fn remove_client(&mut self, key: &ClientKey) -> Result<(), ControlError> {
        self.clients.remove(key);
        Ok(())
    }
    fn remove_gate(&mut self, key: &GateKey) -> Result<(), ControlError> {
        self.gates_removed.push(*key);
        Ok(())
    }
    fn counters(&self) -> [u64; counter::COUNT as usize] {
        [0; counter::COUNT as usize]
    }
}

const KEY: [u64; 2] = [11, 22];

fn enforcer(mode: Mode) -> Enforcer<FakeMaps> {
    let config = EnforceConfig {
        mode,
        max_blocks_per_minute: 2,
        ..EnforceConfig::default()
    };
    Enforcer::new(config, FakeMaps::default(), KEY).expect("fake maps")
}

fn listed(e: &mut Enforcer<FakeMaps>) -> (u64, u64) {
    let token = agent_common::enforce::credential_key(KEY, b"tok-B");
    e.apply(
        vec![
            ListChange::Actor {
                token: Some("[REDACTED:0011223344556677]".into()),
                client_ip: None,
                credential_key: Some(token),
                until_ms: 1_000_000 + 3_600_000,
                because: RuleId::Bola1,
            },
            ListChange::Route {
                host: "api.test".into(),
                method: "GET".into(),
                template: "/secret".into(),
                until_ms: 1_000_000 + 7_200_000,
                because: RuleId::Data1,
            },
        ],
        1_000_000,
        5_000_000_000,
    );
    // DATA-1 lists the route for the host it saw it on.
    let on_host = host_route_key("api.test", "GET", "/secret").expect("a short host");
    assert_ne!(on_host, route_key("GET", "/secret"));
    (token, on_host)
}

fn verdict(action: u32, token: u64, route: u64) -> VerdictRecord {
    let mut gate = GateKey {
        family: agent_common::event::AF_INET,
        local_port: 8443,
        remote_port: 40000,
        ..GateKey::default()
    };
    gate.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    gate.remote_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    VerdictRecord {
        header: agent_common::event::RecordHeader {
            kind: agent_common::event::KIND_VERDICT,
            _pad: 0,
            timestamp_ns: 6_000_000_000,
            pid_tgid: 77 << 32,
        },
        stream: 1,
        token_key: token,
        route_key: route,
        fd: 5,
        action,
        point: POINT_SERVER_READ,
        flags: VERDICT_TUPLE_KNOWN,
        credential: agent_common::enforce::CREDENTIAL_AUTHORIZATION,
        _pad: 0,
        gate,
        cgroup_id: 1,
        comm: *b"nginx\0\0\0\0\0\0\0\0\0\0\0",
    }
}

fn ctx() -> VerdictContext<'static> {
    VerdictContext {
        host: "node-1",
        exe: Some("/usr/sbin/nginx"),
        monotonic_to_unix_ns: 1_763_700_000_000_000_000,
    }
}

#[test]
fn lists_reach_the_kernel_with_capped_expiry() {
    let mut e = enforcer(Mode::Enforce);
    let (token, route) = listed(&mut e);
    let s = e.maps.settings.expect("settings written");
    assert_eq!((s.mode, s.points, s.sip_key), (2, 3, KEY));
    // 1 h listed, capped at max_ttl 1 h; the route's 2 h capped to 1 h too.
    assert_eq!(
        e.maps.actors[&token].expires_ns,
        5_000_000_000 + 3_600_000_000_000
    );
    assert_eq!(
        e.maps.routes[&route].expires_ns,
        5_000_000_000 + 3_600_000_000_000
    );
    e.expire(1_000_000 + 3_600_000);
    assert!(e.maps.actors.is_empty());
    assert_eq!(e.maps.routes.len(), 1);
}

#[test]
fn actors_without_a_credential_key_are_counted_not_enforced() {
    let mut e = enforcer(Mode::Enforce);
    e.apply(
        vec![ListChange::Actor {
            token: None,
            client_ip: Some("10.0.0.9".into()),
            credential_key: None,
            until_ms: 10,
            because: RuleId::Auth6,
        }],
        0,
        0,
    );
    assert_eq!(e.stats.actors_not_enforceable, 1);
    assert!(e.maps.actors.is_empty());
}

#[test]
fn a_block_is_reset_and_its_evidence_names_both_lists() {
    let mut e = enforcer(Mode::Enforce);
    let (token, route) = listed(&mut e);
    let event = e.on_verdict(
        &verdict(ACTION_BLOCKED, token, route),
        &ctx(),
        |_| Ok(std::time::Duration::from_micros(300)),
        || 6_001_000_000,
    );
    let json = serde_json::to_value(&event).expect("serialises");
    assert_eq!(json["schema"], "cleartap.enforcement/1");
    assert_eq!(json["action"], "reset");
    assert_eq!(json["gates"][0], "cgroup_skb_egress");
    assert_eq!(json["policy"], "abusive_actor_on_sensitive_route");
    assert_eq!(json["actor"]["listed_by"][0], "BOLA-1");
    assert_eq!(json["actor"]["token"], "[REDACTED:0011223344556677]");
    assert_eq!(json["route"]["listed_by"][0], "DATA-1");
    assert_eq!(json["route"]["template"], "/secret");
    assert_eq!(json["process"]["comm"], "nginx");
    assert_eq!(json["connection"]["role"], "server");
    assert_eq!(json["connection"]["local"]["port"], 8443);
    assert_eq!(json["reset"]["decision_to_reset_us"], 1000);
    assert_eq!(e.maps.gates_removed.len(), 1);
}

#[test]
fn failed_reset_with_a_gate_is_blocked_and_monitor_only_reports() {
    let mut e = enforcer(Mode::Enforce);
    let (token, route) = listed(&mut e);
    let event = e.on_verdict(
        &verdict(ACTION_BLOCKED, token, route),
        &ctx(),
        |_| Err(reset::ResetError::NoTuple),
        || 0,
    );
    assert_eq!(event.action, Action::Blocked);
    assert_eq!(event.reset.reason, Some("tuple_unknown"));
    let event = e.on_verdict(
        &verdict(ACTION_WOULD_BLOCK, token, route),
        &ctx(),
        |_| panic!("monitor mode never resets"),
        || 0,
    );
    assert_eq!(event.action, Action::WouldBlock);
    assert!(event.gates.is_empty());
}

#[test]
fn too_many_blocks_in_a_minute_fall_back_to_monitor() {
    let mut e = enforcer(Mode::Enforce);
    let (token, route) = listed(&mut e);
    for _ in 0..3 {
        e.on_verdict(
            &verdict(ACTION_BLOCKED, token, route),
            &ctx(),
            |_| Ok(std::time::Duration::ZERO),
            || 1,
        );
    }
    assert_eq!(e.stats.tripped, 1);
    assert_eq!(e.mode(), Mode::Monitor);
    assert_eq!(e.maps.settings.map(|s| s.mode), Some(MODE_MONITOR));
}

/// Shared vectors: the kernel's head scan and the agent's own derivation (inventory template,
/// credential as the event builder takes it) give the same keys.
#[test]
fn kernel_scan_and_agent_agree_on_keys() {
    let token_key = TokenKey::for_tests();
    let sip = token_key.credential_key();
    let paths = [
        "/secret",
        "/api/items/42",
        "/api/items/42/",
        "/v2/users/3f2a1b7c-9d8e-4f60-a1b2-c3d4e5f60718/orders",
        "/files/deadbeef0042/raw",
        "/o/ord_8f7d6c5b9a",
        "/report-2024/page2",
        "/",
        "/a//b",
        "/%7Euser/x",
    ];
    for path in paths {
        for (header, value) in [
            ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"),
            ("X-Api-Key", "k-123"),
            ("authorization", "Basic dXNlcjpwYXNz"),
        ] {
            let head = format!("POST {path}?q=1 HTTP/1.1\r\nHost: h\r\n{header}: {value}\r\n\r\n");
            let mut scan = HeadScan::new(sip);
            head.bytes().for_each(|c| scan.step(c));
            assert_eq!(scan.done, SCAN_COMPLETE, "{head}");
            let (template, _) = route::template(path);
            assert_eq!(scan.route_key, route_key("POST", &template), "{path}");
            let lower = header.to_ascii_lowercase();
            let credential = agent_common::enforce::credential_of(&lower, value.as_bytes())
                .map(|c| agent_common::enforce::credential_key(sip, c));
            assert_eq!(scan.token(), credential, "{header}: {value}");
        }
    }
}

#[test]
fn operators_list_block_by_tag_and_unblock() {
    let mut e = enforcer(Mode::Enforce);
    let (token, route) = listed(&mut e);
    let unknown = e.add_manual("[REDACTED:ffffffffffffffff]", None, 60, "x", 0, 0);
    assert!(matches!(unknown, Err(AdminError::UnknownActor(_))));
    let other = agent_common::enforce::credential_key(KEY, b"tok-C");
    e.note_credential("[REDACTED:00000000000000cc]", other);
    let ids = e
        .add_manual(
            "00000000000000cc",
            Some("post /orders/{id}"),
            120,
            "fraud ticket 7",
            1_000,
            9,
        )
        .expect("known tag");
    let order_route = route_key("POST", "/orders/{id}");
    assert_eq!(
        ids,
        vec![
            format!("actor:{other:016x}"),
            format!("route:{order_route:016x}")
        ]
    );
    assert_eq!(e.maps.actors[&other].expires_ns, 9 + 120_000_000_000);
    assert_eq!(e.maps.actors[&other].flags, 0);
    assert!(e.maps.routes.contains_key(&order_route));
    assert!(matches!(
        e.add_manual("00000000000000cc", Some("orders"), 1, "x", 0, 0),
        Err(AdminError::BadRoute(_))
    ));
    let list = e.list();
    let whats: Vec<(&str, &str)> = list
        .iter()
        .map(|v| (v.kind.as_str(), v.what.as_str()))
        .collect();
    assert_eq!(
        whats,
        vec![
            ("actor", "[REDACTED:00000000000000cc]"),
            ("actor", "[REDACTED:0011223344556677]"),
            ("route", "GET /secret"),
            ("route", "POST /orders/{id}"),
        ]
    );
    assert_eq!(list[0].listed_by, vec!["operator".to_owned()]);
    assert_eq!(list[1].listed_by, vec!["BOLA-1".to_owned()]);
    // Unblock the detected actor; the kernel entry goes too.
    e.remove(&format!("actor:{token:016x}")).expect("listed");
    assert!(!e.maps.actors.contains_key(&token));
    assert!(matches!(
        e.remove("actor:zz"),
        Err(AdminError::UnknownEntry(_))
    ));
    assert!(e.maps.routes.contains_key(&route));
}

#[test]
fn admin_requests_and_their_answers() {
    let mut e = enforcer(Mode::Enforce);
    listed(&mut e);
    let answer = admin::handle(&mut e, br#"{"cmd":"enforce","mode":"off"}"#, 0, 0);
    assert!(answer.ok && answer.mode == Some(Mode::Off), "{answer:?}");
    assert_eq!(e.maps.settings.map(|s| s.mode), Some(0));
    let answer = admin::handle(&mut e, br#"{"cmd":"list"}"#, 0, 0);
    assert_eq!(answer.entries.len(), 2);
    let answer = admin::handle(&mut e, b"{not json", 0, 0);
    assert!(
        !answer.ok
            && answer
                .error
                .is_some_and(|m| m.starts_with("malformed request"))
    );
    let answer = admin::handle(&mut e, br#"{"cmd":"remove","id":"route:1"}"#, 0, 0);
    assert!(!answer.ok && answer.error.is_some_and(|m| m.contains("block list")));
}

#[test]
fn client_addresses_are_listed_only_when_enforced_and_named_in_the_evidence() {
    let by_address = |e: &mut Enforcer<FakeMaps>| {
        e.apply(
            vec![ListChange::Actor {
                token: None,
                client_ip: Some("127.0.0.1".into()),
                credential_key: None,
                until_ms: 1_000_000 + 60_000,
                because: RuleId::Auth6,
            }],
            1_000_000,
            5_000_000_000,
        );
    };
    // Off by default: listed by detection, counted, nothing in the kernel.
    let mut e = enforcer(Mode::Enforce);
    by_address(&mut e);
    assert_eq!(e.stats.actors_not_enforceable, 1);
    assert!(e.maps.clients.is_empty());
    assert_eq!(e.maps.settings.map(|s| s.flags), Some(0));
    assert!(matches!(
        e.add_manual("203.0.113.9", None, 60, "x", 0, 0),
        Err(AdminError::ClientAddressesOff(_))
    ));
    let config = EnforceConfig {
        mode: Mode::Enforce,
        client_addresses: true,
        ..EnforceConfig::default()
    };
    let mut e = Enforcer::new(config, FakeMaps::default(), KEY).expect("fake maps");
    assert_eq!(
        e.maps.settings.map(|s| s.flags),
        Some(agent_common::enforce::SETTINGS_CLIENT_ADDRESSES)
    );
    by_address(&mut e);
    let (_, route) = listed(&mut e);
    let key = clients::client_key("127.0.0.1".parse().expect("ip"));
    assert_eq!(
        e.maps.clients[&key].expires_ns,
        5_000_000_000 + 60_000_000_000
    );
    assert_eq!(e.stats.clients_listed, 1);
    // A server-side verdict on the address: the evidence names it, not a token.
    let mut v = verdict(ACTION_BLOCKED, 0, route);
    v.credential = agent_common::enforce::CREDENTIAL_CLIENT_ADDRESS;
    let event = e.on_verdict(
        &v,
        &ctx(),
        |_| Ok(std::time::Duration::ZERO),
        || 6_000_000_000,
    );
    let json = serde_json::to_value(&event).expect("serialises");
    assert_eq!(json["actor"]["credential"], "client_address");
    assert_eq!(json["actor"]["client_ip"], "127.0.0.1");
    assert_eq!(json["actor"]["token"], serde_json::Value::Null);
    assert_eq!(json["actor"]["listed_by"][0], "AUTH-6");
    assert_eq!(json["route"]["listed_by"][0], "DATA-1");
    // Operators: by IP on a route, listed, removed.
    let ids = e
        .add_manual("2001:db8::7", Some("GET /admin"), 60, "ticket 9", 0, 0)
        .expect("client block");
    assert_eq!(ids[0], "client:2001:db8::7");
    let list = e.list();
    assert!(
        list.iter()
            .any(|v| v.id == "client:2001:db8::7" && v.listed_by == ["operator"])
    );
    e.remove("client:2001:db8::7").expect("listed");
    let v6 = clients::client_key("2001:db8::7".parse().expect("ip"));
    assert!(!e.maps.clients.contains_key(&v6));
    assert!(matches!(
        e.remove("client:2001:db8::7"),
        Err(AdminError::UnknownEntry(_))
    ));
}
