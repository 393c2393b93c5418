//! The encoder's messages read back by a minimal IPFIX parser written here from RFC 7011 (it
//! shares no code with the encoder: templates are learnt from the template sets on the wire,
//! and fields are decoded by element ID), plus the exporter over a real loopback socket.

use netspectra_flow::{EndReason, EndedFlow};
use netspectra_ipfix::{
    EncoderConfig, ExporterConfig, IpfixEncoder, IpfixExporter, DEFAULT_MAX_MESSAGE, MIN_MESSAGE,
};
use netspectra_packet::{icmp_counterpart, FlowKey};
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// The independent parser.

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, &x| a << 8 | x as u64)
}

/// One parsed message.
#[derive(Debug)]
struct Msg {
    length: usize,
    export_time: u32,
    sequence: u32,
    domain: u32,
    /// Template IDs defined in this message.
    templates: Vec<u16>,
    /// Data records: (template ID, field ID → raw bytes).
    records: Vec<(u16, HashMap<u16, Vec<u8>>)>,
}

/// Templates learnt so far, by ID: (element ID, length) lists.
type Templates = HashMap<u16, Vec<(u16, u16)>>;

fn parse(d: &[u8], templates: &mut Templates) -> Msg {
    assert!(d.len() >= 16, "short message");
    assert_eq!(be(&d[0..2]), 10, "version");
    let length = be(&d[2..4]) as usize;
    assert_eq!(length, d.len(), "header length != datagram length");
    let mut m = Msg {
        length,
        export_time: be(&d[4..8]) as u32,
        sequence: be(&d[8..12]) as u32,
        domain: be(&d[12..16]) as u32,
        templates: Vec::new(),
        records: Vec::new(),
    };
    let mut at = 16;
    while at < d.len() {
        assert!(at + 4 <= d.len(), "set header past the end");
        let id = be(&d[at..at + 2]) as u16;
        let len = be(&d[at + 2..at + 4]) as usize;
        assert!(len >= 4 && at + len <= d.len(), "set length {len} at {at}");
        let body = &d[at + 4..at + len];
        if id == 2 {
            let mut p = 0;
            while p + 4 <= body.len() {
                let tid = be(&body[p..p + 2]) as u16;
                let n = be(&body[p + 2..p + 4]) as usize;
                assert!(tid >= 256);
                p += 4;
                let mut fields = Vec::new();
                for _ in 0..n {
                    let ie = be(&body[p..p + 2]) as u16;
                    assert_eq!(ie & 0x8000, 0, "no enterprise elements expected");
                    let fl = be(&body[p + 2..p + 4]) as u16;
                    assert_ne!(fl, 0xffff, "fixed-length fields only");
                    fields.push((ie, fl));
                    p += 4;
                }
                templates.insert(tid, fields);
                m.templates.push(tid);
            }
            assert_eq!(p, body.len(), "template set padding");
        } else {
            assert!(id >= 256, "unexpected set id {id}");
            let t = templates
                .get(&id)
                .unwrap_or_else(|| panic!("data set {id} before its template"));
            let rec: usize = t.iter().map(|&(_, l)| l as usize).sum();
            assert_eq!(
                body.len() % rec,
                0,
                "data set not a whole number of records"
            );
            for r in body.chunks(rec) {
                let mut map = HashMap::new();
                let mut p = 0;
                for &(ie, l) in t {
                    map.insert(ie, r[p..p + l as usize].to_vec());
                    p += l as usize;
                }
                m.records.push((id, map));
            }
        }
        at += len;
    }
    m
}

/// A uniflow record as the collector sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Uni {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
    icmp: u16,
    vlan: u16,
    packets: u64,
    octets: u64,
    flags: u16,
    start_ms: u64,
    end_ms: u64,
    reason: u8,
}

fn addr(map: &HashMap<u16, Vec<u8>>, v4: u16, v6: u16) -> IpAddr {
    if let Some(b) = map.get(&v4) {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        let b: [u8; 16] = map[&v6].as_slice().try_into().unwrap();
        IpAddr::V6(Ipv6Addr::from(b))
    }
}

fn uni(map: &HashMap<u16, Vec<u8>>) -> Uni {
    let n = |ie: u16| be(&map[&ie]);
    let icmp = map.get(&32).or_else(|| map.get(&139)).map_or(0, |b| be(b));
    Uni {
        src: addr(map, 8, 27),
        dst: addr(map, 12, 28),
        sport: n(7) as u16,
        dport: n(11) as u16,
        proto: n(4) as u8,
        icmp: icmp as u16,
        vlan: n(58) as u16,
        packets: n(2),
        octets: n(1),
        flags: n(6) as u16,
        start_ms: n(152),
        end_ms: n(153),
        reason: n(136) as u8,
    }
}

