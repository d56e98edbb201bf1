//! The engine: windows, dedup, roles, allowlists, inventory rules.

use serde_json::{Value, json};

use super::*;
use crate::detect::{
    content::Bodies,
    test_events::{T0, exchange, from_ip, with_token},
};

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
        all.extend(engine.inspect_json(&e, T0 + i * 100, &Bodies::default()));
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
        assert!(
            engine
                .inspect_json(&same, T0 + i, &Bodies::default())
                .is_empty()
        );
        let denied = with_token(
            exchange("GET", &format!("/orders/{i}"), 403, json!({})),
            "cccccccccccccccc",
        );
        assert!(
            !ids(&engine.inspect_json(&denied, T0 + i, &Bodies::default()))
                .contains(&"BOLA-1".to_owned())
        );
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
    assert!(
        engine
            .inspect_json(&client, T0, &Bodies::default())
            .is_empty()
    );
    let allowed = from_ip(
        exchange("GET", "/x?id=1%27%20OR%20%271%27%3D%271", 200, json!({})),
        "198.51.100.9",
    );
    assert!(
        engine
            .inspect_json(&allowed, T0, &Bodies::default())
            .is_empty()
    );
    let other = exchange("GET", "/x?id=1%27%20OR%20%271%27%3D%271", 200, json!({}));
    assert_eq!(
        ids(&engine.inspect_json(&other, T0, &Bodies::default())),
        ["INJ-1"]
    );
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
        found.extend(ids(&engine.inspect_json(
            &e,
            T0 + i as i64,
            &Bodies::default(),
        )));
    }
    assert_eq!(found, ["TOK-1"]);
    let mut found = Vec::new();
    for i in 0..25 {
        let e = from_ip(exchange("POST", "/login", 401, json!({})), "203.0.113.5");
        found.extend(ids(&engine.inspect_json(
            &e,
            T0 + 1000 + i,
            &Bodies::default(),
        )));
    }
    found.sort();
    found.dedup();
    assert_eq!(found, ["AUTH-6", "TOK-2"]);
}

#[test]
fn old_version_reported_again_and_when_the_inventory_is_full() {
    let mut engine = Engine::new(DetectConfig {
        max_routes: 10,
        ..DetectConfig::default()
    });
    let at = |engine: &mut Engine, path: &str, t: i64| {
        engine.inspect_json(
            &exchange("GET", path, 200, json!({})),
            t,
            &Bodies::default(),
        )
    };
    assert!(at(&mut engine, "/v1/orders", T0).is_empty());
    assert!(at(&mut engine, "/v3/orders", T0 + 1).is_empty());
    // The old route was tracked before the newer one existed: its version key is its own.
    let again = at(&mut engine, "/v1/orders", T0 + 2);
    assert_eq!(ids(&again), ["INV-2"]);
    assert_eq!(again[0]["evidence"]["newer_version"], "v3");
    for i in 0..20 {
        at(&mut engine, &format!("/filler{i}"), T0 + 3 + i);
    }
    assert!(engine.inventory.overflow > 0);
    // Not tracked (no room), still judged against the versions seen.
    let untracked = at(&mut engine, "/v2/orders", T0 + 100);
    assert_eq!(ids(&untracked), ["INV-2"]);
    assert_eq!(untracked[0]["evidence"]["newer_version"], "v3");
}

#[test]
fn new_route_after_learning_and_old_version_still_used() {
    let mut engine = Engine::new(DetectConfig {
        inventory_learning_secs: 60,
        ..DetectConfig::default()
    });
    assert!(
        engine
            .inspect_json(
                &exchange("GET", "/v2/items/1", 200, json!({})),
                T0,
                &Bodies::default()
            )
            .is_empty()
    );
    let old = engine.inspect_json(
        &exchange("GET", "/v1/items/2", 200, json!({})),
        T0 + 1000,
        &Bodies::default(),
    );
    assert_eq!(ids(&old), ["INV-2"]);
    assert_eq!(old[0]["evidence"]["newer_version"], "v2");
    let shadow = engine.inspect_json(
        &exchange("GET", "/internal/debug", 200, json!({})),
        T0 + 120_000,
        &Bodies::default(),
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
            .inspect_json(
                &exchange("GET", "/x?id=1%27%20OR%20%271%27%3D%271", 200, json!({})),
                T0,
                &Bodies::default()
            )
            .is_empty()
    );
}

