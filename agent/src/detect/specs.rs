//! The team's own API specifications (`[inventory] specs`: OpenAPI 3.0/3.1, YAML or JSON, files
//! or globs), and the drift of live traffic from them: INV-3 an endpoint served but in no spec
//! (shadow API), INV-4 a request parameter or JSON member the spec does not declare
//! (mass-assignment candidate), INV-5 a response member the spec does not declare (excessive
//! data exposure), INV-6 a documented endpoint marked deprecated that still answers.
//!
//! Specs come from the operator, not the network, but are still bounded (file size, operations,
//! properties) and every problem names the file. Only what the spec states is compared: an
//! operation without a request schema, or a schema that allows additional properties, is not
//! judged for members.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::Value;

const MAX_FILE_BYTES: u64 = 16 << 20;
const MAX_OPERATIONS: usize = 20_000;
const MAX_REF_DEPTH: usize = 8;

/// `[inventory]` of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    /// OpenAPI files or globs (`/etc/cleartap/specs/*.yaml`); re-read on SIGHUP.
    pub specs: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("[inventory] specs: pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
    #[error("[inventory] specs: {path}: {message}")]
    File { path: String, message: String },
}

/// Declared members of an object schema; `None` when the schema does not close the set
/// (no `properties`, or `additionalProperties` not false/absent-with-properties).
type Members = Option<BTreeSet<String>>;

#[derive(Debug, Clone)]
struct Operation {
    /// Path segments; `None` for a `{parameter}`.
    segments: Vec<Option<String>>,
    method: String,
    path: String,
    deprecated: bool,
    query: BTreeSet<String>,
    request_members: Members,
    /// Status (`200`, `2XX`, `default`) → declared top-level response members.
    responses: Vec<(String, Members)>,
    spec: String,
}

/// The operations of every loaded spec, indexed by (method, number of segments).
#[derive(Debug, Default)]
pub struct ApiSpecs {
    by_shape: HashMap<(String, usize), Vec<Operation>>,
    pub files: usize,
    pub operations: usize,
}

/// The operation a request matched.
pub struct OperationRef<'s>(&'s Operation);

impl OperationRef<'_> {
    pub fn method(&self) -> &str {
        &self.0.method
    }

    pub fn path(&self) -> &str {
        &self.0.path
    }

    pub fn spec(&self) -> &str {
        &self.0.spec
    }

    pub fn deprecated(&self) -> bool {
        self.0.deprecated
    }

    /// Query parameter names the operation does not declare.
    pub fn undeclared_query<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<String> {
        names
            .filter(|n| !n.is_empty() && !self.0.query.contains(*n))
            .map(str::to_owned)
            .collect()
    }

    /// Top-level members of a JSON request body the operation's schema does not declare.
    pub fn undeclared_request_members(&self, body: &Value) -> Vec<String> {
        undeclared(self.0.request_members.as_ref(), body)
    }

    /// Top-level members of a JSON response the schema for `status` does not declare.
    pub fn undeclared_response_members(&self, status: u16, body: &Value) -> Vec<String> {
        let exact = status.to_string();
        let class = format!("{}XX", status / 100);
        let members = self
            .0
            .responses
            .iter()
            .find(|(s, _)| *s == exact)
            .or_else(|| {
                self.0
                    .responses
                    .iter()
                    .find(|(s, _)| s.eq_ignore_ascii_case(&class))
            })
            .or_else(|| self.0.responses.iter().find(|(s, _)| s == "default"))
            .and_then(|(_, m)| m.as_ref());
        undeclared(members, body)
    }
}

fn undeclared(members: Option<&BTreeSet<String>>, body: &Value) -> Vec<String> {
    let (Some(members), Some(object)) = (members, body.as_object()) else {
        return Vec::new();
    };
    object
        .keys()
        .filter(|k| !members.contains(*k))
        .take(16)
        .cloned()
        .collect()
}

