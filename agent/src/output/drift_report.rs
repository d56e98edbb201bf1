//! `cleartap openapi --diff SPEC`: the inventory's drift from the team's specs as a report —
//! the same comparisons INV-3…6 make live, over everything the agent learned: endpoints served
//! but in no spec, parameters and members the specs do not declare, deprecated operations that
//! still answer, and documented operations never seen.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::detect::{inventory::RouteStats, specs::ApiSpecs};

/// One line per finding, grouped by kind; empty when the traffic keeps to the specs.
pub fn report(inventory: &Value, specs: &ApiSpecs) -> Vec<String> {
    let empty = Map::new();
    let mut shadow = Vec::new();
    let mut undeclared = Vec::new();
    let mut deprecated = Vec::new();
    let mut seen_ops: BTreeSet<(String, String)> = BTreeSet::new();
    for (host, routes) in inventory["hosts"].as_object().unwrap_or(&empty) {
        for (route, stats) in routes.as_object().unwrap_or(&empty) {
            let Some((method, template)) = route.split_once(' ') else {
                continue;
            };
            let Ok(stats) = serde_json::from_value::<RouteStats>(stats.clone()) else {
                continue;
            };
            let Some(op) = specs.operation(method, template) else {
                shadow.push(format!(
                    "shadow endpoint (INV-3): {host} {method} {template} — {} requests, in no spec",
                    stats.requests
                ));
                continue;
            };
            seen_ops.insert((op.method().to_owned(), op.path().to_owned()));
            let shape = &stats.shape;
            let at = format!(
                "{host} {method} {template} ({} in {})",
                op.path(),
                op.spec()
            );
            let query = op.undeclared_query(shape.query.keys().map(String::as_str));
            if !query.is_empty() {
                undeclared.push(format!(
                    "undeclared query parameters (INV-4): {at}: {}",
                    query.join(", ")
                ));
            }
            if let Some(body) = &shape.request_body {
                let members = names(body.properties.keys());
                let extra = op.undeclared_request_members(&members);
                if !extra.is_empty() {
                    undeclared.push(format!(
                        "undeclared request members (INV-4): {at}: {}",
                        extra.join(", ")
                    ));
                }
            }
            for (status, response) in &shape.responses {
                if let Some(body) = &response.body {
                    let extra =
                        op.undeclared_response_members(*status, &names(body.properties.keys()));
                    if !extra.is_empty() {
                        undeclared.push(format!(
                            "undeclared response members (INV-5): {at} {status}: {}",
                            extra.join(", ")
                        ));
                    }
                }
            }
            if op.deprecated() && stats.status_2xx > 0 {
                deprecated.push(format!(
                    "deprecated but answering (INV-6): {at}: {} 2xx responses",
                    stats.status_2xx
                ));
            }
        }
    }
    let mut never: Vec<String> = specs
        .all()
        .filter(|op| !seen_ops.contains(&(op.method().to_owned(), op.path().to_owned())))
        .map(|op| {
            format!(
                "documented, never seen: {} {} ({})",
                op.method(),
                op.path(),
                op.spec()
            )
        })
        .collect();
    never.sort();
    let mut out = Vec::new();
    for mut group in [shadow, undeclared, deprecated, never] {
        group.sort();
        out.extend(group);
    }
    out
}

/// An object with these member names (values never matter).
fn names<'a>(keys: impl Iterator<Item = &'a String>) -> Value {
    Value::Object(keys.map(|k| (k.clone(), Value::Null)).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::detect::{
        DetectConfig, Engine,
        content::Bodies,
        specs::InventoryConfig,
        test_events::{T0, exchange},
    };

    #[test]
    fn shadow_undeclared_and_never_seen() {
        let dir = std::env::temp_dir().join(format!("cleartap-drift-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let spec = dir.join("spec.json");
        std::fs::write(
            &spec,
            json!({
                "openapi": "3.0.3",
                "paths": {
                    "/api/items": { "post": {
                        "requestBody": { "content": { "application/json": { "schema": {
                            "type": "object", "properties": { "name": {} } } } } },
                        "responses": { "201": { "description": "ok" } } } },
                    "/api/health": { "get": { "responses": { "200": { "description": "ok" } } } }
                }
            })
            .to_string(),
        )
        .expect("spec");
        let specs = ApiSpecs::load(&InventoryConfig {
            specs: vec![spec.display().to_string()],
        })
        .expect("specs");
        let mut engine = Engine::new(DetectConfig::default());
        let post = exchange(
            "POST",
            "/api/items",
            201,
            json!({ "content-type": "application/json" }),
        );
        engine.inspect_json(
            &post,
            T0,
            &Bodies::from_raw(br#"{"name":"a","owner":"b"}"#, b"", None),
        );
        let admin = exchange("GET", "/api/admin", 200, json!({}));
        engine.inspect_json(&admin, T0 + 1, &Bodies::default());
        let lines = report(&engine.dump(T0 + 2), &specs);
        let _ = std::fs::remove_dir_all(&dir);
        let at = format!("(/api/items in {})", spec.display());
        assert_eq!(
            lines,
            [
                "shadow endpoint (INV-3): api.local GET /api/admin — 1 requests, in no spec"
                    .to_owned(),
                format!(
                    "undeclared request members (INV-4): api.local POST /api/items {at}: owner"
                ),
                format!(
                    "documented, never seen: GET /api/health ({})",
                    spec.display()
                ),
            ]
        );
    }
}
