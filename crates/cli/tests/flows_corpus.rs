//! `netspectra flows` over the real captures of the tcpdump test corpus: every file goes
//! through without a crash, packets are conserved, and per-conversation counts equal
//! `tshark -z conv,tcp` / `conv,udp` except where the two count differently by design
//! (see docs/FLOWS.md, "Where we differ from tshark"), which is classified and checked here.

#[path = "flows_common.rs"]
mod common;
use common::*;
use std::path::PathBuf;

fn corpus() -> Option<Vec<PathBuf>> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/corpus/tcpdump-tests"
    );
    let Ok(rd) = std::fs::read_dir(dir) else {
        netspectra_testnet::skip("flows corpus", &format!("corpus {dir} not present"));
        return None;
    };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    v.sort();
    Some(v)
}

/// What one file gave: our records and summary, and tshark's conversation tables.
struct FileResult {
    name: String,
    exact: usize,
    diffs: Vec<String>,
    summary: serde_json::Value,
}

fn check_file(f: &std::path::Path, tmp: &std::path::Path, with_tshark: bool) -> FileResult {
    let name = f.file_name().unwrap().to_string_lossy().to_string();
    let rec = tmp.join(format!("{name}.jsonl"));
    let o = run(&[
        "flows",
        f.to_str().unwrap(),
        "--records",
        rec.to_str().unwrap(),
        "--no-default-views",
        "--json",
        "-q",
        "--tcp-timeout",
        "3650d",
        "--udp-timeout",
        "3650d",
        "--icmp-timeout",
        "3650d",
        "--other-timeout",
        "3650d",
        "--tcp-closed-timeout",
        "3650d",
        "--active-timeout",
        "3650d",
    ]);
    let code = o.status.code();
    assert!(
        code == Some(0) || code == Some(2),
        "{name}: exit {code:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{name}: summary not JSON ({e})"));
    let records = jsonl(&rec);
    let _ = std::fs::remove_file(&rec);
    // Conservation holds on every file, whatever its content.
    let t = &summary["table"];
    let in_records: u64 = records
        .iter()
        .map(|r| r["fwd_packets"].as_u64().unwrap() + r["rev_packets"].as_u64().unwrap())
        .sum();
    let nf = t["no_ip"].as_u64().unwrap()
        + t["l4_missing"].as_u64().unwrap()
        + t["orphan_fragments"].as_u64().unwrap();
    assert_eq!(
        in_records + nf,
        summary["input_packets"].as_u64().unwrap(),
        "{name}"
    );
    let mut res = FileResult {
        name,
        exact: 0,
        diffs: Vec::new(),
        summary,
    };
    let has_l4 = records.iter().any(|r| r["proto"] == 6 || r["proto"] == 17);
    if !with_tshark || !has_l4 {
        return res;
    }
    let text = tshark_conv(f.to_str().unwrap());
    for (section, proto) in [("TCP Conversations", 6), ("UDP Conversations", 17)] {
        let theirs = parse_conv(&text, section);
        let ours = our_convs(&records, proto);
        let d = diff_convs(&ours, &theirs);
        res.exact += theirs.len().saturating_sub(d.len());
        res.diffs
            .extend(d.into_iter().map(|x| format!("{section}: {x}")));
    }
    res
}

