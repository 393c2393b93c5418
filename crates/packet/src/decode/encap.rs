//! Encapsulation headers, one function each: the link-layer headers of the link types decoded
//! here, the shim headers between a link layer and IP (PPPoE, PPP, LLC/SNAP, E-Tag, MACsec,
//! NSH) and the tunnel headers that carry a packet or a frame inside IP (GRE, ERSPAN, VXLAN,
//! VXLAN-GPE, GENEVE). Each function reads one header at an offset and says how long it is and
//! what follows it.
//!
//! The decoder walks frames with these functions, and the sanitizer's frame walker uses the
//! same ones, so that both understand the same encapsulations. Every function reads only
//! inside the slice it is given and never panics.

use super::view::{ethertype, ip_proto, Tunnel};
use crate::LinkType;

/// What follows a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// An Ethernet header (destination, source, then an EtherType or an 802.3 length).
    Ethernet,
    /// A payload of this EtherType (VLAN tags, MPLS, PPPoE, E-Tag, NSH are EtherTypes too).
    EtherType(u16),
    /// IPv4 or IPv6, told by the version nibble.
    Ip,
    /// An MPLS label stack.
    Mpls,
    /// A PPP frame: optional address and control bytes, then the protocol field.
    Ppp,
    /// A frame of another link type (inside Apple's PKTAP header).
    Link(LinkType),
    /// Something not decoded here, named by a number in its own space (an EtherType, a PPP
    /// protocol): decoding stops there.
    Other(u16),
}

/// One header: its length from the offset it was read at, and what follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the header.
    pub len: usize,
    /// What comes after it.
    pub next: Next,
}

/// Why a header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// The captured bytes end inside it.
    Truncated,
    /// It is not what it claims (bad version, magic or length field).
    Malformed,
}

/// The result of reading one header.
pub type Read = Result<Step, Bad>;

/// The big-endian 16-bit value at `at`.
#[inline]
pub(crate) fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

#[inline]
fn step(len: usize, next: Next) -> Read {
    Ok(Step { len, next })
}

#[inline]
fn byte(d: &[u8], at: usize) -> Result<u8, Bad> {
    d.get(at).copied().ok_or(Bad::Truncated)
}

#[inline]
fn word(d: &[u8], at: usize) -> Result<u16, Bad> {
    be16(d, at).ok_or(Bad::Truncated)
}

#[inline]
fn need(d: &[u8], end: usize) -> Result<(), Bad> {
    if d.len() >= end {
        Ok(())
    } else {
        Err(Bad::Truncated)
    }
}

/// Linux ARPHRD_ hardware types that change how a cooked (SLL/SLL2) header's protocol field
/// reads.
mod arphrd {
    /// A GRE tunnel device: the protocol field holds a GRE protocol type.
    pub const IPGRE: u16 = 778;
    /// A netlink monitor: the protocol field holds a netlink family.
    pub const NETLINK: u16 = 824;
}

/// The link-layer header of a frame of type `link`. `None` when the link type is not decoded.
pub fn link(d: &[u8], link: LinkType) -> Option<Read> {
    Some(match link {
        LinkType::ETHERNET => step(0, Next::Ethernet),
        // Raw IP (101, and DLT_RAW as written by some BSDs). 228 is declared IPv4, but an IPv6
        // packet there is read as one, as Wireshark does; 229 is IPv6 only.
        LinkType::RAW_12 | LinkType::RAW_14 | LinkType::RAW | LinkType::IPV4 => step(0, Next::Ip),
        LinkType::IPV6 => step(0, Next::EtherType(ethertype::IPV6)),
        LinkType::NULL | LinkType::LOOP => null(d),
        LinkType::LINUX_SLL => sll(d, 2, 14, 16),
        LinkType::LINUX_SLL2 => sll(d, 8, 0, 20),
        LinkType::PPP | LinkType::PPP_HDLC => step(0, Next::Ppp),
        LinkType::PPP_WITH_DIR => need(d, 1).and_then(|_| step(1, Next::Ppp)),
        LinkType::PPP_ETHER => step(0, Next::EtherType(ethertype::PPPOE_SESSION)),
        LinkType::C_HDLC => chdlc(d, 0),
        LinkType::C_HDLC_WITH_DIR => chdlc(d, 1),
        LinkType::ARCNET_LINUX => arcnet(d, true),
        LinkType::ARCNET_BSD => arcnet(d, false),
        LinkType::IPOIB => word(d, 40).map(|et| Step {
            len: 44,
            next: Next::EtherType(et),
        }),
        LinkType::NFLOG => nflog(d),
        LinkType::JUNIPER_ETHER => juniper_ether(d),
        LinkType::PKTAP | LinkType::USER2 => pktap(d),
        _ => return None,
    })
}

