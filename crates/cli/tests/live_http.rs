//! Live `netspectra http -i` gives the same HTTP records as offline `netspectra http` on the
//! same capture: generated traffic (HTTP on standard and non-standard ports, IPv4/IPv6, VLAN and
//! QinQ tags, split headers, pipelining, duplicate frames) is replayed over a veth pair between
//! two namespaces and extracted on the other side. Privileged (root); prints SKIP otherwise.

mod common;

use common::Netns;
use netspectra_testnet::require_root;
use std::collections::BTreeMap;
use std::path::Path;

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
    let truth = common::generated_capture(&file, &cfg);

    let offline = dir.path().join("offline.jsonl");
    common::run_ok(&[
        "http".as_ref(),
        "--summary".as_ref(),
        "none".as_ref(),
        "-o".as_ref(),
        offline.as_ref(),
        file.as_ref(),
    ]);

    let n = Netns::new();
    let live = dir.path().join("live.jsonl");
    let summary = n.replay_through(
        &file,
        truth.packets,
        &[
            "http",
            "-i",
            &n.b_if,
            "--summary",
            "json",
            "-o",
            live.to_str().unwrap(),
        ],
    );

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
