//! Exact-duplicate frame removal with bounded memory.
//!
//! Each frame is reduced to a 128-bit xxh3 hash of its captured bytes (with the captured length
//! mixed in). The last `capacity` frames are remembered in a ring of hashes (duplicates included,
//! like `editcap -D`, so the window counts frames read, not frames kept), and an open-addressing
//! table (linear probing, at most half full, backward-shift deletion) maps each remembered hash
//! to the ring slot of its latest occurrence. A table entry is 8 bytes (32-bit tag + slot), so a
//! lookup touches one cache line, which callers can prefetch ahead ([`Dedup::prefetch`]).
//! Memory: 16 bytes per ring slot plus 16 bytes per remembered frame in the table, plus 8 bytes
//! per ring slot for timestamps when a time window is set.

use xxhash_rust::xxh3::xxh3_128;

/// Largest window accepted (the same bound as `editcap -D`).
pub const MAX_WINDOW: usize = 1_000_000;

/// Largest `capacity` accepted: 50 million frames, about 1.6 GB of ring and table. Larger values
/// are refused by the command line rather than failing to allocate.
pub const MAX_CAPACITY: usize = 50_000_000;

/// Default number of remembered frames when no window is given (as many as editcap's largest
/// window): 16 MB of ring plus a 2^21-slot (16 MB) table.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

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
    /// Entries `tag << 32 | slot + 1`; 0 is empty.
    table: Vec<u64>,
    mask: usize,
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

/// Hash of one frame: captured bytes, with the captured length mixed in as editcap compares it.
#[inline]
pub fn frame_hash(data: &[u8]) -> u128 {
    xxh3_128(data) ^ ((data.len() as u128) << 96)
}

/// Writes one element per 4 KiB page (its own value, volatile so that it is not elided).
pub(crate) fn prefault<T: Copy>(v: &mut [T]) {
    let step = (4096 / std::mem::size_of::<T>().max(1)).max(1);
    for i in (0..v.len()).step_by(step) {
        let p: *mut T = &mut v[i];
        // SAFETY: `p` points to an initialized element of `v`, which we borrow mutably.
        unsafe { std::ptr::write_volatile(p, std::ptr::read_volatile(p)) };
    }
}

#[inline]
fn tag(h: u128) -> u64 {
    ((h >> 64) as u64) & 0xffff_ffff_0000_0000
}

impl Dedup {
    /// Builds a detector. A packet window of `n` compares with `n - 1` earlier frames (`n` of 0
    /// or 1 means no comparison at all, as in editcap).
    pub fn new(cfg: &DedupConfig) -> Self {
        let cap = match cfg.window_packets {
            Some(n) => n.clamp(1, MAX_WINDOW) - 1,
            None => cfg.capacity.min(MAX_CAPACITY),
        };
        let slots = (2 * (cap + 1)).next_power_of_two().max(2);
        let mut d = Dedup {
            ring: vec![0; cap + 1],
            times: if cfg.window_ns.is_some() {
                vec![0; cap + 1]
            } else {
                Vec::new()
            },
            head: 0,
            len: 0,
            table: vec![0; slots],
            mask: slots - 1,
            window_ns: cfg.window_ns,
        };
        // Zeroed allocations come from the kernel as untouched pages that become resident only
        // when first written, so the footprint would grow with the number of frames seen until
        // the bound. Touching every page now makes memory flat: the same whatever the input
        // size (and page faults are taken once, here, not on the hot path).
        prefault(&mut d.ring);
        prefault(&mut d.times);
        prefault(&mut d.table);
        d
    }

