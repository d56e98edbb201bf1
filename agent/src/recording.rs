//! Raw record files: every ring-buffer record as `u32 little-endian length` + bytes, so a capture
//! can be replayed through decode → conn → http without eBPF (benchmarks, regression tests).
//! Recordings hold plaintext payloads, secrets included: treat them like a packet capture.

use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::Path,
};

/// Records larger than this are rejected when reading (a data record is at most ~16 KiB).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("recording is truncated or corrupt at byte {offset}: {detail}")]
    Corrupt { offset: usize, detail: String },
}

pub struct Recorder {
    out: BufWriter<File>,
    path: String,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Self, RecordingError> {
        let shown = path.display().to_string();
        let file = File::create(path).map_err(|source| RecordingError::Io {
            path: shown.clone(),
            source,
        })?;
        Ok(Self {
            out: BufWriter::new(file),
            path: shown,
        })
    }

    pub fn write(&mut self, record: &[u8]) -> Result<(), RecordingError> {
        let len = u32::try_from(record.len()).unwrap_or(u32::MAX);
        self.out
            .write_all(&len.to_le_bytes())
            .and_then(|()| self.out.write_all(record))
            .map_err(|source| RecordingError::Io {
                path: self.path.clone(),
                source,
            })
    }

    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.out.flush().map_err(|source| RecordingError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Splits a recording into records. Never panics; a bad length is an error naming its offset.
pub fn split(bytes: &[u8]) -> Result<Vec<&[u8]>, RecordingError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(len_bytes) = bytes.get(at..at + 4) else {
            return Err(RecordingError::Corrupt {
                offset: at,
                detail: "partial length prefix".into(),
            });
        };
        let len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        if len > MAX_RECORD_BYTES {
            return Err(RecordingError::Corrupt {
                offset: at,
                detail: format!("record of {len} bytes"),
            });
        }
        let Some(record) = bytes.get(at + 4..at + 4 + len) else {
            return Err(RecordingError::Corrupt {
                offset: at,
                detail: format!("record of {len} bytes runs past the end"),
            });
        };
        out.push(record);
        at += 4 + len;
    }
    Ok(out)
}

pub fn read(path: &Path) -> Result<Vec<u8>, RecordingError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| RecordingError::Io {
            path: path.display().to_string(),
            source,
        })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let path = std::env::temp_dir().join(format!("cleartap-rec-{}", std::process::id()));
        let mut rec = Recorder::create(&path).expect("create");
        rec.write(b"abc").expect("write");
        rec.write(b"").expect("write");
        rec.flush().expect("flush");
        let bytes = read(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        assert_eq!(split(&bytes).expect("split"), [&b"abc"[..], &b""[..]]);
        assert!(matches!(
            split(&bytes[..5]),
            Err(RecordingError::Corrupt { offset: 0, .. })
        ));
        assert!(matches!(
            split(&bytes[..9]),
            Err(RecordingError::Corrupt { offset: 7, .. })
        ));
        assert!(split(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }
}

/// Feeds recorded records through decode → conn → http, without the process table or output:
/// the pure pipeline, as benchmarks and regression tests need it.
pub fn replay<'a>(
    records: impl IntoIterator<Item = &'a [u8]>,
    table: &mut crate::conn::ConnTable,
    out: &mut Vec<crate::conn::ConnExchange>,
) -> ReplayStats {
    use crate::decode::{Record, decode};
    let mut stats = ReplayStats::default();
    for bytes in records {
        stats.records += 1;
        match decode(bytes) {
            Ok(Record::Data(data, payload)) => table.on_data(&data, payload, out),
            Ok(Record::Socket(socket)) => table.on_socket(&socket, out),
            Ok(Record::Close(close)) => table.close(
                crate::conn::StreamId {
                    tgid: (close.header.pid_tgid >> 32) as u32,
                    ssl: close.ssl,
                },
                out,
            ),
            Ok(Record::Exit(exit)) => table.close_process((exit.header.pid_tgid >> 32) as u32, out),
            Ok(Record::Exec(_)) => {}
            Err(_) => stats.decode_errors += 1,
        }
    }
    table.close_all(out);
    stats
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    pub records: u64,
    pub decode_errors: u64,
}
