//! Unit tests of the whole pipeline over hand-built frames (checksums, addresses, masking)
//! and proptests over arbitrary bytes.

use super::*;
use etherparse::PacketBuilder;
use netspectra_packet::Timestamp;
use proptest::prelude::*;

fn all() -> SanitizeConfig {
    SanitizeConfig {
        dedup: Some(DedupConfig::default()),
        anonymize: Some(AnonPolicy {
            mac: true,
            ..Default::default()
        }),
        mask: Some(MaskConfig::default()),
    }
}

fn pkt(data: &[u8], link: LinkType) -> Packet<'_> {
    Packet::whole(Timestamp(1), link, data)
}

/// Checksum kinds that do not verify, as the inspector sees them.
fn bad(data: &[u8]) -> (u8, u8) {
    let r = Inspector::new()
        .inspect(&pkt(data, LinkType::ETHERNET))
        .frame;
    (r.bad_checksums, r.checked)
}

fn tcp_frame(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
        .ipv4([192, 0, 2, 1], [198, 51, 100, 7], 64)
        .tcp(40000, 443, 1000, 65535);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

#[test]
fn checksums_right_stay_right_and_wrong_stay_wrong() {
    let mut rec = vec![23, 3, 3, 0, 8];
    rec.extend_from_slice(b"ciphertx");
    let good = tcp_frame(&rec);
    assert_eq!(bad(&good), (0, 0b11));
    let mut s = Sanitizer::new(&all(), &[3u8; 32]);
    let out = s.process(&pkt(&good, LinkType::ETHERNET)).unwrap().to_vec();
    assert_ne!(out, good);
    assert_eq!(&out[out.len() - 8..], &[0u8; 8], "application data masked");
    assert_eq!(bad(&out), (0, 0b11), "still verifies");
    // A frame whose TCP checksum was wrong stays wrong after rewriting.
    let mut wrong = good.clone();
    wrong[14 + 20 + 16] ^= 0x55;
    assert_eq!(bad(&wrong).0, 1 << CkKind::Tcp as u8);
    let mut s = Sanitizer::new(&all(), &[3u8; 32]);
    let out = s
        .process(&pkt(&wrong, LinkType::ETHERNET))
        .unwrap()
        .to_vec();
    assert_eq!(bad(&out).0, 1 << CkKind::Tcp as u8);
}

#[test]
fn masked_icmp_whose_bytes_all_become_zero_gets_checksum_ffff() {
    // Echo reply with id 0 and sequence 0 over Cisco HDLC: once its data is masked, every byte
    // the checksum covers is zero, and only 0xffff verifies (0x0000 is the other zero of one's
    // complement, which the incremental rule can give).
    let b = PacketBuilder::ipv4([10, 0, 0, 2], [10, 0, 0, 1], 255).icmpv4(
        etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id: 0, seq: 0 }),
    );
    let mut ip = Vec::new();
    b.write(&mut ip, &[0xab; 72]).unwrap();
    let mut f = vec![0x0f, 0x00, 0x08, 0x00];
    f.extend_from_slice(&ip);
    let inspect = |d: &[u8]| Inspector::new().inspect(&pkt(d, LinkType::C_HDLC)).frame;
    let icmp = 1 << CkKind::Icmp as u8;
    assert_eq!(
        (inspect(&f).bad_checksums, inspect(&f).checked & icmp),
        (0, icmp)
    );
    let cfg = SanitizeConfig {
        dedup: None,
        anonymize: None,
        mask: Some(MaskConfig::default()),
    };
    let out = Sanitizer::new(&cfg, &[1u8; 32])
        .process(&pkt(&f, LinkType::C_HDLC))
        .unwrap()
        .to_vec();
    assert!(out[4 + 20 + 8..].iter().all(|&b| b == 0), "payload masked");
    assert_eq!(&out[4 + 20 + 2..4 + 20 + 4], &[0xff, 0xff]);
    assert_eq!(inspect(&out).bad_checksums, 0);
}

