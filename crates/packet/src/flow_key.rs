//! Flow keys: the 5-tuple (plus VLAN) a packet belongs to, with a canonical, direction-free form
//! and a symmetric hash so that both directions of a flow land on the same worker.

use crate::decode::{ip_proto, Fragment, PacketView};
use crate::icmp::{icmp_counterpart, is_icmp};
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
/// For ICMP/ICMPv6 the ports are Zeek's and Community ID's: a type that pairs with another
/// (echo request/reply, solicitation/advertisement, ...; see [`crate::icmp`]) holds its own
/// type and its counterpart's, so that a request `A → B (8, 0)` and its reply `B → A (0, 8)`
/// are the same flow seen from both sides (the code is left out, as Zeek and Community ID do);
/// a one-way type (errors, redirects, ...) holds its type and code and keeps its direction
/// (see [`FlowKey::canonical`]). For protocols without ports, and for non-first fragments
/// (whose ports are unknown), both are 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (ICMP: the type this side sends).
    pub src_port: u16,
    /// Destination port (ICMP: the counterpart type of a paired type, else the code).
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
        } else if is_icmp(v.proto) {
            let second = icmp_counterpart(v.proto, v.icmp_type).unwrap_or(v.icmp_code);
            (v.icmp_type as u16, second as u16)
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

    /// The direction-free form (lower address:port first) and whether `self` was swapped to get
    /// it. A one-way ICMP key is its own canonical form: an error sent from A to B and one
    /// sent from B to A are two flows, as in Zeek (and their Community IDs differ).
    #[inline]
    pub fn canonical(&self) -> (FlowKey, bool) {
        // Whether to swap is a coin toss per packet: choose without a branch (a branch here
        // mispredicted on half the packets, ~0.5 more mispredictions per packet measured with
        // cachegrind), and test the ICMP case with `&` so that it adds no branch either.
        let swap =
            ((self.src, self.src_port) > (self.dst, self.dst_port)) & !self.is_one_way_icmp();
        (
            std::hint::select_unpredictable(swap, self.reversed(), *self),
            swap,
        )
    }

    /// True for an ICMP/ICMPv6 key whose type pairs with no other (it has a direction).
    #[inline]
    pub fn is_one_way_icmp(&self) -> bool {
        is_icmp(self.proto)
            && (self.src_port > 255 || icmp_counterpart(self.proto, self.src_port as u8).is_none())
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

    /// The key of an ICMP/ICMPv6 packet as decoded from the wire.
    fn icmp_key(src: IpAddr, dst: IpAddr, ty: u8, code: u8) -> FlowKey {
        let v = PacketView {
            ip: Some(IpPair { src, dst }),
            proto: if src.is_ipv4() { 1 } else { 58 },
            l4_offset: 34,
            icmp_type: ty,
            icmp_code: code,
            ..Default::default()
        };
        FlowKey::from_view(&v).unwrap()
    }

    #[test]
    fn icmp_request_and_reply_are_one_canonical_key_and_one_way_types_keep_their_direction() {
        let (a4, b4): (IpAddr, IpAddr) = ("10.0.0.9".parse().unwrap(), "10.0.0.1".parse().unwrap());
        let (a6, b6): (IpAddr, IpAddr) =
            ("2001:db8::9".parse().unwrap(), "fe80::1".parse().unwrap());
        for (a, b, pairs) in [
            (a4, b4, &crate::icmp::ICMP_PAIRS[..]),
            (a6, b6, &crate::icmp::ICMPV6_PAIRS[..]),
        ] {
            for &(req, rep) in pairs {
                // The request holds (request, reply) and the reply its mirror image, whatever
                // the code; the code is not part of the key.
                let q = icmp_key(a, b, req, 0);
                let r = icmp_key(b, a, rep, 3);
                assert_eq!((q.src_port, q.dst_port), (req as u16, rep as u16));
                assert_eq!(r, q.reversed(), "{req}/{rep}");
                assert_eq!(q.canonical().0, r.canonical().0, "{req}/{rep}");
                assert_ne!(q.canonical().1, r.canonical().1);
                // Another request from the other side is another exchange.
                assert_ne!(icmp_key(b, a, req, 0).canonical().0, q.canonical().0);
            }
        }
        // One-way: destination unreachable / time exceeded (code kept), in both directions.
        for (a, b, ty, code) in [
            (a4, b4, 3u8, 3u8),
            (a4, b4, 11, 0),
            (a6, b6, 1, 4),
            (a6, b6, 3, 0),
        ] {
            let ab = icmp_key(a, b, ty, code);
            let ba = icmp_key(b, a, ty, code);
            assert_eq!((ab.src_port, ab.dst_port), (ty as u16, code as u16));
            assert!(ab.is_one_way_icmp());
            assert_eq!(ab.canonical(), (ab, false));
            assert_eq!(ba.canonical(), (ba, false));
            assert_ne!(ab.canonical().0, ba.canonical().0);
        }
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
