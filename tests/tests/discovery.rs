//! End-to-end API discovery: a Flask API over TLS driven by a client; the agent's inventory
//! becomes OpenAPI 3.1 (`cleartap openapi`, and beside the inventory at exit) that a standard
//! validator accepts, that names every endpoint with its templates, parameters, types and
//! required flags, and that holds no value seen in the traffic.

use std::process::Command;

use cleartap_e2e::{
    Agent, TempDir, WAIT, agent_binary, free_port,
    peers::{PYTHON, flask_api, graphql_api, peers_dir, test_python},
    pid_is, privileged, run_client, s,
};
use serde_json::Value;

fn validate(python: &std::path::Path, file: &std::path::Path) {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys\nfrom openapi_spec_validator import validate\n\
from openapi_spec_validator.readers import read_from_filename\n\
validate(read_from_filename(sys.argv[1])[0])\nprint('valid')",
        ])
        .arg(file)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "valid",
        "{} is not valid OpenAPI: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn param<'a>(op: &'a Value, name: &str) -> &'a Value {
    op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no parameter {name}: {op:#}"))
}

#[test]
fn openapi_from_live_traffic_validates_and_names_every_endpoint() {
    if !privileged() {
        return;
    }
    let Some(python) = test_python() else {
        return;
    };
    let dir = TempDir::new("discovery");
    let port = free_port();
    let server = flask_api(&dir, port);
    let inventory = dir.path("state/inventory.json");
    let agent = Agent::start(&["--inventory-file", inventory.to_str().expect("utf-8")]);
    let (_, out) = run_client(
        Command::new(PYTHON)
            .arg(peers_dir().join("flask_api.py"))
            .args(["drive", &port.to_string()]),
    );
    assert_eq!(
        out.trim(),
        "200 200 201 204 200 200 201 204 200 200 201 204"
    );
    agent.wait_events(12, WAIT, |e| pid_is(e, server.0.id()));
    agent.stop();
    let host = format!("127.0.0.1:{port}");
    // At exit the agent wrote the inventory and, beside it, one OpenAPI document per host.
    let beside = dir.path(&format!("state/openapi/127.0.0.1_{port}.openapi.yaml"));
    assert!(beside.exists(), "{} missing", beside.display());
    validate(&python, &beside);
    let spec_dir = dir.path("spec");
    let status = Command::new(agent_binary())
        .args(["openapi", "--inventory"])
        .arg(&inventory)
        .args(["--format", "json", "--host", &host, "--out-dir"])
        .arg(&spec_dir)
        .status()
        .expect("cleartap openapi");
    assert!(status.success());
    let file = spec_dir.join(format!("127.0.0.1_{port}.openapi.json"));
    validate(&python, &file);
    let text = std::fs::read_to_string(&file).expect("spec");
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(s(&doc["openapi"]), "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "/api/v1/orders",
            "/api/v1/orders/{uuid}",
            "/api/v1/users",
            "/api/v1/users/{id}"
        ]
    );
    let user = &paths["/api/v1/users/{id}"]["get"];
    assert_eq!(param(user, "id")["in"], "path");
    assert_eq!(param(user, "id")["schema"]["type"], "integer");
    assert_eq!(param(user, "x-tenant")["in"], "header");
    assert_eq!(param(user, "x-tenant")["required"], true);
    let body = &user["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(body["properties"]["email"]["format"], "email");
    assert_eq!(body["properties"]["created"]["format"], "date-time");
    assert_eq!(body["properties"]["roles"]["items"]["type"], "string");
    assert_eq!(
        body["properties"]["address"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(body["properties"]["id"]["type"], "integer");
    let list = &paths["/api/v1/users"]["get"];
    assert_eq!(param(list, "limit")["schema"]["type"], "integer");
    assert_eq!(param(list, "limit")["required"], true);
    assert_eq!(param(list, "since")["schema"]["format"], "date-time");
    let order = &paths["/api/v1/orders"]["post"];
    assert_eq!(order["requestBody"]["required"], true);
    let request = &order["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(request["properties"]["quantity"]["type"], "integer");
    assert_eq!(
        request["required"],
        serde_json::json!(["note", "quantity", "sku"])
    );
    let created = &order["responses"]["201"]["content"]["application/json"]["schema"];
    assert_eq!(created["properties"]["order_id"]["format"], "uuid");
    let delete = &paths["/api/v1/orders/{uuid}"]["delete"];
    assert_eq!(param(delete, "uuid")["schema"]["format"], "uuid");
    assert!(delete["responses"]["204"].is_object());
    assert_eq!(user["security"], serde_json::json!([{ "bearerJwt": [] }]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerJwt"]["x-cleartap-jwt-alg"],
        "HS256"
    );
    assert_eq!(user["x-cleartap-workloads"], serde_json::json!(["python3"]));
    // Names and shapes only: no value seen in the traffic is in the document.
    for value in [
        "tenant-42",
        "SKU-",
        "gift",
        "corp.example",
        "Lisbon",
        "1000-001",
        "7d1e6c2a",
        "9b2f4c1e",
        "eyJhbGci",
        "2024-01-0",
    ] {
        assert!(!text.contains(value), "{value} leaked into the spec");
    }
}

/// The team's spec lacks one endpoint (DELETE /api/v1/orders/{id}) and one request member
/// (`note`): live traffic yields INV-3 and INV-4 naming exactly those.
const TEAM_SPEC: &str = r##"
openapi: 3.1.0
info: { title: shop, version: "1" }
paths:
  /api/v1/users/{userId}:
    get:
      responses:
        "200":
          content:
            application/json:
              schema:
                type: object
                properties:
                  id: { type: integer }
                  email: { type: string }
                  created: { type: string }
                  roles: { type: array }
                  address: { type: object }
  /api/v1/users:
    get:
      parameters:
        - { name: limit, in: query, schema: { type: integer } }
        - { name: since, in: query, schema: { type: string } }
      responses: { "200": { description: ok } }
  /api/v1/orders:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties: { sku: { type: string }, quantity: { type: integer } }
      responses: { "201": { description: created } }
"##;

#[test]
fn drift_against_the_team_spec() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("drift");
    let port = free_port();
    let server = flask_api(&dir, port);
    std::fs::create_dir_all(dir.path("specs")).expect("specs dir");
    std::fs::write(dir.path("specs/shop.yaml"), TEAM_SPEC).expect("spec");
    let config = dir.path("cleartap.toml");
    std::fs::write(
        &config,
        format!(
            "[inventory]\nspecs = [\"{}/*.yaml\"]\n",
            dir.path("specs").display()
        ),
    )
    .expect("config");
    let inventory = dir.path("inventory.json");
    let agent = Agent::start(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--inventory-file",
        inventory.to_str().expect("utf-8"),
    ]);
    assert!(
        agent
            .stderr_lines()
            .iter()
            .any(|l| l.contains("API specs: 3 operations from 1 files")),
        "{:#?}",
        agent.stderr_lines()
    );
    run_client(
        Command::new(PYTHON)
            .arg(peers_dir().join("flask_api.py"))
            .args(["drive", &port.to_string()]),
    );
    let server_pid = server.0.id();
    let of = |rule: &'static str| {
        move |f: &Value| {
            f["schema"] == "cleartap.finding/1"
                && f["rule"]["id"] == rule
                && pid_is(&f["exchange"], server_pid)
        }
    };
    let shadow = agent.wait_events(1, WAIT, of("INV-3"));
    assert_eq!(shadow.len(), 1, "{shadow:#?}");
    assert_eq!(s(&shadow[0]["evidence"]["method"]), "DELETE");
    assert_eq!(
        s(&shadow[0]["evidence"]["template"]),
        "/api/v1/orders/{uuid}"
    );
    let mass = agent.wait_events(1, WAIT, of("INV-4"));
    assert_eq!(
        mass[0]["evidence"]["undeclared_body_members"],
        serde_json::json!(["note"])
    );
    assert_eq!(s(&mass[0]["evidence"]["operation"]), "POST /api/v1/orders");
    // Everything else keeps to the spec: no other drift finding.
    let others: Vec<Value> = agent
        .findings()
        .into_iter()
        .filter(|f| {
            pid_is(&f["exchange"], server_pid)
                && ["INV-5", "INV-6"].contains(&f["rule"]["id"].as_str().unwrap_or(""))
        })
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    agent.stop();
    // The same drift as a report, from the inventory the agent wrote at exit.
    let out = Command::new(agent_binary())
        .args(["openapi", "--inventory"])
        .arg(&inventory)
        .arg("--diff")
        .arg(dir.path("specs/shop.yaml"))
        .output()
        .expect("cleartap openapi --diff");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = report.lines().collect();
    let host = format!("127.0.0.1:{port}");
    assert_eq!(
        lines,
        [
            format!(
                "shadow endpoint (INV-3): {host} DELETE /api/v1/orders/{{uuid}} — 3 requests, in no spec"
            ),
            format!(
                "undeclared request members (INV-4): {host} POST /api/v1/orders (/api/v1/orders in {}): note",
                dir.path("specs/shop.yaml").display()
            ),
        ],
        "{report}"
    );
}

#[test]
fn a_response_forty_times_its_baseline_is_anom1() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("anomaly");
    let port = free_port();
    let server = flask_api(&dir, port);
    let agent = Agent::start(&["--inventory-file", "off"]);
    // 60 ordinary reports (~500 bytes) teach the endpoint's normal; then one of 800 rows.
    let (_, out) = run_client(
        Command::new(PYTHON)
            .arg(peers_dir().join("flask_api.py"))
            .args(["reports", &port.to_string(), "60", "800"]),
    );
    let big: u64 = out.trim().parse().expect("size");
    let server_pid = server.0.id();
    let found = agent.wait_events(1, WAIT, |f| {
        f["schema"] == "cleartap.finding/1"
            && f["rule"]["id"] == "ANOM-1"
            && pid_is(&f["exchange"], server_pid)
    });
    assert_eq!(found.len(), 1, "{found:#?}");
    let e = &found[0]["evidence"];
    assert_eq!(s(&e["baseline"]), "response_bytes");
    assert_eq!(e["observed"].as_u64(), Some(big));
    assert_eq!(e["samples"].as_u64(), Some(60));
    assert!(e["times_p99"].as_f64().is_some_and(|r| r > 10.0), "{e}");
    assert!(e["p99"].as_u64().is_some_and(|p| p * 10 < big), "{e}");
    assert_eq!(
        s(&found[0]["exchange"]["request"]["path"]),
        "/api/v1/reports/61"
    );
    agent.stop();
}

