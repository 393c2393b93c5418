//! Addresses in IPv6 extension headers: routing header address lists and segment lists, and
//! home-address options.

use super::{AddrKind, Walker, OPT_HOME_ADDRESS};

/// Offset of the final destination inside the routing header at `p` (`l` bytes, captured up to
/// `ip_end`) while segments are left: the last address of a type 0 or 2 header, the first
/// entry of a segment list (type 4); `None` when the IPv6 destination is the final one.
pub(super) fn final_destination(buf: &[u8], p: usize, l: usize, ip_end: usize) -> Option<usize> {
    if buf[p + 3] == 0 {
        return None;
    }
    let at = match buf[p + 2] {
        0 | 2 => {
            let n = buf[p + 1] as usize / 2;
            if n == 0 {
                return None;
            }
            p + 8 + 16 * (n - 1)
        }
        4 => p + 8,
        _ => return None,
    };
    (at + 16 <= (p + l).min(ip_end)).then_some(at)
}

impl Walker<'_> {
    /// Rewrites the addresses of the noted extension headers (`(type, start, end)`, captured up
    /// to `ip_end`): routing header addresses and segment lists, and home address options.
    pub(super) fn anon_exts(&mut self, buf: &mut [u8], exts: &[(u8, usize, usize)], ip_end: usize) {
        if self.anon.is_none() {
            return;
        }
        for &(kind, p, hend) in exts {
            let hend = hend.min(ip_end);
            if kind == 43 {
                match buf[p + 2] {
                    // Source route (type 0, deprecated), Mobile IPv6 (type 2), segment
                    // routing (type 4, only its segment list): 16-byte addresses from byte 8.
                    0 | 2 | 4 => {
                        let n = if buf[p + 2] == 4 {
                            buf[p + 4] as usize + 1
                        } else {
                            buf[p + 1] as usize / 2
                        };
                        for k in 0..n {
                            let a = p + 8 + 16 * k;
                            if a >= hend {
                                break;
                            }
                            if a + 16 <= hend {
                                self.addr(buf, a, AddrKind::V6);
                            } else {
                                self.wipe(buf, a, hend);
                            }
                        }
                    }
                    // Other routing types (RPL's compressed addresses, ...): not understood.
                    _ => self.wipe(buf, (p + 8).min(hend), hend),
                }
                continue;
            }
            // Options: Pad1 is one byte, every other option is type, length, data.
            let mut q = p + 2;
            while q < hend {
                let t = buf[q];
                if t == 0 {
                    q += 1;
                    continue;
                }
                if q + 2 > hend {
                    break;
                }
                let len = buf[q + 1] as usize;
                if t == OPT_HOME_ADDRESS {
                    let a = q + 2;
                    if len == 16 && a + 16 <= hend {
                        self.addr(buf, a, AddrKind::V6);
                    } else {
                        self.wipe(buf, a.min(hend), (a + len).min(hend));
                    }
                }
                q += 2 + len;
            }
        }
    }
}
