//! An open-addressing index from 32-bit hashes to `u32` positions, for tables whose entries live
//! in a vector of their own (the flow table's slab, an exact view's entries).
//!
//! One `u64` slot per key holds `(position + 1) | hash32 << 32` (0 is empty). A key's home slot
//! is its hash scaled to the table size (`hash32 * len >> 32`, so any size works and the table
//! can grow by half instead of doubling); collisions probe linearly and removal shifts the
//! following run back (no tombstones). The table is at most three quarters full.
//!
//! The home slot follows from the hash alone, so a caller that hashes the next keys early can
//! prefetch their slots, and a little later the entries the slots point to, while it works on
//! the current key: with hundreds of thousands of keys, a lookup otherwise waits on a cache miss
//! for the slot and another for the entry. The 32 stored hash bits settle almost every mismatch
//! without reading an entry, and growing re-places slots from them without reading any entry.

/// Hash-to-position index with linear probing; see the module docs.
#[derive(Default)]
pub(crate) struct SlotIndex {
    slots: Vec<u64>,
    len: usize,
}

/// `n` zero slots, written rather than taken zeroed from the allocator: a large zeroed
/// allocation maps the shared zero page, so the first lookups would read it and each page's
/// first insert would fault again to copy it, flushing the TLBs of every CPU the process runs on.
#[allow(clippy::slow_vector_initialization)] // writing the zeros is the point
fn zeroed_by_writing(n: usize) -> Vec<u64> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, 0);
    v
}

/// Asks the CPU to start loading the cache line at `p`; no effect on program state.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
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

#[inline]
fn slot_value(h32: u32, pos: u32) -> u64 {
    (u64::from(pos) + 1) | u64::from(h32) << 32
}

impl SlotIndex {
    /// The largest position a slot can hold.
    pub(crate) const MAX_POS: u32 = u32::MAX - 1;

    /// Room for `keys` keys without growing.
    pub(crate) fn with_capacity(keys: usize) -> SlotIndex {
        let n = if keys == 0 {
            0
        } else {
            (keys + keys / 3 + 1).max(16)
        };
        SlotIndex {
            slots: zeroed_by_writing(n),
            len: 0,
        }
    }

    /// Number of keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the slots.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u64>()
    }

    #[inline]
    fn home(&self, h32: u32) -> usize {
        ((u64::from(h32) * self.slots.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Starts loading the home slot of `h32`.
    #[inline]
    pub(crate) fn prefetch(&self, h32: u32) {
        if !self.slots.is_empty() {
            prefetch(&self.slots[self.home(h32)]);
        }
    }

    /// The position in the home slot of `h32` when that slot holds the same hash bits: the
    /// likely entry of a known key, to prefetch once the slot itself is in cache.
    #[inline]
    pub(crate) fn likely(&self, h32: u32) -> Option<u32> {
        let s = *self.slots.get(self.home(h32))?;
        (s != 0 && (s >> 32) as u32 == h32).then(|| s as u32 - 1)
    }

    /// The position whose hash is `h32` and for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, h32: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(h32);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == h32 && eq(s as u32 - 1) {
                return Some(s as u32 - 1);
            }
            i = self.next(i);
        }
    }

    /// Adds `pos` under `h32` (the caller knows it is not there), growing first when the table
    /// would pass three quarters full.
    #[inline]
    pub(crate) fn insert(&mut self, h32: u32, pos: u32) {
        debug_assert!(pos <= Self::MAX_POS);
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mut i = self.home(h32);
        while self.slots[i] != 0 {
            i = self.next(i);
        }
        self.slots[i] = slot_value(h32, pos);
        self.len += 1;
    }

    /// Removes `pos` stored under `h32`; false when it is not there. The run after the hole
    /// moves back so that every remaining key stays reachable from its home slot.
    pub(crate) fn remove(&mut self, h32: u32, pos: u32) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let want = slot_value(h32, pos);
        let mut i = self.home(h32);
        loop {
            match self.slots[i] {
                0 => return false,
                s if s == want => break,
                _ => i = self.next(i),
            }
        }
        let n = self.slots.len();
        let mut hole = i;
        let mut j = self.next(hole);
        loop {
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let home = self.home((s >> 32) as u32);
            // The key at `j` may fill the hole when the hole lies on its probe path, i.e.
            // between its home and `j` going forward.
            if (hole + n - home) % n < (j + n - home) % n {
                self.slots[hole] = s;
                hole = j;
            }
            j = self.next(j);
        }
        self.slots[hole] = 0;
        self.len -= 1;
        true
    }

    /// Grows by half (at least to 16 slots), re-placing every slot from its stored hash bits.
    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.slots = zeroed_by_writing((old.len() + old.len() / 2).max(16));
        for s in old.into_iter().filter(|&s| s != 0) {
            let mut i = self.home((s >> 32) as u32);
            while self.slots[i] != 0 {
                i = self.next(i);
            }
            self.slots[i] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
    }

    proptest! {
        /// Against a map of position → hash: after any sequence of inserts and removals with
        /// heavily colliding hashes (a few distinct values, so long runs wrap around the end of
        /// the table), every live position is found under its hash and removed ones are not.
        #[test]
        fn behaves_like_a_map(
            ops in prop::collection::vec(
                prop_oneof![(0u32..400).prop_map(Op::Insert), (0u32..400).prop_map(Op::Remove)],
                1..600,
            ),
            hashes in prop::collection::vec(
                prop_oneof![Just(0u32), Just(u32::MAX), Just(7), any::<u32>()],
                400,
            ),
        ) {
            let mut idx = SlotIndex::default();
            let mut model: HashMap<u32, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(p) => {
                        if let std::collections::hash_map::Entry::Vacant(e) = model.entry(p) {
                            e.insert(hashes[p as usize]);
                            idx.insert(hashes[p as usize], p);
                        }
                    }
                    Op::Remove(p) => {
                        let h = hashes[p as usize];
                        prop_assert_eq!(idx.remove(h, p), model.remove(&p).is_some());
                    }
                }
                prop_assert_eq!(idx.len(), model.len());
            }
            for p in 0..400u32 {
                let h = hashes[p as usize];
                let found = idx.find(h, |q| q == p);
                prop_assert_eq!(found.is_some(), model.contains_key(&p), "position {}", p);
            }
            prop_assert!(idx.len() * 4 <= idx.slots.len() * 3 || idx.slots.is_empty());
        }
    }

    #[test]
    fn likely_names_the_home_slot_of_a_known_hash() {
        let mut idx = SlotIndex::with_capacity(100);
        idx.insert(0x8000_0000, 41);
        assert_eq!(idx.likely(0x8000_0000), Some(41));
        assert_eq!(idx.likely(0x8000_0001), None);
        assert_eq!(SlotIndex::default().likely(5), None);
    }
}