#[test]
fn udp_and_icmp_error_quotes_are_rewritten_consistently() {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([203, 0, 113, 9], [192, 0, 2, 1], 64)
        .udp(5000, 9999);
    let mut udp = Vec::new();
    b.write(&mut udp, b"payload!").unwrap();
    // ICMP port unreachable quoting that datagram's IP header and 8 bytes.
    let quote = &udp[14..14 + 28];
    let b = PacketBuilder::ethernet2([2; 6], [1; 6])
        .ipv4([192, 0, 2, 1], [203, 0, 113, 9], 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ));
    let mut icmp = Vec::new();
    b.write(&mut icmp, quote).unwrap();
    assert_eq!(bad(&udp).0, 0);
    assert_eq!(bad(&icmp).0, 0);
    let mut s = Sanitizer::new(&all(), &[9u8; 32]);
    let u = s.process(&pkt(&udp, LinkType::ETHERNET)).unwrap().to_vec();
    let i = s.process(&pkt(&icmp, LinkType::ETHERNET)).unwrap().to_vec();
    assert_eq!(bad(&u).0, 0);
    assert_eq!(bad(&i).0, 0);
    // The quoted addresses map exactly like the outer ones of the datagram.
    assert_eq!(&i[14 + 28 + 12..14 + 28 + 20], &u[14 + 12..14 + 20]);
    assert_ne!(&u[14 + 12..14 + 20], &udp[14 + 12..14 + 20]);
    // Payload masked, lengths unchanged.
    assert_eq!(&u[u.len() - 8..], &[0u8; 8]);
    assert_eq!(u.len(), udp.len());
}

#[test]
fn ipv6_tcp_http_secrets_masked_and_checksum_kept() {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            64,
        )
        .tcp(40000, 80, 1, 65535);
    let msg = b"GET / HTTP/1.1\r\nCookie: sid=1\r\n\r\n";
    let mut f = Vec::new();
    b.write(&mut f, msg).unwrap();
    assert_eq!(bad(&f).0, 0);
    let mut s = Sanitizer::new(&all(), &[1u8; 32]);
    let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
    assert_eq!(bad(&out).0, 0);
    let pay = &out[out.len() - msg.len()..];
    assert_eq!(pay, b"GET / HTTP/1.1\r\nCookie: \0\0\0\0\0\r\n\r\n");
}

/// An IPv6 address 2001:db8::`n` (documentation range, so it is encrypted, not kept).
fn v6(n: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 1, 0xd, 0xb8]);
    a[15] = n;
    a
}

