//! The counters behind the HTTP, TLS and DNS end-of-run summaries: per-key counts that hold a
//! bounded number of keys, and a fixed-size, mergeable latency histogram with its percentiles.
//! Each worker keeps its own and the summaries merge them at the end.

use hashbrown::HashMap;
use serde::Serialize;

/// A count map that holds at most `cap` keys; counts for new keys beyond that go to `other`.
#[derive(Clone, Debug, Default)]
pub struct BoundedCounts {
    /// foldhash (hashbrown's default, randomly seeded): keys are hosts and user agents seen
    /// on the wire, counted for every record.
    map: HashMap<String, u64>,
    cap: usize,
    /// Counts of keys that did not fit.
    pub other: u64,
}

impl BoundedCounts {
    /// An empty map holding up to `cap` keys.
    pub fn new(cap: usize) -> Self {
        BoundedCounts {
            map: HashMap::new(),
            cap,
            other: 0,
        }
    }

    /// Adds `n` to `key`.
    pub fn add(&mut self, key: &str, n: u64) {
        if let Some(c) = self.map.get_mut(key) {
            *c += n;
        } else if self.map.len() < self.cap {
            self.map.insert(key.to_string(), n);
        } else {
            self.other += n;
        }
    }

    /// Adds every count of `o`.
    pub fn merge(&mut self, o: &BoundedCounts) {
        for (k, &n) in &o.map {
            self.add(k, n);
        }
        self.other += o.other;
    }

    /// The `k` largest counts, ties broken by key.
    pub fn top(&self, k: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.map.iter().map(|(a, &b)| (a.clone(), b)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(k);
        v
    }

    /// Count for one key.
    pub fn get(&self, key: &str) -> u64 {
        self.map.get(key).copied().unwrap_or(0)
    }

    /// Number of distinct keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Log-linear latency histogram in microseconds: 16 sub-buckets per power of two, so a
/// percentile is within ~6 % of the exact value. Fixed size, mergeable.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
    /// Samples recorded.
    pub count: u64,
    /// Largest sample.
    pub max: u64,
}

const SUB: u32 = 16;

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: vec![0; (64 * SUB) as usize],
            count: 0,
            max: 0,
        }
    }
}

impl LatencyHistogram {
    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= 4
        let sub = (v >> (exp - 4)) & (SUB as u64 - 1);
        ((exp - 3) * SUB) as usize + sub as usize
    }

    fn lower_bound(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB as u64 {
            return i;
        }
        let exp = i / SUB as u64 + 3;
        let sub = i % SUB as u64;
        (SUB as u64 + sub) << (exp - 4)
    }

    /// Records one latency.
    pub fn record(&mut self, us: u64) {
        self.buckets[Self::index(us)] += 1;
        self.count += 1;
        self.max = self.max.max(us);
    }

    /// Adds every sample of `o`.
    pub fn merge(&mut self, o: &LatencyHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.max = self.max.max(o.max);
    }

    /// The `q` quantile (0..=1): the lower bound of the bucket holding it, `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::lower_bound(i).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Count, median, 90th and 99th percentiles and maximum (`None` when empty).
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count,
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            max: (self.count > 0).then_some(self.max),
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct LatencySummary {
    /// Samples measured (paired responses, handshakes, answered queries).
    pub count: u64,
    /// Median.
    pub p50: Option<u64>,
    /// 90th percentile.
    pub p90: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
    /// Largest.
    pub max: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Percentiles are within one bucket (6.25 %) below the exact value.
        #[test]
        fn quantiles_close(mut v in proptest::collection::vec(0u64..10_000_000, 1..500), q in 0.01f64..1.0) {
            let mut h = LatencyHistogram::default();
            for &x in &v { h.record(x); }
            v.sort();
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            let exact = v[rank - 1];
            let got = h.quantile(q).unwrap();
            prop_assert!(got <= exact, "got {got} exact {exact}");
            prop_assert!(got as f64 >= exact as f64 * (1.0 - 1.0 / 16.0) - 1.0, "got {got} exact {exact}");
        }

        /// Merging two histograms is recording both sample sets into one.
        #[test]
        fn merge_is_recording_both(a in proptest::collection::vec(0u64..10_000_000, 0..200), b in proptest::collection::vec(0u64..10_000_000, 0..200)) {
            let (mut ha, mut hb, mut both) = (LatencyHistogram::default(), LatencyHistogram::default(), LatencyHistogram::default());
            for &x in &a { ha.record(x); both.record(x); }
            for &x in &b { hb.record(x); both.record(x); }
            ha.merge(&hb);
            for q in [0.5, 0.9, 0.99] {
                prop_assert_eq!(ha.quantile(q), both.quantile(q));
            }
            prop_assert_eq!((ha.count, ha.max), (both.count, both.max));
        }
    }

    #[test]
    fn bounded_counts_keep_at_most_cap_keys() {
        let mut c = BoundedCounts::new(2);
        for k in ["a", "b", "c", "a"] {
            c.add(k, 1);
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a"), 2);
        assert_eq!(c.other, 1);
        assert_eq!(c.top(1), vec![("a".to_string(), 2)]);
    }

    #[test]
    fn bounded_counts_send_new_keys_past_the_cap_to_other() {
        let mut c = BoundedCounts::new(2);
        c.add("a", 1);
        c.add("b", 2);
        c.add("c", 5);
        c.add("a", 1);
        assert_eq!(c.top(5), vec![("a".to_string(), 2), ("b".to_string(), 2)]);
        assert_eq!(c.other, 5);
    }
}
