//! The keys of one exact view window and their aggregates.
//!
//! Entries live in one vector in insertion order, found through a hash index of their positions
//! (`hashbrown::HashTable<u64>`: position and 32 bits of the key's hash). A new key, the common
//! case when a view is about as fine as the flows (five-tuple, address pairs), is appended where
//! the previous one was written instead of landing on a random cache line of a large map: only
//! the small index (9 bytes per bucket) is probed at random, and growing it rehashes from the
//! stored hash bits without touching the entries. Snapshots walk the entries in order, so rows
//! come out in first-seen order, the same on every run with the same input.

use super::{Counts, Distinct, VKey};
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// One key and its counters: exactly one cache line, so a lookup of a known key costs at most
/// one miss (an 88-byte entry straddled two lines on most keys).
#[repr(C, align(64))]
struct Entry {
    key: VKey,
    counts: Counts,
}

/// Keys and aggregates of one exact view window, in first-seen order.
pub(super) struct ExactAggs {
    entries: Vec<Entry>,
    /// `nd` distinct-count sketches per entry, in entry order (none when the view counts no
    /// distinct values).
    distinct: Vec<Distinct>,
    nd: usize,
    /// `position | hash32 << 32` per key; the table hash is rebuilt from `hash32` alone.
    index: HashTable<u64>,
    /// Keys are attacker-controlled: the index hash is seeded per process.
    hasher: foldhash::fast::RandomState,
}

impl ExactAggs {
    /// An empty window with room for `cap` keys (the size of the previous window, so a steady
    /// view does not grow its index again each window), each with `nd` distinct counters.
    pub(super) fn with_capacity(
        cap: usize,
        nd: usize,
        hasher: foldhash::fast::RandomState,
    ) -> Self {
        ExactAggs {
            entries: Vec::with_capacity(cap),
            distinct: Vec::with_capacity(cap * nd),
            nd,
            index: HashTable::with_capacity(cap),
            hasher,
        }
    }

    /// 32 bits of the seeded hash of a key (its five words, one `write_u64` each).
    #[inline]
    fn hash32(hasher: &foldhash::fast::RandomState, k: &VKey) -> u32 {
        let tail = u64::from(k.ports)
            | u64::from(k.vlan) << 32
            | u64::from(k.proto) << 48
            | u64::from(k.fam) << 56;
        (hasher.hash_one((k.src[0], k.src[1], k.dst[0], k.dst[1], tail)) >> 32) as u32
    }

    /// The index's hash of a key from its 32 stored bits: the low bits pick the bucket and the
    /// top bits make the control tag, as the index wants.
    #[inline]
    fn table_hash(h32: u32) -> u64 {
        u64::from(h32) << 32 | u64::from(h32)
    }

    /// Number of keys.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The hasher, to start the next window with the same seed.
    pub(super) fn hasher(&self) -> foldhash::fast::RandomState {
        self.hasher.clone()
    }

    /// The counters and distinct counters of `key`: found, or inserted at zero when `insert`
    /// allows it; `None` for an unknown key that may not be inserted (the view is at its key
    /// bound).
    #[inline]
    pub(super) fn get_or_insert(
        &mut self,
        key: VKey,
        insert: bool,
    ) -> Option<(&mut Counts, &mut [Distinct])> {
        let h32 = Self::hash32(&self.hasher, &key);
        let entries = &self.entries;
        let found = self.index.find(Self::table_hash(h32), |&v| {
            (v >> 32) as u32 == h32 && entries[v as u32 as usize].key == key
        });
        let pos = match found {
            Some(&v) => v as u32 as usize,
            // Positions are u32: the index never holds more than u32::MAX keys, beyond that
            // every new key counts as over the bound.
            None if !insert || self.entries.len() >= u32::MAX as usize => return None,
            None => {
                let i = self.entries.len();
                self.index.insert_unique(
                    Self::table_hash(h32),
                    i as u64 | u64::from(h32) << 32,
                    |&v| Self::table_hash((v >> 32) as u32),
                );
                self.entries.push(Entry {
                    key,
                    counts: Counts::default(),
                });
                self.distinct
                    .resize_with(self.distinct.len() + self.nd, Distinct::default);
                i
            }
        };
        let nd = self.nd;
        Some((
            &mut self.entries[pos].counts,
            &mut self.distinct[pos * nd..pos * nd + nd],
        ))
    }

    /// Keys, counters and distinct counters in first-seen order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&VKey, &Counts, &[Distinct])> {
        let nd = self.nd;
        self.entries
            .iter()
            .enumerate()
            .map(move |(i, e)| (&e.key, &e.counts, &self.distinct[i * nd..i * nd + nd]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> VKey {
        VKey {
            src: [n, 0],
            dst: [n.rotate_left(7), 1],
            ports: n as u32,
            vlan: super::super::NO_VLAN,
            proto: 6,
            fam: 0,
        }
    }

    #[test]
    fn an_entry_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Entry>(), 64);
        assert_eq!(std::mem::align_of::<Entry>(), 64);
    }

    #[test]
    fn finds_inserts_and_keeps_first_seen_order() {
        let mut t = ExactAggs::with_capacity(0, 1, foldhash::fast::RandomState::default());
        // 10 000 keys, each added 3 times in a scrambled order: each ends with 3 packets, and
        // the order of the entries is the order of first appearance.
        let order: Vec<u64> = (0..30_000u64).map(|i| (i * 7919) % 10_000).collect();
        let mut first_seen = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &n in &order {
            if seen.insert(n) {
                first_seen.push(n);
            }
            let (c, d) = t.get_or_insert(key(n), true).unwrap();
            c.packets += 1;
            // Each key's own sketch: it sees only that key's values.
            d[0].add_hash(n, 12);
        }
        assert_eq!(t.len(), 10_000);
        let got: Vec<u64> = t.iter().map(|(k, _, _)| k.src[0]).collect();
        assert_eq!(got, first_seen);
        assert!(t
            .iter()
            .all(|(_, c, d)| c.packets == 3 && d[0].count() == 1));
    }

    #[test]
    fn refuses_new_keys_when_not_allowed_but_finds_known_ones() {
        let mut t = ExactAggs::with_capacity(4, 0, foldhash::fast::RandomState::default());
        t.get_or_insert(key(1), true).unwrap().0.bytes = 5;
        assert!(t.get_or_insert(key(2), false).is_none());
        assert_eq!(t.get_or_insert(key(1), false).unwrap().0.bytes, 5);
        assert_eq!(t.len(), 1);
    }
}
