//! `Filter::matches` selects exactly the packets libpcap's own filter selects on the same file
//! (libpcap opens the file and applies the expression with `pcap_setfilter`). Runs over the
//! tcpdump regression captures in `../shared/corpus/tcpdump-tests` (skips when absent) and over
//! a generated file. No privileges needed.

use netspectra_capture::Filter;
use netspectra_packet::{LinkType, PacketSource};
use netspectra_pcap::CaptureReader;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const EXPRS: &[&str] = &[
    "tcp",
    "udp",
    "icmp",
    "ip6",
    "arp",
    "not ip",
    "tcp port 80",
    "udp port 53",
    "port 443 or port 8080",
    "host 192.168.1.1",
    "net 10.0.0.0/8",
    "tcp port 80 and not net 10.0.0.0/8",
    "tcp[tcpflags] & tcp-syn != 0",
    "greater 200",
    "less 100",
    "ip[6:2] & 0x1fff != 0",
    "ether broadcast",
    "portrange 1-1024",
    "ip proto 47",
    "ip6 and tcp",
    "udp and (port 4789 or port 6081)",
    "vlan",
    "vlan and tcp",
    "mpls",
    "icmp6",
    "len >= 1000 and udp",
];

fn hash(d: &[u8]) -> u64 {
    // FNV-1a: stable, good enough to tell packets apart in a comparison.
    d.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// (caplen, wirelen, hash) of every packet libpcap returns with `expr` (or all with `None`).
fn libpcap(path: &Path, expr: Option<&str>) -> Option<Vec<(u32, u32, u64)>> {
    let mut c = pcap::Capture::from_file(path).ok()?;
    if let Some(e) = expr {
        c.filter(e, true).ok()?;
    }
    let mut v = Vec::new();
    loop {
        match c.next_packet() {
            Ok(p) => v.push((p.header.caplen, p.header.len, hash(p.data))),
            Err(pcap::Error::NoMorePackets) => return Some(v),
            Err(_) => return None,
        }
    }
}

/// Compares on one file; returns (expressions compared, disagreements).
fn compare(path: &Path) -> (usize, Vec<String>) {
    let Some(all) = libpcap(path, None) else {
        return (0, vec![]);
    };
    let Ok(mut r) = CaptureReader::open(path) else {
        return (0, vec![]);
    };
    let mut pkts: Vec<(LinkType, u32, u32, Vec<u8>)> = Vec::new();
    let ok = (|| -> Result<(), netspectra_packet::SourceError> {
        while r.next_batch(&mut |b| {
            pkts.extend(
                b.iter()
                    .map(|p| (p.link, p.caplen(), p.orig_len, p.data.to_vec())),
            )
        })? {}
        Ok(())
    })()
    .is_ok();
    let ours_all: Vec<_> = pkts.iter().map(|p| (p.1, p.2, hash(&p.3))).collect();
    if !ok || ours_all != all || pkts.is_empty() {
        return (0, vec![]); // readers disagree on the file itself: not a filter question
    }
    let link = pkts[0].0;
    if pkts.iter().any(|p| p.0 != link) {
        return (0, vec![]);
    }
    let mut n = 0;
    let mut bad = Vec::new();
    for e in EXPRS {
        let Ok(f) = Filter::compile(e, link, 0) else {
            continue; // libpcap cannot compile it for this link type either way
        };
        let Some(want) = libpcap(path, Some(e)) else {
            bad.push(format!(
                "{}: {e}: libpcap failed where we compiled",
                path.display()
            ));
            continue;
        };
        let got: Vec<_> = pkts
            .iter()
            .filter(|p| f.run(&p.3, p.2) != 0)
            .map(|p| (p.1, p.2, hash(&p.3)))
            .collect();
        n += 1;
        if got != want {
            bad.push(format!(
                "{}: {e:?}: ours {} libpcap {}",
                path.display(),
                got.len(),
                want.len()
            ));
        }
    }
    (n, bad)
}

#[test]
fn same_packets_as_libpcap_on_the_tcpdump_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/corpus/tcpdump-tests");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        netspectra_testnet::skip(
            "libpcap filter corpus",
            &format!("{} not found", dir.display()),
        );
        return;
    };
    let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let (mut compared, mut bad, mut by_link) = (0, Vec::new(), HashMap::new());
    for f in &files {
        let (n, b) = compare(f);
        if n > 0 {
            *by_link
                .entry(f.extension().map(|e| e.to_owned()))
                .or_insert(0) += 1;
        }
        compared += n;
        bad.extend(b);
    }
    eprintln!(
        "compared {compared} (file, expression) pairs over {} files",
        files.len()
    );
    assert!(compared > 1000, "too few comparisons: {compared}");
    assert!(
        bad.is_empty(),
        "{} disagreements:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn matches_needs_the_same_link_type() {
    let f = Filter::compile("ip", LinkType::ETHERNET, 0).unwrap();
    let mut fr = vec![0u8; 60];
    fr[12] = 8;
    let p = |link| netspectra_packet::Packet::whole(Default::default(), link, &fr);
    assert!(f.matches(&p(LinkType::ETHERNET)));
    assert!(!f.matches(&p(LinkType::RAW)));
    // Raw IP files compile through the LINKTYPE -> DLT mapping.
    assert!(Filter::compile("tcp port 80", LinkType::RAW, 0).is_ok());
}

#[test]
fn a_file_filter_compiles_per_link_type() {
    use netspectra_capture::FileFilter;
    use netspectra_packet::{Packet, Timestamp};
    // The same IPv4/UDP packet as an Ethernet frame and as a raw IP packet.
    let mut ip = vec![0u8; 28];
    ip[0] = 0x45;
    ip[3] = 28;
    ip[8] = 64;
    ip[9] = 17;
    let mut eth = vec![0u8; 12];
    eth.extend_from_slice(&[8, 0]);
    eth.extend_from_slice(&ip);
    let ts = Timestamp::default();
    let mut f = FileFilter::new("udp");
    assert!(f.matches(&Packet::whole(ts, LinkType::ETHERNET, &eth)));
    assert!(f.matches(&Packet::whole(ts, LinkType::RAW, &ip)));
    // Ethernet bytes read as raw IP are no UDP packet: each link type has its own program.
    assert!(!f.matches(&Packet::whole(ts, LinkType::RAW, &eth)));
    // An expression libpcap rejects for a link type matches nothing of that type.
    let mut v = FileFilter::new("vlan");
    assert!(!v.matches(&Packet::whole(ts, LinkType::RAW, &ip)));
    assert!(Filter::compile("vlan", LinkType::RAW, 0).is_err());
}
