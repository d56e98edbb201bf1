//! Values the input rules (INJ-1/2/3) already found clean, remembered by (place, value).
//!
//! Most of what a request carries repeats from request to request — `Host`, `User-Agent`,
//! `Accept`, the path's fixed segments, `page=2` — and the input rules judge each value only by
//! its text and its place (a header's name, a parameter's name). A value they found clean
//! before is clean again: looking it up costs a hash and a compare where judging it costs
//! normalisation, an automaton pass and libinjection for each rule.
//!
//! The table is direct-mapped and bounded (slots × the longest value kept). A hit compares the
//! whole key, so a colliding value is never taken for another: an attacker can only evict
//! entries, which costs the rules their full work again, never a skipped check.

use std::hash::{BuildHasher, Hasher};

use super::inputs::Place;

/// Slots in the table (a power of two).
const SLOTS: usize = 2048;
/// Longer values are judged every time: long values rarely repeat, and the bound keeps the
/// table's memory ≤ SLOTS × (MAX_VALUE_BYTES + MAX_NAME_BYTES).
pub const MAX_VALUE_BYTES: usize = 128;
const MAX_NAME_BYTES: usize = 64;

#[derive(Default)]
struct Slot {
    hash: u64,
    place: u8,
    /// The place's name, then the value.
    text: String,
    name_len: usize,
    /// Rules (bit `1 << RuleId as usize`) that found this value clean at this place.
    clean: u64,
}

/// Where a lookup landed, for [`CleanValues::remember`].
#[derive(Debug, Clone, Copy)]
pub struct Key {
    hash: u64,
}

#[derive(Default)]
pub struct CleanValues {
    /// Empty until the first value is remembered.
    slots: Vec<Slot>,
    hasher: rustc_hash::FxBuildHasher,
    pub hits: u64,
    pub misses: u64,
}

/// The place as a tag and the name the rules read from it.
fn place_key<'a>(place: Place<'a>) -> (u8, &'a str) {
    match place {
        Place::Param(Some(name)) => (1, name),
        Place::Param(None) => (2, ""),
        Place::Header(name) => (3, name),
        Place::Cookie => (4, ""),
        Place::Body => (5, ""),
        Place::RawBody => (6, ""),
    }
}

impl CleanValues {
    /// The rules `value` at `place` is known clean for (a bit mask), and where to remember
    /// more; None when the value is not kept (too long).
    pub fn lookup(&mut self, place: Place<'_>, value: &str) -> Option<(u64, Key)> {
        let (tag, name) = place_key(place);
        if value.len() > MAX_VALUE_BYTES || name.len() > MAX_NAME_BYTES {
            return None;
        }
        let mut h = self.hasher.build_hasher();
        h.write_u8(tag);
        h.write(name.as_bytes());
        h.write_u8(0xff);
        h.write(value.as_bytes());
        let hash = h.finish();
        let clean = self
            .slots
            .get(slot_of(hash))
            .filter(|s| s.clean != 0 && s.hash == hash && s.place == tag && s.holds(name, value))
            .map_or(0, |s| s.clean);
        if clean == 0 {
            self.misses += 1;
        } else {
            self.hits += 1;
        }
        Some((clean, Key { hash }))
    }

    /// Records that the rules in `clean` found `value` at `place` clean (replacing whatever the
    /// slot held).
    pub fn remember(&mut self, key: Key, place: Place<'_>, value: &str, clean: u64) {
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, Slot::default);
        }
        let (tag, name) = place_key(place);
        let Some(slot) = self.slots.get_mut(slot_of(key.hash)) else {
            return;
        };
        slot.hash = key.hash;
        slot.place = tag;
        slot.text.clear();
        slot.text.push_str(name);
        slot.text.push_str(value);
        slot.name_len = name.len();
        slot.clean = clean;
    }
}

fn slot_of(hash: u64) -> usize {
    // The high bits: FxHash mixes them best.
    (hash >> 32) as usize & (SLOTS - 1)
}

impl Slot {
    fn holds(&self, name: &str, value: &str) -> bool {
        self.name_len == name.len()
            && self.text.len() == name.len() + value.len()
            && self.text.as_bytes().get(..name.len()) == Some(name.as_bytes())
            && self.text.as_bytes().get(name.len()..) == Some(value.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_place_and_value() {
        let mut memo = CleanValues::default();
        let ua = Place::Header("user-agent");
        let (clean, key) = memo.lookup(ua, "curl/8").expect("kept");
        assert_eq!(clean, 0);
        memo.remember(key, ua, "curl/8", 0b101);
        assert_eq!(memo.lookup(ua, "curl/8").map(|(c, _)| c), Some(0b101));
        // Same text, another place or name; another text at the same place: unknown.
        assert_eq!(
            memo.lookup(Place::Header("referer"), "curl/8")
                .map(|(c, _)| c),
            Some(0)
        );
        assert_eq!(
            memo.lookup(Place::Cookie, "curl/8").map(|(c, _)| c),
            Some(0)
        );
        assert_eq!(memo.lookup(ua, "curl/9").map(|(c, _)| c), Some(0));
        // Name and value split differently: not the same key.
        let (_, key) = memo.lookup(Place::Param(Some("ab")), "c").expect("kept");
        memo.remember(key, Place::Param(Some("ab")), "c", 1);
        assert_eq!(
            memo.lookup(Place::Param(Some("a")), "bc").map(|(c, _)| c),
            Some(0)
        );
        assert_eq!(
            memo.lookup(Place::Param(Some("ab")), "c").map(|(c, _)| c),
            Some(1)
        );
        assert_eq!((memo.hits, memo.misses), (2, 6));
    }

    #[test]
    fn long_values_are_not_kept_and_the_table_stays_bounded() {
        let mut memo = CleanValues::default();
        assert!(
            memo.lookup(Place::Body, &"a".repeat(MAX_VALUE_BYTES + 1))
                .is_none()
        );
        for i in 0..SLOTS * 4 {
            let value = format!("{i:0>100}");
            let (_, key) = memo.lookup(Place::Body, &value).expect("kept");
            memo.remember(key, Place::Body, &value, 1);
        }
        assert_eq!(memo.slots.len(), SLOTS);
        // Every kept value is still found exactly: evicted ones are unknown, never wrong.
        let known = (0..SLOTS * 4)
            .filter(|i| {
                memo.lookup(Place::Body, &format!("{i:0>100}"))
                    .map(|(c, _)| c)
                    == Some(1)
            })
            .count();
        assert!(known > 0 && known <= SLOTS, "{known}");
    }
}
