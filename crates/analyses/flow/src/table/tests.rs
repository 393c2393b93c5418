use super::*;
use netspectra_packet::{community_id_v1, IpPair, L3Proto};
use proptest::prelude::*;

fn view(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, proto: u8, flags: u8) -> PacketView {
    PacketView {
        l3: L3Proto::Ipv4,
        ip: Some(IpPair {
            src: src.into(),
            dst: dst.into(),
        }),
        proto,
        ip_len: 100,
        l4_offset: 34,
        src_port: sp,
        dst_port: dp,
        tcp_flags: TcpFlags(flags),
        ..Default::default()
    }
}

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];

fn ended(t: &mut FlowTable) -> Vec<EndedFlow> {
    let mut v = Vec::new();
    t.take_ended(&mut v);
    v
}

#[test]
fn entry_sizes_are_what_the_bounds_assume() {
    // docs/FLOWS.md and config::MAX_FRAG_SLOTS quote these sizes.
    assert_eq!(FLOW_ENTRY_BYTES, 160);
    assert_eq!(FRAG_SLOT_BYTES, 96);
}

#[test]
fn an_unchecked_huge_frag_slots_is_held_to_the_bound() {
    // 4294967295 from a config aborted on allocation; a configuration refuses it now, and a
    // table built without one is held to the bound instead of failing.
    let t = FlowTable::new(
        TableConfig {
            frag_slots: usize::MAX,
            ..TableConfig::default()
        },
        false,
    );
    assert!(t.memory_bytes() <= crate::config::MAX_FRAG_SLOTS * FRAG_SLOT_BYTES + 4096);
}

#[test]
fn bidirectional_counts_and_initiator() {
    let mut t = FlowTable::new(TableConfig::default(), true);
    // The responder (B, higher address) speaks first in capture order? No: B sends SYN.
    t.update(SEC, 60, &view(B, A, 5000, 80, 6, TcpFlags::SYN));
    t.update(
        SEC + 1,
        60,
        &view(A, B, 80, 5000, 6, TcpFlags::SYN | TcpFlags::ACK),
    );
    t.update(SEC + 2, 54, &view(B, A, 5000, 80, 6, TcpFlags::ACK));
    t.update(
        SEC + 3,
        54,
        &view(B, A, 5000, 80, 6, TcpFlags::FIN | TcpFlags::ACK),
    );
    t.update(
        SEC + 4,
        54,
        &view(A, B, 80, 5000, 6, TcpFlags::FIN | TcpFlags::ACK),
    );
    t.update(SEC + 5, 54, &view(B, A, 5000, 80, 6, TcpFlags::ACK));
    assert_eq!(t.live(), 1);
    // The closed timeout expires it.
    t.sweep(SEC + 5 + 16 * SEC);
    let e = ended(&mut t);
    assert_eq!(e.len(), 1);
    let f = e[0];
    assert_eq!(f.key.src, std::net::IpAddr::from(B));
    assert_eq!(f.key.src_port, 5000);
    assert_eq!(f.packets, [4, 2]);
    assert_eq!(f.bytes, [60 + 54 * 3, 60 + 54]);
    assert_eq!(f.reason, EndReason::Fin);
    assert_eq!(
        f.tcp_flags[0],
        TcpFlags::SYN | TcpFlags::ACK | TcpFlags::FIN
    );
    assert_eq!(t.live(), 0);
}

#[test]
fn syn_wins_initiator_when_first_packet_is_from_server() {
    let mut t = FlowTable::new(TableConfig::default(), false);
    t.update(0, 60, &view(A, B, 80, 5000, 6, TcpFlags::ACK));
    t.update(1, 60, &view(B, A, 5000, 80, 6, TcpFlags::SYN));
    t.flush_all(EndReason::EndOfInput);
    let e = ended(&mut t);
    assert_eq!(e[0].key.src, std::net::IpAddr::from(B));
    assert_eq!(e[0].packets, [1, 1]);
    assert_eq!(e[0].reason, EndReason::EndOfInput);
}

