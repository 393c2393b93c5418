//! Zero-copy, allocation-free decoding of one captured frame into a [`PacketView`]: the layer
//! offsets and the flow 5-tuple, ready for the flow engine.
//!
//! The standard headers (IPv4, IPv6 and its extension headers, TCP, UDP) are read through
//! `etherparse`'s slicing parsers; this module walks the layers around them: link types,
//! stacked VLAN tags, MPLS, and GRE/VXLAN/GENEVE/IP-in-IP tunnels. Decoding never fails: it
//! stops at the first layer it cannot read and says why in [`PacketView::status`].

use crate::{IpPair, LinkType};
use etherparse::{
    IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Options for [`decode`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeOptions {
    /// Decode the packet inside GRE, VXLAN, GENEVE and IP-in-IP tunnels and describe that inner
    /// packet (the outer header offset stays available in [`PacketView::outer_l3_offset`]).
    pub inner: bool,
}

/// A protocol layer, used to say where decoding stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Link-layer header (Ethernet, SLL, SLL2, NULL/LOOP).
    Link,
    /// 802.1Q / 802.1ad tag.
    Vlan,
    /// MPLS label stack.
    Mpls,
    /// IPv4 header.
    Ipv4,
    /// IPv6 header.
    Ipv6,
    /// IPv6 extension header (hop-by-hop, routing, fragment, destination options, AH).
    Ipv6Ext,
    /// TCP header.
    Tcp,
    /// UDP header.
    Udp,
    /// ICMP or ICMPv6 header.
    Icmp,
    /// Another transport header with ports (SCTP, DCCP, UDP-Lite).
    Transport,
    /// GRE, VXLAN or GENEVE header.
    Tunnel,
}

impl Layer {
    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Vlan => "vlan",
            Layer::Mpls => "mpls",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Ipv6Ext => "ipv6-ext",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Icmp => "icmp",
            Layer::Transport => "transport",
            Layer::Tunnel => "tunnel",
        }
    }
}

/// How far decoding got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecodeStatus {
    /// Every layer this decoder knows was read.
    #[default]
    Complete,
    /// The captured bytes end inside a header of this layer.
    Truncated(Layer),
    /// A header of this layer is inconsistent (bad version, length field too small, ...).
    Malformed(Layer),
    /// The link type is not one this decoder understands.
    Undecoded,
}

/// The network-layer protocol found after the link headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum L3Proto {
    /// Nothing was found (undecoded link type or truncated link header).
    #[default]
    None,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// ARP (offset of the ARP header in `l3_offset`).
    Arp,
    /// Any other EtherType (or an LLC frame, reported as its 802.3 length).
    Other(u16),
}

/// IP fragmentation state of the packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fragment {
    /// Not a fragment.
    #[default]
    None,
    /// First fragment: carries the transport header.
    First,
    /// A later fragment: no transport header; ports are unknown.
    Later,
}

/// The outermost tunnel the packet travels in, when decoded with `inner`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tunnel {
    /// Not tunnelled (or tunnels not decoded).
    #[default]
    None,
    /// GRE (version 0), including transparent Ethernet bridging.
    Gre,
    /// VXLAN (UDP port 4789).
    Vxlan,
    /// GENEVE (UDP port 6081).
    Geneve,
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (protocols 4 and 41).
    IpInIp,
}

/// TCP header flags (the low 8 bits of the flags field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field significant.
    pub const URG: u8 = 0x20;
    /// ECN-Echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;

    /// True when all bits of `mask` are set.
    #[inline]
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// Flags as the letters tcpdump/Zeek use, in the order `CEUAPRSF`.
    pub fn letters(self) -> String {
        let mut out = Vec::with_capacity(8);
        self.push_letters(&mut out);
        // The letters are ASCII.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the letters of [`TcpFlags::letters`] to `out`, without a `String`.
    pub fn push_letters(self, out: &mut Vec<u8>) {
        const L: [(u8, u8); 8] = [
            (TcpFlags::CWR, b'C'),
            (TcpFlags::ECE, b'E'),
            (TcpFlags::URG, b'U'),
            (TcpFlags::ACK, b'A'),
            (TcpFlags::PSH, b'P'),
            (TcpFlags::RST, b'R'),
            (TcpFlags::SYN, b'S'),
            (TcpFlags::FIN, b'F'),
        ];
        out.extend(L.iter().filter(|(b, _)| self.0 & b != 0).map(|(_, c)| *c));
    }
}

