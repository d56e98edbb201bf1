//! The rule catalogue: every rule id this build knows, with its title, OWASP API Top 10 (2023)
//! category, severity, confidence and the phase it can be judged in.
//! Code, config and events name rules only through [`RuleId`]; its text form (`AUTH-1`) comes
//! from this one table.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleId {
    Auth1,
    Auth2,
    Auth3,
    Auth4,
    Auth5,
    Auth6,
    Tok1,
    Tok2,
    Tok3,
    Bola1,
    Data1,
    Data2,
    Inj1,
    Inj2,
    Inj3,
    Ssrf1,
    Scan1,
    Cfg1,
    Cfg2,
    Inv1,
    Inv2,
    Inv3,
    Inv4,
    Inv5,
    Inv6,
    Anom1,
    Anom2,
    Gql1,
    Gql2,
    Gql3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// When a rule can decide: `Request` rules need only the request head and its tapped body, so
/// they can run before the response exists (what inline blocking needs); `Exchange` rules need
/// the response or state over many exchanges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Request,
    Exchange,
}

pub struct RuleInfo {
    pub id: RuleId,
    pub code: &'static str,
    pub title: &'static str,
    pub owasp: &'static str,
    pub severity: Severity,
    pub confidence: Confidence,
    pub phase: Phase,
    /// A finding of this rule puts its actor on the abusive list.
    pub lists_actor: bool,
}

use Confidence as C;
use Phase::{Exchange, Request};
use Severity as S;

#[allow(clippy::too_many_arguments)] // one row of the table below, in column order
const fn rule(
    id: RuleId,
    code: &'static str,
    title: &'static str,
    owasp: &'static str,
    severity: Severity,
    confidence: Confidence,
    phase: Phase,
    lists_actor: bool,
) -> RuleInfo {
    RuleInfo {
        id,
        code,
        title,
        owasp,
        severity,
        confidence,
        phase,
        lists_actor,
    }
}