#[test]
fn new_syn_after_close_starts_new_record() {
    let mut t = FlowTable::new(TableConfig::default(), false);
    t.update(0, 60, &view(A, B, 1, 2, 6, TcpFlags::SYN));
    t.update(1, 60, &view(B, A, 2, 1, 6, TcpFlags::RST | TcpFlags::ACK));
    t.update(2, 60, &view(A, B, 1, 2, 6, TcpFlags::SYN));
    t.flush_all(EndReason::EndOfInput);
    let e = ended(&mut t);
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].reason, EndReason::Rst);
    assert_eq!(e[0].packets, [1, 1]);
    assert_eq!(e[1].packets, [1, 0]);
}

#[test]
fn idle_and_active_timeouts_per_protocol() {
    let cfg = TableConfig {
        timeouts: Timeouts {
            udp: 10 * SEC,
            active: 100 * SEC,
            ..Timeouts::default()
        },
        ..TableConfig::default()
    };
    let mut t = FlowTable::new(cfg, false);
    t.update(0, 100, &view(A, B, 53, 53, 17, 0));
    t.update(0, 100, &view(A, B, 1, 2, 6, TcpFlags::ACK));
    // 9 s later the UDP flow is alive; the sweep at 11 s ends it (TCP's 300 s still runs).
    t.update(9 * SEC, 100, &view(B, A, 53, 53, 17, 0));
    t.sweep(18 * SEC);
    assert!(ended(&mut t).is_empty());
    t.sweep(19 * SEC);
    let e = ended(&mut t);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].reason, e[0].packets), (EndReason::Idle, [1, 1]));
    // Keep the TCP flow busy past the active timeout: it is split.
    for s in (50..=120).step_by(10) {
        t.update(s * SEC, 100, &view(A, B, 1, 2, 6, TcpFlags::ACK));
    }
    let e = ended(&mut t);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].reason, EndReason::Active);
    assert_eq!(e[0].packets, [6, 0]); // t=0 and 50..=90 (< 100 s after start)
    t.flush_all(EndReason::EndOfInput);
    assert_eq!(ended(&mut t)[0].packets, [3, 0]);
}

#[test]
fn full_table_evicts_least_recently_seen() {
    let cfg = TableConfig {
        max_flows: 3,
        ..TableConfig::default()
    };
    let mut t = FlowTable::new(cfg, false);
    for p in 0..3u16 {
        t.update(p as i64 * 2 * SEC, 100, &view(A, B, p, 9, 17, 0));
    }
    // Touch flow 0 again so flow 1 is the oldest.
    t.update(10 * SEC, 100, &view(A, B, 0, 9, 17, 0));
    t.update(11 * SEC, 100, &view(A, B, 7, 9, 6, 0));
    let e = ended(&mut t);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].reason, e[0].key.src_port), (EndReason::TableFull, 1));
    assert_eq!(t.live(), 3);
    assert_eq!(t.counters().ended[4], 1);
}

#[test]
fn fragments_follow_their_first_fragment() {
    let mut t = FlowTable::new(TableConfig::default(), false);
    let mut first = view(A, B, 1000, 53, 17, 0);
    first.fragment = Fragment::First;
    first.frag_id = 77;
    let mut later = view(A, B, 0, 0, 17, 0);
    later.fragment = Fragment::Later;
    later.frag_id = 77;
    later.l4_offset = 0;
    let mut orphan = later;
    orphan.frag_id = 78;
    t.update(0, 1500, &first);
    t.update(1, 800, &later);
    t.update(2, 800, &orphan);
    t.flush_all(EndReason::EndOfInput);
    let e = ended(&mut t);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].packets, [2, 0]);
    assert_eq!(e[0].bytes, [2300, 0]);
    let c = t.counters();
    assert_eq!((c.fragments_attributed, c.orphan_fragments), (1, 1));
    assert_eq!(c.packets, c.flow_packets + c.not_flowable());
}

