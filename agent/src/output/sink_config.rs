//! `[[sinks]]` in the config file: what each sink is, validated with errors that name
//! `sinks[N].field`, and turned into running sinks.

use std::path::PathBuf;

use serde::Deserialize;

use super::{
    formats::Format,
    http_sink::{HttpProtocol, HttpSink},
    sink::{SinkHandle, Transport, Tuning},
    spool::Spool,
    transports::{RotatingFile, Stdout, Syslog, SyslogProtocol},
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkType {
    #[default]
    Stdout,
    File,
    Syslog,
    Http,
}

/// One `[[sinks]]` table. Keys that do not apply to its type are errors. The default is a
/// stdout sink in the native format.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    #[serde(rename = "type")]
    pub kind: SinkType,
    pub name: Option<String>,
    pub format: Option<Format>,
    // file
    pub path: Option<PathBuf>,
    pub max_bytes: Option<u64>,
    pub keep_files: Option<usize>,
    // syslog
    pub transport: Option<SyslogProtocol>,
    pub address: Option<String>,
    // http
    pub url: Option<String>,
    pub protocol: Option<HttpProtocol>,
    pub index: Option<String>,
    pub auth_header_file: Option<PathBuf>,
    pub auth_header_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    // delivery
    pub queue_events: Option<usize>,
    pub batch_max_events: Option<usize>,
    pub batch_max_ms: Option<u64>,
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: Option<u64>,
}

impl SinkConfig {
    pub fn name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| {
            let kind = format!("{:?}", self.kind).to_lowercase();
            format!("{kind}-{index}")
        })
    }
}

pub const DEFAULT_SPOOL_ROOT: &str = "/var/lib/cleartap/spool";
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sinks[{index}].{field}: {problem}")]
    Invalid {
        index: usize,
        field: &'static str,
        problem: String,
    },
    #[error("sink {name}: {problem}")]
    Start { name: String, problem: String },
}

fn invalid(index: usize, field: &'static str, problem: impl Into<String>) -> SinkError {
    SinkError::Invalid {
        index,
        field,
        problem: problem.into(),
    }
}

/// Checks what serde cannot: required keys per type, keys that belong to another type, ranges.
pub fn validate(sinks: &[SinkConfig]) -> Result<(), SinkError> {
    let mut names = std::collections::HashSet::new();
    for (i, s) in sinks.iter().enumerate() {
        if !names.insert(s.name(i)) {
            return Err(invalid(i, "name", format!("{:?} is used twice", s.name(i))));
        }
        let only = |field: &'static str, present: bool, kinds: &str| {
            if present {
                Err(invalid(i, field, format!("only applies to type {kinds}")))
            } else {
                Ok(())
            }
        };
        let is = |k: SinkType| s.kind == k;
        only("path", s.path.is_some() && !is(SinkType::File), "\"file\"")?;
        only(
            "max_bytes",
            s.max_bytes.is_some() && !is(SinkType::File),
            "\"file\"",
        )?;
        only(
            "keep_files",
            s.keep_files.is_some() && !is(SinkType::File),
            "\"file\"",
        )?;
        only(
            "transport",
            s.transport.is_some() && !is(SinkType::Syslog),
            "\"syslog\"",
        )?;
        only(
            "address",
            s.address.is_some() && !is(SinkType::Syslog),
            "\"syslog\"",
        )?;
        for (field, present) in [
            ("url", s.url.is_some()),
            ("protocol", s.protocol.is_some()),
            ("index", s.index.is_some()),
            ("auth_header_file", s.auth_header_file.is_some()),
            ("auth_header_env", s.auth_header_env.is_some()),
            ("ca_file", s.ca_file.is_some()),
        ] {
            only(field, present && !is(SinkType::Http), "\"http\"")?;
        }
        match s.kind {
            SinkType::File if s.path.is_none() => {
                return Err(invalid(i, "path", "required for type \"file\""));
            }
            SinkType::Syslog if s.transport.is_none() => {
                return Err(invalid(
                    i,
                    "transport",
                    "required: \"unix\", \"udp\" or \"tcp\"",
                ));
            }
            SinkType::Http => {
                let url = s.url.as_deref().unwrap_or("");
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(i, "url", "required: an http:// or https:// URL"));
                }
                if s.protocol.is_none() {
                    return Err(invalid(
                        i,
                        "protocol",
                        "required: \"splunk_hec\", \"elasticsearch_bulk\" or \"ndjson\"",
                    ));
                }
                if s.auth_header_file.is_some() && s.auth_header_env.is_some() {
                    return Err(invalid(
                        i,
                        "auth_header_env",
                        "give auth_header_file or auth_header_env, not both",
                    ));
                }
            }
            _ => {}
        }
        if s.max_bytes == Some(0) {
            return Err(invalid(i, "max_bytes", "must be at least 1"));
        }
        if matches!(s.keep_files, Some(0)) {
            return Err(invalid(i, "keep_files", "must be at least 1"));
        }
        for (field, value, max) in [
            ("queue_events", s.queue_events.map(|v| v as u64), 10_000_000),
            (
                "batch_max_events",
                s.batch_max_events.map(|v| v as u64),
                100_000,
            ),
            ("batch_max_ms", s.batch_max_ms, 60_000),
        ] {
            if let Some(v) = value
                && !(1..=max).contains(&v)
            {
                return Err(invalid(i, field, format!("must be between 1 and {max}")));
            }
        }
    }
    Ok(())
}

