//! A byte FIFO that stays contiguous: parsers see one slice, consumption is an index bump, and
//! the storage is compacted only when the dead prefix outgrows the live bytes.

#[derive(Debug, Default)]
pub struct ByteQueue {
    bytes: Vec<u8>,
    start: usize,
}

impl ByteQueue {
    pub fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.start = 0;
    }

    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(self.start..).unwrap_or_default()
    }

    pub fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.len() {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(data);
    }

    /// Drops the first `n` bytes (all of them if fewer are queued).
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.bytes.len());
        if self.start == self.bytes.len() {
            self.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_semantics_and_compaction() {
        let mut q = ByteQueue::default();
        q.extend(b"hello ");
        q.consume(2);
        assert_eq!(q.as_slice(), b"llo ");
        q.extend(b"world");
        assert_eq!(q.as_slice(), b"llo world");
        q.consume(100);
        assert!(q.is_empty());
        q.extend(b"abc");
        q.consume(2);
        q.extend(b"d");
        assert_eq!((q.as_slice(), q.len()), (&b"cd"[..], 2));
    }
}
