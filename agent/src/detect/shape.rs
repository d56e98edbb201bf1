//! What each endpoint of the inventory looks like, learned from traffic without keeping a single
//! value: query parameters and request headers by name (with the types and formats their values
//! had, and how often they were present), JSON request and response bodies as type trees,
//! status codes with their media types, and the authentication schemes seen. It is what
//! `cleartap openapi` turns into an OpenAPI document.
//!
//! Bounded everywhere (names per endpoint, members per object, nesting, statuses), and sampled:
//! the first [`SAMPLED_FIRST`] exchanges of an endpoint teach its shape, then one in
//! [`SAMPLE_EVERY`] — parsing a JSON body is the only per-exchange cost here, and it stays
//! rare once an endpoint is known.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::view::View;

pub const SAMPLED_FIRST: u64 = 64;
pub const SAMPLE_EVERY: u64 = 64;
const MAX_NAMES: usize = 64;
const MAX_MEMBERS: usize = 64;
const MAX_DEPTH: usize = 8;
const MAX_STATUSES: usize = 16;
const MAX_MEDIA: usize = 8;
const MAX_WORKLOADS: usize = 8;

/// JSON types as OpenAPI names them, as bits.
const OBJECT: u8 = 1;
const ARRAY: u8 = 2;
const STRING: u8 = 4;
const INTEGER: u8 = 8;
const NUMBER: u8 = 16;
const BOOLEAN: u8 = 32;
const NULL: u8 = 64;
const TYPE_NAMES: [(u8, &str); 7] = [
    (OBJECT, "object"),
    (ARRAY, "array"),
    (STRING, "string"),
    (INTEGER, "integer"),
    (NUMBER, "number"),
    (BOOLEAN, "boolean"),
    (NULL, "null"),
];

/// Request headers that say nothing about the API (transport, negotiation, the client) or that
/// OpenAPI describes elsewhere (Authorization and Content-Type are not header parameters).
const ORDINARY_HEADERS: [&str; 22] = [
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "content-length",
    "content-type",
    "authorization",
    "cookie",
    "te",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "keep-alive",
    "proxy-authorization",
    "cache-control",
    "pragma",
    "origin",
    "referer",
    "grpc-timeout",
    "grpc-accept-encoding",
];

/// The type set and format of values seen under one name, never the values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueShape {
    /// Times the name was present.
    pub seen: u64,
    /// OpenAPI type names seen (`integer`, `string`, …).
    pub types: Vec<String>,
    /// The string format every string value had (`email`, `date-time`, `uuid`, …); null when
    /// they differed or had none.
    #[serde(default)]
    pub format: Option<String>,
    /// False once a string value had no recognisable format (so `format` stays null).
    #[serde(default = "yes", skip_serializing)]
    formats_agree: bool,
}

fn yes() -> bool {
    true
}

/// A JSON value's shape: its types, string format, members (objects) and items (arrays).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonShape {
    pub seen: u64,
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, JsonShape>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<JsonShape>>,
    /// Members or depth beyond the bounds, not learned.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated: u64,
    #[serde(default = "yes", skip_serializing)]
    formats_agree: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseShape {
    pub seen: u64,
    /// Media type (without parameters) → times.
    pub media: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<JsonShape>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointShape {
    /// Exchanges this shape was learned from.
    pub samples: u64,
    pub query: BTreeMap<String, ValueShape>,
    /// Request header name → times present (names only: values are never kept).
    pub headers: BTreeMap<String, u64>,
    pub request_media: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<JsonShape>,
    pub responses: BTreeMap<u16, ResponseShape>,
    /// Authentication seen: `bearer`, `bearer-jwt:<alg>`, `basic`, `api-key-header:<name>`,
    /// `api-key-query:<name>`, `cookie` → times.
    pub auth: BTreeMap<String, u64>,
    /// Who serves it: `namespace/pod` in Kubernetes, else the process name.
    pub workloads: Vec<String>,
    /// Names, statuses or media types beyond the bounds, not learned.
    pub truncated: u64,
    /// GraphQL operations (`query GetUser`, `mutation` for an anonymous one) → times.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub graphql: BTreeMap<String, u64>,
}

/// The format of a string value, by shape alone.
pub fn string_format(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    if super::route::param_kind(s) == Some("{uuid}") {
        return Some("uuid");
    }
    if let Some((local, domain)) = s.split_once('@')
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !s.contains(char::is_whitespace)
    {
        return Some("email");
    }
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let date = b.len() >= 10
        && digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10);
    if date && b.len() == 10 {
        return Some("date");
    }
    if date
        && matches!(b.get(10), Some(b'T' | b't'))
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    {
        return Some("date-time");
    }
    if (s.starts_with("http://") || s.starts_with("https://")) && !s.contains(char::is_whitespace) {
        return Some("uri");
    }
    if s.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("ipv4");
    }
    if s.contains(':') && s.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some("ipv6");
    }
    None
}

