//! What is derived from a credential — its redaction tag, its JWT summary — remembered by a
//! keyed hash of the credential: one token sends many requests, and deriving again costs an
//! HMAC-SHA256 or a base64 and JSON decode each time (together ~1 µs per exchange, measured
//! with a bearer JWT). Only the hash is kept, never the credential, under 128 bits of two
//! per-process random SipHash keys; the table is bounded and starts over when full.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
};

/// Entries kept before the table starts over.
pub const MEMO_ENTRIES: usize = 4096;

#[derive(Debug)]
pub struct CredentialMemo<V> {
    hashers: (RandomState, RandomState),
    entries: HashMap<u128, V>,
    /// Derivations done (misses), for tests and benches.
    pub derived: u64,
}

impl<V> Default for CredentialMemo<V> {
    fn default() -> Self {
        Self {
            hashers: (RandomState::new(), RandomState::new()),
            entries: HashMap::new(),
            derived: 0,
        }
    }
}

impl<V: Clone> CredentialMemo<V> {
    /// The value for `credential`, derived by `derive` on first sight.
    pub fn get_or_derive(&mut self, credential: &[u8], derive: impl FnOnce() -> V) -> V {
        let id = u128::from(self.hashers.0.hash_one(credential)) << 64
            | u128::from(self.hashers.1.hash_one(credential));
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