/// Parses a stream of messages (in order), checking header invariants that span messages:
/// sequence numbers, domain, size bound. Returns the messages and every record.
fn parse_all(msgs: &[Vec<u8>], domain: u32, max: usize) -> (Vec<Msg>, Vec<Uni>) {
    let mut templates = Templates::new();
    let mut seq = 0u32;
    let mut out = Vec::new();
    let mut recs = Vec::new();
    for d in msgs {
        assert!(d.len() <= max, "message of {} bytes over {max}", d.len());
        let m = parse(d, &mut templates);
        assert_eq!(m.domain, domain);
        assert_eq!(m.sequence, seq, "sequence number");
        seq = seq.wrapping_add(m.records.len() as u32);
        for (tid, r) in &m.records {
            let u = uni(r);
            // The template matches the address family.
            assert_eq!(*tid == 256, u.src.is_ipv4(), "{u:?} in template {tid}");
            recs.push(u);
        }
        out.push(m);
    }
    (out, recs)
}

// ---------------------------------------------------------------------------------------------
// What each flow should become, written from the specification of the export.

fn reason_code(r: EndReason) -> u8 {
    match r {
        EndReason::Idle => 1,
        EndReason::Active => 2,
        EndReason::Fin | EndReason::Rst => 3,
        EndReason::EndOfInput | EndReason::Shutdown => 4,
        EndReason::TableFull => 5,
    }
}

fn expected(f: &EndedFlow) -> Vec<Uni> {
    let k = f.key;
    let ms = |ns: i64| if ns < 0 { 0 } else { (ns / 1_000_000) as u64 };
    let v6 = k.src.is_ipv6() || k.dst.is_ipv6();
    let fam = |a: IpAddr| match (a, v6) {
        (IpAddr::V4(x), true) => IpAddr::V6(x.to_ipv6_mapped()),
        _ => a,
    };
    let icmp = k.proto == 1 || k.proto == 58;
    let one = |dir: usize| {
        let (src, dst, sp, dp) = if dir == 0 {
            (k.src, k.dst, k.src_port, k.dst_port)
        } else {
            (k.dst, k.src, k.dst_port, k.src_port)
        };
        Uni {
            src: fam(src),
            dst: fam(dst),
            sport: if icmp { 0 } else { sp },
            dport: if icmp { 0 } else { dp },
            proto: k.proto,
            icmp: if !icmp {
                0
            } else if k.src_port < 256 && icmp_counterpart(k.proto, k.src_port as u8).is_some() {
                // Paired: this direction's type, and the code its first packet carried.
                (sp % 256) * 256 + f.icmp_code[dir] as u16
            } else {
                // One-way: the key's type and code.
                (k.src_port % 256) * 256 + k.dst_port % 256
            },
            vlan: k.vlan.unwrap_or(0),
            packets: f.packets[dir],
            octets: f.ip_bytes[dir],
            flags: f.tcp_flags[dir] as u16,
            start_ms: ms(f.first),
            end_ms: ms(f.last),
            reason: reason_code(f.reason),
        }
    };
    let mut v = vec![one(0)];
    if f.packets[1] > 0 {
        v.push(one(1));
    }
    v
}

// ---------------------------------------------------------------------------------------------

const T0: u64 = 1_700_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn encoder(cfg: EncoderConfig) -> IpfixEncoder {
    IpfixEncoder::new(cfg).unwrap()
}

/// Encodes batches (each at its own time) and flushes; returns every message.
fn encode(enc: &mut IpfixEncoder, batches: &[(&[EndedFlow], u64)]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut last = T0;
    for (flows, t) in batches {
        enc.encode(flows, at(*t), &mut |m| out.push(m.bytes.to_vec()));
        last = *t;
    }
    enc.flush(at(last), &mut |m| out.push(m.bytes.to_vec()));
    out
}

fn flow(src: &str, dst: &str, sp: u16, dp: u16, proto: u8, packets: [u64; 2]) -> EndedFlow {
    EndedFlow {
        key: FlowKey {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            src_port: sp,
            dst_port: dp,
            proto,
            vlan: None,
        },
        first: 1_700_000_000_123_456_789,
        last: 1_700_000_002_987_654_321,
        packets,
        bytes: [packets[0] * 100, packets[1] * 1000],
        ip_bytes: [packets[0] * 86, packets[1] * 986],
        tcp_flags: [0x02 | 0x10, 0x12],
        icmp_code: [0; 2],
        reason: EndReason::Fin,
    }
}

