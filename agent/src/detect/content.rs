//! Body content for the rules: a bounded tap of request and response bodies that the rules
//! read and the events never show (unless body prefixes are opted in), decompressed when the
//! response says gzip or deflate. DATA-1 (sensitive data in responses, validated) and CFG-1
//! (stack traces and database errors in responses) live here.

use std::{borrow::Cow, sync::OnceLock};

use regex::Regex;
use serde_json::{Value, json};

use crate::classify::{card_brand, digit_runs, entropy, iban_candidates, valid_iban, valid_ssn};

/// Decoded bodies are cut here (a gzip bomb in a prefix stays small).
const MAX_DECODED: usize = 64 * 1024;

/// What the rules read of one exchange beside its event: the body bytes, borrowed from the
/// captured prefixes (or a replayed event), owned only when a response had to be inflated; and
/// the request's Cookie header as it was sent, which the event carries redacted whole.
#[derive(Debug, Default, Clone)]
pub struct Bodies<'a> {
    pub request: Cow<'a, [u8]>,
    pub response: Cow<'a, [u8]>,
    /// Empty when the request had no Cookie header, or in replay (the JSON has it redacted).
    pub request_cookie: Cow<'a, str>,
}

impl<'a> Bodies<'a> {
    /// From raw captured prefixes; the response is inflated per its Content-Encoding.
    pub fn from_raw(
        request: &'a [u8],
        response: &'a [u8],
        response_encoding: Option<&str>,
    ) -> Self {
        let response = match response_encoding.map(str::trim) {
            Some(e) if e.eq_ignore_ascii_case("gzip") => {
                Cow::Owned(inflate(flate2::read::GzDecoder::new(response)))
            }
            Some(e) if e.eq_ignore_ascii_case("deflate") => {
                // RFC 9110's "deflate" is zlib; some servers send raw deflate.
                let zlib = inflate(flate2::read::ZlibDecoder::new(response));
                Cow::Owned(if zlib.is_empty() {
                    inflate(flate2::read::DeflateDecoder::new(response))
                } else {
                    zlib
                })
            }
            _ => Cow::Borrowed(response),
        };
        Self {
            request: Cow::Borrowed(request),
            response,
            request_cookie: Cow::Borrowed(""),
        }
    }

    /// The Cookie header value(s) as the server received them, for the injection rules.
    pub fn with_request_cookie(mut self, cookie: Cow<'a, str>) -> Self {
        self.request_cookie = cookie;
        self
    }

    /// From a (replayed) event: whatever body prefixes it carries.
    pub fn from_event(event: &'a crate::event::ExchangeEvent<'a>) -> Self {
        Self {
            request: Cow::Borrowed(
                event
                    .request
                    .as_ref()
                    .map_or("", |r| r.body_prefix.as_ref())
                    .as_bytes(),
            ),
            response: Cow::Borrowed(
                event
                    .response
                    .as_ref()
                    .map_or("", |r| r.body_prefix.as_ref())
                    .as_bytes(),
            ),
            request_cookie: Cow::Borrowed(""),
        }
    }
}

/// Reads what a decoder yields from a (possibly truncated) stream, up to MAX_DECODED.
fn inflate(mut decoder: impl std::io::Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while out.len() < MAX_DECODED {
        match decoder.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(
                chunk
                    .get(..n.min(MAX_DECODED - out.len()))
                    .unwrap_or_default(),
            ),
        }
    }
    out
}

/// String leaves of a JSON body, or the fields of a form body, or nothing.
pub fn body_inputs(body: &[u8]) -> Vec<(String, String)> {
    if body.starts_with(b"--") {
        return super::multipart::fields(body);
    }
    let trimmed = body.trim_ascii_start();
    if trimmed.first().is_some_and(|b| *b == b'{' || *b == b'[') {
        if let Ok(v) = serde_json::from_slice::<Value>(trimmed) {
            let mut out = Vec::new();
            leaves(&v, "body", &mut out);
            return out;
        }
        return Vec::new();
    }
    let text = crate::classify::text(body);
    if text.contains('=') && !text.contains('\n') {
        return text
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| {
                (
                    format!("body.{}", super::view::percent_decode(k)),
                    super::view::percent_decode(v),
                )
            })
            .collect();
    }
    Vec::new()
}

fn leaves(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    if out.len() >= 256 {
        return;
    }
    match v {
        Value::String(s) => out.push((path.to_owned(), s.clone())),
        Value::Array(items) => items.iter().for_each(|i| leaves(i, path, out)),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, i)| leaves(i, &format!("{path}.{k}"), out)),
        _ => {}
    }
}