#[test]
fn auth4_unauthenticated_success_on_an_authenticated_route() {
    let mut engine = Engine::new(DetectConfig::default());
    for i in 0..25 {
        let e = with_token(
            exchange("GET", "/api/account", 200, json!({})),
            "ffffffffffffffff",
        );
        assert!(
            engine
                .inspect_json(&e, T0 + i, &Bodies::default())
                .is_empty()
        );
    }
    let anonymous = engine.inspect_json(
        &exchange("GET", "/api/account", 200, json!({})),
        T0 + 100,
        &Bodies::default(),
    );
    assert_eq!(ids(&anonymous), ["AUTH-4"]);
    assert_eq!(anonymous[0]["evidence"]["route_requests"], 25);
    // A 401 to the anonymous caller is the route working as it should.
    let denied = engine.inspect_json(
        &from_ip(
            exchange("GET", "/api/account", 401, json!({})),
            "192.0.2.99",
        ),
        T0 + 200,
        &Bodies::default(),
    );
    assert!(denied.is_empty());
}

#[test]
fn auth3_tokens_without_expiry_or_too_long_lived() {
    let mut engine = Engine::new(DetectConfig::default());
    let mut e = exchange("GET", "/me", 200, json!({}));
    e["request"]["jwt"] = json!({ "alg": "RS256", "exp": null, "nbf": null, "iat": 1 });
    assert_eq!(
        ids(&engine.inspect_json(&e, T0, &Bodies::default())),
        ["AUTH-3"]
    );
    let mut year = exchange("GET", "/you", 200, json!({}));
    let now = T0 / 1000;
    year["request"]["jwt"] =
        json!({ "alg": "RS256", "exp": now + 365 * 86400, "nbf": null, "iat": now });
    let f = engine.inspect_json(&from_ip(year.clone(), "192.0.2.50"), T0, &Bodies::default());
    assert_eq!(
        f[0]["evidence"],
        json!({ "problem": "long_lived", "lifetime_secs": 365 * 86400 })
    );
    // The same token again within the dedup window: suppressed, counted, reported with its
    // count once the window has passed (the evidence is written for that one only).
    let again = year;
    for i in 1..=3 {
        let repeat = engine.inspect_json(
            &from_ip(again.clone(), "192.0.2.50"),
            T0 + i,
            &Bodies::default(),
        );
        assert!(repeat.is_empty(), "{repeat:?}");
    }
    let later = T0 + DetectConfig::default().dedup_secs as i64 * 1000 + 1;
    let f = engine.inspect_json(&from_ip(again, "192.0.2.50"), later, &Bodies::default());
    assert_eq!(f[0]["evidence"]["problem"], "long_lived");
    assert_eq!(f[0]["occurrences"], 4);
    let mut hour = exchange("GET", "/ok", 200, json!({}));
    hour["request"]["jwt"] = json!({ "alg": "RS256", "exp": now + 3600, "nbf": null, "iat": now });
    assert!(
        engine
            .inspect_json(&from_ip(hour, "192.0.2.51"), T0, &Bodies::default())
            .is_empty()
    );
}

