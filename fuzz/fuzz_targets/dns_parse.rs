//! Fuzzes the DNS parser and analyzer: the input is read as one DNS message (header, questions,
//! every record rendered as text, OPT options), then fed to `DnsAnalyzer` as a UDP datagram on
//! port 53 in both directions and, cut into segments, as a DNS-over-TCP stream with rewound
//! sequence numbers. Must never panic or hang (hostile compression pointers included) and the
//! tables must stay within their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netspectra_dns::parse::rdata::{render, PlainNames};
use netspectra_dns::parse::{questions, read_opt, Header, Question, RrIter, TYPE_OPT};
use netspectra_dns::{DnsAnalyzer, DnsConfig};
use netspectra_packet::{decode, DecodeOptions, LinkType, Packet, Timestamp};

/// An Ethernet + IPv4 frame with a UDP (proto 17) or TCP (6) header around `payload`.
fn frame(proto: u8, sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(20 + payload.len());
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    if proto == 17 {
        l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    } else {
        l4.extend_from_slice(&seq.to_be_bytes());
        l4.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    }
    l4.extend_from_slice(payload);
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, proto, 0, 0]);
    let (a, b) = if sport == 53 { ([192, 0, 2, 53], [10, 0, 0, 1]) } else { ([10, 0, 0, 1], [192, 0, 2, 53]) };
    f.extend_from_slice(&a);
    f.extend_from_slice(&b);
    f.extend_from_slice(&l4);
    f
}

fuzz_target!(|data: &[u8]| {
    // The parser on its own.
    if let Some(h) = Header::parse(data) {
        let mut q = Question::default();
        if let Ok(at) = questions(data, &h, &mut q) {
            let mut s = String::new();
            for rr in RrIter::new(data, &h, at) {
                let Ok(rr) = rr else { break };
                if rr.rtype == TYPE_OPT {
                    let _ = read_opt(data, &rr);
                }
                s.clear();
                let _ = render(data, &rr, &PlainNames, &mut s);
            }
        }
    }

    // The analyzer, over UDP and TCP.
    let mut a = DnsAnalyzer::new(DnsConfig {
        max_transactions: 4,
        max_tcp_connections: 2,
        max_tcp_message: 512,
        ..DnsConfig::default()
    });
    let opts = DecodeOptions { inner: true };
    let mut t = 0i64;
    let mut feed = |a: &mut DnsAnalyzer, f: &[u8]| {
        t += 1_000_000;
        let p = Packet::whole(Timestamp(t), LinkType::ETHERNET, f);
        let v = decode(f, LinkType::ETHERNET, None, &opts);
        a.on_packet(&p, &v);
    };
    feed(&mut a, &frame(17, 40000, 53, 0, 0, data));
    feed(&mut a, &frame(17, 53, 40000, 0, 0, data));
    feed(&mut a, &frame(17, 40001, 8053, 0, 0, data));
    // TCP: a control byte per segment (direction, rewind, FIN/RST, length).
    let mut seq = [1000u32, 9000u32];
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        let len = ((ctl as usize & 0x0f) * 37).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let d = (ctl >> 7) as usize;
        let mut s = seq[d];
        if ctl & 0x40 != 0 {
            s = s.wrapping_sub(len as u32 / 2);
        }
        let flags = match ctl & 0x30 {
            0x10 => 0x11,
            0x20 => 0x04,
            _ => 0x18,
        };
        let f = if d == 0 {
            frame(6, 50000, 53, s, flags, payload)
        } else {
            frame(6, 53, 50000, s, flags, payload)
        };
        feed(&mut a, &f);
        seq[d] = seq[d].max(s.wrapping_add(len as u32));
        assert!(a.transactions() <= 4 && a.tcp_connections() <= 2);
    }
    a.expire(Timestamp(t + 3_600_000_000_000));
    a.finish();
    let mut out = Vec::new();
    a.take_records(&mut out);
    assert_eq!(a.transactions(), 0);
});
