//! Frame building: Ethernet (with 802.1Q / 802.1ad tags), IPv4, IPv6, TCP, UDP, ICMP and
//! ICMPv6 headers with correct checksums, written into one reusable frame buffer.

/// Largest frame the generator writes (MSS-sized segment, IPv6, two VLAN tags, TCP options).
pub const MAX_FRAME: usize = 1600;

/// Ethernet minimum frame length without the FCS.
pub const MIN_FRAME: usize = 60;

/// IP protocol numbers used here.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
}

/// Adds `data` to a one's-complement accumulator, reading words in native byte order (the
/// folded result is then stored in native order too, which is byte-order independent; RFC 1071).
/// `data` must start at an even offset from the start of the checksummed area.
#[inline]
pub fn csum_add(data: &[u8], mut acc: u64) -> u64 {
    let mut it = data.chunks_exact(8);
    for c in &mut it {
        let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc = acc.wrapping_add(v & 0xffff_ffff).wrapping_add(v >> 32);
    }
    let r = it.remainder();
    let mut i = 0;
    while i + 2 <= r.len() {
        acc += u16::from_ne_bytes([r[i], r[i + 1]]) as u64;
        i += 2;
    }
    if i < r.len() {
        acc += u16::from_ne_bytes([r[i], 0]) as u64;
    }
    acc
}

/// Folds an accumulator into the 2 checksum bytes to store (complemented, native order).
#[inline]
pub fn csum_fold(mut acc: u64) -> [u8; 2] {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    (!(acc as u16)).to_ne_bytes()
}

/// Addresses, ports and link details of one conversation; index 0 is the client (initiator),
/// 1 the server.
#[derive(Clone, Debug, Default)]
pub struct Path {
    /// MAC addresses.
    pub mac: [[u8; 6]; 2],
    /// VLAN ids, outer first.
    pub vlans: [u16; 2],
    /// Number of VLAN tags (0, 1 or 2).
    pub nvlan: u8,
    /// IPv6 instead of IPv4.
    pub v6: bool,
    /// IP addresses (IPv4 in the first 4 bytes).
    pub addr: [[u8; 16]; 2],
    /// Transport ports (0 for ICMP).
    pub port: [u16; 2],
    /// TTL / hop limit per sender.
    pub ttl: [u8; 2],
    /// Next IPv4 identification per sender.
    pub ipid: [u16; 2],
    /// IPv6 flow label.
    pub flow_label: u32,
}

impl Path {
    /// The IP address of side `i` formatted for the truth file.
    pub fn ip_string(&self, i: usize) -> String {
        let a = &self.addr[i];
        if self.v6 {
            std::net::Ipv6Addr::from(*a).to_string()
        } else {
            std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string()
        }
    }

    /// `ip:port` (IPv6 in brackets) of side `i`.
    pub fn endpoint(&self, i: usize) -> String {
        if self.v6 {
            format!("[{}]:{}", self.ip_string(i), self.port[i])
        } else {
            format!("{}:{}", self.ip_string(i), self.port[i])
        }
    }
}

/// Writes the Ethernet header and VLAN tags for a frame sent by side `dir`; returns the offset
/// of the network header.
#[inline]
pub fn eth(buf: &mut [u8], p: &Path, dir: usize) -> usize {
    buf[0..6].copy_from_slice(&p.mac[1 - dir]);
    buf[6..12].copy_from_slice(&p.mac[dir]);
    let mut o = 12;
    let tpids: &[u16] = match p.nvlan {
        0 => &[],
        1 => &[0x8100],
        _ => &[0x88a8, 0x8100],
    };
    for (i, tpid) in tpids.iter().enumerate() {
        buf[o..o + 2].copy_from_slice(&tpid.to_be_bytes());
        buf[o + 2..o + 4].copy_from_slice(&(p.vlans[i] & 0x0fff).to_be_bytes());
        o += 4;
    }
    let et: u16 = if p.v6 { 0x86dd } else { 0x0800 };
    buf[o..o + 2].copy_from_slice(&et.to_be_bytes());
    o + 2
}

