//! Hand-built test captures: IPv4/TCP/UDP packets with correct checksums, the HTTP exchanges
//! they carry, and one wrapper per encapsulation class (tunnels, link types, shim headers),
//! written to pcap files with netspectra-pcap's writer. Included with `#[path]` by the tests
//! that compare against tshark; nothing here comes from a third-party capture.
#![allow(dead_code)] // each test file uses a different subset

use netspectra_packet::{LinkType, Timestamp};
use netspectra_pcap::PcapWriter;
use std::path::Path;

/// The one's complement sum of `b` (odd length padded with a zero byte).
fn sum(b: &[u8], mut acc: u32) -> u32 {
    for c in b.chunks(2) {
        acc += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An IPv4 packet (no options) with a correct header checksum.
pub fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let ck = fold(sum(&h, 0));
    h[10..12].copy_from_slice(&ck.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn pseudo(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    sum(&src, sum(&dst, proto as u32 + len as u32))
}

/// TCP flag bits.
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH_ACK: u8 = 0x18;
pub const FIN_ACK: u8 = 0x11;

/// An IPv4 TCP segment with a correct checksum.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src: [u8; 4],
    dst: [u8; 4],
    sp: u16,
    dp: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + data.len());
    t.extend_from_slice(&sp.to_be_bytes());
    t.extend_from_slice(&dp.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(data);
    let ck = fold(sum(&t, pseudo(src, dst, 6, t.len())));
    t[16..18].copy_from_slice(&ck.to_be_bytes());
    ipv4(6, src, dst, &t)
}

/// An IPv4 UDP datagram; `checksum` false leaves the checksum 0 (absent), as tunnel
/// endpoints often do.
pub fn udp(
    src: [u8; 4],
    dst: [u8; 4],
    sp: u16,
    dp: u16,
    payload: &[u8],
    checksum: bool,
) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sp.to_be_bytes());
    u.extend_from_slice(&dp.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    if checksum {
        let ck = match fold(sum(&u, pseudo(src, dst, 17, u.len()))) {
            0 => 0xffff,
            c => c,
        };
        u[6..8].copy_from_slice(&ck.to_be_bytes());
    }
    ipv4(17, src, dst, &u)
}

/// An Ethernet II frame.
pub fn eth(et: u16, payload: &[u8]) -> Vec<u8> {
    let mut e = vec![
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x66, 0x77, 0x88, 0x99, 0xaa,
    ];
    e.extend_from_slice(&et.to_be_bytes());
    e.extend_from_slice(payload);
    e
}

pub const CLIENT: [u8; 4] = [10, 1, 2, 3];
pub const SERVER: [u8; 4] = [10, 9, 8, 7];

/// One TCP connection as IPv4 packets: the handshake (the SYN carrying `syn_data`, as TCP
/// Fast Open does), then each `(from_server, bytes)` segment, then FINs.
pub fn tcp_conversation(sp: u16, dp: u16, syn_data: &[u8], segs: &[(bool, &[u8])]) -> Vec<Vec<u8>> {
    let (c, s) = (CLIENT, SERVER);
    let (mut cs, mut ss) = (1_000u32, 500_000u32);
    let mut out = vec![tcp(c, s, sp, dp, cs, 0, SYN, syn_data)];
    cs += 1 + syn_data.len() as u32;
    out.push(tcp(s, c, dp, sp, ss, cs, SYN | ACK, b""));
    ss += 1;
    out.push(tcp(c, s, sp, dp, cs, ss, ACK, b""));
    for (from_server, d) in segs {
        if *from_server {
            out.push(tcp(s, c, dp, sp, ss, cs, PSH_ACK, d));
            ss += d.len() as u32;
        } else {
            out.push(tcp(c, s, sp, dp, cs, ss, PSH_ACK, d));
            cs += d.len() as u32;
        }
    }
    out.push(tcp(c, s, sp, dp, cs, ss, FIN_ACK, b""));
    out.push(tcp(s, c, dp, sp, ss, cs + 1, FIN_ACK, b""));
    out
}

/// A request and its response on port 80.
pub fn http_exchange(uri: &str, host: &str) -> Vec<Vec<u8>> {
    let req = format!("GET {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test/1\r\n\r\n");
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    tcp_conversation(40000, 80, b"", &[(false, req.as_bytes()), (true, resp)])
}

/// An encapsulation class: how an IPv4 packet is put into a frame of `link`.
pub struct Class {
    /// Short name, for messages.
    pub name: &'static str,
    /// Link type of the frames.
    pub link: LinkType,
    /// True when the packet travels inside a tunnel (an outer IP header).
    pub tunnel: bool,
    /// Wraps an inner IPv4 packet.
    pub wrap: fn(&[u8]) -> Vec<u8>,
}

const T1: [u8; 4] = [192, 0, 2, 1];
const T2: [u8; 4] = [192, 0, 2, 2];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn gre_teb(p: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(47, T1, T2, &cat(&[&[0, 0, 0x65, 0x58], &eth(0x0800, p)])),
    )
}

