//! A bounded on-disk queue of event lines for one sink: when the sink is slow or down, lines
//! go here instead of being dropped, and are delivered, oldest first, once it is back. Lines
//! that would take the spool past its byte bound are refused (and counted by the caller).
//!
//! Layout: numbered segment files (`00000001.seg`, …) of newline-terminated lines, appended to
//! the newest, read from the oldest. What is on disk at start-up is delivered again (at least
//! once: a batch read but not confirmed before a crash is sent twice).

use std::{
    collections::VecDeque,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

const SEGMENT_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct Segment {
    number: u64,
    bytes: u64,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    /// Read position in the oldest segment.
    head_offset: u64,
    /// Bytes not yet delivered.
    pending_bytes: u64,
    pending_lines: u64,
}

impl Spool {
    /// Opens (creating) the spool directory and picks up segments left by an earlier run.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let io = |source| SpoolError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut numbers: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| {
                let name = e.ok()?.file_name();
                name.to_str()?.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let mut spool = Self {
            dir: dir.to_owned(),
            max_bytes,
            segments: VecDeque::new(),
            writer: None,
            head_offset: 0,
            pending_bytes: 0,
            pending_lines: 0,
        };
        for number in numbers {
            let path = spool.segment_path(number);
            let file = File::open(&path).map_err(|source| SpoolError::Io {
                path: path.clone(),
                source,
            })?;
            let mut bytes = 0u64;
            for line in BufReader::new(file).split(b'\n') {
                let line = line.map_err(|source| SpoolError::Io {
                    path: path.clone(),
                    source,
                })?;
                bytes += line.len() as u64 + 1;
                spool.pending_lines += 1;
            }
            spool.pending_bytes += bytes;
            spool.segments.push_back(Segment { number, bytes });
        }
        Ok(spool)
    }

    fn segment_path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:08}.seg"))
    }

    pub fn is_empty(&self) -> bool {
        self.pending_lines == 0
    }

    pub fn pending_lines(&self) -> u64 {
        self.pending_lines
    }

    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// Appends one line (without its newline). Ok(false): refused, the bound would be passed.
    pub fn push(&mut self, line: &str) -> Result<bool, SpoolError> {
        let len = line.len() as u64 + 1;
        if self.pending_bytes + len > self.max_bytes {
            return Ok(false);
        }
        let needs_new = match self.segments.back() {
            None => true,
            Some(s) => s.bytes + len > SEGMENT_BYTES || self.writer.is_none(),
        };
        if needs_new {
            let number = self.segments.back().map_or(1, |s| s.number + 1);
            let path = self.segment_path(number);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|source| SpoolError::Io { path, source })?;
            self.writer = Some(file);
            self.segments.push_back(Segment { number, bytes: 0 });
        }
        let (Some(writer), Some(segment)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Ok(false);
        };
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        writer.write_all(&buf).map_err(|source| SpoolError::Io {
            path: self.dir.clone(),
            source,
        })?;
        segment.bytes += len;
        self.pending_bytes += len;
        self.pending_lines += 1;
        Ok(true)
    }

    /// Up to `max` lines from the head, without removing them (see `commit`).
    pub fn peek(&mut self, max: usize) -> Result<Vec<String>, SpoolError> {
        let Some(head) = self.segments.front() else {
            return Ok(Vec::new());
        };
        let path = self.segment_path(head.number);
        let io = |source| SpoolError::Io {
            path: path.clone(),
            source,
        };
        let mut file = File::open(&path).map_err(io)?;
        file.seek(SeekFrom::Start(self.head_offset)).map_err(io)?;
        let mut lines = Vec::new();
        for line in BufReader::new(file).split(b'\n').take(max) {
            let line = line.map_err(io)?;
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        Ok(lines)
    }

    /// Removes the first `lines` lines returned by `peek` (they were delivered).
    pub fn commit(&mut self, lines: &[String]) -> Result<(), SpoolError> {
        let bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
        self.head_offset += bytes;
        self.pending_bytes = self.pending_bytes.saturating_sub(bytes);
        self.pending_lines = self.pending_lines.saturating_sub(lines.len() as u64);
        let finished = self
            .segments
            .front()
            .is_some_and(|head| self.head_offset >= head.bytes);
        if finished && let Some(head) = self.segments.pop_front() {
            if self.segments.is_empty() {
                // The write segment itself is done: start a fresh one on the next push.
                self.writer = None;
            }
            self.head_offset = 0;
            let path = self.segment_path(head.number);
            std::fs::remove_file(&path).map_err(|source| SpoolError::Io { path, source })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cleartap-spool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn lines_come_back_in_order_across_segments_and_restarts() {
        let d = dir("order");
        let line = "x".repeat(1000);
        let mut spool = Spool::open(&d, 64 << 20).expect("open");
        for i in 0..9000 {
            assert!(spool.push(&format!("{i} {line}")).expect("push"));
        }
        assert!(spool.segments.len() >= 2, "{:?}", spool.segments);
        let first = spool.peek(100).expect("peek");
        assert_eq!(first[0].split(' ').next(), Some("0"));
        spool.commit(&first).expect("commit");
        drop(spool);
        // A restart picks up what was left (the committed head of a segment comes again:
        // at least once).
        let mut spool = Spool::open(&d, 64 << 20).expect("reopen");
        let mut seen = Vec::new();
        while !spool.is_empty() {
            let batch = spool.peek(500).expect("peek");
            seen.extend(
                batch
                    .iter()
                    .map(|l| l.split(' ').next().unwrap_or("").to_owned()),
            );
            spool.commit(&batch).expect("commit");
        }
        assert_eq!(seen.len(), 9000);
        assert_eq!(seen.first().map(String::as_str), Some("0"));
        assert_eq!(seen.last().map(String::as_str), Some("8999"));
        assert_eq!(std::fs::read_dir(&d).expect("dir").count(), 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_byte_bound_refuses_lines() {
        let d = dir("bound");
        let mut spool = Spool::open(&d, 100).expect("open");
        assert!(spool.push(&"a".repeat(49)).expect("push"));
        assert!(spool.push(&"b".repeat(49)).expect("push"));
        assert!(!spool.push("c").expect("push"));
        assert_eq!(spool.pending_bytes(), 100);
        let batch = spool.peek(1).expect("peek");
        spool.commit(&batch).expect("commit");
        assert!(spool.push("c").expect("push"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
