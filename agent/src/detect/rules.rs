//! Stateless rules: each looks at one exchange and returns its evidence (redacted: only values
//! the event already shows, or the kind of thing found) when it fires.

use serde_json::{Value, json};

use std::borrow::Cow;

use super::{
    inputs::{self, Place},
    view::{View, percent_decode, percent_decode_cow},
};
use crate::classify::{card_brand, digit_runs, valid_ssn};

/// AUTH-1: a JWT with `alg` none or missing was accepted (2xx).
pub fn auth1_jwt_alg(v: &View) -> Option<Value> {
    let jwt = v.jwt?;
    let alg = jwt.alg.as_deref();
    let unsigned = alg.is_none_or(|a| a.eq_ignore_ascii_case("none"));
    (unsigned && v.success()).then(|| json!({ "jwt_alg": alg, "status": v.status }))
}

/// AUTH-2: an expired (or not yet valid) JWT was accepted; 60 s of clock skew allowed.
pub fn auth2_jwt_time(v: &View) -> Option<Value> {
    let jwt = v.jwt?;
    if !v.success() {
        return None;
    }
    let now = v.epoch_ms / 1000;
    if let Some(exp) = jwt.exp
        && exp + 60 < now
    {
        return Some(json!({ "problem": "expired", "exp": exp, "seconds_past": now - exp }));
    }
    if let Some(nbf) = jwt.nbf
        && nbf > now + 60
    {
        return Some(json!({ "problem": "not_yet_valid", "nbf": nbf }));
    }
    None
}

/// AUTH-5: credentials in the URL (a query parameter redaction masked), or Basic auth over
/// plain HTTP.
pub fn auth5_credentials_exposed(v: &View) -> Option<Value> {
    let in_url: Vec<String> = v
        .params()
        .iter()
        .filter(|(_, value)| value.starts_with("[REDACTED:"))
        .map(|(k, _)| k.clone())
        .collect();
    if !in_url.is_empty() {
        return Some(json!({ "problem": "credentials_in_url", "parameters": in_url }));
    }
    let basic = v
        .authorization
        .and_then(|a| a.get(..6))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "));
    (basic && !v.tls).then(|| json!({ "problem": "basic_auth_without_tls" }))
}

/// DATA-2: card numbers (issuer prefix + Luhn) or SSNs in the path or query.
pub fn data2_sensitive_in_url(v: &View) -> Option<Value> {
    let mut found = Vec::new();
    // Borrowed unless the path has escapes: this runs on every request.
    let path = super::view::percent_decode_cow(v.path);
    let texts =
        std::iter::once(path.as_ref()).chain(v.params().iter().map(|(_, value)| value.as_str()));
    for text in texts {
        for run in digit_runs(text) {
            if let Some(brand) = card_brand(run) {
                found.push(format!("card:{brand}"));
            } else if valid_ssn(run) {
                found.push("ssn".to_owned());
            }
        }
    }
    found.sort();
    found.dedup();
    (!found.is_empty()).then(|| json!({ "kinds": found }))
}

/// Bytes of one value given to libinjection (the body tap bounds bodies already).
const MAX_INJ1_VALUE_BYTES: usize = 8192;

