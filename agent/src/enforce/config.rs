//! `[enforce]` of the config file (and `--enforce`).

use serde::{Deserialize, Serialize};

/// What kernel verdicts do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No verdicts: the probes skip the head scan after one map read.
    #[default]
    Off,
    /// Verdicts are reported as `would_block`; every request goes through.
    Monitor,
    /// A verdict closes the connection's egress gate and the agent resets the connection.
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
        }
    }

    pub fn kernel(self) -> u32 {
        use agent_common::enforce::{MODE_ENFORCE, MODE_MONITOR, MODE_OFF};
        match self {
            Mode::Off => MODE_OFF,
            Mode::Monitor => MODE_MONITOR,
            Mode::Enforce => MODE_ENFORCE,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EnforceConfig {
    pub mode: Mode,
    /// Judge a client's request as it writes it (it never leaves the node on a block).
    pub client_side: bool,
    /// Judge a server's request as it reads it (its response never leaves on a block).
    pub server_side: bool,
    /// Deny a listed actor on every route, not only on routes listed as sensitive.
    pub any_route: bool,
    /// Also deny listed client addresses (AUTH-6 without a token, `cleartap block add --actor
    /// IP`), at servers' reads. Off by default: clients behind one NAT or proxy share one.
    pub client_addresses: bool,
    /// Longest a list entry is enforced, whatever the detection TTLs say.
    pub max_ttl_secs: u64,
    /// More blocks than this within a minute switches to monitor mode (a runaway list must
    /// not take a service down); 0 = no cap.
    pub max_blocks_per_minute: u64,
    /// How long a gate holds a connection the reset could not close.
    pub gate_ttl_secs: u64,
    /// Where every verdict's evidence is also appended (JSON lines, mode 0600), or "off".
    pub audit_log: String,
    /// The audit log's bound: past it the file becomes `<audit_log>.1`.
    pub audit_log_max_bytes: u64,
    /// The root-only socket `cleartap block …` and `cleartap enforce MODE` talk to, or "off".
    pub admin_socket: String,
    /// `IP:PORT` of the decision service for gateways (nginx auth_request, Traefik
    /// ForwardAuth, Envoy ext_authz), or "off".
    pub decision_listen: String,
}

impl Default for EnforceConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            client_side: true,
            server_side: true,
            any_route: false,
            client_addresses: false,
            max_ttl_secs: 3600,
            max_blocks_per_minute: 600,
            gate_ttl_secs: 60,
            audit_log: "/var/lib/cleartap/enforcement.jsonl".into(),
            audit_log_max_bytes: 16 << 20,
            admin_socket: super::admin::DEFAULT_SOCKET.into(),
            decision_listen: "off".into(),
        }
    }
}

impl EnforceConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.mode != Mode::Off && !self.client_side && !self.server_side {
            return Err(
                "[enforce] client_side and server_side are both false: no verdict could be taken"
                    .into(),
            );
        }
        if !(1..=7 * 86_400).contains(&self.max_ttl_secs) {
            return Err(format!(
                "[enforce] max_ttl_secs = {}: must be between 1 and 604800",
                self.max_ttl_secs
            ));
        }
        if !(1..=3600).contains(&self.gate_ttl_secs) {
            return Err(format!(
                "[enforce] gate_ttl_secs = {}: must be between 1 and 3600",
                self.gate_ttl_secs
            ));
        }
        if self.decision_listen != "off"
            && self
                .decision_listen
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(format!(
                "[enforce] decision_listen = {:?}: must be an IP:PORT such as \"127.0.0.1:9465\", or \"off\"",
                self.decision_listen
            ));
        }
        if self.audit_log.is_empty() {
            return Err("[enforce] audit_log is empty: give a path, or \"off\"".into());
        }
        if self.audit_log_max_bytes < 4096 {
            return Err(format!(
                "[enforce] audit_log_max_bytes = {}: must be at least 4096",
                self.audit_log_max_bytes
            ));
        }
        Ok(())
    }

    /// POINT_* bits of the verdict points in use.
    pub fn points(&self) -> u32 {
        use agent_common::enforce::{POINT_CLIENT_WRITE, POINT_SERVER_READ};
        (if self.client_side {
            POINT_CLIENT_WRITE
        } else {
            0
        }) | (if self.server_side {
            POINT_SERVER_READ
        } else {
            0
        })
    }
}