/// Follows a local `$ref` (`#/components/schemas/X`) to its target, a few levels deep.
fn resolve<'d>(doc: &'d Value, mut schema: &'d Value) -> &'d Value {
    for _ in 0..MAX_REF_DEPTH {
        let Some(target) = schema.get("$ref").and_then(Value::as_str) else {
            return schema;
        };
        let Some(pointer) = target.strip_prefix('#') else {
            return schema;
        };
        match doc.pointer(pointer) {
            Some(next) => schema = next,
            None => return schema,
        }
    }
    schema
}

/// The declared members of an object schema (`allOf` parts merged), or None when it is open.
fn members(doc: &Value, schema: &Value) -> Members {
    let schema = resolve(doc, schema);
    let mut out = BTreeSet::new();
    let mut closed = false;
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            out.extend(members(doc, part)?);
            closed = true;
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        out.extend(props.keys().cloned());
        closed = true;
    }
    if schema
        .get("additionalProperties")
        .is_some_and(|a| a != &Value::Bool(false))
        || schema.get("oneOf").is_some()
        || schema.get("anyOf").is_some()
    {
        return None;
    }
    closed.then_some(out)
}

fn json_schema_of(doc: &Value, content: Option<&Value>) -> Members {
    let content = content?.as_object()?;
    let schema = content
        .iter()
        .find(|(media, _)| *media == "application/json" || media.ends_with("+json"))
        .and_then(|(_, m)| m.get("schema"))?;
    members(doc, schema)
}