#[test]
fn graphql_introspection_and_a_batched_brute_force() {
    if !privileged() {
        return;
    }
    let dir = TempDir::new("graphql");
    let port = free_port();
    let server = graphql_api(&dir, port);
    let inventory = dir.path("inventory.json");
    let agent = Agent::start(&["--inventory-file", inventory.to_str().expect("utf-8")]);
    let (_, out) = run_client(
        Command::new(PYTHON)
            .arg(peers_dir().join("graphql_api.py"))
            .args(["drive", &port.to_string()]),
    );
    assert_eq!(out.trim(), "Query 20 user7");
    let server_pid = server.0.id();
    let of = |rule: &'static str| {
        move |f: &Value| {
            f["schema"] == "cleartap.finding/1"
                && f["rule"]["id"] == rule
                && pid_is(&f["exchange"], server_pid)
        }
    };
    let intro = agent.wait_events(1, WAIT, of("GQL-1"));
    assert_eq!(s(&intro[0]["evidence"]["operation"]), "IntrospectionQuery");
    let batch = agent.wait_events(1, WAIT, of("GQL-2"));
    assert_eq!(batch[0]["evidence"]["batched_operations"], 20);
    agent.stop();
    // The inventory names every operation the endpoint served.
    let inv: Value = serde_json::from_str(&std::fs::read_to_string(&inventory).expect("inventory"))
        .expect("json");
    let ops = &inv["hosts"][format!("127.0.0.1:{port}")]["POST /graphql"]["shape"]["graphql"];
    assert_eq!(ops["query IntrospectionQuery"], 1, "{ops:#}");
    assert_eq!(ops["query GetUser"], 1);
    assert_eq!(ops["mutation Login19"], 1);
}
