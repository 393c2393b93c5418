//! `netspectra flows` over the real captures of the tcpdump test corpus: every file goes
//! through without a crash, packets are conserved, and per-conversation counts equal
//! `tshark -z conv,tcp` / `conv,udp` except where the two count differently by design
//! (see docs/FLOWS.md, "Where we differ from tshark"), which is classified and checked here.
//! With `--inner`, over the tcpdump and ja4 corpora, the packets in TCP and in UDP flows of
//! each file equal tshark's conversation frame totals, with the differences of meaning
//! classified and checked the same way.

#[path = "flows_common.rs"]
mod common;
use common::*;
use std::path::PathBuf;

fn corpus() -> Option<Vec<PathBuf>> {
    corpus_in("tcpdump-tests")
}

fn corpus_in(sub: &str) -> Option<Vec<PathBuf>> {
    let dir = format!(
        "{}/../../../shared/corpus/{sub}",
        env!("CARGO_MANIFEST_DIR")
    );
    let dir = dir.as_str();
    let Ok(rd) = std::fs::read_dir(dir) else {
        netspectra_testnet::skip("flows corpus", &format!("corpus {dir} not present"));
        return None;
    };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    v.retain(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"));
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

/// Packets in TCP (6) and UDP (17) flows of `flows --inner` on a file.
fn inner_totals(f: &std::path::Path, tmp: &std::path::Path) -> [u64; 2] {
    let name = f.file_name().unwrap().to_string_lossy().to_string();
    let rec = tmp.join(format!("{name}.inner.jsonl"));
    let (path, r) = (f.to_str().unwrap(), rec.to_str().unwrap());
    let mut args = vec![
        "flows",
        path,
        "--inner",
        "--records",
        r,
        "--no-default-views",
        "-q",
    ];
    for t in [
        "--tcp-timeout",
        "--udp-timeout",
        "--icmp-timeout",
        "--other-timeout",
        "--tcp-closed-timeout",
        "--active-timeout",
    ] {
        args.extend([t, "3650d"]);
    }
    let o = run(&args);
    assert!(matches!(o.status.code(), Some(0 | 2)), "{name}: {o:?}");
    let mut t = [0u64; 2];
    for r in jsonl(&rec) {
        let n = r["fwd_packets"].as_u64().unwrap() + r["rev_packets"].as_u64().unwrap();
        match r["proto"].as_u64() {
            Some(6) => t[0] += n,
            Some(17) => t[1] += n,
            _ => {}
        }
    }
    let _ = std::fs::remove_file(&rec);
    t
}

/// tshark's frame totals over its TCP and UDP conversations.
fn tshark_totals(f: &str) -> [u64; 2] {
    let text = tshark_conv(f);
    let total = |section| {
        parse_conv(&text, section)
            .values()
            .map(|c| c.frames_ab + c.frames_ba)
            .sum::<u64>()
    };
    [total("TCP Conversations"), total("UDP Conversations")]
}

/// Frames in which tshark counts a UDP layer that carries a tunnel (an outer UDP layer with
/// another transport inside it): tshark puts such a frame in the outer UDP conversation as
/// well as the inner one, `--inner` only in the inner one. What follows ICMP is a quoted
/// packet, which tshark does not count in conversations.
fn tshark_outer_udp_layers(f: &str) -> u64 {
    let o = std::process::Command::new("tshark")
        .args(["-n", "-r", f, "-T", "fields", "-e", "frame.protocols"])
        .output()
        .expect("tshark");
    let mut n = 0;
    for stack in String::from_utf8_lossy(&o.stdout).lines() {
        let mut layers = Vec::new();
        for p in stack.split(':') {
            if matches!(p, "tcp" | "udp" | "icmp" | "icmpv6" | "sctp") {
                layers.push(p);
            }
            if matches!(p, "icmp" | "icmpv6") {
                break;
            }
        }
        if let Some((_, outer)) = layers.split_last() {
            n += outer.iter().filter(|p| **p == "udp").count() as u64;
        }
    }
    n
}

/// Why `--inner` totals differ from tshark's on a file (docs/FLOWS.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InnerRule {
    /// tshark counts a fragmented datagram once, at reassembly; we count every fragment.
    Fragments,
    /// BIG TCP / GSO super-packets and malformed TCP options: tshark stops before its
    /// conversation tap; we count the packet (ours ≥ tshark).
    TsharkSkips,
    /// Packets carried inside another protocol's messages (OpenFlow packet-in): tshark
    /// dissects and counts them, we do not (ours ≤ tshark).
    InsideMessages,
    /// 802.11 with radiotap is not decoded (ours ≤ tshark).
    UndecodedLink,
}

const EXPECTED_INNER: &[(&str, InnerRule)] = &[
    ("afs.pcap", InnerRule::Fragments),
    ("bigtcp-ipv4-geneve-ipv4.pcap", InnerRule::TsharkSkips),
    ("bigtcp-ipv4-geneve-ipv6.pcap", InnerRule::TsharkSkips),
    ("bigtcp-ipv4-vxlan-ipv4.pcap", InnerRule::TsharkSkips),
    ("bigtcp-ipv4-vxlan-ipv6.pcap", InnerRule::TsharkSkips),
    ("bigtcp-ipv6-geneve-ipv4.pcap", InnerRule::TsharkSkips),
    ("bigtcp-ipv6-geneve-ipv6.pcap", InnerRule::TsharkSkips),
    ("bigtcp-ipv6-vxlan-ipv4.pcap", InnerRule::TsharkSkips),
    ("bigtcp-ipv6-vxlan-ipv6.pcap", InnerRule::TsharkSkips),
    ("bigtcp-ipv6.pcap", InnerRule::TsharkSkips),
    ("mptcp-dss-oobr.pcap", InnerRule::TsharkSkips),
    ("of13_ericsson.pcapng", InnerRule::InsideMessages),
    ("ieee802.11_htc.pcap", InnerRule::UndecodedLink),
];

#[test]
fn inner_mode_packet_totals_equal_tshark_conversation_totals() {
    let (Some(a), Some(b)) = (corpus_in("tcpdump-tests"), corpus_in("ja4")) else {
        return;
    };
    if !have("tshark", "-v") {
        netspectra_testnet::skip("flows --inner vs tshark", "tshark not installed");
        return;
    }
    let files: Vec<PathBuf> = a.into_iter().chain(b).collect();
    let tmp = tempfile::tempdir().unwrap();
    let chunks: Vec<Vec<PathBuf>> = files
        .chunks(files.len().div_ceil(2))
        .map(|c| c.to_vec())
        .collect();
    // (file, ours, tshark's, tshark's outer UDP layers when the totals differ)
    let results: Vec<(String, [u64; 2], [u64; 2], u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|c| {
                let tmp = tmp.path();
                s.spawn(move || {
                    c.iter()
                        .map(|f| {
                            let name = f.file_name().unwrap().to_string_lossy().to_string();
                            let ours = inner_totals(f, tmp);
                            let theirs = tshark_totals(f.to_str().unwrap());
                            let outer = if ours == theirs {
                                0
                            } else {
                                tshark_outer_udp_layers(f.to_str().unwrap())
                            };
                            (name, ours, theirs, outer)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let (mut equal, mut tunnels, mut by_rule) = (0, 0, 0);
    let mut unexplained = Vec::new();
    for (name, ours, theirs, outer) in &results {
        if ours == theirs {
            equal += 1;
            continue;
        }
        // A tunnel over UDP: tshark counts the carrying frame in the outer UDP conversation
        // too; the inner counts are equal.
        if ours[0] == theirs[0] && ours[1] + outer == theirs[1] {
            tunnels += 1;
            continue;
        }
        let ok = match EXPECTED_INNER.iter().find(|(n, _)| n == name).map(|x| x.1) {
            Some(InnerRule::Fragments) => ours[0] == theirs[0] && ours[1] > theirs[1],
            Some(InnerRule::TsharkSkips) => ours[0] >= theirs[0] && ours[1] >= theirs[1],
            Some(InnerRule::InsideMessages | InnerRule::UndecodedLink) => {
                ours[0] <= theirs[0] && ours[1] <= theirs[1]
            }
            None => false,
        };
        if ok {
            by_rule += 1;
        } else {
            unexplained.push(format!(
                "{name}: ours tcp/udp {ours:?}, tshark {theirs:?}, tshark outer UDP layers {outer}"
            ));
        }
    }
    eprintln!(
        "flows --inner vs tshark conversation totals: {} files, {equal} equal, {tunnels} differ only by tshark also counting the outer UDP of a tunnel, {by_rule} by another documented rule",
        results.len()
    );
    assert!(unexplained.is_empty(), "unexplained: {unexplained:#?}");
    assert!(equal >= 800, "only {equal} files equal");
}
