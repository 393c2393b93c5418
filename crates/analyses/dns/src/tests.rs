//! Analyzer tests on hand-built frames: pairing, duplicates, timeouts, orphans, TCP
//! reassembly under any segmentation, hostile names, off-port detection, table bounds.

use super::*;
use netspectra_packet::{decode, DecodeOptions, LinkType, Packet};
use proptest::prelude::*;

const C: [u8; 4] = [10, 0, 0, 1];
const S: [u8; 4] = [192, 0, 2, 53];

/// An Ethernet + IPv4 frame around a transport header and payload.
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(l4);
    f
}

fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sp.to_be_bytes());
    u.extend_from_slice(&dp.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    ipv4(src, dst, 17, &u)
}

fn tcp(
    src: [u8; 4],
    sp: u16,
    dst: [u8; 4],
    dp: u16,
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sp.to_be_bytes());
    t.extend_from_slice(&dp.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    ipv4(src, dst, 6, &t)
}

fn name(n: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in n.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

fn query(id: u16, qname: &str, qtype: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    m.extend_from_slice(&name(qname));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    // OPT: udp 1232, DO, client subnet 198.51.100.0/24.
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 11]);
    m.extend_from_slice(&[0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100]);
    m
}

/// A response with one A record per address (owner = the question name), rcode `rcode`.
fn response(id: u16, qname: &str, addrs: &[[u8; 4]], rcode: u8) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, addrs.len() as u8, 0, 0, 0, 0]);
    m.extend_from_slice(&name(qname));
    m.extend_from_slice(&[0, 1, 0, 1]);
    for a in addrs {
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4]);
        m.extend_from_slice(a);
    }
    m
}

struct Run {
    a: DnsAnalyzer,
    t: i64,
}

impl Run {
    fn new(cfg: DnsConfig) -> Self {
        Run {
            a: DnsAnalyzer::new(cfg),
            t: 1_700_000_000_000_000_000,
        }
    }

    fn feed(&mut self, frame: &[u8]) {
        self.t += 1_000_000;
        let p = Packet::whole(Timestamp(self.t), LinkType::ETHERNET, frame);
        let v = decode(
            frame,
            LinkType::ETHERNET,
            None,
            &DecodeOptions { inner: true },
        );
        self.a.on_packet(&p, &v);
    }

    fn done(mut self) -> (Vec<DnsRecord>, DnsStats) {
        self.a.finish();
        let mut r = Vec::new();
        self.a.take_records(&mut r);
        (r, self.a.stats())
    }
}

#[test]
fn query_and_response_make_one_record() {
    let mut r = Run::new(DnsConfig::default());
    r.feed(&udp(C, 40000, S, 53, &query(7, "www.Example.com", 1)));
    r.feed(&udp(
        S,
        53,
        C,
        40000,
        &response(7, "www.example.com", &[[192, 0, 2, 1], [192, 0, 2, 2]], 0),
    ));
    let (recs, st) = r.done();
    assert_eq!(recs.len(), 1);
    let x = &recs[0];
    assert_eq!(x.status, Status::Answered);
    assert_eq!(x.qname, "www.Example.com");
    assert_eq!((x.qtype, &*x.qtype_name, x.id), (1, "A", 7));
    assert_eq!(x.src_ip.to_string(), "10.0.0.1");
    assert_eq!((x.src_port, x.dst_port), (40000, 53));
    assert_eq!(x.rcode, Some(0));
    assert_eq!(x.answer_data, ["192.0.2.1", "192.0.2.2"]);
    assert_eq!(x.answer_ttls, [300, 300]);
    assert_eq!(x.answer_names, ["www.example.com", "www.example.com"]);
    assert_eq!(x.latency_us, Some(1000));
    assert_eq!(x.edns_udp_size, Some(1232));
    assert!(x.edns_do && x.rd && x.ra && !x.tc);
    assert_eq!(x.edns_client_subnet.as_deref(), Some("198.51.100.0/24"));
    assert_eq!(
        x.community_id,
        netspectra_packet::community_id_v1(
            &FlowKey {
                src: x.src_ip,
                dst: x.dst_ip,
                src_port: 40000,
                dst_port: 53,
                proto: 17,
                vlan: None
            },
            0
        )
    );
    assert_eq!(
        (st.queries, st.responses, st.answered, st.unanswered),
        (1, 1, 1, 0)
    );
    assert_eq!(st.malformed_total(), 0);
    let json = serde_json::to_value(x).unwrap();
    assert!(
        json.as_object().unwrap().values().all(|v| !v.is_object()),
        "flat record"
    );
    assert_eq!(json["ts"], "1700000000.001000000");
}

