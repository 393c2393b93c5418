//! Heavy hitters over key spaces too large to count exactly: a Count-Min sketch with
//! conservative update plus a bounded candidate set holding the `k` keys with the largest
//! estimates.
//!
//! Bounds (Cormode & Muthukrishnan): with width `w = ceil(e / eps)` and depth
//! `d = ceil(ln(1 / delta))`, every estimate is at least the true count and, with probability at
//! least `1 - delta`, at most `true + eps * N` where `N` is the total weight added. A key whose
//! true count exceeds the `k`-th largest estimate by more than `eps * N` is in the candidate set.

use hashbrown::HashMap;
use std::hash::Hash;

/// Rows of a sketch at most: `ln(1 / delta)` for the smallest `delta` accepted (1e-9) is 21.
const MAX_DEPTH: usize = 24;

/// A Count-Min sketch over 64-bit key hashes.
#[derive(Clone, Debug)]
pub struct CountMin {
    width: usize,
    depth: usize,
    cells: Vec<u64>,
    total: u64,
    eps: f64,
}

impl CountMin {
    /// A sketch whose over-estimate is at most `eps * N` with probability `1 - delta`; both
    /// are held to the bounds a configuration may give ([`crate::config::MIN_EPS`] and the
    /// others), so that the sketch is at most 271 829 × 21 cells (45.7 MB).
    pub fn with_error(eps: f64, delta: f64) -> Self {
        use crate::config::{MAX_DELTA, MAX_EPS, MIN_DELTA, MIN_EPS};
        // NaN goes to the smallest sketch.
        let eps = if eps.is_nan() {
            MAX_EPS
        } else {
            eps.clamp(MIN_EPS, MAX_EPS)
        };
        let delta = if delta.is_nan() {
            MAX_DELTA
        } else {
            delta.clamp(MIN_DELTA, MAX_DELTA)
        };
        let width = (std::f64::consts::E / eps).ceil() as usize;
        let depth = ((1.0 / delta).ln().ceil().max(1.0) as usize).min(MAX_DEPTH);
        CountMin {
            width,
            depth,
            cells: vec![0; width * depth],
            total: 0,
            eps,
        }
    }

    #[inline]
    fn cell(&self, row: usize, h: u64) -> usize {
        // Row hashes derived from one 64-bit hash (Kirsch-Mitzenmacher double hashing), mapped
        // onto the row by multiply-shift instead of a division (a summary update takes 30 of
        // them, and the final snapshot of a short-flow capture makes millions).
        let h1 = h as u32;
        let h2 = ((h >> 32) as u32) | 1;
        let x = h1.wrapping_add((row as u32).wrapping_mul(h2));
        row * self.width + ((u64::from(x) * self.width as u64) >> 32) as usize
    }

    /// Adds `w` to the key with hash `h` (conservative update) and returns its new estimate.
    #[inline]
    pub fn add(&mut self, h: u64, w: u64) -> u64 {
        self.total += w;
        // Each row's cell is found once, for the estimate and for the update.
        let mut at = [0usize; MAX_DEPTH];
        let depth = self.depth;
        let mut est = u64::MAX;
        for (r, slot) in at.iter_mut().enumerate().take(depth) {
            *slot = self.cell(r, h);
            est = est.min(self.cells[*slot]);
        }
        let est = est.saturating_add(w);
        for &i in &at[..depth] {
            if self.cells[i] < est {
                self.cells[i] = est;
            }
        }
        est
    }

    /// Current estimate for the key with hash `h` (never below its true count).
    #[inline]
    pub fn estimate(&self, h: u64) -> u64 {
        (0..self.depth)
            .map(|r| self.cells[self.cell(r, h)])
            .min()
            .unwrap_or(0)
    }

    /// Total weight added.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The additive error bound `eps * N` that holds with probability `1 - delta`.
    pub fn error_bound(&self) -> u64 {
        (self.eps * self.total as f64).ceil() as u64
    }

    /// Sketch dimensions `(width, depth)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.width, self.depth)
    }
}

/// The `k` heaviest keys by Count-Min estimate. Ties are broken by key, not by the order of the
/// candidate map (which is seeded per instance): the same input in the same order gives the
/// same list on every run.
#[derive(Clone, Debug)]
pub struct TopK<K: Eq + Hash + Ord + Clone> {
    k: usize,
    cms: CountMin,
    cand: HashMap<K, u64>,
    min: u64,
}

impl<K: Eq + Hash + Ord + Clone> TopK<K> {
    /// Keeps `k` candidates (held to 1..=[`crate::config::MAX_TOP`], the bound a
    /// configuration may give) over a Count-Min sketch with the given error parameters.
    pub fn new(k: usize, eps: f64, delta: f64) -> Self {
        let k = k.clamp(1, crate::config::MAX_TOP);
        TopK {
            k,
            cms: CountMin::with_error(eps, delta),
            cand: HashMap::with_capacity(k + 1),
            min: 0,
        }
    }