#[test]
fn deltas_sum_to_records() {
    let mut t = FlowTable::new(TableConfig::default(), true);
    let mut deltas = Vec::new();
    for i in 0..1000i64 {
        let p = (i % 37) as u16;
        t.update(i * SEC / 10, 100 + p as u32, &view(A, B, p, 80, 17, 0));
        if i % 100 == 99 {
            t.take_deltas(&mut deltas);
        }
    }
    t.flush_all(EndReason::EndOfInput);
    t.take_deltas(&mut deltas);
    let e = ended(&mut t);
    let rec_pk: u64 = e.iter().map(|f| f.packets[0] + f.packets[1]).sum();
    let rec_by: u64 = e.iter().map(|f| f.bytes[0] + f.bytes[1]).sum();
    let d_pk: u64 = deltas.iter().map(|d| d.packets[0] + d.packets[1]).sum();
    let d_by: u64 = deltas.iter().map(|d| d.bytes[0] + d.bytes[1]).sum();
    let d_new = deltas.iter().filter(|d| d.new_flow).count();
    assert_eq!((rec_pk, rec_by, e.len()), (d_pk, d_by, d_new));
    assert_eq!(rec_pk, 1000);
}

/// A decoded ICMP (IPv4 addresses) or ICMPv6 (IPv6 addresses) packet.
fn icmp_view(src: IpAddr, dst: IpAddr, ty: u8, code: u8) -> PacketView {
    PacketView {
        l3: if src.is_ipv4() {
            L3Proto::Ipv4
        } else {
            L3Proto::Ipv6
        },
        ip: Some(IpPair { src, dst }),
        proto: if src.is_ipv4() { 1 } else { 58 },
        ip_len: 84,
        l4_offset: 34,
        icmp_type: ty,
        icmp_code: code,
        ..Default::default()
    }
}

/// One request/reply family: several exchanges between A and B are one flow whose initiator is
/// the request's sender, also when a reply comes first; a flow of replies only is oriented
/// from its first sender; the record's Community ID is every packet's.
fn paired_family(v6: bool, req: u8, rep: u8) {
    let (a, b): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8::20".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        )
    } else {
        ("10.0.0.20".parse().unwrap(), "10.0.0.1".parse().unwrap())
    };
    let id = |v: &PacketView| community_id_v1(&FlowKey::from_view(v).unwrap(), 0);
    // Three exchanges, the reply of the first seen before its request (capture order), and a
    // reply with a nonzero code.
    let pkts = [
        (b, a, rep, 0),
        (a, b, req, 0),
        (a, b, req, 0),
        (b, a, rep, 16),
        (a, b, req, 0),
        (b, a, rep, 0),
    ];
    let mut t = FlowTable::new(TableConfig::default(), true);
    let mut ids = std::collections::BTreeSet::new();
    for (i, &(s, d, ty, code)) in pkts.iter().enumerate() {
        let v = icmp_view(s, d, ty, code);
        ids.insert(id(&v));
        t.update(i as i64 * SEC, 98, &v);
    }
    let mut deltas = Vec::new();
    t.take_deltas(&mut deltas);
    t.flush_all(EndReason::EndOfInput);
    let e = ended(&mut t);
    assert_eq!(e.len(), 1, "{req}/{rep}: {e:?}");
    let f = e[0];
    assert_eq!((f.key.src, f.key.dst), (a, b), "{req}/{rep}: initiator");
    assert_eq!((f.key.src_port, f.key.dst_port), (req as u16, rep as u16));
    assert_eq!(f.packets, [3, 3]);
    assert_eq!(
        f.icmp_code,
        [0, 0],
        "the code of each direction's first packet"
    );
    assert_eq!(f.tcp_flags, [0, 0]);
    assert_eq!(ids.len(), 1, "{req}/{rep}: packets differ in Community ID");
    assert_eq!(ids.first(), Some(&community_id_v1(&f.key, 0)));
    // The views saw the same orientation once the request came.
    assert_eq!(deltas.len(), 1);
    assert_eq!((deltas[0].key, deltas[0].packets), (f.key, [3, 3]));

    // Replies only (an unsolicited advertisement, replies to a broadcast request): one flow
    // from the replier; a request from the other side later makes the requester initiator.
    let mut t = FlowTable::new(TableConfig::default(), false);
    t.update(0, 98, &icmp_view(b, a, rep, 0));
    t.update(1, 98, &icmp_view(b, a, rep, 0));
    t.flush_all(EndReason::EndOfInput);
    let e = ended(&mut t);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].key.src, e[0].key.src_port, e[0].key.dst_port),
        (b, rep as u16, req as u16)
    );
    assert_eq!(e[0].packets, [2, 0]);

    // A request from B to A is another exchange: its own flow, initiated by B.
    let mut t = FlowTable::new(TableConfig::default(), false);
    t.update(0, 98, &icmp_view(a, b, req, 0));
    t.update(1, 98, &icmp_view(b, a, req, 0));
    t.update(2, 98, &icmp_view(a, b, rep, 0));
    t.flush_all(EndReason::EndOfInput);
    let mut e = ended(&mut t);
    e.sort_by_key(|f| f.key.src);
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(|f| f.key.src_port == req as u16));
    let by_b = e.iter().find(|f| f.key.src == b).unwrap();
    assert_eq!(by_b.packets, [1, 1]);
}

