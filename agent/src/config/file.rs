//! The TOML configuration file and how it merges with flags and environment variables.
//!
//! Precedence, highest first: command-line flag, environment variable, config file, built-in
//! default. Every key of the file has the name of its flag (underscores for dashes) inside a
//! section; unknown keys and out-of-range values are errors that name the key.

use std::path::{Path, PathBuf};

use clap::{ArgMatches, parser::ValueSource};
use serde::Deserialize;

use crate::{
    config::{Config, SocketHooks},
    kernel::tls::ProbeMode,
};

/// Builds the configuration from the command line (parsed once, at start) and the config file
/// (read at every `load`, so SIGHUP picks up its changes).
pub struct Loader {
    matches: ArgMatches,
}

impl Loader {
    /// Parses the process's arguments; `--help`, `--version` and usage errors exit here.
    pub fn from_command_line() -> Self {
        use clap::CommandFactory as _;
        Self {
            matches: Config::command().get_matches(),
        }
    }

    pub fn load(&self) -> Result<Config, ConfigError> {
        use clap::FromArgMatches as _;
        let mut config =
            Config::from_arg_matches(&self.matches).map_err(|e| ConfigError::Cli(e.to_string()))?;
        if let Some(path) = chosen_path(config.config.as_deref()) {
            let file = FileConfig::load(&path)?;
            merge(&mut config, file, &self.matches);
            config.config = Some(path);
        }
        // `--enforce` wins over `[enforce] mode`.
        if let Some(mode) = config.enforce_mode {
            config.enforce.mode = mode;
        }
        validate(&config)?;
        config.filters().validate()?;
        Ok(config)
    }
}

/// Settings a running agent cannot change (they shape the loaded eBPF programs, its maps or
/// start-up state); SIGHUP reports them and they take effect after a restart.
pub fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! compare {
        ($($field:ident),*) => {
            $(if format!("{:?}", running.$field) != format!("{:?}", new.$field) {
                changed.push(stringify!($field));
            })*
        };
    }
    compare!(
        body_prefix_bytes,
        capture_max_bytes,
        no_plaintext,
        probe_mode,
        socket_hooks,
        libraries,
        library_sweep_secs,
        ring_buffer_mib,
        poll_interval_ms,
        wakeup_bytes,
        max_streams,
        idle_timeout_secs,
        pids,
        exclude_pids,
        comms,
        exclude_comms,
        cgroups,
        exclude_cgroups,
        ports,
        exclude_ports,
        metrics_listen,
        token_key_file,
        token_key_fallback_file,
        kubernetes,
        kubernetes_api,
        kubernetes_token_file,
        kubernetes_ca_file,
        node_name
    );
    changed
}

