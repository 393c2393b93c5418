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
use std::hash::BuildHasher;

/// One key and its counters: exactly one cache line, so a lookup of a known key costs at most
/// one miss (an 88-byte entry straddled two lines on most keys).
#[repr(C, align(64))]
struct Entry {
    key: VKey,
    counts: Counts,
}

/// Linear-probing index of entry positions. A slot holds `(position + 1) | hash32 << 32`, 0 when
/// empty; the table is a power of two at most three quarters full, and the 32 stored hash bits
/// settle almost every mismatch without an entry read.
#[derive(Default)]
struct Index {
    slots: Vec<u64>,
}

impl Index {
    /// Room for `keys` keys without growing.
    fn with_capacity(keys: usize) -> Index {
        let n = if keys == 0 {
            0
        } else {
            (keys + keys / 3 + 1).next_power_of_two().max(16)
        };
        Index {
            slots: zeroed_by_writing(n),
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Doubles the table, re-placing every slot from its stored hash bits.
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.slots = zeroed_by_writing((old.len() * 2).max(16));
        let mask = self.mask();
        for s in old.into_iter().filter(|&s| s != 0) {
            let mut i = (s >> 32) as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }
}

/// `n` zero slots, written rather than taken zeroed from the allocator: a large zeroed
/// allocation maps the shared zero page, so the index's first lookups would read it and each
/// first insert into a page would fault again to copy it, flushing the TLBs of every CPU the
/// process runs on (seen in perf as IPIs under `ViewState::add_exact`).
#[allow(clippy::slow_vector_initialization)] // writing the zeros is the point
fn zeroed_by_writing(n: usize) -> Vec<u64> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, 0);
    v
}

/// Asks the CPU to start loading the cache line at `p`; no effect on program state.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, even for an invalid address, and
    // reads nothing into the program.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Keys and aggregates of one exact view window, in first-seen order.
pub(super) struct ExactAggs {
    entries: Vec<Entry>,
    /// `nd` distinct-count sketches per entry, in entry order (none when the view counts no
    /// distinct values).
    distinct: Vec<Distinct>,
    nd: usize,
    index: Index,
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
            index: Index::with_capacity(cap),
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
        if !self.index.slots.is_empty() {
            prefetch(&self.index.slots[h32 as usize & self.index.mask()]);
        }
    }

    /// Starts loading the entry that the first slot of `h32` points to, when its stored hash
    /// bits match (a key seen before); call once the slot itself is likely in cache.
    #[inline]
    pub(super) fn prefetch_entry(&self, h32: u32) {
        if let Some(&s) = self.index.slots.get(h32 as usize & self.index.mask()) {
            if s != 0 && (s >> 32) as u32 == h32 {
                if let Some(e) = self.entries.get((s as u32 - 1) as usize) {
                    prefetch(e);
                }
            }
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
        let pos = match self.find(&key, h32) {
            Ok(pos) => pos,
            // Slots store position + 1 in 32 bits: the index never holds more than
            // u32::MAX - 1 keys, beyond that every new key counts as over the bound.
            Err(_) if !insert || self.entries.len() >= (u32::MAX - 1) as usize => return None,
            Err(mut slot) => {
                if (self.entries.len() + 1) * 4 > self.index.slots.len() * 3 {
                    self.index.grow();
                    slot = self.free_slot(h32);
                }
                let i = self.entries.len();
                self.index.slots[slot] = (i as u64 + 1) | u64::from(h32) << 32;
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

    /// The entry position of `key`, or the empty slot where it would go (any slot when the
    /// index has none yet: the caller grows it before inserting).
    #[inline]
    fn find(&self, key: &VKey, h32: u32) -> Result<usize, usize> {
        let slots = &self.index.slots;
        if slots.is_empty() {
            return Err(0);
        }
        let mask = self.index.mask();
        let mut i = h32 as usize & mask;
        loop {
            let s = slots[i];
            if s == 0 {
                return Err(i);
            }
            if (s >> 32) as u32 == h32 {
                let pos = (s as u32 - 1) as usize;
                if self.entries[pos].key == *key {
                    return Ok(pos);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The first empty slot on the probe path of `h32`.
    fn free_slot(&self, h32: u32) -> usize {
        let mask = self.index.mask();
        let mut i = h32 as usize & mask;
        while self.index.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        i
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
