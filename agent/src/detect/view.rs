//! What the rules read from a typed exchange (live, or deserialised in replay): the request
//! line, status, a few headers, the actor (token tag, client address) — all borrowed.

use std::net::IpAddr;

use crate::event::{ExchangeEvent, JwtSummary, Role};

pub struct View<'a> {
    pub event: &'a ExchangeEvent<'a>,
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub status: Option<u16>,
    pub host: &'a str,
    pub user_agent: &'a str,
    /// The redacted Authorization value (`Bearer [REDACTED:tag]`), if any.
    pub authorization: Option<&'a str>,
    /// The redaction tag of the credential: follows one token without knowing it.
    pub token: Option<&'a str>,
    /// The client's address: the remote end of a server, the local end of a client.
    pub client_ip: Option<IpAddr>,
    pub tls: bool,
    pub jwt: Option<&'a JwtSummary>,
    pub epoch_ms: i64,
    /// Request body bytes the rules may read (the detection tap, or a replayed prefix).
    pub request_body: &'a [u8],
    /// Response body bytes, decompressed.
    pub response_body: &'a [u8],
}

/// The `[REDACTED:…]` marker inside a redacted value.
pub fn redaction_tag(value: &str) -> Option<&str> {
    let start = value.find("[REDACTED:")?;
    let rest = value.get(start..)?;
    let end = rest.find(']')?;
    rest.get(..=end)
}

impl<'a> View<'a> {
    /// None for events without a request (nothing to judge).
    pub fn of(event: &'a ExchangeEvent<'a>, epoch_ms: i64) -> Option<Self> {
        Self::with_bodies(event, epoch_ms, &[], &[])
    }

    pub fn with_bodies(
        event: &'a ExchangeEvent<'a>,
        epoch_ms: i64,
        request_body: &'a [u8],
        response_body: &'a [u8],
    ) -> Option<Self> {
        let req = event.request.as_ref()?;
        let headers = &req.headers;
        let authorization = headers.get("authorization");
        let token = authorization
            .or_else(|| headers.get("x-api-key"))
            .and_then(redaction_tag);
        let c = &event.connection;
        let client = if c.role == Role::Client {
            c.local
        } else {
            c.remote
        };
        Some(Self {
            event,
            method: &req.method,
            path: &req.path,
            query: req.query.as_deref(),
            status: event.response.as_ref().map(|r| r.status),
            host: headers.get("host").unwrap_or(""),
            user_agent: headers.get("user-agent").unwrap_or(""),
            authorization,
            token,
            client_ip: client.map(|e| e.ip),
            tls: c.tls,
            jwt: req.jwt.as_ref(),
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
            (None, Some(ip)) => ip.to_string(),
            (None, None) => "unknown".to_owned(),
        }
    }

    pub fn client_ip_text(&self) -> Option<String> {
        self.client_ip.map(|ip| ip.to_string())
    }

    pub fn has_credentials(&self) -> bool {
        self.authorization.is_some()
            || self.token.is_some()
            || self
                .event
                .request
                .as_ref()
                .is_some_and(|r| r.headers.get("cookie").is_some())
    }

    pub fn response_bytes(&self) -> u64 {
        self.event
            .response
            .as_ref()
            .and_then(|r| r.body_size)
            .unwrap_or(0)
    }

    pub fn response_header(&self, name: &str) -> Option<&'a str> {
        self.event.response.as_ref()?.headers.get(name)
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
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return s.to_owned();
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut bytes = s.bytes();
    let mut out = Vec::with_capacity(s.len());
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits decode; anything else stays as written.
                let mut ahead = bytes.clone();
                match (ahead.next(), ahead.next()) {
                    (Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                        let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                        out.push(u8::try_from(value).unwrap_or(b'?'));
                        bytes = ahead;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
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