/// IP protocol numbers the decoder acts on.
pub mod ip_proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulation.
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation.
    pub const IPV6: u8 = 41;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// DCCP.
    pub const DCCP: u8 = 33;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;
}

/// EtherTypes the decoder acts on.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// Transparent Ethernet bridging (GRE, GENEVE).
    pub const TEB: u16 = 0x6558;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IPv6.
    pub const IPV6: u16 = 0x86DD;
    /// MPLS unicast.
    pub const MPLS: u16 = 0x8847;
    /// MPLS multicast.
    pub const MPLS_MC: u16 = 0x8848;
    /// 802.1ad service VLAN tag.
    pub const QINQ: u16 = 0x88A8;
    /// Old pre-standard QinQ tag.
    pub const QINQ_OLD: u16 = 0x9100;
}

/// The result of decoding one frame: layer offsets, the 5-tuple and a few header fields.
///
/// Offsets are from the start of the captured bytes; `0` in `l4_offset` means "no transport
/// header". Lengths never exceed the captured bytes, and IP padding (e.g. Ethernet minimum frame
/// padding) is excluded from the payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketView {
    /// How far decoding got.
    pub status: DecodeStatus,
    /// Network-layer protocol.
    pub l3: L3Proto,
    /// Outermost VLAN id (a kernel-stripped tag counts first).
    pub vlan: Option<u16>,
    /// Second VLAN id of a QinQ stack.
    pub inner_vlan: Option<u16>,
    /// Number of VLAN tags seen (including a kernel-stripped one).
    pub vlan_count: u8,
    /// Number of MPLS labels seen.
    pub mpls_labels: u8,
    /// Offset of the network header (IP or ARP).
    pub l3_offset: u32,
    /// IP packet length on the wire: IPv4 total length or 40 + IPv6 payload length (the captured
    /// length when the header says 0, as with TSO or jumbograms).
    pub ip_len: u32,
    /// Source and destination addresses when `l3` is IPv4 or IPv6.
    pub ip: Option<IpPair>,
    /// Transport protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Fragmentation state.
    pub fragment: Fragment,
    /// IPv4 identification or IPv6 fragment identification (fragments only).
    pub frag_id: u32,
    /// Offset of the transport header, 0 when there is none.
    pub l4_offset: u32,
    /// TCP/UDP source port.
    pub src_port: u16,
    /// TCP/UDP destination port.
    pub dst_port: u16,
    /// TCP flags.
    pub tcp_flags: TcpFlags,
    /// TCP sequence number.
    pub tcp_seq: u32,
    /// TCP acknowledgment number.
    pub tcp_ack: u32,
    /// ICMP/ICMPv6 type.
    pub icmp_type: u8,
    /// ICMP/ICMPv6 code.
    pub icmp_code: u8,
    /// Offset of the transport payload.
    pub payload_offset: u32,
    /// Captured transport payload bytes (within the IP length, so never padding).
    pub payload_len: u32,
    /// The outermost tunnel when the inner packet was decoded.
    pub tunnel: Tunnel,
    /// Offset of the outermost IP header when `tunnel` is set.
    pub outer_l3_offset: u32,
}

impl PacketView {
    /// True when the packet has an IP layer.
    #[inline]
    pub fn is_ip(&self) -> bool {
        self.ip.is_some()
    }

    /// The transport payload bytes within `data` (the same bytes that were decoded).
    #[inline]
    pub fn payload<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let s = self.payload_offset as usize;
        data.get(s..s + self.payload_len as usize).unwrap_or(&[])
    }
}

const MAX_TUNNEL_DEPTH: u8 = 3;
const MAX_IPV6_EXT: usize = 16;