#[test]
fn v4_tcp_flow_fields_and_header() {
    let f = flow("10.0.0.1", "192.0.2.7", 40000, 443, 6, [5, 7]);
    let mut enc = encoder(EncoderConfig {
        observation_domain: 77,
        ..Default::default()
    });
    let msgs = encode(&mut enc, &[(&[f], T0 + 5)]);
    assert_eq!(msgs.len(), 1);
    let (m, recs) = parse_all(&msgs, 77, DEFAULT_MAX_MESSAGE);
    assert_eq!(m[0].export_time as u64, T0 + 5);
    assert_eq!(m[0].templates, [256, 257]);
    assert_eq!(m[0].length, msgs[0].len());
    let fwd = Uni {
        src: "10.0.0.1".parse().unwrap(),
        dst: "192.0.2.7".parse().unwrap(),
        sport: 40000,
        dport: 443,
        proto: 6,
        icmp: 0,
        vlan: 0,
        packets: 5,
        octets: 430,
        flags: 0x12,
        start_ms: 1_700_000_000_123,
        end_ms: 1_700_000_002_987,
        reason: 3,
    };
    let rev = Uni {
        src: fwd.dst,
        dst: fwd.src,
        sport: 443,
        dport: 40000,
        packets: 7,
        octets: 7 * 986,
        flags: 0x12,
        ..fwd.clone()
    };
    assert_eq!(recs, [fwd, rev]);
    assert_eq!((enc.messages(), enc.records()), (1, 2));
}

#[test]
fn v6_icmp_vlan_and_reverse_rules() {
    let mut echo = flow("2001:db8::1", "2001:db8::2", 128, 0, 58, [3, 0]);
    echo.key.vlan = Some(100);
    echo.reason = EndReason::Idle;
    let mut unreach = flow("10.1.1.1", "10.2.2.2", 3, 3, 1, [1, 0]);
    unreach.reason = EndReason::TableFull;
    // A paired type with a reverse direction: each record carries the type its direction's
    // packets carried (timestamp request 13 forward, reply 14 back) and that direction's code.
    let mut two_way = flow("10.1.1.1", "10.2.2.2", 13, 14, 1, [2, 2]);
    two_way.icmp_code = [0, 5];
    two_way.reason = EndReason::Active;
    let mut udp = flow("2001:db8::5", "2001:db8::6", 5353, 53, 17, [4, 0]);
    udp.key.vlan = Some(4095);
    udp.reason = EndReason::EndOfInput;
    let flows = [echo, unreach, two_way, udp];
    let mut enc = encoder(EncoderConfig::default());
    let msgs = encode(&mut enc, &[(&flows, T0)]);
    let (_, mut recs) = parse_all(&msgs, 0, DEFAULT_MAX_MESSAGE);
    // One-way flows give one record, the two-way flow two.
    assert_eq!(recs.len(), 5);
    recs.sort();
    let mut want: Vec<Uni> = flows.iter().flat_map(expected).collect();
    want.sort();
    assert_eq!(recs, want);
    let echo_rec = recs.iter().find(|u| u.proto == 58).unwrap();
    assert_eq!(
        (echo_rec.icmp, echo_rec.sport, echo_rec.dport, echo_rec.vlan),
        (128 * 256, 0, 0, 100)
    );
    assert_eq!(echo_rec.reason, 1);
    let unr = recs.iter().find(|u| u.icmp == 3 * 256 + 3).unwrap();
    assert_eq!((unr.reason, unr.src.to_string().as_str()), (5, "10.1.1.1"));
    let fwd = recs.iter().find(|u| u.icmp == 13 * 256).unwrap();
    assert_eq!(fwd.src.to_string(), "10.1.1.1");
    let back = recs.iter().find(|u| u.icmp == 14 * 256 + 5).unwrap();
    assert_eq!(
        (back.src.to_string().as_str(), back.reason),
        ("10.2.2.2", 2)
    );
    let u = recs.iter().find(|u| u.proto == 17).unwrap();
    assert_eq!((u.sport, u.dport, u.vlan, u.reason), (5353, 53, 4095, 4));
}

