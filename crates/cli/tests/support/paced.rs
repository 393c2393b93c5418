//! Feeding a capture to `probe --read -` at the pace of its own timestamps, and the arithmetic
//! the latency benchmarks share (frame times, RFC 3339 flow ends, percentiles).
#![allow(dead_code)] // each test file uses a different subset

use std::io::Write;
use std::time::{Duration, Instant};

/// Frame offsets and timestamps (ns) of a nanosecond pcap file: (end offset, ts) per frame.
pub fn pcap_index(bytes: &[u8]) -> Vec<(usize, i64)> {
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let u = |i: usize| u32::from_le_bytes(bytes[off + i..off + i + 4].try_into().unwrap());
        let ts = u(0) as i64 * 1_000_000_000 + u(4) as i64;
        off += 16 + u(8) as usize;
        out.push((off.min(bytes.len()), ts));
    }
    out
}

/// Writes the capture `bytes` to `out` as fast as its frame times say (the first frame at
/// once), calling `poll(seconds since the start)` every `every` meanwhile. Returns the start,
/// from which a frame at time `ts` was written at `(ts - first_ts)` ns.
pub fn feed(
    bytes: &[u8],
    out: &mut dyn Write,
    every: Duration,
    poll: &mut dyn FnMut(f64),
) -> (Instant, i64) {
    let index = pcap_index(bytes);
    let first_ts = index.first().map_or(0, |f| f.1);
    let start = Instant::now();
    let (mut sent, mut i) = (0usize, 0usize);
    let mut last_poll = Instant::now();
    while i < index.len() {
        let now = start.elapsed().as_nanos() as i64;
        let mut end = sent;
        while i < index.len() && index[i].1 - first_ts <= now {
            end = index[i].0;
            i += 1;
        }
        if end > sent {
            out.write_all(&bytes[sent..end]).unwrap();
            out.flush().unwrap();
            sent = end;
        }
        if last_poll.elapsed() >= every {
            last_poll = Instant::now();
            poll(start.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (start, first_ts)
}

/// Latencies in seconds from TSV rows `BATCH<TAB>END` (a flow's insert batch and its last
/// packet time, RFC 3339): from the moment that packet was fed (`first_ts` fed at 0 s) to the
/// first poll that saw the batch (`seen`). Rows whose batch no poll saw, or whose feeding time
/// `keep` rejects, are left out.
pub fn latencies(
    rows: &str,
    seen: &std::collections::HashMap<String, f64>,
    first_ts: i64,
    keep: impl Fn(f64) -> bool,
) -> Vec<f64> {
    let mut out = Vec::new();
    for l in rows.lines() {
        let Some((b, end)) = l.split_once('\t') else {
            continue;
        };
        let Some(seen_at) = seen.get(b) else { continue };
        let fed_at = (end_ns(end) - first_ts) as f64 / 1e9;
        if keep(fed_at) {
            out.push(seen_at - fed_at);
        }
    }
    out
}

/// The `p` quantile (0..=1) of `v` (sorted in place).
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Nanoseconds since the epoch of an RFC 3339 UTC time with up to 9 fraction digits.
pub fn end_ns(s: &str) -> i64 {
    let s = s.trim_matches('"').trim_end_matches('Z');
    let (date, time) = s.split_once('T').unwrap_or((s, "00:00:00"));
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap_or(0)).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap_or(0)).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, dd) = (d[0] - if d[1] <= 2 { 1 } else { 0 }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let frac_ns: i64 = format!("{frac:0<9}")[..9].parse().unwrap_or(0);
    (days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) * 1_000_000_000 + frac_ns
}

#[test]
fn end_ns_reads_rfc3339_with_any_fraction() {
    assert_eq!(end_ns("1970-01-01T00:00:01Z"), 1_000_000_000);
    assert_eq!(
        end_ns("\"2023-11-14T22:13:20.5Z\""),
        1_700_000_000_500_000_000
    );
}