/// Decodes one frame. `vlan_tci` is a tag the kernel stripped from the frame (live capture).
///
/// Never panics and never allocates, whatever the bytes.
pub fn decode(
    data: &[u8],
    link: LinkType,
    vlan_tci: Option<u16>,
    opts: &DecodeOptions,
) -> PacketView {
    let mut v = PacketView::default();
    if let Some(tci) = vlan_tci {
        push_vlan(&mut v, tci & 0x0fff);
    }
    decode_link(data, link, &mut v, opts, 0);
    v
}

fn push_vlan(v: &mut PacketView, id: u16) {
    if v.vlan.is_none() {
        v.vlan = Some(id);
    } else if v.inner_vlan.is_none() {
        v.inner_vlan = Some(id);
    }
    v.vlan_count = v.vlan_count.saturating_add(1);
}

#[inline]
fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

#[inline]
fn be32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn decode_link(data: &[u8], link: LinkType, v: &mut PacketView, opts: &DecodeOptions, depth: u8) {
    match link {
        LinkType::ETHERNET => decode_ethernet(data, 0, v, opts, depth),
        LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 => match data.first().map(|b| b >> 4) {
            Some(4) => decode_ipv4(data, 0, v, opts, depth),
            Some(6) => decode_ipv6(data, 0, v, opts, depth),
            Some(_) => v.status = DecodeStatus::Malformed(Layer::Link),
            None => v.status = DecodeStatus::Truncated(Layer::Link),
        },
        LinkType::IPV4 => decode_ipv4(data, 0, v, opts, depth),
        LinkType::IPV6 => decode_ipv6(data, 0, v, opts, depth),
        LinkType::NULL | LinkType::LOOP => {
            let Some(b) = data.get(0..4) else {
                v.status = DecodeStatus::Truncated(Layer::Link);
                return;
            };
            // The family is in the capturing host's byte order for NULL, big-endian for LOOP;
            // families are small numbers, so the non-zero end tells the order.
            let fam = if b[0] == 0 && b[1] == 0 {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            } else {
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            };
            match fam {
                2 => decode_ipv4(data, 4, v, opts, depth),
                // AF_INET6 differs per BSD: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS), 10 (Linux).
                10 | 24 | 28 | 30 => decode_ipv6(data, 4, v, opts, depth),
                other => v.l3 = L3Proto::Other(other as u16),
            }
        }
        LinkType::LINUX_SLL => match be16(data, 14) {
            Some(proto) if data.len() >= 16 => decode_ethertype(data, 16, proto, v, opts, depth),
            _ => v.status = DecodeStatus::Truncated(Layer::Link),
        },
        LinkType::LINUX_SLL2 => match be16(data, 0) {
            Some(proto) if data.len() >= 20 => decode_ethertype(data, 20, proto, v, opts, depth),
            _ => v.status = DecodeStatus::Truncated(Layer::Link),
        },
        _ => v.status = DecodeStatus::Undecoded,
    }
}

fn decode_ethernet(data: &[u8], at: usize, v: &mut PacketView, opts: &DecodeOptions, depth: u8) {
    match be16(data, at + 12) {
        Some(et) => decode_ethertype(data, at + 14, et, v, opts, depth),
        None => v.status = DecodeStatus::Truncated(Layer::Link),
    }
}

fn decode_ethertype(
    data: &[u8],
    mut at: usize,
    mut et: u16,
    v: &mut PacketView,
    opts: &DecodeOptions,
    depth: u8,
) {
    // VLAN tags, any depth (bounded by the frame length).
    while matches!(et, ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD) {
        let (Some(tci), Some(next)) = (be16(data, at), be16(data, at + 2)) else {
            v.status = DecodeStatus::Truncated(Layer::Vlan);
            return;
        };
        push_vlan(v, tci & 0x0fff);
        et = next;
        at += 4;
    }
    match et {
        ethertype::IPV4 => decode_ipv4(data, at, v, opts, depth),
        ethertype::IPV6 => decode_ipv6(data, at, v, opts, depth),
        ethertype::ARP => {
            v.l3 = L3Proto::Arp;
            v.l3_offset = at as u32;
        }
        ethertype::MPLS | ethertype::MPLS_MC => decode_mpls(data, at, v, opts, depth),
        other => v.l3 = L3Proto::Other(other),
    }
}

