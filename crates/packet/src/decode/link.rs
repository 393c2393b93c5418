//! The walk from a link-layer header to IP: Ethernet, VLAN tags (any depth), MPLS label
//! stacks, and the shim headers of [`encap`](super::encap) (PPP, PPPoE, LLC/SNAP, E-Tag,
//! MACsec, NSH), one header per step, until an IP header or something this decoder does not
//! read.

use super::encap::{self, be16, Bad, Next};
use super::view::{ethertype, DecodeStatus, L3Proto, Layer, PacketView};
use super::{ip, Cx};
use crate::LinkType;

/// Headers walked before IP at most (VLAN tags, labels and shims; a longer stack is reported
/// as malformed). Real stacks have a handful; this only bounds hostile input.
const MAX_STEPS: usize = 64;

/// Adds a VLAN id: the first two seen are kept, all are counted.
pub(super) fn push_vlan(v: &mut PacketView, id: u16) {
    if v.vlan.is_none() {
        v.vlan = Some(id);
    } else if v.inner_vlan.is_none() {
        v.inner_vlan = Some(id);
    }
    v.vlan_count = v.vlan_count.saturating_add(1);
}

fn fail(v: &mut PacketView, why: Bad, layer: Layer) {
    v.status = match why {
        Bad::Truncated => DecodeStatus::Truncated(layer),
        Bad::Malformed => DecodeStatus::Malformed(layer),
    };
}

/// Decodes a whole frame of link type `link`.
pub(super) fn frame(data: &[u8], link: LinkType, v: &mut PacketView, cx: &mut Cx) {
    // The common cases first, without a detour through the link-header table or the walk.
    if link == LinkType::ETHERNET {
        return match be16(data, 12) {
            Some(ethertype::IPV4) => ip::ipv4(data, 14, v, cx),
            Some(ethertype::IPV6) => ip::ipv6(data, 14, v, cx),
            Some(et) => walk(data, 14, Next::EtherType(et), v, cx),
            None => v.status = DecodeStatus::Truncated(Layer::Link),
        };
    }
    match encap::link(data, link) {
        None => v.status = DecodeStatus::Undecoded,
        Some(Err(why)) => fail(v, why, Layer::Link),
        Some(Ok(s)) => walk(data, s.len, s.next, v, cx),
    }
}

/// Walks the headers from `at`, where `next` starts, to IP (decoded by [`ip`]) or to the
/// first header not decoded here.
pub(super) fn walk(data: &[u8], mut at: usize, mut next: Next, v: &mut PacketView, cx: &mut Cx) {
    let mut links = 0;
    for _ in 0..MAX_STEPS {
        next = match next {
            Next::Ethernet => match be16(data, at + 12) {
                Some(et) => {
                    at += 14;
                    Next::EtherType(et)
                }
                None => return v.status = DecodeStatus::Truncated(Layer::Link),
            },
            Next::EtherType(et) => match et {
                ethertype::IPV4 => return ip::ipv4(data, at, v, cx),
                ethertype::IPV6 => return ip::ipv6(data, at, v, cx),
                ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD => {
                    let (Some(tci), Some(inner)) = (be16(data, at), be16(data, at + 2)) else {
                        return v.status = DecodeStatus::Truncated(Layer::Vlan);
                    };
                    push_vlan(v, tci & 0x0fff);
                    at += 4;
                    Next::EtherType(inner)
                }
                ethertype::ARP => {
                    v.l3 = L3Proto::Arp;
                    v.l3_offset = at as u32;
                    return;
                }
                ethertype::MPLS | ethertype::MPLS_MC => Next::Mpls,
                ethertype::TEB => Next::Ethernet,
                other => match encap::shim(data, at, other) {
                    Some(Ok(s)) => {
                        at += s.len;
                        s.next
                    }
                    Some(Err(why)) => return fail(v, why, Layer::Link),
                    None => Next::Other(other),
                },
            },
            Next::Mpls => {
                // Label stack entries up to the bottom-of-stack bit; each is 4 bytes, so the
                // loop ends with the frame.
                loop {
                    let Some(entry) = data.get(at..at + 4) else {
                        return v.status = DecodeStatus::Truncated(Layer::Mpls);
                    };
                    v.mpls_labels = v.mpls_labels.saturating_add(1);
                    at += 4;
                    if entry[2] & 1 != 0 {
                        break;
                    }
                }
                // No protocol field after the stack: guess from the first nibble, as tcpdump
                // and Wireshark do.
                match data.get(at).map(|b| b >> 4) {
                    Some(4) => return ip::ipv4(data, at, v, cx),
                    Some(6) => return ip::ipv6(data, at, v, cx),
                    Some(_) => Next::Other(ethertype::MPLS),
                    None => return v.status = DecodeStatus::Truncated(Layer::Mpls),
                }
            }
            Next::Ip => match data.get(at).map(|b| b >> 4) {
                Some(4) => return ip::ipv4(data, at, v, cx),
                Some(6) => return ip::ipv6(data, at, v, cx),
                Some(_) => return v.status = DecodeStatus::Malformed(Layer::Link),
                None => return v.status = DecodeStatus::Truncated(Layer::Link),
            },
            Next::Ppp => match encap::ppp(data, at) {
                Ok(s) => {
                    at += s.len;
                    s.next
                }
                Err(why) => return fail(v, why, Layer::Link),
            },
            Next::Link(link) => {
                // Only a PKTAP header names another link type, and it never names PKTAP: one
                // level is all there can be.
                links += 1;
                let rest = data.get(at..).unwrap_or(&[]);
                match encap::link(rest, link) {
                    Some(Ok(s)) if links == 1 && !matches!(s.next, Next::Link(_)) => {
                        at += s.len;
                        s.next
                    }
                    Some(Err(why)) => return fail(v, why, Layer::Link),
                    _ => return v.status = DecodeStatus::Undecoded,
                }
            }
            Next::Other(n) => {
                v.l3 = L3Proto::Other(n);
                return;
            }
        };
    }
    v.status = DecodeStatus::Malformed(Layer::Link);
}