#[test]
fn duplicates_never_make_a_second_record() {
    let mut r = Run::new(DnsConfig::default());
    let q = udp(C, 40000, S, 53, &query(9, "a.example", 28));
    let a = udp(S, 53, C, 40000, &response(9, "a.example", &[], 3));
    for f in [&q, &q, &a, &q, &a] {
        r.feed(f);
    }
    let (recs, st) = r.done();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].rcode_name.as_deref(), Some("NXDOMAIN"));
    assert_eq!((st.duplicate_queries, st.duplicate_responses), (2, 1));
}

#[test]
fn answered_transactions_are_remembered_for_the_duplicate_window_only() {
    let mut r = Run::new(DnsConfig::default());
    let q = udp(C, 40020, S, 53, &query(4, "w.example", 1));
    let a = udp(
        S,
        53,
        C,
        40020,
        &response(4, "w.example", &[[1, 1, 1, 1]], 0),
    );
    r.feed(&q);
    r.feed(&a);
    r.a.expire(Timestamp(r.t + 900_000_000));
    r.feed(&a);
    assert_eq!(
        r.a.stats().duplicate_responses,
        1,
        "within 1 s: a duplicate"
    );
    r.a.expire(Timestamp(r.t + 1_100_000_000));
    assert_eq!(r.a.transactions(), 0, "forgotten after the window");
    r.feed(&a);
    let (recs, st) = r.done();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].status, Status::OrphanResponse);
    assert_eq!(st.orphan_responses, 1);
}

#[test]
fn unanswered_queries_time_out_and_orphans_are_recorded() {
    let mut r = Run::new(DnsConfig::default());
    r.feed(&udp(C, 40001, S, 53, &query(1, "late.example", 1)));
    let t0 = r.t;
    r.a.expire(Timestamp(t0 + 9_000_000_000));
    assert!(r.a.records().is_empty(), "not yet timed out");
    r.a.expire(Timestamp(t0 + 10_000_000_001));
    assert_eq!(r.a.records().len(), 1);
    assert_eq!(r.a.records()[0].status, Status::Unanswered);
    assert_eq!(r.a.records()[0].rcode, None);
    // A response now has no query waiting: an orphan, oriented client to server.
    r.feed(&udp(
        S,
        53,
        C,
        40001,
        &response(1, "late.example", &[[1, 2, 3, 4]], 0),
    ));
    let (recs, st) = r.done();
    assert_eq!(recs[1].status, Status::OrphanResponse);
    assert_eq!(recs[1].src_port, 40001);
    assert_eq!(recs[1].answer_data, ["1.2.3.4"]);
    assert_eq!((st.unanswered, st.orphan_responses), (1, 1));
}

#[test]
fn hostile_names_are_counted_by_reason() {
    let mut r = Run::new(DnsConfig::default());
    // Question name that points at itself.
    let mut m = vec![
        0, 5, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
    ];
    r.feed(&udp(S, 53, C, 40002, &m));
    // A valid question, then an answer whose owner points forward.
    m = response(6, "ok.example", &[[1, 1, 1, 1]], 0);
    let ans = 12 + name("ok.example").len() + 4;
    m[ans] = 0xc0;
    m[ans + 1] = 0xff;
    r.feed(&udp(S, 53, C, 40003, &m));
    let (recs, st) = r.done();
    assert_eq!(st.malformed.get(&Malformed::PointerLoop), Some(&1));
    assert_eq!(st.malformed.get(&Malformed::ForwardPointer), Some(&1));
    // The second response is still recorded (its question was read), marked malformed.
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].malformed, Some("forward_pointer"));
}

