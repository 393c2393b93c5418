//! DNS records checked against independent oracles: the generator's truth (every transaction
//! of a generated capture, UDP and TCP, truncation, NXDOMAIN, unanswered) and tshark (every
//! query and response message, on the generated captures and on the real ones of
//! ../shared/corpus). The deliberate differences are listed in docs/DNS.md and asserted here.

mod common;

use common::{analyze, corpus, have_tshark, record_msgs, tshark_msgs, Msg};
use netspectra_dns::{DnsConfig, DnsRecord, Malformed, Status};
use netspectra_gen::{generate, GenConfig, Mix, Truth};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;

fn endpoint(ip: &std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Our records as truth-comparable tuples.
fn ours_as_truth(recs: &[DnsRecord]) -> BTreeMap<(String, String, String, u16), Vec<String>> {
    let mut m = BTreeMap::new();
    for r in recs {
        let key = (
            r.transport.to_string(),
            endpoint(&r.src_ip, r.src_port),
            endpoint(&r.dst_ip, r.dst_port),
            r.id,
        );
        let v = vec![
            r.qname.clone(),
            r.qtype.to_string(),
            format!("{:?}", r.rcode),
            r.tc.to_string(),
            format!("{:?}", r.answer_types),
            format!("{:?}", r.answer_data),
            format!("{:?}", r.vlan),
            format!("{}", r.edns_udp_size.is_some()),
        ];
        assert!(
            m.insert(key, v).is_none(),
            "two records for one transaction: {r:?}"
        );
    }
    m
}

#[test]
fn generated_captures_equal_the_truth_and_tshark() {
    for (mix, seed) in [("dns-heavy", 5u64), ("all", 6)] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("{mix}.pcap"));
        let cfg = GenConfig {
            seed,
            packets: Some(20_000),
            mix: Mix::preset(mix).unwrap(),
            ..GenConfig::default()
        };
        let t: Truth = generate(&cfg, File::create(&file).unwrap()).unwrap();
        assert!(t.dns.listed && t.dns.truncated > 0 && t.dns.nxdomain > 0);
        // The TCP answers hold up to 101 records: more than the default 64 kept per section.
        let (_, capped) = analyze(&file, DnsConfig::default());
        let over = t
            .dns
            .transactions
            .iter()
            .filter(|x| x.answer_types.len() > 64)
            .count();
        assert!(over > 0);
        assert_eq!(capped.records_capped, over as u64, "{mix}: capped records");
        let (recs, st) = analyze(
            &file,
            DnsConfig {
                max_records: 128,
                ..DnsConfig::default()
            },
        );
        assert_eq!(st.records_capped, 0);

        // Every transaction of the truth, exactly.
        let ours = ours_as_truth(&recs);
        let mut want = BTreeMap::new();
        for x in &t.dns.transactions {
            want.insert(
                (
                    x.transport.clone(),
                    x.client.clone(),
                    x.server.clone(),
                    x.id,
                ),
                vec![
                    x.qname.clone(),
                    x.qtype.to_string(),
                    format!("{:?}", x.rcode),
                    x.tc.to_string(),
                    format!("{:?}", x.answer_types),
                    format!("{:?}", x.answer_data),
                    format!("{:?}", x.vlan),
                    x.edns.to_string(),
                ],
            );
        }
        assert_eq!(ours.len(), want.len(), "{mix}: record count");
        for (k, v) in &want {
            assert_eq!(ours.get(k), Some(v), "{mix}: transaction {k:?}");
        }
        let unanswered = t
            .dns
            .transactions
            .iter()
            .filter(|x| x.rcode.is_none())
            .count() as u64;
        assert_eq!(st.unanswered, unanswered);
        assert_eq!(st.answered + st.unanswered, t.dns.transactions.len() as u64);
        assert_eq!(st.orphan_responses, 0);
        assert_eq!(st.truncated_responses, t.dns.truncated);
        assert_eq!(st.malformed_total(), 0, "{mix}: {:?}", st.malformed);
        assert!(recs.iter().any(|r| r.status == Status::Unanswered));
        assert_eq!(
            recs.iter().filter(|r| r.transport == "tcp").count() as u64,
            t.dns.tcp_queries
        );

        // tshark: the same messages, record for record.
        if !have_tshark() {
            netspectra_testnet::skip("dns tshark oracle", "tshark not installed");
            continue;
        }
        let ours: BTreeSet<Msg> = recs.iter().flat_map(record_msgs).collect();
        let theirs = tshark_msgs(&file, &[]);
        assert_eq!(ours.len(), theirs.len(), "{mix}: messages");
        let diff: Vec<_> = ours.symmetric_difference(&theirs).take(4).collect();
        assert!(diff.is_empty(), "{mix}: differ from tshark: {diff:#?}");
    }
}

