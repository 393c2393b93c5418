//! Frames shared by the privileged tests; the namespaces come from `netspectra-testnet`.
#![allow(dead_code)]

use etherparse::PacketBuilder;

/// Deterministic frames: `n` packets over `flows` UDP and TCP flows, both directions, sizes from
/// 60 to 1514 bytes, payload bytes derived from the packet index.
pub fn frames(n: usize, flows: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let flow = (x as usize) % flows.max(1);
        let reverse = (x >> 20) & 1 == 1;
        let (mut s, mut d) = ([10, 1, (flow >> 8) as u8, flow as u8], [10, 2, 0, 1]);
        let (mut sp, mut dp) = (
            10_000 + flow as u16,
            if flow.is_multiple_of(3) { 80 } else { 5001 },
        );
        if reverse {
            std::mem::swap(&mut s, &mut d);
            std::mem::swap(&mut sp, &mut dp);
        }
        let plen = (x >> 32) as usize % 1400;
        let payload: Vec<u8> = (0..plen).map(|k| (i + k) as u8).collect();
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(s, d, 64);
        let mut buf = Vec::with_capacity(plen + 64);
        if flow.is_multiple_of(2) {
            b.udp(sp, dp).write(&mut buf, &payload).unwrap();
        } else {
            b.tcp(sp, dp, i as u32, 1024)
                .write(&mut buf, &payload)
                .unwrap();
        }
        if buf.len() < 60 {
            buf.resize(60, 0);
        }
        out.push(buf);
    }
    out
}
