//! The keys of one exact view window and their aggregates.
//!
//! Entries live in one vector in insertion order, found through an open-addressing index of
//! their positions (one `u64` slot per key: position and 32 bits of the key's hash). A new key,
//! the common case when a view is about as fine as the flows (five-tuple, address pairs), is
//! appended where the previous one was written instead of landing on a random cache line of a
//! large map: only the small index is probed at random, and growing it rehashes from the stored
//! hash bits without touching the entries. Because the slot of a key follows from its hash
//! alone, a caller that knows the next keys can prefetch their slots (and then their entries)
//! while it works on the current one. Snapshots walk the entries in order, so rows come out in
//! first-seen order, the same on every run with the same input.

use super::{Counts, Distinct, VKey};
use crate::slots::{prefetch, SlotIndex};
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
    index: SlotIndex,
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
            index: SlotIndex::with_capacity(cap),
            hasher,
        }
    }

    /// 32 bits of the seeded hash of a key (its five words, one `write_u64` each): picks the
    /// key's index slot and is stored there.
    #[inline]
    pub(super) fn hash32(&self, k: &VKey) -> u32 {
        let tail = u64::from(k.ports)
            | u64::from(k.vlan) << 32
            | u64::from(k.proto) << 48
            | u64::from(k.fam) << 56;
        (self
            .hasher
            .hash_one((k.src[0], k.src[1], k.dst[0], k.dst[1], tail))
            >> 32) as u32
    }

    /// Starts loading the index slot where a key of hash `h32` is looked up first.
    #[inline]
    pub(super) fn prefetch_slot(&self, h32: u32) {
        self.index.prefetch(h32);
    }

    /// Starts loading the entry that the home slot of `h32` points to, when its stored hash
    /// bits match (a key seen before); call once the slot itself is likely in cache.
    #[inline]
    pub(super) fn prefetch_entry(&self, h32: u32) {
        if let Some(e) = self
            .index
            .likely(h32)
            .and_then(|pos| self.entries.get(pos as usize))
        {
            prefetch(e);
        }
    }

    /// Number of keys.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The hasher, to start the next window with the same seed.
    pub(super) fn hasher(&self) -> foldhash::fast::RandomState {
        self.hasher.clone()
    }

    /// The counters and distinct counters of `key` (whose [`ExactAggs::hash32`] is `h32`):
    /// found, or inserted at zero when `insert` allows it; `None` for an unknown key that may
    /// not be inserted (the view is at its key bound).
    #[inline]
    pub(super) fn get_or_insert(
        &mut self,
        key: VKey,
        h32: u32,
        insert: bool,
    ) -> Option<(&mut Counts, &mut [Distinct])> {
        let entries = &self.entries;
        let found = self.index.find(h32, |pos| entries[pos as usize].key == key);
        let pos = match found {
            Some(pos) => pos as usize,
            // Positions are u32: beyond SlotIndex::MAX_POS keys every new key counts as over
            // the bound.
            None if !insert || self.entries.len() > SlotIndex::MAX_POS as usize => return None,
            None => {
                let i = self.entries.len();
                self.index.insert(h32, i as u32);
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
            let h = t.hash32(&key(n));
            let (c, d) = t.get_or_insert(key(n), h, true).unwrap();
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

    /// Keys whose hash bits collide (here all of them: the caller passes the hash) are told
    /// apart by the key itself, through growth of the index too.
    #[test]
    fn colliding_hashes_keep_keys_apart() {
        let mut t = ExactAggs::with_capacity(0, 0, foldhash::fast::RandomState::default());
        for round in 1..=2u64 {
            for n in 0..100 {
                let (c, _) = t.get_or_insert(key(n), 7, true).unwrap();
                c.packets += n;
                c.flows += round;
            }
        }
        assert_eq!(t.len(), 100);
        assert!(t
            .iter()
            .all(|(k, c, _)| c.packets == 2 * k.src[0] && c.flows == 3));
    }

    #[test]
    fn refuses_new_keys_when_not_allowed_but_finds_known_ones() {
        let mut t = ExactAggs::with_capacity(4, 0, foldhash::fast::RandomState::default());
        let (h1, h2) = (t.hash32(&key(1)), t.hash32(&key(2)));
        t.get_or_insert(key(1), h1, true).unwrap().0.bytes = 5;
        assert!(t.get_or_insert(key(2), h2, false).is_none());
        assert_eq!(t.get_or_insert(key(1), h1, false).unwrap().0.bytes, 5);
        assert_eq!(t.len(), 1);
    }
}