#[test]
fn mixed_families_are_written_v4_mapped_in_v6_records() {
    let f = flow("10.0.0.1", "2001:db8::9", 1, 2, 17, [1, 1]);
    let mut enc = encoder(EncoderConfig::default());
    let (_, recs) = parse_all(&encode(&mut enc, &[(&[f], T0)]), 0, DEFAULT_MAX_MESSAGE);
    assert_eq!(recs[0].src, "::ffff:10.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(recs[1].dst, "::ffff:10.0.0.1".parse::<IpAddr>().unwrap());
}

fn many(n: usize) -> Vec<EndedFlow> {
    (0..n)
        .map(|i| {
            let v6 = i % 3 == 0;
            let (s, d) = if v6 {
                (
                    format!("2001:db8::{:x}", i + 1),
                    "2001:db8:ffff::1".to_string(),
                )
            } else {
                (
                    format!("10.0.{}.{}", i / 250, i % 250),
                    "192.0.2.1".to_string(),
                )
            };
            flow(
                &s,
                &d,
                1024 + i as u16,
                80,
                6,
                [1 + i as u64 % 4, i as u64 % 2],
            )
        })
        .collect()
}

#[test]
fn many_records_respect_the_size_bound_and_sequence() {
    let flows = many(3000);
    for max in [MIN_MESSAGE, 576, DEFAULT_MAX_MESSAGE, 9000] {
        let mut enc = encoder(EncoderConfig {
            max_message: max,
            ..Default::default()
        });
        let msgs = encode(&mut enc, &[(&flows[..1000], T0), (&flows[1000..], T0)]);
        let (parsed, mut recs) = parse_all(&msgs, 0, max);
        let mut want: Vec<Uni> = flows.iter().flat_map(expected).collect();
        assert_eq!(recs.len(), want.len());
        recs.sort();
        want.sort();
        assert!(recs == want, "records differ at max {max}");
        assert_eq!(enc.records(), want.len() as u64);
        assert_eq!(enc.messages(), msgs.len() as u64);
        // Messages are filled: every message but the last has no room for another record.
        for (m, d) in parsed.iter().zip(&msgs).take(msgs.len() - 1) {
            assert!(
                d.len() + 76 + 4 > max,
                "message of {} bytes at max {max}",
                d.len()
            );
            assert!(!m.records.is_empty());
        }
    }
}

#[test]
fn templates_are_refreshed_every_n_messages_and_every_t_seconds() {
    let flows = many(2000);
    let mut enc = encoder(EncoderConfig {
        template_every_messages: 5,
        template_interval: Duration::from_secs(3600),
        ..Default::default()
    });
    let msgs = encode(&mut enc, &[(&flows, T0)]);
    assert!(msgs.len() > 30);
    let (parsed, _) = parse_all(&msgs, 0, DEFAULT_MAX_MESSAGE);
    for (i, m) in parsed.iter().enumerate() {
        assert_eq!(!m.templates.is_empty(), i.is_multiple_of(5), "message {i}");
    }

    // By time: one small batch per second, a message per batch (flushed), refresh after 10 s.
    let mut enc = encoder(EncoderConfig {
        template_every_messages: 1000,
        template_interval: Duration::from_secs(10),
        ..Default::default()
    });
    let mut msgs = Vec::new();
    for s in 0..35 {
        enc.encode(&flows[s..s + 1], at(T0 + s as u64), &mut |m| {
            msgs.push(m.bytes.to_vec())
        });
        enc.flush(at(T0 + s as u64), &mut |m| msgs.push(m.bytes.to_vec()));
    }
    let (parsed, _) = parse_all(&msgs, 0, DEFAULT_MAX_MESSAGE);
    let with: Vec<usize> = (0..parsed.len())
        .filter(|&i| !parsed[i].templates.is_empty())
        .collect();
    assert_eq!(with, [0, 10, 20, 30]);
    assert!(parsed
        .iter()
        .enumerate()
        .all(|(i, m)| m.export_time as u64 == T0 + i as u64));

    // A clock stepped back sends templates at once.
    let mut enc = encoder(EncoderConfig::default());
    let mut msgs = Vec::new();
    for t in [T0, T0 + 1, T0 - 100] {
        enc.encode(&flows[..1], at(t), &mut |m| msgs.push(m.bytes.to_vec()));
        enc.flush(at(t), &mut |m| msgs.push(m.bytes.to_vec()));
    }
    let (parsed, _) = parse_all(&msgs, 0, DEFAULT_MAX_MESSAGE);
    let with: Vec<bool> = parsed.iter().map(|m| !m.templates.is_empty()).collect();
    assert_eq!(with, [true, false, true]);
}

#[test]
fn empty_batches_and_flush_send_nothing() {
    let mut enc = encoder(EncoderConfig::default());
    let mut n = 0;
    enc.encode(&[], at(T0), &mut |_| n += 1);
    enc.flush(at(T0), &mut |_| n += 1);
    enc.flush(at(T0), &mut |_| n += 1);
    assert_eq!(n, 0);
    assert_eq!(enc.messages(), 0);
}

#[test]
fn exporter_sends_datagrams_to_a_loopback_collector() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut ex = IpfixExporter::connect(
        rx.local_addr().unwrap(),
        ExporterConfig {
            encoder: EncoderConfig {
                observation_domain: 9,
                ..Default::default()
            },
            max_rate: Some(20_000),
        },
    )
    .unwrap();
    let flows = many(100);
    ex.export(&flows);
    let before_flush = ex.stats();
    ex.flush();
    let st = ex.stats();
    assert!(st.messages > before_flush.messages);
    assert_eq!(st.send_errors, 0);
    let mut msgs = Vec::new();
    let mut buf = [0u8; 65536];
    for _ in 0..st.messages {
        let n = rx.recv(&mut buf).unwrap();
        msgs.push(buf[..n].to_vec());
    }
    let (_, recs) = parse_all(&msgs, 9, DEFAULT_MAX_MESSAGE);
    let want: usize = flows.iter().map(|f| expected(f).len()).sum();
    assert_eq!(recs.len(), want);
    assert_eq!(st.records, want as u64);
    assert_eq!(st.bytes, msgs.iter().map(|m| m.len() as u64).sum::<u64>());
}

