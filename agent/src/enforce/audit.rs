//! The on-disk audit log of verdicts: every `cleartap.enforcement/1` event as one JSON line, in a
//! file only root can read, bounded (at `max_bytes` the file becomes `<path>.1`, replacing the
//! previous one). It keeps the evidence on the node when the sinks are down or far away.

use std::{
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
#[error("enforcement audit log {path}: {source}")]
pub struct AuditError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

pub struct AuditLog {
    path: PathBuf,
    file: std::fs::File,
    bytes: u64,
    max_bytes: u64,
    /// Lines that could not be written (disk full, file removed and not re-creatable, …).
    pub errors: u64,
    pub rotations: u64,
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl AuditLog {
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, AuditError> {
        let err = |source| AuditError {
            path: path.to_owned(),
            source,
        };
        let file = open(path).map_err(err)?;
        let bytes = file.metadata().map_err(err)?.len();
        Ok(Self {
            path: path.to_owned(),
            file,
            bytes,
            max_bytes,
            errors: 0,
            rotations: 0,
        })
    }

    /// Appends one line; rotates first when it would pass the bound. Errors are counted and
    /// the first is logged: the verdict itself has already been acted on.
    pub fn append(&mut self, line: &str) {
        let len = line.len() as u64 + 1;
        if self.bytes + len > self.max_bytes && self.bytes > 0 {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            let rotated = std::fs::rename(&self.path, &old).and_then(|()| open(&self.path));
            match rotated {
                Ok(file) => {
                    self.file = file;
                    self.bytes = 0;
                    self.rotations += 1;
                }
                Err(e) => self.failed(&e),
            }
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        match self.file.write_all(&buf) {
            Ok(()) => self.bytes += len,
            Err(e) => self.failed(&e),
        }
    }

    fn failed(&mut self, e: &std::io::Error) {
        self.errors += 1;
        if self.errors == 1 {
            log::error!(
                "enforcement audit log {}: {e} (counted as audit_errors)",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_and_the_file_rotates_at_its_bound() {
        let dir = std::env::temp_dir().join(format!("cleartap-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("enforcement.jsonl");
        let mut log = AuditLog::open(&path, 40).expect("opens");
        log.append(r#"{"n":1}"#);
        log.append(r#"{"n":2}"#);
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("{\"n\":1}\n{\"n\":2}\n")
        );
        for n in 3..=8 {
            log.append(&format!(r#"{{"n":{n}}}"#));
        }
        assert_eq!(log.rotations, 1);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        let old = std::fs::read_to_string(dir.join("enforcement.jsonl.1")).unwrap_or_default();
        assert!(
            current.len() <= 40 && old.len() <= 40,
            "{current:?} {old:?}"
        );
        assert!(current.ends_with("{\"n\":8}\n"), "{current:?}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