fn decode_mpls(data: &[u8], mut at: usize, v: &mut PacketView, opts: &DecodeOptions, depth: u8) {
    loop {
        let Some(entry) = be32(data, at) else {
            v.status = DecodeStatus::Truncated(Layer::Mpls);
            return;
        };
        v.mpls_labels = v.mpls_labels.saturating_add(1);
        at += 4;
        if entry & 0x100 != 0 {
            break;
        }
    }
    // No protocol field after the stack: guess from the first nibble, as tcpdump and Wireshark do.
    match data.get(at).map(|b| b >> 4) {
        Some(4) => decode_ipv4(data, at, v, opts, depth),
        Some(6) => decode_ipv6(data, at, v, opts, depth),
        Some(_) => v.l3 = L3Proto::Other(ethertype::MPLS),
        None => v.status = DecodeStatus::Truncated(Layer::Mpls),
    }
}

fn decode_ipv4(data: &[u8], at: usize, v: &mut PacketView, opts: &DecodeOptions, depth: u8) {
    let rest = data.get(at..).unwrap_or(&[]);
    v.l3 = L3Proto::Ipv4;
    v.l3_offset = at as u32;
    let h = match Ipv4HeaderSlice::from_slice(rest) {
        Ok(h) => h,
        Err(etherparse::err::ipv4::HeaderSliceError::Len(_)) => {
            v.status = DecodeStatus::Truncated(Layer::Ipv4);
            return;
        }
        Err(etherparse::err::ipv4::HeaderSliceError::Content(_)) => {
            v.status = DecodeStatus::Malformed(Layer::Ipv4);
            return;
        }
    };
    let hlen = h.slice().len();
    let total = h.total_len() as usize;
    v.ip = Some(IpPair {
        src: IpAddr::V4(Ipv4Addr::from(h.source())),
        dst: IpAddr::V4(Ipv4Addr::from(h.destination())),
    });
    v.proto = h.protocol().0;
    v.ttl = h.ttl();
    let ip_end = if total == 0 {
        // TSO/GSO frames captured before segmentation carry 0 here.
        v.ip_len = rest.len() as u32;
        rest.len()
    } else if total < hlen {
        v.ip_len = total as u32;
        v.status = DecodeStatus::Malformed(Layer::Ipv4);
        return;
    } else {
        v.ip_len = total as u32;
        total.min(rest.len())
    };
    let frag_off = h.fragments_offset().value();
    if h.more_fragments() || frag_off != 0 {
        v.frag_id = h.identification() as u32;
        if frag_off != 0 {
            v.fragment = Fragment::Later;
            v.payload_offset = (at + hlen) as u32;
            v.payload_len = ip_end.saturating_sub(hlen) as u32;
            return;
        }
        v.fragment = Fragment::First;
    }
    decode_l4(data, at + hlen, at + ip_end, v.proto, v, opts, depth);
}