#[test]
fn corpus_files_never_crash_and_match_tshark_conversations() {
    let Some(files) = corpus() else { return };
    let with_tshark = have("tshark", "-v");
    let tmp = tempfile::tempdir().unwrap();
    let chunks: Vec<Vec<PathBuf>> = files
        .chunks(files.len().div_ceil(2))
        .map(|c| c.to_vec())
        .collect();
    let results: Vec<FileResult> = std::thread::scope(|s| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|c| {
                let tmp = tmp.path();
                s.spawn(move || {
                    c.iter()
                        .map(|f| check_file(f, tmp, with_tshark))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.len(), files.len());
    let exact: usize = results.iter().map(|r| r.exact).sum();
    let mut unexplained = Vec::new();
    for r in results.iter().filter(|r| !r.diffs.is_empty()) {
        let rule = EXPECTED.iter().find(|(n, _)| *n == r.name).map(|x| x.1);
        let all = |s: &str| r.diffs.iter().all(|d| d.contains(s));
        let ok = match rule {
            // Inner conversations of tunnels (and of packets carried inside other protocols):
            // tshark lists them, we count the packet once, in its outer flow.
            Some(Rule::TunnelInner) => all("ours missing"),
            // BIG TCP / GSO super-packets (IP length 0 or above 64 KiB) and malformed TCP
            // options: tshark stops before its conversation tap, we count the packet.
            Some(Rule::TsharkSkips) => all("tshark missing"),
            // tshark counts a fragmented datagram once, at reassembly; we count every fragment.
            Some(Rule::Fragments) => r.summary["table"]["fragments_attributed"].as_u64() > Some(0),
            // IPv6 routing headers: tshark keys UDP on the final destination, we on the
            // destination in the IPv6 header (the address the packet is sent to).
            Some(Rule::RoutingHeader) => r.diffs.len() <= 4,
            None => false,
        };
        if !ok {
            unexplained.push(format!(
                "{}: {:#?}",
                r.name,
                &r.diffs[..r.diffs.len().min(3)]
            ));
        }
    }
    let differing = results.iter().filter(|r| !r.diffs.is_empty()).count();
    eprintln!(
        "corpus: {} files, {exact} conversations equal to tshark, {differing} files differ by a documented rule",
        results.len()
    );
    assert!(
        unexplained.is_empty(),
        "unexplained differences from tshark: {unexplained:#?}"
    );
    if with_tshark {
        // A floor, so that a regression that silently drops conversations fails.
        assert!(exact >= 500, "only {exact} conversations equal to tshark");
    }
}

/// Why a corpus file's conversations differ from tshark's (see docs/FLOWS.md).
#[derive(Clone, Copy, Debug)]
enum Rule {
    TunnelInner,
    TsharkSkips,
    Fragments,
    RoutingHeader,
}

const EXPECTED: &[(&str, Rule)] = &[
    ("afs.pcap", Rule::Fragments),
    ("bigtcp-ipv4-geneve-ipv4.pcap", Rule::TsharkSkips),
    ("bigtcp-ipv4-geneve-ipv6.pcap", Rule::TsharkSkips),
    ("bigtcp-ipv4-vxlan-ipv4.pcap", Rule::TsharkSkips),
    ("bigtcp-ipv4-vxlan-ipv6.pcap", Rule::TsharkSkips),
    ("bigtcp-ipv6-geneve-ipv4.pcap", Rule::TsharkSkips),
    ("bigtcp-ipv6-geneve-ipv6.pcap", Rule::TsharkSkips),
    ("bigtcp-ipv6-vxlan-ipv4.pcap", Rule::TsharkSkips),
    ("bigtcp-ipv6-vxlan-ipv6.pcap", Rule::TsharkSkips),
    ("bigtcp-ipv6.pcap", Rule::TsharkSkips),
    ("mptcp-dss-oobr.pcap", Rule::TsharkSkips),
    ("geneve-gcp.pcap", Rule::TunnelInner),
    ("geneve.pcap", Rule::TunnelInner),
    ("gso-ipv4-geneve-ipv4.pcap", Rule::TunnelInner),
    ("gso-ipv4-geneve-ipv6.pcap", Rule::TunnelInner),
    ("gso-ipv4-vxlan-ipv4.pcap", Rule::TunnelInner),
    ("gso-ipv4-vxlan-ipv6.pcap", Rule::TunnelInner),
    ("gso-ipv6-geneve-ipv4.pcap", Rule::TunnelInner),
    ("gso-ipv6-geneve-ipv6.pcap", Rule::TunnelInner),
    ("gso-ipv6-vxlan-ipv4.pcap", Rule::TunnelInner),
    ("gso-ipv6-vxlan-ipv6.pcap", Rule::TunnelInner),
    ("nsh-over-vxlan-gpe.pcap", Rule::TunnelInner),
    ("of13_ericsson.pcapng", Rule::TunnelInner),
    ("ipv6-routing-header.pcap", Rule::RoutingHeader),
    ("ipv6-srh-insert-cksum.pcap", Rule::RoutingHeader),
];

#[test]
fn inner_mode_counts_the_tunnelled_conversation_like_tshark() {
    let Some(files) = corpus() else { return };
    if !have("tshark", "-v") {
        return;
    }
    let f = files
        .iter()
        .find(|f| f.ends_with("geneve.pcap"))
        .expect("geneve.pcap");
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("r.jsonl");
    let o = run(&[
        "flows",
        f.to_str().unwrap(),
        "--inner",
        "--no-default-views",
        "-q",
        "--records",
        rec.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let theirs = parse_conv(&tshark_conv(f.to_str().unwrap()), "TCP Conversations");
    let ours = our_convs(&jsonl(&rec), 6);
    assert_eq!(theirs.len(), 1);
    assert!(
        diff_convs(&ours, &theirs).is_empty(),
        "{ours:?} vs {theirs:?}"
    );
}
