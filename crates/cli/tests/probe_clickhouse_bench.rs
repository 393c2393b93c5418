//! Benchmark of the probe's direct ClickHouse sink (issue 18; benches/probe/clickhouse.sh,
//! BENCHMARKS.md): flow rows per second sustained into one private clickhouse-server, and the
//! latency from a flow's last packet to its row being visible at a steady rate of flows (100 k
//! flows/s by default). Ignored by default; run in release:
//! `cargo test --release -p netspectra --test probe_clickhouse_bench -- --ignored --nocapture`.

#[path = "support/clickhouse.rs"]
mod clickhouse;
mod common;
#[path = "support/paced.rs"]
mod paced;

use clickhouse::ClickHouse;
use common::BIN;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// "YYYY-MM-DDTHH:MM:SS" of `ns` since the epoch (UTC): a prefix that sorts at or before every
/// RFC 3339 time the probe writes within that second.
fn rfc3339_second(ns: i64) -> String {
    netspectra_flow::record::Stamp::new(ns).as_str()[..19].to_string()
}

#[test]
fn rfc3339_second_is_the_inverse_of_end_ns() {
    for s in [
        "2023-11-14T22:13:20",
        "2000-02-29T00:00:59",
        "1999-12-31T23:59:00",
    ] {
        assert_eq!(rfc3339_second(paced::end_ns(&format!("{s}.25Z"))), s);
    }
}

/// A capture of short UDP flows (DNS exchanges: a query, its answer, sometimes a retry) at
/// about `flows_per_sec` for `secs` seconds of capture time.
/// Frames per generated DNS flow, measured on the generator's output (2,000,392 frames made
/// 685,724 flows with seed 18).
const PACKETS_PER_FLOW: f64 = 2.92;

fn dns_capture(path: &Path, flows_per_sec: f64, secs: f64) -> netspectra_gen::Truth {
    let mix = netspectra_gen::Mix {
        http: 0.0,
        tls: 0.0,
        bulk: 0.0,
        dns: 1.0,
        icmp_echo: 0.0,
        icmp_error: 0.0,
        dns_tcp: 0.0,
        quic: 0.0,
    };
    common::generated_capture(
        path,
        &netspectra_gen::GenConfig {
            packets: Some((PACKETS_PER_FLOW * flows_per_sec * secs) as u64),
            seed: 18,
            packets_per_sec: PACKETS_PER_FLOW * flows_per_sec,
            mix,
            ..Default::default()
        },
    )
}

fn config(dir: &Path, name: &str, ch: &ClickHouse, db: &str) -> std::path::PathBuf {
    let every = every();
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &p,
        format!(
            "probe:\n  name: {name}\nanalyses:\n  flows:\n    interval: 1s\n    \
             expire_every: {every}\n    timeouts: {{tcp: 5s, tcp_closed: 1s, udp: 1s, icmp: 1s, other: 1s}}\n\
             sinks:\n  - type: clickhouse\n    url: clickhouse://127.0.0.1:{}/{db}\n    \
             streams: [flows]\n",
            ch.http
        ),
    )
    .unwrap();
    p
}

/// The flows' `expire_every` (BENCH_EXPIRE_EVERY, default 100ms): how often ended flows are
/// sent on, so the size and number of inserts.
fn every() -> String {
    std::env::var("BENCH_EXPIRE_EVERY").unwrap_or_else(|_| "100ms".into())
}

