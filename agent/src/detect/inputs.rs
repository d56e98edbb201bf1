//! Every location of a request an attacker controls, walked once per rule that reads them:
//! query values and names, path segments, header values, cookies, body fields and (for rules
//! that read it) the raw body. Each value comes with a label naming its location (`query.id`,
//! `query_name`, `path[2]`, `header.user-agent`, `cookie.session`, `body.json./a/b`,
//! `body.form.q`, `body.xml`, `body.raw`), made only when a rule fires.

use serde_json::{Value, json};

use super::view::View;

/// Values examined per request and rule: a hostile request with thousands of parameters or
/// headers costs a bounded amount. Past it the request is reported itself (`inspection_limit`):
/// padding an attack behind a thousand harmless inputs is an evasion, not an API call.
pub const MAX_VALUES: usize = 1024;

/// Where a value was found: what it may legitimately contain differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// A query parameter value (its name given) or name, or a path segment (no name).
    Param(Option<&'a str>),
    /// A header value (the header's lower-case name given).
    Header(&'a str),
    /// A cookie value.
    Cookie,
    /// A body field: multi-line text is ordinary there.
    Body,
    /// The whole body as text (XML, text/*, or without a Content-Type).
    RawBody,
}

/// Evidence with `matched`: a bounded fragment of the value the rule judged, secrets masked
/// (`classify::redact::fragment`). Not for cookies, whose values the event never shows.
pub fn with_matched(mut evidence: Value, value: &str, place: Place<'_>) -> Value {
    if place != Place::Cookie
        && let Some(fields) = evidence.as_object_mut()
    {
        fields.insert(
            "matched".into(),
            Value::from(crate::classify::redact::fragment(value)),
        );
    }
    evidence
}

/// The body as text: all of it, or up to a character the tap cut in two; None for binary.
fn utf8_prefix(body: &[u8]) -> Option<&str> {
    match std::str::from_utf8(body) {
        Ok(text) => Some(text),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(body.get(..e.valid_up_to())?).ok(),
        Err(_) => None,
    }
}

/// Calls `check(label, value, place)` on every input until it returns a finding, which is
/// returned. Values redaction masked are skipped (secrets, not attacks), and so is
/// `Authorization` (redacted whole). Past [`MAX_VALUES`] the walk stops, and with
/// `report_limit` the request itself is the finding (one rule reports it, not every one).
pub fn walk(
    v: &View,
    report_limit: bool,
    check: impl FnMut(&dyn Fn() -> String, &str, Place<'_>) -> Option<Value>,
) -> Option<Value> {
    let found = walk_all(v, check)?;
    (report_limit || found.get("kind").and_then(Value::as_str) != Some("inspection_limit"))
        .then_some(found)
}

fn walk_all(
    v: &View,
    mut check: impl FnMut(&dyn Fn() -> String, &str, Place<'_>) -> Option<Value>,
) -> Option<Value> {
    let mut examined = 0usize;
    let mut visit = |label: &dyn Fn() -> String, value: &str, place: Place<'_>| {
        examined += 1;
        if examined > MAX_VALUES {
            return Some(
                json!({ "kind": "inspection_limit", "input": "request", "limit": MAX_VALUES }),
            );
        }
        if value.starts_with("[REDACTED:") {
            return None;
        }
        check(label, value, place)
    };
    for (name, value) in v.params() {
        if let Some(hit) = visit(&|| format!("query.{name}"), value, Place::Param(Some(name))) {
            return Some(hit);
        }
        if let Some(hit) = visit(&|| "query_name".to_owned(), name, Place::Param(None)) {
            return Some(hit);
        }
    }
    for (i, segment) in v.path.split('/').filter(|s| !s.is_empty()).enumerate() {
        if let Some(hit) = visit(&|| format!("path[{i}]"), segment, Place::Param(None)) {
            return Some(hit);
        }
    }
    if let Some(request) = v.event.request.as_ref() {
        // Live, cookies come raw from the tap (the event has them redacted whole), once however
        // many Cookie headers there were.
        let raw_cookies = std::cell::Cell::new(!v.request_cookie.is_empty());
        for header in request.headers.iter() {
            // Lowered on the stack: three rules walk every header of every exchange.
            let hit = crate::event::with_lower_case(&header.name, |name| {
                if name == "cookie" {
                    let cookies = if raw_cookies.replace(false) {
                        v.request_cookie
                    } else if v.request_cookie.is_empty() {
                        header.value.as_ref()
                    } else {
                        return None;
                    };
                    for pair in cookies.split(';') {
                        let (cookie, value) = pair.split_once('=').unwrap_or((pair, ""));
                        let cookie = cookie.trim();
                        if let Some(hit) =
                            visit(&|| format!("cookie.{cookie}"), value, Place::Cookie)
                        {
                            return Some(hit);
                        }
                    }
                    None
                } else if name != "authorization" && name != "proxy-authorization" {
                    visit(
                        &|| format!("header.{name}"),
                        &header.value,
                        Place::Header(name),
                    )
                } else {
                    None
                }
            });
            if hit.is_some() {
                return hit;
            }
        }
    }
    // XML is read whole (a form reader would split it at its attributes' `=`); JSON and form
    // bodies field by field; other text (no Content-Type, text/*, *xml) as raw text. Binary
    // uploads are not read: decoding kilobytes of them per request cost ~4 µs an exchange on
    // the recorded corpus and carries none of the constructs the rules look for.
    let body = v.request_body;
    let xml = body.trim_ascii_start().first() == Some(&b'<');
    let content_type = v
        .event
        .request
        .as_ref()
        .and_then(|r| r.headers.get("content-type"))
        .unwrap_or("");
    let textual = content_type.is_empty()
        || content_type.starts_with("text/")
        || content_type.contains("xml");
    if !xml {
        for (path, value) in v.body_inputs() {
            if let Some(hit) = visit(&|| path.clone(), value, Place::Body) {
                return Some(hit);
            }
        }
    }
    if !body.is_empty()
        && (xml || textual)
        && (xml || v.body_inputs().is_empty())
        && let Some(text) = utf8_prefix(body)
    {
        let label = if xml { "body.xml" } else { "body.raw" };
        if let Some(hit) = visit(&|| label.to_owned(), text, Place::RawBody) {
            return Some(hit);
        }
    }
    None
}
