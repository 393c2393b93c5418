//! ICMP and ICMPv6: the packets quoted in errors, redirect gateways, NDP and MLD addresses and
//! NDP options.

use super::{AddrKind, Walker};
use crate::checksum;
use crate::mask::Bucket;

impl Walker<'_> {
    pub(super) fn icmp(&mut self, buf: &mut [u8], l4: usize, end: usize, depth: u8) {
        if l4 + 8 > end {
            return;
        }
        let ty = buf[l4];
        match ty {
            3 | 4 | 5 | 11 | 12 => {
                if ty == 5 && self.anon.is_some() {
                    self.addr(buf, l4 + 4, AddrKind::V4);
                }
                if l4 + 8 < end {
                    self.ipv4(buf, l4 + 8, end, depth + 1, true);
                }
            }
            _ => {
                if self.masking() {
                    self.zero(buf, l4 + 8, end, Bucket::Other);
                }
            }
        }
    }

    pub(super) fn icmpv6(&mut self, buf: &mut [u8], l4: usize, end: usize, depth: u8) {
        if l4 + 8 > end {
            return;
        }
        let ty = buf[l4];
        let opts = match ty {
            1..=4 => {
                if l4 + 8 < end {
                    self.ipv6(buf, l4 + 8, end, depth + 1, true);
                }
                return;
            }
            130..=132 => {
                if l4 + 24 <= end && self.anon.is_some() {
                    self.addr(buf, l4 + 8, AddrKind::V6);
                }
                l4 + 24
            }
            133 => l4 + 8,
            134 => l4 + 16,
            135 | 136 => {
                if l4 + 24 <= end && self.anon.is_some() {
                    self.addr(buf, l4 + 8, AddrKind::V6);
                }
                l4 + 24
            }
            137 => {
                if l4 + 40 <= end && self.anon.is_some() {
                    self.addr(buf, l4 + 8, AddrKind::V6);
                    self.addr(buf, l4 + 24, AddrKind::V6);
                }
                l4 + 40
            }
            _ => {
                if self.masking() {
                    self.zero(buf, l4 + 8, end, Bucket::Other);
                }
                return;
            }
        };
        if (133..=137).contains(&ty) {
            self.ndp_options(buf, opts, end);
        } else if self.masking() && opts < end {
            self.zero(buf, opts, end, Bucket::Other);
        }
    }

    /// NDP options: link-layer addresses follow the MAC policy, prefixes are mapped, other
    /// option bodies are masked; type and length bytes stay so the packet still parses.
    fn ndp_options(&mut self, buf: &mut [u8], mut p: usize, end: usize) {
        while p + 2 <= end {
            let (ty, len) = (buf[p], buf[p + 1] as usize * 8);
            if len == 0 || p + len > end {
                self.unparsed(buf, p, end);
                return;
            }
            match ty {
                1 | 2 if len == 8 => {
                    if self.anon.is_some() {
                        self.addr(buf, p + 2, AddrKind::Mac);
                    }
                }
                3 if len == 32 => {
                    if self.anon.is_some() {
                        let bits = buf[p + 2].min(128) as u32;
                        self.addr(buf, p + 16, AddrKind::V6);
                        let mut x = [0u8; 16];
                        x.copy_from_slice(&buf[p + 16..p + 32]);
                        let keep = if bits == 0 {
                            0
                        } else {
                            u128::MAX << (128 - bits)
                        };
                        let v = u128::from_be_bytes(x) & keep;
                        let before = checksum::sum(&buf[p + 16..p + 32], false);
                        buf[p + 16..p + 32].copy_from_slice(&v.to_be_bytes());
                        let after = checksum::sum(&buf[p + 16..p + 32], false);
                        self.changed(p + 16, before, after);
                    }
                }
                5 => {}
                _ => {
                    if self.masking() {
                        self.zero(buf, p + 2, p + len, Bucket::Other);
                    }
                }
            }
            p += len;
        }
        self.unparsed(buf, p, end);
    }
}