/// The auth header value from its file (trimmed) or environment variable; the error names
/// where it looked, never the value.
fn auth_header(s: &SinkConfig, name: &str) -> Result<Option<String>, SinkError> {
    let start = |problem: String| SinkError::Start {
        name: name.to_owned(),
        problem,
    };
    if let Some(path) = &s.auth_header_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| start(format!("auth_header_file {}: {e}", path.display())))?;
        return Ok(Some(text.trim().to_owned()));
    }
    if let Some(var) = &s.auth_header_env {
        let value = std::env::var(var).map_err(|_| {
            start(format!(
                "auth_header_env: environment variable {var} is not set"
            ))
        })?;
        return Ok(Some(value.trim().to_owned()));
    }
    Ok(None)
}

/// Starts sink number `index` (its worker thread, spool and transport).
pub fn start(index: usize, s: &SinkConfig, host: &str) -> Result<SinkHandle, SinkError> {
    let name = s.name(index);
    let start = |problem: String| SinkError::Start {
        name: name.clone(),
        problem,
    };
    let transport: Box<dyn Transport> = match s.kind {
        SinkType::Stdout => Box::new(Stdout::default()),
        SinkType::File => {
            let path = s.path.clone().unwrap_or_default();
            Box::new(
                RotatingFile::open(
                    path.clone(),
                    s.max_bytes.unwrap_or(100 << 20),
                    s.keep_files.unwrap_or(5),
                )
                .map_err(|e| start(format!("{}: {e}", path.display())))?,
            )
        }
        SinkType::Syslog => {
            let protocol = s.transport.unwrap_or(SyslogProtocol::Unix);
            let address = s.address.clone().unwrap_or_else(|| match protocol {
                SyslogProtocol::Unix => "/dev/log".into(),
                _ => "127.0.0.1:514".into(),
            });
            Box::new(
                Syslog::new(protocol, address, host.to_owned())
                    .map_err(|e| start(e.to_string()))?,
            )
        }
        SinkType::Http => Box::new(
            HttpSink::new(
                s.url.clone().unwrap_or_default(),
                s.protocol.unwrap_or(HttpProtocol::Ndjson),
                auth_header(s, &name)?,
                s.index.clone(),
                s.ca_file.as_deref(),
                host.to_owned(),
            )
            .map_err(|e| start(e.to_string()))?,
        ),
    };
    // Stdout has nowhere better to keep lines than the queue; the others spool by default.
    let spool_max = s.spool_max_bytes.unwrap_or(if s.kind == SinkType::Stdout {
        0
    } else {
        DEFAULT_SPOOL_MAX_BYTES
    });
    let spool = if spool_max == 0 {
        None
    } else {
        let dir = s
            .spool_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_ROOT).join(&name));
        let spool = Spool::open(&dir, spool_max).map_err(|e| start(e.to_string()))?;
        if !spool.is_empty() {
            log::info!(
                "sink {name}: {} spooled events from an earlier run will be delivered first",
                spool.pending_lines()
            );
        }
        Some(spool)
    };
    let tuning = Tuning {
        queue_events: s.queue_events.unwrap_or(10_000),
        batch_max_events: s.batch_max_events.unwrap_or(500),
        batch_max_wait: std::time::Duration::from_millis(s.batch_max_ms.unwrap_or(200)),
        backoff_min: std::time::Duration::from_millis(250),
        backoff_max: std::time::Duration::from_secs(30),
    };
    SinkHandle::start(name.clone(), transport, spool, tuning).map_err(|e| start(e.to_string()))
}