fn type_names(bits: u8) -> Vec<String> {
    TYPE_NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect()
}

fn add_types(types: &mut Vec<String>, bits: u8) {
    for name in type_names(bits) {
        if !types.contains(&name) {
            types.push(name);
        }
    }
    // `integer` is a `number`: one seen as both is a number.
    if types.iter().any(|t| t == "number") {
        types.retain(|t| t != "integer");
    }
    types.sort();
}

/// The types a query value may be: what it parses as.
fn query_value_type(value: &str) -> u8 {
    if value.parse::<i64>().is_ok() {
        INTEGER
    } else if value.parse::<f64>().is_ok_and(f64::is_finite) {
        NUMBER
    } else if value == "true" || value == "false" {
        BOOLEAN
    } else {
        STRING
    }
}

fn agree_format(
    format: &mut Option<String>,
    agree: &mut bool,
    seen_before: u64,
    new: Option<&str>,
) {
    if !*agree {
        return;
    }
    match (seen_before, new, format.as_deref()) {
        (0, Some(f), _) => *format = Some(f.to_owned()),
        (_, Some(f), Some(old)) if f == old => {}
        _ => {
            *agree = false;
            *format = None;
        }
    }
}

impl ValueShape {
    fn learn(&mut self, value: &str) {
        let bits = query_value_type(value);
        let format = (bits == STRING).then(|| string_format(value)).flatten();
        if bits == STRING {
            agree_format(&mut self.format, &mut self.formats_agree, self.seen, format);
        }
        add_types(&mut self.types, bits);
        self.seen += 1;
    }
}

