//! Addresses as text, appended to a byte buffer without `core::fmt`.
//!
//! Output writers print millions of addresses; formatting them through `Display` (the
//! `Formatter` machinery, one `write!` per IPv6 group) was a visible share of writing flow
//! records and view rows. These functions produce exactly the text of the standard library's
//! `Display` (RFC 5952 for IPv6: lowercase, no leading zeros, the longest run of two or more
//! zero groups as `::`, the first one on a tie, IPv4-mapped addresses as `::ffff:a.b.c.d`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Appends the text form of `a`.
#[inline]
pub fn push_ip(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(x) => push_ipv4(out, x),
        IpAddr::V6(x) => push_ipv6(out, x),
    }
}

/// Appends `a.b.c.d`.
#[inline]
pub fn push_ipv4(out: &mut Vec<u8>, a: Ipv4Addr) {
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        push_u8(out, o);
    }
}

#[inline]
fn push_u8(out: &mut Vec<u8>, v: u8) {
    if v >= 100 {
        out.push(b'0' + v / 100);
        out.push(b'0' + v / 10 % 10);
    } else if v >= 10 {
        out.push(b'0' + v / 10);
    }
    out.push(b'0' + v % 10);
}

/// Appends one IPv6 group in lowercase hex without leading zeros.
#[inline]
fn push_group(out: &mut Vec<u8>, g: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - g.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(HEX[usize::from((g >> (4 * i)) as u8 & 0xf)]);
    }
}

fn push_groups(out: &mut Vec<u8>, groups: &[u16]) {
    for (i, &g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        push_group(out, g);
    }
}

/// Appends the RFC 5952 text of `a`, as `Ipv6Addr`'s `Display` writes it.
pub fn push_ipv6(out: &mut Vec<u8>, a: Ipv6Addr) {
    if let Some(v4) = a.to_ipv4_mapped() {
        out.extend_from_slice(b"::ffff:");
        push_ipv4(out, v4);
        return;
    }
    let g = a.segments();
    // Longest run of zero groups; the first one wins a tie.
    let (mut best_start, mut best_len, mut run_start, mut run_len) = (0, 0, 0, 0);
    for (i, &s) in g.iter().enumerate() {
        if s == 0 {
            if run_len == 0 {
                run_start = i;
            }
            run_len += 1;
            if run_len > best_len {
                (best_start, best_len) = (run_start, run_len);
            }
        } else {
            run_len = 0;
        }
    }
    if best_len > 1 {
        push_groups(out, &g[..best_start]);
        out.extend_from_slice(b"::");
        push_groups(out, &g[best_start + best_len..]);
    } else {
        push_groups(out, &g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(a: IpAddr) -> String {
        let mut v = Vec::new();
        push_ip(&mut v, a);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn known_forms() {
        for s in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "2001:db8:0:1:1:1:1:1",
            "2001:0:0:1::1",
            "::ffff:192.0.2.1",
            "::192.0.2.1",
            "fe80::1:0:0:1",
            "1:0:0:2:0:0:0:3",
        ] {
            let a: IpAddr = s.parse().unwrap();
            assert_eq!(text(a), a.to_string(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn ipv4_matches_display(x in any::<u32>()) {
            let a = IpAddr::V4(Ipv4Addr::from(x));
            prop_assert_eq!(text(a), a.to_string());
        }

        // Groups drawn mostly from zero and a few small values, so that zero runs of every
        // length and position (and ties) are common, plus fully random addresses.
        #[test]
        fn ipv6_matches_display(
            groups in prop::array::uniform8(prop_oneof![
                4 => Just(0u16),
                1 => Just(0xffffu16),
                2 => 1u16..0x10,
                2 => any::<u16>(),
            ]),
            random in any::<u128>(),
        ) {
            for a in [Ipv6Addr::from(groups), Ipv6Addr::from(random)] {
                let a = IpAddr::V6(a);
                prop_assert_eq!(text(a), a.to_string());
            }
        }
    }
}