/// UDP over IPv6 with the given extension headers (`next` = type of the first) whose
/// checksum is computed here, independently of the sanitizer, over the pseudo-header with
/// `final_dst` (RFC 8200 8.1).
fn udp6(next: u8, exts: &[u8], final_dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (v6(1), v6(2));
    let ulen = 8 + payload.len();
    let mut f = vec![2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0x86, 0xdd];
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((exts.len() + ulen) as u16).to_be_bytes());
    f.extend_from_slice(&[next, 64]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(exts);
    let u = f.len();
    f.extend_from_slice(&[0x13, 0x88, 0x00, 0x35]);
    f.extend_from_slice(&(ulen as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let ck = udp6_checksum(&f[22..38], &final_dst, &f[u..]);
    f[u + 6..u + 8].copy_from_slice(&ck.to_be_bytes());
    f
}

/// Plain one's complement UDP checksum over an IPv6 pseudo-header (test oracle).
fn udp6_checksum(src: &[u8], dst: &[u8], udp: &[u8]) -> u16 {
    let mut words: Vec<u8> = Vec::new();
    words.extend_from_slice(src);
    words.extend_from_slice(dst);
    words.extend_from_slice(&(udp.len() as u32).to_be_bytes());
    words.extend_from_slice(&[0, 0, 0, 17]);
    words.extend_from_slice(&udp[..6]);
    words.extend_from_slice(&[0, 0]);
    words.extend_from_slice(&udp[8..]);
    if words.len() % 2 == 1 {
        words.push(0);
    }
    let mut acc: u32 = 0;
    for w in words.chunks(2) {
        acc += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    match !(acc as u16) {
        0 => 0xffff,
        c => c,
    }
}

/// How the sanitizer maps `a`, taken from a frame where it is the plain IPv6 source.
fn mapped(s: &mut Sanitizer, a: [u8; 16]) -> [u8; 16] {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv6(a, v6(99), 64)
        .udp(1, 2);
    let mut f = Vec::new();
    b.write(&mut f, b"x").unwrap();
    let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap();
    out[22..38].try_into().unwrap()
}

fn anon_only() -> SanitizeConfig {
    SanitizeConfig {
        dedup: None,
        anonymize: Some(AnonPolicy::default()),
        mask: None,
    }
}

#[test]
fn ipv6_routing_header_addresses_are_mapped_and_checksums_follow_the_final_destination() {
    // Type 0 routing header, two addresses, both segments left: the final destination is
    // the last address, so the UDP checksum is computed over it, not over the IPv6 dst.
    let mut rh = vec![17, 4, 0, 2, 0, 0, 0, 0];
    rh.extend_from_slice(&v6(10));
    rh.extend_from_slice(&v6(11));
    let f = udp6(43, &rh, v6(11), b"hello");
    assert_eq!(bad(&f), (0, 1 << CkKind::Udp as u8), "input verifies");
    let mut s = Sanitizer::new(&anon_only(), &[4u8; 32]);
    let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
    let (a10, a11) = (mapped(&mut s, v6(10)), mapped(&mut s, v6(11)));
    assert_eq!(
        &out[62..78],
        &a10,
        "first routing address mapped like elsewhere"
    );
    assert_eq!(
        &out[78..94],
        &a11,
        "final destination mapped like elsewhere"
    );
    for n in [1, 2, 10, 11] {
        assert!(
            !out.windows(16).any(|w| w == v6(n)),
            "2001:db8::{n} still in the output"
        );
    }
    let u = 94;
    let ck = u16::from_be_bytes([out[u + 6], out[u + 7]]);
    assert_eq!(ck, udp6_checksum(&out[22..38], &a11, &out[u..]));
    assert_eq!(bad(&out), (0, 1 << CkKind::Udp as u8));

    // A wrong checksum stays wrong.
    let mut wrong = f.clone();
    wrong[u + 6] ^= 0x21;
    let mut s = Sanitizer::new(&anon_only(), &[4u8; 32]);
    let out = s
        .process(&pkt(&wrong, LinkType::ETHERNET))
        .unwrap()
        .to_vec();
    assert_eq!(bad(&out).0, 1 << CkKind::Udp as u8);
}

#[test]
fn segment_lists_home_addresses_and_unknown_routing_types_do_not_leak() {
    // Segment routing header (type 4), segments left 1, segment list [final, next hop]:
    // the final destination is entry 0.
    let mut srh = vec![60, 4, 4, 1, 1, 0, 0, 0];
    srh.extend_from_slice(&v6(20));
    srh.extend_from_slice(&v6(21));
    // Destination options: PadN (2 bytes), home address option, Pad1 x2.
    let mut dopt = vec![17, 2, 1, 0, 0xc9, 16];
    dopt.extend_from_slice(&v6(30));
    dopt.extend_from_slice(&[0, 0]);
    let mut exts = srh.clone();
    exts.extend_from_slice(&dopt);
    let f = udp6(43, &exts, v6(20), b"segment routed");
    assert_eq!(bad(&f).0, 0, "input verifies");
    let mut s = Sanitizer::new(&anon_only(), &[6u8; 32]);
    let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
    assert_eq!(&out[62..78], &mapped(&mut s, v6(20)));
    assert_eq!(&out[78..94], &mapped(&mut s, v6(21)));
    assert_eq!(&out[94 + 6..94 + 22], &mapped(&mut s, v6(30)));
    for n in [20, 21, 30] {
        assert!(!out.windows(16).any(|w| w == v6(n)), "2001:db8::{n} leaked");
    }
    assert_eq!(bad(&out).0, 0, "checksum still verifies");

    // RPL source route (type 3, compressed addresses): not understood, so zero-filled
    // beyond its fixed part, and the frame's checksum is still exactly as right.
    let mut rpl = vec![17, 2, 3, 0, 0x88, 0, 0, 0];
    rpl.extend_from_slice(&[0xab; 16]);
    let f = udp6(43, &rpl, v6(2), b"rpl");
    assert_eq!(bad(&f).0, 0);
    let mut s = Sanitizer::new(&anon_only(), &[6u8; 32]);
    let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
    assert_eq!(&out[54..62], &rpl[..8]);
    assert_eq!(&out[62..78], &[0u8; 16]);
    assert_eq!(bad(&out).0, 0);
}

/// A DNS response for example.com: one A and one AAAA answer (compressed names) and an
/// OPT record with an EDNS client subnet of 198.51.100.0/22 (3 address bytes).
fn dns_response() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1];
    m.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 80]);
    m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
    m.extend_from_slice(&v6(77));
    m.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 11]);
    m.extend_from_slice(&[0, 8, 0, 7, 0, 1, 22, 0, 198, 51, 103]);
    m
}