/// How our messages deliberately differ from tshark's on one file (see docs/DNS.md).
enum Known {
    /// A message whose question name we reject (counted under this malformed reason, no
    /// record); tshark shows it with a placeholder name such as `<Name too long>`.
    QuestionRejected(&'static str),
    /// DNS over TCP on a port that is not a DNS port: found by our content rule, not decoded
    /// by tshark (which does decode DNS over UDP on such ports by heuristics).
    OffPortTcp,
}

const KNOWN: &[(&str, Known)] = &[
    (
        "dns-badlabel.pcap",
        Known::QuestionRejected("name_too_long"),
    ),
    (
        "dns_fwdptr.pcap",
        Known::QuestionRejected("forward_pointer"),
    ),
    (
        "rtp-seg-fault-1.pcapng",
        Known::QuestionRejected("truncated"),
    ),
    ("dns_tcp_8053.pcap", Known::OffPortTcp),
];

#[test]
fn corpus_messages_equal_tshark() {
    let dirs = [corpus("tcpdump-tests"), corpus("ja4")];
    if !dirs[0].is_dir() {
        netspectra_testnet::skip(
            "dns corpus oracle",
            "../shared/corpus/tcpdump-tests not found",
        );
        return;
    }
    if !have_tshark() {
        netspectra_testnet::skip("dns corpus oracle", "tshark not installed");
        return;
    }
    let mut files = Vec::new();
    for d in &dirs {
        if let Ok(rd) = std::fs::read_dir(d) {
            files.extend(
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file()),
            );
        }
    }
    files.sort();
    let mut compared = 0;
    let mut messages = 0;
    let mut problems = Vec::new();
    let mut known = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".md") || name.ends_with(".json") {
            continue;
        }
        let (recs, st) = analyze(f, DnsConfig::default());
        if recs.is_empty() && !has_dns_port(f) {
            continue;
        }
        let ours: BTreeSet<Msg> = recs.iter().flat_map(record_msgs).collect();
        let theirs = tshark_msgs(f, &[]);
        compared += 1;
        messages += theirs.len();
        match KNOWN.iter().find(|(k, _)| *k == name).map(|(_, k)| k) {
            Some(Known::QuestionRejected(reason)) => {
                let malformed = Malformed::ALL
                    .iter()
                    .find(|m| m.name() == *reason)
                    .and_then(|m| st.malformed.get(m))
                    .copied()
                    .unwrap_or(0);
                let missing = theirs.difference(&ours).count() as u64;
                assert!(ours.is_subset(&theirs), "{name}: {ours:#?}");
                assert!(
                    missing > 0 && missing == malformed,
                    "{name}: {missing} vs {malformed}"
                );
                known += 1;
            }
            Some(Known::OffPortTcp) => {
                assert!(theirs.is_empty(), "{name}: tshark decodes it now");
                assert!(!ours.is_empty() && ours.iter().all(|m| m.transport == "tcp"));
                assert_eq!(st.detected_off_port, 1);
                known += 1;
            }
            None if ours != theirs => {
                let only_ours: Vec<_> = ours.difference(&theirs).take(3).collect();
                let only_theirs: Vec<_> = theirs.difference(&ours).take(3).collect();
                problems.push(format!(
                    "{name}: ours {} tshark {}\n only ours {only_ours:#?}\n only tshark {only_theirs:#?}",
                    ours.len(),
                    theirs.len()
                ));
            }
            None => {}
        }
    }
    assert_eq!(known, KNOWN.len(), "every listed difference was seen");
    eprintln!("dns corpus: {compared} files compared, {messages} tshark messages");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Does any UDP or TCP packet of the file use a DNS port?
fn has_dns_port(f: &Path) -> bool {
    use netspectra_packet::{decode, DecodeOptions, PacketSource};
    let Ok(mut r) = netspectra_pcap::CaptureReader::open(f) else {
        return false;
    };
    let mut found = false;
    let opts = DecodeOptions { inner: true };
    while let Ok(true) = r.next_batch(&mut |b| {
        for p in b.iter() {
            let v = decode(p.data, p.link, p.vlan_tci, &opts);
            if matches!(v.proto, 6 | 17)
                && [v.src_port, v.dst_port]
                    .iter()
                    .any(|p| matches!(p, 53 | 5353 | 5355))
            {
                found = true;
            }
        }
    }) {}
    found
}
