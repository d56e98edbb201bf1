//! Redaction of secrets before anything is written: credentials in headers, query strings and
//! (when body prefixes are on) bodies.
//! Always on. A secret becomes `[REDACTED:<tag>]`, the tag being the first 8 bytes (hex) of
//! HMAC-SHA256(key, secret): the same token gives the same tag in every event and sink, so
//! detections and SIEM queries can follow it, while the token itself is never written and
//! cannot be recovered or brute-forced without the key (token_key.rs keeps it per install).
//! The key is passed explicitly: there is no process-wide key and no fallback.

use std::{borrow::Cow, sync::OnceLock};

use hmac::{Hmac, KeyInit as _, Mac as _};

/// The redaction key, keyed once: each tag then costs two SHA-256 blocks instead of four, and
/// a credential seen before costs none (its tag is remembered by a keyed hash; clones share
/// the memo, which is right: they share the key).
#[derive(Clone)]
pub struct TokenKey {
    keyed: Hmac<sha2::Sha256>,
    memo: std::sync::Arc<std::sync::Mutex<super::memo::CredentialMemo<String>>>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(key: &[u8; 32]) -> Self {
        // HMAC accepts keys of any length; a 32-byte key cannot fail.
        #[allow(clippy::expect_used)]
        let keyed = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        Self {
            keyed,
            memo: Default::default(),
        }
    }

    /// The fixed key of unit tests, benches and golden files (32 bytes of 0x42): their tags are
    /// stable and documented. Never used by the agent itself.
    pub fn for_tests() -> Self {
        Self::new(&[0x42; 32])
    }

    /// The kernel's credential key (enforcement), derived from the redaction key: stable across
    /// restarts and equal on every node that shares the redaction key, like the tags.
    pub fn credential_key(&self) -> [u64; 2] {
        let mut mac = self.keyed.clone();
        mac.update(b"cleartap/enforce/credential-key/v1");
        let bytes = mac.finalize().into_bytes();
        let word = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        [word(0), word(8)]
    }

    /// `[REDACTED:<16 hex digits>]` for `secret`.
    pub fn marker(&self, secret: &[u8]) -> String {
        match self.memo.lock() {
            Ok(mut memo) => memo.get_or_derive(secret, || self.derive_marker(secret)),
            // A panic while the lock was held (contained elsewhere) only costs the memo.
            Err(_) => self.derive_marker(secret),
        }
    }

    fn derive_marker(&self, secret: &[u8]) -> String {
        let mut mac = self.keyed.clone();
        mac.update(secret);
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(27);
        out.push_str("[REDACTED:");
        for b in tag.iter().take(8) {
            for nibble in [b >> 4, b & 0xf] {
                out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
            }
        }
        out.push(']');
        out
    }
}

/// Headers whose values are credentials by definition (lower-case).
fn is_secret_header(lower: &[u8]) -> bool {
    matches!(
        lower,
        b"authorization"
            | b"proxy-authorization"
            | b"cookie"
            | b"set-cookie"
            | b"x-api-key"
            | b"api-key"
            | b"x-auth-token"
            | b"x-amz-security-token"
    )
}

/// Name parts that mark a credential: token, secret, password, passwd, apikey, api_key, api-key,
/// session, signature. One pass over the name, dispatching on the first letter: this runs for
/// every header of every exchange.
fn name_looks_secret(lower: &[u8]) -> bool {
    let b = lower;
    (0..b.len()).any(|i| {
        let rest = b.get(i..).unwrap_or_default();
        match rest.first().copied().unwrap_or_default() {
            b't' => rest.starts_with(b"token"),
            b's' => {
                rest.starts_with(b"secret")
                    || rest.starts_with(b"session")
                    || rest.starts_with(b"signature")
            }
            b'p' => rest.starts_with(b"passw"),
            b'a' => {
                rest.starts_with(b"apikey")
                    || rest.starts_with(b"api_key")
                    || rest.starts_with(b"api-key")
            }
            _ => false,
        }
    })
}

/// Value to print for a header (`name` in any case): secrets masked, keeping an auth scheme
/// (e.g. "Bearer") since it explains the traffic and carries no secret.
pub fn header_value<'v>(key: &TokenKey, name: &str, value: &'v [u8]) -> Cow<'v, str> {
    header_value_of_lower(key, name.to_ascii_lowercase().as_bytes(), value, None)
}