#[test]
fn icmp_echo_request_and_reply_are_one_flow() {
    paired_family(false, 8, 0);
}

#[test]
fn icmp_timestamp_request_and_reply_are_one_flow() {
    paired_family(false, 13, 14);
}

#[test]
fn icmp_information_request_and_reply_are_one_flow() {
    paired_family(false, 15, 16);
}

#[test]
fn icmp_address_mask_request_and_reply_are_one_flow() {
    paired_family(false, 17, 18);
}

#[test]
fn icmp_router_solicitation_and_advertisement_are_one_flow() {
    paired_family(false, 10, 9);
}

#[test]
fn icmpv6_echo_request_and_reply_are_one_flow() {
    paired_family(true, 128, 129);
}

#[test]
fn icmpv6_router_solicitation_and_advertisement_are_one_flow() {
    paired_family(true, 133, 134);
}

#[test]
fn icmpv6_neighbour_solicitation_and_advertisement_are_one_flow() {
    paired_family(true, 135, 136);
}

#[test]
fn icmpv6_multicast_listener_query_and_report_are_one_flow() {
    paired_family(true, 130, 131);
}

#[test]
fn icmpv6_node_information_query_and_reply_are_one_flow() {
    paired_family(true, 139, 140);
}

#[test]
fn icmpv6_home_agent_address_discovery_request_and_reply_are_one_flow() {
    paired_family(true, 144, 145);
}

#[test]
fn every_pair_of_the_shared_table_is_one_flow() {
    // The named tests above, for whatever the table holds (it is also Community ID's).
    for &(q, r) in &netspectra_packet::icmp::ICMP_PAIRS {
        paired_family(false, q, r);
    }
    for &(q, r) in &netspectra_packet::icmp::ICMPV6_PAIRS {
        paired_family(true, q, r);
    }
}

