//! The per-install key of the redaction tags (classify/redact.rs): 32 random bytes in a file only
//! root can read, created on first start. Keeping it across restarts keeps a token's tag stable;
//! sharing it across nodes makes tags comparable fleet-wide.

use std::{
    io::{Read as _, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

pub const DEFAULT_PATH: &str = "/var/lib/cleartap/token.key";
const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    #[error("token key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "token key file {path} holds {len} bytes; it must hold exactly {KEY_BYTES} (delete it to have a new one made)"
    )]
    Length { path: PathBuf, len: usize },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TokenKeyError + '_ {
    move |source| TokenKeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the key, or creates the file (mode 0600) with a random key. Returns (key, created).
pub fn load_or_create(path: &Path) -> Result<([u8; KEY_BYTES], bool), TokenKeyError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let key: [u8; KEY_BYTES] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| TokenKeyError::Length {
                        path: path.to_owned(),
                        len: bytes.len(),
                    })?;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                log::warn!(
                    "token key file {} is readable by other users (mode {:o}); chmod 600 it",
                    path.display(),
                    meta.permissions().mode() & 0o777
                );
            }
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_key().map_err(io(path))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io(path))?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io(path))?;
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .map_err(io(path))?;
            Ok((key, true))
        }
        Err(e) => Err(io(path)(e)),
    }
}

pub fn random_key() -> std::io::Result<[u8; KEY_BYTES]> {
    let mut key = [0u8; KEY_BYTES];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_600_then_reused() {
        let dir = std::env::temp_dir().join(format!("cleartap-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/token.key");
        let (first, created) = load_or_create(&path).expect("create");
        assert!(created);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, created) = load_or_create(&path).expect("load");
        assert!(!created);
        assert_eq!(first, again);
        std::fs::write(&path, b"short").expect("write");
        let err = load_or_create(&path).expect_err("bad length");
        assert!(err.to_string().contains("holds 5 bytes"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
