//! OpenAPI 3.1 from the API inventory (`cleartap openapi`): one document per host, every
//! endpoint the agent saw with the shape it learned — path, query and header parameters with
//! types, formats and required flags, JSON request and response schemas per status and media
//! type, the authentication schemes seen — and `x-cleartap-*` extensions for what OpenAPI has
//! no word for (first/last seen, request counts, sensitive data, the workloads serving it).
//! Values are never in the inventory, so they cannot reach the document.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::detect::{
    inventory::RouteStats,
    shape::{EndpointShape, JsonShape, ValueShape},
};

#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("not a cleartap inventory (schema cleartap.inventory/1): {0}")]
    NotAnInventory(String),
    #[error("route {route:?} of host {host:?}: {source}")]
    Route {
        host: String,
        route: String,
        source: serde_json::Error,
    },
}

/// Endpoints the inventory names but that cannot be an OpenAPI path (no leading `/`, braces in
/// a literal segment, `*`), per host: said in the document rather than dropped silently.
const SKIPPED: &str = "x-cleartap-skipped-routes";

fn rfc3339_ms(ms: i64) -> Value {
    crate::event::build::rfc3339(i128::from(ms) * 1_000_000).into()
}

/// `{id}` → (name, schema) of a template parameter; None for a literal segment.
fn path_param(segment: &str) -> Option<(&'static str, Value)> {
    Some(match segment {
        "{id}" => ("id", json!({ "type": "integer" })),
        "{uuid}" => ("uuid", json!({ "type": "string", "format": "uuid" })),
        "{hex}" => (
            "hex",
            json!({ "type": "string", "pattern": "^[0-9a-fA-F]+$" }),
        ),
        "{token}" => ("token", json!({ "type": "string" })),
        _ => return None,
    })
}

/// The OpenAPI path of a template (parameters renamed `id`, `id2`, … when repeated) and its
/// path parameters; None when the template cannot be a path.
fn openapi_path(template: &str) -> Option<(String, Vec<Value>)> {
    if !template.starts_with('/') {
        return None;
    }
    let mut out = String::with_capacity(template.len());
    let mut params = Vec::new();
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for (i, segment) in template.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match path_param(segment) {
            Some((base, schema)) => {
                let n = counts.entry(base).or_insert(0);
                *n += 1;
                let name = if *n == 1 {
                    base.to_owned()
                } else {
                    format!("{base}{n}")
                };
                out.push('{');
                out.push_str(&name);
                out.push('}');
                params.push(
                    json!({ "name": name, "in": "path", "required": true, "schema": schema }),
                );
            }
            None if segment.contains(['{', '}', '*', '?', '#']) => return None,
            None => out.push_str(segment),
        }
    }
    Some((out, params))
}

fn type_schema(types: &[String], format: Option<&str>) -> Map<String, Value> {
    let mut schema = Map::new();
    match types {
        [] => {}
        [one] => {
            schema.insert("type".into(), one.as_str().into());
        }
        many => {
            schema.insert("type".into(), many.iter().map(String::as_str).collect());
        }
    }
    if let Some(f) = format {
        schema.insert("format".into(), f.into());
    }
    schema
}

fn value_schema(shape: &ValueShape) -> Value {
    Value::Object(type_schema(&shape.types, shape.format.as_deref()))
}

