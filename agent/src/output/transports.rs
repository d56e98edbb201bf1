//! Local transports: stdout, a size-rotated file (file-rotate), syslog (RFC 5424 via the syslog
//! crate's formatter; over a unix datagram socket, UDP, or TCP with RFC 6587 octet-counting
//! framing — the crate's own TCP writer sends messages back to back with no framing at all).

use std::{
    io::Write,
    net::{TcpStream, UdpSocket},
    os::unix::net::UnixDatagram,
    path::PathBuf,
    time::Duration,
};

use file_rotate::{ContentLimit, FileRotate, compression::Compression, suffix::AppendCount};
use syslog::{Facility, Formatter5424, LogFormat, Severity};

use super::sink::{Line, SendError, Transport};

fn io_err(what: &str, e: std::io::Error) -> SendError {
    SendError::Retry(format!("{what}: {e}"))
}

pub struct Stdout {
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Default for Stdout {
    fn default() -> Self {
        Self {
            out: std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout()),
        }
    }
}

impl Transport for Stdout {
    fn send(&mut self, batch: &[Line<'_>]) -> Result<(), SendError> {
        for line in batch {
            self.out
                .write_all(line.text.as_bytes())
                .and_then(|()| self.out.write_all(b"\n"))
                .map_err(|e| io_err("stdout (is the reader gone?)", e))?;
        }
        self.out.flush().map_err(|e| io_err("stdout", e))
    }
}

/// JSON lines in `path`; when it passes `max_bytes` it becomes `path.1` (older ones shift up)
/// and at most `keep_files` rotated files are kept.
pub struct RotatingFile {
    path: PathBuf,
    file: FileRotate<AppendCount>,
}

impl RotatingFile {
    pub fn open(path: PathBuf, max_bytes: u64, keep_files: usize) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // file-rotate panics on an unopenable path; check first so the error names it.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let mut options = std::fs::OpenOptions::new();
        options.read(true).create(true).append(true);
        let file = FileRotate::new(
            &path,
            AppendCount::new(keep_files),
            ContentLimit::BytesSurpassed(max_bytes as usize),
            Compression::None,
            Some(options),
        );
        Ok(Self { path, file })
    }
}

impl Transport for RotatingFile {
    fn send(&mut self, batch: &[Line<'_>]) -> Result<(), SendError> {
        let mut buf = Vec::new();
        for line in batch {
            buf.clear();
            buf.extend_from_slice(line.text.as_bytes());
            buf.push(b'\n');
            // One write per line: the file rotates between lines, never inside one.
            self.file
                .write_all(&buf)
                .map_err(|e| io_err(&self.path.display().to_string(), e))?;
        }
        self.file
            .flush()
            .map_err(|e| io_err(&self.path.display().to_string(), e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    Unix,
    Udp,
    Tcp,
}

enum SyslogSocket {
    Unix(UnixDatagram),
    Udp(UdpSocket),
    Tcp(Option<TcpStream>),
}

pub struct Syslog {
    formatter: Formatter5424,
    protocol: SyslogProtocol,
    address: String,
    socket: SyslogSocket,
}

impl Syslog {
    pub fn new(
        protocol: SyslogProtocol,
        address: String,
        hostname: String,
    ) -> std::io::Result<Self> {
        let socket = match protocol {
            SyslogProtocol::Unix => SyslogSocket::Unix(UnixDatagram::unbound()?),
            SyslogProtocol::Udp => SyslogSocket::Udp(UdpSocket::bind("0.0.0.0:0")?),
            SyslogProtocol::Tcp => SyslogSocket::Tcp(None),
        };
        Ok(Self {
            formatter: Formatter5424 {
                facility: Facility::LOG_LOCAL0,
                hostname: Some(hostname),
                process: "cleartap".into(),
                pid: std::process::id(),
            },
            protocol,
            address,
            socket,
        })
    }

    fn message(&self, line: &Line<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(line.text.len() + 96);
        // Formatting into a Vec cannot fail.
        let _ = self.formatter.format(
            &mut out,
            Severity::LOG_INFO,
            (1u32, std::collections::BTreeMap::new(), line.text),
        );
        out
    }
}

impl Transport for Syslog {
    fn send(&mut self, batch: &[Line<'_>]) -> Result<(), SendError> {
        let address = self.address.clone();
        let err = |e| io_err(&format!("syslog {:?} {address}", self.protocol), e);
        match &mut self.socket {
            SyslogSocket::Unix(_) | SyslogSocket::Udp(_) => {
                for line in batch {
                    let message = self.message(line);
                    let sent = match &self.socket {
                        SyslogSocket::Unix(s) => s.send_to(&message, &self.address),
                        SyslogSocket::Udp(s) => s.send_to(&message, &self.address),
                        SyslogSocket::Tcp(_) => Ok(0),
                    };
                    sent.map_err(err)?;
                }
                Ok(())
            }
            SyslogSocket::Tcp(_) => {
                let mut framed = Vec::new();
                for line in batch {
                    let message = self.message(line);
                    framed.extend_from_slice(format!("{} ", message.len()).as_bytes());
                    framed.extend_from_slice(&message);
                }
                let SyslogSocket::Tcp(stream) = &mut self.socket else {
                    return Ok(());
                };
                if stream.is_none() {
                    let s = TcpStream::connect(&self.address).map_err(err)?;
                    s.set_write_timeout(Some(Duration::from_secs(10)))
                        .map_err(err)?;
                    *stream = Some(s);
                }
                let result = stream
                    .as_mut()
                    .map_or(Ok(()), |s| s.write_all(&framed).and_then(|()| s.flush()));
                if let Err(e) = result {
                    // Reconnect on the next try; the batch is retried whole.
                    *stream = None;
                    return Err(err(e));
                }
                Ok(())
            }
        }
    }
}
