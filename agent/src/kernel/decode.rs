//! Ring-buffer bytes → typed records. Every length is checked; malformed input is an error.

use agent_common::{
    enforce::VerdictRecord,
    event::{
        CloseRecord, DATA_CHUNK_BYTES, DataRecord, ExecRecord, ExitRecord, KIND_CLOSE, KIND_DATA,
        KIND_EXEC, KIND_EXIT, KIND_SOCKET, KIND_VERDICT, RecordHeader, SocketRecord,
    },
    user::read_record,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    Data(DataRecord, &'a [u8]),
    Socket(SocketRecord),
    Close(CloseRecord),
    Exec(ExecRecord),
    Exit(ExitRecord),
    /// An enforcement verdict (only the enforcement stage reads it).
    Verdict(VerdictRecord),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than a header")]
    ShortHeader { len: usize },
    #[error("{kind} record of {len} bytes is shorter than its {need}-byte layout")]
    Short {
        kind: &'static str,
        len: usize,
        need: usize,
    },
    #[error("data record claims {claimed} payload bytes but carries {present}")]
    PayloadLength { claimed: usize, present: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
}

fn need<T: agent_common::user::PlainRecord>(
    kind: &'static str,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    read_record::<T>(bytes).ok_or(DecodeError::Short {
        kind,
        len: bytes.len(),
        need: core::mem::size_of::<T>(),
    })
}

pub fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    let header: RecordHeader =
        read_record(bytes).ok_or(DecodeError::ShortHeader { len: bytes.len() })?;
    match header.kind {
        KIND_DATA => {
            let record: DataRecord = need("data", bytes)?;
            let claimed = record.payload_len as usize;
            let payload = bytes
                .get(core::mem::size_of::<DataRecord>()..)
                .unwrap_or_default();
            // The ring buffer may pad records to 8 bytes; the claim must fit and be sane.
            if claimed > payload.len() || claimed > DATA_CHUNK_BYTES {
                return Err(DecodeError::PayloadLength {
                    claimed,
                    present: payload.len(),
                });
            }
            let payload = payload.get(..claimed).ok_or(DecodeError::PayloadLength {
                claimed,
                present: payload.len(),
            })?;
            Ok(Record::Data(record, payload))
        }
        KIND_SOCKET => Ok(Record::Socket(need("socket", bytes)?)),
        KIND_CLOSE => Ok(Record::Close(need("close", bytes)?)),
        KIND_EXEC => Ok(Record::Exec(need("exec", bytes)?)),
        KIND_EXIT => Ok(Record::Exit(need("exit", bytes)?)),
        KIND_VERDICT => Ok(Record::Verdict(need("verdict", bytes)?)),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// A NUL-terminated kernel string as text (lossy; invalid UTF-8 is replaced).
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use agent_common::event::{COMM_BYTES, DIRECTION_EGRESS};

    /// A data record's bytes as the ring buffer holds them: `payload` follows, `claimed` is
    /// its `payload_len`.
    pub(crate) fn data_bytes(payload: &[u8], claimed: u32) -> Vec<u8> {
        let record = DataRecord {
            header: RecordHeader {
                kind: KIND_DATA,
                _pad: 0,
                timestamp_ns: 5,
                pid_tgid: (7 << 32) | 8,
            },
            stream: 0xabc,
            stream_offset: 100,
            call_len: payload.len() as u32,
            payload_len: claimed,
            direction: DIRECTION_EGRESS,
            fd: 3,
            library_id: 1,
            flags: 0,
            comm: [b'c'; COMM_BYTES],
            cgroup_id: 0,
        };
        let mut out = vec![0u8; core::mem::size_of::<DataRecord>()];
        // SAFETY: plain repr(C) struct copied into a byte buffer of exactly its size.
        unsafe { core::ptr::write_unaligned(out.as_mut_ptr().cast::<DataRecord>(), record) };
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_data_record_with_payload() {
        let bytes = data_bytes(b"GET / HTTP/1.1\r\n", 16);
        match decode(&bytes).expect("decodes") {
            Record::Data(r, p) => {
                assert_eq!(p, b"GET / HTTP/1.1\r\n");
                assert_eq!(r.stream, 0xabc);
                assert_eq!(r.stream_offset, 100);
                assert_eq!(r.header.pid_tgid >> 32, 7);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ignores_ring_buffer_padding_after_payload() {
        let mut bytes = data_bytes(b"abc", 3);
        bytes.extend_from_slice(&[0; 5]);
        assert!(matches!(decode(&bytes), Ok(Record::Data(_, p)) if p == b"abc"));
    }

    #[test]
    fn rejects_payload_longer_than_record() {
        let bytes = data_bytes(b"abc", 4000);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::PayloadLength {
                claimed: 4000,
                present: 3
            })
        );
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert_eq!(decode(&[1, 0, 0]), Err(DecodeError::ShortHeader { len: 3 }));
        let mut header = vec![0u8; 24];
        header[0] = 99;
        assert_eq!(decode(&header), Err(DecodeError::UnknownKind(99)));
        header[0] = KIND_SOCKET as u8;
        assert!(matches!(
            decode(&header),
            Err(DecodeError::Short { kind: "socket", .. })
        ));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed & 0x7) as u8
                })
                .collect();
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn c_string_stops_at_nul() {
        assert_eq!(c_string(b"curl\0\0xx"), "curl");
        assert_eq!(c_string(b"nonul"), "nonul");
    }
}