/// JSON Schema of a learned JSON shape: members present in every object seen are required.
fn json_schema(shape: &JsonShape) -> Value {
    let mut schema = type_schema(&shape.types, shape.format.as_deref());
    if !shape.properties.is_empty() {
        let objects = shape.seen;
        let properties: Map<String, Value> = shape
            .properties
            .iter()
            .map(|(name, member)| (name.clone(), json_schema(member)))
            .collect();
        let required: Vec<&str> = shape
            .properties
            .iter()
            .filter(|(_, member)| member.seen >= objects && shape.types == ["object"])
            .map(|(name, _)| name.as_str())
            .collect();
        schema.insert("properties".into(), properties.into());
        if !required.is_empty() {
            schema.insert("required".into(), required.into());
        }
    }
    if let Some(items) = &shape.items {
        schema.insert("items".into(), json_schema(items));
    }
    if shape.truncated > 0 {
        schema.insert("x-cleartap-truncated".into(), shape.truncated.into());
    }
    Value::Object(schema)
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

fn content(media: &BTreeMap<String, u64>, body: Option<&JsonShape>) -> Map<String, Value> {
    let mut out = Map::new();
    for m in media.keys() {
        let object = match body {
            Some(b) if is_json(m) => json!({ "schema": json_schema(b) }),
            _ => json!({}),
        };
        out.insert(m.clone(), object);
    }
    if out.is_empty()
        && let Some(b) = body
    {
        out.insert(
            "application/json".into(),
            json!({ "schema": json_schema(b) }),
        );
    }
    out
}

/// A security scheme name and its definition for an `auth` key of the shape.
fn security_scheme(key: &str) -> Option<(String, Value)> {
    if let Some(alg) = key.strip_prefix("bearer-jwt:") {
        return Some((
            "bearerJwt".into(),
            json!({ "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "x-cleartap-jwt-alg": alg }),
        ));
    }
    if let Some(name) = key.strip_prefix("api-key-header:") {
        return Some((
            format!("apiKeyHeader_{name}"),
            json!({ "type": "apiKey", "in": "header", "name": name }),
        ));
    }
    if let Some(name) = key.strip_prefix("api-key-query:") {
        return Some((
            format!("apiKeyQuery_{name}"),
            json!({ "type": "apiKey", "in": "query", "name": name }),
        ));
    }
    match key {
        "bearer" => Some((
            "bearer".into(),
            json!({ "type": "http", "scheme": "bearer" }),
        )),
        "basic" => Some(("basic".into(), json!({ "type": "http", "scheme": "basic" }))),
        _ => None,
    }
}

fn operation(
    method: &str,
    path: &str,
    path_params: Vec<Value>,
    stats: &RouteStats,
    schemes: &mut Map<String, Value>,
) -> Value {
    let shape: &EndpointShape = &stats.shape;
    let samples = shape.samples.max(1);
    let mut parameters = path_params;
    for (name, q) in &shape.query {
        parameters.push(json!({
            "name": name, "in": "query", "required": q.seen >= samples,
            "schema": value_schema(q),
            "x-cleartap-seen": q.seen,
        }));
    }
    for (name, seen) in &shape.headers {
        parameters.push(json!({
            "name": name, "in": "header", "required": *seen >= samples,
            "schema": { "type": "string" },
            "x-cleartap-seen": seen,
        }));
    }
    let mut op = Map::new();
    op.insert(
        "operationId".into(),
        format!(
            "{}{}",
            method.to_ascii_lowercase(),
            path.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        )
        .into(),
    );
    op.insert(
        "summary".into(),
        format!("{method} {path}, learned from {} requests", stats.requests).into(),
    );
    if !parameters.is_empty() {
        op.insert("parameters".into(), parameters.into());
    }
    if shape.request_body.is_some() || !shape.request_media.is_empty() {
        let with_body = shape.request_body.as_ref().map_or(0, |b| b.seen);
        op.insert(
            "requestBody".into(),
            json!({
                "required": with_body >= samples,
                "content": content(&shape.request_media, shape.request_body.as_ref()),
            }),
        );
    }
    let mut responses = Map::new();
    for (status, response) in &shape.responses {
        let mut r = Map::new();
        r.insert(
            "description".into(),
            format!("Observed {} times", response.seen).into(),
        );
        let c = content(&response.media, response.body.as_ref());
        if !c.is_empty() {
            r.insert("content".into(), c.into());
        }
        responses.insert(status.to_string(), r.into());
    }
    if responses.is_empty() {
        responses.insert(
            "default".into(),
            json!({ "description": "No response observed" }),
        );
    }
    op.insert("responses".into(), responses.into());
    let mut security: Vec<Value> = Vec::new();
    let mut authenticated = 0;
    for (key, seen) in &shape.auth {
        if let Some((name, scheme)) = security_scheme(key) {
            schemes.insert(name.clone(), scheme);
            security.push(json!({ name: [] }));
            authenticated += seen;
        }
    }
    if !security.is_empty() {
        if authenticated < samples {
            // Some requests carried none of them: authentication is optional.
            security.push(json!({}));
        }
        op.insert("security".into(), security.into());
    }
    op.insert(
        "x-cleartap-first-seen".into(),
        rfc3339_ms(stats.first_seen_ms),
    );
    op.insert(
        "x-cleartap-last-seen".into(),
        rfc3339_ms(stats.last_seen_ms),
    );
    op.insert("x-cleartap-requests".into(), stats.requests.into());
    op.insert("x-cleartap-samples".into(), shape.samples.into());
    op.insert(
        "x-cleartap-status-classes".into(),
        json!({ "2xx": stats.status_2xx, "3xx": stats.status_3xx, "4xx": stats.status_4xx, "5xx": stats.status_5xx }),
    );
    op.insert("x-cleartap-auth".into(), json!(shape.auth));
    let b = &stats.baseline;
    if b.response_bytes.count > 0 || b.latency_us.count > 0 {
        op.insert(
            "x-cleartap-baseline".into(),
            json!({
                "response_bytes": { "samples": b.response_bytes.count, "p50": b.response_bytes.quantile(0.5), "p99": b.response_bytes.quantile(0.99) },
                "latency_us": { "samples": b.latency_us.count, "p50": b.latency_us.quantile(0.5), "p99": b.latency_us.quantile(0.99) },
            }),
        );
    }
    if !stats.sensitive_data.is_empty() {
        op.insert(
            "x-cleartap-sensitive-data".into(),
            json!(stats.sensitive_data),
        );
    }
    if !shape.graphql.is_empty() {
        op.insert("x-cleartap-graphql-operations".into(), json!(shape.graphql));
    }
    if !shape.workloads.is_empty() {
        op.insert("x-cleartap-workloads".into(), json!(shape.workloads));
    }
    if shape.truncated > 0 {
        op.insert("x-cleartap-truncated".into(), shape.truncated.into());
    }
    Value::Object(op)
}

/// A file name for `host` (it comes from the network): letters, digits, `.`, `-`, `_` kept,
/// anything else `_`, never starting with a dot.
pub fn file_stem(host: &str) -> String {
    let mut stem: String = host
        .chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() || stem.starts_with('.') {
        stem.insert(0, '_');
    }
    stem
}

/// A document as YAML.
pub fn to_yaml(doc: &Value) -> Result<String, serde_norway::Error> {
    serde_norway::to_string(doc)
}

/// One OpenAPI 3.1 document per host of an inventory (as written to `--inventory-file`).
pub fn documents(inventory: &Value) -> Result<BTreeMap<String, Value>, OpenApiError> {
    if inventory["schema"] != "cleartap.inventory/1" {
        return Err(OpenApiError::NotAnInventory(
            inventory["schema"].to_string(),
        ));
    }
    let empty = Map::new();
    let hosts = inventory["hosts"].as_object().unwrap_or(&empty);
    let mut out = BTreeMap::new();
    for (host, routes) in hosts {
        let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        let mut schemes = Map::new();
        let mut skipped = Vec::new();
        for (route, stats) in routes.as_object().unwrap_or(&empty) {
            let stats: RouteStats =
                serde_json::from_value(stats.clone()).map_err(|source| OpenApiError::Route {
                    host: host.clone(),
                    route: route.clone(),
                    source,
                })?;
            let Some((method, template)) = route.split_once(' ') else {
                skipped.push(route.clone());
                continue;
            };
            let method_key = method.to_ascii_lowercase();
            let known = [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ];
            let Some((path, params)) =
                openapi_path(template).filter(|_| known.contains(&method_key.as_str()))
            else {
                skipped.push(route.clone());
                continue;
            };
            let op = operation(method, &path, params, &stats, &mut schemes);
            paths.entry(path).or_default().insert(method_key, op);
        }
        let mut doc = json!({
            "openapi": "3.1.0",
            "info": {
                "title": format!("{host} (observed by cleartap)"),
                "version": "observed",
                "description": "Learned from live traffic: every endpoint, parameter and schema here was seen; none was read from a specification. Values are never recorded, only their shape.",
            },
            "paths": paths,
        });
        if let Some(doc) = doc.as_object_mut() {
            if !schemes.is_empty() {
                doc.insert("components".into(), json!({ "securitySchemes": schemes }));
            }
            if !skipped.is_empty() {
                doc.insert(SKIPPED.into(), json!(skipped));
            }
        }
        out.insert(host.clone(), doc);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
