//! Names of maps, programs and globals, used by both halves so a rename cannot split them.

pub const MAP_EVENTS: &str = "EVENTS";
pub const MAP_COUNTERS: &str = "COUNTERS";

pub const PROG_SSL_READ_ENTRY: &str = "ssl_read_entry";
pub const PROG_SSL_READ_EX_ENTRY: &str = "ssl_read_ex_entry";
pub const PROG_SSL_WRITE_ENTRY: &str = "ssl_write_entry";
pub const PROG_SSL_WRITE_EX_ENTRY: &str = "ssl_write_ex_entry";
pub const PROG_SSL_RETURN: &str = "ssl_return";
/// Count-only entry probe on exported wrappers while an internal attach point is verified.
pub const PROG_SSL_CHECK_ENTRY: &str = "ssl_check_entry";
/// Go crypto/tls: entries of (*Conn).Read and (*Conn).Write, and every return instruction.
pub const PROG_GO_TLS_READ_ENTRY: &str = "go_tls_read_entry";
pub const PROG_GO_TLS_WRITE_ENTRY: &str = "go_tls_write_entry";
pub const PROG_GO_TLS_RETURN: &str = "go_tls_return";
/// Count-only stand-ins for the programs above (`--probe-mode floor`).
pub const PROG_FLOOR_ENTRY: &str = "floor_entry";
pub const PROG_FLOOR_RETURN: &str = "floor_return";
pub const PROG_FLOOR_GO_RETURN: &str = "floor_go_return";
pub const MAP_LIB_CHECKS: &str = "LIB_CHECKS";

/// Syscall tracepoints (program = tracepoint name) of socket I/O: nested inside an SSL call
/// they reveal its socket; outside one they carry plain HTTP.
pub const SOCKET_IO_SYSCALLS: [&str; 16] = [
    "sys_enter_read",
    "sys_exit_read",
    "sys_enter_write",
    "sys_exit_write",
    "sys_enter_readv",
    "sys_exit_readv",
    "sys_enter_writev",
    "sys_exit_writev",
    "sys_enter_recvfrom",
    "sys_exit_recvfrom",
    "sys_enter_sendto",
    "sys_exit_sendto",
    "sys_enter_recvmsg",
    "sys_exit_recvmsg",
    "sys_enter_sendmsg",
    "sys_exit_sendmsg",
];
/// (program, kernel function) of the kprobe socket hooks, attached where kprobes exist.
pub const SOCKET_KPROBES: [(&str, &str); 2] = [
    ("tcp_sendmsg_entry", "tcp_sendmsg"),
    ("tcp_recvmsg_entry", "tcp_recvmsg"),
];
/// (program, category, tracepoint) for connection lifetime and process tracking.
pub const LIFETIME_TRACEPOINTS: [(&str, &str, &str); 11] = [
    ("sys_enter_connect", "syscalls", "sys_enter_connect"),
    ("sys_exit_connect", "syscalls", "sys_exit_connect"),
    ("sys_exit_accept", "syscalls", "sys_exit_accept"),
    ("sys_exit_accept4", "syscalls", "sys_exit_accept4"),
    ("sys_enter_close", "syscalls", "sys_enter_close"),
    ("sys_enter_dup2", "syscalls", "sys_enter_dup2"),
    ("sys_enter_dup3", "syscalls", "sys_enter_dup3"),
    ("sys_enter_sendfile64", "syscalls", "sys_enter_sendfile64"),
    ("sys_exit_sendfile64", "syscalls", "sys_exit_sendfile64"),
    ("sched_process_exec", "sched", "sched_process_exec"),
    ("sched_process_exit", "sched", "sched_process_exit"),
];

pub const GLOBAL_CAPTURE_MAX_BYTES: &str = "CAPTURE_MAX_BYTES";
pub const GLOBAL_FILTER_FLAGS: &str = "FILTER_FLAGS";
pub const MAP_FILTER_PIDS: &str = "FILTER_PIDS";
pub const MAP_FILTER_COMMS: &str = "FILTER_COMMS";
pub const MAP_FILTER_CGROUPS: &str = "FILTER_CGROUPS";
pub const MAP_FILTER_PORTS: &str = "FILTER_PORTS";
pub const GLOBAL_WAKEUP_BYTES: &str = "WAKEUP_BYTES";
pub const GLOBAL_PLAINTEXT_ENABLED: &str = "PLAINTEXT_ENABLED";
/// Kernel struct offsets resolved from BTF by userspace; zero means unknown.
pub const GLOBAL_KERNEL_OFFSETS: &str = "KERNEL_OFFSETS";

pub const MAP_ENFORCE_SETTINGS: &str = "ENFORCE_SETTINGS";
pub const MAP_ENFORCE_ACTORS: &str = "ENFORCE_ACTORS";
pub const MAP_ENFORCE_ROUTES: &str = "ENFORCE_ROUTES";
pub const MAP_ENFORCE_CLIENTS: &str = "ENFORCE_CLIENTS";
pub const MAP_ENFORCE_GATE: &str = "ENFORCE_GATE";
pub const MAP_ENFORCE_COUNTERS: &str = "ENFORCE_COUNTERS";
/// cgroup_skb/egress program of the enforcement gate.
pub const PROG_ENFORCE_EGRESS_GATE: &str = "enforce_egress_gate";
/// Program array slot 0: the plain-HTTP verdict program, reached by tail call.
pub const MAP_ENFORCE_JUMP: &str = "ENFORCE_JUMP";
/// The plain-HTTP verdict program (a tracepoint program that is never attached itself).
pub const PROG_ENFORCE_PLAIN_JUDGE: &str = "enforce_plain_judge";
/// BPF-LSM program of the enforcement gate (hook socket_sendmsg).
pub const PROG_ENFORCE_LSM_SENDMSG: &str = "enforce_lsm_sendmsg";
pub const LSM_HOOK_SOCKET_SENDMSG: &str = "socket_sendmsg";
