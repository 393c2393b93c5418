//! The types a decode produces: [`PacketView`] (layer offsets, 5-tuple, a few header fields)
//! and the small enums and constants that describe what was found.

use crate::IpPair;

/// Options for [`decode`](super::decode).
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeOptions {
    /// Decode the packet inside tunnels (GRE, ERSPAN, VXLAN, VXLAN-GPE, GENEVE, MPLS over UDP,
    /// IP-in-IP; nested up to four deep) and describe the innermost packet (the outer header
    /// offset stays available in [`PacketView::outer_l3_offset`]).
    pub inner: bool,
}

/// A protocol layer, used to say where decoding stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Link-layer header (Ethernet, SLL, SLL2, NULL/LOOP, PPP, Cisco HDLC, ...) or a shim
    /// header between it and IP (PPPoE, LLC/SNAP, E-Tag, MACsec, NSH).
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
    /// A tunnel header (GRE, ERSPAN, VXLAN, VXLAN-GPE, GENEVE).
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
    /// Any other EtherType (or an LLC frame, reported as its 802.3 length; on PPP links and in
    /// PPPoE, a PPP protocol number other than IPv4, IPv6 and MPLS).
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
    /// GRE (version 0, and version 1 carrying PPP as PPTP does), including transparent
    /// Ethernet bridging and WCCP redirection.
    Gre,
    /// VXLAN (UDP port 4789).
    Vxlan,
    /// GENEVE (UDP port 6081).
    Geneve,
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (protocols 4 and 41).
    IpInIp,
    /// ERSPAN type I, II or III (GRE protocols 0x88BE and 0x22EB).
    Erspan,
    /// VXLAN-GPE (UDP port 4790).
    VxlanGpe,
    /// MPLS over UDP (UDP port 6635, RFC 7510).
    MplsUdp,
    /// A PIM register message (the multicast packet it carries to the rendezvous point).
    PimRegister,
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
    /// PIM.
    pub const PIM: u8 = 103;
    /// An Ethernet frame directly over IP (RFC 8986 SRv6 L2 services).
    pub const ETHERNET: u8 = 143;
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
    /// PPPoE discovery stage.
    pub const PPPOE_DISCOVERY: u16 = 0x8863;
    /// PPPoE session stage (PPP frames).
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// ERSPAN type I and II (GRE protocol type).
    pub const ERSPAN_II: u16 = 0x88BE;
    /// ERSPAN type III (GRE protocol type).
    pub const ERSPAN_III: u16 = 0x22EB;
    /// WCCP redirection (GRE protocol type).
    pub const WCCP: u16 = 0x883E;
    /// PPP (GRE protocol type, PPTP).
    pub const PPP: u16 = 0x880B;
    /// MACsec (802.1AE).
    pub const MACSEC: u16 = 0x88E5;
    /// 802.1BR E-Tag.
    pub const ETAG: u16 = 0x893F;
    /// Network Service Header (RFC 8300).
    pub const NSH: u16 = 0x894F;
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
