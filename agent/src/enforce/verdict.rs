//! A kernel verdict turned into action and evidence: the reset in enforce mode (with the
//! blocks-per-minute cap), and the `cleartap.enforcement/1` event naming the list entries that
//! made it.

use agent_common::enforce::{
    ACTION_WOULD_BLOCK, CREDENTIAL_API_KEY, CREDENTIAL_CLIENT_ADDRESS, POINT_CLIENT_WRITE,
    VERDICT_GATE_FAILED, VERDICT_PLAINTEXT, VERDICT_TUPLE_KNOWN, VerdictRecord,
};

use super::{
    Enforcer, Mode, VerdictContext,
    evidence::{
        self, Action, ActorEvidence, ConnectionEvidence, Endpoint, EnforcementEvent,
        ProcessEvidence, ResetEvidence, RouteEvidence,
    },
    listing, reset,
};
use crate::kernel::control::VerdictMaps;

impl<M: VerdictMaps> Enforcer<M> {
    /// Counts a block against the per-minute cap; trips to monitor mode past it.
    fn count_block(&mut self, now_mono_ns: u64) {
        let minute = now_mono_ns / 60_000_000_000;
        if self.window.0 != minute {
            self.window = (minute, 0);
        }
        self.window.1 += 1;
        let cap = self.config.max_blocks_per_minute;
        if cap > 0 && self.window.1 > cap && self.mode == Mode::Enforce {
            self.stats.tripped += 1;
            log::error!(
                "enforcement: more than {cap} blocks within a minute ([enforce] max_blocks_per_minute); switching to monitor mode"
            );
            let result = self.set_mode(Mode::Monitor);
            self.note(result);
        }
    }

    /// Acts on one kernel verdict (reset in enforce mode) and returns its evidence.
    pub fn on_verdict(
        &mut self,
        v: &VerdictRecord,
        ctx: &VerdictContext,
        reset_connection: impl FnOnce(
            &agent_common::enforce::GateKey,
        ) -> Result<std::time::Duration, reset::ResetError>,
        now_mono_ns: impl Fn() -> u64,
    ) -> EnforcementEvent {
        self.stats.verdicts += 1;
        let tuple_known = v.flags & VERDICT_TUPLE_KNOWN != 0;
        let gated = tuple_known && v.flags & VERDICT_GATE_FAILED == 0;
        let (action, reset) = if v.action == ACTION_WOULD_BLOCK {
            self.stats.would_block += 1;
            (
                Action::WouldBlock,
                ResetEvidence {
                    attempted: false,
                    done: false,
                    reason: Some("monitor_mode"),
                    decision_to_reset_us: None,
                },
            )
        } else {
            self.count_block(now_mono_ns());
            let outcome = if tuple_known {
                reset_connection(&v.gate)
            } else {
                Err(reset::ResetError::NoTuple)
            };
            match outcome {
                Ok(_) => {
                    // The socket is gone: its tuple may be reused by a new connection.
                    let result = self.maps.remove_gate(&v.gate);
                    self.note(result);
                    self.stats.reset += 1;
                    let after = now_mono_ns().saturating_sub(v.header.timestamp_ns) / 1000;
                    (
                        Action::Reset,
                        ResetEvidence {
                            attempted: true,
                            done: true,
                            reason: None,
                            decision_to_reset_us: Some(after),
                        },
                    )
                }
                Err(e) => {
                    log::warn!("enforcement: reset of a blocked connection failed: {e}");
                    let action = if gated {
                        self.stats.blocked += 1;
                        Action::Blocked
                    } else {
                        self.stats.reset_failed += 1;
                        Action::ResetFailed
                    };
                    (
                        action,
                        ResetEvidence {
                            attempted: tuple_known,
                            done: false,
                            reason: Some(e.reason()),
                            decision_to_reset_us: None,
                        },
                    )
                }
            }
        };
        self.evidence(v, ctx, action, gated, reset)
    }

    fn evidence(
        &self,
        v: &VerdictRecord,
        ctx: &VerdictContext,
        action: Action,
        gated: bool,
        reset: ResetEvidence,
    ) -> EnforcementEvent {
        let by_address = v.credential == CREDENTIAL_CLIENT_ADDRESS;
        let client_ip = by_address
            .then(|| crate::conn::ip_of(v.gate.family, &v.gate.remote_addr))
            .flatten();
        let actor = if by_address {
            client_ip.and_then(|ip| self.clients.get(&ip))
        } else {
            self.actors.get(&v.token_key)
        };
        let route = self.routes.get(&v.route_key);
        let endpoint = |addr: &[u8; 16], port: u16| {
            crate::conn::ip_of(v.gate.family, addr).map(|ip| Endpoint {
                ip: ip.to_string(),
                port,
            })
        };
        let client = v.point == POINT_CLIENT_WRITE;
        EnforcementEvent {
            schema: evidence::SCHEMA,
            time: crate::event::build::rfc3339(
                i128::from(v.header.timestamp_ns) + ctx.monotonic_to_unix_ns,
            ),
            host: ctx.host.to_owned(),
            action,
            mode: if v.action == ACTION_WOULD_BLOCK {
                Mode::Monitor.as_str()
            } else {
                Mode::Enforce.as_str()
            },
            point: match (client, v.flags & VERDICT_PLAINTEXT != 0) {
                (true, false) => "tls_write_entry",
                (false, false) => "tls_read_return",
                (true, true) => "socket_write_entry",
                (false, true) => "socket_read_exit",
            },
            gates: if gated && v.action != ACTION_WOULD_BLOCK {
                self.gates.clone()
            } else {
                Vec::new()
            },
            policy: if route.is_none()
                && (self.config.any_route || actor.is_some_and(|a| a.any_route))
            {
                "abusive_actor_on_any_route"
            } else {
                "abusive_actor_on_sensitive_route"
            },
            actor: ActorEvidence {
                token: actor.and_then(|a| a.token.clone()),
                credential: match v.credential {
                    CREDENTIAL_API_KEY => "x-api-key",
                    CREDENTIAL_CLIENT_ADDRESS => "client_address",
                    _ => "authorization",
                },
                client_ip: client_ip.map(|ip| ip.to_string()),
                listing: actor.map(|a| listing(&a.rules, a.operator.as_ref(), a.until_ms)),
            },
            route: RouteEvidence {
                method: route.map(|r| r.method.clone()),
                template: route.map(|r| r.template.clone()),
                listed_for_host: route.map(|r| r.host.clone()),
                listing: route.map(|r| listing(&r.rules, r.operator.as_ref(), r.until_ms)),
            },
            process: ProcessEvidence {
                pid: (v.header.pid_tgid >> 32) as u32,
                comm: crate::kernel::decode::c_string(&v.comm),
                exe: ctx.exe.map(str::to_owned),
                cgroup_id: v.cgroup_id,
            },
            connection: ConnectionEvidence {
                role: if client { "client" } else { "server" },
                local: (v.flags & VERDICT_TUPLE_KNOWN != 0)
                    .then(|| endpoint(&v.gate.local_addr, v.gate.local_port))
                    .flatten(),
                remote: (v.flags & VERDICT_TUPLE_KNOWN != 0)
                    .then(|| endpoint(&v.gate.remote_addr, v.gate.remote_port))
                    .flatten(),
                fd: v.fd,
            },
            reset,
        }
    }
}
