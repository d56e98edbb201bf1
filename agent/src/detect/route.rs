//! Route templates: `/users/123` and `/users/456` are both `/users/{id}`. Integers, UUIDs, long
//! hex strings and long mixed letter+digit tokens become parameters; words and versions (`v1`)
//! stay literal.

/// The kind of parameter a path segment is, or None for a literal.
pub fn param_kind(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        return None;
    }
    let b = segment.as_bytes();
    if b.iter().all(u8::is_ascii_digit) {
        return Some("{id}");
    }
    if is_uuid(segment) {
        return Some("{uuid}");
    }
    if b.len() >= 8 && b.iter().all(u8::is_ascii_hexdigit) && b.iter().any(u8::is_ascii_digit) {
        return Some("{hex}");
    }
    // Generated ids alternate letters and digits (`AbC9x8Yz7Q`, `ord_8f7d6c5b`); words with a
    // number (`report-2024`, `page2`) switch once or twice.
    let switches = b
        .windows(2)
        .filter(|w| match w {
            [a, b] => {
                a.is_ascii_digit() != b.is_ascii_digit()
                    && a.is_ascii_alphanumeric()
                    && b.is_ascii_alphanumeric()
            }
            _ => false,
        })
        .count();
    if b.len() >= 8
        && switches >= 3
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
    {
        return Some("{token}");
    }
    None
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The template of `path` and the value of its last parameter.
pub fn template(path: &str) -> (String, Option<&str>) {
    let mut out = String::with_capacity(path.len());
    let mut last = None;
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match param_kind(segment) {
            Some(kind) => {
                out.push_str(kind);
                last = Some(segment);
            }
            None => out.push_str(segment),
        }
    }
    (out, last)
}

/// `v1`, `v2`, … as a number.
pub fn version_number(segment: &str) -> Option<u32> {
    let rest = segment
        .strip_prefix('v')
        .or_else(|| segment.strip_prefix('V'))?;
    if rest.is_empty() || rest.len() > 3 {
        return None;
    }
    rest.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let cases = [
            ("/users/123", "/users/{id}"),
            ("/users/456/orders/7", "/users/{id}/orders/{id}"),
            ("/api/v1/items/3f2a9c1b5e7d8a0f", "/api/v1/items/{hex}"),
            ("/o/123e4567-e89b-12d3-a456-426614174000", "/o/{uuid}"),
            ("/s/AbC9x8Yz7Q", "/s/{token}"),
            ("/v2/search", "/v2/search"),
            ("/healthz", "/healthz"),
            ("/", "/"),
            ("/deadbeef", "/deadbeef"),
            ("/files/report-2024", "/files/report-2024"),
            ("/pay/ord_8f7d6c5b", "/pay/{token}"),
            ("/page2", "/page2"),
        ];
        for (path, want) in cases {
            assert_eq!(template(path).0, want, "{path}");
        }
        assert_eq!(template("/users/42/x").1, Some("42"));
        assert_eq!(template("/users/42/orders/7").1, Some("7"));
        assert_eq!(template("/users").1, None);
        assert_eq!(version_number("v12"), Some(12));
        assert_eq!(version_number("video"), None);
    }
}