#[test]
fn off_port_dns_is_detected_by_content_only() {
    let mut r = Run::new(DnsConfig::default());
    r.feed(&udp(C, 40004, S, 8053, &query(3, "x.example", 1)));
    r.feed(&udp(
        S,
        8053,
        C,
        40004,
        &response(3, "x.example", &[[9, 9, 9, 9]], 0),
    ));
    r.feed(&udp(
        C,
        40005,
        S,
        8053,
        b"\x00\x01\x00\x00 not dns at all, just text",
    ));
    r.feed(&udp(C, 40006, S, 9999, &[0u8; 64]));
    // NetBIOS name service shares the message format: never read as DNS.
    r.feed(&udp(
        C,
        137,
        S,
        137,
        &query(4, "ebfcecefejfefdehfcfffafaefcacabl", 32),
    ));
    let (recs, st) = r.done();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].dst_port, 8053);
    assert_eq!(st.detected_off_port, 2);
    assert_eq!(st.malformed_total(), 0);

    let mut r = Run::new(DnsConfig {
        detect_off_port: false,
        ..DnsConfig::default()
    });
    r.feed(&udp(C, 40004, S, 8053, &query(3, "x.example", 1)));
    assert!(r.done().0.is_empty());
}

#[test]
fn a_full_table_emits_its_oldest_queries_as_unanswered() {
    let mut r = Run::new(DnsConfig {
        max_transactions: 4,
        ..DnsConfig::default()
    });
    for i in 0..10u16 {
        r.feed(&udp(C, 41000 + i, S, 53, &query(i, "q.example", 1)));
    }
    assert_eq!(r.a.transactions(), 4);
    assert_eq!(r.a.records().len(), 6);
    assert!(r.a.records().iter().all(|x| x.status == Status::Unanswered));
    let (recs, st) = r.done();
    assert_eq!(recs.len(), 10);
    assert_eq!(st.evicted, 6);
}

#[test]
fn name_key_replaces_names_with_tokens() {
    let mut r = Run::new(DnsConfig::default().with_name_key([1; 32]));
    r.feed(&udp(C, 40010, S, 53, &query(1, "secret.example", 1)));
    r.feed(&udp(
        S,
        53,
        C,
        40010,
        &response(1, "secret.example", &[[5, 6, 7, 8]], 0),
    ));
    let (recs, _) = r.done();
    let x = &recs[0];
    assert_eq!(x.qname.len(), 32);
    assert!(!x.qname.contains("secret"));
    assert_eq!(x.answer_names[0], x.qname, "same name, same token");
    assert_eq!(x.answer_data, ["5.6.7.8"], "addresses are not names");
}

#[test]
fn anonymize_addresses_maps_endpoints_answers_and_subnet() {
    let mut r = Run::new(DnsConfig::default());
    r.feed(&udp(C, 40011, S, 53, &query(2, "m.example", 1)));
    r.feed(&udp(
        S,
        53,
        C,
        40011,
        &response(2, "m.example", &[[5, 6, 7, 8]], 0),
    ));
    let (mut recs, _) = r.done();
    let before = recs[0].community_id.clone();
    recs[0].anonymize_addresses(&mut |ip| match ip {
        std::net::IpAddr::V4(a) => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::from(a) ^ 0xff))
        }
        o => o,
    });
    let x = &recs[0];
    assert_eq!(x.src_ip.to_string(), "10.0.0.254");
    assert_eq!(x.answer_data, ["5.6.7.247"]);
    assert_eq!(x.edns_client_subnet.as_deref(), Some("198.51.100.255/24"));
    assert_ne!(x.community_id, before);
}

