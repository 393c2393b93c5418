//! Which ICMP and ICMPv6 message types pair up as request and reply: the one table behind both
//! flow keys ([`crate::FlowKey`]) and Community ID v1 ([`crate::community_id_v1`]).
//!
//! The pairs are those of the Community ID v1 reference implementation (corelight's
//! `pycommunityid`, `icmp.py` and `icmp6.py`), which follows Zeek's `ICMP4_counterpart` /
//! `ICMP6_counterpart`, and they are exactly the pairs Wireshark's Community ID (tshark 4.0)
//! joins (checked type by type, 0..=40 and 128..=161, in `crates/cli/tests/community_id.rs`).
//! Every other type is one-way: it belongs to no exchange (errors, redirects, ...).

use crate::decode::ip_proto;

/// ICMP (IPv4) request → reply types: echo, router solicitation → advertisement, timestamp,
/// information, address mask.
pub const ICMP_PAIRS: [(u8, u8); 5] = [(8, 0), (10, 9), (13, 14), (15, 16), (17, 18)];

/// ICMPv6 request → reply types: echo, multicast listener query → report, router solicitation
/// → advertisement, neighbour solicitation → advertisement, node information query → reply,
/// home agent address discovery request → reply.
pub const ICMPV6_PAIRS: [(u8, u8); 6] = [
    (128, 129),
    (130, 131),
    (133, 134),
    (135, 136),
    (139, 140),
    (144, 145),
];

/// What a message type is in an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpRole {
    /// Opens an exchange; the reply type is given.
    Request {
        /// The type that answers it.
        reply: u8,
    },
    /// Answers a request of the given type.
    Reply {
        /// The type it answers.
        request: u8,
    },
    /// Belongs to no exchange (errors, redirects and every type not in the tables).
    OneWay,
}

// Table entries: 0 = one-way, else PAIRED | (REQUEST if a request) | counterpart type.
const PAIRED: u16 = 0x100;
const REQUEST: u16 = 0x200;

/// A 256-entry lookup built at compile time from a pair list, so that a packet's role costs
/// one load (it is asked once per ICMP packet by the flow table).
const fn build(pairs: &[(u8, u8)]) -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < pairs.len() {
        let (req, rep) = pairs[i];
        t[req as usize] = PAIRED | REQUEST | rep as u16;
        t[rep as usize] = PAIRED | req as u16;
        i += 1;
    }
    t
}

static V4: [u16; 256] = build(&ICMP_PAIRS);
static V6: [u16; 256] = build(&ICMPV6_PAIRS);

/// The role of message type `ty` of IP protocol `proto` (1 = ICMP, 58 = ICMPv6; any other
/// protocol gives [`IcmpRole::OneWay`]).
#[inline]
pub fn icmp_role(proto: u8, ty: u8) -> IcmpRole {
    let e = match proto {
        ip_proto::ICMP => V4[ty as usize],
        ip_proto::ICMPV6 => V6[ty as usize],
        _ => 0,
    };
    if e & PAIRED == 0 {
        IcmpRole::OneWay
    } else if e & REQUEST != 0 {
        IcmpRole::Request { reply: e as u8 }
    } else {
        IcmpRole::Reply { request: e as u8 }
    }
}

/// The type that pairs with `ty` (its reply or its request), or `None` for a one-way type.
#[inline]
pub fn icmp_counterpart(proto: u8, ty: u8) -> Option<u8> {
    match icmp_role(proto, ty) {
        IcmpRole::Request { reply } => Some(reply),
        IcmpRole::Reply { request } => Some(request),
        IcmpRole::OneWay => None,
    }
}

/// True for IP protocols 1 (ICMP) and 58 (ICMPv6).
#[inline]
pub fn is_icmp(proto: u8) -> bool {
    matches!(proto, ip_proto::ICMP | ip_proto::ICMPV6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_pair_tables_and_everything_else_is_one_way() {
        for (proto, pairs) in [(1u8, &ICMP_PAIRS[..]), (58, &ICMPV6_PAIRS[..])] {
            for &(req, rep) in pairs {
                assert_eq!(icmp_role(proto, req), IcmpRole::Request { reply: rep });
                assert_eq!(icmp_role(proto, rep), IcmpRole::Reply { request: req });
                assert_eq!(icmp_counterpart(proto, req), Some(rep));
                assert_eq!(icmp_counterpart(proto, rep), Some(req));
            }
            let paired = |t: u8| pairs.iter().any(|&(a, b)| a == t || b == t);
            for t in 0..=255u8 {
                if !paired(t) {
                    assert_eq!(icmp_role(proto, t), IcmpRole::OneWay, "{proto}/{t}");
                }
            }
        }
        // The two families do not share types, and other protocols have none.
        assert_eq!(icmp_role(1, 128), IcmpRole::OneWay);
        assert_eq!(icmp_role(58, 8), IcmpRole::OneWay);
        assert_eq!(icmp_role(6, 8), IcmpRole::OneWay);
        // Errors are one-way in both families.
        for (p, t) in [(1u8, 3u8), (1, 11), (1, 5), (58, 1), (58, 3), (58, 137)] {
            assert_eq!(icmp_role(p, t), IcmpRole::OneWay);
        }
    }
}
