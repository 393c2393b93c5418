//! Encapsulations and tunnels, frame by frame (built here byte by byte), and the invariants of
//! [`decode_all`]. tshark's verdict on the same kinds of frames is checked by the CLI tests
//! (`crates/cli/tests/encap_tshark.rs`).

use super::*;
use proptest::prelude::*;

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

/// An IPv4 header (no options, checksum left 0: the decoder does not check it) and payload.
fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

/// A TCP segment (20-byte header, ACK|PSH) from port 40000 to 80 with `data`.
fn tcp(data: &[u8]) -> Vec<u8> {
    let mut t = vec![
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ];
    t.extend_from_slice(data);
    t
}

/// The inner packet every test looks for: 10.0.0.1:40000 → 10.0.0.2:80, TCP, "GET".
fn inner_ip() -> Vec<u8> {
    ipv4(6, CLIENT, SERVER, &tcp(b"GET"))
}

fn udp(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sp.to_be_bytes());
    u.extend_from_slice(&dp.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn eth(et: u16, payload: &[u8]) -> Vec<u8> {
    let mut e = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    e.extend_from_slice(&et.to_be_bytes());
    e.extend_from_slice(payload);
    e
}

/// Outer Ethernet + IPv4 between two tunnel endpoints carrying `proto`.
fn outer(proto: u8, payload: &[u8]) -> Vec<u8> {
    eth(
        0x0800,
        &ipv4(proto, [192, 0, 2, 1], [192, 0, 2, 2], payload),
    )
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Asserts that the innermost view is the inner TCP packet and returns it.
#[track_caller]
fn assert_inner(frame: &[u8], link: LinkType, tunnel: Tunnel) -> PacketView {
    let d = decode_all(frame, link, None);
    let v = *d.innermost();
    assert_eq!(v.status, DecodeStatus::Complete, "{v:?}");
    assert_eq!((v.proto, v.src_port, v.dst_port), (6, 40000, 80), "{v:?}");
    assert_eq!(v.ip.unwrap().src, std::net::IpAddr::from(CLIENT));
    assert_eq!(v.payload(frame), b"GET");
    assert_eq!(v.tunnel, tunnel);
    assert_eq!(d.inner.is_some(), tunnel != Tunnel::None);
    assert_eq!(
        d.outer,
        decode(frame, link, None, &DecodeOptions { inner: false })
    );
    assert_eq!(v, decode(frame, link, None, &DecodeOptions { inner: true }));
    v
}

#[test]
fn gre_transparent_ethernet_bridging() {
    let f = outer(47, &cat(&[&[0, 0, 0x65, 0x58], &eth(0x0800, &inner_ip())]));
    let v = assert_inner(&f, LinkType::ETHERNET, Tunnel::Gre);
    assert_eq!(v.outer_l3_offset, 14);
    // Outside, the packet is GRE between the endpoints.
    let o = decode_all(&f, LinkType::ETHERNET, None).outer;
    assert_eq!((o.proto, o.tunnel), (47, Tunnel::None));
}

#[test]
fn erspan_types_one_two_three() {
    let mirrored = eth(0x0800, &inner_ip());
    // Type I: GRE without a sequence number, the frame right after it.
    let t1 = outer(47, &cat(&[&[0x00, 0x00, 0x88, 0xbe], &mirrored]));
    assert_inner(&t1, LinkType::ETHERNET, Tunnel::Erspan);
    // Type II: GRE with a sequence number, then 8 bytes (version 1, VLAN, session, index).
    let t2 = outer(
        47,
        &cat(&[
            &[0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 7],
            &[0x10, 0x64, 0x00, 0x05, 0, 0, 0, 1],
            &mirrored,
        ]),
    );
    assert_inner(&t2, LinkType::ETHERNET, Tunnel::Erspan);
    // Type III: 12 bytes (version 2, frame type 0), plus 8 when the O bit is set.
    let t3 = |o_bit: u8, extra: &[u8]| {
        outer(
            47,
            &cat(&[
                &[0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 9],
                &[0x20, 0, 0, 5, 1, 2, 3, 4, 0, 0, 0, o_bit],
                extra,
                &mirrored,
            ]),
        )
    };
    assert_inner(&t3(0, &[]), LinkType::ETHERNET, Tunnel::Erspan);
    assert_inner(&t3(1, &[9; 8]), LinkType::ETHERNET, Tunnel::Erspan);
    // A wrong ERSPAN version is no tunnel: the outer view stays.
    let mut bad = t2.clone();
    bad[14 + 20 + 8] = 0x70;
    let d = decode_all(&bad, LinkType::ETHERNET, None);
    assert_eq!((d.inner, d.outer.proto), (None, 47));
}

#[test]
fn nested_geneve_ip_gre_ip() {
    let gre = ipv4(
        47,
        [172, 16, 0, 1],
        [172, 16, 0, 2],
        &cat(&[&[0, 0, 8, 0], &inner_ip()]),
    );
    let geneve = cat(&[&[0x00, 0x00, 0x08, 0x00, 0, 0, 1, 0], &gre]);
    let f = outer(17, &udp(5000, 6081, &geneve));
    let v = assert_inner(&f, LinkType::ETHERNET, Tunnel::Geneve);
    assert_eq!(v.outer_l3_offset, 14);
    // Five levels deep is past the bound: the fourth level is the innermost decoded.
    let mut p = inner_ip();
    for _ in 0..5 {
        p = ipv4(4, [172, 16, 0, 9], [172, 16, 0, 8], &p);
    }
    let v = *decode_all(&eth(0x0800, &p), LinkType::ETHERNET, None).innermost();
    assert_eq!((v.proto, v.tunnel), (4, Tunnel::IpInIp));
}

#[test]
fn vxlan_looks_only_at_the_i_flag_and_either_port() {
    let inner = eth(0x0800, &inner_ip());
    for hdr in [
        [0x08u8, 0, 0, 0, 0, 0, 42, 0],
        [0xff; 8],
        [0x0c, 0, 0, 3, 0, 0, 0, 0],
    ] {
        for (sp, dp) in [(5000, 4789), (4789, 5000)] {
            let f = outer(17, &udp(sp, dp, &cat(&[&hdr, &inner])));
            assert_inner(&f, LinkType::ETHERNET, Tunnel::Vxlan);
        }
    }
    // Without the I flag it is not VXLAN.
    let f = outer(17, &udp(5000, 4789, &cat(&[&[0xf7; 8], &inner])));
    assert_eq!(decode_all(&f, LinkType::ETHERNET, None).inner, None);
}

#[test]
fn pppoe_session_and_ppp_link_types() {
    let ip = inner_ip();
    let mut pppoe = vec![0x11, 0x00, 0x12, 0x34];
    pppoe.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    pppoe.extend_from_slice(&[0x00, 0x21]);
    pppoe.extend_from_slice(&ip);
    assert_inner(&eth(0x8864, &pppoe), LinkType::ETHERNET, Tunnel::None);
    assert_inner(&pppoe, LinkType::PPP_ETHER, Tunnel::None);
    let ppp = cat(&[&[0xff, 0x03, 0x00, 0x21], &ip]);
    assert_inner(&ppp, LinkType::PPP, Tunnel::None);
    assert_inner(&ppp, LinkType::PPP_HDLC, Tunnel::None);
    assert_inner(&cat(&[&[1], &ppp]), LinkType::PPP_WITH_DIR, Tunnel::None);
    // Protocol field compression: one byte, address and control omitted.
    assert_inner(&cat(&[&[0x21], &ip]), LinkType::PPP, Tunnel::None);
    // LCP is not IP: decoding stops there and names the PPP protocol.
    let lcp = decode(
        &[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4],
        LinkType::PPP,
        None,
        &Default::default(),
    );
    assert_eq!(
        (lcp.status, lcp.l3),
        (DecodeStatus::Complete, L3Proto::Other(0xc021))
    );
    // PPP then MPLS with two labels.
    let mpls = cat(&[&[0xff, 0x03, 0x02, 0x81], &[0, 1, 0, 64, 0, 2, 1, 64], &ip]);
    assert_eq!(
        assert_inner(&mpls, LinkType::PPP, Tunnel::None).mpls_labels,
        2
    );
}

#[test]
fn cisco_hdlc_etag_macsec_nsh_llc() {
    let ip = inner_ip();
    assert_inner(
        &cat(&[&[0x0f, 0x00, 0x08, 0x00], &ip]),
        LinkType::C_HDLC,
        Tunnel::None,
    );
    assert_inner(
        &cat(&[&[0], &[0x8f, 0x00, 0x08, 0x00], &ip]),
        LinkType::C_HDLC_WITH_DIR,
        Tunnel::None,
    );
    // 802.1BR E-Tag, then a VLAN tag.
    let etag = eth(
        0x893f,
        &cat(&[&[0, 0x10, 0, 0, 0, 0x22, 0x81, 0x00, 0, 7, 8, 0], &ip]),
    );
    assert_eq!(
        assert_inner(&etag, LinkType::ETHERNET, Tunnel::None).vlan,
        Some(7)
    );
    // MACsec with an SCI, neither encrypted nor changed.
    let sci = [0x20, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 0, 1];
    let macsec = eth(0x88e5, &cat(&[&sci[..], &[8, 0], &ip]));
    assert_inner(&macsec, LinkType::ETHERNET, Tunnel::None);
    // NSH (MD type 2, no context headers) carrying IPv4, and carrying Ethernet.
    let nsh = |next: u8, rest: &[u8]| cat(&[&[0x0f, 0xc2, 0x02, next, 0, 0, 1, 0xff], rest]);
    assert_inner(&eth(0x894f, &nsh(1, &ip)), LinkType::ETHERNET, Tunnel::None);
    assert_inner(
        &eth(0x894f, &nsh(3, &eth(0x0800, &ip))),
        LinkType::ETHERNET,
        Tunnel::None,
    );
    // NSH over VXLAN-GPE (P bit, next protocol 4).
    let gpe = cat(&[&[0x0c, 0, 0, 4, 0, 0, 1, 0], &nsh(1, &ip)]);
    assert_inner(
        &outer(17, &udp(5000, 4790, &gpe)),
        LinkType::ETHERNET,
        Tunnel::VxlanGpe,
    );
    // An 802.3 frame with LLC/SNAP carrying IPv4.
    let snap = cat(&[&[0xaa, 0xaa, 0x03, 0, 0, 0, 8, 0], &ip]);
    assert_inner(
        &eth(snap.len() as u16, &snap),
        LinkType::ETHERNET,
        Tunnel::None,
    );
    // Plain LLC (spanning tree) stops with the 802.3 length, as before.
    let stp = decode(
        &eth(38, &[0x42, 0x42, 0x03, 0, 0]),
        LinkType::ETHERNET,
        None,
        &Default::default(),
    );
    assert_eq!(
        (stp.status, stp.l3),
        (DecodeStatus::Complete, L3Proto::Other(38))
    );
}

#[test]
fn cooked_captures_with_odd_protocol_fields() {
    let ip = inner_ip();
    // SLL2 on a GRE device (ARPHRD_IPGRE 778) with protocol 0x6558: an Ethernet frame.
    let mut sll2 = vec![0x65, 0x58, 0, 0, 0, 0, 0, 3, 0x03, 0x0a, 0, 0];
    sll2.extend_from_slice(&[0; 8]);
    sll2.extend_from_slice(&eth(0x0800, &ip));
    assert_inner(&sll2, LinkType::LINUX_SLL2, Tunnel::None);
    // SLL v1 with Linux's 0x0004 (an 802.2 LLC frame) carrying SNAP and IPv4.
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x00, 0x04];
    sll.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 8, 0]);
    sll.extend_from_slice(&ip);
    assert_inner(&sll, LinkType::LINUX_SLL, Tunnel::None);
}

