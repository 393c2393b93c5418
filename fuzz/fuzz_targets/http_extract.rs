//! Fuzzes the HTTP extractor: the input is cut into TCP segments of one connection (both
//! directions, with repeated and overlapping sequence ranges), fed to `HttpAnalyzer`, and the
//! connection is flushed. Must never panic, and the header buffers must stay within their cap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netspectra_http::{HttpAnalyzer, HttpConfig};
use netspectra_packet::{FlowKey, TcpFlags, Timestamp};
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let mut a = HttpAnalyzer::new(HttpConfig {
        max_header_bytes: 1024,
        max_connections: 4,
        max_pipeline: 4,
        ..HttpConfig::default()
    });
    let key = FlowKey {
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        src_port: 40000,
        dst_port: 80,
        proto: 6,
        vlan: None,
    };
    let mut seq = [1000u32, 9000u32];
    let mut rest = data;
    let mut t = 0i64;
    // Each segment: a control byte (direction, flags, whether to rewind the sequence number,
    // length) followed by the payload.
    while let Some((&ctl, tail)) = rest.split_first() {
        let len = ((ctl as usize & 0x0f) * 23).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let d = (ctl >> 7) as usize;
        let k = if d == 0 { key } else { key.reversed() };
        let mut s = seq[d];
        if ctl & 0x40 != 0 {
            s = s.wrapping_sub(len as u32 / 2); // overlap / retransmission
        }
        let flags = match ctl & 0x30 {
            0x10 => TcpFlags::FIN | TcpFlags::ACK,
            0x20 if ctl & 1 == 1 => TcpFlags::RST,
            0x20 => TcpFlags::SYN,
            _ => TcpFlags::ACK,
        };
        t += 1_000_000;
        a.on_segment(Timestamp(t), &k, s, TcpFlags(flags), payload, len);
        seq[d] = seq[d].max(s.wrapping_add(len as u32));
    }
    a.expire(Timestamp(t + 1_000_000_000_000));
    a.finish();
    let mut out = Vec::new();
    a.take_records(&mut out);
    assert!(a.connections() == 0);
});
