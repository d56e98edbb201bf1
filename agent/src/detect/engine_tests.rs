//! The engine: windows, dedup, roles, allowlists, inventory rules.

use serde_json::json;

use super::*;
use crate::detect::test_events::{T0, exchange, from_ip, with_token};

fn ids(findings: &[Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["rule"]["id"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn bola_fires_once_at_the_threshold_then_dedups() {
    let mut engine = Engine::new(DetectConfig::default());
    let mut all = Vec::new();
    for i in 1..=50 {
        let e = with_token(
            exchange("GET", &format!("/users/{i}"), 200, json!({})),
            "aaaaaaaaaaaaaaaa",
        );
        all.extend(engine.inspect(&e, T0 + i * 100));
    }
    assert_eq!(ids(&all), ["BOLA-1"]);
    let f = &all[0];
    assert_eq!(f["route"]["template"], "/users/{id}");
    assert_eq!(f["actor"]["token"], "[REDACTED:aaaaaaaaaaaaaaaa]");
    assert_eq!(f["evidence"]["distinct_ids"], 20);
    assert_eq!(f["rule"]["owasp"], "API1:2023");
    assert_eq!(f["exchange"]["request"]["path"], "/users/20");
    assert_eq!(engine.stats.suppressed_repeats, 30);
}

#[test]
fn bola_not_for_one_object_read_often_nor_for_failures() {
    let mut engine = Engine::new(DetectConfig::default());
    for i in 1..=100 {
        let same = with_token(
            exchange("GET", "/users/7", 200, json!({})),
            "bbbbbbbbbbbbbbbb",
        );
        assert!(engine.inspect(&same, T0 + i).is_empty());
        let denied = with_token(
            exchange("GET", &format!("/orders/{i}"), 403, json!({})),
            "cccccccccccccccc",
        );
        assert!(!ids(&engine.inspect(&denied, T0 + i)).contains(&"BOLA-1".to_owned()));
    }
}

#[test]
fn client_side_copies_and_allowlisted_actors_are_not_judged() {
    let mut engine = Engine::new(DetectConfig {
        allow_actors: vec!["198.51.100.9".into()],
        ..DetectConfig::default()
    });
    let mut client = exchange("GET", "/x?id=1%27%20OR%20%271%27%3D%271", 200, json!({}));
    client["connection"]["role"] = "client".into();
    assert!(engine.inspect(&client, T0).is_empty());
    let allowed = from_ip(
        exchange("GET", "/x?id=1%27%20OR%20%271%27%3D%271", 200, json!({})),
        "198.51.100.9",
    );
    assert!(engine.inspect(&allowed, T0).is_empty());
    let other = exchange("GET", "/x?id=1%27%20OR%20%271%27%3D%271", 200, json!({}));
    assert_eq!(ids(&engine.inspect(&other, T0)), ["INJ-1"]);
}

#[test]
fn token_from_many_addresses_and_error_ratio_and_brute_force() {
    let mut engine = Engine::new(DetectConfig::default());
    let mut found = Vec::new();
    for (i, ip) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
        let e = from_ip(
            with_token(exchange("GET", "/me", 200, json!({})), "dddddddddddddddd"),
            ip,
        );
        found.extend(ids(&engine.inspect(&e, T0 + i as i64)));
    }
    assert_eq!(found, ["TOK-1"]);
    let mut found = Vec::new();
    for i in 0..25 {
        let e = from_ip(exchange("POST", "/login", 401, json!({})), "203.0.113.5");
        found.extend(ids(&engine.inspect(&e, T0 + 1000 + i)));
    }
    found.sort();
    found.dedup();
    assert_eq!(found, ["AUTH-6", "TOK-2"]);
}

#[test]
fn new_route_after_learning_and_old_version_still_used() {
    let mut engine = Engine::new(DetectConfig {
        inventory_learning_secs: 60,
        ..DetectConfig::default()
    });
    assert!(
        engine
            .inspect(&exchange("GET", "/v2/items/1", 200, json!({})), T0)
            .is_empty()
    );
    let old = engine.inspect(&exchange("GET", "/v1/items/2", 200, json!({})), T0 + 1000);
    assert_eq!(ids(&old), ["INV-2"]);
    assert_eq!(old[0]["evidence"]["newer_version"], "v2");
    let shadow = engine.inspect(
        &exchange("GET", "/internal/debug", 200, json!({})),
        T0 + 120_000,
    );
    assert_eq!(ids(&shadow), ["INV-1"]);
    let inventory = engine.inventory.to_json();
    assert_eq!(
        inventory["hosts"]["api.local"]["GET /v2/items/{id}"]["requests"],
        1
    );
    assert_eq!(inventory["routes"], 3);
}

#[test]
fn config_errors_name_the_key() {
    let bad = DetectConfig {
        disabled_rules: vec!["AUTH-9".into()],
        ..DetectConfig::default()
    };
    assert!(
        bad.validate()
            .expect_err("invalid")
            .contains("detect.disabled_rules")
    );
    let bad = DetectConfig {
        tok2_error_ratio: 1.5,
        ..DetectConfig::default()
    };
    assert!(
        bad.validate()
            .expect_err("invalid")
            .contains("detect.tok2_error_ratio")
    );
    let off = DetectConfig {
        disabled_rules: vec!["INJ-1".into()],
        ..DetectConfig::default()
    };
    let mut engine = Engine::new(off);
    assert!(
        engine
            .inspect(
                &exchange("GET", "/x?id=1%27%20OR%20%271%27%3D%271", 200, json!({})),
                T0
            )
            .is_empty()
    );
}
