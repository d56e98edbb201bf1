//! INJ-3: injection families libinjection's SQL/XSS fingerprints and INJ-2's traversal and
//! command checks do not cover — JNDI lookups (Log4Shell, obfuscated forms included),
//! Shellshock function definitions, server-side template and expression-language evaluation,
//! PHP object injection and stream wrappers, Java serialised objects, XML external entities,
//! CRLF (header/response splitting) and remote file inclusion — in every location an attacker
//! controls: query values and names, path segments, header values (User-Agent, Referer,
//! X-Forwarded-For, any custom header), cookies, body fields and the raw body.
//!
//! Each value is decoded as attackers expect servers to decode it (URL decoding twice, `%uXXXX`,
//! HTML entities) and lower-cased. Every signature needs a distinctive construct, never a
//! keyword alone, and one Aho-Corasick pass over each value finds whether any construct is
//! there at all: ordinary values cost that pass and nothing else.

use std::{borrow::Cow, sync::OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;
use serde_json::{Value, json};

use super::{
    inputs::{self, Place},
    view::View,
};

/// Bytes of one value examined (the body tap bounds bodies already).
const MAX_VALUE_BYTES: usize = 8192;

/// The family a construct belongs to, in the order the markers are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Jndi,
    Shellshock,
    Template,
    PhpObject,
    PhpWrapper,
    JavaSerialized,
    Xxe,
    Crlf,
    RemoteInclude,
    Ldap,
    Xpath,
}

impl Family {
    fn kind(self) -> &'static str {
        match self {
            Family::Jndi => "jndi_lookup",
            Family::Shellshock => "shellshock",
            Family::Template => "template_injection",
            Family::PhpObject => "php_object_injection",
            Family::PhpWrapper => "php_wrapper",
            Family::JavaSerialized => "java_deserialization",
            Family::Xxe => "xxe",
            Family::Crlf => "crlf_injection",
            Family::RemoteInclude => "remote_file_inclusion",
            Family::Ldap => "ldap_injection",
            Family::Xpath => "xpath_injection",
        }
    }
}

/// Literal markers (lower case) that must appear before a family's check runs.
const MARKERS: [(&str, Family); 29] = [
    ("${", Family::Jndi),
    ("() {", Family::Shellshock),
    ("(){", Family::Shellshock),
    ("{{", Family::Template),
    ("${", Family::Template),
    ("#{", Family::Template),
    ("*{", Family::Template),
    ("<%", Family::Template),
    ("{%", Family::Template),
    ("#assign", Family::Template),
    ("{php}", Family::Template),
    ("{$smarty", Family::Template),
    ("@(", Family::Template),
    ("t(java.", Family::Template),
    ("o:", Family::PhpObject),
    ("expect://", Family::PhpWrapper),
    ("phar://", Family::PhpWrapper),
    ("zip://", Family::PhpWrapper),
    ("data://", Family::PhpWrapper),
    ("ro0ab", Family::JavaSerialized),
    ("aced0005", Family::JavaSerialized),
    ("<!entity", Family::Xxe),
    ("\n", Family::Crlf),
    ("\r", Family::Crlf),
    ("://", Family::RemoteInclude),
    ("(|", Family::Ldap),
    ("(&", Family::Ldap),
    (")(", Family::Ldap),
    ("()", Family::Xpath),
];

struct Checks {
    markers: AhoCorasick,
    /// Log4j lookup wrappers that hide `jndi` (`${::-j}`, `${lower:n}`, `${env:X:-d}`).
    jndi_wrapper: Regex,
    jndi: Regex,
    shellshock: Regex,
    template: Regex,
    php_object: Regex,
    php_wrapper: Regex,
    xxe: Regex,
    crlf: Regex,
    url: Regex,
    ldap: Regex,
    xpath: Regex,
}

