//! A bounded connection table: a slab of entries, a hash index over precomputed hashes, and a
//! recency list, so lookup, insertion, "touch", removal and finding the least recently active
//! entry are O(1). Used for TLS-over-TCP and QUIC connections.
//!
//! An entry is moved to the front of the list at most once per [`REFRESH_NS`] of packet time:
//! relinking touches up to three other entries (cache misses on every packet of a busy
//! connection otherwise). The list is then ordered by activity to within that much, so an idle
//! connection is found at most [`REFRESH_NS`] after its timeout.

use hashbrown::HashTable;

const NIL: u32 = u32::MAX;

/// Packet time between two moves of an entry to the front of the list.
pub(crate) const REFRESH_NS: i64 = 1_000_000_000;

struct Slot<T> {
    val: Option<T>,
    hash: u64,
    /// When the entry was last moved to the front.
    stamp: i64,
    prev: u32,
    next: u32,
}

/// Entries by hash, most recently active first.
pub(crate) struct LruTable<T> {
    index: HashTable<u32>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    live: usize,
}

impl<T> LruTable<T> {
    pub fn new() -> Self {
        LruTable {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            live: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.live
    }

    /// The entry with `hash` for which `eq` holds.
    #[inline]
    pub fn find(&self, hash: u64, eq: impl Fn(&T) -> bool) -> Option<u32> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| slots[i as usize].val.as_ref().is_some_and(&eq))
            .copied()
    }

    pub fn get(&self, i: u32) -> &T {
        self.slots[i as usize].val.as_ref().expect("live slot")
    }

    pub fn get_mut(&mut self, i: u32) -> &mut T {
        self.slots[i as usize].val.as_mut().expect("live slot")
    }

    /// The least recently active entry.
    pub fn oldest(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// Adds an entry as the most recently active at `now`; the caller keeps the table in its
    /// bound.
    pub fn insert(&mut self, hash: u64, now: i64, val: T) -> u32 {
        let i = match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                s.val = Some(val);
                s.hash = hash;
                s.stamp = now;
                i
            }
            None => {
                self.slots.push(Slot {
                    val: Some(val),
                    hash,
                    stamp: now,
                    prev: NIL,
                    next: NIL,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.index
            .insert_unique(hash, i, |&j| slots[j as usize].hash);
        self.link_front(i);
        self.live += 1;
        i
    }

    /// Marks an entry as active at `now` (moved to the front when it was last moved more than
    /// [`REFRESH_NS`] ago).
    #[inline]
    pub fn touch(&mut self, i: u32, now: i64) {
        let s = &mut self.slots[i as usize];
        if now - s.stamp >= REFRESH_NS && self.head != i {
            s.stamp = now;
            self.unlink(i);
            self.link_front(i);
        }
    }

    /// Removes an entry and returns it.
    pub fn remove(&mut self, i: u32) -> T {
        self.unlink(i);
        let hash = self.slots[i as usize].hash;
        let v = self.slots[i as usize].val.take().expect("live slot");
        if let Ok(e) = self.index.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        self.free.push(i);
        self.live -= 1;
        v
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = (self.slots[i as usize].prev, self.slots[i as usize].next);
        if p != NIL {
            self.slots[p as usize].next = n;
        } else {
            self.head = n;
        }
        if n != NIL {
            self.slots[n as usize].prev = p;
        } else {
            self.tail = p;
        }
    }

    fn link_front(&mut self, i: u32) {
        let h = self.head;
        self.slots[i as usize].prev = NIL;
        self.slots[i as usize].next = h;
        if h != NIL {
            self.slots[h as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recency_order_and_reuse() {
        let mut t = LruTable::new();
        let a = t.insert(1, 0, "a");
        let b = t.insert(2, 0, "b");
        let c = t.insert(1, 0, "c");
        assert_eq!(t.oldest(), Some(a));
        t.touch(a, REFRESH_NS - 1);
        assert_eq!(
            t.oldest(),
            Some(a),
            "touched too soon after its last move: stays"
        );
        t.touch(a, REFRESH_NS);
        assert_eq!(t.oldest(), Some(b));
        assert_eq!(t.find(1, |v| *v == "c"), Some(c));
        assert_eq!(t.find(1, |v| *v == "a"), Some(a));
        assert_eq!(t.remove(b), "b");
        assert_eq!(t.oldest(), Some(c));
        assert_eq!(t.find(2, |v| *v == "b"), None);
        let d = t.insert(3, 0, "d");
        assert_eq!(d, b, "freed slot reused");
        assert_eq!(t.len(), 3);
    }
}
