//! What the rules read from a typed exchange (live, or deserialised in replay): the request
//! line, status, a few headers, the actor (token tag, client address) — all borrowed.

use std::{borrow::Cow, cell::OnceCell, net::IpAddr};

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
    /// The Cookie header as sent (live; empty in replay, whose events carry it redacted).
    pub request_cookie: &'a str,
    /// The token tag, else the client address, else "unknown": made once, read by every rule.
    /// Made on first use: most exchanges need only the actor's digest.
    actor: OnceCell<Cow<'a, str>>,
    /// Decoded once on first use, then shared by every rule that reads them.
    params: OnceCell<Vec<(String, String)>>,
    body_inputs: OnceCell<Vec<(String, String)>>,
    response_text: OnceCell<Cow<'a, str>>,
}

/// The `[REDACTED:…]` marker inside a redacted value.
pub fn redaction_tag(value: &str) -> Option<&str> {
    // By its opening bracket: `str::find` with a string pattern sets up a two-way searcher
    // per call, which showed in the profile (twice per exchange).
    let bytes = value.as_bytes();
    let mut from = 0;
    while let Some(at) = bytes
        .get(from..)
        .and_then(|rest| memchr::memchr(b'[', rest))
    {
        let start = from + at;
        let rest = value.get(start..)?;
        if rest.starts_with("[REDACTED:") {
            let end = memchr::memchr(b']', rest.as_bytes())?;
            return rest.get(..=end);
        }
        from = start + 1;
    }
    None
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
            actor: OnceCell::new(),
            params: OnceCell::new(),
            body_inputs: OnceCell::new(),
            response_text: OnceCell::new(),
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
            request_cookie: "",
        })
    }

    /// The view the engine judges: the event with everything the detection tap kept beside it
    /// (bodies, the raw Cookie header).
    pub fn with_tap(
        event: &'a ExchangeEvent<'a>,
        epoch_ms: i64,
        tap: &'a super::content::Bodies<'_>,
    ) -> Option<Self> {
        let mut view = Self::with_bodies(event, epoch_ms, &tap.request, &tap.response)?;
        view.request_cookie = &tap.request_cookie;
        Some(view)
    }

    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The actor: the token tag when there is one, else the client address.
    pub fn actor(&self) -> &str {
        self.actor
            .get_or_init(|| match (self.token, self.client_ip) {
                (Some(t), _) => Cow::Borrowed(t),
                (None, Some(ip)) => Cow::Owned(ip.to_string()),
                (None, None) => Cow::Borrowed("unknown"),
            })
    }

    /// The digest the windows key the actor by, without writing an address out as text.
    pub fn actor_digest(&self, keys: &super::windows::Keys) -> u64 {
        match (self.token, self.client_ip) {
            (Some(t), _) => keys.of(&["token", t]),
            (None, Some(ip)) => keys.of_address(ip),
            (None, None) => keys.of(&["unknown"]),
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
    pub fn params(&self) -> &[(String, String)] {
        self.params.get_or_init(|| {
            self.query
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect()
        })
    }

    /// String leaves of a JSON request body, the fields of a form body, or the strings inside
    /// a gRPC call's protobuf messages (`body.`-prefixed).
    pub fn body_inputs(&self) -> &[(String, String)] {
        self.body_inputs.get_or_init(|| {
            if self.event.grpc.is_some() {
                crate::protocol::h2::protobuf::strings(self.request_body)
            } else {
                super::content::body_inputs(self.request_body)
            }
        })
    }

    /// The response body as text: borrowed when it is UTF-8 (a multi-byte character cut at
    /// the tap's end is dropped), converted lossily once otherwise.
    pub fn response_text(&self) -> &str {
        self.response_text.get_or_init(|| {
            let bytes = self.response_body;
            match std::str::from_utf8(bytes) {
                Ok(text) => Cow::Borrowed(text),
                Err(e) if e.error_len().is_none() => Cow::Borrowed(
                    bytes
                        .get(..e.valid_up_to())
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .unwrap_or(""),
                ),
                Err(_) => String::from_utf8_lossy(bytes),
            }
        })
    }
}

/// Percent-decoding for inspection (lossy; malformed escapes kept as written).
pub fn percent_decode(s: &str) -> String {
    percent_decode_cow(s).into_owned()
}

/// As [`percent_decode`], borrowing when there is nothing to decode (the usual case).
pub fn percent_decode_cow(s: &str) -> Cow<'_, str> {
    decode(s, true)
}

/// `%XX` escapes only, `+` kept: for a value that was form-decoded once already (a later
/// round must not turn the `+` of `{{4+4}}` into a space) or that never was (a path, a header).
pub fn percent_decode_escapes(s: &str) -> Cow<'_, str> {
    decode(s, false)
}

fn decode(s: &str, plus_is_space: bool) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || (plus_is_space && b == b'+')) {
        return Cow::Borrowed(s);
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut bytes = s.bytes();
    let mut out = Vec::with_capacity(s.len());
    while let Some(b) = bytes.next() {
        match b {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                // Two hex digits decode; anything else stays as written.
                let mut ahead = bytes.clone();
                match (ahead.next().and_then(hex), ahead.next().and_then(hex)) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        bytes = ahead;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
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
        // Brackets before the marker, an unclosed marker, non-ASCII around it.
        assert_eq!(redaction_tag("x[y] é[REDACTED:ab]z"), Some("[REDACTED:ab]"));
        assert_eq!(redaction_tag("[REDACTED:ab"), None);
        assert_eq!(redaction_tag("[[REDACTED:]"), Some("[REDACTED:]"));
        assert_eq!(redaction_tag("é["), None);
    }
}
