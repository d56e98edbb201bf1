//! A finding (schema `cleartap.finding/1`): which rule, against which actor on which route,
//! why (redacted evidence), how often, a summary of the exchange that triggered it, and the
//! stream it happened on (kept in memory for acting on it; not written, since it holds an
//! address inside the monitored process).

use serde::{Serialize, Serializer, ser::SerializeStruct};
use serde_json::Value;

use super::catalogue::{Confidence, RuleId};
use crate::event::{Endpoint, Role};

pub const SCHEMA: &str = "cleartap.finding/1";

/// Who did it: the token's redaction tag when there is a credential, and the client address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Actor {
    pub token: Option<String>,
    pub client_ip: Option<String>,
}

impl Actor {
    /// The key the rules count by: the token tag when there is one, else the client address.
    pub fn key(&self) -> &str {
        self.token
            .as_deref()
            .or(self.client_ip.as_deref())
            .unwrap_or("unknown")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Route {
    pub host: String,
    pub method: String,
    /// `/users/{id}`: the path with its parameters abstracted.
    pub template: String,
}

/// The stream a finding happened on: enough to find the connection again while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamIdentity {
    pub pid: u32,
    /// The kernel's stream key (None in replay).
    pub stream: Option<u64>,
    pub fd: Option<i32>,
    pub local: Option<Endpoint>,
    pub remote: Option<Endpoint>,
    pub role: Role,
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExchangeProcess {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExchangeRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExchangeResponse {
    pub status: Option<u16>,
}

/// What of the triggering exchange a finding repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeSummary {
    pub time: String,
    pub process: ExchangeProcess,
    pub request: ExchangeRequest,
    pub response: ExchangeResponse,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: RuleId,
    /// Node name.
    pub host: String,
    pub actor: Actor,
    pub route: Route,
    /// Rule-specific, redacted: only values the exchange event already shows, or the kind of
    /// thing found.
    pub evidence: Value,
    /// The rule's confidence, or high when the response confirmed the finding
    /// (`evidence.confirmed_by`, see detect/corroborate.rs).
    pub confidence: Confidence,
    /// 1 + repeats of (rule, actor, route) suppressed since the last report.
    pub occurrences: u64,
    pub exchange: ExchangeSummary,
    pub stream: StreamIdentity,
    /// When the triggering exchange started, in ms since the epoch.
    pub epoch_ms: i64,
}

struct RuleOut(RuleId, Confidence);

impl Serialize for RuleOut {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let info = self.0.info();
        let mut s = serializer.serialize_struct("Rule", 5)?;
        s.serialize_field("id", info.code)?;
        s.serialize_field("title", info.title)?;
        s.serialize_field("owasp", info.owasp)?;
        s.serialize_field("severity", &info.severity)?;
        s.serialize_field("confidence", &self.1)?;
        s.end()
    }
}

struct ConnectionOut<'a>(&'a StreamIdentity);

impl Serialize for ConnectionOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Connection", 4)?;
        s.serialize_field("local", &self.0.local)?;
        s.serialize_field("remote", &self.0.remote)?;
        s.serialize_field("role", &self.0.role)?;
        s.serialize_field("tls", &self.0.tls)?;
        s.end()
    }
}

struct ExchangeOut<'a>(&'a Finding);

impl Serialize for ExchangeOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let x = &self.0.exchange;
        let mut s = serializer.serialize_struct("Exchange", 5)?;
        s.serialize_field("time", &x.time)?;
        s.serialize_field("process", &x.process)?;
        s.serialize_field("connection", &ConnectionOut(&self.0.stream))?;
        s.serialize_field("request", &x.request)?;
        s.serialize_field("response", &x.response)?;
        s.end()
    }
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Finding", 9)?;
        s.serialize_field("schema", SCHEMA)?;
        s.serialize_field("time", &self.exchange.time)?;
        s.serialize_field("host", &self.host)?;
        s.serialize_field("rule", &RuleOut(self.rule, self.confidence))?;
        s.serialize_field("actor", &self.actor)?;
        s.serialize_field("route", &self.route)?;
        s.serialize_field("evidence", &self.evidence)?;
        s.serialize_field("occurrences", &self.occurrences)?;
        s.serialize_field("exchange", &ExchangeOut(self))?;
        s.end()
    }
}
