//! What the rules read from an exchange event (the native JSON, live or replayed): the
//! request line, status, a few headers, the actor (token tag, client address) — borrowed.

use serde_json::Value;

pub struct View<'a> {
    pub event: &'a Value,
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub status: Option<u64>,
    pub host: &'a str,
    pub user_agent: &'a str,
    /// The redacted Authorization value (`Bearer [REDACTED:tag]`), if any.
    pub authorization: Option<&'a str>,
    /// The redaction tag of the credential: follows one token without knowing it.
    pub token: Option<&'a str>,
    /// The client's address: the remote end of a server, the local end of a client.
    pub client_ip: Option<&'a str>,
    pub tls: bool,
    pub jwt: Option<&'a Value>,
    pub epoch_ms: i64,
    /// Request body bytes the rules may read (the detection tap, or a replayed prefix).
    pub request_body: &'a [u8],
    /// Response body bytes, decompressed.
    pub response_body: &'a [u8],
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The `[REDACTED:…]` marker inside a redacted value.
pub fn redaction_tag(value: &str) -> Option<&str> {
    let start = value.find("[REDACTED:")?;
    let end = value[start..].find(']')? + start + 1;
    Some(&value[start..end])
}

impl<'a> View<'a> {
    /// None for events without a request (nothing to judge).
    pub fn of(event: &'a Value, epoch_ms: i64) -> Option<Self> {
        Self::with_bodies(event, epoch_ms, &[], &[])
    }

    pub fn with_bodies(
        event: &'a Value,
        epoch_ms: i64,
        request_body: &'a [u8],
        response_body: &'a [u8],
    ) -> Option<Self> {
        let req = event.get("request").filter(|r| r.is_object())?;
        let headers = &req["headers"];
        let authorization = headers.get("authorization").and_then(Value::as_str);
        let token = authorization
            .or_else(|| headers.get("x-api-key").and_then(Value::as_str))
            .and_then(redaction_tag);
        let role = str_at(event, &["connection", "role"]).unwrap_or("unknown");
        let end = if role == "client" { "local" } else { "remote" };
        Some(Self {
            event,
            method: req["method"].as_str().unwrap_or(""),
            path: req["path"].as_str().unwrap_or(""),
            query: req["query"].as_str(),
            status: event.pointer("/response/status").and_then(Value::as_u64),
            host: headers.get("host").and_then(Value::as_str).unwrap_or(""),
            user_agent: headers
                .get("user-agent")
                .and_then(Value::as_str)
                .unwrap_or(""),
            authorization,
            token,
            client_ip: str_at(event, &["connection", end, "ip"]),
            tls: event["connection"]["tls"] == true,
            jwt: req.get("jwt").filter(|j| j.is_object()),
            epoch_ms,
            request_body,
            response_body,
        })
    }

    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The actor: the token tag when there is one, else the client address.
    pub fn actor(&self) -> String {
        match (self.token, self.client_ip) {
            (Some(t), _) => t.to_owned(),
            (None, Some(ip)) => ip.to_owned(),
            (None, None) => "unknown".to_owned(),
        }
    }

    pub fn has_credentials(&self) -> bool {
        self.authorization.is_some()
            || self.token.is_some()
            || self
                .event
                .pointer("/request/headers/cookie")
                .is_some_and(|c| !c.is_null())
    }

    pub fn response_bytes(&self) -> u64 {
        self.event
            .pointer("/response/body_size")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    pub fn response_header(&self, name: &str) -> Option<&'a str> {
        self.event
            .pointer("/response/headers")
            .and_then(|h| h.get(name))
            .and_then(Value::as_str)
    }

    /// Query parameters, percent-decoded (`+` as space), redacted values included as written.
    pub fn params(&self) -> Vec<(String, String)> {
        self.query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }
}

/// Percent-decoding for inspection (lossy; malformed escapes kept as written).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_tags() {
        assert_eq!(percent_decode("a%20b+c%2e%2E%2f"), "a b c../");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(
            redaction_tag("Bearer [REDACTED:0011223344556677]"),
            Some("[REDACTED:0011223344556677]")
        );
        assert_eq!(redaction_tag("Basic abc"), None);
    }
}
