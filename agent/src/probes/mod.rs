//! The uprobe attach table for OpenSSL and the bookkeeping of attached libraries: each distinct
//! file (device + inode) is attached once, for all processes, whatever path it was found under.

pub mod discovery;

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use agent_common::names::{
    PROG_SSL_READ_ENTRY, PROG_SSL_READ_EX_ENTRY, PROG_SSL_RETURN, PROG_SSL_WRITE_ENTRY,
    PROG_SSL_WRITE_EX_ENTRY,
};
use aya::{
    Ebpf,
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
    },
};

/// (symbol, entry program, required). OpenSSL 1.0 lacks the `_ex` functions.
const OPENSSL_SYMBOLS: [(&str, &str, bool); 4] = [
    ("SSL_read", PROG_SSL_READ_ENTRY, true),
    ("SSL_write", PROG_SSL_WRITE_ENTRY, true),
    ("SSL_read_ex", PROG_SSL_READ_EX_ENTRY, false),
    ("SSL_write_ex", PROG_SSL_WRITE_EX_ENTRY, false),
];

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot stat {path}: {source}")]
    Stat {
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
    #[error("attaching {program} to {symbol} in {path}{pid}: {source}")]
    Attach {
        program: &'static str,
        symbol: &'static str,
        path: PathBuf,
        pid: String,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
}

#[derive(Debug, Clone)]
pub struct Library {
    pub path: PathBuf,
    /// Symbols actually attached (entry and return each).
    pub symbols: Vec<&'static str>,
}

#[derive(Default)]
pub struct Attacher {
    by_file: HashMap<(u64, u64), u32>,
    /// Index + 1 is the library id carried in records (the attach cookie); 0 means unknown.
    libraries: Vec<Library>,
    pub attach_failures: u64,
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut UProbe, ProbeError> {
    ebpf.program_mut(name)
        .and_then(|p| p.try_into().ok())
        .ok_or(ProbeError::MissingProgram(name))
}

/// Strips the /proc/PID/root prefix for display: users know the library by its own path.
fn display_path(path: &Path) -> String {
    let s = path.to_string_lossy();
    if let Some(rest) = s.strip_prefix("/proc/")
        && let Some(idx) = rest.find("/root/")
    {
        return rest[idx + 5..].to_owned();
    }
    s.into_owned()
}

impl Attacher {
    /// Loads the uprobe programs into the kernel (once, before any attach).
    pub fn load_programs(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
        for name in OPENSSL_SYMBOLS.iter().map(|s| s.1).chain([PROG_SSL_RETURN]) {
            uprobe(ebpf, name)?
                .load()
                .map_err(|source| ProbeError::Load {
                    program: name,
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    pub fn library_path(&self, id: u32) -> Option<String> {
        let index = id.checked_sub(1)? as usize;
        self.libraries.get(index).map(|l| display_path(&l.path))
    }

    pub fn libraries(&self) -> &[Library] {
        &self.libraries
    }

    /// Attaches to `path` unless that file is attached already. Returns the new library's id.
    pub fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        path: &Path,
        pid: Option<u32>,
    ) -> Result<Option<u32>, ProbeError> {
        let meta = std::fs::metadata(path).map_err(|source| ProbeError::Stat {
            path: path.to_owned(),
            source,
        })?;
        let file = (meta.dev(), meta.ino());
        if self.by_file.contains_key(&file) {
            return Ok(None);
        }
        let id = self.libraries.len() as u32 + 1;
        let pid_note = pid
            .map(|p| format!(" (mapped by pid {p})"))
            .unwrap_or_default();
        let mut symbols = Vec::new();
        for (symbol, entry, required) in OPENSSL_SYMBOLS {
            for program in [entry, PROG_SSL_RETURN] {
                let point = UProbeAttachPoint {
                    location: UProbeAttachLocation::Symbol(symbol),
                    cookie: Some(u64::from(id)),
                };
                let result = uprobe(ebpf, program)?.attach(point, path, UProbeScope::AllProcesses);
                if let Err(source) = result {
                    let error = ProbeError::Attach {
                        program,
                        symbol,
                        path: path.to_owned(),
                        pid: pid_note.clone(),
                        source: Box::new(source),
                    };
                    if required {
                        self.attach_failures += 1;
                        // Remember the file anyway so a broken library is not retried forever.
                        self.by_file.insert(file, 0);
                        return Err(error);
                    }
                    log::debug!("optional probe skipped: {error}");
                    break;
                }
                if program == entry {
                    symbols.push(symbol);
                }
            }
        }
        self.by_file.insert(file, id);
        log::info!(
            "attached to {}{} [{}]",
            display_path(path),
            pid_note,
            symbols.join(", ")
        );
        self.libraries.push(Library {
            path: path.to_owned(),
            symbols,
        });
        Ok(Some(id))
    }
}
