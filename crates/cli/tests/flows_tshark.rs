//! `netspectra flows` against independent oracles on generated captures: tshark's conversation
//! tables (per-conversation frames and bytes, both directions) and the generator's truth file
//! (flows per protocol); plus conservation of packets.

#[path = "flows_common.rs"]
mod common;
use common::*;

/// Timeouts long enough that no flow is split: tshark never splits a conversation by time.
const NO_SPLIT: [&str; 8] = [
    "--tcp-timeout",
    "30d",
    "--udp-timeout",
    "30d",
    "--icmp-timeout",
    "30d",
    "--active-timeout",
    "30d",
];

#[test]
fn conversations_equal_tshark_and_flows_equal_truth() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, threads) in [(11u64, "1"), (12, "2")] {
        let (cap, truth) = gen(dir.path(), &format!("g{seed}"), 30_000, seed);
        let rec = dir.path().join(format!("r{seed}.jsonl"));
        let mut args = vec![
            "flows",
            &cap,
            "--records",
            rec.to_str().unwrap(),
            "--no-default-views",
            "--json",
            "--threads",
            threads,
            "-q",
        ];
        args.extend(NO_SPLIT);
        let o = run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let records = jsonl(&rec);

        // Conservation: every input packet is in a flow record or counted as not flow-able.
        let t = &summary["table"];
        let in_records: u64 = records
            .iter()
            .map(|r| r["fwd_packets"].as_u64().unwrap() + r["rev_packets"].as_u64().unwrap())
            .sum();
        let not_flowable = t["no_ip"].as_u64().unwrap()
            + t["l4_missing"].as_u64().unwrap()
            + t["orphan_fragments"].as_u64().unwrap();
        assert_eq!(summary["input_packets"], truth["packets"]);
        assert_eq!(
            in_records + not_flowable,
            truth["packets"].as_u64().unwrap()
        );

        // Flows by protocol equal the generator's truth.
        let count = |p: u64| records.iter().filter(|r| r["proto"] == p).count() as u64;
        let f = &truth["flows"];
        assert_eq!(records.len() as u64, f["total"].as_u64().unwrap());
        assert_eq!(count(6), f["tcp"].as_u64().unwrap());
        assert_eq!(count(17), f["udp"].as_u64().unwrap());
        assert_eq!(count(1), f["icmp"].as_u64().unwrap());
        assert_eq!(count(58), f["icmpv6"].as_u64().unwrap());
        let v6 = records
            .iter()
            .filter(|r| r["src_ip"].as_str().unwrap().contains(':'))
            .count();
        assert_eq!(v6 as u64, f["ipv6"].as_u64().unwrap());
        let vlan = records.iter().filter(|r| !r["vlan"].is_null()).count();
        assert_eq!(vlan as u64, f["vlan"].as_u64().unwrap());
        // Community IDs are present and well formed.
        assert!(records
            .iter()
            .all(|r| r["community_id"].as_str().unwrap().starts_with("1:")));

        if !have("tshark", "-v") {
            return;
        }
        let text = tshark_conv(&cap);
        for (section, proto) in [("TCP Conversations", 6), ("UDP Conversations", 17)] {
            let theirs = parse_conv(&text, section);
            assert!(!theirs.is_empty(), "no {section} from tshark");
            let ours = our_convs(&records, proto);
            let d = diff_convs(&ours, &theirs);
            assert!(
                d.is_empty(),
                "{section}: {} differences, first: {:#?}",
                d.len(),
                &d[..d.len().min(5)]
            );
        }
    }
}

#[test]
fn one_and_two_threads_give_identical_records() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = gen(dir.path(), "t", 20_000, 5);
    let mut sets = Vec::new();
    for threads in ["1", "2"] {
        let rec = dir.path().join(format!("r{threads}.jsonl"));
        let o = run(&[
            "flows",
            &cap,
            "--records",
            rec.to_str().unwrap(),
            "--threads",
            threads,
            "-q",
        ]);
        assert!(o.status.success());
        let mut lines: Vec<String> = std::fs::read_to_string(&rec)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        sets.push(lines);
    }
    assert_eq!(sets[0].len(), sets[1].len());
    assert!(sets[0] == sets[1], "records differ between 1 and 2 threads");
}
