use serde_json::json;

use super::*;
use crate::detect::{
    DetectConfig, Engine,
    content::Bodies,
    test_events::{T0, exchange, with_token},
};

/// An inventory learned by the real engine from a few exchanges.
fn inventory() -> Value {
    let mut engine = Engine::new(DetectConfig::default());
    for i in 1..=3 {
        let mut e = with_token(
            exchange(
                "POST",
                &format!("/api/orgs/{i}/users?notify=true&email=u{i}@example.com"),
                201,
                json!({ "content-type": "application/json", "x-request-id": format!("r-{i}") }),
            ),
            "aaaaaaaaaaaaaaaa",
        );
        e["response"]["headers"] = json!({ "content-type": "application/json" });
        let request = format!(r#"{{"name":"user{i}","age":{i}}}"#);
        let response = format!(r#"{{"id":"4f7e0a52-8d6b-4c1e-9a3f-2b5c7d9e1f0{i}"}}"#);
        engine.inspect_json(
            &e,
            T0 + i * 1000,
            &Bodies::from_raw(request.as_bytes(), response.as_bytes(), None),
        );
    }
    let e = exchange("GET", "/api/orgs/7/users/9", 404, json!({}));
    engine.inspect_json(&e, T0 + 9000, &Bodies::default());
    let e = exchange("GET", "*", 400, json!({}));
    engine.inspect_json(&e, T0 + 9500, &Bodies::default());
    engine.dump(T0 + 10_000)
}

#[test]
fn one_document_per_host_with_learned_shapes() {
    let docs = documents(&inventory()).expect("documents");
    let doc = &docs["api.local"];
    assert_eq!(doc["openapi"], "3.1.0");
    let post = &doc["paths"]["/api/orgs/{id}/users"]["post"];
    let params = post["parameters"].as_array().expect("parameters");
    let find = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {params:#?}"))
    };
    assert_eq!(find("id")["in"], "path");
    assert_eq!(find("id")["schema"]["type"], "integer");
    assert_eq!(find("notify")["schema"]["type"], "boolean");
    assert_eq!(find("notify")["required"], true);
    assert_eq!(find("email")["schema"]["format"], "email");
    assert_eq!(find("x-request-id")["in"], "header");
    let body = &post["requestBody"];
    assert_eq!(body["required"], true);
    let schema = &body["content"]["application/json"]["schema"];
    assert_eq!(schema["properties"]["age"]["type"], "integer");
    assert_eq!(schema["required"], json!(["age", "name"]));
    let created = &post["responses"]["201"]["content"]["application/json"]["schema"];
    assert_eq!(created["properties"]["id"]["format"], "uuid");
    assert_eq!(post["security"], json!([{ "bearer": [] }]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(post["x-cleartap-requests"], 3);
    // Two id parameters in one path get distinct names.
    let get = &doc["paths"]["/api/orgs/{id}/users/{id2}"]["get"];
    assert!(get["responses"]["404"].is_object(), "{get:#}");
    assert!(get.get("security").is_none());
    assert_eq!(doc[SKIPPED], json!(["GET *"]));
    // No value seen in traffic is in the document.
    let text = doc.to_string();
    for value in ["user1", "example.com", "r-1", "4f7e0a52", "aaaaaaaa"] {
        assert!(!text.contains(value), "{value} leaked");
    }
}

#[test]
fn rejects_what_is_not_an_inventory() {
    assert!(matches!(
        documents(&json!({ "schema": "cleartap.finding/1" })),
        Err(OpenApiError::NotAnInventory(_))
    ));
}