/// A value as the application will most likely read it: URL-decoded again while that reveals
/// syntax (double encoding is an evasion; three rounds at most) and `%uXXXX` escapes resolved,
/// bounded to [`MAX_INJ1_VALUE_BYTES`]. Query values and names arrive decoded once already.
fn decoded_for_inj1<'v>(value: &'v str, place: Place<'_>) -> Cow<'v, str> {
    let mut end = value.len().min(MAX_INJ1_VALUE_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let bounded = value.get(..end).unwrap_or_default();
    let mut current = if matches!(place, Place::Param(Some(_))) {
        Cow::Borrowed(bounded)
    } else {
        percent_decode_cow(bounded)
    };
    for _ in 0..2 {
        if !current.contains('%') {
            break;
        }
        let next = super::inject::decode_percent_u(&current);
        let next = percent_decode(&next);
        // Another round only when it reveals syntax (a quote, angle bracket, parenthesis,
        // semicolon, backtick or comment dash): `80%25 wool` stays as the user typed it.
        if syntax_bytes(&next) <= syntax_bytes(&current) {
            break;
        }
        current = Cow::Owned(next);
    }
    // `\x27` and `\u0027` escapes, when they hide syntax (a language's string escapes).
    let unescaped = super::inject::decode_backslash_hex(&current);
    if matches!(unescaped, Cow::Owned(_)) && syntax_bytes(&unescaped) > syntax_bytes(&current) {
        current = Cow::Owned(unescaped.into_owned());
    }
    current
}

fn syntax_bytes(text: &str) -> usize {
    text.bytes()
        .filter(|b| {
            matches!(
                b,
                b'\'' | b'"' | b'<' | b'>' | b'(' | b')' | b';' | b'`' | b'-'
            )
        })
        .count()
}

/// Headers whose grammar the server parses itself (media types, languages, dates, sizes,
/// validators, hosts): a value there never reaches a query or a page as text. `q=0.9` in
/// Accept would otherwise send every browser request through libinjection.
pub(crate) const STRUCTURED_HEADERS: [&str; 16] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "connection",
    "content-length",
    "content-type",
    "date",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
    "range",
    "te",
];

/// Header and cookie values reach libinjection only when they hold a byte no SQL or script
/// payload can do without in a header (a quote, a backtick, `<`, `=`, a backslash, a comment
/// opener or a call), or an escape that may hide one: browsers' User-Agents, Accept and date headers mostly fail it. Measured
/// on 6,936 real browser User-Agents in tests/detect_corpus.rs.
fn header_may_inject(value: &str) -> bool {
    use memchr::{memchr3, memmem};
    let b = value.as_bytes();
    memchr3(b'\'', b'"', b'`', b).is_some()
        || memchr3(b'<', b'=', b'\\', b).is_some()
        || memchr::memchr(b'%', b).is_some()
        || memmem::find(b, b"--").is_some()
        || memmem::find(b, b"/*").is_some()
        || b.windows(2)
            .any(|w| w.first().is_some_and(u8::is_ascii_alphanumeric) && w.get(1) == Some(&b'('))
}

/// Whether libinjection can skip `value`: letters, digits and `_` alone form no SQL injection
/// or script in any of the contexts it tries (checked against its own attack samples and
/// generated probes in tests/detect_corpus.rs; `-`, `.` and `~` are operators to it, as in
/// `1or-1` or `~1union`). Most ids, words and numbers in paths and parameters are such.
pub fn plain_token(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// SQL words without which text of letters, spaces and sentence punctuation is no injection.
/// `null`, `true`, `false`, `case` and `limit` are here because libinjection reads `null or x`,
/// `case null x` and `true limit x` as injections (found by `plain_prose_is_never_an_injection`).
const STATEMENT_WORDS: [&str; 22] = [
    "union",
    "select",
    "insert",
    "update",
    "delete",
    "drop",
    "exec",
    "sleep",
    "benchmark",
    "waitfor",
    "having",
    "truncate",
    "declare",
    "alter",
    "shutdown",
    "procedure",
    "into",
    "null",
    "true",
    "false",
    "limit",
    "case",
];

/// Whether libinjection can skip prose: letters (any script), spaces and `.,!?:` only, without
/// a digit, quote, operator or bracket, and no SQL statement word — no SQL injection nor script
/// is made of that. Reviews, names, addresses and descriptions are mostly such, and
/// libinjection's tokenizer (a keyword lookup per word) is the largest detection cost on them.
pub fn plain_prose(value: &str) -> bool {
    static WORDS: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    let worded = value.bytes().all(|b| {
        b.is_ascii_alphabetic()
            || b >= 0x80
            || matches!(
                b,
                b' ' | b'.' | b',' | b'!' | b'?' | b':' | b'\n' | b'\r' | b'\t'
            )
    });
    worded && {
        #[allow(clippy::expect_used)] // constant words, built by the tests
        let words = WORDS.get_or_init(|| {
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(STATEMENT_WORDS)
                .expect("static words build")
        });
        !words.is_match(value)
    }
}

/// What AUTH-3 found wrong with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    NoExpiry,
    LongLived { lifetime_secs: i64 },
}

