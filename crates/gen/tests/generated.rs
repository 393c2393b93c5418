//! Generated captures read back through our own reader and decoder: determinism, exact truth
//! counts (frames, flows, duplicates), valid headers.

use netspectra_gen::{generate_to_vec, Format, GenConfig, Truth};
use netspectra_packet::{decode, DecodeOptions, DecodeStatus, FlowKey, L3Proto, PacketSource};
use netspectra_pcap::CaptureReader;
use std::collections::{HashMap, HashSet};
use std::io::Cursor;

struct Rec {
    ts: i64,
    data: Vec<u8>,
}

fn read_all(bytes: Vec<u8>) -> Vec<Rec> {
    let mut r = CaptureReader::from_reader("mem", Box::new(Cursor::new(bytes)), None).unwrap();
    let mut out = Vec::new();
    while r
        .next_batch(&mut |b| {
            for p in b.iter() {
                assert_eq!(p.orig_len as usize, p.data.len());
                out.push(Rec {
                    ts: p.ts.as_nanos(),
                    data: p.data.to_vec(),
                });
            }
        })
        .unwrap()
    {}
    out
}

fn cfg(seed: u64, packets: u64) -> GenConfig {
    GenConfig {
        seed,
        packets: Some(packets),
        ..GenConfig::default()
    }
}

#[test]
fn same_seed_gives_identical_bytes_and_different_seed_differs() {
    let (a, ta) = generate_to_vec(&cfg(42, 5_000)).unwrap();
    let (b, tb) = generate_to_vec(&cfg(42, 5_000)).unwrap();
    let (c, _) = generate_to_vec(&cfg(43, 5_000)).unwrap();
    assert!(a == b, "same seed must give the same bytes");
    assert_eq!(ta, tb);
    assert!(a != c, "different seeds must differ");
    assert_eq!(ta.file_bytes, a.len() as u64);
    let ng = GenConfig {
        format: Format::Pcapng,
        ..cfg(42, 5_000)
    };
    let (n1, tn) = generate_to_vec(&ng).unwrap();
    let (n2, _) = generate_to_vec(&ng).unwrap();
    assert!(n1 == n2);
    assert_eq!(tn.file_bytes, n1.len() as u64);
    // Same traffic whatever the container format.
    assert_eq!(tn.packets, ta.packets);
    assert_eq!(tn.bytes, ta.bytes);
}