fn segments(path: &str) -> Vec<Option<String>> {
    path.split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                None
            } else {
                Some(s.to_owned())
            }
        })
        .collect()
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl ApiSpecs {
    /// Reads every file the patterns name. A pattern that matches nothing, a file that does not
    /// parse, or a document without `paths` is an error naming it.
    pub fn load(config: &InventoryConfig) -> Result<Self, SpecError> {
        let mut specs = ApiSpecs::default();
        for pattern in &config.specs {
            let paths: Vec<std::path::PathBuf> = glob::glob(pattern)
                .map_err(|e| SpecError::Pattern {
                    pattern: pattern.clone(),
                    message: e.to_string(),
                })?
                .filter_map(Result::ok)
                .collect();
            if paths.is_empty() {
                return Err(SpecError::Pattern {
                    pattern: pattern.clone(),
                    message: "matches no file".into(),
                });
            }
            for path in paths {
                specs.add_file(&path)?;
            }
        }
        Ok(specs)
    }

    fn add_file(&mut self, path: &std::path::Path) -> Result<(), SpecError> {
        let name = path.display().to_string();
        let err = |message: String| SpecError::File {
            path: name.clone(),
            message,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| err(e.to_string()))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(err(format!("{size} bytes; at most {MAX_FILE_BYTES}")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let doc: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?
        } else {
            serde_norway::from_str(&text).map_err(|e| err(format!("not YAML: {e}")))?
        };
        let version = doc
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or_else(|| err("no `openapi` version: not an OpenAPI 3 document".into()))?;
        if !version.starts_with("3.") {
            return Err(err(format!("OpenAPI {version}: only 3.0 and 3.1 are read")));
        }
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or_else(|| err("no `paths` object".into()))?;
        for (path, item) in paths {
            let shared_query: Vec<String> = query_names(&doc, item.get("parameters"));
            for method in METHODS {
                let Some(op) = item.get(method) else {
                    continue;
                };
                if self.operations >= MAX_OPERATIONS {
                    return Err(err(format!("more than {MAX_OPERATIONS} operations")));
                }
                let mut query: BTreeSet<String> = shared_query.iter().cloned().collect();
                query.extend(query_names(&doc, op.get("parameters")));
                let request_members = op
                    .get("requestBody")
                    .map(|b| resolve(&doc, b))
                    .and_then(|b| json_schema_of(&doc, b.get("content")));
                let responses = op
                    .get("responses")
                    .and_then(Value::as_object)
                    .map(|r| {
                        r.iter()
                            .map(|(status, response)| {
                                let response = resolve(&doc, response);
                                (
                                    status.clone(),
                                    json_schema_of(&doc, response.get("content")),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let operation = Operation {
                    segments: segments(path),
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    deprecated: op.get("deprecated") == Some(&Value::Bool(true)),
                    query,
                    request_members,
                    responses,
                    spec: name.clone(),
                };
                self.by_shape
                    .entry((operation.method.clone(), operation.segments.len()))
                    .or_default()
                    .push(operation);
                self.operations += 1;
            }
        }
        self.files += 1;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.operations == 0
    }

    /// Every operation, in no particular order.
    pub fn all(&self) -> impl Iterator<Item = OperationRef<'_>> {
        self.by_shape.values().flatten().map(OperationRef)
    }

    /// The operation that documents `method` on `path` (a concrete request path), preferring
    /// the one with the most literal segments (`/users/me` over `/users/{id}`).
    pub fn operation(&self, method: &str, path: &str) -> Option<OperationRef<'_>> {
        let parts: Vec<&str> = path.split('/').collect();
        let candidates = self
            .by_shape
            .get(&(method.to_ascii_uppercase(), parts.len()))?;
        candidates
            .iter()
            .filter(|op| {
                op.segments
                    .iter()
                    .zip(&parts)
                    .all(|(want, got)| want.as_deref().is_none_or(|w| w == *got))
            })
            .max_by_key(|op| op.segments.iter().filter(|s| s.is_some()).count())
            .map(OperationRef)
    }
}

fn query_names(doc: &Value, parameters: Option<&Value>) -> Vec<String> {
    parameters
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| resolve(doc, p))
                .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
                .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "specs_tests.rs"]
mod tests;

/// Member names that, answered where the spec does not declare them, are more than noise.
fn looks_sensitive(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "password", "passwd", "secret", "token", "ssn", "card", "iban", "cvv", "salary", "dob",
        "birth", "email", "phone", "address", "role", "admin", "internal", "hash",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// The drift findings of one exchange against the specs. `first_time` is true once per route
/// (and specs generation): INV-3 is said once per shadow endpoint, not per request.
pub fn drift(
    specs: &ApiSpecs,
    v: &super::view::View<'_>,
    template: &str,
    first_time: bool,
    on: impl Fn(super::RuleId) -> bool,
    data_found: bool,
    hits: &mut Vec<(super::RuleId, Value)>,
) {
    use super::RuleId;
    use serde_json::json;
    let Some(op) = specs.operation(v.method, v.path) else {
        if first_time && on(RuleId::Inv3) {
            hits.push((
                RuleId::Inv3,
                json!({ "method": v.method, "template": template, "spec_files": specs.files }),
            ));
        }
        return;
    };
    if on(RuleId::Inv4) {
        let query = op.undeclared_query(v.params().iter().map(|(k, _)| k.as_str()));
        let body = json_body(v.request_body)
            .map(|b| op.undeclared_request_members(&b))
            .unwrap_or_default();
        if !query.is_empty() || !body.is_empty() {
            hits.push((
                RuleId::Inv4,
                json!({
                    "operation": format!("{} {}", v.method, op.path()),
                    "spec": op.spec(),
                    "undeclared_query": query,
                    "undeclared_body_members": body,
                }),
            ));
        }
    }
    if let Some(status) = v.status {
        if on(RuleId::Inv5)
            && let Some(body) = json_body(v.response_body)
        {
            let members = op.undeclared_response_members(status, &body);
            if !members.is_empty() {
                let sensitive = data_found || members.iter().any(|m| looks_sensitive(m));
                hits.push((
                    RuleId::Inv5,
                    json!({
                        "operation": format!("{} {}", v.method, op.path()),
                        "spec": op.spec(),
                        "status": status,
                        "undeclared_members": members,
                        "sensitive": sensitive,
                    }),
                ));
            }
        }
        if on(RuleId::Inv6) && op.deprecated() && (200..300).contains(&status) {
            hits.push((
                RuleId::Inv6,
                json!({ "operation": format!("{} {}", v.method, op.path()), "spec": op.spec(), "status": status }),
            ));
        }
    }
}

/// A JSON object body (a cut or non-object body teaches nothing).
fn json_body(body: &[u8]) -> Option<Value> {
    let trimmed = body.trim_ascii_start();
    if trimmed.first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(trimmed).ok()
}