impl TokenProblem {
    pub fn evidence(self) -> Value {
        match self {
            TokenProblem::NoExpiry => json!({ "problem": "no_expiry" }),
            TokenProblem::LongLived { lifetime_secs } => {
                json!({ "problem": "long_lived", "lifetime_secs": lifetime_secs })
            }
        }
    }
}

/// AUTH-3: an accepted JWT that never expires, or lives longer than `max_lifetime_secs`.
/// Typed, not JSON: a client with such a token trips it on every request, and all but the
/// first in each dedup window are suppressed, so the evidence is written only when reported.
pub fn auth3_token_hygiene(v: &View, max_lifetime_secs: i64) -> Option<TokenProblem> {
    let jwt = v.jwt?;
    if !v.success() {
        return None;
    }
    match (jwt.exp, jwt.iat) {
        (None, _) => Some(TokenProblem::NoExpiry),
        (Some(exp), Some(iat)) if exp - iat > max_lifetime_secs => Some(TokenProblem::LongLived {
            lifetime_secs: exp - iat,
        }),
        _ => None,
    }
}

/// INJ-1: SQL injection or XSS by libinjection (its fingerprint as evidence) in every location
/// of the request but the raw body: query values and names, path segments, header values,
/// cookies and body fields, each decoded as the application will read it.
pub fn inj1_sqli_xss(v: &View) -> Option<Value> {
    inputs::walk(v, false, inj1_value)
}

/// INJ-1 on one input (`label` names it in the evidence).
pub fn inj1_value(label: &dyn Fn() -> String, value: &str, place: Place<'_>) -> Option<Value> {
    if place == Place::RawBody
        || value.len() < 2
        || match place {
            Place::Header(name) => STRUCTURED_HEADERS.contains(&name) || !header_may_inject(value),
            Place::Cookie => !header_may_inject(value),
            _ => false,
        }
    {
        return None;
    }
    let value = decoded_for_inj1(value, place);
    if plain_token(&value) || plain_prose(&value) {
        return None;
    }
    let (evidence, matched) = judge_inj1(&value, place, label)?;
    Some(inputs::with_matched(evidence, matched, place))
}

/// INJ-1's evidence for one decoded value, and the part of it shown as `matched` (the line,
/// in multi-line text).
fn judge_inj1<'v>(
    value: &'v str,
    place: Place<'_>,
    label: &dyn Fn() -> String,
) -> Option<(Value, &'v str)> {
    if place == Place::Body && value.bytes().filter(|b| *b == b'\n').count() >= 2 {
        return multi_line_injection(value).map(|(kind, fingerprint, line)| {
            (
                json!({ "kind": kind, "input": label(), "fingerprint": fingerprint }),
                line,
            )
        });
    }
    let sqli = libinjectionrs::detect_sqli(value.as_bytes());
    if sqli.is_injection() {
        let fingerprint = sqli.fingerprint.map(|f| f.to_string());
        let evidence = json!({ "kind": "sqli", "input": label(), "fingerprint": fingerprint });
        return Some((with_requested_delay(evidence, value), value));
    }
    if libinjectionrs::detect_xss(value.as_bytes()).is_injection()
        || (xss_candidate(value) && xss_construct(&super::inject::normalise(value)))
    {
        return Some((json!({ "kind": "xss", "input": label() }), value));
    }
    // What libinjection's fingerprints do not cover (sql.rs).
    super::sql::structure(value).map(|construct| {
        let evidence = json!({ "kind": "sqli", "input": label(), "construct": construct });
        (with_requested_delay(evidence, value), value)
    })
}

/// SQL evidence with the delay a time-delay payload asks for, which the response's latency can
/// confirm (corroborate.rs).
fn with_requested_delay(mut evidence: Value, payload: &str) -> Value {
    if let (Some(ms), Some(fields)) = (
        super::corroborate::requested_delay_ms(payload),
        evidence.as_object_mut(),
    ) {
        fields.insert("requested_delay_ms".into(), json!(ms));
    }
    evidence
}