fn checks() -> &'static Checks {
    static C: OnceLock<Checks> = OnceLock::new();
    C.get_or_init(|| {
        let r = crate::classify::static_regex;
        #[allow(clippy::expect_used)] // constant markers, built by the tests
        let markers = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(MARKERS.iter().map(|(m, _)| m))
            .expect("static markers build");
        Checks {
            markers,
            jndi_wrapper: r(r"\$\{(?:[a-z0-9_]*:[a-z0-9_.]*:-|lower:|upper:|::-)([^${}]*)\}"),
            // The lookup itself: `${jndi:` is never ordinary text, whatever protocol follows.
            jndi: r(r"\$\{\s*jndi\s*:"),
            shellshock: r(r"\(\s*\)\s*\{[^}]{0,40};\s*\}\s*;"),
            // An expression opener, then (within the expression) arithmetic or a name that only
            // reaches into the runtime: introspection, process, file or template internals.
            template: r(concat!(
                r"(?:\{\{|[$#*]\{)[^}]{0,200}?(?:\d\s*[*+/-]\s*['\d]|__[a-z]+__|\.class\b|\bmro\b|",
                r"subclasses|getclass|forname|getruntime|processbuilder|java\.lang|\bos\.|system\s*\(|",
                r"popen|exec\s*\(|eval\s*\(|\bimport\b|freemarker|\bexecute\b|dump\s*\(|attr\s*\(|",
                r"filter\s*\(|\|\s*join|config\b|self\b|request\b|app\.|lipsum|cycler|joiner|",
                r"namespace|constructor|touppercase|\bfile\.|\bio\.)",
                r"|<%=?[^%]{0,200}?(?:\d\s*[*+/-]\s*\d|system|exec|eval|popen|`|file\.|io\.|open\s*\()",
                r"|\{%\s*(?:for|if|set|import|include|macro|raw)\b",
                r"|[<\[]#assign\b|\{php\}|\{\$smarty",
                r"|@\(\s*\d+\s*[*+/-]\s*\d+\s*\)",
                r"|t\(java\.lang\.(?:runtime|system|processbuilder)\)",
            )),
            php_object: r(r#"(?:^|[;{=&\s])o:\d{1,4}:"[a-z_\\][a-z0-9_\\]{0,100}":\d{1,4}:\{"#),
            php_wrapper: r(r"(?:expect|phar|zip)://\S|data://[a-z]+/[a-z.+-]+[;,]"),
            xxe: r(r"<!entity\s+(?:%\s*)?[\w.:-]+\s+(?:system|public)\b"),
            crlf: r(r"(?:\r\n|\r|\n)\s*(?:(?:set-cookie|location|content-type|content-length|x-[a-z-]+)\s*:|http/1\.[01]\s)"),
            url: r(r"^(?:https?|ftps?)://[^\s/?#]+(?:/[^\s?#]*)?(?:\?|%00|\x00)?$"),
            // A filter composed into the application's own: `*(|(mail=*))`, `*)(uid=*))(|(uid=*`,
            // `admin*)((|userpassword=*)`.
            ldap: r(concat!(
                r"\(\s*(?:[|&!]\s*\(|\(\s*[|&!])\s*[a-z][\w.-]{0,40}\s*[~<>]?=",
                r"|\)\s*\(\s*[|&!]?\s*[a-z][\w.-]{0,40}\s*[~<>]?=\s*\*",
            )),
            // A string broken out of into an XPath function (`' or name()='x`), an axis step
            // (`child::node()`), or a node count from the root.
            xpath: r(concat!(
                r#"['"]\s*(?:or|and)\s+(?:name|local-name|string-length|count|substring|contains|position|text|last)\s*\("#,
                r"|\b(?:child|descendant|descendant-or-self|ancestor|parent|following-sibling|preceding-sibling|self|attribute)::(?:node\(\)|text\(\)|\*)",
                r"|\bcount\s*\(\s*/",
            )),
        }
    })
}

/// Parameter names that include files in PHP-era applications: a URL in them is an inclusion.
const INCLUDE_NAMES: [&str; 16] = [
    "file", "page", "include", "inc", "template", "path", "document", "doc", "folder", "root",
    "pg", "style", "lang", "dir", "module", "conf",
];

/// `value` as servers and frameworks decode it: URL decoding up to three times, `%uXXXX`, HTML
/// entities, `\xNN` and `\uNNNN` escapes; lower case. Borrowed when there is nothing to decode
/// or lower (most values).
pub fn normalise(value: &str) -> Cow<'_, str> {
    let mut end = value.len().min(MAX_VALUE_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let bounded = value.get(..end).unwrap_or_default();
    let escaped = |b: u8| b == b'%' || b == b'&' || b == b'\\' || !b.is_ascii();
    if !bounded
        .bytes()
        .any(|b| escaped(b) || b.is_ascii_uppercase())
    {
        return Cow::Borrowed(bounded);
    }
    if !bounded.bytes().any(escaped) {
        return Cow::Owned(bounded.to_ascii_lowercase());
    }
    // `+` stays: query values were form-decoded once already, and nothing else means a space by it.
    let decode = |s: &str| super::view::percent_decode_escapes(s).into_owned();
    let mut twice = decode(&decode_percent_u(bounded));
    for _ in 0..2 {
        if !twice.contains('%') {
            break;
        }
        twice = decode(&twice);
    }
    let entities = if twice.contains('&') {
        decode_entities(&twice)
    } else {
        twice
    };
    Cow::Owned(decode_backslash_hex(&entities).to_lowercase())
}