fn erspan_1(p: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(47, T1, T2, &cat(&[&[0, 0, 0x88, 0xbe], &eth(0x0800, p)])),
    )
}

fn erspan_2(p: &[u8]) -> Vec<u8> {
    let hdr = [
        0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 7, 0x10, 0x64, 0x00, 0x05, 0, 0, 0, 1,
    ];
    eth(0x0800, &ipv4(47, T1, T2, &cat(&[&hdr, &eth(0x0800, p)])))
}

fn erspan_3(p: &[u8]) -> Vec<u8> {
    // Version 2, frame type 0 (Ethernet), O bit set: an 8-byte platform header follows.
    let hdr = [
        0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 9, 0x20, 0, 0, 5, 1, 2, 3, 4, 0, 0, 0, 1, 0x0c, 0, 0, 0,
        0, 0, 0, 0,
    ];
    eth(0x0800, &ipv4(47, T1, T2, &cat(&[&hdr, &eth(0x0800, p)])))
}

fn geneve_gre(p: &[u8]) -> Vec<u8> {
    let gre = ipv4(
        47,
        [172, 16, 0, 1],
        [172, 16, 0, 2],
        &cat(&[&[0, 0, 8, 0], p]),
    );
    let geneve = cat(&[&[0x00, 0x00, 0x08, 0x00, 0, 0, 1, 0], &gre]);
    eth(0x0800, &udp(T1, T2, 5000, 6081, &geneve, false))
}

fn vxlan_reserved(p: &[u8]) -> Vec<u8> {
    // Every reserved bit set; only the I flag matters.
    let hdr = [0xff, 0xff, 0xff, 0xff, 0, 0, 42, 0xff];
    eth(
        0x0800,
        &udp(T1, T2, 5000, 4789, &cat(&[&hdr, &eth(0x0800, p)]), false),
    )
}

fn erspan_vxlan(p: &[u8]) -> Vec<u8> {
    let vx = cat(&[&[0x0c, 0, 0, 3, 0, 0, 0, 0], &eth(0x0800, p)]);
    erspan_2(&udp(
        [172, 16, 1, 1],
        [172, 16, 1, 2],
        4789,
        4790 + 1,
        &vx,
        true,
    ))
}

fn pppoe(p: &[u8]) -> Vec<u8> {
    let mut h = vec![0x11, 0x00, 0x12, 0x34];
    h.extend_from_slice(&((p.len() + 2) as u16).to_be_bytes());
    eth(0x8864, &cat(&[&h, &[0x00, 0x21], p]))
}

fn ppp(p: &[u8]) -> Vec<u8> {
    cat(&[&[0xff, 0x03, 0x00, 0x21], p])
}

fn chdlc(p: &[u8]) -> Vec<u8> {
    cat(&[&[0x0f, 0x00, 0x08, 0x00], p])
}

fn etag(p: &[u8]) -> Vec<u8> {
    eth(0x893f, &cat(&[&[0, 0x10, 0, 0, 0, 0x22, 0x08, 0x00], p]))
}