/// Used when neither `--config` nor CLEARTAP_CONFIG is given and this file exists.
pub const DEFAULT_PATH: &str = "/etc/cleartap/cleartap.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(transparent)]
    Sinks(#[from] crate::output::sink_config::SinkError),
    #[error(transparent)]
    Filters(#[from] crate::kernel::filters::FilterError),
    #[error("{0}")]
    Cli(String),
    #[error("{0}")]
    Detect(String),
    #[error("{0}")]
    Enforce(String),
    #[error("{field} = {value}: {allowed}")]
    Invalid {
        field: &'static str,
        value: String,
        allowed: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    capture: CaptureSection,
    #[serde(default)]
    kernel: KernelSection,
    #[serde(default)]
    streams: StreamsSection,
    #[serde(default)]
    filters: FiltersSection,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    redaction: RedactionSection,
    detect: Option<crate::detect::DetectConfig>,
    enforce: Option<crate::enforce::EnforceConfig>,
    #[serde(default)]
    inventory: crate::detect::specs::InventoryConfig,
    #[serde(default)]
    kubernetes: KubernetesSection,
    #[serde(default)]
    sinks: Vec<crate::output::sink_config::SinkConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedactionSection {
    token_key_file: Option<PathBuf>,
    token_key_fallback_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureSection {
    body_prefix_bytes: Option<u32>,
    body_routes: Option<Vec<String>>,
    capture_max_bytes: Option<u32>,
    plaintext: Option<bool>,
    probe_mode: Option<ProbeMode>,
    socket_hooks: Option<SocketHooks>,
    libraries: Option<Vec<PathBuf>>,
    library_sweep_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelSection {
    ring_buffer_mib: Option<u32>,
    poll_interval_ms: Option<u64>,
    wakeup_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamsSection {
    max_streams: Option<u64>,
    idle_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FiltersSection {
    pids: Option<Vec<u32>>,
    exclude_pids: Option<Vec<u32>>,
    comms: Option<Vec<String>>,
    exclude_comms: Option<Vec<String>>,
    cgroups: Option<Vec<u64>>,
    exclude_cgroups: Option<Vec<u64>>,
    ports: Option<Vec<u16>>,
    exclude_ports: Option<Vec<u16>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubernetesSection {
    enabled: Option<crate::config::Toggle>,
    api_url: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    node_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    listen: Option<String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text; the error names the key and line (toml's own report).
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }
}

/// The file to read: `--config`/CLEARTAP_CONFIG if given (must exist), else DEFAULT_PATH if it
/// exists, else none.
pub fn chosen_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_owned()),
        None => Path::new(DEFAULT_PATH)
            .exists()
            .then(|| PathBuf::from(DEFAULT_PATH)),
    }
}

/// Overwrites every setting that came from a built-in default (not a flag or an environment
/// variable) with the file's value, when the file has one.
pub fn merge(config: &mut Config, file: FileConfig, matches: &ArgMatches) {
    let defaulted = |id: &str| {
        !matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    macro_rules! take {
        ($($field:ident <- $value:expr),* $(,)?) => {
            $(if let Some(v) = $value && defaulted(stringify!($field)) {
                config.$field = v;
            })*
        };
    }
    let FileConfig {
        capture,
        kernel,
        streams,
        filters,
        metrics,
        redaction,
        detect,
        enforce,
        inventory,
        kubernetes,
        sinks,
    } = file;
    config.sinks = sinks;
    config.inventory = inventory;
    if let Some(detect) = detect {
        config.detect = detect;
    }
    if let Some(enforce) = enforce {
        config.enforce = enforce;
    }
    take!(
        body_prefix_bytes <- capture.body_prefix_bytes,
        body_routes <- capture.body_routes,
        capture_max_bytes <- capture.capture_max_bytes,
        probe_mode <- capture.probe_mode,
        socket_hooks <- capture.socket_hooks,
        libraries <- capture.libraries,
        library_sweep_secs <- capture.library_sweep_secs,
        ring_buffer_mib <- kernel.ring_buffer_mib,
        poll_interval_ms <- kernel.poll_interval_ms,
        wakeup_bytes <- kernel.wakeup_bytes,
        max_streams <- streams.max_streams,
        idle_timeout_secs <- streams.idle_timeout_secs,
        pids <- filters.pids,
        exclude_pids <- filters.exclude_pids,
        comms <- filters.comms,
        exclude_comms <- filters.exclude_comms,
        cgroups <- filters.cgroups,
        exclude_cgroups <- filters.exclude_cgroups,
        ports <- filters.ports,
        exclude_ports <- filters.exclude_ports,
        metrics_listen <- metrics.listen,
        token_key_file <- redaction.token_key_file,
        token_key_fallback_file <- redaction.token_key_fallback_file.map(Some),
        kubernetes <- kubernetes.enabled,
        kubernetes_api <- kubernetes.api_url.map(Some),
        kubernetes_token_file <- kubernetes.token_file.map(Some),
        kubernetes_ca_file <- kubernetes.ca_file.map(Some),
        node_name <- kubernetes.node_name.map(Some),
    );
    if let Some(plaintext) = capture.plaintext
        && defaulted("no_plaintext")
    {
        config.no_plaintext = !plaintext;
    }
}

fn range<T: PartialOrd + std::fmt::Display>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::Invalid {
            field,
            value: value.to_string(),
            allowed: format!("must be between {min} and {max}"),
        });
    }
    Ok(())
}

/// The checks clap applies to flags, applied to the merged result (a file value bypasses clap).
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    use agent_common::event::CAPTURE_LIMIT_BYTES;
    range(
        "capture.body_prefix_bytes",
        config.body_prefix_bytes,
        0,
        65_536,
    )?;
    range(
        "capture.capture_max_bytes",
        config.capture_max_bytes,
        1,
        CAPTURE_LIMIT_BYTES as u32,
    )?;
    range(
        "capture.library_sweep_secs",
        config.library_sweep_secs,
        1,
        86_400,
    )?;
    let mib = config.ring_buffer_mib;
    if !(1..=1024).contains(&mib) || !mib.is_power_of_two() {
        return Err(ConfigError::Invalid {
            field: "kernel.ring_buffer_mib",
            value: mib.to_string(),
            allowed: "must be a power of two between 1 and 1024".into(),
        });
    }
    range("kernel.poll_interval_ms", config.poll_interval_ms, 1, 1000)?;
    range("streams.max_streams", config.max_streams, 1, 1_000_000)?;
    crate::output::sink_config::validate(&config.sinks)?;
    config.detect.validate().map_err(ConfigError::Detect)?;
    config.enforce.validate().map_err(ConfigError::Enforce)?;
    if config.enforce.mode != crate::enforce::Mode::Off && !config.detect.enabled {
        return Err(ConfigError::Enforce(
            "enforcement acts on the lists detection keeps: [enforce] needs [detect] enabled = true"
                .into(),
        ));
    }
    crate::app::metrics::parse_listen(&config.metrics_listen).map_err(|allowed| {
        ConfigError::Invalid {
            field: "metrics.listen",
            value: format!("{:?}", config.metrics_listen),
            allowed,
        }
    })?;
    Ok(())
}

/// `cleartap config default`: every setting with its default and what it does.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
