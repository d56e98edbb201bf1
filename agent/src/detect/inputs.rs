//! Every location of a request an attacker controls, walked once for the rules that read them
//! ([`walk_rules`]; [`walk`] for one rule): query values and names, path segments, header
//! values, cookies, body fields and (for rules that read it) the raw body. Each value comes with a label naming its location (`query.id`,
//! `query_name`, `path[2]`, `header.user-agent`, `cookie.session`, `body.json./a/b`,
//! `body.form.q`, `body.xml`, `body.raw`), made only when a rule fires.

use serde_json::{Value, json};

use super::{RuleId, clean_values::CleanValues, view::View};

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

/// A rule's judgement of one input: a finding, or None when the value is clean for the rule.
/// It may read only the value and its place — [`walk_rules`] remembers clean values by them.
pub type ValueCheck<'c> = dyn FnMut(&dyn Fn() -> String, &str, Place<'_>) -> Option<Value> + 'c;

/// One rule in a shared walk ([`walk_rules`]) and what it found.
pub struct Check<'c> {
    /// The rule's bit in [`CleanValues`] masks; 0 when its clean values are not remembered.
    bit: u64,
    report_limit: bool,
    check: &'c mut ValueCheck<'c>,
    /// Done: found something, or not to be asked again.
    done: bool,
    pub found: Option<Value>,
}

impl<'c> Check<'c> {
    /// `rule`'s check; with `report_limit` this rule reports a request past [`MAX_VALUES`].
    pub fn new(rule: RuleId, report_limit: bool, check: &'c mut ValueCheck<'c>) -> Self {
        Self {
            bit: 1 << rule as u64,
            report_limit,
            check,
            done: false,
            found: None,
        }
    }

    /// The rule's finding, decided before the walk (or None: the rule is off); not asked.
    pub fn settle(&mut self, found: Option<Value>) {
        self.found = found;
        self.done = true;
    }
}

const _: () = assert!(
    super::CATALOGUE.len() <= 64,
    "a rule's bit must fit a u64 mask"
);

/// Calls `check(label, value, place)` on every input until it returns a finding, which is
/// returned. Values redaction masked are skipped (secrets, not attacks), and so is
/// `Authorization` (redacted whole). Past [`MAX_VALUES`] the walk stops, and with
/// `report_limit` the request itself is the finding (one rule reports it, not every one).
pub fn walk(
    v: &View,
    report_limit: bool,
    mut check: impl FnMut(&dyn Fn() -> String, &str, Place<'_>) -> Option<Value>,
) -> Option<Value> {
    let mut one = [Check {
        bit: 0,
        report_limit,
        check: &mut check,
        done: false,
        found: None,
    }];
    walk_rules(v, None, &mut one);
    let [only] = one;
    only.found
}

/// [`walk`] for several rules at once: the request's inputs are walked once, each value asked
/// of every rule that has found nothing yet (so each rule's finding is its first, as alone).
/// With `memo`, a value a rule found clean before at the same place is not asked again.
pub fn walk_rules(v: &View, mut memo: Option<&mut CleanValues>, checks: &mut [Check<'_>]) {
    if checks.iter().all(|c| c.done) {
        return;
    }
    let mut examined = 0usize;
    walk_all(v, |label, value, place| {
        examined += 1;
        if examined > MAX_VALUES {
            for c in checks.iter_mut().filter(|c| !c.done) {
                c.settle(c.report_limit.then(|| {
                    json!({ "kind": "inspection_limit", "input": "request", "limit": MAX_VALUES })
                }));
            }
            return true;
        }
        if value.starts_with("[REDACTED:") {
            return false;
        }
        let known = memo.as_deref_mut().and_then(|m| m.lookup(place, value));
        let was_clean = known.map_or(0, |(clean, _)| clean);
        let mut clean = was_clean;
        for c in checks
            .iter_mut()
            .filter(|c| !c.done && c.bit & was_clean == 0)
        {
            match (c.check)(label, value, place) {
                Some(found) => c.settle(Some(found)),
                None => clean |= c.bit,
            }
        }
        if let (Some(memo), Some((_, key))) = (memo.as_deref_mut(), known)
            && clean != was_clean
        {
            memo.remember(key, place, value, clean);
        }
        checks.iter().all(|c| c.done)
    });
}

/// Calls `visit(label, value, place)` on every input until it returns true (stop).
fn walk_all(v: &View, mut visit: impl FnMut(&dyn Fn() -> String, &str, Place<'_>) -> bool) {
    for (name, value) in v.params() {
        if visit(&|| format!("query.{name}"), value, Place::Param(Some(name))) {
            return;
        }
        if visit(&|| "query_name".to_owned(), name, Place::Param(None)) {
            return;
        }
    }
    for (i, segment) in v.path.split('/').filter(|s| !s.is_empty()).enumerate() {
        if visit(&|| format!("path[{i}]"), segment, Place::Param(None)) {
            return;
        }
    }
    if let Some(request) = v.event.request.as_ref() {
        // Live, cookies come raw from the tap (the event has them redacted whole), once however
        // many Cookie headers there were.
        let raw_cookies = std::cell::Cell::new(!v.request_cookie.is_empty());
        for header in request.headers.iter() {
            // Names are lower case (the event's headers keep them so).
            let name = header.name.as_ref();
            let stop = if name == "cookie" {
                let cookies = if raw_cookies.replace(false) {
                    Some(v.request_cookie)
                } else if v.request_cookie.is_empty() {
                    Some(header.value.as_ref())
                } else {
                    None
                };
                cookies.is_some_and(|cookies| {
                    cookies.split(';').any(|pair| {
                        let (cookie, value) = pair.split_once('=').unwrap_or((pair, ""));
                        let cookie = cookie.trim();
                        visit(&|| format!("cookie.{cookie}"), value, Place::Cookie)
                    })
                })
            } else if name != "authorization" && name != "proxy-authorization" {
                visit(
                    &|| format!("header.{name}"),
                    &header.value,
                    Place::Header(name),
                )
            } else {
                false
            };
            if stop {
                return;
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
            if visit(&|| path.clone(), value, Place::Body) {
                return;
            }
        }
    }
    if !body.is_empty()
        && (xml || textual)
        && (xml || v.body_inputs().is_empty())
        && let Some(text) = utf8_prefix(body)
    {
        let label = if xml { "body.xml" } else { "body.raw" };
        visit(&|| label.to_owned(), text, Place::RawBody);
    }
}
