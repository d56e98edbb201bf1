//! HPACK (RFC 7541) for a decoder that may have joined the connection late. One decoder per
//! direction. Dynamic-table indices count back from the newest insertion (62 is always the
//! newest), so every entry inserted after the agent attached resolves exactly; an index past
//! what this decoder holds refers to an entry it never saw and decodes as [`Field::Unknown`] —
//! never a guess. A capture gap inside a header block makes the table unknown again
//! ([`Decoder::forget`]); it heals as the encoder inserts new entries.
//!
//! Bounds: the table holds at most `max_table_bytes` (the peer's negotiated size is not known
//! to a late joiner; an entry evicted early only turns a later reference into Unknown), and a
//! block decodes at most `max_list_bytes` of fields (RFC 7541 §4.1 sizes); the rest of the
//! block is still decoded, so the table stays in step, but its fields are dropped and counted.

use std::collections::VecDeque;

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// RFC 7541 §4.1: an entry's size is its name and value lengths plus 32.
const ENTRY_OVERHEAD: usize = 32;

/// One decoded field, borrowed from a [`FieldList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    Known {
        name: &'a [u8],
        value: &'a [u8],
    },
    /// The name came from a table entry this decoder never saw (the value was a literal).
    UnknownName {
        value: &'a [u8],
    },
    /// A whole field indexed from an entry this decoder never saw.
    Unknown,
}

type Span = (u32, u32);

#[derive(Debug, Clone, Copy)]
enum FieldRef {
    Known { name: Span, value: Span },
    UnknownName { value: Span },
    Unknown,
}

/// A decoded header list: every name and value in one reused buffer, so decoding a block
/// allocates nothing once the buffers have grown (per-field Vecs were the largest cost).
#[derive(Debug, Default)]
pub struct FieldList {
    bytes: Vec<u8>,
    fields: Vec<FieldRef>,
}

impl FieldList {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.fields.clear();
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn slice(&self, (start, end): Span) -> &[u8] {
        self.bytes
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    pub fn iter(&self) -> impl Iterator<Item = Field<'_>> {
        self.fields.iter().map(|f| match *f {
            FieldRef::Known { name, value } => Field::Known {
                name: self.slice(name),
                value: self.slice(value),
            },
            FieldRef::UnknownName { value } => Field::UnknownName {
                value: self.slice(value),
            },
            FieldRef::Unknown => Field::Unknown,
        })
    }

    pub fn get(&self, i: usize) -> Option<Field<'_>> {
        self.iter().nth(i)
    }

    /// Appends `bytes` to the buffer and returns their span.
    fn push_bytes(&mut self, bytes: &[u8]) -> Span {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(bytes);
        (start, self.bytes.len() as u32)
    }

    /// Drops fields (and their bytes) from `fields_len` / `bytes_len` on: a field over the
    /// list bound is not kept.
    fn truncate(&mut self, fields_len: usize, bytes_len: usize) {
        self.fields.truncate(fields_len);
        self.bytes.truncate(bytes_len);
    }
}

/// Decoded Huffman strings by their encoding, per direction: most values repeat on a
/// connection (nginx sends `server`, `content-type`, `date` … as Huffman literals on every
/// response, never indexed), and a lookup is far cheaper than decoding again. Bounded: it
/// starts over when full.
#[derive(Debug, Default)]
struct HuffmanCache {
    map: std::collections::HashMap<Box<[u8]>, Box<[u8]>>,
}

const HUFFMAN_CACHE_ENTRIES: usize = 256;
/// Longer strings are decoded every time (a cookie or token rarely repeats byte for byte).
const HUFFMAN_CACHE_MAX_BYTES: usize = 96;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("truncated header block")]
    Truncated,
    #[error("integer overflow")]
    Integer,
    #[error("index 0 or beyond the static table")]
    BadIndex,
    #[error("invalid Huffman string")]
    Huffman,
    #[error("table size update above the decoder's limit")]
    SizeUpdate,
}

/// Per-block tallies for the connection's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BlockStats {
    /// Fields that referenced entries the decoder never saw.
    pub unsynced_fields: u32,
    /// Fields dropped because the decoded list exceeded its bound.
    pub dropped_fields: u32,
}