/// [`header_value`] for a name already in lower case (a parsed head's, whose names are
/// lowered when it is made) and a value whose text the caller may already have (`text`: `value`
/// as UTF-8, when it is: a plain value is then borrowed without another check). This runs for
/// every header of every exchange.
pub fn header_value_of_lower<'v>(
    key: &TokenKey,
    lower_name: &[u8],
    value: &'v [u8],
    text: Option<&'v str>,
) -> Cow<'v, str> {
    if lower_name == b"authorization" || lower_name == b"proxy-authorization" {
        // Split and tag the raw bytes: two credentials that differ only in invalid UTF-8 must
        // not share a tag. The scheme is shown (lossily); it carries no secret.
        let split = value.iter().position(|b| *b == b' ');
        return Cow::Owned(match split.map(|at| value.split_at(at)) {
            Some((scheme, credentials)) if !scheme.is_empty() && scheme.len() <= 16 => {
                let credentials = credentials.trim_ascii();
                let scheme = super::text(scheme);
                let marker = key.marker(credentials);
                let mut shown = String::with_capacity(scheme.len() + 1 + marker.len());
                shown.push_str(&scheme);
                shown.push(' ');
                shown.push_str(&marker);
                shown
            }
            _ => key.marker(value),
        });
    }
    if !common_plain_header(lower_name)
        && (is_secret_header(lower_name) || name_looks_secret(lower_name))
    {
        return Cow::Owned(key.marker(value));
    }
    match text {
        Some(text) => Cow::Borrowed(text),
        None => super::text(value),
    }
}

/// The headers nearly every exchange has and that never hold a secret: one comparison instead
/// of scanning the name for secret-looking parts, for every header of every exchange.
fn common_plain_header(lower: &[u8]) -> bool {
    matches!(
        lower,
        b"host"
            | b"user-agent"
            | b"accept"
            | b"accept-encoding"
            | b"accept-language"
            | b"accept-ranges"
            | b"connection"
            | b"content-type"
            | b"content-length"
            | b"content-encoding"
            | b"date"
            | b"server"
            | b"etag"
            | b"last-modified"
            | b"cache-control"
            | b"vary"
            | b"keep-alive"
            | b"transfer-encoding"
    )
}

const SECRET_QUERY_KEYS: [&str; 9] = [
    "key",
    "code",
    "auth",
    "sig",
    "pwd",
    "pass",
    "access_token",
    "id_token",
    "client_secret",
];

/// Query string with the values of credential-like parameters masked; order kept.
pub fn query<'q>(key: &TokenKey, query: &'q str) -> Cow<'q, str> {
    let secret = query.split('&').any(|pair| {
        pair.split_once('=')
            .is_some_and(|(k, _)| is_secret_query_key(k))
    });
    if !secret {
        return Cow::Borrowed(query);
    }
    Cow::Owned(
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if is_secret_query_key(k) => {
                    format!("{k}={}", key.marker(v.as_bytes()))
                }
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&"),
    )
}

static JWT: OnceLock<regex::Regex> = OnceLock::new();

/// A JWT anywhere in a text (three base64url parts, the first two JSON objects).
fn jwt_regex() -> &'static regex::Regex {
    JWT.get_or_init(|| {
        super::static_regex(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
    })
}

/// A run of digits that is a payment card number (issuer prefix + Luhn) or a US SSN.
fn sensitive_digits(run: &&str) -> bool {
    super::card_brand(run).is_some() || super::valid_ssn(run)
}

static JSON_SECRET: OnceLock<regex::Regex> = OnceLock::new();

/// A body prefix with sensitive values masked (the same tags as headers): JWTs, values of
/// secret-named JSON members or form fields, payment card numbers (issuer + Luhn), US SSNs.
pub fn body<'t>(key: &TokenKey, text: Cow<'t, str>) -> Cow<'t, str> {
    let jwt = jwt_regex();
    let secret = JSON_SECRET.get_or_init(|| {
        super::static_regex(
            r#"(?i)("?[a-z_-]*(?:password|passwd|secret|token|api_?key|apikey)[a-z_-]*"?\s*[:=]\s*"?)([^"&,}\s]+)"#,
        )
    });
    if !jwt.is_match(&text)
        && !secret.is_match(&text)
        && !crate::classify::digit_runs(&text)
            .iter()
            .any(sensitive_digits)
    {
        return text;
    }
    let mut out = jwt
        .replace_all(&text, |c: &regex::Captures| key.marker(c[0].as_bytes()))
        .into_owned();
    out = secret
        .replace_all(&out, |c: &regex::Captures| {
            if c[2].starts_with("[REDACTED") {
                c[0].to_owned()
            } else {
                format!("{}{}", &c[1], key.marker(c[2].as_bytes()))
            }
        })
        .into_owned();
    let sensitive: Vec<String> = crate::classify::digit_runs(&out)
        .into_iter()
        .filter(sensitive_digits)
        .map(str::to_owned)
        .collect();
    for run in sensitive {
        out = out.replace(&run, &key.marker(run.as_bytes()));
    }
    Cow::Owned(out)
}

