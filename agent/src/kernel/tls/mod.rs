//! The uprobe attach table for OpenSSL and the bookkeeping of attached libraries: each distinct
//! file (device + inode) is attached once, for all processes, whatever path it was found under.
//!
//! Attach points: where the machine code has the known wrapper shape (attach_point.rs), the
//! internal read/write functions are probed (cheap, emulated first instruction) and a runtime
//! check compares them against the exported wrappers on live traffic (verify.rs); otherwise, or
//! if the check fails, the exported functions are probed directly.

pub mod attach_point;
pub mod discovery;
pub mod elf;
pub mod golang;
pub mod plan;
mod release;
mod verify;

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use agent_common::{
    event::{LibCheck, MAX_LIBRARIES},
    names::{
        PROG_FLOOR_ENTRY, PROG_FLOOR_GO_RETURN, PROG_FLOOR_RETURN, PROG_GO_TLS_READ_ENTRY,
        PROG_GO_TLS_RETURN, PROG_GO_TLS_WRITE_ENTRY, PROG_SSL_CHECK_ENTRY, PROG_SSL_READ_ENTRY,
        PROG_SSL_READ_EX_ENTRY, PROG_SSL_RETURN, PROG_SSL_WRITE_ENTRY, PROG_SSL_WRITE_EX_ENTRY,
    },
};
use aya::{
    Ebpf,
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
    },
};

use plan::AttachPlan;
pub use verify::Verdict;

/// (symbol, entry program, required). OpenSSL 1.0 lacks the `_ex` functions.
const OPENSSL_SYMBOLS: [(&str, &str, bool); 4] = [
    ("SSL_read", PROG_SSL_READ_ENTRY, true),
    ("SSL_write", PROG_SSL_WRITE_ENTRY, true),
    ("SSL_read_ex", PROG_SSL_READ_EX_ENTRY, false),
    ("SSL_write_ex", PROG_SSL_WRITE_EX_ENTRY, false),
];

/// GnuTLS's record functions have SSL_read/SSL_write's shape (session, buf, size) → bytes moved
/// or a negative error, so they share those programs.
const GNUTLS_SYMBOLS: [(&str, &str, bool); 2] = [
    ("gnutls_record_recv", PROG_SSL_READ_ENTRY, true),
    ("gnutls_record_send", PROG_SSL_WRITE_ENTRY, true),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    OpenSsl,
    GnuTls,
    /// Go's crypto/tls, inside a Go executable.
    Go,
}

impl Stack {
    /// The TLS implementation a file carries, judged by the functions it defines (a libssl, a
    /// libgnutls, or an executable with OpenSSL linked in statically).
    pub fn of(elf: &elf::Elf<'_>) -> Option<Self> {
        if elf.has_symbol("SSL_read") && elf.has_symbol("SSL_write") {
            Some(Stack::OpenSsl)
        } else if elf.has_symbol("gnutls_record_recv") && elf.has_symbol("gnutls_record_send") {
            Some(Stack::GnuTls)
        } else {
            None
        }
    }