/// Keys by pattern; word boundaries are ASCII so the lazy DFA never gives up on UTF-8 text.
const KEYS: [(&str, &str); 6] = [
    (
        "aws_access_key",
        r"(?-u:\b)(?:AKIA|ASIA)[0-9A-Z]{16}(?-u:\b)",
    ),
    ("gcp_api_key", r"(?-u:\b)AIza[0-9A-Za-z_-]{35}(?-u:\b)"),
    ("github_token", r"(?-u:\b)gh[pousr]_[A-Za-z0-9]{36}(?-u:\b)"),
    (
        "slack_token",
        r"(?-u:\b)xox[baprs]-[A-Za-z0-9-]{10,}(?-u:\b)",
    ),
    (
        "private_key",
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----",
    ),
    (
        "jwt",
        r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
    ),
];

/// Error disclosures, in the order CFG-1 reports them.
const ERRORS: [(&str, &str); 6] = [
    ("python_traceback", r"Traceback \(most recent call last\)"),
    (
        "java_stack_trace",
        r"(?m)^[ \t]*at [a-z][\w.$]+\.[\w$<>]+\([\w.]+(?::\d+)?\)",
    ),
    ("dotnet_exception", r"System\.[A-Za-z.]+Exception"),
    (
        "php_error",
        r"(?:Fatal error|Warning|Parse error): .+ in /.+ on line \d+",
    ),
    (
        "sql_error",
        r"(?i)(?:SQLSTATE\[|You have an error in your SQL syntax|ORA-\d{5}|PG::[A-Za-z]+Error|psycopg2\.errors\.|SQLiteException|unterminated quoted string)",
    ),
    ("node_stack_trace", r"(?m)^[ \t]*at .+ \(/.+\.js:\d+:\d+\)"),
];

/// One regex per pattern rather than a RegexSet: each has a literal the regex engine scans
/// for with memchr-class prefilters, which on ordinary bodies (none of them present) is far
/// faster than one automaton pass over every byte (measured: a RegexSet of the same patterns
/// was slower on 4 KiB text bodies).
struct Patterns {
    keys: Vec<Regex>,
    secret_member: Regex,
    errors: Vec<Regex>,
}

fn compiled(patterns: &[(&str, &str)]) -> Vec<Regex> {
    patterns
        .iter()
        .map(|(_, p)| crate::classify::static_regex(p))
        .collect()
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let r = crate::classify::static_regex;
        Patterns {
            keys: compiled(&KEYS),
            secret_member: r(
                r#"(?i)"[a-z_]*(?:secret|password|private_key|api_key|access_key)[a-z_]*"\s*:\s*"([^"]{16,})""#,
            ),
            errors: compiled(&ERRORS),
        }
    })
}

/// DATA-1: validated sensitive data in a response body.
pub fn data1_sensitive_in_response(text: &str) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    let p = patterns();
    let mut kinds: Vec<String> = Vec::new();
    // Cards, SSNs and IBANs all need digits: most of a body's bytes are skipped at once.
    if crate::classify::has_ascii_digit(text.as_bytes()) {
        for run in digit_runs(text) {
            if let Some(brand) = card_brand(run) {
                kinds.push(format!("card:{brand}"));
            } else if valid_ssn(run) {
                kinds.push("ssn".into());
            }
        }
        if iban_candidates(text).any(valid_iban) {
            kinds.push("iban".into());
        }
    }
    for ((kind, _), re) in KEYS.iter().zip(&p.keys) {
        if re.is_match(text) {
            kinds.push((*kind).into());
        }
    }
    // memchr's vector search: std's `contains(char)` went a word at a time over the tap
    // (~1 instruction a byte, 4 KiB of it on every judged response without a quote).
    if memchr::memchr(b'"', text.as_bytes()).is_some()
        && p.secret_member
            .captures_iter(text)
            .filter_map(|c| c.get(1))
            .any(|m| !m.as_str().starts_with("[REDACTED") && entropy(m.as_str()) >= 3.5)
    {
        kinds.push("high_entropy_secret".into());
    }
    kinds.sort();
    kinds.dedup();
    (!kinds.is_empty()).then(|| json!({ "kinds": kinds }))
}

/// CFG-1: a stack trace or a database error message in a response body (the first kind in
/// catalogue order when several occur).
pub fn cfg1_error_disclosure(text: &str) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    ERRORS
        .iter()
        .zip(&patterns().errors)
        .find(|(_, re)| re.is_match(text))
        .map(|((kind, _), _)| json!({ "kind": kind }))
}

#[cfg(test)]
#[path = "content_tests.rs"]
mod tests;