/// Characters of a matched fragment shown in a finding's evidence.
pub const FRAGMENT_CHARS: usize = 96;

/// A fragment of an input value for a finding's evidence, without the redaction key (rules
/// have none): at most [`FRAGMENT_CHARS`] characters, from shortly before the first character
/// of syntax (where an injection starts) when the value is longer; JWTs, payment card numbers,
/// US SSNs and long high-entropy runs (session ids, API keys) masked as `[REDACTED]`.
pub fn fragment(value: &str) -> String {
    let start = if value.chars().count() <= FRAGMENT_CHARS {
        0
    } else {
        let syntax = value
            .find(|c: char| "'\"<>();|`${}%\\".contains(c))
            .unwrap_or(0);
        // Back up to 16 characters before it, on a character boundary.
        value.get(..syntax).map_or(0, |before| {
            before.char_indices().rev().nth(15).map_or(0, |(at, _)| at)
        })
    };
    let window: String = value
        .get(start..)
        .unwrap_or_default()
        .chars()
        .take(FRAGMENT_CHARS)
        .collect();
    mask_secrets(&window)
}

/// JWTs, cards, SSNs and high-entropy runs of ≥ 20 token characters replaced by `[REDACTED]`.
fn mask_secrets(text: &str) -> String {
    let mut out = jwt_regex().replace_all(text, "[REDACTED]").into_owned();
    let sensitive: Vec<String> = crate::classify::digit_runs(&out)
        .into_iter()
        .filter(sensitive_digits)
        .map(str::to_owned)
        .collect();
    for run in sensitive {
        out = out.replace(&run, "[REDACTED]");
    }
    let token_char = |c: char| c.is_ascii_alphanumeric() || "+/_-.~".contains(c);
    let runs: Vec<String> = out
        .split(|c: char| !token_char(c))
        .filter(|run| {
            run.len() >= 20
                && run.bytes().any(|b| b.is_ascii_digit())
                && run.bytes().any(|b| b.is_ascii_alphabetic())
                && super::entropy(run) >= 3.5
        })
        .map(str::to_owned)
        .collect();
    for run in runs {
        out = out.replace(&run, "[REDACTED]");
    }
    out
}