/// Parameters of one IP header.
pub struct Ip<'a> {
    /// IPv6 instead of IPv4.
    pub v6: bool,
    /// Source address.
    pub src: &'a [u8; 16],
    /// Destination address.
    pub dst: &'a [u8; 16],
    /// Upper-layer protocol.
    pub proto: u8,
    /// Bytes after the IP header.
    pub payload_len: usize,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 identification.
    pub id: u16,
    /// IPv6 flow label.
    pub flow_label: u32,
}

/// Writes an IPv4 (with checksum, DF set) or IPv6 header at `at`; returns the header length.
#[inline]
pub fn ip(buf: &mut [u8], at: usize, h: &Ip<'_>) -> usize {
    if h.v6 {
        let b = &mut buf[at..at + 40];
        let first = (6u32 << 28) | (h.flow_label & 0xf_ffff);
        b[0..4].copy_from_slice(&first.to_be_bytes());
        b[4..6].copy_from_slice(&(h.payload_len as u16).to_be_bytes());
        b[6] = h.proto;
        b[7] = h.ttl;
        b[8..24].copy_from_slice(h.src);
        b[24..40].copy_from_slice(h.dst);
        40
    } else {
        let b = &mut buf[at..at + 20];
        b[0] = 0x45;
        b[1] = 0;
        b[2..4].copy_from_slice(&((20 + h.payload_len) as u16).to_be_bytes());
        b[4..6].copy_from_slice(&h.id.to_be_bytes());
        b[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
        b[8] = h.ttl;
        b[9] = h.proto;
        b[10..12].copy_from_slice(&[0, 0]);
        b[12..16].copy_from_slice(&h.src[..4]);
        b[16..20].copy_from_slice(&h.dst[..4]);
        let c = csum_fold(csum_add(b, 0));
        b[10..12].copy_from_slice(&c);
        20
    }
}

/// Computes and stores the TCP/UDP/ICMPv6 checksum (with pseudo-header) or the ICMPv4 checksum
/// (without) of the L4 segment at `l4..l4+len`; the checksum field is at `l4 + field`.
#[inline]
pub fn l4_csum(buf: &mut [u8], ip_at: usize, v6: bool, l4: usize, len: usize, field: usize) {
    buf[l4 + field] = 0;
    buf[l4 + field + 1] = 0;
    let proto = if v6 { buf[ip_at + 6] } else { buf[ip_at + 9] };
    let mut acc = 0u64;
    if proto != proto::ICMP {
        if v6 {
            acc = csum_add(&buf[ip_at + 8..ip_at + 40], acc);
            let mut ph = [0u8; 8];
            ph[0..4].copy_from_slice(&(len as u32).to_be_bytes());
            ph[7] = proto;
            acc = csum_add(&ph, acc);
        } else {
            acc = csum_add(&buf[ip_at + 12..ip_at + 20], acc);
            let ph = [0, proto, (len >> 8) as u8, len as u8];
            acc = csum_add(&ph, acc);
        }
    }
    acc = csum_add(&buf[l4..l4 + len], acc);
    let mut c = csum_fold(acc);
    if proto == proto::UDP && c == [0, 0] {
        c = [0xff, 0xff];
    }
    buf[l4 + field..l4 + field + 2].copy_from_slice(&c);
}

/// Zero-pads a frame to the Ethernet minimum; returns the final length.
#[inline]
pub fn pad(buf: &mut [u8], len: usize) -> usize {
    if len < MIN_FRAME {
        buf[len..MIN_FRAME].fill(0);
        MIN_FRAME
    } else {
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            s += w as u32;
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn checksum_matches_rfc1071_reference() {
        let mut r = crate::rng::Rng::new(3);
        for n in 0..200usize {
            let mut d = vec![0u8; n];
            r.fill(&mut d);
            let c = csum_fold(csum_add(&d, 0));
            assert_eq!(u16::from_be_bytes(c), reference(&d), "len {n}");
        }
    }
}