fn mapped_v4(s: &mut Sanitizer, a: [u8; 4]) -> [u8; 4] {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(a, [192, 0, 2, 99], 64)
        .udp(1, 2);
    let mut f = Vec::new();
    b.write(&mut f, b"x").unwrap();
    let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap();
    out[26..30].try_into().unwrap()
}

#[test]
fn kept_dns_answers_and_client_subnets_are_anonymized() {
    let b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([192, 0, 2, 53], [192, 0, 2, 7], 64)
        .udp(53, 40000);
    let msg = dns_response();
    let mut f = Vec::new();
    b.write(&mut f, &msg).unwrap();
    assert_eq!(bad(&f), (0, 0b101), "input verifies (IPv4 and UDP)");
    let pay = f.len() - msg.len();
    let (a_at, aaaa_at, ecs_at) = (pay + 41, pay + 57, pay + msg.len() - 3);
    let keep = SanitizeConfig {
        dedup: None,
        anonymize: Some(AnonPolicy::default()),
        mask: Some(MaskConfig {
            keep_dns: true,
            ..Default::default()
        }),
    };
    for cfg in [anon_only(), keep] {
        let mut s = Sanitizer::new(&cfg, &[7u8; 32]);
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
        assert_eq!(bad(&out).0, 0, "checksums still verify");
        assert_eq!(&out[pay..a_at], &f[pay..a_at], "names and header kept");
        assert_eq!(&out[a_at..a_at + 4], &mapped_v4(&mut s, [203, 0, 113, 80]));
        assert_eq!(&out[aaaa_at..aaaa_at + 16], &mapped(&mut s, v6(77)));
        // The client subnet maps like the /22 of a whole address.
        let net = mapped_v4(&mut s, [198, 51, 103, 0]);
        assert_eq!(&out[ecs_at..ecs_at + 2], &net[..2]);
        assert_eq!(out[ecs_at + 2], net[2] & 0xfc);
        assert_ne!(&out[ecs_at..ecs_at + 3], &[198, 51, 103]);
    }
    // Masked DNS (the default with masking) is zero-filled instead.
    let mut s = Sanitizer::new(&all(), &[7u8; 32]);
    let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
    assert!(out[pay..].iter().all(|&b| b == 0));
}

