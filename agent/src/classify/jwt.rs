//! The non-secret parts of a bearer JWT — its header's `alg` and the time claims — so that
//! token rules (AUTH-1, AUTH-2) work on redacted events, live and in replay. The signature and
//! every other claim stay out of the event.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Tokens longer than this are not decoded (nothing legitimate comes close).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JwtSummary {
    /// `alg` of the header; null when the header has none.
    pub alg: Option<String>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
}

fn decode_part(part: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The summary of `Authorization: Bearer <JWT>`, or None when the value is not a JWT;
/// remembered per credential on this thread (classify::memo): a token's claims do not change.
pub fn summarize(authorization: &[u8]) -> Option<JwtSummary> {
    thread_local! {
        static MEMO: std::cell::RefCell<super::memo::CredentialMemo<Option<JwtSummary>>> =
            std::cell::RefCell::new(Default::default());
    }
    if authorization.len() > MAX_TOKEN_BYTES {
        return None;
    }
    MEMO.with(|memo| match memo.try_borrow_mut() {
        Ok(mut memo) => memo.get_or_derive(authorization, || derive(authorization)),
        Err(_) => derive(authorization),
    })
}

/// The summary itself (`summarize` bounded the length already).
fn derive(authorization: &[u8]) -> Option<JwtSummary> {
    let text = std::str::from_utf8(authorization).ok()?;
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut parts = token.trim().split('.');
    let (header, payload) = (parts.next()?, parts.next()?);
    // The signature may be empty (alg none) but the separator must be there.
    parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let header = decode_part(header)?;
    let payload = decode_part(payload)?;
    let time = |k: &str| payload.get(k).and_then(|v| v.as_f64()).map(|f| f as i64);
    Some(JwtSummary {
        alg: header
            .get("alg")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        exp: time("exp"),
        nbf: time("nbf"),
        iat: time("iat"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn alg_and_time_claims_only() {
        let token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(r#"{"sub":"alice","exp":1700000000,"iat":1690000000}"#)
        );
        let s = summarize(format!("Bearer {token}").as_bytes()).expect("jwt");
        assert_eq!(s.alg.as_deref(), Some("none"));
        assert_eq!(
            (s.exp, s.nbf, s.iat),
            (Some(1_700_000_000), None, Some(1_690_000_000))
        );
        let missing = format!("{}.{}.sig", b64(r#"{"typ":"JWT"}"#), b64("{}"));
        assert_eq!(
            summarize(format!("Bearer {missing}").as_bytes()).and_then(|s| s.alg),
            None
        );
    }

    #[test]
    fn not_a_jwt() {
        for value in [
            "Bearer opaque-token",
            "Basic dXNlcjpwYXNz",
            "Bearer a.b.c.d",
            "Bearer !!!.???.x",
            "Bearer e30.e30",
            "",
        ] {
            assert_eq!(summarize(value.as_bytes()), None, "{value}");
        }
    }
}