#[test]
fn qinq_and_label_stacks() {
    let ip = inner_ip();
    let q = eth(
        0x88a8,
        &cat(&[&[0, 100, 0x81, 0x00], &[0, 200, 0x08, 0x00], &ip]),
    );
    let v = assert_inner(&q, LinkType::ETHERNET, Tunnel::None);
    assert_eq!(
        (v.vlan, v.inner_vlan, v.vlan_count),
        (Some(100), Some(200), 2)
    );
    let labels = [0, 1, 0, 64, 0, 2, 0, 64, 0, 3, 0, 64, 0, 4, 1, 64];
    let m = eth(0x8847, &cat(&[&labels, &ip]));
    assert_eq!(
        assert_inner(&m, LinkType::ETHERNET, Tunnel::None).mpls_labels,
        4
    );
    // MPLS over UDP (RFC 7510).
    let f = outer(17, &udp(5000, 6635, &cat(&[&labels[12..], &ip])));
    assert_inner(&f, LinkType::ETHERNET, Tunnel::MplsUdp);
}

#[test]
fn other_link_types() {
    let ip = inner_ip();
    // ARCNET, Linux header, RFC 1201 IP (8 bytes) and RFC 1051 IP (5 bytes).
    assert_inner(
        &cat(&[&[1, 2, 0, 0, 0xd4, 0, 0, 1], &ip]),
        LinkType::ARCNET_LINUX,
        Tunnel::None,
    );
    assert_inner(
        &cat(&[&[1, 2, 0, 0, 0xf0], &ip]),
        LinkType::ARCNET_LINUX,
        Tunnel::None,
    );
    // IP over InfiniBand: two 20-byte addresses, the EtherType, 2 reserved bytes.
    let mut ib = vec![0; 40];
    ib.extend_from_slice(&[8, 0, 0, 0]);
    ib.extend_from_slice(&ip);
    assert_inner(&ib, LinkType::IPOIB, Tunnel::None);
    // NFLOG: header, a packet-header TLV, then the payload TLV.
    let mut nf = vec![2, 0, 0, 0, 8, 0, 1, 0, 8, 0, 1, 0];
    nf.extend_from_slice(&((4 + ip.len()) as u16).to_le_bytes());
    nf.extend_from_slice(&[9, 0]);
    nf.extend_from_slice(&ip);
    assert_inner(&nf, LinkType::NFLOG, Tunnel::None);
    // Juniper Ethernet with a 4-byte extension.
    let j = cat(&[b"MGC", &[0x80, 0, 4, 1, 2, 3, 4], &eth(0x0800, &ip)]);
    assert_inner(&j, LinkType::JUNIPER_ETHER, Tunnel::None);
    // PKTAP naming Ethernet.
    let mut pk = vec![0u8; 108];
    pk[..4].copy_from_slice(&108u32.to_le_bytes());
    pk[4] = 1;
    pk[8] = 1;
    pk.extend_from_slice(&eth(0x0800, &ip));
    assert_inner(&pk, LinkType::PKTAP, Tunnel::None);
    assert_inner(&pk, LinkType::USER2, Tunnel::None);
    // A PKTAP naming PKTAP is refused.
    pk[8] = 2;
    pk[9] = 1;
    assert_eq!(
        decode(&pk, LinkType::PKTAP, None, &Default::default()).status,
        DecodeStatus::Malformed(Layer::Link)
    );
    // A raw IPv4 link carrying IPv6 is read as IPv6 (as Wireshark does).
    let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
    v6.extend_from_slice(&[1; 32]);
    v6.extend_from_slice(&udp(1, 2, b""));
    assert_eq!(
        decode(&v6, LinkType::IPV4, None, &Default::default()).l3,
        L3Proto::Ipv6
    );
}

