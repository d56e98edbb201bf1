use serde_json::json;

use super::*;
use crate::detect::{
    DetectConfig, Engine,
    content::Bodies,
    test_events::{T0, exchange},
};

const SPEC: &str = r##"
openapi: 3.0.3
info: { title: shop, version: "1" }
paths:
  /api/users/{id}:
    parameters:
      - { name: fields, in: query, schema: { type: string } }
    get:
      responses:
        "200":
          content:
            application/json:
              schema: { $ref: "#/components/schemas/User" }
  /api/users/me:
    get:
      responses: { "200": { description: me } }
  /api/orders:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties: { sku: { type: string }, quantity: { type: integer } }
      responses: { "201": { description: created } }
  /api/v1/legacy:
    get:
      deprecated: true
      responses: { "200": { description: old } }
components:
  schemas:
    User:
      type: object
      properties: { id: { type: integer }, name: { type: string } }
"##;

fn specs() -> (tempdir::Dir, ApiSpecs) {
    let dir = tempdir::Dir::new();
    std::fs::write(dir.0.join("shop.yaml"), SPEC).expect("write spec");
    let config = InventoryConfig {
        specs: vec![format!("{}/*.yaml", dir.0.display())],
    };
    let specs = ApiSpecs::load(&config).expect("loads");
    (dir, specs)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "cleartap-specs-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).expect("temp dir");
            Self(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn loads_and_matches_the_most_literal_operation() {
    let (_dir, specs) = specs();
    assert_eq!((specs.files, specs.operations), (1, 4));
    assert_eq!(
        specs
            .operation("GET", "/api/users/7")
            .map(|o| o.path().to_owned())
            .as_deref(),
        Some("/api/users/{id}")
    );
    assert_eq!(
        specs
            .operation("GET", "/api/users/me")
            .map(|o| o.path().to_owned())
            .as_deref(),
        Some("/api/users/me")
    );
    assert!(specs.operation("DELETE", "/api/users/7").is_none());
    assert!(specs.operation("GET", "/api/users/7/posts").is_none());
    let op = specs.operation("GET", "/api/users/7").expect("op");
    assert_eq!(
        op.undeclared_query(["fields", "debug"].into_iter()),
        ["debug"]
    );
    assert_eq!(
        op.undeclared_response_members(200, &json!({ "id": 1, "name": "a", "password_hash": "x" })),
        ["password_hash"]
    );
    // Only what the spec states is compared: no schema for 404, nothing said.
    assert!(
        op.undeclared_response_members(404, &json!({ "x": 1 }))
            .is_empty()
    );
}

#[test]
fn bad_specs_name_the_file_or_pattern() {
    let dir = tempdir::Dir::new();
    let nothing = InventoryConfig {
        specs: vec![format!("{}/none-*.yaml", dir.0.display())],
    };
    assert!(
        ApiSpecs::load(&nothing)
            .expect_err("must fail")
            .to_string()
            .contains("matches no file")
    );
    std::fs::write(
        dir.0.join("swagger.json"),
        r#"{"swagger":"2.0","paths":{}}"#,
    )
    .expect("write");
    let old = InventoryConfig {
        specs: vec![format!("{}/swagger.json", dir.0.display())],
    };
    let e = ApiSpecs::load(&old).expect_err("must fail").to_string();
    assert!(
        e.contains("swagger.json") && e.contains("not an OpenAPI 3"),
        "{e}"
    );
}

#[test]
fn drift_findings_from_live_exchanges() {
    let (_dir, specs) = specs();
    let mut engine = Engine::new(DetectConfig::default());
    engine.set_specs(specs);
    let ids = |findings: &[serde_json::Value]| -> Vec<String> {
        findings
            .iter()
            .map(|f| f["rule"]["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    // A shadow endpoint: INV-3 once for the route.
    let shadow = exchange("GET", "/api/admin/export", 200, json!({}));
    let first = engine.inspect_json(&shadow, T0, &Bodies::default());
    assert_eq!(ids(&first), ["INV-3"]);
    assert_eq!(first[0]["evidence"]["template"], "/api/admin/export");
    let again = engine.inspect_json(&shadow, T0 + 1, &Bodies::default());
    assert!(again.is_empty());
    // Mass assignment: an undeclared member in the order body.
    let order = exchange(
        "POST",
        "/api/orders",
        201,
        json!({ "content-type": "application/json" }),
    );
    let found = engine.inspect_json(
        &order,
        T0 + 2,
        &Bodies::from_raw(br#"{"sku":"a","quantity":1,"price":0}"#, b"", None),
    );
    assert_eq!(ids(&found), ["INV-4"]);
    assert_eq!(
        found[0]["evidence"]["undeclared_body_members"],
        json!(["price"])
    );
    // Excessive data exposure: an undeclared, sensitive-looking member in the response.
    let user = exchange("GET", "/api/users/7", 200, json!({}));
    let found = engine.inspect_json(
        &user,
        T0 + 3,
        &Bodies::from_raw(b"", br#"{"id":7,"name":"a","password_hash":"x"}"#, None),
    );
    assert_eq!(ids(&found), ["INV-5"]);
    assert_eq!(
        found[0]["evidence"]["undeclared_members"],
        json!(["password_hash"])
    );
    assert_eq!(found[0]["evidence"]["sensitive"], true);
    // A deprecated endpoint that still answers.
    let legacy = exchange("GET", "/api/v1/legacy", 200, json!({}));
    assert_eq!(
        ids(&engine.inspect_json(&legacy, T0 + 4, &Bodies::default())),
        ["INV-6"]
    );
    // A request that keeps to the spec: nothing.
    let fine = exchange("GET", "/api/users/8?fields=name", 200, json!({}));
    assert!(
        engine
            .inspect_json(&fine, T0 + 5, &Bodies::from_raw(b"", br#"{"id":8}"#, None))
            .is_empty()
    );
}