#[test]
fn exporter_counts_refused_sends_and_carries_on() {
    // A port with nothing listening: bind one, note it, close it.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut ex = IpfixExporter::connect(port, ExporterConfig::default()).unwrap();
    for chunk in many(400).chunks(50) {
        ex.export(chunk);
        ex.flush();
    }
    let st = ex.stats();
    // Loopback reports the ICMP port unreachable of one datagram on the next send.
    assert!(st.send_errors > 0, "{st:?}");
    assert_eq!(st.last_error, Some(std::io::ErrorKind::ConnectionRefused));
    assert!(st.messages + st.send_errors >= 8);
    assert!(st.records_lost > 0);
}

// ---------------------------------------------------------------------------------------------

fn ip(v6: bool) -> impl Strategy<Value = IpAddr> {
    if v6 {
        any::<u128>()
            .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
            .boxed()
    } else {
        any::<u32>()
            .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .boxed()
    }
}

fn ended() -> impl Strategy<Value = EndedFlow> {
    let key = any::<bool>().prop_flat_map(|v6| {
        (
            ip(v6),
            ip(v6),
            any::<u16>(),
            any::<u16>(),
            prop_oneof![Just(1u8), Just(6), Just(17), Just(58), any::<u8>()],
            proptest::option::of(0u16..4096),
        )
            .prop_map(|(src, dst, src_port, dst_port, proto, vlan)| FlowKey {
                src,
                dst,
                src_port,
                dst_port,
                proto,
                vlan,
            })
    });
    let reason = proptest::sample::select(EndReason::ALL.to_vec());
    (
        key,
        -(1i64 << 40)..(1i64 << 62),
        0i64..(1i64 << 40),
        any::<[u64; 4]>(),
        prop_oneof![Just(0u64), 1u64..10, any::<u64>()],
        any::<[u8; 2]>(),
        any::<[u8; 2]>(),
        reason,
    )
        .prop_map(
            |(key, first, len, n, rev, tcp_flags, icmp_code, reason)| EndedFlow {
                key,
                first,
                last: first + len,
                packets: [n[0], rev],
                bytes: [n[1], n[2]],
                ip_bytes: [n[3], n[1] ^ n[2]],
                tcp_flags,
                icmp_code,
                reason,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn records_parse_back_to_their_flows(
        batches in proptest::collection::vec(proptest::collection::vec(ended(), 0..80), 1..6),
        max in prop_oneof![Just(DEFAULT_MAX_MESSAGE), MIN_MESSAGE..2000usize],
        every in 1u32..20,
        domain in any::<u32>(),
    ) {
        let mut enc = encoder(EncoderConfig {
            observation_domain: domain,
            max_message: max,
            template_every_messages: every,
            ..Default::default()
        });
        let refs: Vec<(&[EndedFlow], u64)> =
            batches.iter().enumerate().map(|(i, b)| (b.as_slice(), T0 + i as u64)).collect();
        let msgs = encode(&mut enc, &refs);
        let (parsed, mut recs) = parse_all(&msgs, domain, max);
        let mut want: Vec<Uni> = batches.iter().flatten().flat_map(expected).collect();
        recs.sort();
        want.sort();
        prop_assert_eq!(recs, want);
        for (i, m) in parsed.iter().enumerate() {
            prop_assert_eq!(!m.templates.is_empty(), (i as u32).is_multiple_of(every));
        }
    }
}