proptest! {
    /// Arbitrary bytes of any link type: no panic, same length, and a frame sanitized twice
    /// with the same key is sanitized identically (deterministic).
    #[test]
    fn arbitrary_frames_never_panic(sel in 0usize..22, data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let link = [
            LinkType::ETHERNET, LinkType::RAW, LinkType::IPV4, LinkType::IPV6, LinkType::NULL,
            LinkType::LOOP, LinkType::LINUX_SLL, LinkType::LINUX_SLL2, LinkType(147),
            LinkType::PPP, LinkType::PPP_HDLC, LinkType::PPP_ETHER, LinkType::PPP_WITH_DIR,
            LinkType::C_HDLC, LinkType::C_HDLC_WITH_DIR, LinkType::ARCNET_BSD,
            LinkType::ARCNET_LINUX, LinkType::USER2, LinkType::JUNIPER_ETHER, LinkType::NFLOG,
            LinkType::IPOIB, LinkType::PKTAP,
        ][sel];
        let cfg = SanitizeConfig { dedup: None, ..all() };
        let mut a = Sanitizer::new(&cfg, &[5u8; 32]);
        let mut b = Sanitizer::new(&cfg, &[5u8; 32]);
        let x = a.process(&pkt(&data, link)).unwrap().to_vec();
        let y = b.process(&pkt(&data, link)).unwrap().to_vec();
        prop_assert_eq!(x.len(), data.len());
        prop_assert_eq!(&x, &y);
        let _ = Inspector::new().inspect(&pkt(&x, link));
    }

    /// IPv6 with arbitrary extension-header chains (routing, options, fragment; lengths and
    /// contents random, possibly truncated): no panic, same length, and every checksum
    /// verdict (over whatever final destination the chain names) is the same after.
    #[test]
    fn arbitrary_ipv6_extension_chains(
        kinds in proptest::collection::vec(prop_oneof![Just(0u8), Just(43), Just(60), Just(44)], 1..7),
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 6..40), 7),
        cut in 0usize..400,
    ) {
        let mut exts = Vec::new();
        for (i, k) in kinds.iter().enumerate() {
            let next = kinds.get(i + 1).copied().unwrap_or(17);
            let mut b = bodies[i].clone();
            if *k == 44 {
                b.truncate(6);
                b[0] = 0;
                b[1] = 0; // first fragment, offset 0, so the UDP header follows
                exts.extend_from_slice(&[next, 0]);
                exts.extend_from_slice(&b);
                continue;
            }
            let len8 = b.len().div_ceil(8) * 8;
            b.resize(len8 + 6, 0);
            exts.extend_from_slice(&[next, (len8 / 8) as u8]);
            exts.extend_from_slice(&b);
        }
        // The checksum's pseudo-header destination, as our walk defines it.
        let mut f = udp6(kinds[0], &exts, v6(2), b"data");
        let mut s = Sanitizer::new(&anon_only(), &[8u8; 32]);
        let whole = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
        prop_assert_eq!(whole.len(), f.len());
        prop_assert_eq!(bad(&whole), bad(&f));
        f.truncate(cut.min(f.len()));
        let mut s = Sanitizer::new(&SanitizeConfig { dedup: None, ..all() }, &[8u8; 32]);
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
        prop_assert_eq!(out.len(), f.len());
    }

    /// Arbitrary DNS payloads (random counts, names, pointers and lengths, with the real
    /// response's bytes as a start) with addresses rewritten: no panic, and the UDP
    /// checksum stays right.
    #[test]
    fn arbitrary_dns_messages(tail in proptest::collection::vec(any::<u8>(), 0..120), cut in 0usize..90, flip in any::<(usize, u8)>()) {
        let mut msg = dns_response();
        msg.truncate(cut.min(msg.len()));
        msg.extend_from_slice(&tail);
        if !msg.is_empty() {
            let i = flip.0 % msg.len();
            msg[i] ^= flip.1;
        }
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([192, 0, 2, 53], [192, 0, 2, 7], 64)
            .udp(53, 40000);
        let mut f = Vec::new();
        b.write(&mut f, &msg).unwrap();
        let mut s = Sanitizer::new(&anon_only(), &[7u8; 32]);
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
        prop_assert_eq!(out.len(), f.len());
        prop_assert_eq!(bad(&out).0, 0);
    }

    /// Well-formed TCP/IPv4 frames with any payload keep valid checksums.
    #[test]
    fn valid_checksums_survive(payload in proptest::collection::vec(any::<u8>(), 0..200), key in any::<[u8; 32]>()) {
        let f = tcp_frame(&payload);
        let mut s = Sanitizer::new(&all(), &key);
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
        prop_assert_eq!(bad(&out).0, 0);
    }
}
