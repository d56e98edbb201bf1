//! Agent configuration (command-line flags and their environment variables).

pub mod ca_file;
pub mod file;

use clap::Parser;

use agent_common::event::CAPTURE_LIMIT_BYTES;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "cleartap",
    version,
    about = "See the HTTP traffic of every process on this host in clear text, TLS included.",
    long_about = "cleartap loads eBPF programs that read plaintext at the TLS libraries' read/write \
functions (OpenSSL, also inside executables such as node, and GnuTLS: after decryption, before \
encryption), ties it to sockets with syscall tracepoints (and kprobes where the kernel has them), \
captures plain HTTP from socket syscalls, rebuilds HTTP/1.x exchanges and prints one JSON object \
per exchange on stdout. Diagnostics go to stderr. Needs root with CAP_SYS_ADMIN (uprobes \
require it on current kernels), CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH; `cleartap install` sets \
up a systemd unit with exactly those. Stop with Ctrl-C or SIGTERM: probes are detached and an exit \
summary with every drop counter is logged.",
    after_help = "Log verbosity: RUST_LOG=debug|info|warn (default info)."
)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML configuration file (see `cleartap config default`). Flags and environment variables
    /// override it. Without this option /etc/cleartap/cleartap.toml is read when it exists.
    #[arg(long, env = "CLEARTAP_CONFIG", value_name = "PATH", global = true)]
    pub config: Option<std::path::PathBuf>,

    /// Where to serve Prometheus /metrics and /healthz ("IP:PORT"), or "off".
    #[arg(
        long,
        env = "CLEARTAP_METRICS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub metrics_listen: String,

    /// Bytes of each request/response body to include in events (0 = none). Bodies may hold
    /// secrets; enable only where needed.
    #[arg(long, env = "CLEARTAP_BODY_PREFIX_BYTES", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub body_prefix_bytes: u32,

    /// Show body prefixes only for requests whose path starts with this (repeatable; e.g.
    /// /api/). Without it, --body-prefix-bytes applies to every route.
    #[arg(long = "body-route", value_name = "PATH_PREFIX")]
    pub body_routes: Vec<String>,

    /// Bytes captured from one SSL_read/SSL_write call at most; the rest is counted as truncated.
    #[arg(long, env = "CLEARTAP_CAPTURE_MAX_BYTES", default_value_t = CAPTURE_LIMIT_BYTES as u32,
          value_parser = clap::value_parser!(u32).range(1..=CAPTURE_LIMIT_BYTES as i64))]
    pub capture_max_bytes: u32,

    /// Size of the kernel→agent ring buffer in MiB (power of two).
    #[arg(long, env = "CLEARTAP_RING_BUFFER_MIB", default_value_t = 16, value_parser = parse_ring_mib)]
    pub ring_buffer_mib: u32,

    /// How often the agent drains the ring buffer when not woken by a full batch, in ms.
    #[arg(long, env = "CLEARTAP_POLL_INTERVAL_MS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub poll_interval_ms: u64,

    /// Pending bytes in the ring buffer that make the kernel wake the agent early.
    #[arg(long, env = "CLEARTAP_WAKEUP_BYTES", default_value_t = 256 * 1024)]
    pub wakeup_bytes: u64,

    /// Concurrent streams (TLS or plain) tracked at most; the longest idle is evicted (and counted).
    #[arg(long, env = "CLEARTAP_MAX_STREAMS", default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_streams: u64,

    /// Seconds without traffic after which a stream is dropped and its pending requests reported.
    #[arg(long, env = "CLEARTAP_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    pub idle_timeout_secs: u64,

    /// Every this many seconds, detach TLS libraries that no process maps and whose path no
    /// longer names the same file (replaced by an upgrade, or a finished container's copy), so
    /// their inodes are not pinned.
    #[arg(long, env = "CLEARTAP_LIBRARY_SWEEP_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub library_sweep_secs: u64,

    /// Where to probe OpenSSL: `auto` probes the internal read/write functions when the
    /// library's machine code has the known shape (much cheaper; verified against the exported
    /// functions on live traffic), `exported` always probes SSL_read/SSL_write(_ex). `floor`
    /// is for benchmarks: count-only probes at the points `auto` chooses and nothing else (no
    /// capture, no events), to measure what the probe hits cost on their own.
    #[arg(long, env = "CLEARTAP_PROBE_MODE", value_enum, default_value_t = crate::kernel::tls::ProbeMode::Auto)]
    pub probe_mode: crate::kernel::tls::ProbeMode,

    /// Which kernel hooks tie traffic to sockets: `auto` uses kprobes on tcp_sendmsg/tcp_recvmsg
    /// where the kernel has kprobes (the socket comes straight from the kernel call) and the
    /// syscall tracepoints with an fd-table walk where it does not; both give the same events.
    #[arg(long, env = "CLEARTAP_SOCKET_HOOKS", value_enum, default_value_t = SocketHooks::Auto)]
    pub socket_hooks: SocketHooks,

    /// Do not capture plain (unencrypted) HTTP on sockets; only TLS library traffic.
    #[arg(long, env = "CLEARTAP_NO_PLAINTEXT")]
    pub no_plaintext: bool,

    /// Diagnostics: also write every raw kernel record to this file (replayable with the
    /// benchmarks). It holds plaintext payloads, secrets included.
    #[arg(long, value_name = "PATH")]
    pub record_raw: Option<std::path::PathBuf>,

    /// For benchmarks: exchanges are captured, reassembled and parsed, then dropped — no
    /// events, no detections, no inventory — and counted (`bench_dropped_exchanges` in the exit
    /// summary). Run beside the default configuration, it splits the agent's cost per exchange
    /// into capture (this) and what building, judging and writing events add.
    #[arg(long)]
    pub bench_capture_only: bool,

    /// Capture only these process ids (repeatable; filtered in the kernel, as are all filters).
    #[arg(long = "pid", value_name = "PID", help_heading = "Filters")]
    pub pids: Vec<u32>,
    /// Never capture these process ids (repeatable).
    #[arg(long = "exclude-pid", value_name = "PID", help_heading = "Filters")]
    pub exclude_pids: Vec<u32>,
    /// Capture only processes with this task name (as in /proc/PID/comm, ≤ 15 bytes; repeatable).
    #[arg(long = "comm", value_name = "NAME", help_heading = "Filters")]
    pub comms: Vec<String>,
    /// Never capture processes with this task name (repeatable).
    #[arg(long = "exclude-comm", value_name = "NAME", help_heading = "Filters")]
    pub exclude_comms: Vec<String>,
    /// Capture only processes in this cgroup v2 id (the `process.cgroup_id` of events; repeatable).
    #[arg(long = "cgroup", value_name = "ID", help_heading = "Filters")]
    pub cgroups: Vec<u64>,
    /// Never capture processes in this cgroup v2 id (repeatable).
    #[arg(long = "exclude-cgroup", value_name = "ID", help_heading = "Filters")]
    pub exclude_cgroups: Vec<u64>,
    /// Capture only connections with this local or remote port (repeatable).
    #[arg(long = "port", value_name = "PORT", help_heading = "Filters")]
    pub ports: Vec<u16>,
    /// Never capture connections with this local or remote port (repeatable).
    #[arg(long = "exclude-port", value_name = "PORT", help_heading = "Filters")]
    pub exclude_ports: Vec<u16>,

    /// Key of the redaction tags: secrets become [REDACTED:<HMAC tag>] so one token can be
    /// followed across events without being stored. Created (32 random bytes, mode 0600) when
    /// missing.
    #[arg(long, env = "CLEARTAP_TOKEN_KEY_FILE", value_name = "PATH", default_value = crate::app::token_key::DEFAULT_PATH)]
    pub token_key_file: std::path::PathBuf,

    /// Used when --token-key-file is absent and cannot be created (a Kubernetes Secret that was
    /// not made, mounted read-only): this node's own key file, created when missing. Tags and
    /// enforcement keys are then not shared with other nodes; the agent says so.
    #[arg(long, env = "CLEARTAP_TOKEN_KEY_FALLBACK_FILE", value_name = "PATH")]
    pub token_key_fallback_file: Option<std::path::PathBuf>,

    /// Write the API inventory (JSON) here at exit and on SIGUSR1; "off" for never.
    #[arg(
        long,
        env = "CLEARTAP_INVENTORY_FILE",
        value_name = "PATH",
        default_value = "/var/lib/cleartap/inventory.json"
    )]
    pub inventory_file: String,

    /// Inline enforcement: `off`, `monitor` (verdicts reported as would_block, nothing stopped)
    /// or `enforce` (a listed actor's request on a listed route is stopped in the kernel and its
    /// connection reset, with a cleartap.enforcement/1 event as evidence). Overrides
    /// `[enforce] mode` of the config file; default off.
    #[arg(
        long = "enforce",
        env = "CLEARTAP_ENFORCE",
        value_enum,
        value_name = "MODE"
    )]
    pub enforce_mode: Option<crate::enforce::Mode>,

    /// Enforcement from the config file's `[enforce]`.
    #[arg(skip)]
    pub enforce: crate::enforce::EnforceConfig,

    /// Detections from the config file's `[detect]` (on by default).
    #[arg(skip)]
    pub detect: crate::detect::DetectConfig,

    /// The config file's `[inventory]`: the team's API specs for drift findings (INV-3…6).
    #[arg(skip)]
    pub inventory: crate::detect::specs::InventoryConfig,

    /// Sinks from the config file's `[[sinks]]` (none: one stdout sink, native format).
    #[arg(skip)]
    pub sinks: Vec<crate::output::sink_config::SinkConfig>,

    /// Extra OpenSSL libssl file to attach to (besides those discovered). Repeatable.
    #[arg(long = "library", value_name = "PATH")]
    pub libraries: Vec<std::path::PathBuf>,

    /// Pod enrichment (pod name, namespace, node on events): `auto` turns it on inside a
    /// Kubernetes pod (KUBERNETES_SERVICE_HOST set) or when --kubernetes-api is given. Watches
    /// only the pods of --node-name; needs get/list/watch on pods.
    #[arg(long, env = "CLEARTAP_KUBERNETES", value_enum, default_value_t = Toggle::Auto, help_heading = "Kubernetes")]
    pub kubernetes: Toggle,
    /// API server URL when not running in a pod (in a pod: from KUBERNETES_SERVICE_HOST/PORT).
    #[arg(
        long,
        env = "CLEARTAP_KUBERNETES_API",
        value_name = "URL",
        help_heading = "Kubernetes"
    )]
    pub kubernetes_api: Option<String>,
    /// Bearer token file for the API (in a pod: the service account token).
    #[arg(
        long,
        env = "CLEARTAP_KUBERNETES_TOKEN_FILE",
        value_name = "PATH",
        help_heading = "Kubernetes"
    )]
    pub kubernetes_token_file: Option<std::path::PathBuf>,
    /// CA bundle that signs the API's certificate (in a pod: the service account ca.crt).
    #[arg(
        long,
        env = "CLEARTAP_KUBERNETES_CA_FILE",
        value_name = "PATH",
        help_heading = "Kubernetes"
    )]
    pub kubernetes_ca_file: Option<std::path::PathBuf>,
    /// This node's name, as the API knows it (a DaemonSet sets NODE_NAME from spec.nodeName).
    #[arg(
        long,
        env = "NODE_NAME",
        value_name = "NAME",
        help_heading = "Kubernetes"
    )]
    pub node_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OpenApiFormat {
    Yaml,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Run the detections over saved exchange events (the agent's own JSON lines, e.g. from a
    /// file sink) without eBPF; findings go to stdout as JSON lines, a summary to stderr.
    Replay {
        /// JSON-lines file of `cleartap.http_exchange/1` events ("-" for stdin).
        file: std::path::PathBuf,
        /// Also write the API inventory learned from the file here.
        #[arg(long, value_name = "PATH")]
        inventory_out: Option<std::path::PathBuf>,
    },
    /// OpenAPI 3.1 documents of the APIs the agent saw, one per host, from its inventory file
    /// (a running agent writes it on SIGUSR1 and at exit; `replay --inventory-out` too):
    /// endpoints, parameters, types, formats, required flags, JSON schemas, auth schemes, and
    /// x-cleartap-* extensions (first/last seen, requests, sensitive data, workloads).
    Openapi {
        /// The inventory file.
        #[arg(
            long,
            value_name = "PATH",
            default_value = "/var/lib/cleartap/inventory.json"
        )]
        inventory: std::path::PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OpenApiFormat::Yaml)]
        format: OpenApiFormat,
        /// Write HOST.openapi.yaml (or .json) per host into this directory instead of stdout
        /// (stdout: YAML documents separated by `---`, or one JSON document per line).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
        /// Only this host (as the inventory names it: the request's Host).
        #[arg(long)]
        host: Option<String>,
        /// Instead of documents: the drift of the inventory from these specs (OpenAPI 3.0/3.1
        /// files or globs, as `[inventory] specs`), one line per finding; exit status 0.
        #[arg(long, value_name = "SPEC")]
        diff: Vec<String>,
    },
    /// Install the node agent: this binary as /usr/local/bin/cleartap, the default config as
    /// /etc/cleartap/cleartap.toml (an existing one is kept), the hardened systemd unit
    /// cleartap.service (enabled and started when systemd runs). Needs root.
    Install {
        /// Stage the files under this directory instead of / (nothing is started).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: std::path::PathBuf,
        /// Enable the service but do not start it now.
        #[arg(long)]
        no_start: bool,
    },
    /// Stop and remove what `install` put in place, and the agent's state in
    /// /var/lib/cleartap (redaction key, spool, inventory) and /var/log/cleartap.
    Uninstall {
        /// Remove from this directory instead of /.
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: std::path::PathBuf,
        /// Keep /var/lib/cleartap and /var/log/cleartap (the redaction key keeps tags stable).
        #[arg(long)]
        keep_data: bool,
    },
    /// Configuration file helpers.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Inline protection's lists on a running agent (through its admin socket; root only):
    /// list them, block an actor (by the [REDACTED:…] tag events show, or a client IP address
    /// with `[enforce] client_addresses`) on a route or on every route, or remove an entry.
    Block {
        #[command(subcommand)]
        action: BlockAction,
        /// The running agent's admin socket (`[enforce] admin_socket`).
        #[arg(long, global = true, value_name = "PATH", default_value = crate::enforce::admin::DEFAULT_SOCKET)]
        admin_socket: std::path::PathBuf,
    },
    /// Switch a running agent's enforcement: `off` is the kill switch (one map write), `monitor`
    /// reports would_block only, `enforce` stops requests again.
    Enforce {
        mode: crate::enforce::Mode,
        #[arg(long, value_name = "PATH", default_value = crate::enforce::admin::DEFAULT_SOCKET)]
        admin_socket: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum BlockAction {
    /// Every list entry: id, actor tag or route, who listed it (rule ids or operator), until when.
    List,
    /// Block an actor the agent has seen, by its tag, or a client IP address (denied at
    /// servers' reads; needs `[enforce] client_addresses = true`): on `--route 'METHOD
    /// /template'` (which joins the sensitive list, on every host) or, without one, on every
    /// route.
    Add {
        #[arg(long, value_name = "TAG_OR_IP")]
        actor: String,
        #[arg(long, value_name = "METHOD TEMPLATE")]
        route: Option<String>,
        /// How long: seconds, or with a unit (`90s`, `10m`, `2h`, `1d`); capped by `[enforce]
        /// max_ttl_secs`.
        #[arg(long = "ttl", visible_alias = "ttl-secs", value_name = "DURATION", default_value = "10m", value_parser = parse_ttl)]
        ttl_secs: u64,
        /// Why: kept with the entry and shown in every verdict it causes.
        #[arg(long, value_name = "TEXT", default_value = "operator block")]
        reason: String,
    },
    /// Remove a list entry by its id (`actor:…`, `client:…` or `route:…`, from `block list`).
    Remove { id: String },
}

/// `--ttl`: seconds, or a number with one unit of s, m, h or d.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: expected seconds or a number with s, m, h or d"
            ));
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected seconds or a number with s, m, h or d"))?;
    match n.checked_mul(scale) {
        Some(0) | None => Err(format!("{text:?}: must be between 1 s and 10 years")),
        Some(secs) if secs > 10 * 365 * 86_400 => {
            Err(format!("{text:?}: must be between 1 s and 10 years"))
        }
        Some(secs) => Ok(secs),
    }
}

