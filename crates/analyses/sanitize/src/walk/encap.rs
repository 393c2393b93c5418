//! The walker's layers below IP and its tunnels: link types, Ethernet, VLAN/QinQ, MPLS, the
//! shim headers (PPPoE/PPP, LLC/SNAP, E-Tag, MACsec, NSH) and the tunnel headers (GRE with
//! TEB/ERSPAN/WCCP/PPTP, VXLAN, VXLAN-GPE, GENEVE, MPLS over UDP, PIM register). Header
//! lengths and what follows each header come from the decoder's own readers
//! ([`netspectra_packet::decode::encap`]), so that `sanitize` rewrites the addresses of every
//! encapsulation `info`, `flows --inner` and `http` decode. What these headers carry besides
//! structure (a PKTAP header's process and interface names, NFLOG's prefix and ids, NSH
//! context headers, Juniper extensions) is zero-filled when anonymizing or masking; hardware
//! addresses that are not 6-byte MACs are zero-filled under the MAC policy, as SLL's are.

use super::{be16, AddrKind, Walker, MAX_DEPTH};
use crate::mask::Bucket;
use netspectra_packet::decode::encap::{self, Next, TunnelHeader};
use netspectra_packet::{LinkType, Tunnel};

impl Walker<'_> {
    /// Walks a frame of a link type other than Ethernet, raw IP, NULL/LOOP and SLL/SLL2 (those
    /// have their own code in [`Walker::frame`]).
    pub(super) fn other_link(&mut self, buf: &mut [u8], link: LinkType, end: usize) {
        let step = match encap::link(buf, link) {
            Some(Ok(s)) => s,
            _ => return self.unparsed(buf, 0, end),
        };
        self.scrub_link_header(buf, link, step.len);
        self.next(buf, step.next, step.len, end, 0);
    }

    /// Zero-fills what a pseudo-header carries besides structure (see the module doc).
    fn scrub_link_header(&mut self, buf: &mut [u8], link: LinkType, len: usize) {
        let scrub = self.anon.is_some() || self.masking();
        match link {
            // Length, record type and inner link type stay; names, process ids and flags go.
            LinkType::PKTAP | LinkType::USER2 if scrub => buf[12..len].fill(0),
            LinkType::NFLOG if scrub => {
                // TLVs: every value but the packet header (1) and the payload (9) goes.
                let mut at = 4;
                while at + 4 <= len {
                    let l = u16::from_le_bytes([buf[at], buf[at + 1]]) as usize;
                    let ty = u16::from_le_bytes([buf[at + 2], buf[at + 3]]) & 0x7fff;
                    if l < 4 {
                        break;
                    }
                    if ty != 1 && ty != 9 {
                        let e = (at + l).min(buf.len());
                        buf[at + 4..e].fill(0);
                    }
                    at += (l + 3) & !3;
                }
            }
            LinkType::JUNIPER_ETHER if scrub && len > 6 => buf[6..len].fill(0),
            // Destination and source InfiniBand hardware addresses (20 bytes each).
            LinkType::IPOIB if self.anon.as_ref().is_some_and(|a| a.maps_macs()) => {
                buf[..40].fill(0)
            }
            _ => {}
        }
    }

    /// Continues the walk at `off` with the header `next` names.
    pub(super) fn next(&mut self, buf: &mut [u8], next: Next, off: usize, end: usize, depth: u8) {
        match next {
            Next::Ethernet => self.ether(buf, off, end, depth),
            Next::EtherType(et) => self.ethertype(buf, et, off, end, depth),
            Next::Ip => self.ip_by_version(buf, off, end, depth),
            Next::Mpls => self.ethertype(buf, 0x8847, off, end, depth),
            Next::Ppp => match encap::ppp(&buf[..end], off) {
                Ok(s) => self.next(buf, s.next, off + s.len, end, depth),
                Err(_) => self.unparsed(buf, off, end),
            },
            // A PKTAP header's inner link type: its own header, once.
            Next::Link(l) if depth == 0 => match encap::link(&buf[off..end], l) {
                Some(Ok(s)) if !matches!(s.next, Next::Link(_)) => {
                    self.next(buf, s.next, off + s.len, end, 1)
                }
                _ => self.unparsed(buf, off, end),
            },
            Next::Link(_) | Next::Other(_) => self.unparsed(buf, off, end),
        }
    }

    pub(super) fn ether(&mut self, buf: &mut [u8], off: usize, end: usize, depth: u8) {
        if off + 14 > end {
            self.unparsed(buf, off, end);
            return;
        }
        if self.anon.is_some() {
            self.addr(buf, off, AddrKind::Mac);
            self.addr(buf, off + 6, AddrKind::Mac);
        }
        let et = be16(buf, off + 12);
        self.ethertype(buf, et, off + 14, end, depth);
    }

    pub(super) fn ethertype(
        &mut self,
        buf: &mut [u8],
        mut et: u16,
        mut off: usize,
        end: usize,
        depth: u8,
    ) {
        // Each tag takes 4 bytes, so the loop ends with the frame.
        loop {
            match et {
                0x8100 | 0x88a8 | 0x9100 => {
                    if off + 4 > end {
                        self.unparsed(buf, off, end);
                        return;
                    }
                    et = be16(buf, off + 2);
                    off += 4;
                }
                0x8847 | 0x8848 => {
                    // MPLS: skip the label stack, then guess IPv4/IPv6 from the version nibble.
                    loop {
                        if off + 4 > end {
                            self.unparsed(buf, off, end);
                            return;
                        }
                        let bos = buf[off + 2] & 1 == 1;
                        off += 4;
                        if bos {
                            break;
                        }
                    }
                    self.ip_by_version(buf, off, end, depth);
                    return;
                }
                0x0800 => return self.ipv4(buf, off, end, depth, false),
                0x86dd => return self.ipv6(buf, off, end, depth, false),
                0x0806 => return self.arp(buf, off, end),
                0x6558 => return self.ether(buf, off, end, depth),
                _ => {
                    let step = match encap::shim(&buf[..end], off, et) {
                        Some(Ok(s)) => s,
                        _ => return self.unparsed(buf, off, end),
                    };
                    match et {
                        // The SecTAG's SCI starts with the sender's MAC address.
                        0x88e5 if step.len == 16 && self.anon.is_some() => {
                            self.addr(buf, off + 6, AddrKind::Mac)
                        }
                        // NSH context headers carry metadata (tenant, classification).
                        0x894f if step.len > 8 && (self.masking() || self.anon.is_some()) => {
                            self.wipe(buf, off + 8, off + step.len)
                        }
                        _ => {}
                    }
                    return self.next(buf, step.next, off + step.len, end, depth);
                }
            }
        }
    }

    /// GRE at `l4` (the IP payload), with its checksum when present, and what it carries.
    pub(super) fn gre(&mut self, buf: &mut [u8], l4: usize, end: usize, depth: u8) {
        if l4 + 4 > end {
            self.unparsed(buf, l4, end);
            return;
        }
        let flags = be16(buf, l4);
        let ts = match encap::gre(&buf[..end], l4) {
            Ok(ts) if depth < MAX_DEPTH => ts,
            _ => return self.unparsed(buf, l4 + 4, end),
        };
        if flags & 0x8000 != 0 && flags & 7 == 0 {
            self.scope(buf, super::CkKind::Gre, l4 + 4, l4, end, false, None);
        }
        self.next(buf, ts.step.next, l4 + ts.step.len, end, depth + 1);
    }

    /// A tunnel in a UDP payload at `pay` (told by the ports): walks what it carries and says
    /// so, or returns false when the payload is not a tunnel this walker reads.
    pub(super) fn udp_tunnel(
        &mut self,
        buf: &mut [u8],
        sp: u16,
        dp: u16,
        pay: usize,
        end: usize,
        depth: u8,
    ) -> bool {
        let Some(h) = TunnelHeader::udp(sp, dp) else {
            return false;
        };
        let ts = match encap::tunnel(&buf[..end], pay, h) {
            Ok(ts) if depth < MAX_DEPTH => ts,
            _ => return false,
        };
        if ts.kind == Tunnel::Geneve && self.masking() {
            // GENEVE options are opaque metadata.
            self.zero(buf, pay + 8, pay + ts.step.len, Bucket::Other);
        }
        self.next(buf, ts.step.next, pay + ts.step.len, end, depth + 1);
        true
    }

    /// A PIM register message at `l4`: the packet it carries, or false when it is another
    /// PIM message.
    pub(super) fn pim_register(
        &mut self,
        buf: &mut [u8],
        l4: usize,
        end: usize,
        depth: u8,
    ) -> bool {
        match encap::tunnel(&buf[..end], l4, TunnelHeader::PimRegister) {
            Ok(ts) if depth < MAX_DEPTH => {
                self.next(buf, ts.step.next, l4 + ts.step.len, end, depth + 1);
                true
            }
            _ => false,
        }
    }
}
