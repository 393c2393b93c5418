//! Live `netspectra http -i` gives the same HTTP records as offline `netspectra http` on the
//! same capture: generated traffic (HTTP on standard and non-standard ports, IPv4/IPv6, VLAN and
//! QinQ tags, split headers, pipelining, duplicate frames) is replayed over a veth pair between
//! two namespaces and extracted on the other side. Privileged (root); prints SKIP otherwise.

#[macro_use]
mod common;

use common::{interrupt, Netns, BIN};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Record identity (everything but capture timestamps and latency) -> how often it occurs.
fn read_records(path: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = [
            "type",
            "src_ip",
            "src_port",
            "dst_ip",
            "dst_port",
            "vlan",
            "community_id",
            "method",
            "host",
            "uri",
            "status",
            "user_agent",
            "content_length",
            "partial",
        ]
        .iter()
        .map(|f| v[f].to_string())
        .collect::<Vec<_>>()
        .join(" ");
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

#[test]
fn live_http_equals_offline_http() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gen.pcap");
    let cfg = netspectra_gen::GenConfig {
        seed: 21,
        packets: Some(6000),
        vlan_share: 0.2,
        qinq_share: 0.05,
        http_split_share: 0.3,
        ..Default::default()
    };
    let (bytes, truth) = netspectra_gen::generate_to_vec(&cfg).unwrap();
    std::fs::write(&file, bytes).unwrap();

    let offline = dir.path().join("offline.jsonl");
    let st = Command::new(BIN)
        .args(["http", "--summary", "none", "-o"])
        .arg(&offline)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let n = Netns::new();
    // QinQ frames carry 8 bytes of tags on top of a 1514-byte frame: give the link room.
    common::ip(&["-n", &n.a, "link", "set", &n.a_if, "mtu", "9000"]);
    common::ip(&["-n", &n.b, "link", "set", &n.b_if, "mtu", "9000"]);
    let live = dir.path().join("live.jsonl");
    let child = n.spawn_b(&[
        "http",
        "-i",
        &n.b_if,
        "--summary",
        "json",
        "-o",
        live.to_str().unwrap(),
    ]);
    let sent = n.replay(&file, &["--topspeed"]);
    assert_eq!(sent, truth.packets);
    let summary = interrupt(child);

    let (off, liv) = (read_records(&offline), read_records(&live));
    let requests: u64 = off
        .iter()
        .filter(|(k, _)| k.starts_with("\"request\""))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(requests, truth.http.requests, "offline requests");
    assert_eq!(
        summary["requests"].as_u64(),
        Some(truth.http.requests),
        "live summary {summary}"
    );
    assert_eq!(off.len(), liv.len(), "distinct records");
    for (k, c) in &off {
        assert_eq!(liv.get(k), Some(c), "record {k}");
    }
}