/// Positions in `lower` (lower case) where an inline event handler starts: `on`, at least three
/// letters, then `=` (spaces allowed before it).
pub(crate) fn event_handlers(lower: &str) -> impl Iterator<Item = usize> + '_ {
    lower
        .match_indices("on")
        .map(|(at, _)| at)
        .filter(move |&at| {
            let rest = lower.get(at + 2..).unwrap_or_default();
            let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            name_len >= 3
                && rest
                    .get(name_len..)
                    .is_some_and(|after| after.trim_start().starts_with('='))
        })
}

/// The decoded value INJ-1 judged at `label` (an evidence `input`), for corroboration: found
/// again by walking the request, so evidence never has to carry the payload itself.
pub fn inj1_input_value(v: &View, label: &str) -> Option<String> {
    inputs::walk(v, false, |at, value, place| {
        (at() == label).then(|| Value::String(decoded_for_inj1(value, place).into_owned()))
    })
    .and_then(|found| found.as_str().map(str::to_owned))
}

/// libinjection's fingerprint letters that only SQL has: UNION (`U`), a statement such as
/// SELECT or INSERT (`E`), a comment (`c`) or a known-evil construct (`X`).
const SQL_ONLY_TOKENS: [char; 4] = ['U', 'E', 'c', 'X'];

/// Multi-line text in a body field (source code, prose, rich text): libinjection reads one
/// value as one SQL or HTML fragment, and on code it finds strings, operators and calls
/// everywhere (55 of 12,000 benign requests in tests/detect_corpus.rs were code snippets
/// flagged that way). Each line is judged alone, and a line counts as SQL only when its
/// fingerprint holds a construct only SQL has, as script only when libinjection flags it and
/// it holds a script element, a `javascript:` URL or an event handler.
fn multi_line_injection(value: &str) -> Option<(&'static str, Option<String>, &str)> {
    for line in value.lines().filter(|l| l.len() >= 2 && !plain_prose(l)) {
        let sqli = libinjectionrs::detect_sqli(line.as_bytes());
        if sqli.is_injection()
            && let Some(fingerprint) = sqli.fingerprint.map(|f| f.to_string())
            && fingerprint.contains(SQL_ONLY_TOKENS)
        {
            return Some(("sqli", Some(fingerprint), line));
        }
        if libinjectionrs::detect_xss(line.as_bytes()).is_injection() && script_construct(line) {
            return Some(("xss", None, line));
        }
    }
    None
}

/// Whether a value may hide a script construct: a tag or an escape, a scheme with a colon, or
/// a quote before a call.
fn xss_candidate(value: &str) -> bool {
    let b = value.as_bytes();
    let scheme = |s: &[u8]| {
        memchr::memmem::find_iter(b, b":").any(|at| {
            at + 1 >= s.len()
                && b.get(at + 1 - s.len()..=at)
                    .is_some_and(|w| w.eq_ignore_ascii_case(s))
        })
    };
    memchr::memchr3(b'<', b'%', b'&', b).is_some()
        || scheme(b"script:")
        || scheme(b"data:")
        || (memchr::memchr2(b'\'', b'"', b).is_some() && memchr::memchr(b'(', b).is_some())
}