    /// Approximate heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.ring.len() * 16 + self.times.len() * 8 + self.table.len() * 8
    }

    /// Home index of hash `h`: taken from the tag bits, so that an entry's home is known from
    /// the entry alone (deletion then never reads the ring, a cache miss per moved entry).
    #[inline]
    fn home(&self, h: u128) -> usize {
        (tag(h) >> 32) as usize & self.mask
    }

    /// Home index of a table entry (see [`Dedup::home`]).
    #[inline]
    fn entry_home(&self, e: u64) -> usize {
        (e >> 32) as usize & self.mask
    }

    /// Hints the CPU to load the table line that frame hash `h` will probe.
    #[inline]
    pub fn prefetch(&self, h: u128) {
        #[cfg(target_arch = "x86_64")]
        {
            let p = self.table.as_ptr().wrapping_add(self.home(h));
            // SAFETY: a prefetch never faults and reads nothing architecturally.
            #[allow(unused_unsafe)]
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    p as *const i8,
                )
            };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    /// The hash that the next [`Dedup::check_hashed`] will forget, if any (to prefetch).
    #[inline]
    pub fn next_evicted(&self) -> Option<u128> {
        (self.len + 1 >= self.ring.len() && self.len > 0).then(|| self.ring[self.head])
    }

    /// Prefetches the table line of the frame that will be forgotten `n` frames from now (when
    /// the ring is full, that is the frame `n` places after the oldest).
    #[inline]
    pub fn prefetch_evicted_ahead(&self, n: usize) {
        if self.len + 1 >= self.ring.len() {
            self.prefetch(self.ring[(self.head + n) % self.ring.len()]);
        }
    }

    /// Table index of the entry for ring slot `slot` holding `h`, if present.
    fn find_slot(&self, h: u128, slot: usize) -> Option<usize> {
        let want = tag(h) | (slot as u64 + 1);
        let mut i = self.home(h);
        loop {
            let e = self.table[i];
            if e == 0 {
                return None;
            }
            if e == want {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes table entry `i`, shifting later entries of the probe run back.
    fn remove_at(&mut self, mut i: usize) {
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let e = self.table[j];
            if e == 0 {
                break;
            }
            let k = self.entry_home(e);
            // Move e back to i when its home is not cyclically within (i, j].
            let between = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !between {
                self.table[i] = e;
                i = j;
            }
        }
        self.table[i] = 0;
    }

    /// Forgets the oldest remembered frame.
    fn evict_oldest(&mut self) {
        let slot = self.head;
        if let Some(i) = self.find_slot(self.ring[slot], slot) {
            self.remove_at(i);
        }
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
    }

    /// Returns true when `data` (captured at `ts_ns`) duplicates a remembered frame, and
    /// remembers it either way.
    pub fn check(&mut self, data: &[u8], ts_ns: i64) -> bool {
        self.check_hashed(frame_hash(data), ts_ns)
    }

    /// [`Dedup::check`] for a frame hash computed by [`frame_hash`].
    pub fn check_hashed(&mut self, h: u128, ts_ns: i64) -> bool {
        let cap = self.ring.len() - 1;
        if cap == 0 {
            return false;
        }
        if let Some(w) = self.window_ns {
            while self.len > 0 && ts_ns.saturating_sub(self.times[self.head]) > w {
                self.evict_oldest();
            }
        }
        // The ring has one spare slot, so the new frame is stored before the oldest of the
        // `cap` frames it is compared with is forgotten.
        let slot = (self.head + self.len) % self.ring.len();
        self.ring[slot] = h;
        if !self.times.is_empty() {
            self.times[slot] = ts_ns;
        }
        self.len += 1;
        let t = tag(h);
        let new = t | (slot as u64 + 1);
        let mut i = self.home(h);
        let dup = loop {
            let e = self.table[i];
            if e == 0 {
                self.table[i] = new;
                break false;
            }
            if e & 0xffff_ffff_0000_0000 == t {
                let s = (e & 0xffff_ffff) as usize - 1;
                if s != slot && self.ring[s] == h {
                    // Point at the latest occurrence.
                    self.table[i] = new;
                    break true;
                }
            }
            i = (i + 1) & self.mask;
        };
        if self.len > cap {
            self.evict_oldest();
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
        let f: Vec<(&[u8], i64)> = vec![
            (b"a", 0),
            (b"a", 0),
            (b"b", 0),
            (b"a", 0),
            (b"c", 0),
            (b"d", 0),
            (b"a", 0),
        ];
        assert_eq!(
            run(cfg, &f),
            [false, true, false, true, false, false, false]
        );
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

    proptest::proptest! {
        /// Same answers as a naive scan of the previous `n - 1` frames, through many evictions
        /// and table wrap-arounds (tiny alphabet: many duplicates and probe collisions).
        #[test]
        fn matches_naive_window(frames in proptest::collection::vec(0u8..12, 0..400), n in 1usize..20) {
            let mut d = Dedup::new(&DedupConfig { window_packets: Some(n), ..Default::default() });
            let mut hist: std::collections::VecDeque<u8> = Default::default();
            for f in frames {
                let want = hist.contains(&f);
                proptest::prop_assert_eq!(d.check(&[f], 0), want);
                hist.push_back(f);
                if hist.len() > n - 1 {
                    hist.pop_front();
                }
            }
        }
    }

    #[test]
    fn length_matters() {
        let cfg = DedupConfig::default();
        let f: Vec<(&[u8], i64)> = vec![(b"ab", 0), (b"ab\0", 0), (b"ab", 0)];
        assert_eq!(run(cfg, &f), [false, false, true]);
    }
}