#[test]
fn response_bodies_sensitive_data_and_error_disclosure_and_json_body_injection() {
    let mut engine = Engine::new(DetectConfig::default());
    let leak = Bodies {
        request: Vec::new().into(),
        response: br#"{"name":"alice","card":"4111 1111 1111 1111"}"#.to_vec().into(),
        ..Default::default()
    };
    let f = engine.inspect_json(&exchange("GET", "/api/profile", 200, json!({})), T0, &leak);
    assert_eq!(ids(&f), ["DATA-1"]);
    assert_eq!(f[0]["evidence"]["kinds"], json!(["card:visa"]));
    let trace = Bodies {
        request: Vec::new().into(),
        response: b"Traceback (most recent call last):\n  File \"/srv/app.py\""
            .to_vec()
            .into(),
        ..Default::default()
    };
    let f = engine.inspect_json(&exchange("GET", "/api/crash", 500, json!({})), T0, &trace);
    assert_eq!(ids(&f), ["CFG-1"]);
    let sqli = Bodies {
        request: br#"{"filter":{"name":"x' OR '1'='1"}}"#.to_vec().into(),
        response: Vec::new().into(),
        ..Default::default()
    };
    let f = engine.inspect_json(&exchange("POST", "/api/search", 200, json!({})), T0, &sqli);
    assert_eq!(ids(&f), ["INJ-1"]);
    assert_eq!(f[0]["evidence"]["input"], "body.filter.name");
    assert_eq!(f[0]["evidence"]["matched"], "x' OR '1'='1");
}

#[test]
fn layered_tok3_abusive_actor_on_sensitive_route_and_lists_age_out() {
    let mut engine = Engine::new(DetectConfig::default());
    let leak = Bodies {
        request: Vec::new().into(),
        response: br#"{"ssn":"078-05-1120"}"#.to_vec().into(),
        ..Default::default()
    };
    // The route becomes sensitive (DATA-1 for one caller)…
    let f = engine.inspect_json(
        &from_ip(
            exchange("GET", "/api/patients/1", 200, json!({})),
            "192.0.2.10",
        ),
        T0,
        &leak,
    );
    assert_eq!(ids(&f), ["DATA-1"]);
    // …another caller gets on the abusive list (a scanner)…
    let scan = from_ip(
        exchange("GET", "/", 404, json!({ "user-agent": "nikto/2.5" })),
        "203.0.113.66",
    );
    assert_eq!(
        ids(&engine.inspect_json(&scan, T0 + 1, &Bodies::default())),
        ["SCAN-1"]
    );
    // …and then reads the sensitive route: layered TOK-3 (DATA-1 fires for it too).
    let read = from_ip(
        exchange("GET", "/api/patients/2", 200, json!({})),
        "203.0.113.66",
    );
    let f = engine.inspect_json(&read, T0 + 2, &leak);
    let tok3: Vec<&Value> = f.iter().filter(|x| x["rule"]["id"] == "TOK-3").collect();
    assert_eq!(tok3.len(), 1, "{f:#?}");
    assert_eq!(
        tok3[0]["evidence"]["layered"],
        "abusive_actor_on_sensitive_route"
    );
    assert_eq!(tok3[0]["evidence"]["actor_listed_for"], "SCAN-1");
    let dump = engine.dump(T0 + 3);
    assert_eq!(
        dump["dynamic_lists"]["abusive_actors"][0]["key"],
        "203.0.113.66"
    );
    assert_eq!(
        dump["dynamic_lists"]["sensitive_routes"][0]["key"],
        "api.local GET /api/patients/{id}"
    );
    // An hour later the actor is off the list.
    assert_eq!(
        engine.dump(T0 + 3_700_000)["dynamic_lists"]["abusive_actors"],
        json!([])
    );
}