/// Checks every count of the truth that our decoder can recompute.
fn check_against_decoder(bytes: Vec<u8>, t: &Truth) {
    let recs = read_all(bytes);
    assert_eq!(recs.len() as u64, t.packets);
    assert_eq!(
        recs.iter().map(|r| r.data.len() as u64).sum::<u64>(),
        t.bytes
    );
    assert_eq!(recs.first().unwrap().ts, t.first_ts_ns);
    assert_eq!(recs.last().unwrap().ts, t.last_ts_ns);
    let mut last = i64::MIN;
    let (mut vlan, mut qinq, mut v4, mut v6, mut tcp, mut udp, mut icmp, mut icmp6) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut flows: HashMap<u8, HashSet<FlowKey>> = HashMap::new();
    let mut vlan_flows = HashSet::new();
    let mut v6_flows = HashSet::new();
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    let mut dups = Vec::new();
    let mut dup_bytes = 0u64;
    for (i, r) in recs.iter().enumerate() {
        assert!(
            r.ts >= last,
            "timestamps must not go backwards at frame {i}"
        );
        last = r.ts;
        assert!(
            r.data.len() >= 60,
            "frame {i} shorter than the Ethernet minimum"
        );
        let v = decode(
            &r.data,
            netspectra_packet::LinkType::ETHERNET,
            None,
            &DecodeOptions::default(),
        );
        assert_eq!(
            v.status,
            DecodeStatus::Complete,
            "frame {i}: {:?}",
            v.status
        );
        vlan += (v.vlan_count > 0) as u64;
        qinq += (v.vlan_count > 1) as u64;
        match v.l3 {
            L3Proto::Ipv4 => v4 += 1,
            L3Proto::Ipv6 => v6 += 1,
            other => panic!("frame {i}: unexpected L3 {other:?}"),
        }
        match v.proto {
            6 => tcp += 1,
            17 => udp += 1,
            1 => icmp += 1,
            58 => icmp6 += 1,
            p => panic!("frame {i}: unexpected protocol {p}"),
        }
        let key = FlowKey::from_view(&v).expect("IP frame has a flow key");
        let (canon, _) = key.canonical();
        if v.vlan.is_some() {
            vlan_flows.insert(canon);
        }
        if v.l3 == L3Proto::Ipv6 {
            v6_flows.insert(canon);
        }
        flows.entry(v.proto).or_default().insert(canon);
        if let Some(&orig) = seen.get(r.data.as_slice()) {
            dups.push([orig as u64, i as u64]);
            dup_bytes += r.data.len() as u64;
            assert!(
                i - orig <= 4,
                "duplicate {i} too far from its original {orig}"
            );
        } else {
            seen.insert(&r.data, i);
        }
    }
    let f = &t.frames;
    assert_eq!(
        (vlan, qinq, v4, v6, tcp, udp, icmp, icmp6),
        (f.vlan, f.qinq, f.ipv4, f.ipv6, f.tcp, f.udp, f.icmp, f.icmpv6)
    );
    let n = |p: u8| flows.get(&p).map_or(0, |s| s.len() as u64);
    assert_eq!(n(6), t.flows.tcp, "tcp flows");
    assert_eq!(n(17), t.flows.udp, "udp flows");
    assert_eq!(n(1), t.flows.icmp, "icmp flows");
    assert_eq!(n(58), t.flows.icmpv6, "icmpv6 flows");
    assert_eq!(n(6) + n(17) + n(1) + n(58), t.flows.total);
    assert_eq!(vlan_flows.len() as u64, t.flows.vlan);
    assert_eq!(v6_flows.len() as u64, t.flows.ipv6);
    assert_eq!(n(6), t.tcp.sessions, "one TCP flow per session");
    // Exact duplicates: every frame not listed as a duplicate is unique in the whole file.
    assert_eq!(dups.len() as u64, t.duplicates.frames);
    assert_eq!(dup_bytes, t.duplicates.bytes);
    assert!(t.duplicates.listed);
    assert_eq!(dups, t.duplicates.list);
}

#[test]
fn truth_matches_what_our_decoder_sees() {
    let (bytes, t) = generate_to_vec(&cfg(7, 30_000)).unwrap();
    assert!(t.packets >= 30_000 && t.packets < 40_000, "{}", t.packets);
    let share = t.duplicates.frames as f64 / t.packets as f64;
    assert!((0.035..0.065).contains(&share), "duplicate share {share}");
    let avg = t.bytes as f64 / t.packets as f64;
    assert!((350.0..900.0).contains(&avg), "average frame size {avg}");
    assert!(t.frames.vlan > 0 && t.frames.qinq > 0 && t.frames.ipv6 > 0);
    assert!(t.http.requests > 100 && t.http.requests == t.http.responses);
    assert!(t.http.split_requests > 0 && t.http.pipelined_requests > 0);
    assert!(t.http.chunked_responses > 0);
    assert!(t.tls.sessions > 0 && t.tls.app_data_records > 0 && t.tls.alert_records > 0);
    assert!(t.tls.spanning_records > 0);
    assert!(t.dns.queries > 0 && t.dns.responses > 0);
    assert!(t.icmp.errors + t.icmp.v6_errors > 0);
    assert!(t.tcp.rst_closed > 0 && t.tcp.fin_closed > 0);
    assert_eq!(t.tcp.fin_closed + t.tcp.rst_closed, t.tcp.sessions);
    assert_eq!(t.http.transactions.len() as u64, t.http.requests);
    for port in ["80", "8080", "8000"] {
        assert!(t.http.by_port.contains_key(port), "no HTTP on port {port}");
    }
    assert!(
        t.http.by_port.len() >= 4,
        "no random high port: {:?}",
        t.http.by_port
    );
    assert!(t.http.by_method.len() == 8, "{:?}", t.http.by_method);
    assert!(t
        .http
        .transactions
        .iter()
        .any(|x| x.ip_version == 6 && x.vlan.is_some()));
    check_against_decoder(bytes, &t);
}