#[cfg(test)]
#[test]
fn ttl_takes_seconds_or_one_unit() {
    assert_eq!(parse_ttl("600"), Ok(600));
    assert_eq!(parse_ttl("10m"), Ok(600));
    assert_eq!(parse_ttl("2h"), Ok(7200));
    assert_eq!(parse_ttl("1d"), Ok(86_400));
    for bad in ["", "0", "10x", "m", "1.5h", "-3", "99999999999999999999d"] {
        assert!(parse_ttl(bad).is_err(), "{bad}");
    }
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration (file + environment + flags); errors name the field.
    Check,
    /// Print the default configuration file, every setting commented.
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketHooks {
    Auto,
    Kprobe,
    Tracepoint,
}

impl Config {
    pub fn filters(&self) -> crate::kernel::filters::Filters {
        crate::kernel::filters::Filters {
            pids: (self.pids.clone(), self.exclude_pids.clone()),
            comms: (self.comms.clone(), self.exclude_comms.clone()),
            cgroups: (self.cgroups.clone(), self.exclude_cgroups.clone()),
            ports: (self.ports.clone(), self.exclude_ports.clone()),
        }
    }
}

fn parse_ring_mib(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if !(1..=1024).contains(&n) || !n.is_power_of_two() {
        return Err("must be a power of two between 1 and 1024".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c = Config::try_parse_from(["cleartap"]).expect("defaults parse");
        assert_eq!(c.body_prefix_bytes, 0);
        assert_eq!(c.ring_buffer_mib, 16);
        let err =
            Config::try_parse_from(["cleartap", "--ring-buffer-mib", "3"]).expect_err("rejected");
        assert!(err.to_string().contains("power of two"), "{err}");
        assert!(Config::try_parse_from(["cleartap", "--capture-max-bytes", "0"]).is_err());
    }
}
