//! View snapshots: the sum over all snapshot files equals the whole-file totals for several
//! views with different cadences, with 1 and 2 worker threads; config errors and corrupt input
//! behave as documented.

#[path = "flows_common.rs"]
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

const CONFIG: &str = "\
interval: 1s
views:
  - name: by_src
    keys: [src_ip]
    interval: 100ms
  - name: by_dport
    keys: [dst_port, proto]
    interval: 250ms
  - name: nets
    keys: [src_ip/24, dst_ip/64]
    metrics: [packets, bytes, flows, distinct(dst_port)]
  - name: totals
    keys: []
    interval: 3s
  - name: heavy
    keys: [src_ip, dst_ip]
    mode: topk
    top: 5
    rank: bytes
";

/// Sums a metric over every snapshot file of a view.
fn sums(out: &Path, view: &str) -> (BTreeMap<String, u64>, usize) {
    let mut s = BTreeMap::new();
    let mut files = 0;
    for d in std::fs::read_dir(out).unwrap() {
        let d = d.unwrap().path();
        let f = d.join(format!("{view}.jsonl"));
        if !d.is_dir() || !f.exists() {
            continue;
        }
        files += 1;
        for r in jsonl(&f) {
            for m in ["packets", "bytes", "flows"] {
                if let Some(v) = r.get(m).and_then(|v| v.as_u64()) {
                    *s.entry(m.to_string()).or_default() += v;
                }
            }
        }
    }
    (s, files)
}

#[test]
fn snapshot_sums_equal_totals_for_every_cadence_and_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, truth) = gen(dir.path(), "v", 30_000, 21);
    let cfg = dir.path().join("flows.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let mut per_threads = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("out{threads}"));
        let o = run(&[
            "flows",
            &cap,
            "-c",
            cfg.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--threads",
            threads,
            "--json",
            "-q",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let records = jsonl(&out.join("flows.jsonl"));
        assert_eq!(summary["packets"], truth["packets"]);
        let mut counts = Vec::new();
        for (view, cadence_ms) in [
            ("by_src", 100),
            ("by_dport", 250),
            ("nets", 1000),
            ("totals", 3000),
        ] {
            let (s, files) = sums(&out, view);
            assert_eq!(s["packets"], summary["packets"].as_u64().unwrap(), "{view}");
            assert_eq!(s["bytes"], summary["bytes"].as_u64().unwrap(), "{view}");
            assert_eq!(s["flows"], records.len() as u64, "{view}");
            // The number of windows follows the cadence over the capture's span.
            let span_ms = (truth["last_ts_ns"].as_i64().unwrap() / 1_000_000) / cadence_ms
                - (truth["first_ts_ns"].as_i64().unwrap() / 1_000_000) / cadence_ms
                + 1;
            assert!(
                files as i64 <= span_ms && files >= 1,
                "{view}: {files} windows for {span_ms}"
            );
            counts.push((view, files, s));
        }
        // Windows are named by their start, aligned to the cadence.
        for d in std::fs::read_dir(&out).unwrap() {
            let p = d.unwrap().path();
            if p.is_dir() {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                assert!(name.ends_with('Z') && name.contains('T'), "{name}");
            }
        }
        per_threads.push(counts);
    }
    assert_eq!(per_threads[0], per_threads[1]);
}

#[test]
fn adhoc_view_and_csv_output() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = gen(dir.path(), "c", 5_000, 3);
    let out = dir.path().join("o");
    let o = run(&[
        "flows",
        &cap,
        "-o",
        out.to_str().unwrap(),
        "--no-default-views",
        "--view",
        "src_ip/24,dst_port",
        "--format",
        "csv",
        "--interval",
        "10m",
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sub: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(sub.len(), 1);
    let csv = std::fs::read_to_string(sub[0].join("src_ip_24+dst_port.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "interval_start,interval_end,src_ip_24,dst_port,packets,bytes,flows"
    );
    assert!(csv
        .lines()
        .skip(1)
        .all(|l| l.split(',').nth(2).unwrap().ends_with(".0") || l.contains(':')));
    let flows = std::fs::read_to_string(out.join("flows.csv")).unwrap();
    assert!(flows
        .starts_with("start,end,duration,src_ip,src_port,dst_ip,dst_port,proto,vlan,community_id"));
}

#[test]
fn bad_config_names_key_and_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = gen(dir.path(), "b", 100, 1);
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "interval: 5s\nviews:\n  - name: x\n    keys: [src_ip]\n    intervall: 3s\n",
    )
    .unwrap();
    let o = run(&["flows", &cap, "-c", cfg.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("intervall") && e.contains("line 5"), "{e}");
    std::fs::write(&cfg, "views:\n  - name: x\n    keys: [src_mac]\n").unwrap();
    let o = run(&["flows", &cap, "-c", cfg.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("src_mac"));
    let o = run(&["flows", &cap, "--view", "src_ip/200", "-q"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn corrupt_file_writes_what_was_aggregated_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = gen(dir.path(), "k", 4_000, 9);
    let mut bytes = std::fs::read(&cap).unwrap();
    // Walk the pcap records to the 2000th and give it an impossible captured length.
    let mut off = 24usize;
    for _ in 0..2000 {
        let caplen = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + caplen;
    }
    bytes[off + 8..off + 12].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let bad = dir.path().join("bad.pcap");
    std::fs::write(&bad, &bytes).unwrap();
    let out = dir.path().join("o");
    let o = run(&[
        "flows",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("bad.pcap"), "{e}");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["input_packets"], 2000);
    // Not under the name of a complete result: kept beside it, and the message says where.
    assert!(!out.join("flows.jsonl").exists());
    assert!(e.contains("flows.jsonl.partial"), "{e}");
    let records = jsonl(&out.join("flows.jsonl.partial"));
    let n: u64 = records
        .iter()
        .map(|r| r["fwd_packets"].as_u64().unwrap() + r["rev_packets"].as_u64().unwrap())
        .sum();
    assert_eq!(n, 2000 - summary["table"]["no_ip"].as_u64().unwrap());
}
