//! Flow table, config-driven views, sketches (HyperLogLog, Count-Min + top-K) and snapshots.
