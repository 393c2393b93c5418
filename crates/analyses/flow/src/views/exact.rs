//! The keys of one exact view window and their aggregates.
//!
//! Entries live in one vector in insertion order, found through a hash index of their positions
//! (`hashbrown::HashTable<u32>`, like the flow table's). A new key, the common case when a view
//! is about as fine as the flows (five-tuple, address pairs), is appended where the previous one
//! was written instead of landing on a random cache line of a large map: only the small index
//! (5 bytes per bucket) is probed at random. Snapshots walk the entries in order, so rows come
//! out in first-seen order, the same on every run with the same input.

use super::{Agg, VKey};
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Keys and aggregates of one exact view window, in first-seen order.
pub(super) struct ExactAggs {
    entries: Vec<(VKey, Agg)>,
    index: HashTable<u32>,
    /// Keys are attacker-controlled: the index hash is seeded per process.
    hasher: foldhash::fast::RandomState,
}

impl ExactAggs {
    /// An empty window with room for `cap` keys (the size of the previous window, so a steady
    /// view does not grow its index again each window).
    pub(super) fn with_capacity(cap: usize, hasher: foldhash::fast::RandomState) -> Self {
        ExactAggs {
            entries: Vec::with_capacity(cap),
            index: HashTable::with_capacity(cap),
            hasher,
        }
    }

    /// The seeded hash of a key: its five words, one `write_u64` each.
    #[inline]
    fn hash(hasher: &foldhash::fast::RandomState, k: &VKey) -> u64 {
        let tail = u64::from(k.ports)
            | u64::from(k.vlan) << 32
            | u64::from(k.proto) << 48
            | u64::from(k.fam) << 56;
        hasher.hash_one((k.src[0], k.src[1], k.dst[0], k.dst[1], tail))
    }

    /// Number of keys.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The hasher, to start the next window with the same seed.
    pub(super) fn hasher(&self) -> foldhash::fast::RandomState {
        self.hasher.clone()
    }

    /// The aggregate of `key`: found, or inserted with `new()` when `insert` allows it; `None`
    /// for an unknown key that may not be inserted (the view is at its key bound).
    #[inline]
    pub(super) fn get_or_insert(
        &mut self,
        key: VKey,
        insert: bool,
        new: impl FnOnce() -> Agg,
    ) -> Option<&mut Agg> {
        let h = Self::hash(&self.hasher, &key);
        let entries = &self.entries;
        if let Some(&i) = self.index.find(h, |&i| entries[i as usize].0 == key) {
            return Some(&mut self.entries[i as usize].1);
        }
        // Positions are u32: the index never holds more than u32::MAX keys, beyond that every
        // new key counts as over the bound.
        if !insert || self.entries.len() >= u32::MAX as usize {
            return None;
        }
        let i = self.entries.len() as u32;
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .insert_unique(h, i, |&j| Self::hash(hasher, &entries[j as usize].0));
        self.entries.push((key, new()));
        self.entries.last_mut().map(|e| &mut e.1)
    }

    /// Keys and aggregates in first-seen order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &(VKey, Agg)> {
        self.entries.iter()
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
    fn finds_inserts_and_keeps_first_seen_order() {
        let mut t = ExactAggs::with_capacity(0, foldhash::fast::RandomState::default());
        // 10 000 keys, each added 3 times in a scrambled order: each ends with 3 packets, and
        // the order of the entries is the order of first appearance.
        let order: Vec<u64> = (0..30_000u64).map(|i| (i * 7919) % 10_000).collect();
        let mut first_seen = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &n in &order {
            if seen.insert(n) {
                first_seen.push(n);
            }
            let a = t.get_or_insert(key(n), true, Agg::default).unwrap();
            a.packets += 1;
        }
        assert_eq!(t.len(), 10_000);
        let got: Vec<u64> = t.iter().map(|(k, _)| k.src[0]).collect();
        assert_eq!(got, first_seen);
        assert!(t.iter().all(|(_, a)| a.packets == 3));
    }

    #[test]
    fn refuses_new_keys_when_not_allowed_but_finds_known_ones() {
        let mut t = ExactAggs::with_capacity(4, foldhash::fast::RandomState::default());
        t.get_or_insert(key(1), true, Agg::default).unwrap().bytes = 5;
        assert!(t.get_or_insert(key(2), false, Agg::default).is_none());
        assert_eq!(
            t.get_or_insert(key(1), false, Agg::default).unwrap().bytes,
            5
        );
        assert_eq!(t.len(), 1);
    }
}
