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

/// A capture of mostly ICMP: hundreds of echo sessions (one identifier, 1-5 request/reply
/// pairs each, IPv4 and IPv6) and ICMP errors quoting UDP probes; no duplicates, so that packet
/// counts can be compared with the truth's.
const ICMP_MIX: &str = "\
dup_share: 0
ipv6_share: 0.3
mix: {http: 4, tls: 4, bulk: 0, dns: 12, icmp_echo: 60, icmp_error: 20}
";

/// Per packet, as tshark decodes it: Community ID, outer source and destination address, and
/// the ICMP or ICMPv6 type (empty for other protocols).
fn tshark_packets(cap: &str) -> Vec<(String, String, String, String)> {
    let o = std::process::Command::new("tshark")
        .args([
            "-n",
            "-r",
            cap,
            "--enable-protocol",
            "communityid",
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "communityid",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "icmp.type",
            "-e",
            "icmpv6.type",
        ])
        .output()
        .expect("tshark");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let or = |a: &str, b: &str| if a.is_empty() { b } else { a }.to_string();
            (
                f[0].to_string(),
                or(f[1], f[2]),
                or(f[3], f[4]),
                or(f[5], f[6]),
            )
        })
        .collect()
}

/// ICMP exchanges are one flow each (issue 17): an echo session with all its request/reply
/// pairs is one record initiated by the requests' sender, as the generator's truth counts it
/// and as tshark's Community IDs group the packets; an ICMP error stays a one-way flow.
#[test]
fn icmp_exchanges_are_one_flow_each_as_truth_and_tshark_community_ids_say() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("icmp.yaml");
    std::fs::write(&cfg, ICMP_MIX).unwrap();
    let cap = dir.path().join("icmp.pcap");
    let truth = dir.path().join("icmp.json");
    let cap_s = cap.to_str().unwrap();
    let o = run(&[
        "gen",
        "-o",
        cap_s,
        "--packets",
        "20000",
        "--seed",
        "17",
        "--config",
        cfg.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    let t = |a: &str, b: &str| truth[a][b].as_u64().unwrap();
    let sessions = t("icmp", "echo_sessions");
    assert!(sessions > 300, "only {sessions} echo sessions");

    let mut per_threads = Vec::new();
    for threads in ["1", "2"] {
        let rec = dir.path().join(format!("r{threads}.jsonl"));
        let mut args = vec![
            "flows",
            cap_s,
            "--records",
            rec.to_str().unwrap(),
            "--no-default-views",
            "--threads",
            threads,
            "-q",
        ];
        args.extend(NO_SPLIT);
        let o = run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let records = jsonl(&rec);
        let count = |p: u64| records.iter().filter(|r| r["proto"] == p).count() as u64;
        assert_eq!(
            count(1),
            t("flows", "icmp"),
            "{threads} threads: ICMP flows"
        );
        assert_eq!(
            count(58),
            t("flows", "icmpv6"),
            "{threads} threads: ICMPv6 flows"
        );
        assert_eq!(count(17), t("flows", "udp"));
        assert_eq!(count(6), t("flows", "tcp"));
        assert_eq!(records.len() as u64, t("flows", "total"));

        // Echo: one record per session, requests forward and replies back.
        let of_type = |proto: u64, ty: u64| -> Vec<&serde_json::Value> {
            records
                .iter()
                .filter(|r| r["proto"] == proto && r["src_port"] == ty)
                .collect()
        };
        let echo: Vec<_> = [of_type(1, 8), of_type(58, 128)].concat();
        assert_eq!(echo.len() as u64, sessions);
        let sum = |rs: &[&serde_json::Value], f: &str| -> u64 {
            rs.iter().map(|r| r[f].as_u64().unwrap()).sum()
        };
        assert_eq!(
            sum(&echo, "fwd_packets"),
            t("icmp", "echo_requests") + t("icmp", "v6_echo_requests")
        );
        assert_eq!(
            sum(&echo, "rev_packets"),
            t("icmp", "echo_replies") + t("icmp", "v6_echo_replies")
        );
        assert!(echo
            .iter()
            .all(|r| r["dst_port"] == if r["proto"] == 1 { 0 } else { 129 }));
        // Errors: one-way, one record each, the type and code as the ports.
        let errors: Vec<_> = [of_type(1, 3), of_type(1, 11)].concat();
        let v6_errors: Vec<_> = [of_type(58, 1), of_type(58, 3)].concat();
        assert_eq!(errors.len() as u64, t("icmp", "errors"));
        assert_eq!(v6_errors.len() as u64, t("icmp", "v6_errors"));
        assert!(errors
            .iter()
            .chain(&v6_errors)
            .all(|r| r["fwd_packets"] == 1 && r["rev_packets"] == 0));
        let mut lines: Vec<String> = std::fs::read_to_string(&rec)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        per_threads.push((lines, records));
    }
    assert!(
        per_threads[0].0 == per_threads[1].0,
        "1 and 2 threads differ"
    );

    if !have("tshark", "-v") {
        return;
    }
    // tshark's Community IDs (Wireshark's own implementation of the spec) group the packets
    // into exactly our flows: every session has its own addresses and nothing is split by
    // time, so one ID per record and no ID elsewhere.
    let records = &per_threads[0].1;
    let pkts = tshark_packets(cap_s);
    assert_eq!(pkts.len() as u64, truth["packets"].as_u64().unwrap());
    let theirs: std::collections::BTreeSet<&str> = pkts.iter().map(|p| p.0.as_str()).collect();
    let ours: std::collections::BTreeSet<&str> = records
        .iter()
        .map(|r| r["community_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ours.len(),
        records.len(),
        "two records share a Community ID"
    );
    let only_theirs: Vec<_> = theirs.difference(&ours).take(5).collect();
    let only_ours: Vec<_> = ours.difference(&theirs).take(5).collect();
    assert!(
        only_theirs.is_empty() && only_ours.is_empty(),
        "Community IDs only in tshark {only_theirs:?}, only ours {only_ours:?}"
    );
    // The initiator of an echo record is the sender of its requests.
    let requests: std::collections::BTreeSet<(String, String)> = pkts
        .iter()
        .filter(|p| p.3 == "8" || p.3 == "128")
        .map(|p| (p.1.clone(), p.2.clone()))
        .collect();
    let initiators: std::collections::BTreeSet<(String, String)> = records
        .iter()
        .filter(|r| {
            (r["proto"] == 1 && r["src_port"] == 8) || (r["proto"] == 58 && r["src_port"] == 128)
        })
        .map(|r| {
            (
                r["src_ip"].as_str().unwrap().to_string(),
                r["dst_ip"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        requests.len() as u64,
        truth["icmp"]["echo_sessions"].as_u64().unwrap()
    );
    assert_eq!(initiators, requests);
}
