//! Live `netspectra flows -i` gives the same flow records as offline `netspectra flows` on the
//! same capture: the generated capture (VLAN and QinQ tags, IPv4/IPv6, TCP/UDP/ICMP, duplicates)
//! is replayed over a veth pair between two namespaces and captured on the other side.
//! Privileged (root); prints SKIP otherwise.

mod common;

use common::Netns;
use netspectra_testnet::require_root;
use std::collections::BTreeMap;
use std::path::Path;

/// Flow key -> (packets, wire bytes, IP bytes) per direction, from a flows.jsonl file.
type Flows = BTreeMap<String, [u64; 6]>;

fn read_flows(path: &Path) -> Flows {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Flows::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = format!(
            "{} {}:{} > {}:{} vlan {}",
            v["proto"], v["src_ip"], v["src_port"], v["dst_ip"], v["dst_port"], v["vlan"]
        );
        let n = |f: &str| v[f].as_u64().unwrap();
        let e = out.entry(key).or_insert([0; 6]);
        for (i, f) in [
            "fwd_packets",
            "fwd_bytes",
            "fwd_ip_bytes",
            "rev_packets",
            "rev_bytes",
            "rev_ip_bytes",
        ]
        .iter()
        .enumerate()
        {
            e[i] += n(f);
        }
    }
    out
}

#[test]
fn live_flows_equal_offline_flows() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gen.pcap");
    let cfg = netspectra_gen::GenConfig {
        seed: 11,
        packets: Some(4000),
        vlan_share: 0.2,
        qinq_share: 0.05,
        ..Default::default()
    };
    let truth = common::generated_capture(&file, &cfg);

    let offline = dir.path().join("offline");
    common::run_ok(&[
        "flows".as_ref(),
        "--no-default-views".as_ref(),
        "-o".as_ref(),
        offline.as_ref(),
        file.as_ref(),
    ]);

    let n = Netns::new();
    let live = dir.path().join("live");
    n.replay_through(
        &file,
        truth.packets,
        &[
            "flows",
            "-i",
            &n.b_if,
            "--json",
            "--no-default-views",
            "-o",
            live.to_str().unwrap(),
        ],
    );

    let (off, liv) = (
        read_flows(&offline.join("flows.jsonl")),
        read_flows(&live.join("flows.jsonl")),
    );
    assert_eq!(
        off.values().map(|c| c[0] + c[3]).sum::<u64>(),
        truth.packets,
        "offline total"
    );
    assert_eq!(off.len(), liv.len(), "number of flows");
    for (k, c) in &off {
        assert_eq!(
            liv.get(k),
            Some(c),
            "flow {k}: offline {c:?}, live {:?}",
            liv.get(k)
        );
    }
}