impl JsonShape {
    fn learn(&mut self, value: &Value, depth: usize) {
        let bits = match value {
            Value::Object(_) => OBJECT,
            Value::Array(_) => ARRAY,
            Value::String(_) => STRING,
            Value::Number(n) if n.is_i64() || n.is_u64() => INTEGER,
            Value::Number(_) => NUMBER,
            Value::Bool(_) => BOOLEAN,
            Value::Null => NULL,
        };
        if let Value::String(s) = value {
            let seen_strings = u64::from(self.types.iter().any(|t| t == "string"));
            agree_format(
                &mut self.format,
                &mut self.formats_agree,
                seen_strings,
                string_format(s),
            );
        }
        add_types(&mut self.types, bits);
        self.seen += 1;
        if depth >= MAX_DEPTH {
            if matches!(value, Value::Object(_) | Value::Array(_)) {
                self.truncated += 1;
            }
            return;
        }
        match value {
            Value::Object(members) => {
                for (name, member) in members {
                    if !self.properties.contains_key(name) && self.properties.len() >= MAX_MEMBERS {
                        self.truncated += 1;
                        continue;
                    }
                    self.properties
                        .entry(name.clone())
                        .or_insert_with(JsonShape::fresh)
                        .learn(member, depth + 1);
                }
            }
            Value::Array(items) => {
                // A few items tell the item shape; long arrays are not walked to the end.
                for item in items.iter().take(8) {
                    self.items
                        .get_or_insert_with(|| Box::new(JsonShape::fresh()))
                        .learn(item, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn fresh() -> Self {
        Self {
            formats_agree: true,
            ..Self::default()
        }
    }
}

/// The media type without parameters, lower-cased.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str, max: usize, truncated: &mut u64) {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else if map.len() < max {
        map.insert(key.to_owned(), 1);
    } else {
        *truncated += 1;
    }
}

/// A JSON body (possibly cut at the tap's end, which then does not parse and teaches nothing).
fn json_of(body: &[u8], media: &str) -> Option<Value> {
    let json_media = media.is_empty() || media == "application/json" || media.ends_with("+json");
    let trimmed = body.trim_ascii_start();
    if !json_media || !trimmed.first().is_some_and(|b| *b == b'{' || *b == b'[') {
        return None;
    }
    serde_json::from_slice(trimmed).ok()
}

impl EndpointShape {
    /// Counts the GraphQL operations of one request (every request, not only samples).
    pub fn note_graphql(&mut self, operations: &[super::graphql::Operation]) {
        for op in operations {
            let key = match &op.name {
                Some(name) => format!("{} {name}", op.kind),
                None => op.kind.to_owned(),
            };
            bump(&mut self.graphql, &key, MAX_NAMES, &mut self.truncated);
        }
    }

    /// Whether the exchange that made this endpoint's `requests`-th request teaches its shape.
    pub fn wants_sample(requests: u64) -> bool {
        requests <= SAMPLED_FIRST || requests.is_multiple_of(SAMPLE_EVERY)
    }

    pub fn learn(&mut self, v: &View) {
        self.samples += 1;
        let Some(req) = v.event.request.as_ref() else {
            return;
        };
        let mut truncated = 0;
        for (name, value) in v.params() {
            if name.is_empty() {
                continue;
            }
            if let Some(shape) = self.query.get_mut(name) {
                shape.learn(value);
            } else if self.query.len() < MAX_NAMES {
                let mut shape = ValueShape {
                    formats_agree: true,
                    ..ValueShape::default()
                };
                shape.learn(value);
                self.query.insert(name.clone(), shape);
            } else {
                truncated += 1;
            }
        }
        for h in req.headers.iter() {
            let name = &h.name;
            if !ORDINARY_HEADERS.contains(&name.as_ref()) && !name.starts_with(':') {
                bump(&mut self.headers, name, MAX_NAMES, &mut truncated);
            }
        }
        self.learn_auth(v, &mut truncated);
        let request_media = req.headers.get("content-type").map(media_type);
        if let Some(media) = &request_media {
            bump(&mut self.request_media, media, MAX_MEDIA, &mut truncated);
        }
        if let Some(body) = json_of(v.request_body, request_media.as_deref().unwrap_or("")) {
            self.request_body
                .get_or_insert_with(JsonShape::fresh)
                .learn(&body, 0);
        }
        if let Some(res) = v.event.response.as_ref() {
            let status = res.status;
            if !self.responses.contains_key(&status) && self.responses.len() >= MAX_STATUSES {
                truncated += 1;
            } else {
                let shape = self.responses.entry(status).or_default();
                shape.seen += 1;
                let media = res.headers.get("content-type").map(media_type);
                if let Some(m) = &media {
                    bump(&mut shape.media, m, MAX_MEDIA, &mut truncated);
                }
                if let Some(body) = json_of(v.response_body, media.as_deref().unwrap_or("")) {
                    shape
                        .body
                        .get_or_insert_with(JsonShape::fresh)
                        .learn(&body, 0);
                }
            }
        }
        if v.event.connection.role == crate::event::Role::Server {
            let who = match v.event.kubernetes.as_ref().and_then(|k| k.pod.as_deref()) {
                Some(pod) => format!(
                    "{}/{pod}",
                    v.event
                        .kubernetes
                        .as_ref()
                        .and_then(|k| k.namespace.as_deref())
                        .unwrap_or("")
                ),
                None => v.event.process.comm.to_string(),
            };
            if !self.workloads.contains(&who) {
                if self.workloads.len() < MAX_WORKLOADS {
                    self.workloads.push(who);
                    self.workloads.sort();
                } else {
                    truncated += 1;
                }
            }
        }
        self.truncated += truncated;
    }

    fn learn_auth(&mut self, v: &View, truncated: &mut u64) {
        let Some(req) = v.event.request.as_ref() else {
            return;
        };
        if let Some(auth) = v.authorization {
            let scheme = auth
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            let key = match (scheme.as_str(), v.jwt) {
                ("bearer", Some(jwt)) => {
                    format!("bearer-jwt:{}", jwt.alg.as_deref().unwrap_or("none"))
                }
                ("bearer", None) => "bearer".to_owned(),
                ("basic", _) => "basic".to_owned(),
                (other, _) if !other.is_empty() && other.len() <= 32 => other.to_owned(),
                _ => "authorization".to_owned(),
            };
            bump(&mut self.auth, &key, MAX_MEDIA, truncated);
        }
        for h in req.headers.iter() {
            let name = &h.name;
            if matches!(
                name.as_ref(),
                "x-api-key" | "api-key" | "x-auth-token" | "apikey"
            ) {
                bump(
                    &mut self.auth,
                    &format!("api-key-header:{name}"),
                    MAX_MEDIA,
                    truncated,
                );
            }
        }
        for (name, _) in v.params() {
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "api_key" | "apikey" | "api-key" | "key" | "access_token"
            ) {
                bump(
                    &mut self.auth,
                    &format!("api-key-query:{name}"),
                    MAX_MEDIA,
                    truncated,
                );
            }
        }
        if req.headers.get("cookie").is_some() {
            bump(&mut self.auth, "cookie", MAX_MEDIA, truncated);
        }
    }
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