fn is_secret_query_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_QUERY_KEYS.contains(&lower.as_str()) || name_looks_secret(lower.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_headers_are_plain_by_either_check() {
        for name in [
            "host",
            "user-agent",
            "accept",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "connection",
            "content-type",
            "content-length",
            "content-encoding",
            "date",
            "server",
            "etag",
            "last-modified",
            "cache-control",
            "vary",
            "keep-alive",
            "transfer-encoding",
        ] {
            let lower = name.as_bytes();
            assert!(common_plain_header(lower));
            assert!(
                !is_secret_header(lower) && !name_looks_secret(lower),
                "{name}"
            );
        }
    }

    #[test]
    fn fragments_are_bounded_and_masked() {
        assert_eq!(fragment("1' OR '1'='1"), "1' OR '1'='1");
        let long = format!(
            "{}<script>alert(1)</script>{}",
            "word ".repeat(40),
            "x".repeat(200)
        );
        let f = fragment(&long);
        assert_eq!(f.chars().count(), FRAGMENT_CHARS);
        assert!(f.starts_with(" word word word <script>"), "{f}");
        assert_eq!(
            fragment(
                "x' UNION SELECT 4111 1111 1111 1111, 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln'"
            ),
            "x' UNION SELECT [REDACTED], '[REDACTED]'"
        );
        assert_eq!(
            fragment("sid=9f8a7c6b5d4e3f2a1b0c9d8e7f6a5b4c' OR 1=1--"),
            "sid=[REDACTED]' OR 1=1--"
        );
        // Multi-byte text is cut on character boundaries.
        let wide = format!("{}'{}", "é".repeat(120), "ü".repeat(120));
        assert_eq!(fragment(&wide).chars().count(), FRAGMENT_CHARS);
    }

    #[test]
    fn headers() {
        let key = TokenKey::for_tests();
        let bearer = header_value(&key, "authorization", b"Bearer abc.def");
        assert_eq!(bearer, format!("Bearer {}", key.marker(b"abc.def")));
        assert!(
            bearer.starts_with("Bearer [REDACTED:")
                && bearer.len() == "Bearer [REDACTED:]".len() + 16
        );
        assert_eq!(
            header_value(&key, "authorization", b"opaque"),
            key.marker(b"opaque")
        );
        assert_eq!(header_value(&key, "cookie", b"sid=1"), key.marker(b"sid=1"));
        assert_eq!(
            header_value(&key, "x-upstream-token", b"t"),
            key.marker(b"t")
        );
        assert_eq!(header_value(&key, "user-agent", b"curl/8"), "curl/8");
        // Names as sent, in any case, decide as their lower-case form (long ones too).
        assert_eq!(
            header_value(&key, "AuThorization", b"Bearer abc.def"),
            header_value(&key, "authorization", b"Bearer abc.def")
        );
        assert_eq!(header_value(&key, "X-API-KEY", b"k"), key.marker(b"k"));
        assert_eq!(header_value(&key, "User-Agent", b"curl/8"), "curl/8");
        let long = format!("X-{}-Session-Id", "Padding".repeat(12));
        assert_eq!(header_value(&key, &long, b"s"), key.marker(b"s"));
    }

    #[test]
    fn same_secret_same_tag_other_secret_other_tag() {
        let key = TokenKey::for_tests();
        assert_eq!(key.marker(b"token-1"), key.marker(b"token-1"));
        assert_ne!(key.marker(b"token-1"), key.marker(b"token-2"));
        // The same token in a header and in a query string is followed across both.
        let q = query(&key, "access_token=tok-9");
        assert_eq!(q, format!("access_token={}", key.marker(b"tok-9")));
        assert!(
            header_value(&key, "authorization", b"Bearer tok-9").ends_with(&key.marker(b"tok-9"))
        );
    }

    #[test]
    fn tag_is_hmac_sha256_of_the_secret() {
        let key = TokenKey::for_tests();
        // HMAC-SHA256(key, data) with the unit-test key
        // (32 bytes of 0x42); computed independently with
        // `printf abc | openssl dgst -sha256 -mac HMAC -macopt hexkey:4242…42`.
        assert_eq!(key.marker(b"abc"), "[REDACTED:67309d866ce6deea]");
    }

    #[test]
    fn secret_name_parts() {
        for name in [
            "x-session-id",
            "x-csrf-token",
            "client_secret",
            "x-passwd",
            "my-apikey",
            "x-signature",
        ] {
            assert!(name_looks_secret(name.as_bytes()), "{name}");
        }
        for name in [
            "content-type",
            "accept",
            "x-request-id",
            "sec-fetch-site",
            "tokenless",
        ] {
            assert_eq!(
                name_looks_secret(name.as_bytes()),
                name == "tokenless",
                "{name}"
            );
        }
    }

    #[test]
    fn body_values() {
        let key = TokenKey::for_tests();
        let text = r#"{"user":"a","password":"hunter2","card":"4111 1111 1111 1111","order":"4111111111111112","ssn":"078-05-1120","jwt":"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.","note":"select a chair"}"#;
        let masked = body(&key, Cow::Borrowed(text));
        assert!(!masked.contains("hunter2"), "{masked}");
        assert!(!masked.contains("4111 1111 1111 1111"), "{masked}");
        assert!(!masked.contains("078-05-1120"), "{masked}");
        assert!(!masked.contains("eyJzdWIiOiJhIn0"), "{masked}");
        assert!(
            masked.contains(&format!("\"password\":\"{}\"", key.marker(b"hunter2"))),
            "{masked}"
        );
        // A 16-digit order number failing Luhn and ordinary words stay.
        assert!(
            masked.contains("4111111111111112") && masked.contains("select a chair"),
            "{masked}"
        );
        assert_eq!(
            body(&key, Cow::Borrowed("password=s3cret&x=1")),
            format!("password={}&x=1", key.marker(b"s3cret"))
        );
    }

    #[test]
    fn query_values() {
        let key = TokenKey::for_tests();
        assert_eq!(
            query(&key, "y=1&access_token=abc&api_key=k&q=select"),
            format!(
                "y=1&access_token={}&api_key={}&q=select",
                key.marker(b"abc"),
                key.marker(b"k")
            )
        );
        assert_eq!(query(&key, "flag"), "flag");
    }
}
