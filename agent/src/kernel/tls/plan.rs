//! TLS stacks as declarative attach plans: each plan lists typed probe points (which program,
//! where in the file, in which role) and one executor attaches any plan. A new stack (Go's
//! crypto/tls: an entry and every return instruction) is a new plan, not a new attacher.

use agent_common::names::{
    PROG_FLOOR_ENTRY, PROG_FLOOR_GO_RETURN, PROG_FLOOR_RETURN, PROG_GO_TLS_READ_ENTRY,
    PROG_GO_TLS_RETURN, PROG_GO_TLS_WRITE_ENTRY, PROG_SSL_CHECK_ENTRY, PROG_SSL_READ_EX_ENTRY,
    PROG_SSL_RETURN, PROG_SSL_WRITE_EX_ENTRY,
};

use super::{attach_point::InternalTargets, golang::GoTls};

/// What a probe point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Function entry: arguments saved for the matching return.
    Entry,
    /// Function return: the payload is read.
    Return,
    /// Count-only check on a wrapper while internal points are being verified.
    Check,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePoint {
    pub program: &'static str,
    /// File offset of the probed instruction.
    pub offset: u64,
    pub role: Role,
    /// The function it belongs to, for diagnostics.
    pub function: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttachPlan {
    pub points: Vec<ProbePoint>,
}

impl AttachPlan {
    fn entry_and_return(&mut self, function: &str, entry: &'static str, offset: u64) {
        for (program, role) in [(entry, Role::Entry), (PROG_SSL_RETURN, Role::Return)] {
            self.points.push(ProbePoint {
                program,
                offset,
                role,
                function: function.to_owned(),
            });
        }
    }

    /// The exported functions (symbol, entry program, file offset) — resolved, required ones
    /// already checked — each with its entry and return probe.
    pub fn exported(functions: &[(&'static str, &'static str, u64)]) -> Self {
        let mut plan = Self::default();
        for &(symbol, entry, offset) in functions {
            plan.entry_and_return(symbol, entry, offset);
        }
        plan
    }

    /// OpenSSL's internal read/write functions (cheap to probe: their first instruction is
    /// emulated), plus count-only checks on the exported wrappers that verify the choice on live
    /// traffic before they are removed.
    pub fn openssl_internal(t: &InternalTargets) -> Self {
        let mut plan = Self::default();
        for (name, offset, entry) in [
            ("internal read", t.read_offset, PROG_SSL_READ_EX_ENTRY),
            ("internal write", t.write_offset, PROG_SSL_WRITE_EX_ENTRY),
        ] {
            plan.entry_and_return(name, entry, offset);
        }
        for (symbol, offset) in t.read_wrappers.iter().chain(&t.write_wrappers) {
            plan.points.push(ProbePoint {
                program: PROG_SSL_CHECK_ENTRY,
                offset: *offset,
                role: Role::Check,
                function: (*symbol).to_owned(),
            });
        }
        plan
    }

    /// Go's crypto/tls: `Read` at its entry and at every `ret` in it (never a uretprobe, see
    /// agent-ebpf/src/gotls.rs); `Write` at its entry only, where it is captured.
    pub fn go(go: &GoTls) -> Self {
        let mut plan = Self::default();
        plan.points.push(ProbePoint {
            program: PROG_GO_TLS_READ_ENTRY,
            offset: go.read.entry,
            role: Role::Entry,
            function: format!("{} ({} returns)", go.read.name, go.read.returns.len()),
        });
        for &offset in &go.read.returns {
            plan.points.push(ProbePoint {
                program: PROG_GO_TLS_RETURN,
                offset,
                role: Role::Return,
                function: go.read.name.to_owned(),
            });
        }
        plan.points.push(ProbePoint {
            program: PROG_GO_TLS_WRITE_ENTRY,
            offset: go.write.entry,
            role: Role::Entry,
            function: format!("{} (at entry)", go.write.name),
        });
        plan
    }

    /// The same entry and return points with count-only programs, and no checks: what
    /// `--probe-mode floor` attaches to measure the probe hits' own cost. A return keeps its
    /// kind (uretprobe for OpenSSL, uprobe on a `ret` for Go).
    pub fn count_only(&self) -> Self {
        let points = self
            .points
            .iter()
            .filter(|p| p.role != Role::Check)
            .map(|p| ProbePoint {
                program: match (p.role, p.program) {
                    (Role::Return, PROG_SSL_RETURN) => PROG_FLOOR_RETURN,
                    (Role::Return, _) => PROG_FLOOR_GO_RETURN,
                    _ => PROG_FLOOR_ENTRY,
                },
                ..p.clone()
            })
            .collect();
        Self { points }
    }

    /// Whether the plan needs the runtime check (it has check points).
    pub fn verifying(&self) -> bool {
        self.points.iter().any(|p| p.role == Role::Check)
    }

    /// Functions probed for capture, for the `attached to …` line.
    pub fn described(&self) -> Vec<String> {
        self.points
            .iter()
            .filter(|p| p.role == Role::Entry)
            .map(|p| {
                if p.function.starts_with("internal") {
                    format!("{} @0x{:x}", p.function, p.offset)
                } else {
                    p.function.clone()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_plan_has_entry_return_pairs_and_checks() {
        let t = InternalTargets {
            read_offset: 0x100,
            write_offset: 0x200,
            read_wrappers: vec![("SSL_read", 0x10)],
            write_wrappers: vec![("SSL_write", 0x20), ("SSL_write_ex", 0x30)],
        };
        let plan = AttachPlan::openssl_internal(&t);
        let roles: Vec<(&str, u64, Role)> = plan
            .points
            .iter()
            .map(|p| (p.program, p.offset, p.role))
            .collect();
        assert_eq!(
            roles,
            [
                (PROG_SSL_READ_EX_ENTRY, 0x100, Role::Entry),
                (PROG_SSL_RETURN, 0x100, Role::Return),
                (PROG_SSL_WRITE_EX_ENTRY, 0x200, Role::Entry),
                (PROG_SSL_RETURN, 0x200, Role::Return),
                (PROG_SSL_CHECK_ENTRY, 0x10, Role::Check),
                (PROG_SSL_CHECK_ENTRY, 0x20, Role::Check),
                (PROG_SSL_CHECK_ENTRY, 0x30, Role::Check),
            ]
        );
        assert!(plan.verifying());
        assert_eq!(
            plan.described(),
            ["internal read @0x100", "internal write @0x200"]
        );
        let go = GoTls {
            version: "go1.21.13".into(),
            read: super::super::golang::GoFunction {
                name: super::super::golang::READ_FUNCTION,
                entry: 0x1000,
                returns: vec![0x1040, 0x10a0],
            },
            write: super::super::golang::GoFunction {
                name: super::super::golang::WRITE_FUNCTION,
                entry: 0x2000,
                returns: vec![0x2100],
            },
        };
        let plan = AttachPlan::go(&go);
        let roles: Vec<(&str, u64, Role)> = plan
            .points
            .iter()
            .map(|p| (p.program, p.offset, p.role))
            .collect();
        assert_eq!(
            roles,
            [
                (PROG_GO_TLS_READ_ENTRY, 0x1000, Role::Entry),
                (PROG_GO_TLS_RETURN, 0x1040, Role::Return),
                (PROG_GO_TLS_RETURN, 0x10a0, Role::Return),
                (PROG_GO_TLS_WRITE_ENTRY, 0x2000, Role::Entry),
            ]
        );
        assert!(!plan.verifying());
        assert_eq!(
            plan.described(),
            [
                "crypto/tls.(*Conn).Read (2 returns)",
                "crypto/tls.(*Conn).Write (at entry)"
            ]
        );
        let exported = AttachPlan::exported(&[("SSL_write_ex", PROG_SSL_WRITE_EX_ENTRY, 0x30)]);
        assert!(!exported.verifying());
        assert_eq!(exported.described(), ["SSL_write_ex"]);
    }

    #[test]
    fn count_only_keeps_points_and_probe_kinds_without_checks() {
        let t = InternalTargets {
            read_offset: 0x100,
            write_offset: 0x200,
            read_wrappers: vec![("SSL_read", 0x10)],
            write_wrappers: vec![],
        };
        let floor = AttachPlan::openssl_internal(&t).count_only();
        let roles: Vec<(&str, u64)> = floor.points.iter().map(|p| (p.program, p.offset)).collect();
        assert_eq!(
            roles,
            [
                (PROG_FLOOR_ENTRY, 0x100),
                (PROG_FLOOR_RETURN, 0x100),
                (PROG_FLOOR_ENTRY, 0x200),
                (PROG_FLOOR_RETURN, 0x200),
            ]
        );
        assert!(!floor.verifying());
        let go = GoTls {
            version: "go1.21.13".into(),
            read: super::super::golang::GoFunction {
                name: super::super::golang::READ_FUNCTION,
                entry: 0x1000,
                returns: vec![0x1040],
            },
            write: super::super::golang::GoFunction {
                name: super::super::golang::WRITE_FUNCTION,
                entry: 0x2000,
                returns: vec![],
            },
        };
        let programs: Vec<&str> = AttachPlan::go(&go)
            .count_only()
            .points
            .iter()
            .map(|p| p.program)
            .collect();
        assert_eq!(
            programs,
            [PROG_FLOOR_ENTRY, PROG_FLOOR_GO_RETURN, PROG_FLOOR_ENTRY]
        );
    }
}