    fn symbols(self) -> &'static [(&'static str, &'static str, bool)] {
        match self {
            Stack::OpenSsl => &OPENSSL_SYMBOLS,
            Stack::GnuTls => &GNUTLS_SYMBOLS,
            Stack::Go => &[],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stack::OpenSsl => "OpenSSL",
            Stack::GnuTls => "GnuTLS",
            Stack::Go => "Go crypto/tls",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMode {
    /// Internal functions when their shape is recognised and verified, else exported ones.
    Auto,
    /// Always the exported SSL_read/SSL_write(_ex) entry points.
    Exported,
    /// Benchmarking only: count-only probes at the points `auto` would choose, and nothing
    /// else (no socket hooks, no capture, no events). Measures what the probe hits cost.
    Floor,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("program {0} missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error("loading program {program}: {source}")]
    Load {
        program: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("attaching {program} to {location} in {path}{pid}: {source}")]
    Attach {
        program: &'static str,
        location: String,
        path: PathBuf,
        pid: String,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("more than {MAX_LIBRARIES} distinct TLS libraries; {0} not attached")]
    TooManyLibraries(PathBuf),
    #[error("{path}: required function {symbol} not found")]
    MissingSymbol { path: PathBuf, symbol: &'static str },
}

impl ProbeError {
    /// The file vanished between discovery and attach (its process exited, a package was
    /// replaced): routine, not worth a warning.
    pub fn is_vanished(&self) -> bool {
        matches!(self, ProbeError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Exported functions probed.
    Exported,
    /// Internal functions probed, runtime check still running.
    Verifying,
    /// Internal functions probed and checked.
    Internal,
}

#[derive(Debug)]
pub struct Library {
    pub path: PathBuf,
    /// `path` for display (without a /proc/PID/root prefix).
    display: String,
    pub stack: Stack,
    /// The toolchain version, for Go binaries ("go1.21.13").
    pub version: Option<String>,
    pub mode: Mode,
    /// (symbol, entry program, file offset) of the exported functions, for the fallback.
    exported: Vec<(&'static str, &'static str, u64)>,
    /// What is probed, for diagnostics.
    pub points: Vec<String>,
    links: Vec<(&'static str, UProbeLinkId)>,
    check_links: Vec<(&'static str, UProbeLinkId)>,
    pid_note: String,
    /// (device, inode) of the file.
    file: (u64, u64),
    /// Detached because nothing used it; the slot (and id) may be reused.
    pub released: bool,
    /// Runtime-check counts already in LIB_CHECKS for this id when it was (re)used.
    check_baseline: LibCheck,
}

pub struct Attacher {
    /// Every file looked at, by (device, inode): its library id, or 0 for "no TLS / failed".
    by_file: HashMap<(u64, u64), u32>,
    /// Index + 1 is the library id carried in records (the attach cookie); 0 means unknown.
    libraries: Vec<Library>,
    mode: ProbeMode,
    pub attach_failures: u64,
    pub libraries_released: u64,
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut UProbe, ProbeError> {
    ebpf.program_mut(name)
        .and_then(|p| p.try_into().ok())
        .ok_or(ProbeError::MissingProgram(name))
}

/// Strips the /proc/PID/root prefix for display: users know the library by its own path.
pub fn display_path(path: &Path) -> String {
    let s = path.to_string_lossy();
    if let Some(rest) = s.strip_prefix("/proc/")
        && let Some(idx) = rest.find("/root/")
    {
        return rest.get(idx + 5..).unwrap_or(rest).to_owned();
    }
    s.into_owned()
}

struct Target<'a> {
    ebpf: &'a mut Ebpf,
    path: &'a Path,
    id: u32,
    pid_note: &'a str,
    /// `--probe-mode floor`: every plan is executed with its count-only programs.
    count_only: bool,
}

impl Target<'_> {
    fn attach(
        &mut self,
        program: &'static str,
        location: UProbeAttachLocation<'_>,
    ) -> Result<UProbeLinkId, ProbeError> {
        let shown = match &location {
            UProbeAttachLocation::Symbol(s) => (*s).to_owned(),
            UProbeAttachLocation::AbsoluteOffset(o) => format!("file offset 0x{o:x}"),
            UProbeAttachLocation::SymbolOffset(s, o) => format!("{s}+0x{o:x}"),
        };
        let point = UProbeAttachPoint {
            location,
            cookie: Some(u64::from(self.id)),
        };
        uprobe(self.ebpf, program)?
            .attach(point, self.path, UProbeScope::AllProcesses)
            .map_err(|source| ProbeError::Attach {
                program,
                location: shown,
                path: self.path.to_owned(),
                pid: self.pid_note.to_owned(),
                source: Box::new(source),
            })
    }
}

impl Attacher {
    pub fn new(mode: ProbeMode) -> Self {
        Self {
            by_file: HashMap::new(),
            libraries: Vec::new(),
            mode,
            attach_failures: 0,
            libraries_released: 0,
        }
    }

    /// Loads the uprobe programs into the kernel (once, before any attach).
    pub fn load_programs(ebpf: &mut Ebpf, mode: ProbeMode) -> Result<(), ProbeError> {
        let floor = [PROG_FLOOR_ENTRY, PROG_FLOOR_RETURN, PROG_FLOOR_GO_RETURN];
        let capture = OPENSSL_SYMBOLS.iter().map(|s| s.1).chain([
            PROG_SSL_RETURN,
            PROG_SSL_CHECK_ENTRY,
            PROG_GO_TLS_READ_ENTRY,
            PROG_GO_TLS_WRITE_ENTRY,
            PROG_GO_TLS_RETURN,
        ]);
        let names: Vec<&'static str> = if mode == ProbeMode::Floor {
            floor.to_vec()
        } else {
            capture.collect()
        };
        for name in names {
            uprobe(ebpf, name)?
                .load()
                .map_err(|source| ProbeError::Load {
                    program: name,
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    /// The library's path as its users know it (made once at attach, read per exchange).
    pub fn library_path(&self, id: u32) -> Option<&str> {
        let index = id.checked_sub(1)? as usize;
        self.libraries.get(index).map(|l| l.display.as_str())
    }

    /// The library's version when known (Go binaries), read per exchange.
    pub fn library_version(&self, id: u32) -> Option<&str> {
        let index = id.checked_sub(1)? as usize;
        self.libraries.get(index)?.version.as_deref()
    }

    pub fn libraries(&self) -> &[Library] {
        &self.libraries
    }

    /// Libraries currently attached (released ones not counted).
    pub fn attached_count(&self) -> usize {
        self.libraries.iter().filter(|l| !l.released).count()
    }

    /// Attaches to `path` unless that file was looked at already; files without a TLS stack
    /// are remembered and skipped. Returns the new library's id.
    pub fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        path: &Path,
        pid: Option<u32>,
    ) -> Result<Option<u32>, ProbeError> {
        let read_err = |source| ProbeError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let file = (meta.dev(), meta.ino());
        if self.by_file.contains_key(&file) {
            return Ok(None);
        }
        let map = elf::map(path).map_err(read_err)?;
        let Ok(parsed) = elf::Elf::parse(&map) else {
            self.by_file.insert(file, 0);
            return Ok(None);
        };
        let mut go = None;
        let stack = match Stack::of(&parsed) {
            Some(stack) => stack,
            None => match golang::inspect(&parsed) {
                Ok(Some(found)) => {
                    go = Some(found);
                    Stack::Go
                }
                Ok(None) => {
                    self.by_file.insert(file, 0);
                    return Ok(None);
                }
                Err(e) => {
                    self.by_file.insert(file, 0);
                    let shown = display_path(path);
                    match e {
                        golang::GoError::MissingFunction(_) => {
                            log::debug!("{shown}: Go binary without crypto/tls ({e})")
                        }
                        golang::GoError::TooOld { .. } => {
                            log::warn!("{shown}: Go TLS not captured: {e}")
                        }
                        _ => {
                            self.attach_failures += 1;
                            log::warn!("{shown}: Go TLS not captured: {e}");
                        }
                    }
                    return Ok(None);
                }
            },
        };
        // A released slot is reused; its id's runtime-check counters start from a baseline.
        let reuse = self.libraries.iter().position(|l| l.released);
        let id = reuse.map_or(self.libraries.len(), |i| i) as u32 + 1;
        if id >= MAX_LIBRARIES {
            self.by_file.insert(file, 0);
            return Err(ProbeError::TooManyLibraries(path.to_owned()));
        }
        let pid_note = pid
            .map(|p| format!(" (mapped by pid {p})"))
            .unwrap_or_default();
        let mut exported = Vec::new();
        for &(symbol, program, required) in stack.symbols() {
            match parsed.symbol_offset(symbol) {
                Some(offset) => exported.push((symbol, program, offset)),
                None if required => {
                    self.by_file.insert(file, 0);
                    self.attach_failures += 1;
                    return Err(ProbeError::MissingSymbol {
                        path: path.to_owned(),
                        symbol,
                    });
                }
                None => {}
            }
        }
        let internal = match (self.mode, stack) {
            (ProbeMode::Auto | ProbeMode::Floor, Stack::OpenSsl) => {
                match attach_point::internal_targets(&parsed) {
                    Ok(t) => Some(t),
                    Err(reason) => {
                        log::info!(
                            "{}: exported functions will be probed ({reason})",
                            display_path(path)
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        drop(parsed);
        drop(map);
        let mut library = Library {
            display: display_path(path),
            path: path.to_owned(),
            stack,
            version: go.as_ref().map(|g| g.version.clone()),
            mode: Mode::Exported,
            exported,
            points: Vec::new(),
            links: Vec::new(),
            check_links: Vec::new(),
            pid_note: pid_note.clone(),
            file,
            released: false,
            check_baseline: verify::current_check(ebpf, id),
        };
        let mut target = Target {
            ebpf,
            path,
            id,
            pid_note: &pid_note,
            count_only: self.mode == ProbeMode::Floor,
        };
        let result = match (internal, &go) {
            (_, Some(go)) => execute(&mut target, &AttachPlan::go(go), &mut library),
            (Some(t), None) => {
                match execute(&mut target, &AttachPlan::openssl_internal(&t), &mut library) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        log::warn!("{e}; falling back to exported functions");
                        detach_all(target.ebpf, &mut library);
                        attach_exported(&mut target, &mut library)
                    }
                }
            }
            (None, None) => attach_exported(&mut target, &mut library),
        };
        if let Err(e) = result {
            self.attach_failures += 1;
            detach_all(target.ebpf, &mut library);
            // Remember the file anyway so a broken library is not retried on every exec.
            self.by_file.insert(file, 0);
            return Err(e);
        }
        self.by_file.insert(file, id);
        log::info!(
            "attached to {} ({}{}){} [{}]{}",
            display_path(path),
            stack.name(),
            library
                .version
                .as_deref()
                .map(|v| format!(", {v}"))
                .unwrap_or_default(),
            pid_note,
            library.points.join(", "),
            if library.mode == Mode::Verifying {
                " — verifying against the exported functions"
            } else {
                ""
            }
        );
        match reuse {
            Some(index) if index < self.libraries.len() => {
                if let Some(slot) = self.libraries.get_mut(index) {
                    *slot = library;
                }
            }
            _ => self.libraries.push(library),
        }
        Ok(Some(id))
    }
}

/// The one executor: attaches every point of `plan`, recording links by role (check links are
/// removed on their own once the runtime check decides).
fn execute(
    target: &mut Target<'_>,
    plan: &AttachPlan,
    library: &mut Library,
) -> Result<(), ProbeError> {
    let counting;
    let plan = if target.count_only {
        counting = plan.count_only();
        &counting
    } else {
        plan
    };
    for point in &plan.points {
        let link = target.attach(
            point.program,
            UProbeAttachLocation::AbsoluteOffset(point.offset),
        )?;
        match point.role {
            plan::Role::Check => {
                library.check_links.push((point.program, link));
                log::debug!("check probe on {} @0x{:x}", point.function, point.offset);
            }
            plan::Role::Entry | plan::Role::Return => library.links.push((point.program, link)),
        }
    }
    library.points = plan.described();
    library.mode = if plan.verifying() {
        Mode::Verifying
    } else {
        Mode::Exported
    };
    Ok(())
}

fn attach_exported(target: &mut Target<'_>, library: &mut Library) -> Result<(), ProbeError> {
    let plan = AttachPlan::exported(&library.exported);
    execute(target, &plan, library)
}

/// Detaches links off the capture loop: unregistering a uprobe waits for an RCU grace period
/// (measured here: up to 1.7 s under load), and a loop stalled that long let the ring buffer
/// overflow. The links are taken from their programs and dropped on a short-lived thread.
fn detach(ebpf: &mut Ebpf, links: &mut Vec<(&'static str, UProbeLinkId)>) {
    let mut owned = Vec::with_capacity(links.len());
    for (program, link) in links.drain(..) {
        match uprobe(ebpf, program).map(|p| p.take_link(link)) {
            Ok(Ok(link)) => owned.push(link),
            Ok(Err(e)) => log::warn!("detaching {program}: {e}"),
            Err(e) => log::warn!("detaching {program}: {e}"),
        }
    }
    if owned.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("uprobe-detach".into())
        .spawn(move || drop(owned));
    if let Err(e) = spawned {
        log::warn!("cannot start a detach thread ({e}); uprobes stay attached until exit");
    }
}

fn detach_all(ebpf: &mut Ebpf, library: &mut Library) {
    detach(ebpf, &mut library.links);
    detach(ebpf, &mut library.check_links);
    library.points.clear();
}