#[test]
fn pcapng_and_no_duplicates_and_byte_target() {
    let c = GenConfig {
        seed: 9,
        bytes: Some(3 << 20),
        format: Format::Pcapng,
        dup_share: 0.0,
        ipv6_share: 0.5,
        vlan_share: 0.5,
        ..GenConfig::default()
    };
    let (bytes, t) = generate_to_vec(&c).unwrap();
    assert_eq!(t.duplicates.frames, 0);
    assert!(
        t.file_bytes >= 3 << 20 && t.file_bytes < 6 << 20,
        "{}",
        t.file_bytes
    );
    assert_eq!(t.format, "pcapng");
    check_against_decoder(bytes, &t);
}

#[test]
fn lists_are_dropped_beyond_max_listed_but_counts_stay_exact() {
    let c = GenConfig {
        max_listed: 10,
        ..cfg(3, 5_000)
    };
    let (_, t) = generate_to_vec(&c).unwrap();
    assert!(!t.http.listed && t.http.transactions.is_empty());
    assert!(t.http.requests > 10);
    assert!(!t.duplicates.listed && t.duplicates.list.is_empty());
    assert!(t.duplicates.frames > 10);
}

#[test]
fn truth_round_trips_through_json_and_config_has_defaults() {
    let (_, t) = generate_to_vec(&cfg(5, 2_000)).unwrap();
    let s = serde_json::to_string(&t).unwrap();
    let back: Truth = serde_json::from_str(&s).unwrap();
    assert_eq!(back, t);
    let c: GenConfig = serde_json::from_str(r#"{"seed": 9, "format": "pcapng"}"#).unwrap();
    assert_eq!(c.seed, 9);
    assert_eq!(c.format, Format::Pcapng);
    assert_eq!(c.dup_share, GenConfig::default().dup_share);
    assert!(serde_json::from_str::<GenConfig>(r#"{"sed": 9}"#).is_err());
    let bad = GenConfig {
        dup_share: 0.9,
        ..GenConfig::default()
    };
    assert!(generate_to_vec(&bad).is_err());
}

/// No IP packet exceeds a 1500-byte MTU (VLAN tags come on top of the 1514-byte frame).
#[test]
fn ip_packets_fit_a_1500_byte_mtu() {
    let cfg = netspectra_gen::GenConfig {
        seed: 11,
        packets: Some(20_000),
        vlan_share: 0.2,
        qinq_share: 0.05,
        ..Default::default()
    };
    let (bytes, _) = netspectra_gen::generate_to_vec(&cfg).unwrap();
    let mut r = netspectra_pcap::CaptureReader::from_reader(
        "gen",
        Box::new(std::io::Cursor::new(bytes)),
        None,
    )
    .unwrap();
    let mut max_ip = 0u32;
    use netspectra_packet::PacketSource;
    while r
        .next_batch(&mut |b| {
            for p in b.iter() {
                let v = netspectra_packet::decode(p.data, p.link, None, &Default::default());
                max_ip = max_ip.max(v.ip_len);
            }
        })
        .unwrap()
    {}
    assert!(max_ip <= 1500, "an IP packet of {max_ip} bytes");
    assert!(max_ip >= 1400, "no full-sized segment at all ({max_ip})");
}