#[test]
#[ignore = "benchmark: benches/probe/clickhouse.sh"]
fn bench_clickhouse_sink() {
    let rate = env_f64("BENCH_FLOWS_PER_SEC", 100_000.0);
    let secs = env_f64("BENCH_SECS", 10.0);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let Some(ch) = ClickHouse::start(&d.join("ch")) else {
        return;
    };
    let cap = d.join("dns.pcap");
    let truth = dns_capture(&cap, rate, secs);
    let span = (truth.last_ts_ns - truth.first_ts_ns) as f64 / 1e9;
    let flows = truth.flows.total;
    println!(
        "capture: {} packets, {flows} flows over {span:.1} s of capture time ({:.0} flows/s)",
        truth.packets,
        flows as f64 / span
    );

    // Rows per second sustained: the whole capture as fast as the probe reads it.
    let cfg = config(d, "burst", &ch, "burst");
    let t = Instant::now();
    let st = Command::new(BIN)
        .args(["probe", "-q", "--config"])
        .arg(&cfg)
        .arg("--read")
        .arg(&cap)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let probe_done = t.elapsed().as_secs_f64();
    while ch.count("SELECT count() FROM burst.flows") < flows && t.elapsed().as_secs() < 300 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let all = t.elapsed().as_secs_f64();
    assert_eq!(ch.count("SELECT count() FROM burst.flows"), flows);
    println!(
        "burst: {flows} flow rows visible {all:.2} s after the probe started (probe done at \
         {probe_done:.2} s): {:.0} rows/s",
        flows as f64 / all
    );

    // Latency at a steady rate: the capture fed at its own pace; every 100 ms a poll notes
    // which inserts (`_batch`) are visible (so a latency is over-stated by up to 100 ms); a flow's latency is from its last packet's feeding
    // to the first poll that saw its batch.
    let cfg = config(d, "steady", &ch, "lat");
    let mut child = Command::new(BIN)
        .args(["probe", "-q", "--read", "-", "--config"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let bytes = std::fs::read(&cap).unwrap();
    let first = truth.first_ts_ns;
    let mut seen: HashMap<String, f64> = HashMap::new();
    let mut polls = 0u64;
    let mut poll = |at: f64, window: bool| {
        // Only batches of flows that ended in the last 3 s of feeding are looked for, so a poll
        // stays cheap (it shares the two cores with the probe and the server); an older batch not seen yet is found by the last unwindowed poll (later,
        // so its latency is over-stated, never under-stated).
        let since = first + ((at - 3.0).max(0.0) * 1e9) as i64;
        let filter = if window {
            format!(" WHERE end >= '{}'", rfc3339_second(since))
        } else {
            String::new()
        };
        let q = format!("SELECT DISTINCT _batch FROM lat.flows{filter}");
        for b in ch.query(&q).unwrap_or_default().lines() {
            seen.entry(b.to_string()).or_insert(at);
        }
        polls += 1;
    };
    let (start, first_ts) =
        paced::feed(&bytes, &mut stdin, Duration::from_millis(100), &mut |at| {
            poll(at, true)
        });
    let fed = start.elapsed().as_secs_f64();
    drop(stdin);
    let count = || ch.count("SELECT count() FROM lat.flows");
    let t = Instant::now();
    while count() < flows && t.elapsed() < Duration::from_secs(60) {
        poll(start.elapsed().as_secs_f64(), true);
        std::thread::sleep(Duration::from_millis(100));
    }
    poll(start.elapsed().as_secs_f64(), false);
    assert!(child.wait().unwrap().success());
    assert_eq!(count(), flows, "every flow row arrived once");
    let rows = ch
        .query("SELECT _batch, end FROM lat.flows FORMAT TSV")
        .unwrap();
    // Flows cut by the end of input (not by their timeout) are left out.
    let mut lat = paced::latencies(&rows, &seen, first_ts, |fed_at| fed_at < fed - 2.0);
    assert!(!lat.is_empty());
    let n = lat.len();
    println!(
        "steady: fed {span:.1} s in {fed:.1} s ({:.0} flows/s); latency over {n} flows, udp \
         timeout 1 s, expire_every {}: p50 {:.2} s, p99 {:.2} s, max {:.2} s ({polls} polls)",
        flows as f64 / fed,
        every(),
        paced::percentile(&mut lat, 0.5),
        paced::percentile(&mut lat, 0.99),
        paced::percentile(&mut lat, 1.0)
    );
}