#[test]
fn cidr_allowlist_token_agents_and_sensitive_kinds_in_the_inventory() {
    let mut engine = Engine::new(DetectConfig {
        allow_cidrs: vec!["203.0.113.0/24".into()],
        ..DetectConfig::default()
    });
    let attack = "/x?id=1%27%20OR%20%271%27%3D%271";
    let inside = from_ip(exchange("GET", attack, 200, json!({})), "203.0.113.77");
    assert!(
        engine
            .inspect_json(&inside, T0, &Bodies::default())
            .is_empty()
    );
    let mut agents = Vec::new();
    for (i, ua) in [
        "curl/8",
        "python-requests/2",
        "okhttp/4",
        "Go-http-client/1.1",
    ]
    .iter()
    .enumerate()
    {
        let e = with_token(
            exchange("GET", "/me", 200, json!({ "user-agent": ua })),
            "2222222222222222",
        );
        agents.extend(ids(&engine.inspect_json(
            &e,
            T0 + i as i64,
            &Bodies::default(),
        )));
    }
    assert_eq!(agents, ["TOK-1"]);
    let leak = Bodies {
        request: Vec::new().into(),
        response: br#"{"iban":"DE89370400440532013000"}"#.to_vec().into(),
        ..Default::default()
    };
    engine.inspect_json(
        &exchange("GET", "/api/payouts/9", 200, json!({})),
        T0,
        &leak,
    );
    let dump = engine.dump(T0);
    assert_eq!(
        dump["hosts"]["api.local"]["GET /api/payouts/{id}"]["sensitive_data"],
        json!(["iban"])
    );
    let bad = DetectConfig {
        allow_cidrs: vec!["10.0.0.0/33".into()],
        ..DetectConfig::default()
    };
    assert!(
        bad.validate()
            .expect_err("invalid")
            .contains("detect.allow_cidrs")
    );
}

#[test]
fn tok3_request_rate() {
    let mut engine = Engine::new(DetectConfig {
        tok3_requests_per_minute: 50,
        ..DetectConfig::default()
    });
    let mut found = Vec::new();
    for i in 0..60 {
        let e = with_token(
            exchange("GET", "/api/feed", 200, json!({})),
            "1111111111111111",
        );
        found.extend(engine.inspect_json(&e, T0 + i * 100, &Bodies::default()));
    }
    assert_eq!(ids(&found), ["TOK-3"]);
    // Written for the reported exchange: the 50th request of the minute.
    assert_eq!(found[0]["evidence"]["requests"], 50);
    assert_eq!(found[0]["evidence"]["window_secs"], 60);
    assert!(found[0]["evidence"]["response_bytes"].is_u64());
}

#[test]
fn inventory_bound_holds_against_new_host_headers() {
    let mut engine = Engine::new(DetectConfig {
        max_routes: 2,
        ..DetectConfig::default()
    });
    for i in 0..100 {
        let e = exchange("GET", "/a", 200, json!({ "host": format!("h{i}.example") }));
        engine.inspect_json(&e, T0 + i, &Bodies::default());
    }
    let dump = engine.dump(T0);
    assert_eq!(dump["hosts"].as_object().map(|h| h.len()), Some(2));
    assert_eq!(dump["routes_not_tracked"], 98);
}

#[test]
fn rule_lists_follow_the_catalogue_phases() {
    use crate::detect::catalogue::Phase;
    for (id, _) in super::request::REQUEST_RULES {
        assert_eq!(id.info().phase, Phase::Request, "{id}");
    }
    for (id, _) in super::EXCHANGE_RULES {
        assert_eq!(id.info().phase, Phase::Exchange, "{id}");
    }
}

