//! `netspectra probe` on a live interface (root; a veth pair between two namespaces the test
//! makes, ClickHouse inside the capturing namespace): generated traffic replayed into a probe
//! with flows + HTTP + ClickHouse + files gives the generator's truth in every sink, SIGTERM
//! drains it (live flows end as `shutdown`, exit 0), and a long run keeps its memory flat.

#[path = "support/clickhouse.rs"]
mod clickhouse;
mod common;

use clickhouse::ClickHouse;
use common::Netns;
use netspectra_testnet::{ip, require_root};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn sigterm(c: &Child) {
    let st = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Room for QinQ tags on top of a 1514-byte frame (the generator writes them).
fn big_mtu(n: &Netns) {
    for (ns, dev) in [(&n.a, &n.a_if), (&n.b, &n.b_if)] {
        ip(&["-n", ns, "link", "set", dev, "mtu", "9000"]);
    }
}

fn jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_live_probe_gives_the_truth_to_every_sink_and_drains_on_sigterm() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gen.pcap");
    let truth = common::generated_capture(
        &file,
        &netspectra_gen::GenConfig {
            seed: 17,
            packets: Some(20_000),
            ..Default::default()
        },
    );
    let n = Netns::new();
    big_mtu(&n);
    let Some(ch) = ClickHouse::start_in(&dir.path().join("ch"), Some(&n.b)) else {
        return;
    };
    let out = dir.path().join("out");
    let url = format!("clickhouse://127.0.0.1:{}/live", ch.http);
    let mut child = n.spawn_b(&[
        "probe",
        "-i",
        &n.b_if,
        "--json",
        "--out",
        out.to_str().unwrap(),
        "--export",
        &url,
    ]);
    assert_eq!(n.replay(&file, &["--topspeed"]), truth.packets);
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&child);
    let s = common::finish(&mut child);
    assert_eq!(s["packets"], truth.packets, "{s}");
    assert_eq!(s["kernel_drops"], 0, "{s}");
    // Files: every packet in a flow record, flows still live at the stop end as `shutdown`.
    let flows = jsonl(&out.join("flows.jsonl"));
    let packets: u64 = flows
        .iter()
        .map(|r| r["fwd_packets"].as_u64().unwrap() + r["rev_packets"].as_u64().unwrap())
        .sum();
    assert_eq!(packets, truth.packets);
    assert!(flows.iter().any(|r| r["end_reason"] == "shutdown"));
    assert!(flows.iter().all(|r| r["end_reason"] != "end_of_input"));
    let http = jsonl(&out.join("http.jsonl"));
    let requests = http.iter().filter(|r| r["type"] == "request").count() as u64;
    let responses = http.iter().filter(|r| r["type"] == "response").count() as u64;
    assert_eq!(
        (requests, responses),
        (truth.http.requests, truth.http.responses)
    );
    // ClickHouse: the same totals, every record once.
    assert_eq!(
        ch.count("SELECT sum(fwd_packets + rev_packets) FROM live.flows"),
        truth.packets
    );
    assert_eq!(
        ch.count("SELECT count() FROM live.flows"),
        flows.len() as u64
    );
    assert_eq!(
        ch.count("SELECT count() FROM live.http"),
        truth.http.requests + truth.http.responses
    );
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Ten minutes (NETSPECTRA_SOAK_SECS to change it) of looped traffic: the probe's peak memory
/// after the first minute grows by less than 5 %.
#[test]
fn a_long_run_keeps_its_memory_flat() {
    require_root!();
    let secs: u64 = std::env::var("NETSPECTRA_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gen.pcap");
    common::generated_capture(
        &file,
        &netspectra_gen::GenConfig {
            seed: 23,
            packets: Some(50_000),
            ..Default::default()
        },
    );
    let n = Netns::new();
    big_mtu(&n);
    let out = dir.path().join("out");
    let cfg = dir.path().join("p.yaml");
    std::fs::write(
        &cfg,
        format!(
            "analyses:\n  flows:\n    interval: 10s\n  http: {{}}\nsinks:\n  - type: files\n    dir: {}\n    \
             rotate:\n      every: 60s\n      keep: 3\n",
            out.display()
        ),
    )
    .unwrap();
    let mut child = n.spawn_b(&[
        "probe",
        "-i",
        &n.b_if,
        "--json",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    // The capturing process inside the namespace (`ip netns exec` execs it: same pid).
    let pid = child.id();
    let mut replay = Command::new("ip")
        .args([
            "netns",
            "exec",
            &n.a,
            common::BIN,
            "replay",
            "-i",
            &n.a_if,
            "--pps",
            "20000",
            "--loop",
            "100000",
        ])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let warm = Duration::from_secs(secs.min(60));
    let mut at_warm = 0;
    let mut peak = 0;
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(2));
        let r = rss_kib(pid);
        assert!(r > 0, "probe gone");
        if t0.elapsed() < warm {
            at_warm = at_warm.max(r);
        } else {
            peak = peak.max(r);
        }
    }
    let _ = replay.kill();
    let _ = replay.wait();
    sigterm(&child);
    let s = common::finish(&mut child);
    assert!(s["packets"].as_u64().unwrap() > 0);
    eprintln!(
        "soak: {secs} s, RSS after the first minute {at_warm} KiB, peak afterwards {peak} KiB"
    );
    assert!(
        (peak as f64) < at_warm as f64 * 1.05,
        "peak RSS grew from {at_warm} KiB to {peak} KiB"
    );
}