/// `\xNN` and `\uNNNN` escapes (JavaScript, PHP, C strings), hex digits required: a Windows
/// path's `\new` or `\temp` stays as written.
pub(crate) fn decode_backslash_hex(text: &str) -> Cow<'_, str> {
    if !text.contains("\\x") && !text.contains("\\u") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        let digits = match after.as_bytes().first() {
            Some(b'x') => 2,
            Some(b'u') => 4,
            _ => 0,
        };
        let decoded = (digits > 0)
            .then(|| after.get(1..=digits))
            .flatten()
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match decoded {
            Some(c) => {
                out.push(c);
                rest = after.get(1 + digits..).unwrap_or_default();
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `%uXXXX` (IIS-style) escapes.
pub(crate) fn decode_percent_u(text: &str) -> Cow<'_, str> {
    if !text.contains("%u") && !text.contains("%U") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("%u").or_else(|| rest.find("%U")) {
        out.push_str(rest.get(..at).unwrap_or_default());
        let hex = rest.get(at + 2..at + 6);
        match hex
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32)
        {
            Some(c) => {
                out.push(c);
                rest = rest.get(at + 6..).unwrap_or_default();
            }
            None => {
                out.push_str("%u");
                rest = rest.get(at + 2..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// HTML character references: named ones attackers use and numeric ones.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        match entity(after) {
            Some((c, used)) => {
                out.push(c);
                rest = after.get(used..).unwrap_or_default();
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One character reference at the start of `after` (the text after `&`) and the bytes it
/// takes. Browsers resolve numeric references with or without `;` and the legacy named ones
/// (`lt`, `gt`, `amp`, `quot`) without it even inside a longer word (`&ltscript`), which
/// filter-evasion lists rely on; other names need their `;`.
fn entity(after: &str) -> Option<(char, usize)> {
    let b = after.as_bytes();
    if b.first() == Some(&b'#') {
        let hex = matches!(b.get(1), Some(b'x' | b'X'));
        let start = if hex { 2 } else { 1 };
        let digits = b
            .iter()
            .skip(start)
            .take_while(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count();
        if digits == 0 || digits > 8 {
            return None;
        }
        let code =
            u32::from_str_radix(after.get(start..start + digits)?, if hex { 16 } else { 10 })
                .ok()?;
        let semi = usize::from(b.get(start + digits) == Some(&b';'));
        return Some((char::from_u32(code)?, start + digits + semi));
    }
    let name_len = b.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    if name_len <= 10 && b.get(name_len) == Some(&b';') {
        let c = match after.get(..name_len)?.to_ascii_lowercase().as_str() {
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "amp" => '&',
            "colon" => ':',
            "sol" => '/',
            "lpar" => '(',
            "rpar" => ')',
            "newline" => '\n',
            "tab" => '\t',
            _ => return None,
        };
        return Some((c, name_len + 1));
    }
    let name = after.get(..name_len.min(4))?.to_ascii_lowercase();
    [("quot", '"'), ("amp", '&'), ("lt", '<'), ("gt", '>')]
        .into_iter()
        .find(|(legacy, _)| name.starts_with(legacy))
        .map(|(legacy, c)| (c, legacy.len()))
}

/// Log4j lookups with their hiding wrappers removed, innermost first (bounded rounds).
fn unwrap_lookups(text: &str) -> Cow<'_, str> {
    let c = checks();
    let mut current = Cow::Borrowed(text);
    for _ in 0..8 {
        let next = c.jndi_wrapper.replace_all(&current, "$1");
        if next == current {
            break;
        }
        current = Cow::Owned(next.into_owned());
    }
    current
}

/// The family whose construct `normalised` carries, if any.
fn family_of(normalised: &str, place: Place<'_>) -> Option<Family> {
    let c = checks();
    let mut seen = [false; MARKERS.len()];
    for m in c.markers.find_overlapping_iter(normalised) {
        if let Some(slot) = seen.get_mut(m.pattern().as_usize()) {
            *slot = true;
        }
    }
    let has = |family: Family| {
        MARKERS
            .iter()
            .zip(seen)
            .any(|((_, f), hit)| hit && *f == family)
    };
    if has(Family::Jndi) && c.jndi.is_match(&unwrap_lookups(normalised)) {
        return Some(Family::Jndi);
    }
    let line_breaks_are_attacks = !matches!(place, Place::Body | Place::RawBody);
    let checks_in_order = [
        (Family::Shellshock, &c.shellshock),
        (Family::Template, &c.template),
        (Family::PhpObject, &c.php_object),
        (Family::PhpWrapper, &c.php_wrapper),
        (Family::Xxe, &c.xxe),
        (Family::Crlf, &c.crlf),
        (Family::Ldap, &c.ldap),
        (Family::Xpath, &c.xpath),
    ];
    for (family, re) in checks_in_order {
        if (family != Family::Crlf || line_breaks_are_attacks)
            && has(family)
            && re.is_match(normalised)
        {
            return Some(family);
        }
    }
    if has(Family::JavaSerialized)
        && (normalised.starts_with("ro0ab") || normalised.starts_with("aced0005"))
    {
        return Some(Family::JavaSerialized);
    }
    if let Place::Param(name) = place
        && has(Family::RemoteInclude)
        && c.url.is_match(normalised)
        && (normalised.ends_with('?')
            || normalised.ends_with('\0')
            || name.is_some_and(|n| INCLUDE_NAMES.contains(&n.to_ascii_lowercase().as_str())))
    {
        return Some(Family::RemoteInclude);
    }
    None
}

/// Cheap pre-check on the raw value: whether any construct could be in it (each needs one of
/// these bytes or pairs), or it is a Java serialised object (which starts as it does). Most
/// header values (User-Agent, Accept, Host, dates) fail it and are never decoded.
fn may_carry(value: &str) -> bool {
    // Short values (most header values, path segments, parameters) in one pass over the
    // bytes: a memchr or memmem call per construct (eight of them) cost more than the walk.
    // Long ones (bodies) by the vectorised searches, which win past a few hundred bytes.
    let b = value.as_bytes();
    if b.len() > 256 {
        return may_carry_long(value);
    }
    let (mut colon, mut quote, mut double_slash) = (false, false, false);
    for (i, &c) in b.iter().enumerate() {
        let next = b.get(i + 1).copied();
        match c {
            b'$' | b'{' | b'%' | b'<' | b'&' | b'#' | b'\n' | b'\r' => return true,
            b'(' if matches!(next, Some(b')' | b'|')) => return true,
            b'@' | b')' if next == Some(b'(') => return true,
            b':' => colon = true,
            b'"' => quote = true,
            b'/' if next == Some(b'/') => double_slash = true,
            _ => {}
        }
    }
    (colon && (quote || double_slash))
        || value.starts_with("rO0AB")
        || value
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("aced0005"))
}

/// [`may_carry`] for long values: the same tests, one vectorised search each.
fn may_carry_long(value: &str) -> bool {
    use memchr::{memchr, memchr2, memchr3, memmem};
    let b = value.as_bytes();
    memchr3(b'$', b'{', b'%', b).is_some()
        || memchr3(b'<', b'&', b'#', b).is_some()
        || memchr2(b'\n', b'\r', b).is_some()
        || memmem::find(b, b"()").is_some()
        || memmem::find(b, b"@(").is_some()
        || memmem::find(b, b")(").is_some()
        || memmem::find(b, b"(|").is_some()
        || (memchr(b':', b).is_some()
            && (memchr(b'"', b).is_some() || memmem::find(b, b"//").is_some()))
        || value.starts_with("rO0AB")
        || value
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("aced0005"))
}

/// INJ-3 over every location of the request.
pub fn inj3(v: &View) -> Option<Value> {
    inputs::walk(v, true, inj3_value)
}

/// INJ-3 on one input (`label` names it in the evidence).
pub fn inj3_value(label: &dyn Fn() -> String, value: &str, place: Place<'_>) -> Option<Value> {
    if !may_carry(value) {
        return None;
    }
    let family = family_of(&normalise(value), place)?;
    Some(inputs::with_matched(
        json!({ "kind": family.kind(), "input": label() }),
        value,
        place,
    ))
}

#[cfg(test)]
#[path = "inject_tests.rs"]
mod tests;