/// BSD NULL/LOOP: a 4-byte address family, in the capturing host's byte order for NULL and
/// big-endian for LOOP; families are small numbers, so the non-zero end tells the order.
fn null(d: &[u8]) -> Read {
    let b = d.get(0..4).ok_or(Bad::Truncated)?;
    let fam = if b[0] == 0 && b[1] == 0 {
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    } else {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    };
    step(
        4,
        match fam {
            2 => Next::EtherType(ethertype::IPV4),
            // AF_INET6 differs per system: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS), 10 (Linux).
            10 | 24 | 28 | 30 => Next::EtherType(ethertype::IPV6),
            other => Next::Other(other as u16),
        },
    )
}

/// Linux cooked headers (v1: 16 bytes, v2: 20 bytes), with the ARPHRD_ type at `hatype` and
/// the protocol at `proto`. The protocol is an EtherType, except on GRE devices (a GRE
/// protocol type, so 0x6558 is an Ethernet frame), on netlink monitors (a netlink family)
/// and below 0x0600, where Linux puts its own values (0x0004: an 802.2 LLC frame).
fn sll(d: &[u8], hatype: usize, proto: usize, len: usize) -> Read {
    need(d, len)?;
    let (ha, p) = (word(d, hatype)?, word(d, proto)?);
    step(
        len,
        match (ha, p) {
            (arphrd::NETLINK, _) => Next::Other(p),
            (arphrd::IPGRE, _) => gre_payload(p),
            (_, 0x0004) => Next::EtherType(LLC),
            (_, ethertype::TEB) => Next::Ethernet,
            (_, p) if p < 0x0600 => Next::Other(p),
            (_, p) => Next::EtherType(p),
        },
    )
}

/// Pseudo-EtherType used for "an 802.2 LLC header follows" (any 802.3 length value reads the
/// same way); 0x0004 is Linux's `ETH_P_802_2`.
const LLC: u16 = 0x0004;

/// Cisco HDLC: address, control, then an EtherType (SLARP and CDP are EtherTypes too).
fn chdlc(d: &[u8], at: usize) -> Read {
    word(d, at + 2).map(|et| Step {
        len: at + 4,
        next: Next::EtherType(et),
    })
}

/// ARCNET (Linux and BSD headers): source, destination, [Linux: 2-byte offset,] protocol
/// id; the RFC 1201 protocols then have a split flag and a sequence number (and an exception
/// frame four more bytes), the RFC 1051 ones do not.
fn arcnet(d: &[u8], linux: bool) -> Read {
    let p_at = if linux { 4 } else { 2 };
    let proto = byte(d, p_at)?;
    let mut len = p_at + 1;
    let old = matches!(proto, 0xf0 | 0xf1 | 0x80);
    if !old {
        len += 3;
        if !linux && byte(d, p_at + 1)? == 0xff {
            len += 4;
        }
    }
    need(d, len)?;
    step(
        len,
        match proto {
            0xd4 | 0xf0 => Next::EtherType(ethertype::IPV4),
            0xc4 => Next::EtherType(ethertype::IPV6),
            0xd5 | 0xf1 => Next::EtherType(ethertype::ARP),
            other => Next::Other(other as u16),
        },
    )
}

/// Linux NFLOG: a 4-byte header (family, version, resource id), then TLVs (length and type in
/// the capturing host's byte order, little-endian in practice, padded to 4 bytes); the
/// packet is the payload TLV (type 9).
fn nflog(d: &[u8]) -> Read {
    need(d, 4)?;
    let mut at = 4;
    // Each TLV is at least 4 bytes long, so the walk is bounded by the frame length.
    while at + 4 <= d.len() {
        let len = u16::from_le_bytes([d[at], d[at + 1]]) as usize;
        let ty = u16::from_le_bytes([d[at + 2], d[at + 3]]);
        if len < 4 {
            return Err(Bad::Malformed);
        }
        if ty & 0x7fff == 9 {
            return step(at + 4, Next::Ip);
        }
        at += (len + 3) & !3;
    }
    Err(Bad::Truncated)
}