#[test]
fn request_phase_verdict_needs_no_response_and_sees_the_abusive_list() {
    let mut engine = Engine::new(DetectConfig::default());
    let mut attack = with_token(
        exchange(
            "GET",
            "/search?q=1%27%20OR%20%271%27%3D%271",
            200,
            json!({}),
        ),
        "abababababababab",
    );
    attack["response"] = Value::Null;
    let typed = crate::detect::test_events::typed(&attack);
    let verdict = engine
        .judge_request(&typed, T0, &Bodies::default())
        .expect("judged");
    let request_ids: Vec<&str> = verdict.hits.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(request_ids, ["INJ-1"]);
    assert_eq!(verdict.actor_listed_for, None);
    // Judging the request changed nothing; the whole exchange is what lists the actor.
    assert_eq!(engine.stats.exchanges_judged, 0);
    let findings = engine.inspect_json(&attack, T0, &Bodies::default());
    assert_eq!(ids(&findings), ["INJ-1"]);
    let next = with_token(
        exchange("GET", "/api/items", 200, json!({})),
        "abababababababab",
    );
    let verdict = engine
        .judge_request(
            &crate::detect::test_events::typed(&next),
            T0 + 1,
            &Bodies::default(),
        )
        .expect("judged");
    assert!(verdict.hits.is_empty());
    assert_eq!(verdict.actor_listed_for.as_deref(), Some("INJ-1"));
    // The client's copy of an exchange is not judged.
    let mut client = next.clone();
    client["connection"]["role"] = "client".into();
    assert!(
        engine
            .judge_request(
                &crate::detect::test_events::typed(&client),
                T0,
                &Bodies::default()
            )
            .is_none()
    );
}

#[test]
fn anom2_an_actor_failing_where_everyone_else_succeeds() {
    let mut engine = Engine::new(DetectConfig::default());
    let mut all = Vec::new();
    for i in 0..60 {
        let e = with_token(
            exchange("GET", &format!("/api/docs/{i}"), 200, json!({})),
            &format!("{:016x}", i % 6),
        );
        all.extend(engine.inspect_json(&e, T0 + i, &Bodies::default()));
    }
    assert!(all.is_empty(), "{all:#?}");
    let mut found = Vec::new();
    for i in 0..25 {
        let e = with_token(
            exchange("GET", &format!("/api/docs/{}", 1000 + i), 404, json!({})),
            "ffffffffffffffff",
        );
        found.extend(engine.inspect_json(&e, T0 + 100 + i, &Bodies::default()));
    }
    let anom: Vec<&Value> = found
        .iter()
        .filter(|f| f["rule"]["id"] == "ANOM-2")
        .collect();
    assert_eq!(anom.len(), 1, "{found:#?}");
    let e = &anom[0]["evidence"];
    assert_eq!(e["baseline"], "error_ratio");
    assert_eq!(e["actor_requests"], 20);
    assert_eq!(e["endpoint_error_ratio"], 0.0);
    assert_eq!(e["actor_error_ratio"], 1.0);
    assert_eq!(e["samples"], 60);
}

#[test]
fn cookies_are_judged_from_the_tap_when_the_event_has_them_redacted() {
    let redacted = exchange(
        "GET",
        "/api/items",
        200,
        json!({ "cookie": "[REDACTED:0123456789abcdef]" }),
    );
    let tap =
        Bodies::default().with_request_cookie("theme=dark; pref=1%27%20OR%20%271%27%3D%271".into());
    let mut engine = Engine::new(DetectConfig::default());
    let f = engine.inspect_json(&redacted, T0, &tap);
    assert_eq!(ids(&f), ["INJ-1"]);
    assert_eq!(f[0]["evidence"]["input"], "cookie.pref");
    // Cookie values are never printed, the matched fragment included.
    assert_eq!(f[0]["evidence"].get("matched"), None);
    assert!(!f[0].to_string().contains("OR"), "{}", f[0]);
    // Replayed events have only the redacted header: nothing to judge there.
    let mut engine = Engine::new(DetectConfig::default());
    assert!(
        engine
            .inspect_json(&redacted, T0, &Bodies::default())
            .is_empty()
    );
    // Without a tap (redaction off, or an unredacted recording) the event's own value is read.
    let plain = exchange(
        "GET",
        "/api/items",
        200,
        json!({ "cookie": "pref=1' OR '1'='1" }),
    );
    let mut engine = Engine::new(DetectConfig::default());
    let f = engine.inspect_json(&plain, T0, &Bodies::default());
    assert_eq!(f[0]["evidence"]["input"], "cookie.pref");
}
