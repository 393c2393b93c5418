//! Crafted Ethernet frames for BPF_PROG_TEST_RUN (tests and benchmarks): IPv4/IPv6, optional
//! VLAN tag, TCP/UDP/ICMP/other, fragments. Checksums are not computed (the guard ignores them).

use crate::policy::{u128_to_ip, FlowTuple};
use std::net::IpAddr;

/// TCP SYN flag.
pub const SYN: u8 = 0x02;
/// TCP ACK flag.
pub const ACK: u8 = 0x10;
/// TCP FIN flag.
pub const FIN: u8 = 0x01;
/// TCP RST flag.
pub const RST: u8 = 0x04;

/// Description of one frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameSpec {
    /// Source address (unified 128-bit; IPv4-mapped means IPv4).
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// IP protocol.
    pub proto: u8,
    /// Source port (ICMP echo id for ICMP).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// TCP flags.
    pub tcp_flags: u8,
    /// ICMP type (for ICMP/ICMPv6).
    pub icmp_type: u8,
    /// Optional 802.1Q tag.
    pub vlan: Option<u16>,
    /// Fragment: None, Some(0) first fragment (MF set), Some(n) later fragment at offset n*8.
    pub frag: Option<u16>,
    /// Fragment identification.
    pub frag_id: u32,
    /// Payload bytes after the L4 header.
    pub payload: usize,
}

impl FrameSpec {
    /// A frame for a flow tuple, with ephemeral source port 40000 and SYN for TCP.
    pub fn from_tuple(t: &FlowTuple) -> FrameSpec {
        FrameSpec {
            src: t.src,
            dst: t.dst,
            proto: t.proto,
            sport: 40000,
            dport: t.dport,
            tcp_flags: SYN,
            icmp_type: if t.proto == 58 { 128 } else { 8 },
            vlan: None,
            frag: None,
            frag_id: 1,
            payload: 0,
        }
    }
}

fn is_v4(a: u128) -> bool {
    matches!(u128_to_ip(a), IpAddr::V4(_))
}

/// Builds the frame into `out` (cleared first).
pub fn build(s: &FrameSpec, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]);
    let v4 = is_v4(s.src) && is_v4(s.dst);
    if let Some(tag) = s.vlan {
        out.extend_from_slice(&0x8100u16.to_be_bytes());
        out.extend_from_slice(&tag.to_be_bytes());
    }
    out.extend_from_slice(&(if v4 { 0x0800u16 } else { 0x86dd }).to_be_bytes());
    let mut l4 = Vec::with_capacity(64 + s.payload);
    let later = matches!(s.frag, Some(n) if n > 0);
    if !later {
        match s.proto {
            6 => {
                l4.extend_from_slice(&s.sport.to_be_bytes());
                l4.extend_from_slice(&s.dport.to_be_bytes());
                l4.extend_from_slice(&[
                    0,
                    0,
                    0,
                    1,
                    0,
                    0,
                    0,
                    0,
                    0x50,
                    s.tcp_flags,
                    0xff,
                    0xff,
                    0,
                    0,
                    0,
                    0,
                ]);
            }
            17 | 132 => {
                l4.extend_from_slice(&s.sport.to_be_bytes());
                l4.extend_from_slice(&s.dport.to_be_bytes());
                l4.extend_from_slice(&[0, 8, 0, 0]);
            }
            1 | 58 => {
                l4.extend_from_slice(&[s.icmp_type, 0, 0, 0]);
                l4.extend_from_slice(&s.sport.to_be_bytes());
                l4.extend_from_slice(&[0, 1]);
            }
            _ => l4.extend_from_slice(&[0u8; 8]),
        }
    }
    l4.resize(l4.len() + s.payload, 0xab);
    if v4 {
        let total = 20 + l4.len();
        let fo: u16 = match s.frag {
            None => 0x4000,
            Some(0) => 0x2000,
            Some(n) => n & 0x1fff,
        };
        out.extend_from_slice(&[0x45, 0]);
        out.extend_from_slice(&(total as u16).to_be_bytes());
        out.extend_from_slice(&(s.frag_id as u16).to_be_bytes());
        out.extend_from_slice(&fo.to_be_bytes());
        out.extend_from_slice(&[64, s.proto, 0, 0]);
        out.extend_from_slice(&(s.src as u32).to_be_bytes());
        out.extend_from_slice(&(s.dst as u32).to_be_bytes());
    } else {
        let frag_hdr = s.frag.is_some();
        let plen = l4.len() + if frag_hdr { 8 } else { 0 };
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&(plen as u16).to_be_bytes());
        out.push(if frag_hdr { 44 } else { s.proto });
        out.push(64);
        out.extend_from_slice(&s.src.to_be_bytes());
        out.extend_from_slice(&s.dst.to_be_bytes());
        if let Some(n) = s.frag {
            let fo: u16 = if n == 0 { 1 } else { n << 3 };
            out.extend_from_slice(&[s.proto, 0]);
            out.extend_from_slice(&fo.to_be_bytes());
            out.extend_from_slice(&s.frag_id.to_be_bytes());
        }
    }
    out.extend_from_slice(&l4);
    // pad to the Ethernet minimum like a NIC would
    if out.len() < 60 {
        out.resize(60, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ip_to_u128;

    #[test]
    fn v4_and_v6_frames_have_expected_lengths() {
        let mut f = Vec::new();
        let mut s = FrameSpec::from_tuple(&FlowTuple {
            src: ip_to_u128("10.0.0.1".parse().unwrap()),
            dst: ip_to_u128("10.0.0.2".parse().unwrap()),
            proto: 6,
            dport: 80,
        });
        build(&s, &mut f);
        assert_eq!(f.len(), 60); // 54 bytes padded to the Ethernet minimum
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        s.src = ip_to_u128("fd00::1".parse().unwrap());
        s.dst = ip_to_u128("fd00::2".parse().unwrap());
        s.vlan = Some(7);
        build(&s, &mut f);
        assert_eq!(f.len(), 14 + 4 + 40 + 20);
        assert_eq!(&f[12..14], &[0x81, 0x00]);
    }
}
