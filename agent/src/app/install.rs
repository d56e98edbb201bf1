//! `cleartap install` / `cleartap uninstall`: the node-agent installation. Puts this binary at
//! /usr/local/bin/cleartap, the default configuration at /etc/cleartap/cleartap.toml (kept if
//! present), the hardened systemd unit, and starts it when systemd runs; uninstall removes all
//! of it. `--root` stages the same files under another directory (images, packaging, tests).

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
};

pub const UNIT_NAME: &str = "cleartap.service";
pub const UNIT: &str = include_str!("../../../deploy/systemd/cleartap.service");
const BINARY: &str = "usr/local/bin/cleartap";
const CONFIG: &str = "etc/cleartap/cleartap.toml";
const UNIT_PATH: &str = "etc/systemd/system/cleartap.service";
/// Token key, inventory and spool: what the agent writes (StateDirectory= of the unit).
const STATE: &str = "var/lib/cleartap";
const LOGS: &str = "var/log/cleartap";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0} {1}: {2}")]
    Io(&'static str, PathBuf, std::io::Error),
    #[error("`{0}` failed: {1}")]
    Command(String, String),
    #[error("installing needs root (files under /usr/local, /etc and systemd)")]
    NotRoot,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_owned();
    move |e| InstallError::Io(what, path, e)
}

/// systemd manages services only when it is PID 1 (its runtime directory says so).
fn systemd_running(root: &Path) -> bool {
    root == Path::new("/") && Path::new("/run/systemd/system").is_dir()
}

fn systemctl(args: &[&str]) -> Result<(), InstallError> {
    let shown = format!("systemctl {}", args.join(" "));
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| InstallError::Command(shown.clone(), e.to_string()))?;
    if !out.status.success() {
        return Err(InstallError::Command(
            shown,
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a running binary or a
/// unit being read is never seen half-written.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let tmp = path.with_extension("cleartap-new");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    file.write_all(bytes).map_err(io("writing", &tmp))?;
    file.sync_all().map_err(io("writing", &tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io("chmod", &tmp))?;
    fs::rename(&tmp, path).map_err(io("renaming into", path))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Installs under `root` ("/" for the real thing); starts the service unless `no_start`.
/// Returns what was done, one line each, for the user.
pub fn install(root: &Path, no_start: bool) -> Result<Vec<String>, InstallError> {
    if root == Path::new("/") && !is_root() {
        return Err(InstallError::NotRoot);
    }
    let mut done = Vec::new();
    let binary = root.join(BINARY);
    let own = Path::new("/proc/self/exe");
    let bytes = fs::read(own).map_err(io("reading", own))?;
    write_atomically(&binary, &bytes, 0o755)?;
    done.push(format!("binary: {}", binary.display()));

    let config = root.join(CONFIG);
    if config.exists() {
        done.push(format!(
            "config: {} (kept, not overwritten)",
            config.display()
        ));
    } else {
        write_atomically(
            &config,
            crate::config::file::DEFAULT_CONFIG.as_bytes(),
            0o640,
        )?;
        done.push(format!("config: {} (defaults)", config.display()));
    }

    let unit = root.join(UNIT_PATH);
    write_atomically(&unit, UNIT.as_bytes(), 0o644)?;
    done.push(format!("unit: {}", unit.display()));

    let state = root.join(STATE);
    fs::create_dir_all(&state).map_err(io("creating", &state))?;
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).map_err(io("chmod", &state))?;

    if systemd_running(root) {
        systemctl(&["daemon-reload"])?;
        if no_start {
            systemctl(&["enable", UNIT_NAME])?;
            done.push("enabled (starts at boot; `systemctl start cleartap` now)".into());
        } else {
            systemctl(&["enable", "--now", UNIT_NAME])?;
            done.push("enabled and started: `journalctl -u cleartap -f` follows it".into());
        }
    } else {
        done.push(
            "systemd is not running here: nothing started (on a systemd host: \
`systemctl daemon-reload && systemctl enable --now cleartap`)"
                .into(),
        );
    }
    Ok(done)
}

/// Stops and removes everything `install` put under `root`, and the agent's state (token key,
/// spool, inventory) and log directories unless `keep_data`.
pub fn uninstall(root: &Path, keep_data: bool) -> Result<Vec<String>, InstallError> {
    if root == Path::new("/") && !is_root() {
        return Err(InstallError::NotRoot);
    }
    let mut done = Vec::new();
    let unit = root.join(UNIT_PATH);
    if systemd_running(root) && unit.exists() {
        systemctl(&["disable", "--now", UNIT_NAME])?;
        done.push("stopped and disabled".into());
    }
    let mut remove_file = |path: PathBuf| -> Result<(), InstallError> {
        match fs::remove_file(&path) {
            Ok(()) => done.push(format!("removed {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(InstallError::Io("removing", path, e)),
        }
        Ok(())
    };
    remove_file(unit)?;
    remove_file(root.join(BINARY))?;
    if systemd_running(root) {
        systemctl(&["daemon-reload"])?;
    }
    let mut dirs = vec![root.join("etc/cleartap")];
    if !keep_data {
        dirs.extend([root.join(STATE), root.join(LOGS)]);
    }
    for dir in dirs {
        match fs::remove_dir_all(&dir) {
            Ok(()) => done.push(format!("removed {}", dir.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(InstallError::Io("removing", dir, e)),
        }
    }
    if keep_data {
        done.push(format!(
            "kept {} and {}",
            root.join(STATE).display(),
            root.join(LOGS).display()
        ));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_install_and_uninstall_leave_nothing_behind() {
        let root = std::env::temp_dir().join(format!("cleartap-install-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let done = install(&root, true).expect("install");
        assert!(
            done.iter()
                .any(|l| l.contains("systemd is not running here")),
            "{done:?}"
        );
        let meta = fs::metadata(root.join(BINARY)).expect("binary");
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert_eq!(
            fs::read_to_string(root.join(CONFIG)).expect("config"),
            crate::config::file::DEFAULT_CONFIG
        );
        assert_eq!(
            fs::read_to_string(root.join(UNIT_PATH)).expect("unit"),
            UNIT
        );
        // A second install keeps the operator's config.
        fs::write(root.join(CONFIG), "[capture]\nbody_prefix_bytes = 8\n").expect("edit");
        let again = install(&root, true).expect("reinstall");
        assert!(again.iter().any(|l| l.contains("kept")), "{again:?}");
        assert!(
            fs::read_to_string(root.join(CONFIG))
                .expect("config")
                .contains("= 8")
        );
        fs::write(root.join(STATE).join("token.key"), b"k").expect("state");
        let removed = uninstall(&root, false).expect("uninstall");
        assert_eq!(removed.len(), 4, "{removed:?}");
        let left: Vec<_> = walk(&root);
        assert!(left.iter().all(|p| p.is_dir()), "files left: {left:?}");
        fs::remove_dir_all(&root).expect("cleanup");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out
    }

    #[test]
    fn unit_names_the_installed_paths_and_the_capability_set() {
        assert!(UNIT.contains(&format!("ExecStart=/{BINARY} --config /{CONFIG}")));
        assert!(
            UNIT.contains(
                "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH\n"
            )
        );
        assert!(UNIT.contains("Restart=on-failure"));
    }
}