#[test]
fn pim_register_and_wccp() {
    let f = outer(103, &cat(&[&[0x21, 0, 0, 0, 0, 0, 0, 0], &inner_ip()]));
    assert_inner(&f, LinkType::ETHERNET, Tunnel::PimRegister);
    for redirect in [&[0x00, 0x00, 0x00, 0x00][..], &[]] {
        let f = outer(47, &cat(&[&[0, 0, 0x88, 0x3e], redirect, &inner_ip()]));
        assert_inner(&f, LinkType::ETHERNET, Tunnel::Gre);
    }
    // PPTP's enhanced GRE (version 1, key, sequence number) carrying PPP.
    let pptp = cat(&[
        &[
            0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 7, 0, 0, 0, 1, 0xff, 0x03, 0, 0x21,
        ],
        &inner_ip(),
    ]);
    assert_inner(&outer(47, &pptp), LinkType::ETHERNET, Tunnel::Gre);
}

/// Frames built from random layers (links, shims, tunnels, nesting), then maybe cut or
/// changed at one byte: the walk must agree with itself whichever way it is asked.
fn arb_encapsulated() -> impl Strategy<Value = (Vec<u8>, u16)> {
    let layer = prop_oneof![
        Just(0u8),
        Just(1),
        Just(2),
        Just(3),
        Just(4),
        Just(5),
        Just(6),
        Just(7),
        Just(8),
        Just(9)
    ];
    (
        proptest::collection::vec(layer, 0..5),
        prop_oneof![Just(1u16), Just(9), Just(104), Just(51), Just(276)],
        any::<usize>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(layers, link, at, byte, cut)| {
            let mut p = inner_ip();
            for l in layers {
                p = match l {
                    0 => outer(47, &cat(&[&[0, 0, 0x65, 0x58], &eth(0x0800, &p)]))[14..].to_vec(),
                    1 => outer(
                        17,
                        &udp(
                            1,
                            4789,
                            &cat(&[&[8, 0, 0, 0, 0, 0, 1, 0], &eth(0x0800, &p)]),
                        ),
                    )[14..]
                        .to_vec(),
                    2 => outer(17, &udp(1, 6081, &cat(&[&[0, 0, 8, 0, 0, 0, 1, 0], &p])))[14..]
                        .to_vec(),
                    3 => outer(
                        47,
                        &cat(&[
                            &[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 1, 0, 0, 0, 0],
                            &eth(0x0800, &p),
                        ]),
                    )[14..]
                        .to_vec(),
                    4 => ipv4(4, [1, 1, 1, 1], [2, 2, 2, 2], &p),
                    5 => outer(17, &udp(1, 4790, &cat(&[&[0x0c, 0, 0, 1, 0, 0, 1, 0], &p])))[14..]
                        .to_vec(),
                    6 => outer(103, &cat(&[&[0x21, 0, 0, 0, 0, 0, 0, 0], &p]))[14..].to_vec(),
                    7 => outer(
                        47,
                        &cat(&[&[0, 0, 0x89, 0x4f, 0x0f, 0xc2, 2, 1, 0, 0, 1, 0xff], &p]),
                    )[14..]
                        .to_vec(),
                    8 => outer(17, &udp(1, 6635, &cat(&[&[0, 1, 1, 64], &p])))[14..].to_vec(),
                    _ => outer(
                        47,
                        &cat(&[
                            &[0, 0, 0x22, 0xeb, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                            &eth(0x0800, &p),
                        ]),
                    )[14..]
                        .to_vec(),
                };
            }
            let mut f = match link {
                1 => eth(0x0800, &p),
                9 => cat(&[&[0xff, 0x03, 0, 0x21], &p]),
                104 => cat(&[&[0x0f, 0, 8, 0], &p]),
                51 => cat(&[&[0x11, 0, 0, 1, 0, 0, 0, 0x21], &p]),
                _ => cat(&[
                    &[8, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0],
                    &p,
                ]),
            };
            if !f.is_empty() {
                let i = at % f.len();
                if cut {
                    f.truncate(i);
                } else {
                    f[i] = byte;
                }
            }
            (f, link)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn decode_all_equals_both_decodes(
        (frame, link) in arb_encapsulated(),
        tci in proptest::option::of(any::<u16>()),
    ) {
        let link = LinkType(link);
        let d = decode_all(&frame, link, tci);
        prop_assert_eq!(d.outer, decode(&frame, link, tci, &DecodeOptions { inner: false }));
        prop_assert_eq!(*d.view(true), decode(&frame, link, tci, &DecodeOptions { inner: true }));
        prop_assert_eq!(*d.view(false), d.outer);
        if let Some(i) = d.inner {
            prop_assert!(i.tunnel != Tunnel::None && i.ip.is_some());
            prop_assert_eq!(i.outer_l3_offset, d.outer.l3_offset);
        }
        for v in [d.outer, *d.innermost()] {
            prop_assert!(v.payload_offset as usize + v.payload_len as usize <= frame.len());
            prop_assert!(v.l4_offset as usize <= frame.len() && v.l3_offset as usize <= frame.len());
        }
    }

    #[test]
    fn any_bytes_on_any_link_type_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..160),
        link in prop_oneof![
            Just(7u16), Just(9), Just(50), Just(51), Just(104), Just(129), Just(149), Just(178),
            Just(204), Just(205), Just(239), Just(242), Just(258), Just(113), Just(276), Just(1)
        ],
    ) {
        let d = decode_all(&data, LinkType(link), None);
        for v in [d.outer, *d.innermost()] {
            prop_assert!(v.payload_offset as usize + v.payload_len as usize <= data.len());
            prop_assert!(v.l3_offset as usize <= data.len());
        }
        prop_assert_eq!(*d.view(true), decode(&data, LinkType(link), None, &DecodeOptions { inner: true }));
    }
}
