//! Redaction of secrets before anything is written: credentials in headers and query strings.
//! On by default and not switchable here; keyed token hashing arrives with the output issue.

pub const REDACTED: &str = "[REDACTED]";

const SECRET_HEADERS: [&str; 8] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-amz-security-token",
];

const SECRET_NAME_PARTS: [&str; 9] = [
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "api-key",
    "session",
    "signature",
];

fn name_looks_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_NAME_PARTS.iter().any(|p| lower.contains(p))
}

/// Value to print for a header: secrets masked, keeping an auth scheme (e.g. "Bearer") since it
/// is needed to understand the traffic and carries no secret.
pub fn header_value(name: &str, value: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower == "authorization" || lower == "proxy-authorization" {
        return match value.split_once(' ') {
            Some((scheme, _)) if !scheme.is_empty() && scheme.len() <= 16 => {
                format!("{scheme} {REDACTED}")
            }
            _ => REDACTED.to_owned(),
        };
    }
    if SECRET_HEADERS.contains(&lower.as_str()) || name_looks_secret(&lower) {
        return REDACTED.to_owned();
    }
    value.to_owned()
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
pub fn query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_query_key(k) => format!("{k}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
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
            header_value("Authorization", "Bearer abc.def"),
            "Bearer [REDACTED]"
        );
        assert_eq!(header_value("authorization", "opaque"), "[REDACTED]");
        assert_eq!(header_value("Cookie", "sid=1"), "[REDACTED]");
        assert_eq!(header_value("X-Upstream-Token", "t"), "[REDACTED]");
        assert_eq!(header_value("User-Agent", "curl/8"), "curl/8");
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