/// DNS over TCP: a query and a response (two answers) split at `cuts`, each segment possibly
/// sent twice; the records must not depend on the segmentation.
fn tcp_exchange(cuts: &[usize], dup: &[bool]) -> (Vec<DnsRecord>, DnsStats) {
    let mut r = Run::new(DnsConfig::default());
    let mut stream = Vec::new();
    for (i, m) in [
        query(0x1111, "tcp.example", 1),
        query(0x2222, "two.example", 1),
    ]
    .iter()
    .enumerate()
    {
        let _ = i;
        stream.extend_from_slice(&(m.len() as u16).to_be_bytes());
        stream.extend_from_slice(m);
    }
    let resp = response(0x1111, "tcp.example", &[[10, 1, 1, 1], [10, 1, 1, 2]], 0);
    let mut back = (resp.len() as u16).to_be_bytes().to_vec();
    back.extend_from_slice(&resp);
    let resp2 = response(0x2222, "two.example", &[[10, 2, 2, 2]], 0);
    back.extend_from_slice(&(resp2.len() as u16).to_be_bytes());
    back.extend_from_slice(&resp2);
    r.feed(&tcp(C, 50000, S, 53, 99, 0x02, &[]));
    r.feed(&tcp(S, 53, C, 50000, 499, 0x12, &[]));
    for (data, from_client, base) in [(&stream, true, 100u32), (&back, false, 500u32)] {
        let mut pos = 0;
        let mut k = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.push(data.len());
        points.sort();
        for end in points {
            if end <= pos {
                continue;
            }
            let seg = &data[pos..end];
            let f = if from_client {
                tcp(C, 50000, S, 53, base + pos as u32, 0x18, seg)
            } else {
                tcp(S, 53, C, 50000, base + pos as u32, 0x18, seg)
            };
            r.feed(&f);
            if dup.get(k).copied().unwrap_or(false) {
                r.feed(&f);
            }
            k += 1;
            pos = end;
        }
    }
    r.feed(&tcp(C, 50000, S, 53, 100 + stream.len() as u32, 0x11, &[]));
    r.feed(&tcp(S, 53, C, 50000, 500 + back.len() as u32, 0x11, &[]));
    let out = r.a.tcp_connections();
    assert_eq!(out, 0, "both FINs close the connection");
    r.done()
}

#[test]
fn tcp_messages_in_one_segment_each() {
    let (recs, st) = tcp_exchange(&[], &[]);
    assert_eq!(recs.len(), 2);
    assert!(recs
        .iter()
        .all(|x| x.transport == "tcp" && x.status == Status::Answered));
    assert_eq!(recs[0].answer_data, ["10.1.1.1", "10.1.1.2"]);
    assert_eq!(st.tcp_messages, 4);
    assert_eq!(st.tcp_connections, 1);
}

proptest! {
    #[test]
    fn tcp_segmentation_and_duplicates_do_not_change_records(
        cuts in proptest::collection::vec(0usize..200, 0..12),
        dup in proptest::collection::vec(any::<bool>(), 0..14),
    ) {
        let (want, _) = tcp_exchange(&[], &[]);
        let (got, st) = tcp_exchange(&cuts, &dup);
        let strip = |v: Vec<DnsRecord>| v.into_iter().map(|mut r| { r.ts = Timestamp(0); r.latency_us = None; r }).collect::<Vec<_>>();
        prop_assert_eq!(strip(got), strip(want));
        prop_assert_eq!(st.malformed_total(), 0);
    }

    /// Arbitrary payloads on port 53, over UDP and TCP: no panic, bounded state.
    #[test]
    fn arbitrary_payloads(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
        let mut r = Run::new(DnsConfig { max_transactions: 8, max_tcp_connections: 2, ..DnsConfig::default() });
        let mut seq = 1u32;
        for (i, p) in payloads.iter().enumerate() {
            r.feed(&udp(C, 40000 + (i % 3) as u16, S, 53, p));
            r.feed(&tcp(C, 50000 + (i % 4) as u16, S, 53, seq, 0x18, p));
            seq = seq.wrapping_add(p.len() as u32);
            prop_assert!(r.a.transactions() <= 8 && r.a.tcp_connections() <= 2);
        }
        r.done();
    }
}

#[test]
fn oversized_tcp_message_is_skipped_and_the_next_one_read() {
    let mut r = Run::new(DnsConfig {
        max_tcp_message: 512,
        ..DnsConfig::default()
    });
    // A 2000-byte "message" (a query padded with a TXT-sized additional blob), then a query.
    let mut big = query(1, "big.example", 16);
    big.resize(2000, 0);
    let small = query(2, "small.example", 1);
    let mut s = (big.len() as u16).to_be_bytes().to_vec();
    s.extend_from_slice(&big);
    s.extend_from_slice(&(small.len() as u16).to_be_bytes());
    s.extend_from_slice(&small);
    let mut seq = 1000u32;
    for chunk in s.chunks(700) {
        r.feed(&tcp(C, 50100, S, 53, seq, 0x18, chunk));
        seq += chunk.len() as u32;
    }
    let (recs, st) = r.done();
    assert_eq!(st.tcp_too_large, 1);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].qname, "small.example");
    assert_eq!(recs[0].status, Status::Unanswered);
}