fn decode_ipv6(data: &[u8], at: usize, v: &mut PacketView, opts: &DecodeOptions, depth: u8) {
    let rest = data.get(at..).unwrap_or(&[]);
    v.l3 = L3Proto::Ipv6;
    v.l3_offset = at as u32;
    let h = match Ipv6HeaderSlice::from_slice(rest) {
        Ok(h) => h,
        Err(etherparse::err::ipv6::HeaderSliceError::Len(_)) => {
            v.status = DecodeStatus::Truncated(Layer::Ipv6);
            return;
        }
        Err(etherparse::err::ipv6::HeaderSliceError::Content(_)) => {
            v.status = DecodeStatus::Malformed(Layer::Ipv6);
            return;
        }
    };
    v.ip = Some(IpPair {
        src: IpAddr::V6(Ipv6Addr::from(h.source())),
        dst: IpAddr::V6(Ipv6Addr::from(h.destination())),
    });
    v.ttl = h.hop_limit();
    let plen = h.payload_length() as usize;
    let ip_end = if plen == 0 {
        v.ip_len = rest.len() as u32;
        rest.len()
    } else {
        v.ip_len = (40 + plen) as u32;
        (40 + plen).min(rest.len())
    };
    let end = at + ip_end;
    let mut next = h.next_header().0;
    let mut off = at + 40;
    for _ in 0..MAX_IPV6_EXT {
        let ext = data.get(off..end).unwrap_or(&[]);
        match next {
            0 | 43 | 60 | 135 | 139 | 140 => match Ipv6RawExtHeaderSlice::from_slice(ext) {
                Ok(e) => {
                    next = e.next_header().0;
                    off += e.slice().len();
                }
                Err(_) => {
                    v.proto = next;
                    v.status = DecodeStatus::Truncated(Layer::Ipv6Ext);
                    return;
                }
            },
            44 => match Ipv6FragmentHeaderSlice::from_slice(ext) {
                Ok(f) => {
                    next = f.next_header().0;
                    off += 8;
                    if f.is_fragmenting_payload() {
                        v.frag_id = f.identification();
                        if f.fragment_offset().value() != 0 {
                            v.proto = next;
                            v.fragment = Fragment::Later;
                            v.payload_offset = off as u32;
                            v.payload_len = end.saturating_sub(off) as u32;
                            return;
                        }
                        v.fragment = Fragment::First;
                    }
                }
                Err(_) => {
                    v.proto = next;
                    v.status = DecodeStatus::Truncated(Layer::Ipv6Ext);
                    return;
                }
            },
            51 => match IpAuthHeaderSlice::from_slice(ext) {
                Ok(a) => {
                    next = a.next_header().0;
                    off += a.slice().len();
                }
                Err(etherparse::err::ip_auth::HeaderSliceError::Len(_)) => {
                    v.proto = next;
                    v.status = DecodeStatus::Truncated(Layer::Ipv6Ext);
                    return;
                }
                Err(_) => {
                    v.proto = next;
                    v.status = DecodeStatus::Malformed(Layer::Ipv6Ext);
                    return;
                }
            },
            _ => break,
        }
    }
    v.proto = next;
    decode_l4(data, off, end, next, v, opts, depth);
}

fn decode_l4(
    data: &[u8],
    at: usize,
    end: usize,
    proto: u8,
    v: &mut PacketView,
    opts: &DecodeOptions,
    depth: u8,
) {
    let seg = data.get(at..end).unwrap_or(&[]);
    match proto {
        ip_proto::TCP => match TcpHeaderSlice::from_slice(seg) {
            Ok(t) => {
                let hl = t.slice().len();
                v.l4_offset = at as u32;
                v.src_port = t.source_port();
                v.dst_port = t.destination_port();
                v.tcp_seq = t.sequence_number();
                v.tcp_ack = t.acknowledgment_number();
                v.tcp_flags = TcpFlags(t.slice()[13]);
                v.payload_offset = (at + hl) as u32;
                v.payload_len = (seg.len() - hl) as u32;
            }
            Err(etherparse::err::tcp::HeaderSliceError::Len(_)) => {
                v.status = DecodeStatus::Truncated(Layer::Tcp)
            }
            Err(_) => v.status = DecodeStatus::Malformed(Layer::Tcp),
        },
        ip_proto::UDP => match UdpHeaderSlice::from_slice(seg) {
            Ok(u) => {
                v.l4_offset = at as u32;
                v.src_port = u.source_port();
                v.dst_port = u.destination_port();
                v.payload_offset = (at + 8) as u32;
                v.payload_len = (seg.len() - 8) as u32;
                if opts.inner && depth < MAX_TUNNEL_DEPTH {
                    match u.destination_port() {
                        4789 => try_inner(data, at + 8, end, Tunnel::Vxlan, v, opts, depth),
                        6081 => try_inner(data, at + 8, end, Tunnel::Geneve, v, opts, depth),
                        _ => {}
                    }
                }
            }
            Err(_) => v.status = DecodeStatus::Truncated(Layer::Udp),
        },
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            if seg.len() < 4 {
                v.status = DecodeStatus::Truncated(Layer::Icmp);
                return;
            }
            v.l4_offset = at as u32;
            v.icmp_type = seg[0];
            v.icmp_code = seg[1];
            // Echo request/reply and similar carry their payload after an 8-byte header.
            let hl = 8.min(seg.len());
            v.payload_offset = (at + hl) as u32;
            v.payload_len = (seg.len() - hl) as u32;
        }
        // SCTP, DCCP and UDP-Lite start with the two ports, like TCP and UDP.
        ip_proto::SCTP | ip_proto::DCCP | ip_proto::UDPLITE => {
            let hl = match proto {
                ip_proto::SCTP => 12,
                ip_proto::DCCP => seg.get(4).map_or(16, |&o| (o as usize * 4).max(12)),
                _ => 8,
            };
            if seg.len() < 4 {
                v.status = DecodeStatus::Truncated(Layer::Transport);
                return;
            }
            v.l4_offset = at as u32;
            v.src_port = u16::from_be_bytes([seg[0], seg[1]]);
            v.dst_port = u16::from_be_bytes([seg[2], seg[3]]);
            let hl = hl.min(seg.len());
            v.payload_offset = (at + hl) as u32;
            v.payload_len = (seg.len() - hl) as u32;
        }
        ip_proto::GRE if opts.inner && depth < MAX_TUNNEL_DEPTH => {
            try_inner(data, at, end, Tunnel::Gre, v, opts, depth)
        }
        ip_proto::IPIP | ip_proto::IPV6 if opts.inner && depth < MAX_TUNNEL_DEPTH => {
            try_inner(data, at, end, Tunnel::IpInIp, v, opts, depth)
        }
        _ => {
            v.payload_offset = at as u32;
            v.payload_len = seg.len() as u32;
        }
    }
}

