//! Addresses inside kept DNS messages (A and AAAA records, the EDNS client subnet).

use super::{be16, AddrKind, Walker};
use crate::checksum;

/// End of the (possibly compressed) DNS name at `p`, or `None` when it runs past `end`.
fn skip_dns_name(buf: &[u8], mut p: usize, end: usize) -> Option<usize> {
    loop {
        let l = *buf.get(p).filter(|_| p < end)? as usize;
        match l {
            0 => return Some(p + 1),
            l if l & 0xc0 == 0xc0 => return (p + 2 <= end).then_some(p + 2),
            l if l & 0xc0 == 0 => p += 1 + l,
            _ => return None,
        }
    }
}

impl Walker<'_> {
    /// True when addresses are rewritten and DNS payloads stay (no masking, or `keep_dns`).
    pub(super) fn keeps_dns(&self) -> bool {
        self.anon.is_some() && self.masker.as_deref().is_none_or(|m| m.keeps_dns())
    }

    /// Rewrites the addresses a kept DNS message in `buf[msg..end]` carries: A and AAAA
    /// records of every section, and the client subnet of an EDNS option (RFC 7871, mapped
    /// like a whole address, then cut to its source prefix). Parsing stops at the first thing
    /// out of bounds; what was rewritten stays rewritten.
    pub(super) fn dns_addresses(&mut self, buf: &mut [u8], msg: usize, end: usize) {
        if msg + 12 > end {
            return;
        }
        let count = |i: usize| be16(buf, msg + 4 + 2 * i) as usize;
        let (qd, rrs) = (count(0), count(1) + count(2) + count(3));
        let mut p = msg + 12;
        for _ in 0..qd {
            let Some(q) = skip_dns_name(buf, p, end) else {
                return;
            };
            p = q + 4;
        }
        for _ in 0..rrs {
            let Some(q) = skip_dns_name(buf, p, end) else {
                return;
            };
            if q + 10 > end {
                return;
            }
            let (rtype, rdlen) = (be16(buf, q), be16(buf, q + 8) as usize);
            let rdata = q + 10;
            if rdata + rdlen > end {
                return;
            }
            match (rtype, rdlen) {
                (1, 4) => self.addr(buf, rdata, AddrKind::V4),
                (28, 16) => self.addr(buf, rdata, AddrKind::V6),
                (41, _) => self.dns_client_subnet(buf, rdata, rdata + rdlen),
                _ => {}
            }
            p = rdata + rdlen;
        }
    }

    /// Maps the address of an EDNS client-subnet option among the options in `buf[p..end]`.
    fn dns_client_subnet(&mut self, buf: &mut [u8], mut p: usize, end: usize) {
        while p + 4 <= end {
            let (code, len) = (be16(buf, p), be16(buf, p + 2) as usize);
            let data = p + 4;
            if data + len > end {
                return;
            }
            if code == 8 && len >= 4 {
                let (family, bits) = (be16(buf, data), buf[data + 2] as usize);
                let alen = match family {
                    1 => 4,
                    2 => 16,
                    _ => 0,
                };
                let n = len - 4;
                if alen > 0 && n <= alen {
                    // Prefix-preserving: the first `bits` of the mapped whole address depend
                    // only on the first `bits` of the original.
                    let mut whole = [0u8; 16];
                    whole[..n].copy_from_slice(&buf[data + 4..data + 4 + n]);
                    if let Some(a) = self.anon.as_deref_mut() {
                        if alen == 4 {
                            a.rewrite_v4(&mut whole[..4]);
                        } else {
                            a.rewrite_v6(&mut whole);
                        }
                    }
                    let bits = bits.min(8 * n);
                    for (i, b) in whole.iter_mut().enumerate().take(n) {
                        let keep = bits.saturating_sub(8 * i).min(8);
                        *b &= !(0xffu8.checked_shr(keep as u32).unwrap_or(0));
                    }
                    let field = data + 4;
                    let old = checksum::sum(&buf[field..field + n], false);
                    buf[field..field + n].copy_from_slice(&whole[..n]);
                    let new = checksum::sum(&buf[field..field + n], false);
                    self.changed(field, old, new);
                }
            }
            p = data + len;
        }
    }
}
