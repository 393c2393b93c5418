use super::*;
use netspectra_packet::{IpPair, L3Proto};
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
