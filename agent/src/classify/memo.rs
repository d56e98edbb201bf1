//! What is derived from a credential — its redaction tag, its JWT summary — remembered by a
//! keyed hash of the credential: one token sends many requests, and deriving again costs an
//! HMAC-SHA256 or a base64 and JSON decode each time (together ~1 µs per exchange, measured
//! with a bearer JWT). Only the hash is kept, never the credential: its 128-bit SipHash-1-3
//! under a per-process random key; the table is bounded and starts over when full.

use std::{
    collections::HashMap,
    hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState},
};

use siphasher::sip128::{Hasher128, SipHasher13};

/// Entries kept before the table starts over.
pub const MEMO_ENTRIES: usize = 4096;

#[derive(Debug)]
pub struct CredentialMemo<V> {
    /// Per-process random SipHash key.
    key: (u64, u64),
    /// Keyed by the credential's 128-bit SipHash, which is already uniform under a secret
    /// key: the table uses it as its hash instead of hashing it again.
    entries: HashMap<u128, V, BuildHasherDefault<PreHashed>>,
    /// Derivations done (misses), for tests and benches.
    pub derived: u64,
}

impl<V> Default for CredentialMemo<V> {
    fn default() -> Self {
        // Two random words from the standard library's per-process random hash keys (drawn
        // from the OS), without a dependency for it.
        let random = || RandomState::new().hash_one(0u8);
        Self {
            key: (random(), random()),
            entries: HashMap::default(),
            derived: 0,
        }
    }
}

/// The table's hasher for keys that are keyed hashes already: their low 64 bits.
#[derive(Default)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed here; any other input still spreads.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

impl<V: Clone> CredentialMemo<V> {
    /// The value for `credential`, derived by `derive` on first sight.
    pub fn get_or_derive(&mut self, credential: &[u8], derive: impl FnOnce() -> V) -> V {
        // One SipHash-1-3 pass with a 128-bit output (was two 64-bit passes and a third hash
        // of their concatenation by the table).
        let mut hasher = SipHasher13::new_with_keys(self.key.0, self.key.1);
        hasher.write(credential);
        let id = hasher.finish128().as_u128();
        if let Some(value) = self.entries.get(&id) {
            return value.clone();
        }
        if self.entries.len() >= MEMO_ENTRIES {
            self.entries.clear();
        }
        self.derived += 1;
        let value = derive();
        self.entries.insert(id, value.clone());
        value
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_once_per_credential_and_stays_bounded() {
        let mut memo = CredentialMemo::default();
        assert_eq!(memo.get_or_derive(b"token-a", || 1), 1);
        assert_eq!(memo.get_or_derive(b"token-a", || 2), 1);
        assert_eq!(memo.get_or_derive(b"token-b", || 3), 3);
        assert_eq!(memo.derived, 2);
        for i in 0..(MEMO_ENTRIES * 2) {
            memo.get_or_derive(format!("t{i}").as_bytes(), || i);
        }
        assert!(memo.len() <= MEMO_ENTRIES);
        // Started over: still correct, derived again.
        assert_eq!(memo.get_or_derive(b"token-a", || 9), 9);
    }
}