#[test]
fn icmp_errors_stay_one_sided_and_keep_their_code() {
    let (a, b): (IpAddr, IpAddr) = ("10.0.0.20".parse().unwrap(), "10.0.0.1".parse().unwrap());
    let (a6, b6): (IpAddr, IpAddr) = (
        "2001:db8::20".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    );
    let mut t = FlowTable::new(TableConfig::default(), false);
    // Port unreachable both ways (type 3 = code 3: the old canonical form joined these), time
    // exceeded, ICMPv6 unreachable; an echo request between the same hosts is its own flow.
    for (i, (s, d, ty, code)) in [
        (a, b, 3u8, 3u8),
        (b, a, 3, 3),
        (a, b, 3, 3),
        (b, a, 11, 0),
        (a, b, 8, 0),
        (a6, b6, 1, 4),
        (b6, a6, 1, 4),
    ]
    .into_iter()
    .enumerate()
    {
        t.update(i as i64, 70, &icmp_view(s, d, ty, code));
    }
    t.flush_all(EndReason::EndOfInput);
    let mut e = ended(&mut t);
    e.sort_by_key(|f| (f.key.src, f.key.src_port));
    let got: Vec<_> = e
        .iter()
        .map(|f| {
            (
                f.key.src,
                f.key.dst,
                f.key.src_port,
                f.key.dst_port,
                f.packets,
                f.icmp_code,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (b, a, 3, 3, [1, 0], [3, 0]),
            (b, a, 11, 0, [1, 0], [0, 0]),
            (a, b, 3, 3, [2, 0], [3, 0]),
            (a, b, 8, 0, [1, 0], [0, 0]),
            (b6, a6, 1, 4, [1, 0], [4, 0]),
            (a6, b6, 1, 4, [1, 0], [4, 0]),
        ]
    );
    for f in &e {
        // One-way: the Community ID keeps the direction, so each record has its own.
        assert_eq!(
            community_id_v1(&f.key, 0),
            community_id_v1(
                &FlowKey::from_view(&icmp_view(
                    f.key.src,
                    f.key.dst,
                    f.key.src_port as u8,
                    f.key.dst_port as u8
                ))
                .unwrap(),
                0
            )
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the packet sequence: packets are conserved, records and deltas agree, and the
    /// table never exceeds its bound.
    #[test]
    fn conservation_under_random_traffic(
        pkts in proptest::collection::vec(
            (0u8..4, 0u8..4, 0u16..6, 0u16..6, prop_oneof![Just(6u8), Just(17), Just(1), Just(47)],
             any::<u8>(), 0i64..40, 0u8..4, any::<u16>()),
            1..400),
        max in 1usize..8,
    ) {
        let cfg = TableConfig { max_flows: max, frag_slots: 4, timeouts: Timeouts {
            tcp: 5 * SEC, tcp_closed: SEC, udp: 3 * SEC, icmp: 2 * SEC, other: 4 * SEC, active: 20 * SEC }, ..TableConfig::default() };
        let mut t = FlowTable::new(cfg, true);
        let mut ts = 0i64;
        let mut deltas = Vec::new();
        let mut n = 0u64;
        for (a, b, sp, dp, proto, flags, dt, frag, id) in pkts {
            ts += dt * SEC / 8;
            let mut v = view([10, 0, 0, a], [10, 0, 0, b], sp, dp, proto, flags);
            // ICMP: echo request/reply, timestamp request and one-way errors.
            v.icmp_type = [8, 0, 3, 13, 11, 14][(sp as usize + flags as usize) % 6];
            v.icmp_code = dp as u8;
            match frag { 1 => { v.fragment = Fragment::First; v.frag_id = id as u32 % 3 }
                         2 => { v.fragment = Fragment::Later; v.frag_id = id as u32 % 3; v.l4_offset = 0 }
                         3 if id % 5 == 0 => { v.ip = None; }
                         _ => {} }
            t.update(ts, 64, &v);
            n += 1;
            prop_assert!(t.live() <= max);
            if id % 17 == 0 { t.take_deltas(&mut deltas); }
        }
        t.flush_all(EndReason::EndOfInput);
        t.take_deltas(&mut deltas);
        let e = ended(&mut t);
        let c = *t.counters();
        prop_assert_eq!(c.packets, n);
        prop_assert_eq!(c.packets, c.flow_packets + c.not_flowable());
        let rec: u64 = e.iter().map(|f| f.packets[0] + f.packets[1]).sum();
        prop_assert_eq!(rec, c.flow_packets);
        let d: u64 = deltas.iter().map(|d| d.packets[0] + d.packets[1]).sum();
        prop_assert_eq!(d, rec);
        prop_assert_eq!(deltas.iter().filter(|d| d.new_flow).count(), e.len());
        prop_assert_eq!(c.flows_started as usize, e.len());
        prop_assert_eq!(c.ended.iter().sum::<u64>() as usize, e.len());
    }
}
