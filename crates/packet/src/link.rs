//! Link-layer header types, numbered as in the tcpdump.org LINKTYPE_ registry.

use std::fmt;

/// A LINKTYPE_ value from a pcap header, a pcapng interface block or a live socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u16);

impl LinkType {
    /// BSD loopback: a 4-byte address family in host byte order of the capturing machine.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II / 802.3.
    pub const ETHERNET: LinkType = LinkType(1);
    /// ARCNET with BSD's header (source, destination, protocol id).
    pub const ARCNET_BSD: LinkType = LinkType(7);
    /// PPP (RFC 1661), address and control bytes optional.
    pub const PPP: LinkType = LinkType(9);
    /// Raw IP on some BSDs (DLT_RAW written as 12).
    pub const RAW_12: LinkType = LinkType(12);
    /// Raw IP on OpenBSD (DLT_RAW written as 14).
    pub const RAW_14: LinkType = LinkType(14);
    /// Raw IPv4 or IPv6, version taken from the first nibble.
    pub const RAW: LinkType = LinkType(101);
    /// PPP in HDLC-like framing (RFC 1662).
    pub const PPP_HDLC: LinkType = LinkType(50);
    /// PPPoE: a PPPoE header, then PPP.
    pub const PPP_ETHER: LinkType = LinkType(51);
    /// Cisco HDLC: address, control and an EtherType.
    pub const C_HDLC: LinkType = LinkType(104);
    /// OpenBSD loopback: like NULL but the family is big-endian.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux "cooked" capture v1 (16-byte header).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// ARCNET with Linux's header (source, destination, offset, protocol id).
    pub const ARCNET_LINUX: LinkType = LinkType(129);
    /// A user link type that Apple's PKTAP captures were written as (decoded as PKTAP when
    /// the header checks out, as Wireshark does).
    pub const USER2: LinkType = LinkType(149);
    /// Juniper's Ethernet pseudo-header, then Ethernet.
    pub const JUNIPER_ETHER: LinkType = LinkType(178);
    /// PPP after a one-byte direction.
    pub const PPP_WITH_DIR: LinkType = LinkType(204);
    /// Cisco HDLC after a one-byte direction.
    pub const C_HDLC_WITH_DIR: LinkType = LinkType(205);
    /// Raw IPv4 only.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6 only.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux NFLOG: a header and TLVs, one of which holds the IP packet.
    pub const NFLOG: LinkType = LinkType(239);
    /// IP over InfiniBand (RFC 4391): a 44-byte header ending with an EtherType.
    pub const IPOIB: LinkType = LinkType(242);
    /// Linux "cooked" capture v2 (20-byte header).
    pub const LINUX_SLL2: LinkType = LinkType(276);
    /// Apple's PKTAP: a header naming the link type of the frame that follows.
    pub const PKTAP: LinkType = LinkType(258);

    /// Short name as used by libpcap (`EN10MB`, `LINUX_SLL`, ...), or `None` when unknown here.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NULL => "NULL",
            Self::ETHERNET => "EN10MB",
            Self::ARCNET_BSD => "ARCNET",
            Self::PPP => "PPP",
            Self::PPP_HDLC => "PPP_HDLC",
            Self::PPP_ETHER => "PPP_ETHER",
            Self::C_HDLC => "C_HDLC",
            Self::ARCNET_LINUX => "ARCNET_LINUX",
            Self::USER2 => "USER2",
            Self::JUNIPER_ETHER => "JUNIPER_ETHER",
            Self::PPP_WITH_DIR => "PPP_WITH_DIR",
            Self::C_HDLC_WITH_DIR => "C_HDLC_WITH_DIR",
            Self::NFLOG => "NFLOG",
            Self::IPOIB => "IPOIB",
            Self::PKTAP => "PKTAP",
            Self::RAW | Self::RAW_12 | Self::RAW_14 => "RAW",
            Self::LOOP => "LOOP",
            Self::LINUX_SLL => "LINUX_SLL",
            Self::IPV4 => "IPV4",
            Self::IPV6 => "IPV6",
            Self::LINUX_SLL2 => "LINUX_SLL2",
            _ => return None,
        })
    }

    /// Whether the decoder understands this link type.
    pub fn is_decodable(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "LINKTYPE {}", self.0),
        }
    }
}