    /// Adds weight `w` to `key` whose well-mixed 64-bit hash is `h`.
    pub fn add(&mut self, key: &K, h: u64, w: u64) {
        let est = self.cms.add(h, w);
        if let Some(v) = self.cand.get_mut(key) {
            *v = est;
            return;
        }
        if self.cand.len() < self.k {
            self.cand.insert(key.clone(), est);
            if self.cand.len() == self.k {
                self.recompute_min();
            }
            return;
        }
        if est > self.min {
            // Evict the smallest candidate (O(k), only when a key overtakes it).
            // Among equal estimates the largest key goes, whatever the map's order.
            if let Some(victim) = self
                .cand
                .iter()
                .min_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(k, _)| k.clone())
            {
                self.cand.remove(&victim);
            }
            self.cand.insert(key.clone(), est);
            self.recompute_min();
        }
    }

    fn recompute_min(&mut self) {
        self.min = self.cand.values().copied().min().unwrap_or(0);
    }

    /// Candidates sorted by estimate, largest first.
    pub fn top(&self) -> Vec<(K, u64)> {
        let mut v: Vec<(K, u64)> = self.cand.iter().map(|(k, &c)| (k.clone(), c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// The over-estimate bound `eps * N` for every reported count.
    pub fn error_bound(&self) -> u64 {
        self.cms.error_bound()
    }

    /// Total weight added.
    pub fn total(&self) -> u64 {
        self.cms.total()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.cand.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashMap as StdMap;
    use xxhash_rust::xxh3::xxh3_64;

    #[test]
    fn unchecked_sizes_are_held_to_the_configuration_bounds() {
        // k = usize::MAX and eps near 0 tried to allocate terabytes.
        let t = TopK::<u64>::new(usize::MAX, 0.0, 0.0);
        assert_eq!(t.k, crate::config::MAX_TOP);
        assert_eq!(t.cms.dims(), (271_829, 21));
        let t = TopK::<u64>::new(0, f64::NAN, f64::NAN);
        assert_eq!((t.k, t.cms.dims()), (1, (3, 1)));
    }

    /// Zipf(s) sampler over 1..=n by inverse CDF.
    fn zipf_stream(n: usize, s: f64, len: usize, seed: u64) -> Vec<u64> {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for i in 1..=n {
            acc += 1.0 / (i as f64).powf(s);
            cdf.push(acc);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..len)
            .map(|_| {
                let u = rng.random::<f64>() * acc;
                cdf.partition_point(|&c| c < u) as u64
            })
            .collect()
    }

    #[test]
    fn estimates_never_under_and_within_bound() {
        let stream = zipf_stream(100_000, 1.1, 500_000, 1);
        let mut exact: StdMap<u64, u64> = StdMap::new();
        let mut cms = CountMin::with_error(0.001, 0.01);
        for &k in &stream {
            *exact.entry(k).or_default() += 1;
            cms.add(xxh3_64(&k.to_le_bytes()), 1);
        }
        let bound = cms.error_bound();
        let mut over = 0;
        for (&k, &c) in &exact {
            let e = cms.estimate(xxh3_64(&k.to_le_bytes()));
            assert!(e >= c);
            if e > c + bound {
                over += 1;
            }
        }
        // At most a delta share of keys may exceed the bound.
        assert!(
            (over as f64) < 0.01 * exact.len() as f64,
            "{over} keys over bound"
        );
    }

    #[test]
    fn recall_of_true_top_k_on_zipf() {
        for (seed, s) in [(7u64, 1.0), (8, 1.2), (9, 0.9)] {
            let stream = zipf_stream(200_000, s, 1_000_000, seed);
            let mut exact: StdMap<u64, u64> = StdMap::new();
            let mut tk = TopK::new(50, 0.0005, 0.01);
            for &k in &stream {
                *exact.entry(k).or_default() += 1;
                tk.add(&k, xxh3_64(&k.to_le_bytes()), 1);
            }
            let mut truth: Vec<(u64, u64)> = exact.into_iter().collect();
            truth.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let want: Vec<u64> = truth.iter().take(20).map(|x| x.0).collect();
            let got: Vec<u64> = tk.top().iter().map(|x| x.0).collect();
            let hit = want.iter().filter(|k| got.contains(k)).count();
            assert_eq!(hit, 20, "s={s}: true top-20 recall {hit}/20");
            let want50: Vec<u64> = truth.iter().take(50).map(|x| x.0).collect();
            let hit50 = want50.iter().filter(|k| got.contains(k)).count();
            assert!(hit50 >= 45, "s={s}: top-50 recall {hit50}/50");
        }
    }

    /// Many keys of equal weight compete for few places: which ones stay and the order they
    /// are listed in follow the keys, not the seeded order of each instance's map.
    #[test]
    fn ties_resolve_the_same_in_every_instance() {
        let run = || {
            let mut tk = TopK::new(5, 0.0001, 0.01);
            for round in 0..3u64 {
                for k in 0..40u64 {
                    // Keys 0..20 get one unit per round, keys 20..40 two in the last round.
                    let w = if k < 20 { 1 } else { u64::from(round == 2) * 2 };
                    if w > 0 {
                        tk.add(&k, xxh3_64(&k.to_le_bytes()), w);
                    }
                }
            }
            tk.top()
        };
        let first = run();
        for _ in 0..20 {
            assert_eq!(run(), first);
        }
        let counts: Vec<u64> = first.iter().map(|x| x.1).collect();
        assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{first:?}");
        assert!(
            first.windows(2).all(|w| w[0].1 > w[1].1 || w[0].0 < w[1].0),
            "{first:?}"
        );
    }
}
