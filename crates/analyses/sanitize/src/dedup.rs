//! Exact-duplicate frame removal with bounded memory.
//!
//! Each frame is reduced to a 128-bit xxh3 hash of its captured bytes (with the captured length
//! mixed in). The last `capacity` frames are remembered in a ring of hashes (duplicates included,
//! like `editcap -D`, so the window counts frames read, not frames kept), and a hash table of ring
//! slots answers "was this hash seen in the window" in O(1). Memory: 16 bytes per ring slot plus
//! about 10 bytes per slot in the table (hashbrown at most 7/8 full), plus 8 bytes per slot for
//! timestamps when a time window is set.

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_128;

/// Largest window accepted (the same bound as `editcap -D`).
pub const MAX_WINDOW: usize = 1_000_000;

/// Default number of remembered frames when no window is given: about 26 MB.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// Which earlier frames a frame is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupConfig {
    /// Compare with the previous `n - 1` frames, like `editcap -D n` (`None`: the last
    /// [`DedupConfig::capacity`] frames).
    pub window_packets: Option<usize>,
    /// Only compare with frames captured at most this many nanoseconds earlier, like
    /// `editcap -w`.
    pub window_ns: Option<i64>,
    /// Bound on remembered frames when `window_packets` is not set.
    pub capacity: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            window_packets: None,
            window_ns: None,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

/// The duplicate detector.
pub struct Dedup {
    ring: Vec<u128>,
    /// Capture times of the ring slots (only with a time window).
    times: Vec<i64>,
    /// Index of the oldest remembered frame and how many are remembered.
    head: usize,
    len: usize,
    /// Ring slot of the latest occurrence of each remembered hash.
    table: HashTable<u32>,
    window_ns: Option<i64>,
}

impl std::fmt::Debug for Dedup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedup")
            .field("capacity", &self.ring.len())
            .field("len", &self.len)
            .finish()
    }
}

#[inline]
fn h64(h: u128) -> u64 {
    h as u64
}

/// Hash of one frame: captured bytes, with the captured length mixed in as editcap compares it.
#[inline]
pub fn frame_hash(data: &[u8]) -> u128 {
    xxh3_128(data) ^ ((data.len() as u128) << 96)
}

impl Dedup {
    /// Builds a detector. A packet window of `n` compares with `n - 1` earlier frames (`n` of 0
    /// or 1 means no comparison at all, as in editcap).
    pub fn new(cfg: &DedupConfig) -> Self {
        let cap = match cfg.window_packets {
            Some(n) => n.clamp(1, MAX_WINDOW) - 1,
            None => cfg.capacity,
        };
        Dedup {
            ring: vec![0; cap],
            times: if cfg.window_ns.is_some() {
                vec![0; cap]
            } else {
                Vec::new()
            },
            head: 0,
            len: 0,
            table: HashTable::with_capacity(cap),
            window_ns: cfg.window_ns,
        }
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.ring.len() * 16 + self.times.len() * 8 + self.table.capacity() * 5
    }

    /// Forgets the oldest remembered frame.
    fn evict_oldest(&mut self) {
        let slot = self.head;
        let h = self.ring[slot];
        if let Ok(e) = self
            .table
            .find_entry(h64(h), |&s| s as usize == slot && self.ring[s as usize] == h)
        {
            e.remove();
        }
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
    }

    /// Returns true when `data` (captured at `ts_ns`) duplicates a remembered frame, and
    /// remembers it either way.
    pub fn check(&mut self, data: &[u8], ts_ns: i64) -> bool {
        let cap = self.ring.len();
        if cap == 0 {
            return false;
        }
        if let Some(w) = self.window_ns {
            while self.len > 0 && ts_ns.saturating_sub(self.times[self.head]) > w {
                self.evict_oldest();
            }
        }
        let h = frame_hash(data);
        let ring = &self.ring;
        let dup = self
            .table
            .find(h64(h), |&s| ring[s as usize] == h)
            .is_some();
        if self.len == cap {
            self.evict_oldest();
        }
        let slot = (self.head + self.len) % cap;
        self.ring[slot] = h;
        if !self.times.is_empty() {
            self.times[slot] = ts_ns;
        }
        self.len += 1;
        let ring = &self.ring;
        match self
            .table
            .entry(h64(h), |&s| ring[s as usize] == h, |&s| h64(ring[s as usize]))
        {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = slot as u32,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(slot as u32);
            }
        }
        dup
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cfg: DedupConfig, frames: &[(&[u8], i64)]) -> Vec<bool> {
        let mut d = Dedup::new(&cfg);
        frames.iter().map(|(f, t)| d.check(f, *t)).collect()
    }

    #[test]
    fn packet_window_counts_duplicates_too() {
        let cfg = DedupConfig {
            window_packets: Some(3),
            ..Default::default()
        };
        // Window 3: compare with the two previous frames (kept or not).
        let f: Vec<(&[u8], i64)> = vec![(b"a", 0), (b"a", 0), (b"b", 0), (b"a", 0), (b"c", 0), (b"d", 0), (b"a", 0)];
        assert_eq!(run(cfg, &f), [false, true, false, true, false, false, false]);
    }

    #[test]
    fn time_window() {
        let cfg = DedupConfig {
            window_ns: Some(10),
            ..Default::default()
        };
        let f: Vec<(&[u8], i64)> = vec![(b"a", 0), (b"a", 10), (b"a", 25), (b"b", 26), (b"a", 40)];
        assert_eq!(run(cfg, &f), [false, true, false, false, false]);
    }

    #[test]
    fn unlimited_is_bounded_by_capacity() {
        let cfg = DedupConfig {
            capacity: 2,
            ..Default::default()
        };
        let f: Vec<(&[u8], i64)> = vec![(b"a", 0), (b"b", 0), (b"c", 0), (b"a", 0), (b"c", 0)];
        assert_eq!(run(cfg, &f), [false, false, false, false, true]);
    }

    #[test]
    fn length_matters() {
        let cfg = DedupConfig::default();
        let f: Vec<(&[u8], i64)> = vec![(b"ab", 0), (b"ab\0", 0), (b"ab", 0)];
        assert_eq!(run(cfg, &f), [false, false, true]);
    }
}