/// Juniper's Ethernet pseudo-header: magic `MGC`, flags, then (flag 0x80) a 2-byte length and
/// that many extension bytes; an Ethernet frame follows, or an IP packet when flag 0x02 says
/// there is no layer 2 header.
fn juniper_ether(d: &[u8]) -> Read {
    need(d, 4)?;
    if d[..3] != *b"MGC" {
        return Err(Bad::Malformed);
    }
    let flags = d[3];
    let mut len = 4;
    if flags & 0x80 != 0 {
        len += 2 + word(d, 4)? as usize;
    }
    need(d, len)?;
    step(
        len,
        if flags & 0x02 != 0 {
            Next::Ip
        } else {
            Next::Ethernet
        },
    )
}

/// Apple's PKTAP header (also written as link type USER2): its length and the link type of
/// the frame after it, both little-endian. A PKTAP inside a PKTAP is refused.
fn pktap(d: &[u8]) -> Read {
    need(d, 12)?;
    let len = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
    let rec = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
    let inner = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
    if len < 12 || rec != 1 || inner > u16::MAX as u32 {
        return Err(Bad::Malformed);
    }
    need(d, len)?;
    match LinkType(inner as u16) {
        LinkType::PKTAP | LinkType::USER2 => Err(Bad::Malformed),
        l => step(len, Next::Link(l)),
    }
}

/// The shim header of EtherType `et` at `at` (just after the EtherType field): PPPoE
/// session, E-Tag, MACsec, NSH, an 802.2 LLC header, or `None` when `et` is none of these.
pub fn shim(d: &[u8], at: usize, et: u16) -> Option<Read> {
    Some(match et {
        ethertype::PPPOE_SESSION => pppoe(d, at),
        ethertype::ETAG => word(d, at + 6).map(|next| Step {
            len: 8,
            next: Next::EtherType(next),
        }),
        ethertype::MACSEC => macsec(d, at),
        ethertype::NSH => nsh(d, at),
        et if et <= 1500 => Ok(llc(d, at, et)),
        _ => return None,
    })
}

/// PPPoE: version/type 0x11 and code 0 (session data), session id, length; a PPP frame
/// follows.
fn pppoe(d: &[u8], at: usize) -> Read {
    need(d, at + 6)?;
    if d[at] != 0x11 || d[at + 1] != 0 {
        return Err(Bad::Malformed);
    }
    step(6, Next::Ppp)
}

/// A PPP frame's header: the address and control bytes (0xff 0x03) when present, then the
/// protocol, one byte long when its low bit is set (protocol field compression).
pub fn ppp(d: &[u8], at: usize) -> Read {
    let mut len = 0;
    if d.get(at) == Some(&0xff) && d.get(at + 1) == Some(&0x03) {
        len = 2;
    }
    let first = byte(d, at + len)?;
    let proto = if first & 1 == 1 {
        len += 1;
        first as u16
    } else {
        len += 2;
        word(d, at + len - 2)?
    };
    step(len, ppp_next(proto))
}

/// What a PPP protocol number carries.
fn ppp_next(proto: u16) -> Next {
    match proto {
        0x0021 => Next::EtherType(ethertype::IPV4),
        0x0057 => Next::EtherType(ethertype::IPV6),
        0x0281 | 0x0283 => Next::Mpls,
        other => Next::Other(other),
    }
}

/// An 802.2 LLC header after an 802.3 length (or Linux's 0x0004) `et`: SNAP (0xAA 0xAA 0x03)
/// with an EtherType behind an OUI of zero (or 0x0000F8, 802.1H) continues with that
/// EtherType; any other LLC frame, or one cut short, stops decoding as `Other(et)`.
fn llc(d: &[u8], at: usize, et: u16) -> Step {
    match d.get(at..at + 8) {
        Some([0xaa, 0xaa, 0x03, 0, 0, 0 | 0xf8, a, b]) => Step {
            len: 8,
            next: Next::EtherType(u16::from_be_bytes([*a, *b])),
        },
        _ => Step {
            len: 0,
            next: Next::Other(et),
        },
    }
}

/// MACsec's SecTAG (TCI/AN, short length, packet number, an SCI when the SC bit is set), then
/// the EtherType of the protected frame when it is neither encrypted nor changed (E and C
/// bits clear); otherwise decoding stops.
fn macsec(d: &[u8], at: usize) -> Read {
    let tci = byte(d, at)?;
    let len = if tci & 0x20 != 0 { 14 } else { 6 };
    if tci & 0x0c != 0 {
        return step(0, Next::Other(ethertype::MACSEC));
    }
    word(d, at + len).map(|et| Step {
        len: len + 2,
        next: Next::EtherType(et),
    })
}

