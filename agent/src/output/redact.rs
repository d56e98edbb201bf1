//! Redaction of secrets before anything is written: credentials in headers and query strings.
//! On by default and not switchable here; keyed token hashing arrives with the output issue.

use std::borrow::Cow;

pub const REDACTED: &str = "[REDACTED]";

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
            Some((scheme, _)) if !scheme.is_empty() && scheme.len() <= 16 => {
                format!("{scheme} {REDACTED}")
            }
            _ => REDACTED.to_owned(),
        });
    }
    if is_secret_header(lower_name) || name_looks_secret(lower_name) {
        return Cow::Borrowed(REDACTED);
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
                Some((k, _)) if is_secret_query_key(k) => format!("{k}={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&"),
    )
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
        assert_eq!(
            header_value("authorization", b"Bearer abc.def"),
            "Bearer [REDACTED]"
        );
        assert_eq!(header_value("authorization", b"opaque"), "[REDACTED]");
        assert_eq!(header_value("cookie", b"sid=1"), "[REDACTED]");
        assert_eq!(header_value("x-upstream-token", b"t"), "[REDACTED]");
        assert_eq!(header_value("user-agent", b"curl/8"), "curl/8");
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
    fn query_values() {
        assert_eq!(
            query("y=1&access_token=abc&api_key=k&q=select"),
            "y=1&access_token=[REDACTED]&api_key=[REDACTED]&q=select"
        );
        assert_eq!(query("flag"), "flag");
    }
}
