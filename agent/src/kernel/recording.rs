//! Raw record files: a header naming the record layout, then every ring-buffer record as
//! `u32 little-endian length` + bytes, so a capture can be replayed through decode → conn → http
//! without eBPF (benchmarks, regression tests).
//! Recordings hold plaintext payloads, secrets included: treat them like a packet capture.

use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::Path,
};

/// Records larger than this are rejected when reading (a data record is at most ~16 KiB).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

const MAGIC: &[u8; 12] = b"cleartap-rec";

/// Changes whenever a record struct changes shape, so old recordings are refused by name
/// instead of being misread.
fn layout_version() -> u32 {
    use agent_common::event::{CloseRecord, DataRecord, ExecRecord, SocketRecord};
    (std::mem::size_of::<DataRecord>()
        + 1000 * std::mem::size_of::<SocketRecord>()
        + 1_000_000 * (std::mem::size_of::<CloseRecord>() + std::mem::size_of::<ExecRecord>()))
        as u32
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "not a cleartap recording of this version (layout {found:?}, this build reads {expected}); record it again with --record-raw"
    )]
    Version { found: Option<u32>, expected: u32 },
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
        let mut out = BufWriter::new(file);
        out.write_all(MAGIC)
            .and_then(|()| out.write_all(&layout_version().to_le_bytes()))
            .map_err(|source| RecordingError::Io {
                path: shown.clone(),
                source,
            })?;
        Ok(Self { out, path: shown })
    }

    /// Appends one ring-buffer record; a data record is cut to its payload (the kernel reserves
    /// records by size class, so up to half of one can be unused room).
    pub fn write(&mut self, record: &[u8]) -> Result<(), RecordingError> {
        let record = used_part(record);
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
    let expected = layout_version();
    let found = bytes
        .strip_prefix(MAGIC.as_slice())
        .and_then(|rest| rest.get(..4))
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(u32::from_le_bytes);
    if found != Some(expected) {
        return Err(RecordingError::Version { found, expected });
    }
    let mut out = Vec::new();
    let mut at = MAGIC.len() + 4;
    while at < bytes.len() {
        let Some(len_bytes) = bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
        else {
            return Err(RecordingError::Corrupt {
                offset: at,
                detail: "partial length prefix".into(),
            });
        };
        let len = u32::from_le_bytes(len_bytes) as usize;
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

/// A data record up to the end of its payload; any other record (or a malformed one, which
/// the decoder will count) whole.
fn used_part(record: &[u8]) -> &[u8] {
    use agent_common::event::{DataRecord, KIND_DATA};
    let data = agent_common::user::read_record::<DataRecord>(record)
        .filter(|d| d.header.kind == KIND_DATA);
    match data {
        Some(d) => {
            let end = std::mem::size_of::<DataRecord>().saturating_add(d.payload_len as usize);
            record.get(..end).unwrap_or(record)
        }
        None => record,
    }
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
            split(&bytes[..21]),
            Err(RecordingError::Corrupt { offset: 16, .. })
        ));
        assert!(matches!(
            split(&bytes[..25]),
            Err(RecordingError::Corrupt { offset: 23, .. })
        ));
        assert!(matches!(
            split(&[0xff, 0xff, 0xff, 0xff]),
            Err(RecordingError::Version { found: None, .. })
        ));
        let mut old = bytes.clone();
        old[12] ^= 1;
        assert!(matches!(
            split(&old),
            Err(RecordingError::Version { found: Some(_), .. })
        ));
    }

    /// A data record with `room` payload bytes of which `payload` are used, as a size-class
    /// reservation leaves it.
    fn data_record(payload: &[u8], room: usize) -> Vec<u8> {
        let mut bytes = crate::kernel::decode::tests::data_bytes(payload, payload.len() as u32);
        bytes.resize(
            std::mem::size_of::<agent_common::event::DataRecord>() + room,
            0xee,
        );
        bytes
    }

    #[test]
    fn data_records_are_kept_up_to_their_payload() {
        let path = std::env::temp_dir().join(format!("cleartap-rec-trim-{}", std::process::id()));
        let mut rec = Recorder::create(&path).expect("create");
        let padded = data_record(b"GET / HTTP/1.1\r\n\r\n", 128);
        let exact = data_record(b"abc", 3);
        rec.write(&padded).expect("write");
        rec.write(&exact).expect("write");
        // Shorter than a data record: kept whole for the decoder to count.
        rec.write(&padded[..20]).expect("write");
        rec.flush().expect("flush");
        let bytes = read(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        let records = split(&bytes).expect("split");
        let header = std::mem::size_of::<agent_common::event::DataRecord>();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0], &padded[..header + 18]);
        assert_eq!(records[1], &exact[..]);
        assert_eq!(records[2], &padded[..20]);
        let decoded = crate::kernel::decode::decode(records[0]).expect("decode");
        assert!(
            matches!(decoded, crate::kernel::decode::Record::Data(_, p) if p == b"GET / HTTP/1.1\r\n\r\n")
        );
    }
}