/// NSH (RFC 8300): version 0, the header length in 4-byte words (at least the base and
/// service path headers), then what the next-protocol field names.
fn nsh(d: &[u8], at: usize) -> Read {
    need(d, at + 8)?;
    let len = (d[at + 1] & 0x3f) as usize * 4;
    if d[at] >> 6 != 0 || len < 8 {
        return Err(Bad::Malformed);
    }
    need(d, at + len)?;
    step(len, gpe_next(d[at + 3]).ok_or(Bad::Malformed)?)
}

/// The next-protocol numbers of NSH and VXLAN-GPE.
fn gpe_next(p: u8) -> Option<Next> {
    Some(match p {
        1 => Next::EtherType(ethertype::IPV4),
        2 => Next::EtherType(ethertype::IPV6),
        3 => Next::Ethernet,
        4 => Next::EtherType(ethertype::NSH),
        5 => Next::Mpls,
        _ => return None,
    })
}

/// What a GRE protocol type (or the protocol of a GRE tunnel device) carries.
fn gre_payload(proto: u16) -> Next {
    match proto {
        ethertype::TEB => Next::Ethernet,
        ethertype::PPP => Next::Ppp,
        p => Next::EtherType(p),
    }
}

/// The kinds of tunnel header a packet can carry, as the decoder spots them (an IP protocol
/// or a UDP port); [`tunnel`] reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelHeader {
    /// GRE (IP protocol 47).
    Gre,
    /// IPv4 or IPv6 directly in IP (protocols 4 and 41).
    IpInIp,
    /// An Ethernet frame directly in IP (protocol 143).
    EthernetInIp,
    /// VXLAN (UDP 4789).
    Vxlan,
    /// VXLAN-GPE (UDP 4790).
    VxlanGpe,
    /// GENEVE (UDP 6081).
    Geneve,
    /// MPLS over UDP (UDP 6635).
    MplsUdp,
    /// A PIM register message (IP protocol 103, type 1) and the packet it carries.
    PimRegister,
}

impl TunnelHeader {
    /// The tunnel header a UDP datagram carries, told by its ports: the destination port
    /// first, then the source port (Wireshark tries both).
    #[inline]
    pub fn udp(src_port: u16, dst_port: u16) -> Option<TunnelHeader> {
        fn by(p: u16) -> Option<TunnelHeader> {
            match p {
                4789 => Some(TunnelHeader::Vxlan),
                4790 => Some(TunnelHeader::VxlanGpe),
                6081 => Some(TunnelHeader::Geneve),
                6635 => Some(TunnelHeader::MplsUdp),
                _ => None,
            }
        }
        // Most datagrams are on none of these ports: one range test each rules them out.
        const PORTS: std::ops::RangeInclusive<u16> = 4789..=6635;
        if !PORTS.contains(&dst_port) && !PORTS.contains(&src_port) {
            return None;
        }
        by(dst_port).or_else(|| by(src_port))
    }

    /// The tunnel header an IP protocol number means.
    #[inline]
    pub fn ip(proto: u8) -> Option<TunnelHeader> {
        match proto {
            ip_proto::GRE => Some(TunnelHeader::Gre),
            ip_proto::IPIP | ip_proto::IPV6 => Some(TunnelHeader::IpInIp),
            ip_proto::ETHERNET => Some(TunnelHeader::EthernetInIp),
            ip_proto::PIM => Some(TunnelHeader::PimRegister),
            _ => None,
        }
    }
}

/// A tunnel header read: which tunnel (GRE carrying ERSPAN says ERSPAN), its length, and what
/// it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelStep {
    /// The tunnel.
    pub kind: Tunnel,
    /// The header (GRE plus its ERSPAN or WCCP header).
    pub step: Step,
}

