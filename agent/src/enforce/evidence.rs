//! `cleartap.enforcement/1`: the evidence of one kernel verdict — what was decided, where, under
//! which policy, which list entries made it (the rules that listed them and until when), the
//! redacted actor and route, the process and connection, and what the reset did.

use serde::Serialize;

pub const SCHEMA: &str = "cleartap.enforcement/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Monitor mode: the request went through.
    WouldBlock,
    /// The gate holds the connection; the reset did not happen (see `reset.reason`).
    Blocked,
    /// The gate held the connection and the agent reset it.
    Reset,
    /// Neither the gate nor the reset could act: the request was not stopped.
    ResetFailed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// Rule ids whose findings put the entry on its list.
    pub listed_by: Vec<String>,
    /// RFC 3339 time after which the entry no longer counts.
    pub listed_until: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActorEvidence {
    /// The redaction tag of the credential, as in exchange events and findings.
    pub token: Option<String>,
    /// `authorization` or `x-api-key`: where the kernel found the credential; or
    /// `client_address` when the client's address is what is listed.
    pub credential: &'static str,
    /// The listed client address (`credential: client_address` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(flatten)]
    pub listing: Option<Listing>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteEvidence {
    pub method: Option<String>,
    pub template: Option<String>,
    /// The host the route was listed for (the kernel matches method and template only).
    pub listed_for_host: Option<String>,
    #[serde(flatten)]
    pub listing: Option<Listing>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessEvidence {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub cgroup_id: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionEvidence {
    /// `client` when the verdict was taken at the process's write, `server` at its read.
    pub role: &'static str,
    pub local: Option<Endpoint>,
    pub remote: Option<Endpoint>,
    pub fd: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResetEvidence {
    pub attempted: bool,
    pub done: bool,
    /// Why it did not happen, when it did not.
    pub reason: Option<&'static str>,
    /// Microseconds from the kernel's decision to the end of the reset.
    pub decision_to_reset_us: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnforcementEvent {
    pub schema: &'static str,
    pub time: String,
    pub host: String,
    pub action: Action,
    pub mode: &'static str,
    /// `tls_write_entry` / `socket_write_entry` (client: the TLS probe or the plain socket's
    /// write), `tls_read_return` / `socket_read_exit` (server), or `decision_service`.
    pub point: &'static str,
    /// Gates that hold the connection: `cgroup_skb_egress`, or none.
    pub gates: Vec<&'static str>,
    /// `abusive_actor_on_sensitive_route` or `abusive_actor_on_any_route`.
    pub policy: &'static str,
    pub actor: ActorEvidence,
    pub route: RouteEvidence,
    pub process: ProcessEvidence,
    pub connection: ConnectionEvidence,
    pub reset: ResetEvidence,
}