/// In `RuleId` order: `CATALOGUE[id as usize].id == id` (checked by a test).
pub const CATALOGUE: [RuleInfo; 30] = [
    rule(
        RuleId::Auth1,
        "AUTH-1",
        "JWT with alg none or missing accepted",
        "API2:2023",
        S::Critical,
        C::High,
        Exchange,
        true,
    ),
    rule(
        RuleId::Auth2,
        "AUTH-2",
        "Expired or not-yet-valid JWT accepted",
        "API2:2023",
        S::High,
        C::High,
        Exchange,
        false,
    ),
    rule(
        RuleId::Auth3,
        "AUTH-3",
        "Token that never expires or lives too long accepted",
        "API2:2023",
        S::Medium,
        C::High,
        Exchange,
        false,
    ),
    rule(
        RuleId::Auth4,
        "AUTH-4",
        "Unauthenticated access to a normally authenticated route",
        "API2:2023",
        S::High,
        C::Medium,
        Exchange,
        false,
    ),
    rule(
        RuleId::Auth5,
        "AUTH-5",
        "Credentials exposed in the URL or over plain HTTP",
        "API2:2023",
        S::Medium,
        C::High,
        Request,
        false,
    ),
    rule(
        RuleId::Auth6,
        "AUTH-6",
        "Authentication failures from one client (brute force)",
        "API2:2023",
        S::High,
        C::Medium,
        Exchange,
        true,
    ),
    rule(
        RuleId::Tok1,
        "TOK-1",
        "One token used from several client addresses",
        "API2:2023",
        S::Medium,
        C::Medium,
        Exchange,
        false,
    ),
    rule(
        RuleId::Tok2,
        "TOK-2",
        "High client-error ratio for one actor",
        "API2:2023",
        S::Medium,
        C::Medium,
        Exchange,
        true,
    ),
    rule(
        RuleId::Tok3,
        "TOK-3",
        "Excessive usage or exfiltration by one actor",
        "API4:2023",
        S::High,
        C::Medium,
        Exchange,
        false,
    ),
    rule(
        RuleId::Bola1,
        "BOLA-1",
        "Object id enumeration by one actor on one route",
        "API1:2023",
        S::High,
        C::Medium,
        Exchange,
        true,
    ),
    rule(
        RuleId::Data1,
        "DATA-1",
        "Sensitive data in a response",
        "API3:2023",
        S::High,
        C::High,
        Exchange,
        false,
    ),
    rule(
        RuleId::Data2,
        "DATA-2",
        "Sensitive data in the URL",
        "API3:2023",
        S::Medium,
        C::High,
        Request,
        false,
    ),
    rule(
        RuleId::Inj1,
        "INJ-1",
        "SQL injection or XSS in a request parameter",
        "API8:2023",
        S::High,
        C::Medium,
        Request,
        true,
    ),
    rule(
        RuleId::Inj2,
        "INJ-2",
        "Path traversal, command or NoSQL injection in a request",
        "API8:2023",
        S::High,
        C::Medium,
        Request,
        true,
    ),
    rule(
        RuleId::Inj3,
        "INJ-3",
        "JNDI, template, deserialisation, XXE, CRLF or remote-inclusion injection in any request location",
        "API8:2023",
        S::High,
        C::Medium,
        Request,
        true,
    ),
    rule(
        RuleId::Ssrf1,
        "SSRF-1",
        "Request parameter points at an internal address",
        "API7:2023",
        S::High,
        C::Medium,
        Request,
        true,
    ),
    rule(
        RuleId::Scan1,
        "SCAN-1",
        "Known scanner",
        "API8:2023",
        S::Low,
        C::High,
        Request,
        true,
    ),
    rule(
        RuleId::Cfg1,
        "CFG-1",
        "Stack trace or database error in a response",
        "API8:2023",
        S::Medium,
        C::High,
        Exchange,
        false,
    ),
    rule(
        RuleId::Cfg2,
        "CFG-2",
        "CORS lets any origin read credentialed responses",
        "API8:2023",
        S::Medium,
        C::High,
        Exchange,
        false,
    ),
    rule(
        RuleId::Inv1,
        "INV-1",
        "New route after the learning period (shadow API)",
        "API9:2023",
        S::Low,
        C::Medium,
        Exchange,
        false,
    ),
    rule(
        RuleId::Inv2,
        "INV-2",
        "Older API version still in use",
        "API9:2023",
        S::Low,
        C::Medium,
        Exchange,
        false,
    ),
    rule(
        RuleId::Inv3,
        "INV-3",
        "Endpoint served but in no API specification (shadow API)",
        "API9:2023",
        S::Medium,
        C::High,
        Exchange,
        false,
    ),
    rule(
        RuleId::Inv4,
        "INV-4",
        "Request parameter or member the specification does not declare (mass assignment)",
        "API3:2023",
        S::Medium,
        C::Medium,
        Exchange,
        false,
    ),
    rule(
        RuleId::Inv5,
        "INV-5",
        "Response member the specification does not declare (excessive data exposure)",
        "API3:2023",
        S::Medium,
        C::Medium,
        Exchange,
        false,
    ),
    rule(
        RuleId::Inv6,
        "INV-6",
        "Deprecated endpoint still answering",
        "API9:2023",
        S::Low,
        C::High,
        Exchange,
        false,
    ),
    rule(
        RuleId::Anom1,
        "ANOM-1",
        "Response far above the endpoint's normal size (mass data exposure)",
        "API3:2023",
        S::Medium,
        C::Medium,
        Exchange,
        false,
    ),
    rule(
        RuleId::Anom2,
        "ANOM-2",
        "Response far slower than the endpoint's normal (resource consumption)",
        "API4:2023",
        S::Low,
        C::Medium,
        Exchange,
        false,
    ),
    rule(
        RuleId::Gql1,
        "GQL-1",
        "GraphQL introspection answered",
        "API8:2023",
        S::Medium,
        C::High,
        Exchange,
        false,
    ),
    rule(
        RuleId::Gql2,
        "GQL-2",
        "Many GraphQL operations or aliases in one request (brute force through one call)",
        "API4:2023",
        S::Medium,
        C::High,
        Exchange,
        true,
    ),
    rule(
        RuleId::Gql3,
        "GQL-3",
        "GraphQL query nested beyond the limit",
        "API4:2023",
        S::Low,
        C::High,
        Exchange,
        false,
    ),
];

impl RuleId {
    pub fn info(self) -> &'static RuleInfo {
        // The table is in enum order (test below); the fallback is never taken.
        CATALOGUE
            .get(self as usize)
            .filter(|r| r.id == self)
            .or_else(|| CATALOGUE.iter().find(|r| r.id == self))
            .unwrap_or(&CATALOGUE[0])
    }

    pub fn as_str(self) -> &'static str {
        self.info().code
    }

    /// `AUTH-1` → [`RuleId::Auth1`]; None for a code this build does not know.
    pub fn parse(code: &str) -> Option<Self> {
        CATALOGUE.iter().find(|r| r.code == code).map(|r| r.id)
    }

    pub fn all() -> impl Iterator<Item = RuleId> {
        CATALOGUE.iter().map(|r| r.id)
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RuleId {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        RuleId::parse(&code).ok_or_else(|| {
            let known: Vec<&str> = CATALOGUE.iter().map(|r| r.code).collect();
            serde::de::Error::custom(format!(
                "unknown rule {code:?}; known: {}",
                known.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order_and_codes_round_trip() {
        for (i, r) in CATALOGUE.iter().enumerate() {
            assert_eq!(r.id as usize, i, "{}", r.code);
            assert_eq!(RuleId::parse(r.code), Some(r.id));
            assert_eq!(
                serde_json::to_string(&r.id).expect("json"),
                format!("\"{}\"", r.code)
            );
        }
        assert_eq!(RuleId::parse("AUTH-99"), None);
        assert!(serde_json::from_str::<RuleId>("\"NOPE-1\"").is_err());
    }
}
