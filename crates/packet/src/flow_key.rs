//! Flow keys: the 5-tuple (plus VLAN) a packet belongs to, with a canonical, direction-free form
//! and a symmetric hash so that both directions of a flow land on the same worker.

use crate::decode::{ip_proto, Fragment, PacketView};
use std::net::IpAddr;

/// Source and destination address of one IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPair {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
}

/// A directional 5-tuple plus the outer VLAN id.
///
/// For ICMP/ICMPv6 the ports hold the type and code (the convention of NetFlow and Zeek); for
/// protocols without ports, and for non-first fragments (whose ports are unknown), both are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (ICMP type).
    pub src_port: u16,
    /// Destination port (ICMP code).
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Outer VLAN id, when the frame was tagged.
    pub vlan: Option<u16>,
}

/// Whether a protocol carries ports in its first 4 bytes.
#[inline]
pub fn has_ports(proto: u8) -> bool {
    matches!(
        proto,
        ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP | 33 /* DCCP */ | 136 /* UDP-Lite */
    )
}

impl FlowKey {
    /// The key as three integers (addresses as bits, IPv4 in v4-mapped form, then ports,
    /// protocol and VLAN): a table hash of this is about 3x cheaper than the derived `Hash`,
    /// which feeds every enum tag and address byte separately. IPv4 and the v4-mapped IPv6
    /// address pack the same; that only costs a key comparison in a table.
    #[inline]
    pub fn packed(&self) -> (u128, u128, u64) {
        let bits = |a: IpAddr| match a {
            IpAddr::V4(x) => 0xffff_0000_0000 | u32::from(x) as u128,
            IpAddr::V6(x) => u128::from(x),
        };
        let rest = self.src_port as u64
            | (self.dst_port as u64) << 16
            | (self.proto as u64) << 32
            | self.vlan.map_or(0x1_0000, |v| v as u64) << 40;
        (bits(self.src), bits(self.dst), rest)
    }

    /// The key of a decoded packet, or `None` when it has no IP layer.
    #[inline]
    pub fn from_view(v: &PacketView) -> Option<FlowKey> {
        let ip = v.ip?;
        let (sp, dp) = if v.fragment == Fragment::Later || v.l4_offset == 0 {
            (0, 0)
        } else if matches!(v.proto, ip_proto::ICMP | ip_proto::ICMPV6) {
            (v.icmp_type as u16, v.icmp_code as u16)
        } else {
            (v.src_port, v.dst_port)
        };
        Some(FlowKey {
            src: ip.src,
            dst: ip.dst,
            src_port: sp,
            dst_port: dp,
            proto: v.proto,
            vlan: v.vlan,
        })
    }

    /// The same flow seen from the other side.
    #[inline]
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            ..*self
        }
    }

    /// The direction-free form (lower address:port first) and whether `self` was swapped to get it.
    #[inline]
    pub fn canonical(&self) -> (FlowKey, bool) {
        if (self.src, self.src_port) <= (self.dst, self.dst_port) {
            (*self, false)
        } else {
            (self.reversed(), true)
        }
    }

    /// A 64-bit hash equal for both directions of the flow, for partitioning flows across
    /// workers (like the kernel's fanout hash). Not for hash tables exposed to hostile keys: use
    /// a seeded hasher there.
    #[inline]
    pub fn symmetric_hash(&self) -> u64 {
        let a = addr_fold(self.src) ^ (self.src_port as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let b = addr_fold(self.dst) ^ (self.dst_port as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Commutative combination of the two endpoints, then a strong finalizer.
        let mut h = a.wrapping_add(b) ^ a.wrapping_mul(b).rotate_left(29);
        h ^= (self.proto as u64) << 48 ^ self.vlan.unwrap_or(0xffff) as u64;
        mix64(h)
    }
}

#[inline]
fn addr_fold(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(v) => mix64(u32::from(v) as u64 | 0x4_0000_0000),
        IpAddr::V6(v) => {
            let x = u128::from(v);
            mix64((x as u64) ^ mix64((x >> 64) as u64 ^ 0x6))
        }
    }
}

/// The murmur3/splitmix 64-bit finalizer.
#[inline]
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packed_keys_differ_when_fields_differ() {
        let base = FlowKey {
            src: "10.0.0.1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            src_port: 1,
            dst_port: 2,
            proto: 6,
            vlan: None,
        };
        let variants = [
            FlowKey {
                src: "10.0.0.2".parse().unwrap(),
                ..base
            },
            FlowKey {
                dst: "2001:db8::3".parse().unwrap(),
                ..base
            },
            FlowKey {
                src_port: 2,
                dst_port: 1,
                ..base
            },
            FlowKey { proto: 17, ..base },
            FlowKey {
                vlan: Some(0),
                ..base
            },
            FlowKey {
                vlan: Some(1),
                ..base
            },
            base.reversed(),
        ];
        for v in variants {
            assert_ne!(v.packed(), base.packed(), "{v:?}");
        }
        assert_eq!(base.packed(), { base }.packed());
    }

    fn key(s: [u8; 4], d: [u8; 4], sp: u16, dp: u16) -> FlowKey {
        FlowKey {
            src: s.into(),
            dst: d.into(),
            src_port: sp,
            dst_port: dp,
            proto: 6,
            vlan: None,
        }
    }

    #[test]
    fn canonical_orders_by_address_then_port() {
        let k = key([10, 0, 0, 2], [10, 0, 0, 1], 80, 1234);
        let (c, swapped) = k.canonical();
        assert!(swapped);
        assert_eq!(c, key([10, 0, 0, 1], [10, 0, 0, 2], 1234, 80));
        let same_addr = key([10, 0, 0, 1], [10, 0, 0, 1], 9, 3);
        assert_eq!(same_addr.canonical().0.src_port, 3);
    }

    proptest! {
        #[test]
        fn symmetric_hash_and_canonical_agree_for_both_directions(
            s in any::<[u8; 4]>(), d in any::<[u8; 4]>(), sp in any::<u16>(), dp in any::<u16>(), v6 in any::<bool>()
        ) {
            let mut k = key(s, d, sp, dp);
            if v6 {
                k.src = IpAddr::V6(std::net::Ipv4Addr::from(s).to_ipv6_mapped());
                k.dst = IpAddr::V6(std::net::Ipv4Addr::from(d).to_ipv6_mapped());
            }
            prop_assert_eq!(k.symmetric_hash(), k.reversed().symmetric_hash());
            prop_assert_eq!(k.canonical().0, k.reversed().canonical().0);
        }
    }

    #[test]
    fn symmetric_hash_spreads_flows() {
        // 4096 flows into 8 buckets: every bucket should get a fair share.
        let mut buckets = [0u32; 8];
        for i in 0..4096u32 {
            let k = key(
                [10, 0, (i >> 8) as u8, i as u8],
                [192, 168, 1, 1],
                1024 + i as u16,
                443,
            );
            buckets[(k.symmetric_hash() % 8) as usize] += 1;
        }
        for b in buckets {
            assert!((400..=630).contains(&b), "unbalanced buckets {buckets:?}");
        }
    }
}
