//! The whole per-exchange path on hostile bytes: two directions of one connection, cut into
//! records at fuzzer-chosen points → HTTP/1 parsing and pairing → the typed, redacted exchange
//! (body prefixes shown) → every detection rule (with the body tap, gzip included; the input
//! rules' shared walk checked against each rule alone) → native,
//! OCSF and ECS renderings of the exchange and its findings → the native JSON read back as
//! replay reads it. Nothing may panic; replay must read back every event the agent writes.
#![no_main]

use agent::{
    classify::redact::TokenKey,
    conn::{ConnExchange, ConnInfo, Endpoints, Role},
    detect::{DetectConfig, Engine, RuleId, inject, rules, view::View},
    event::{
        ExchangeEvent,
        build::{Enrichment, build},
    },
    protocol::{
        Exchange,
        h1::{Limits, Pairing, StreamParser},
    },
    output::formats,
    app::pipeline::body_tap,
    enrich::workload::Workload,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let Some((&split, rest)) = rest.split_first() else {
        return;
    };
    let at = rest.len() * usize::from(split) / 256;
    let (request_bytes, response_bytes) = rest.split_at(at);
    let limits = Limits {
        max_head_bytes: 4096,
        body_prefix_bytes: 512,
    };
    let (mut req, mut res) = (StreamParser::new(limits), StreamParser::new(limits));
    let mut pairing = Pairing::default();
    let mut exchanges: Vec<Exchange> = Vec::new();
    let cut = usize::from(control % 31) + 1;
    let mut requests = request_bytes.chunks(cut);
    let mut responses = response_bytes.chunks(cut * 2);
    let mut t = 0u64;
    loop {
        let (a, b) = (requests.next(), responses.next());
        if a.is_none() && b.is_none() {
            break;
        }
        for (parser, chunk) in [(&mut req, a), (&mut res, b)] {
            if let Some(chunk) = chunk {
                t += 1_000;
                // As the live agent reads a record: in place, the rest kept.
                parser.begin(t);
                let mut input = chunk;
                if pairing.drive_input(parser, &mut input, &mut exchanges).is_ok() {
                    parser.keep(input);
                }
            }
        }
    }
    pairing.close(Some(&mut res), &mut exchanges);

    let key = TokenKey::for_tests();
    let workload = Workload::default();
    let ctx = Enrichment {
        host: "fuzz",
        exe: Some("/usr/bin/fuzz"),
        library: None,
        library_version: None,
        monotonic_to_unix_ns: 1_763_700_000_000_000_000,
        body_routes: &[],
        event_body_bytes: 256,
        workload: &workload,
        node: Some("node"),
        key: &key,
        credential_key: Some([1, 2]),
    };
    let mut engine = Engine::new(DetectConfig {
        bola_distinct_ids: 2,
        auth6_failures: 1,
        tok2_min_requests: 1,
        auth4_min_requests: 1,
        inventory_learning_secs: 0,
        ..DetectConfig::default()
    });
    for (i, exchange) in exchanges.into_iter().enumerate() {
        let item = ConnExchange {
            conn: ConnInfo {
                tgid: 1,
                tid: 1,
                comm: *b"fuzz\0\0\0\0\0\0\0\0\0\0\0\0",
                fd: Some(3),
                role: if control & 1 == 0 { Role::Server } else { Role::Client },
                endpoints: Some(Endpoints {
                    local: "127.0.0.1:443".parse().expect("address"),
                    remote: "10.1.2.3:50000".parse().expect("address"),
                }),
                library_id: 0,
                tls: control & 2 == 0,
                cgroup_id: 1,
                stream: 0x1000,
            },
            exchange,
        };
        let event = build(&item, &ctx);
        let epoch_ms = 1_763_700_000_000 + i as i64 * 10;
        let tap = body_tap(&item);
        // The engine judges INJ-1/2/3 in one walk, skipping inputs found clean before: it must
        // find exactly what each rule finds alone.
        if let (Some(verdict), Some(v)) = (
            engine.judge_request(&event, epoch_ms, &tap),
            View::with_tap(&event, epoch_ms, &tap),
        ) {
            let shared: Vec<_> = verdict
                .hits
                .into_iter()
                .filter(|(id, _)| matches!(id, RuleId::Inj1 | RuleId::Inj2 | RuleId::Inj3))
                .collect();
            let alone: Vec<_> = [
                (RuleId::Inj1, rules::inj1_sqli_xss(&v)),
                (RuleId::Inj2, rules::inj2_traversal_command_nosql(&v)),
                (RuleId::Inj3, inject::inj3(&v)),
            ]
            .into_iter()
            .filter_map(|(id, hit)| Some((id, hit?)))
            .collect();
            assert_eq!(shared, alone, "the shared input walk must equal the rules alone");
        }
        let findings = engine.inspect(&event, epoch_ms, &tap);
        let native = serde_json::to_string(&event).expect("an event always serialises");
        assert_eq!(
            agent::output::native_event::render(&event),
            native,
            "the agent's native writer must match serde_json byte for byte"
        );
        let _ = formats::ocsf(&event, epoch_ms).to_string();
        let _ = formats::ecs(&event).to_string();
        for f in &findings {
            let _ = serde_json::to_string(f).expect("a finding always serialises");
            let _ = formats::finding_ocsf(f, epoch_ms).to_string();
            let _ = formats::finding_ecs(f).to_string();
        }
        // Replay must read back whatever the agent wrote, and judge it without panicking.
        let back: ExchangeEvent<'_> =
            serde_json::from_str(&native).expect("replay reads every native event");
        let _ = engine.inspect(&back, epoch_ms, &agent::detect::content::Bodies::from_event(&back));
    }
    // The inventory the hostile exchanges taught (shapes included) renders as OpenAPI, which
    // reads back as JSON and YAML.
    let inventory = engine.dump(1_763_700_000_000);
    let docs = agent::output::openapi::documents(&inventory)
        .expect("the agent's own inventory always renders");
    for doc in docs.values() {
        let _ = agent::output::openapi::to_yaml(doc).expect("every document is YAML");
    }
});