/// Reads the tunnel header of kind `h` at `at` (the start of the IP payload, or of the UDP
/// payload for UDP tunnels).
pub fn tunnel(d: &[u8], at: usize, h: TunnelHeader) -> Result<TunnelStep, Bad> {
    let (kind, step) = match h {
        TunnelHeader::Gre => return gre(d, at),
        TunnelHeader::IpInIp => (
            Tunnel::IpInIp,
            Step {
                len: 0,
                next: Next::Ip,
            },
        ),
        TunnelHeader::EthernetInIp => (
            Tunnel::IpInIp,
            Step {
                len: 0,
                next: Next::Ethernet,
            },
        ),
        // VXLAN: flags with the I bit (the other bits are reserved or extensions such as
        // group policy, and are not looked at), 24 reserved bits, VNI, 8 reserved bits.
        TunnelHeader::Vxlan => {
            need(d, at + 8)?;
            if d[at] & 0x08 == 0 {
                return Err(Bad::Malformed);
            }
            (
                Tunnel::Vxlan,
                Step {
                    len: 8,
                    next: Next::Ethernet,
                },
            )
        }
        // VXLAN-GPE: version 0; the P bit says a next-protocol field is present, otherwise an
        // Ethernet frame follows as in VXLAN.
        TunnelHeader::VxlanGpe => {
            need(d, at + 8)?;
            let flags = d[at];
            if (flags >> 4) & 3 != 0 {
                return Err(Bad::Malformed);
            }
            let next = if flags & 0x04 != 0 {
                gpe_next(d[at + 3]).ok_or(Bad::Malformed)?
            } else {
                Next::Ethernet
            };
            (Tunnel::VxlanGpe, Step { len: 8, next })
        }
        // GENEVE: version 0, options length in 4-byte words, protocol type.
        TunnelHeader::Geneve => {
            need(d, at + 8)?;
            let b0 = d[at];
            if b0 >> 6 != 0 {
                return Err(Bad::Malformed);
            }
            let len = 8 + (b0 & 0x3f) as usize * 4;
            let proto = word(d, at + 2)?;
            (
                Tunnel::Geneve,
                Step {
                    len,
                    next: gre_payload(proto),
                },
            )
        }
        TunnelHeader::MplsUdp => (
            Tunnel::MplsUdp,
            Step {
                len: 0,
                next: Next::Mpls,
            },
        ),
        // PIM version 2, type 1 (register): 4 bytes of PIM header, 4 of flags, the packet.
        TunnelHeader::PimRegister => {
            need(d, at + 8)?;
            if d[at] != 0x21 {
                return Err(Bad::Malformed);
            }
            (
                Tunnel::PimRegister,
                Step {
                    len: 8,
                    next: Next::Ip,
                },
            )
        }
    };
    Ok(TunnelStep { kind, step })
}

/// GRE (RFC 2784/2890; version 1 as PPTP uses it) and what its protocol type carries:
/// transparent Ethernet bridging, ERSPAN type I (no header), II (8 bytes) and III (12 bytes,
/// plus an 8-byte platform header when its O bit is set), WCCP redirection (4 bytes, or
/// none when an IPv4 header follows at once), PPP, or any EtherType. Routing (RFC 1701's R
/// bit) is not decoded.
pub fn gre(d: &[u8], at: usize) -> Result<TunnelStep, Bad> {
    let (flags, proto) = (word(d, at)?, word(d, at + 2)?);
    if flags & 0x4000 != 0 {
        return Err(Bad::Malformed);
    }
    let seq = flags & 0x1000 != 0;
    let mut len = 4;
    match flags & 7 {
        0 => {
            len += 4 * ((flags & 0x8000 != 0) as usize + (flags & 0x2000 != 0) as usize);
            len += 4 * seq as usize;
        }
        // Enhanced GRE: key (payload length and call id) always, sequence and
        // acknowledgment numbers when flagged.
        1 if proto == ethertype::PPP && flags & 0x2000 != 0 => {
            len += 4 + 4 * seq as usize + 4 * (flags & 0x0080 != 0) as usize;
        }
        _ => return Err(Bad::Malformed),
    }
    need(d, at + len)?;
    let p = at + len;
    let (kind, extra, next) = match proto {
        ethertype::ERSPAN_II if !seq => (Tunnel::Erspan, 0, Next::Ethernet),
        ethertype::ERSPAN_II => {
            if byte(d, p)? >> 4 != 1 {
                return Err(Bad::Malformed);
            }
            need(d, p + 8)?;
            (Tunnel::Erspan, 8, Next::Ethernet)
        }
        ethertype::ERSPAN_III => {
            need(d, p + 12)?;
            if d[p] >> 4 != 2 {
                return Err(Bad::Malformed);
            }
            let w = u16::from_be_bytes([d[p + 10], d[p + 11]]);
            let frame_type = (w >> 10) & 0x1f;
            let extra = 12 + 8 * (w & 1) as usize;
            need(d, p + extra)?;
            match frame_type {
                0 => (Tunnel::Erspan, extra, Next::Ethernet),
                // Frame types other than Ethernet (2 is IP) are not decoded, as in Wireshark.
                _ => (Tunnel::Erspan, extra, Next::Other(proto)),
            }
        }
        ethertype::WCCP => {
            let direct = byte(d, p)? >> 4 == 4;
            (Tunnel::Gre, if direct { 0 } else { 4 }, Next::Ip)
        }
        other => (Tunnel::Gre, 0, gre_payload(other)),
    };
    Ok(TunnelStep {
        kind,
        step: Step {
            len: len + extra,
            next,
        },
    })
}
