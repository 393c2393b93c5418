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

#[test]
fn live_metrics_agree_with_the_summary() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gen.pcap");
    let cfg = netspectra_gen::GenConfig {
        seed: 12,
        packets: Some(2000),
        ..Default::default()
    };
    let truth = common::generated_capture(&file, &cfg);
    let n = Netns::new();
    netspectra_testnet::ip(&["-n", &n.b, "link", "set", "lo", "up"]);
    // Room for tagged 1514-byte frames, as in `replay_through`.
    for (ns, dev) in [(&n.a, &n.a_if), (&n.b, &n.b_if)] {
        netspectra_testnet::ip(&["-n", ns, "link", "set", dev, "mtu", "9000"]);
    }
    let child = n.spawn_b(&[
        "flows",
        "-i",
        &n.b_if,
        "--json",
        "--no-records",
        "--metrics",
        "127.0.0.1:9464",
    ]);
    assert_eq!(n.replay(&file, &["--pps", "20000"]), truth.packets);
    let m = common::scrape_until(
        &n.b,
        9464,
        "netspectra_flows_packets_total{}",
        truth.packets as f64,
    );
    let sum = common::interrupt(child);
    let Some(m) = m else { return };
    let iface = &n.b_if;
    assert_eq!(
        m[&format!("netspectra_capture_packets_total{{interface={iface}}}")],
        truth.packets as f64
    );
    assert_eq!(m["netspectra_flows_bytes_total{}"], truth.bytes as f64);
    assert_eq!(sum["input_packets"].as_u64(), Some(truth.packets));
    assert_eq!(
        m["netspectra_flows_started_total{}"],
        sum["flows"].as_f64().unwrap()
    );
}
