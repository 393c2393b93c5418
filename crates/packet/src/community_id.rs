//! Community ID v1 flow hashes (corelight/community-id-spec), so that NetSpectra records join
//! with Zeek, Suricata and Wireshark output.

use crate::decode::ip_proto;
use crate::flow_key::has_ports;
use crate::icmp::icmp_counterpart;
use crate::FlowKey;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// Maps an ICMP type/code to its "port" pair and whether the exchange is one-way (Zeek's rule),
/// from the pair table in [`crate::icmp`] that flow keys use too.
fn icmp_ports(proto: u8, ty: u16, code: u16) -> (u16, u16, bool) {
    let counterpart = u8::try_from(ty)
        .ok()
        .and_then(|t| icmp_counterpart(proto, t));
    match counterpart {
        Some(c) => (ty, c as u16, false),
        None => (ty, code, true),
    }
}

/// Computes the Community ID v1 string (`1:<base64 sha1>`) of a flow key with the given seed.
///
/// For ICMP keys, `src_port` must hold the ICMP type and `dst_port` the code or, for a paired
/// type, its counterpart ([`FlowKey`] holds the latter; both give the same ID).
pub fn community_id_v1(key: &FlowKey, seed: u16) -> String {
    let mut out = Vec::with_capacity(30);
    push_community_id_v1(&mut out, key, seed);
    // Base64 text is ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the Community ID v1 text of a flow key to `out` (28 base64 characters after `1:`),
/// for writers that build a record line without a `String` per field.
pub fn push_community_id_v1(out: &mut Vec<u8>, key: &FlowKey, seed: u16) {
    let (mut sa, mut da) = (key.src, key.dst);
    let (mut sp, mut dp) = (key.src_port, key.dst_port);
    let icmp = matches!(key.proto, ip_proto::ICMP | ip_proto::ICMPV6);
    let mut one_way = false;
    if icmp {
        let (a, b, ow) = icmp_ports(key.proto, sp, dp);
        sp = a;
        dp = b;
        one_way = ow;
    }
    let ports = has_ports(key.proto) || icmp;
    let ordered = one_way || sa < da || (sa == da && ports && sp < dp);
    if !ordered {
        std::mem::swap(&mut sa, &mut da);
        std::mem::swap(&mut sp, &mut dp);
    }
    // RustCrypto's SHA-1 uses the CPU's SHA extensions when present (~3x sha1_smol here).
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    match (sa, da) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.update(s.octets());
            h.update(d.octets());
        }
        (s, d) => {
            h.update(to_v6(s));
            h.update(to_v6(d));
        }
    }
    h.update([key.proto, 0]);
    if ports {
        h.update(sp.to_be_bytes());
        h.update(dp.to_be_bytes());
    }
    let digest: [u8; 20] = h.finalize().into();
    out.extend_from_slice(b"1:");
    base64_into(&digest, out);
}

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64_into(bytes: &[u8], out: &mut Vec<u8>) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63]);
        out.push(T[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63]
        } else {
            b'='
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str, d: &str, sp: u16, dp: u16, proto: u8) -> FlowKey {
        FlowKey {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            src_port: sp,
            dst_port: dp,
            proto,
            vlan: None,
        }
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut s = Vec::new();
            base64_into(i.as_bytes(), &mut s);
            assert_eq!(s, o.as_bytes());
        }
    }

    #[test]
    fn direction_does_not_matter() {
        let a = k("10.0.0.1", "127.0.0.1", 1234, 80, 6);
        assert_eq!(community_id_v1(&a, 0), community_id_v1(&a.reversed(), 0));
        assert_ne!(community_id_v1(&a, 0), community_id_v1(&a, 1));
        // ICMP echo request and reply hash alike; a one-way type keeps its direction.
        let req = k("192.168.0.89", "192.168.0.1", 8, 0, 1);
        let rep = k("192.168.0.1", "192.168.0.89", 0, 0, 1);
        assert_eq!(community_id_v1(&req, 0), community_id_v1(&rep, 0));
    }

    #[test]
    fn every_paired_type_hashes_alike_both_ways_and_one_way_types_do_not() {
        use crate::icmp::{ICMPV6_PAIRS, ICMP_PAIRS};
        for (a, b, proto, pairs) in [
            ("10.0.0.9", "10.0.0.1", 1u8, &ICMP_PAIRS[..]),
            ("2001:db8::9", "fe80::1", 58, &ICMPV6_PAIRS[..]),
        ] {
            for &(q, r) in pairs {
                // Keys as packets give them (type, code) and as flow keys hold them (type,
                // counterpart): all four hash alike.
                let ids = [
                    k(a, b, q as u16, 0, proto),
                    k(b, a, r as u16, 0, proto),
                    k(a, b, q as u16, r as u16, proto),
                    k(b, a, r as u16, q as u16, proto),
                ]
                .map(|x| community_id_v1(&x, 0));
                assert!(ids.iter().all(|i| *i == ids[0]), "{proto}: {q}/{r}");
            }
        }
        let ab = k("10.0.0.9", "10.0.0.1", 3, 3, 1);
        assert_ne!(community_id_v1(&ab, 0), community_id_v1(&ab.reversed(), 0));
    }
}