fn nsh(p: &[u8]) -> Vec<u8> {
    // MD type 2 without context headers, next protocol 1 (IPv4).
    eth(0x894f, &cat(&[&[0x0f, 0xc2, 0x02, 0x01, 0, 0, 1, 0xff], p]))
}

fn nsh_gpe(p: &[u8]) -> Vec<u8> {
    let nsh = cat(&[&[0x0f, 0xc2, 0x02, 0x01, 0, 0, 1, 0xff], p]);
    let gpe = cat(&[&[0x0c, 0, 0, 0x04, 0, 0, 1, 0], &nsh]);
    eth(0x0800, &udp(T1, T2, 5000, 4790, &gpe, false))
}

fn qinq_mpls(p: &[u8]) -> Vec<u8> {
    let tags = [0, 100, 0x81, 0x00, 0, 200, 0x88, 0x47];
    let labels = [0, 1, 0, 64, 0, 2, 0, 64, 0, 3, 1, 64];
    eth(0x88a8, &cat(&[&tags, &labels, p]))
}

fn sll2_gre_device(p: &[u8]) -> Vec<u8> {
    // ARPHRD_IPGRE (778): the protocol field is a GRE protocol type, 0x6558 = Ethernet.
    let h = [
        0x65, 0x58, 0, 0, 0, 0, 0, 3, 0x03, 0x0a, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
    ];
    cat(&[&h, &eth(0x0800, p)])
}

fn macsec(p: &[u8]) -> Vec<u8> {
    // SecTAG with an SCI (SC bit), neither encrypted nor changed, then the EtherType; the
    // 16-byte ICV closes the frame.
    let tag = [
        0x20, 0, 0, 0, 0, 1, 0x02, 0x66, 0x77, 0x88, 0x99, 0xaa, 0, 1, 0x08, 0x00,
    ];
    eth(0x88e5, &cat(&[&tag, p, &[0xee; 16]]))
}

fn pim_register(p: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(103, T1, T2, &cat(&[&[0x21, 0, 0, 0, 0, 0, 0, 0], p])),
    )
}

/// Every class the decoder learnt, each to be checked against tshark.
pub fn classes() -> Vec<Class> {
    let c = |name, link, tunnel, wrap| Class {
        name,
        link,
        tunnel,
        wrap,
    };
    vec![
        c("gre-teb", LinkType::ETHERNET, true, gre_teb),
        c("erspan-i", LinkType::ETHERNET, true, erspan_1),
        c("erspan-ii", LinkType::ETHERNET, true, erspan_2),
        c("erspan-iii", LinkType::ETHERNET, true, erspan_3),
        c("geneve-ip-gre-ip", LinkType::ETHERNET, true, geneve_gre),
        c(
            "vxlan-reserved-bits",
            LinkType::ETHERNET,
            true,
            vxlan_reserved,
        ),
        c("erspan-vxlan", LinkType::ETHERNET, true, erspan_vxlan),
        c("nsh-vxlan-gpe", LinkType::ETHERNET, true, nsh_gpe),
        c("pim-register", LinkType::ETHERNET, true, pim_register),
        c("pppoe", LinkType::ETHERNET, false, pppoe),
        c("ppp", LinkType::PPP, false, ppp),
        c("cisco-hdlc", LinkType::C_HDLC, false, chdlc),
        c("etag", LinkType::ETHERNET, false, etag),
        c("nsh", LinkType::ETHERNET, false, nsh),
        c("qinq-mpls3", LinkType::ETHERNET, false, qinq_mpls),
        c(
            "sll2-gre-device",
            LinkType::LINUX_SLL2,
            false,
            sll2_gre_device,
        ),
        c("macsec", LinkType::ETHERNET, false, macsec),
    ]
}

/// Writes `frames` of link type `link` to a classic pcap file, one millisecond apart.
pub fn write_pcap(path: &Path, link: LinkType, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(Vec::new(), link, 65535, false).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = Timestamp::from_parts(1_700_000_000, i as u32 * 1_000_000);
        w.write_record(ts, f.len() as u32, f).unwrap();
    }
    std::fs::write(path, w.finish().unwrap()).unwrap();
}
