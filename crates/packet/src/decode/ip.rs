//! IPv4, IPv6 (with its extension headers) and the transport headers, read through
//! `etherparse`'s slicing parsers. A tunnel (GRE, IP-in-IP, a UDP tunnel port) is only noted
//! in the walk's [`Cx`] here; the caller decodes the packet inside it afterwards.

use super::encap::TunnelHeader;
use super::view::{ip_proto, DecodeStatus, Fragment, L3Proto, Layer, PacketView, TcpFlags};
use super::{Cx, Pending};
use crate::IpPair;
use etherparse::{
    IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv6 extension headers followed before giving up.
const MAX_IPV6_EXT: usize = 16;

/// Decodes the IPv4 header at `at` and what it carries.
pub(super) fn ipv4(data: &[u8], at: usize, v: &mut PacketView, cx: &mut Cx) {
    let rest = data.get(at..).unwrap_or(&[]);
    v.l3 = L3Proto::Ipv4;
    v.l3_offset = at as u32;
    let h = match Ipv4HeaderSlice::from_slice(rest) {
        Ok(h) => h,
        Err(etherparse::err::ipv4::HeaderSliceError::Len(_)) => {
            v.status = DecodeStatus::Truncated(Layer::Ipv4);
            return;
        }
        Err(etherparse::err::ipv4::HeaderSliceError::Content(_)) => {
            v.status = DecodeStatus::Malformed(Layer::Ipv4);
            return;
        }
    };
    let hlen = h.slice().len();
    let total = h.total_len() as usize;
    v.ip = Some(IpPair {
        src: IpAddr::V4(Ipv4Addr::from(h.source())),
        dst: IpAddr::V4(Ipv4Addr::from(h.destination())),
    });
    v.proto = h.protocol().0;
    v.ttl = h.ttl();
    let ip_end = if total == 0 {
        // TSO/GSO frames captured before segmentation carry 0 here.
        v.ip_len = rest.len() as u32;
        rest.len()
    } else if total < hlen {
        v.ip_len = total as u32;
        v.status = DecodeStatus::Malformed(Layer::Ipv4);
        return;
    } else {
        v.ip_len = total as u32;
        total.min(rest.len())
    };
    let frag_off = h.fragments_offset().value();
    if h.more_fragments() || frag_off != 0 {
        v.frag_id = h.identification() as u32;
        if frag_off != 0 {
            v.fragment = Fragment::Later;
            v.payload_offset = (at + hlen) as u32;
            v.payload_len = ip_end.saturating_sub(hlen) as u32;
            return;
        }
        v.fragment = Fragment::First;
    }
    l4(data, at + hlen, at + ip_end, v.proto, v, cx);
}

/// Decodes the IPv6 header at `at`, its extension headers, and what it carries.
pub(super) fn ipv6(data: &[u8], at: usize, v: &mut PacketView, cx: &mut Cx) {
    let rest = data.get(at..).unwrap_or(&[]);
    v.l3 = L3Proto::Ipv6;
    v.l3_offset = at as u32;
    let h = match Ipv6HeaderSlice::from_slice(rest) {
        Ok(h) => h,
        Err(etherparse::err::ipv6::HeaderSliceError::Len(_)) => {
            v.status = DecodeStatus::Truncated(Layer::Ipv6);
            return;
        }
        Err(etherparse::err::ipv6::HeaderSliceError::Content(_)) => {
            v.status = DecodeStatus::Malformed(Layer::Ipv6);
            return;
        }
    };
    v.ip = Some(IpPair {
        src: IpAddr::V6(Ipv6Addr::from(h.source())),
        dst: IpAddr::V6(Ipv6Addr::from(h.destination())),
    });
    v.ttl = h.hop_limit();
    let plen = h.payload_length() as usize;
    let ip_end = if plen == 0 {
        v.ip_len = rest.len() as u32;
        rest.len()
    } else {
        v.ip_len = (40 + plen) as u32;
        (40 + plen).min(rest.len())
    };
    let end = at + ip_end;
    let mut next = h.next_header().0;
    let mut off = at + 40;
    for _ in 0..MAX_IPV6_EXT {
        let ext = data.get(off..end).unwrap_or(&[]);
        match next {
            0 | 43 | 60 | 135 | 139 | 140 => match Ipv6RawExtHeaderSlice::from_slice(ext) {
                Ok(e) => {
                    next = e.next_header().0;
                    off += e.slice().len();
                }
                Err(_) => {
                    v.proto = next;
                    v.status = DecodeStatus::Truncated(Layer::Ipv6Ext);
                    return;
                }
            },
            44 => match Ipv6FragmentHeaderSlice::from_slice(ext) {
                Ok(f) => {
                    next = f.next_header().0;
                    off += 8;
                    if f.is_fragmenting_payload() {
                        v.frag_id = f.identification();
                        if f.fragment_offset().value() != 0 {
                            v.proto = next;
                            v.fragment = Fragment::Later;
                            v.payload_offset = off as u32;
                            v.payload_len = end.saturating_sub(off) as u32;
                            return;
                        }
                        v.fragment = Fragment::First;
                    }
                }
                Err(_) => {
                    v.proto = next;
                    v.status = DecodeStatus::Truncated(Layer::Ipv6Ext);
                    return;
                }
            },
            51 => match IpAuthHeaderSlice::from_slice(ext) {
                Ok(a) => {
                    next = a.next_header().0;
                    off += a.slice().len();
                }
                Err(etherparse::err::ip_auth::HeaderSliceError::Len(_)) => {
                    v.proto = next;
                    v.status = DecodeStatus::Truncated(Layer::Ipv6Ext);
                    return;
                }
                Err(_) => {
                    v.proto = next;
                    v.status = DecodeStatus::Malformed(Layer::Ipv6Ext);
                    return;
                }
            },
            _ => break,
        }
    }
    v.proto = next;
    l4(data, off, end, next, v, cx);
}

/// Decodes the transport header at `at` (the IP payload ends at `end`).
fn l4(data: &[u8], at: usize, end: usize, proto: u8, v: &mut PacketView, cx: &mut Cx) {
    let seg = data.get(at..end).unwrap_or(&[]);
    match proto {
        ip_proto::TCP => match TcpHeaderSlice::from_slice(seg) {
            Ok(t) => {
                let hl = t.slice().len();
                v.l4_offset = at as u32;
                v.src_port = t.source_port();
                v.dst_port = t.destination_port();
                v.tcp_seq = t.sequence_number();
                v.tcp_ack = t.acknowledgment_number();
                v.tcp_flags = TcpFlags(t.slice()[13]);
                v.payload_offset = (at + hl) as u32;
                v.payload_len = (seg.len() - hl) as u32;
            }
            Err(etherparse::err::tcp::HeaderSliceError::Len(_)) => {
                v.status = DecodeStatus::Truncated(Layer::Tcp)
            }
            Err(_) => v.status = DecodeStatus::Malformed(Layer::Tcp),
        },
        ip_proto::UDP => match UdpHeaderSlice::from_slice(seg) {
            Ok(u) => {
                v.l4_offset = at as u32;
                v.src_port = u.source_port();
                v.dst_port = u.destination_port();
                v.payload_offset = (at + 8) as u32;
                v.payload_len = (seg.len() - 8) as u32;
                if cx.tunnels {
                    if let Some(header) = TunnelHeader::udp(v.src_port, v.dst_port) {
                        cx.pending = Some(Pending {
                            header,
                            at: at + 8,
                            end,
                        });
                    }
                }
            }
            Err(_) => v.status = DecodeStatus::Truncated(Layer::Udp),
        },
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            if seg.len() < 4 {
                v.status = DecodeStatus::Truncated(Layer::Icmp);
                return;
            }
            v.l4_offset = at as u32;
            v.icmp_type = seg[0];
            v.icmp_code = seg[1];
            // Echo request/reply and similar carry their payload after an 8-byte header.
            let hl = 8.min(seg.len());
            v.payload_offset = (at + hl) as u32;
            v.payload_len = (seg.len() - hl) as u32;
        }
        // SCTP, DCCP and UDP-Lite start with the two ports, like TCP and UDP.
        ip_proto::SCTP | ip_proto::DCCP | ip_proto::UDPLITE => {
            let hl = match proto {
                ip_proto::SCTP => 12,
                ip_proto::DCCP => seg.get(4).map_or(16, |&o| (o as usize * 4).max(12)),
                _ => 8,
            };
            if seg.len() < 4 {
                v.status = DecodeStatus::Truncated(Layer::Transport);
                return;
            }
            v.l4_offset = at as u32;
            v.src_port = u16::from_be_bytes([seg[0], seg[1]]);
            v.dst_port = u16::from_be_bytes([seg[2], seg[3]]);
            let hl = hl.min(seg.len());
            v.payload_offset = (at + hl) as u32;
            v.payload_len = (seg.len() - hl) as u32;
        }
        _ => {
            v.payload_offset = at as u32;
            v.payload_len = seg.len() as u32;
            if cx.tunnels {
                if let Some(header) = TunnelHeader::ip(proto) {
                    cx.pending = Some(Pending { header, at, end });
                }
            }
        }
    }
}