/// Script constructs libinjection's HTML5 tokenizer lets through (filter-evasion forms:
/// `<scr<script>ipt>`, `oneonerrorrror=`, `onerror/=`, a tag whose letters are escaped, a
/// `data:text/html` URL, a string broken out of into a call). `lower` is normalised (decoded,
/// entities resolved, lower case).
fn xss_construct(lower: &str) -> bool {
    static P: std::sync::OnceLock<(regex::Regex, regex::Regex)> = std::sync::OnceLock::new();
    let (handler, breakout) = P.get_or_init(|| {
        (
            crate::classify::static_regex(r#"<[a-z!/?][^>]*?[\s/"'`](on[a-z]{3,})\s*/?\s*="#),
            crate::classify::static_regex(
                r#"['"]\s*[-+;,|&*/]\s*(?:alert|prompt|confirm|eval|fetch|import)\s*\("#,
            ),
        )
    });
    let script_url = |text: &str| {
        text.contains("<script")
            || text.contains("javascript:")
            || text.contains("vbscript:")
            || text.contains("data:text/html")
    };
    if script_url(lower) || handler.is_match(lower) || breakout.is_match(lower) {
        return true;
    }
    // Browsers drop tabs and line breaks inside a URL's scheme (`jav&#x09;ascript:`), and an
    // XML parser joins CDATA sections (`<![CDATA[<]]>script`): judged once more without them.
    if lower.contains(['\t', '\n', '\r']) || lower.contains("<![cdata[") {
        let joined = lower
            .replace("<![cdata[", "")
            .replace("]]>", "")
            .replace(['\t', '\n', '\r'], "");
        return script_url(&joined);
    }
    false
}

/// A script element, a `javascript:` URL or an inline event handler (`on…=`).
fn script_construct(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    lower.contains("<script")
        || lower.contains("javascript:")
        || event_handlers(&lower).any(|at| {
            lower
                .get(..at)
                .is_some_and(|before| before.ends_with([' ', '/', '"', '\'']))
        })
}

/// INJ-2: path traversal / file inclusion, shell command injection, NoSQL operators, in every
/// location (system_inject.rs).
pub fn inj2_traversal_command_nosql(v: &View) -> Option<Value> {
    super::system_inject::inj2(v)
}

/// Whether a URL or host in a parameter points at cloud metadata, loopback or a private range.
pub fn internal_target(value: &str) -> Option<&'static str> {
    let lower = value.trim().to_ascii_lowercase();
    let rest = lower.split_once("://").map_or(lower.as_str(), |(_, r)| r);
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() || (!lower.contains("://") && !host.contains('.') && host != "localhost") {
        return None;
    }
    if host == "169.254.169.254" || host == "metadata.google.internal" || host == "fd00:ec2::254" {
        return Some("cloud_metadata");
    }
    if host == "localhost" || host == "::1" || host.starts_with("127.") || host == "0.0.0.0" {
        return Some("loopback");
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) if ip.is_private() || ip.is_link_local() => Some("private"),
        Ok(std::net::IpAddr::V6(ip)) if (ip.segments()[0] & 0xfe00) == 0xfc00 => Some("private"),
        _ => None,
    }
}

/// SSRF-1: a parameter that looks like a URL or host pointing inside.
pub fn ssrf1_internal_url(v: &View) -> Option<Value> {
    v.params().iter().find_map(|(k, value)| {
        internal_target(value)
            .map(|target| json!({ "input": format!("query.{k}"), "target": target }))
    })
}

const SCANNERS: [&str; 14] = [
    "sqlmap",
    "nikto",
    "nuclei",
    "gobuster",
    "dirbuster",
    "ffuf",
    "wfuzz",
    "masscan",
    "zgrab",
    "wpscan",
    "acunetix",
    "nessus",
    "openvas",
    "burpcollaborator",
];

/// SCAN-1: a known scanner's User-Agent (one case-insensitive pass over it).
pub fn scan1_scanner(v: &View) -> Option<Value> {
    static SCANNER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = SCANNER
        .get_or_init(|| crate::classify::static_regex(&format!("(?i){}", SCANNERS.join("|"))));
    let found = re.find(v.user_agent)?.as_str().to_ascii_lowercase();
    SCANNERS
        .iter()
        .find(|s| **s == found)
        .map(|s| json!({ "scanner": s }))
}

/// CFG-2: CORS that lets any origin read credentialed responses; or an HTML page served over
/// TLS without HSTS (security-header posture).
pub fn cfg2_cors(v: &View) -> Option<Value> {
    if let Some(origin) = v.response_header("access-control-allow-origin") {
        let credentials = v
            .response_header("access-control-allow-credentials")
            .is_some_and(|c| c.eq_ignore_ascii_case("true"));
        if (origin == "*" || origin == "null") && credentials {
            return Some(
                json!({ "problem": "cors_any_origin_with_credentials", "allow_origin": origin }),
            );
        }
    }
    let html = v
        .response_header("content-type")
        .is_some_and(|t| t.starts_with("text/html"));
    (v.tls && v.success() && html && v.response_header("strict-transport-security").is_none())
        .then(|| json!({ "problem": "missing_header", "header": "strict-transport-security" }))
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