/// Decodes the packet inside a tunnel header starting at `at`; the view switches to the inner
/// packet only when an inner IP layer was reached, so a damaged tunnel keeps the outer view.
fn try_inner(
    data: &[u8],
    at: usize,
    end: usize,
    kind: Tunnel,
    v: &mut PacketView,
    opts: &DecodeOptions,
    depth: u8,
) {
    let inner_data = data.get(..end).unwrap_or(data);
    let mut inner = PacketView {
        vlan: v.vlan,
        inner_vlan: v.inner_vlan,
        vlan_count: v.vlan_count,
        ..Default::default()
    };
    let d = depth + 1;
    match kind {
        Tunnel::Vxlan => {
            // 8-byte header with the I flag set, then an Ethernet frame.
            if inner_data.len() < at + 8 || inner_data[at] & 0x08 == 0 {
                return;
            }
            decode_ethernet(inner_data, at + 8, &mut inner, opts, d);
        }
        Tunnel::Geneve => {
            let (Some(b0), Some(proto)) = (inner_data.get(at), be16(inner_data, at + 2)) else {
                return;
            };
            if b0 >> 6 != 0 {
                return;
            }
            let hl = 8 + (b0 & 0x3f) as usize * 4;
            if proto == ethertype::TEB {
                decode_ethernet(inner_data, at + hl, &mut inner, opts, d);
            } else {
                decode_ethertype(inner_data, at + hl, proto, &mut inner, opts, d);
            }
        }
        Tunnel::Gre => {
            let (Some(flags), Some(proto)) = (be16(inner_data, at), be16(inner_data, at + 2))
            else {
                return;
            };
            if flags & 0x7 != 0 {
                return; // only version 0 carries a plain inner packet
            }
            let mut hl = 4;
            if flags & 0x8000 != 0 {
                hl += 4; // checksum + reserved
            }
            if flags & 0x2000 != 0 {
                hl += 4; // key
            }
            if flags & 0x1000 != 0 {
                hl += 4; // sequence number
            }
            if proto == ethertype::TEB {
                decode_ethernet(inner_data, at + hl, &mut inner, opts, d);
            } else {
                decode_ethertype(inner_data, at + hl, proto, &mut inner, opts, d);
            }
        }
        Tunnel::IpInIp => match inner_data.get(at).map(|b| b >> 4) {
            Some(4) => decode_ipv4(inner_data, at, &mut inner, opts, d),
            Some(6) => decode_ipv6(inner_data, at, &mut inner, opts, d),
            _ => return,
        },
        Tunnel::None => return,
    }
    if inner.ip.is_some() {
        let outer = v.l3_offset;
        *v = inner;
        if v.tunnel == Tunnel::None {
            v.tunnel = kind;
        } else {
            // A nested tunnel was found inside; report the outermost kind and offset.
            v.tunnel = kind;
        }
        v.outer_l3_offset = outer;
    }
}

#[cfg(test)]
mod tests;
