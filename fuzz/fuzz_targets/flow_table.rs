//! Fuzzes the flow table update path: arbitrary frames (Ethernet or raw IP, chosen by a byte),
//! arbitrary timestamps, a tiny table and tiny timeouts so that eviction, expiry, active splits,
//! fragments and closes all happen. Checks conservation and the table bound at every step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netspectra_flow::{EndReason, FlowTable, TableConfig, Timeouts};
use netspectra_packet::{decode, DecodeOptions, LinkType};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg_byte, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = TableConfig {
        max_flows: 1 + (cfg_byte & 7) as usize,
        frag_slots: 4,
        timeouts: Timeouts {
            tcp: 3_000,
            tcp_closed: 500,
            udp: 2_000,
            icmp: 1_000,
            other: 1_500,
            active: 10_000,
        },
        inner: cfg_byte & 0x80 != 0,
        ..TableConfig::default()
    };
    let opts = DecodeOptions { inner: cfg.inner };
    let mut t = FlowTable::new(cfg.clone(), true);
    let mut ts: i64 = 0;
    let mut n = 0u64;
    // Each frame: [len u8][dt u8][link u8][bytes...]
    while rest.len() >= 3 {
        let len = rest[0] as usize;
        let dt = rest[1] as i64;
        let link = if rest[2] & 1 == 0 {
            LinkType::ETHERNET
        } else {
            LinkType::RAW
        };
        rest = &rest[3..];
        let frame = &rest[..len.min(rest.len())];
        rest = &rest[frame.len()..];
        // Occasionally step time backwards: captures are not always in order.
        ts = if dt == 255 { ts - 700 } else { ts + dt * 37 };
        let v = decode(frame, link, None, &opts);
        t.update(ts, frame.len() as u32 + 4, &v);
        n += 1;
        assert!(t.live() <= cfg.max_flows);
    }
    t.flush_all(EndReason::EndOfInput);
    let mut ended = Vec::new();
    t.take_ended(&mut ended);
    let mut deltas = Vec::new();
    t.take_deltas(&mut deltas);
    let c = *t.counters();
    assert_eq!(c.packets, n);
    assert_eq!(c.packets, c.flow_packets + c.not_flowable());
    let in_records: u64 = ended.iter().map(|f| f.packets[0] + f.packets[1]).sum();
    assert_eq!(in_records, c.flow_packets);
    let in_deltas: u64 = deltas.iter().map(|d| d.packets[0] + d.packets[1]).sum();
    assert_eq!(in_deltas, in_records);
    assert_eq!(t.live(), 0);
});