#[derive(Debug, Clone)]
struct Entry {
    name: Option<Box<[u8]>>,
    value: Box<[u8]>,
}

impl Entry {
    /// A name the decoder never saw counts as empty: a lower bound keeps the entry longest,
    /// which only delays an eviction the encoder made.
    fn size(&self) -> usize {
        self.name.as_ref().map_or(0, |n| n.len()) + self.value.len() + ENTRY_OVERHEAD
    }
}

#[derive(Debug)]
pub struct Decoder {
    /// Newest first.
    entries: VecDeque<Entry>,
    size: usize,
    /// The size the encoder last announced, capped to `max_table_bytes`.
    table_limit: usize,
    max_table_bytes: usize,
    max_list_bytes: usize,
    huffman_cache: HuffmanCache,
}

impl Decoder {
    pub fn new(max_table_bytes: usize, max_list_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            // The protocol's default until the encoder says otherwise (RFC 9113 §6.5.2).
            table_limit: 4096.min(max_table_bytes),
            max_table_bytes,
            max_list_bytes,
            huffman_cache: HuffmanCache::default(),
        }
    }

    /// The table no longer matches the encoder's (a capture gap inside a header block):
    /// every entry is unknown until the encoder inserts new ones.
    pub fn forget(&mut self) {
        self.entries.clear();
        self.size = 0;
    }

    pub fn table_len(&self) -> usize {
        self.entries.len()
    }

    /// Decodes one complete header block, appending to `out`.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        out: &mut FieldList,
    ) -> Result<BlockStats, HpackError> {
        let mut stats = BlockStats::default();
        let mut list_bytes = 0usize;
        while let Some(&first) = block.first() {
            let (fields_len, bytes_len) = (out.fields.len(), out.bytes.len());
            let field = if first & 0x80 != 0 {
                let index = integer(&mut block, 7)?;
                self.lookup(index, out)?
            } else if first & 0xc0 == 0x40 {
                let field = self.literal(&mut block, 6, out)?;
                self.insert(field, out);
                field
            } else if first & 0xe0 == 0x20 {
                let size = integer(&mut block, 5)?;
                // An encoder may announce up to what the peer allowed, which a late joiner
                // never saw: accept anything, keep at most our own bound.
                if size > (1 << 30) {
                    return Err(HpackError::SizeUpdate);
                }
                self.table_limit = size.min(self.max_table_bytes);
                self.evict(0);
                continue;
            } else {
                // Without indexing (0000) or never indexed (0001): 4-bit name index.
                self.literal(&mut block, 4, out)?
            };
            let len = |(a, b): Span| (b - a) as usize;
            let size = match field {
                FieldRef::Known { name, value } => len(name) + len(value) + ENTRY_OVERHEAD,
                FieldRef::UnknownName { value } => len(value) + ENTRY_OVERHEAD,
                FieldRef::Unknown => ENTRY_OVERHEAD,
            };
            if !matches!(field, FieldRef::Known { .. }) {
                stats.unsynced_fields += 1;
            }
            list_bytes = list_bytes.saturating_add(size);
            if list_bytes > self.max_list_bytes {
                stats.dropped_fields += 1;
                out.truncate(fields_len, bytes_len);
                continue;
            }
            out.fields.push(field);
        }
        Ok(stats)
    }

    fn lookup(&self, index: usize, out: &mut FieldList) -> Result<FieldRef, HpackError> {
        match index {
            0 => Err(HpackError::BadIndex),
            1..=61 => {
                let (name, value) = STATIC_TABLE.get(index - 1).ok_or(HpackError::BadIndex)?;
                Ok(FieldRef::Known {
                    name: out.push_bytes(name.as_bytes()),
                    value: out.push_bytes(value.as_bytes()),
                })
            }
            _ => Ok(match self.entries.get(index - 62) {
                Some(Entry {
                    name: Some(name),
                    value,
                }) => FieldRef::Known {
                    name: out.push_bytes(name),
                    value: out.push_bytes(value),
                },
                Some(Entry { name: None, value }) => FieldRef::UnknownName {
                    value: out.push_bytes(value),
                },
                None => FieldRef::Unknown,
            }),
        }
    }

    fn literal(
        &mut self,
        block: &mut &[u8],
        prefix_bits: u8,
        out: &mut FieldList,
    ) -> Result<FieldRef, HpackError> {
        let index = integer(block, prefix_bits)?;
        let name = if index == 0 {
            Some(self.string(block, out)?)
        } else {
            match self.lookup(index, out)? {
                FieldRef::Known { name, .. } => Some(name),
                FieldRef::UnknownName { .. } | FieldRef::Unknown => None,
            }
        };
        let value = self.string(block, out)?;
        Ok(match name {
            Some(name) => FieldRef::Known { name, value },
            None => FieldRef::UnknownName { value },
        })
    }

    /// Decodes a string literal into `out`'s buffer.
    fn string(&mut self, block: &mut &[u8], out: &mut FieldList) -> Result<Span, HpackError> {
        let huffman = block.first().ok_or(HpackError::Truncated)? & 0x80 != 0;
        let len = integer(block, 7)?;
        let (raw, rest) = block.split_at_checked(len).ok_or(HpackError::Truncated)?;
        *block = rest;
        if !huffman {
            return Ok(out.push_bytes(raw));
        }
        if let Some(decoded) = self.huffman_cache.map.get(raw) {
            return Ok(out.push_bytes(decoded));
        }
        let start = out.bytes.len();
        httlib_huffman::decode(raw, &mut out.bytes, httlib_huffman::DecoderSpeed::FiveBits)
            .map_err(|_| HpackError::Huffman)?;
        let span = (start as u32, out.bytes.len() as u32);
        if raw.len() <= HUFFMAN_CACHE_MAX_BYTES {
            if self.huffman_cache.map.len() >= HUFFMAN_CACHE_ENTRIES {
                self.huffman_cache.map.clear();
            }
            let decoded: Box<[u8]> = out.slice(span).into();
            self.huffman_cache.map.insert(raw.into(), decoded);
        }
        Ok(span)
    }

    fn insert(&mut self, field: FieldRef, out: &FieldList) {
        let entry = match field {
            FieldRef::Known { name, value } => Entry {
                name: Some(out.slice(name).into()),
                value: out.slice(value).into(),
            },
            FieldRef::UnknownName { value } => Entry {
                name: None,
                value: out.slice(value).into(),
            },
            // Literals always carry their value; unreachable, but harmless: nothing to add.
            FieldRef::Unknown => return,
        };
        let size = entry.size();
        if size > self.table_limit {
            // RFC 7541 §4.4: an entry larger than the table empties it.
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.entries.push_front(entry);
    }

    /// Evicts oldest entries until `incoming` more bytes fit under the limit.
    fn evict(&mut self, incoming: usize) {
        while self.size + incoming > self.table_limit {
            match self.entries.pop_back() {
                Some(old) => self.size = self.size.saturating_sub(old.size()),
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

/// RFC 7541 §5.1 prefix integer; consumes it from `block`. Bounded to values that fit in
/// 32 bits: nothing legitimate is larger, and the shift can never overflow.
fn integer(block: &mut &[u8], prefix_bits: u8) -> Result<usize, HpackError> {
    let (&first, mut rest) = block.split_first().ok_or(HpackError::Truncated)?;
    let max_prefix = (1usize << prefix_bits) - 1;
    let mut value = usize::from(first) & max_prefix;
    if value < max_prefix {
        *block = rest;
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let (&byte, tail) = rest.split_first().ok_or(HpackError::Truncated)?;
        rest = tail;
        if shift > 28 {
            return Err(HpackError::Integer);
        }
        value = value
            .checked_add(usize::from(byte & 0x7f) << shift)
            .ok_or(HpackError::Integer)?;
        if value > u32::MAX as usize {
            return Err(HpackError::Integer);
        }
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    *block = rest;
    Ok(value)
}

#[cfg(test)]
#[path = "hpack_tests.rs"]
mod tests;
