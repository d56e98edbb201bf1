//! The admin socket of a running agent (`[enforce] admin_socket`, root only: the socket is mode
//! 0600 in a 0700 directory): one JSON request line per connection, one JSON answer line. The
//! `cleartap block …` and `cleartap enforce MODE` commands are its client.

use serde::{Deserialize, Serialize};

use super::{Enforcer, EntryView, Mode};
use crate::kernel::control::VerdictMaps;

pub const DEFAULT_SOCKET: &str = "/run/cleartap/admin.sock";
/// Longest request line read.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// The kill switch and its reverse.
    Enforce {
        mode: Mode,
    },
    List,
    Add {
        actor: String,
        route: Option<String>,
        ttl_secs: u64,
        reason: String,
    },
    Remove {
        id: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Response {
    pub ok: bool,
    pub error: Option<String>,
    pub mode: Option<Mode>,
    pub entries: Vec<EntryView>,
    pub ids: Vec<String>,
}

fn failed(error: impl std::fmt::Display) -> Response {
    Response {
        error: Some(error.to_string()),
        ..Response::default()
    }
}

/// Answers one request line.
pub fn handle<M: VerdictMaps>(
    enforcer: &mut Enforcer<M>,
    line: &[u8],
    now_ms: i64,
    now_mono_ns: u64,
) -> Response {
    let request: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return failed(format!("malformed request: {e}")),
    };
    let ok = |enforcer: &Enforcer<M>| Response {
        ok: true,
        mode: Some(enforcer.mode()),
        ..Response::default()
    };
    match request {
        Request::Enforce { mode } => match enforcer.set_mode(mode) {
            Ok(()) => {
                log::warn!("admin socket: enforcement now {}", mode.as_str());
                ok(enforcer)
            }
            Err(e) => failed(e),
        },
        Request::List => Response {
            entries: enforcer.list(),
            ..ok(enforcer)
        },
        Request::Add {
            actor,
            route,
            ttl_secs,
            reason,
        } => match enforcer.add_manual(
            &actor,
            route.as_deref(),
            ttl_secs,
            &reason,
            now_ms,
            now_mono_ns,
        ) {
            Ok(ids) => {
                log::warn!(
                    "admin socket: block added for {actor} on {} for {ttl_secs} s: {reason}",
                    route.as_deref().unwrap_or("every route")
                );
                Response {
                    ids,
                    ..ok(enforcer)
                }
            }
            Err(e) => failed(e),
        },
        Request::Remove { id } => match enforcer.remove(&id) {
            Ok(()) => {
                log::warn!("admin socket: list entry {id} removed");
                ok(enforcer)
            }
            Err(e) => failed(e),
        },
    }
}

/// Creates the socket (root-only) and returns its listener. A stale socket file is replaced.
pub fn listen(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The client side: sends one request to a running agent and returns its answer.
pub fn send(path: &std::path::Path, request: &Request) -> Result<Response, String> {
    use std::io::{BufRead as _, Write as _};
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        format!(
            "admin socket {}: {e} (is the agent running with enforcement on, and are you root?)",
            path.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(|e| format!("admin socket {}: {e}", path.display()))?;
    serde_json::from_str(&answer).map_err(|e| format!("malformed answer ({e}): {answer}"))
}
