//! Redaction of secrets before anything is written: credentials in headers, query strings and
//! (when body prefixes are on) bodies.
//! Always on. A secret becomes `[REDACTED:<tag>]`, the tag being the first 8 bytes (hex) of
//! HMAC-SHA256(key, secret): the same token gives the same tag in every event and sink, so
//! detections and SIEM queries can follow it, while the token itself is never written and
//! cannot be recovered or brute-forced without the key (token_key.rs keeps it per install).

use std::{borrow::Cow, sync::OnceLock};

use hmac::{Hmac, KeyInit as _, Mac as _};

static TOKEN_KEY: OnceLock<[u8; 32]> = OnceLock::new();

/// Sets the key for the life of the process (once; later calls are ignored and return false).
pub fn set_token_key(key: [u8; 32]) -> bool {
    TOKEN_KEY.set(key).is_ok()
}

fn token_key() -> &'static [u8; 32] {
    // Unset only in unit tests and tools: a fixed, documented key keeps their output stable.
    TOKEN_KEY.get_or_init(|| [0x42; 32])
}

/// `[REDACTED:<16 hex digits>]` for `secret`.
pub fn marker(secret: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(token_key()) else {
        return "[REDACTED]".to_owned();
    };
    mac.update(secret);
    let tag = mac.finalize().into_bytes();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(27);
    out.push_str("[REDACTED:");
    for b in &tag[..8] {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out.push(']');
    out
}

/// Headers whose values are credentials by definition (lower-case).
fn is_secret_header(lower: &str) -> bool {
    matches!(
        lower,
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "set-cookie"
            | "x-api-key"
            | "api-key"
            | "x-auth-token"
            | "x-amz-security-token"
    )
}

/// Name parts that mark a credential: token, secret, password, passwd, apikey, api_key, api-key,
/// session, signature. One pass over the name, dispatching on the first letter: this runs for
/// every header of every exchange.
fn name_looks_secret(lower: &str) -> bool {
    let b = lower.as_bytes();
    (0..b.len()).any(|i| {
        let rest = &b[i..];
        match b[i] {
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

/// Value to print for a header (`lower_name` lower-cased): secrets masked, keeping an auth
/// scheme (e.g. "Bearer") since it explains the traffic and carries no secret.
pub fn header_value<'v>(lower_name: &str, value: &'v [u8]) -> Cow<'v, str> {
    if lower_name == "authorization" || lower_name == "proxy-authorization" {
        let text = String::from_utf8_lossy(value);
        return Cow::Owned(match text.split_once(' ') {
            Some((scheme, credentials)) if !scheme.is_empty() && scheme.len() <= 16 => {
                format!("{scheme} {}", marker(credentials.trim().as_bytes()))
            }
            _ => marker(value),
        });
    }
    if is_secret_header(lower_name) || name_looks_secret(lower_name) {
        return Cow::Owned(marker(value));
    }
    String::from_utf8_lossy(value)
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
pub fn query(query: &str) -> Cow<'_, str> {
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
                Some((k, v)) if is_secret_query_key(k) => format!("{k}={}", marker(v.as_bytes())),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&"),
    )
}

static JWT: OnceLock<regex::Regex> = OnceLock::new();
static JSON_SECRET: OnceLock<regex::Regex> = OnceLock::new();

/// A body prefix with sensitive values masked (the same tags as headers): JWTs, values of
/// secret-named JSON members or form fields, payment card numbers (issuer + Luhn), US SSNs.
pub fn body(text: Cow<'_, str>) -> Cow<'_, str> {
    let jwt = JWT.get_or_init(|| {
        regex::Regex::new(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
            .expect("static regex")
    });
    let secret = JSON_SECRET.get_or_init(|| {
        regex::Regex::new(
            r#"(?i)("?[a-z_-]*(?:password|passwd|secret|token|api_?key|apikey)[a-z_-]*"?\s*[:=]\s*"?)([^"&,}\s]+)"#,
        )
        .expect("static regex")
    });
    let is_sensitive = |run: &&str| {
        crate::detect::rules::card_brand(run).is_some() || crate::detect::rules::valid_ssn(run)
    };
    if !jwt.is_match(&text)
        && !secret.is_match(&text)
        && !crate::detect::rules::digit_runs(&text)
            .iter()
            .any(is_sensitive)
    {
        return text;
    }
    let mut out = jwt
        .replace_all(&text, |c: &regex::Captures| marker(c[0].as_bytes()))
        .into_owned();
    out = secret
        .replace_all(&out, |c: &regex::Captures| {
            if c[2].starts_with("[REDACTED") {
                c[0].to_owned()
            } else {
                format!("{}{}", &c[1], marker(c[2].as_bytes()))
            }
        })
        .into_owned();
    let sensitive: Vec<String> = crate::detect::rules::digit_runs(&out)
        .into_iter()
        .filter(is_sensitive)
        .map(str::to_owned)
        .collect();
    for run in sensitive {
        out = out.replace(&run, &marker(run.as_bytes()));
    }
    Cow::Owned(out)
}

fn is_secret_query_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_QUERY_KEYS.contains(&lower.as_str()) || name_looks_secret(&lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let bearer = header_value("authorization", b"Bearer abc.def");
        assert_eq!(bearer, format!("Bearer {}", marker(b"abc.def")));
        assert!(
            bearer.starts_with("Bearer [REDACTED:")
                && bearer.len() == "Bearer [REDACTED:]".len() + 16
        );
        assert_eq!(header_value("authorization", b"opaque"), marker(b"opaque"));
        assert_eq!(header_value("cookie", b"sid=1"), marker(b"sid=1"));
        assert_eq!(header_value("x-upstream-token", b"t"), marker(b"t"));
        assert_eq!(header_value("user-agent", b"curl/8"), "curl/8");
    }

    #[test]
    fn same_secret_same_tag_other_secret_other_tag() {
        assert_eq!(marker(b"token-1"), marker(b"token-1"));
        assert_ne!(marker(b"token-1"), marker(b"token-2"));
        // The same token in a header and in a query string is followed across both.
        let q = query("access_token=tok-9");
        assert_eq!(q, format!("access_token={}", marker(b"tok-9")));
        assert!(header_value("authorization", b"Bearer tok-9").ends_with(&marker(b"tok-9")));
    }

    #[test]
    fn tag_is_hmac_sha256_of_the_secret() {
        // HMAC-SHA256(key, data) with the unit-test key
        // (32 bytes of 0x42); computed independently with
        // `printf abc | openssl dgst -sha256 -mac HMAC -macopt hexkey:4242…42`.
        assert_eq!(marker(b"abc"), "[REDACTED:67309d866ce6deea]");
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
            assert!(name_looks_secret(name), "{name}");
        }
        for name in [
            "content-type",
            "accept",
            "x-request-id",
            "sec-fetch-site",
            "tokenless",
        ] {
            assert_eq!(name_looks_secret(name), name == "tokenless", "{name}");
        }
    }

    #[test]
    fn body_values() {
        let text = r#"{"user":"a","password":"hunter2","card":"4111 1111 1111 1111","order":"4111111111111112","ssn":"078-05-1120","jwt":"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.","note":"select a chair"}"#;
        let masked = body(Cow::Borrowed(text));
        assert!(!masked.contains("hunter2"), "{masked}");
        assert!(!masked.contains("4111 1111 1111 1111"), "{masked}");
        assert!(!masked.contains("078-05-1120"), "{masked}");
        assert!(!masked.contains("eyJzdWIiOiJhIn0"), "{masked}");
        assert!(
            masked.contains(&format!("\"password\":\"{}\"", marker(b"hunter2"))),
            "{masked}"
        );
        // A 16-digit order number failing Luhn and ordinary words stay.
        assert!(
            masked.contains("4111111111111112") && masked.contains("select a chair"),
            "{masked}"
        );
        assert_eq!(
            body(Cow::Borrowed("password=s3cret&x=1")),
            format!("password={}&x=1", marker(b"s3cret"))
        );
    }

    #[test]
    fn query_values() {
        assert_eq!(
            query("y=1&access_token=abc&api_key=k&q=select"),
            format!(
                "y=1&access_token={}&api_key={}&q=select",
                marker(b"abc"),
                marker(b"k")
            )
        );
        assert_eq!(query("flag"), "flag");
    }
}
