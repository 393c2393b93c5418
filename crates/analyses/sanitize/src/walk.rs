//! Walks one frame layer by layer over a mutable buffer: rewrites every address it understands
//! (outer and tunnelled headers, packets quoted in ICMP errors, ARP, NDP; the layers below IP
//! and the tunnels are in [`encap`]), applies the masking
//! rules above each transport header, masks everything above the last layer understood, and
//! keeps each checksum exactly as right or wrong as it was.

use crate::anon::Anonymizer;
use crate::checksum;
use crate::mask::{is_dns_port, Act, Bucket, DirKey, Masker};
use netspectra_packet::LinkType;

mod dns;
mod encap;
mod icmp;
mod ipv6_ext;

use ipv6_ext::final_destination;

/// Deepest encapsulation followed (tunnels and ICMP quotes); deeper layers are masked.
const MAX_DEPTH: u8 = 6;
/// Checksums tracked per frame.
const MAX_SCOPES: usize = 24;
/// IPv6 extension headers that may carry addresses (routing, hop-by-hop and destination
/// options) rewritten per IPv6 header; from a further one on, the rest is not understood.
const MAX_ADDR_EXTS: usize = 4;
/// IPv6 destination option carrying a Mobile IPv6 home address (RFC 6275).
const OPT_HOME_ADDRESS: u8 = 0xc9;

/// Kinds of checksums, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CkKind {
    /// IPv4 header.
    Ipv4 = 0,
    /// TCP.
    Tcp = 1,
    /// UDP.
    Udp = 2,
    /// ICMP.
    Icmp = 3,
    /// ICMPv6.
    Icmpv6 = 4,
    /// GRE.
    Gre = 5,
}

/// Names of [`CkKind`] values by index.
pub const CK_NAMES: [&str; 6] = ["ipv4", "tcp", "udp", "icmp", "icmpv6", "gre"];

#[derive(Clone, Copy, Debug, Default)]
struct Scope {
    kind: u8,
    ck: usize,
    start: usize,
    /// End of the covered bytes that were captured.
    end: usize,
    /// True when every covered byte was captured and the packet is not a fragment.
    complete: bool,
    /// Pseudo-header: source and destination offsets and address length (0: none).
    src: usize,
    dst: usize,
    alen: usize,
    proto: u8,
    l4len: u32,
    /// Sums of the bytes changed inside the scope, before and after (sanitize mode).
    acc_old: u64,
    acc_new: u64,
}

/// Kinds of address fields.
#[derive(Clone, Copy)]
enum AddrKind {
    V4,
    V6,
    Mac,
}

/// Per-frame results of a walk.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameResult {
    /// Bit `k` set: a checksum of kind `k` ([`CkKind`]) does not verify (inspect mode, complete
    /// data only).
    pub bad_checksums: u8,
    /// Checksums of complete data that were verified (inspect mode).
    pub checked: u8,
    /// The frame had a part that could not be parsed (masked).
    pub unparsed: bool,
}

/// Address pair of the current IP layer, as captured (before rewriting), for flow keys.
#[derive(Clone, Copy)]
struct Ip {
    src: [u8; 16],
    dst: [u8; 16],
    /// Offsets of the address fields and their length.
    src_off: usize,
    dst_off: usize,
    alen: usize,
    /// The transport header is present (not a later fragment).
    first: bool,
    /// The packet is a fragment (first or later).
    frag: bool,
    /// Inside an ICMP error quote: transport payload beyond 8 bytes is masked, not parsed.
    quoted: bool,
}

/// Scratch space for the checksum scopes of a walk, kept by the caller across frames so that a
/// walk does not initialize (and move) this ~2 KiB array for every frame.
#[derive(Clone, Debug)]
pub struct Scopes([Scope; MAX_SCOPES]);

impl Default for Scopes {
    fn default() -> Self {
        Scopes([Scope::default(); MAX_SCOPES])
    }
}

/// One walk over one frame.
pub struct Walker<'a> {
    /// Address mapping (None: addresses unchanged).
    pub anon: Option<&'a mut Anonymizer>,
    /// Payload rules (None: payloads unchanged).
    pub masker: Option<&'a mut Masker>,
    /// Keep/mask application and counts.
    pub act: &'a mut Act,
    /// Capture time, for flow idle timeouts.
    pub ts_ns: i64,
    scopes: &'a mut [Scope; MAX_SCOPES],
    nscopes: usize,
    res: FrameResult,
}

#[inline]
fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

impl<'a> Walker<'a> {
    /// Prepares a walk.
    pub fn new(
        anon: Option<&'a mut Anonymizer>,
        masker: Option<&'a mut Masker>,
        act: &'a mut Act,
        scopes: &'a mut Scopes,
        ts_ns: i64,
    ) -> Self {
        Walker {
            anon,
            masker,
            act,
            ts_ns,
            // Only the first `nscopes` entries are read, so the scratch is not cleared.
            scopes: &mut scopes.0,
            nscopes: 0,
            res: FrameResult::default(),
        }
    }

    fn masking(&self) -> bool {
        self.masker.is_some()
    }

    /// Masks `buf[from..to]` as not understood (when masking).
    fn unparsed(&mut self, buf: &mut [u8], from: usize, to: usize) {
        if from < to && self.masking() {
            self.res.unparsed = true;
            self.zero(buf, from, to, Bucket::Unparsed);
        }
    }

    /// Processes a whole frame of link type `link`.
    pub fn frame(mut self, buf: &mut [u8], link: LinkType) -> FrameResult {
        let end = buf.len();
        match link {
            LinkType::ETHERNET => self.ether(buf, 0, end, 0),
            LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 => {
                self.ip_by_version(buf, 0, end, 0)
            }
            LinkType::IPV4 => self.ipv4(buf, 0, end, 0, false),
            LinkType::IPV6 => self.ipv6(buf, 0, end, 0, false),
            LinkType::NULL | LinkType::LOOP => {
                if end < 4 {
                    self.unparsed(buf, 0, end);
                } else {
                    let le = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    let be = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    let fam = if link == LinkType::LOOP {
                        be
                    } else {
                        le.min(be)
                    };
                    match fam {
                        2 => self.ipv4(buf, 4, end, 0, false),
                        24 | 28 | 30 => self.ipv6(buf, 4, end, 0, false),
                        _ => self.unparsed(buf, 4, end),
                    }
                }
            }
            LinkType::LINUX_SLL => {
                if end < 16 {
                    self.unparsed(buf, 0, end);
                } else {
                    let alen = be16(buf, 4) as usize;
                    if be16(buf, 2) == 1 && alen == 6 {
                        if self.anon.is_some() {
                            self.addr(buf, 6, AddrKind::Mac);
                        }
                    } else if self.anon.as_ref().is_some_and(|a| a.maps_macs()) {
                        buf[6..14].fill(0);
                    }
                    let et = be16(buf, 14);
                    self.ethertype(buf, et, 16, end, 0);
                }
            }
            LinkType::LINUX_SLL2 => {
                if end < 20 {
                    self.unparsed(buf, 0, end);
                } else {
                    if be16(buf, 8) == 1 && buf[11] == 6 {
                        if self.anon.is_some() {
                            self.addr(buf, 12, AddrKind::Mac);
                        }
                    } else if self.anon.as_ref().is_some_and(|a| a.maps_macs()) {
                        buf[12..20].fill(0);
                    }
                    let et = be16(buf, 0);
                    self.ethertype(buf, et, 20, end, 0);
                }
            }
            _ => self.other_link(buf, link, end),
        }
        self.finish(buf);
        self.res
    }

    /// Sets every touched checksum, innermost first (a checksum field is itself a change to the
    /// scopes around it).
    fn finish(&mut self, buf: &mut [u8]) {
        for i in (0..self.nscopes).rev() {
            let s = self.scopes[i];
            if self.act.inspect {
                if s.complete {
                    self.res.checked |= 1 << s.kind;
                    let full = self.scope_sum(buf, &s, true);
                    let total = checksum::add(full, be16(buf, s.ck));
                    let ok = total == 0xffff
                        || (s.kind == CkKind::Udp as u8 && be16(buf, s.ck) == 0 && s.alen == 4);
                    if !ok {
                        self.res.bad_checksums |= 1 << s.kind;
                    }
                }
                continue;
            }
            let (before, after) = (checksum::fold(s.acc_old), checksum::fold(s.acc_new));
            if before == after {
                continue;
            }
            let old = be16(buf, s.ck);
            if s.kind == CkKind::Udp as u8 && old == 0 {
                continue; // No checksum.
            }
            let mut new = checksum::adjust(old, before, after);
            if s.kind == CkKind::Udp as u8 && new == 0 {
                new = 0xffff;
            } else if new == 0 && s.complete && self.scope_sum(buf, &s, true) == 0 {
                // One's complement has two zeros, and the incremental rule can give 0x0000
                // where covered bytes that are all zero (an ICMP echo with id, sequence and
                // masked payload 0) need 0xffff. Rare: only then are the bytes summed.
                new = 0xffff;
            }
            buf[s.ck..s.ck + 2].copy_from_slice(&new.to_be_bytes());
            self.changed_in(i, s.ck, old, new);
        }
    }

    /// Records that the bytes at `at` changed from summing to `old` to summing to `new` (sums
    /// taken from `at`), for every registered scope covering them or using them as pseudo
    /// header.
    fn changed(&mut self, at: usize, old: u16, new: u16) {
        self.changed_in(self.nscopes, at, old, new);
    }

    fn changed_in(&mut self, n: usize, at: usize, old: u16, new: u16) {
        if old == new {
            return;
        }
        for s in &mut self.scopes[..n] {
            if at >= s.start && at < s.end && !(at >= s.ck && at < s.ck + 2) {
                let (o, w) = if (at - s.start) % 2 == 1 {
                    (old.swap_bytes(), new.swap_bytes())
                } else {
                    (old, new)
                };
                s.acc_old += o as u64;
                s.acc_new += w as u64;
            }
            if s.alen > 0 && (at == s.src || at == s.dst) {
                s.acc_old += old as u64;
                s.acc_new += new as u64;
            }
        }
    }

    /// Rewrites an address field through the anonymizer, accounting for checksums.
    fn addr(&mut self, buf: &mut [u8], off: usize, kind: AddrKind) {
        let Some(a) = self.anon.as_deref_mut() else {
            return;
        };
        let len = match kind {
            AddrKind::V4 => 4,
            AddrKind::V6 => 16,
            AddrKind::Mac => 6,
        };
        let field = &mut buf[off..off + len];
        let old = checksum::sum(field, false);
        match kind {
            AddrKind::V4 => a.rewrite_v4(field),
            AddrKind::V6 => a.rewrite_v6(field),
            AddrKind::Mac => a.rewrite_mac(field),
        }
        let new = checksum::sum(field, false);
        self.changed(off, old, new);
    }

    /// Zero-fills `buf[from..to]` (when masking), accounting for checksums.
    fn zero(&mut self, buf: &mut [u8], from: usize, to: usize, b: Bucket) {
        if from >= to || self.masker.is_none() {
            return;
        }
        let before = self.act.zeroed;
        self.act.mask(&mut buf[from..to], from, b, None);
        self.after_mask(from, before);
    }

    /// Accounts for bytes the masking rules zeroed since `before`, all inside the range that
    /// starts at `at`.
    fn after_mask(&mut self, at: usize, before: u64) {
        let d = self.act.zeroed - before;
        if d == 0 {
            return;
        }
        // `zeroed` sums are aligned to the frame start; make them relative to `at`.
        let abs = checksum::fold(d);
        let rel = if at % 2 == 1 { abs.swap_bytes() } else { abs };
        self.changed(at, rel, 0);
    }

    /// Sum of a scope's covered bytes with its checksum field taken as zero, plus the pseudo
    /// header addresses (and, when `full`, its protocol and length).
    fn scope_sum(&self, buf: &[u8], s: &Scope, full: bool) -> u16 {
        let mut acc: u64 = 0;
        acc += checksum::sum(&buf[s.start..s.ck], false) as u64;
        let after = (s.ck + 2).min(s.end);
        acc += checksum::sum(&buf[after..s.end], (after - s.start) % 2 == 1) as u64;
        if s.alen > 0 {
            acc += checksum::sum(&buf[s.src..s.src + s.alen], false) as u64;
            acc += checksum::sum(&buf[s.dst..s.dst + s.alen], false) as u64;
            if full {
                acc += s.proto as u64 + (s.l4len >> 16) as u64 + (s.l4len & 0xffff) as u64;
            }
        }
        checksum::fold(acc)
    }

    /// Registers a checksum before anything it covers is changed.
    #[allow(clippy::too_many_arguments)]
    fn scope(
        &mut self,
        buf: &[u8],
        kind: CkKind,
        ck: usize,
        start: usize,
        end: usize,
        complete: bool,
        pseudo: Option<(&Ip, u8, u32)>,
    ) {
        if self.nscopes == MAX_SCOPES || ck + 2 > end || start > ck {
            return;
        }
        let (src, dst, alen, proto, l4len) = match pseudo {
            Some((ip, p, l)) => (ip.src_off, ip.dst_off, ip.alen, p, l),
            None => (0, 0, 0, 0, 0),
        };
        let s = Scope {
            kind: kind as u8,
            ck,
            start,
            end,
            complete,
            src,
            dst,
            alen,
            proto,
            l4len,
            acc_old: 0,
            acc_new: 0,
        };
        let _ = buf;
        self.scopes[self.nscopes] = s;
        self.nscopes += 1;
    }

    fn arp(&mut self, buf: &mut [u8], off: usize, end: usize) {
        if off + 8 > end {
            self.unparsed(buf, off, end);
            return;
        }
        let (ptype, hlen, plen) = (
            be16(buf, off + 2),
            buf[off + 4] as usize,
            buf[off + 5] as usize,
        );
        let body = off + 8 + 2 * (hlen + plen);
        if ptype != 0x0800 || hlen != 6 || plen != 4 || body > end {
            self.unparsed(buf, off + 8, end);
            return;
        }
        if self.anon.is_some() {
            let (sha, spa, tha, tpa) = (off + 8, off + 14, off + 18, off + 24);
            self.addr(buf, sha, AddrKind::Mac);
            self.addr(buf, spa, AddrKind::V4);
            self.addr(buf, tha, AddrKind::Mac);
            self.addr(buf, tpa, AddrKind::V4);
        }
        self.trailer(buf, body, end);
    }

    fn trailer(&mut self, buf: &mut [u8], from: usize, end: usize) {
        if from < end && self.masking() {
            self.zero(buf, from, end, Bucket::Trailer);
        }
    }

    fn ip_by_version(&mut self, buf: &mut [u8], off: usize, end: usize, depth: u8) {
        match buf.get(off).map(|b| b >> 4) {
            Some(4) => self.ipv4(buf, off, end, depth, false),
            Some(6) => self.ipv6(buf, off, end, depth, false),
            _ => self.unparsed(buf, off, end),
        }
    }

    fn ipv4(&mut self, buf: &mut [u8], off: usize, end: usize, depth: u8, quoted: bool) {
        if depth > MAX_DEPTH || off + 20 > end || buf[off] >> 4 != 4 || buf[off] & 0xf < 5 {
            self.unparsed(buf, off, end);
            return;
        }
        let hl = (buf[off] & 0xf) as usize * 4;
        if off + hl > end {
            self.unparsed(buf, off, end);
            return;
        }
        let total = be16(buf, off + 2) as usize;
        // A zero length is seen on captures of TCP segmentation offload: use the captured end.
        let declared_end = if total == 0 { usize::MAX } else { off + total };
        if total != 0 && total < hl {
            self.unparsed(buf, off + hl, end);
            return;
        }
        let ip_end = declared_end.min(end);
        let frag = be16(buf, off + 6);
        let frag_off = frag & 0x1fff;
        let more = frag & 0x2000 != 0;
        let mut ip = Ip {
            src: [0; 16],
            dst: [0; 16],
            src_off: off + 12,
            dst_off: off + 16,
            alen: 4,
            first: frag_off == 0,
            frag: frag_off != 0 || more,
            quoted,
        };
        ip.src[12..].copy_from_slice(&buf[off + 12..off + 16]);
        ip.dst[12..].copy_from_slice(&buf[off + 16..off + 20]);
        self.scope(buf, CkKind::Ipv4, off + 10, off, off + hl, true, None);
        let proto = buf[off + 9];
        let l4 = off + hl;
        let l4_complete = declared_end <= end && !ip.frag && !quoted;
        let l4len = declared_end.saturating_sub(l4).min(u32::MAX as usize) as u32;
        if ip.first {
            self.l4_scope(buf, proto, l4, ip_end, l4_complete, &ip, l4len);
        }
        if self.anon.is_some() {
            self.addr(buf, off + 12, AddrKind::V4);
            self.addr(buf, off + 16, AddrKind::V4);
        }
        if hl > 20 && self.masking() {
            // Options can carry addresses (record route, timestamps): zero them (EOL padding).
            self.zero(buf, off + 20, l4, Bucket::Unparsed);
        }
        self.l4(buf, proto, l4, ip_end, depth, &ip);
        if !quoted {
            self.trailer(buf, ip_end, end);
        }
    }

    fn ipv6(&mut self, buf: &mut [u8], off: usize, end: usize, depth: u8, quoted: bool) {
        if depth > MAX_DEPTH || off + 40 > end || buf[off] >> 4 != 6 {
            self.unparsed(buf, off, end);
            return;
        }
        let plen = be16(buf, off + 4) as usize;
        let declared_end = if plen == 0 {
            usize::MAX
        } else {
            off + 40 + plen
        };
        let ip_end = declared_end.min(end);
        let mut ip = Ip {
            src: [0; 16],
            dst: [0; 16],
            src_off: off + 8,
            dst_off: off + 24,
            alen: 16,
            first: true,
            frag: false,
            quoted,
        };
        ip.src.copy_from_slice(&buf[off + 8..off + 24]);
        ip.dst.copy_from_slice(&buf[off + 24..off + 40]);
        // Extension headers. Those that can carry addresses (routing headers, hop-by-hop and
        // destination options with a home address) are noted and rewritten once the checksum
        // scopes are registered.
        let mut next = buf[off + 6];
        let mut p = off + 40;
        let mut exts = [(0u8, 0usize, 0usize); MAX_ADDR_EXTS];
        let mut nexts = 0;
        // Start of a header beyond the ones noted (its addresses are not understood).
        let mut overflow = None;
        loop {
            match next {
                0 | 43 | 60 | 135 | 139 | 140 => {
                    if p + 8 > ip_end {
                        break;
                    }
                    let l = (buf[p + 1] as usize + 1) * 8;
                    if matches!(next, 0 | 43 | 60) {
                        if nexts == MAX_ADDR_EXTS {
                            overflow = Some(p);
                            break;
                        }
                        exts[nexts] = (next, p, p + l);
                        nexts += 1;
                        if next == 43 {
                            if let Some(d) = final_destination(buf, p, l, ip_end) {
                                // The transport pseudo-header uses the final destination
                                // (RFC 8200 8.1).
                                ip.dst_off = d;
                            }
                        }
                    }
                    next = buf[p];
                    p += l;
                }
                51 => {
                    if p + 8 > ip_end {
                        break;
                    }
                    let l = (buf[p + 1] as usize + 2) * 4;
                    next = buf[p];
                    p += l;
                }
                44 => {
                    if p + 8 > ip_end {
                        break;
                    }
                    let fo = be16(buf, p + 2);
                    ip.frag = true;
                    ip.first = fo >> 3 == 0;
                    next = buf[p];
                    p += 8;
                }
                _ => break,
            }
            if p > ip_end {
                break;
            }
        }
        if p > ip_end || overflow.is_some() {
            self.anon_v6(buf, off);
            self.anon_exts(buf, &exts[..nexts], ip_end);
            if let (Some(at), true) = (overflow, self.anon.is_some()) {
                // Addresses that are not understood are not passed through.
                self.wipe(buf, at, ip_end);
            }
            self.unparsed(buf, off + 40, ip_end);
            if !quoted {
                self.trailer(buf, ip_end, end);
            }
            return;
        }
        let l4_complete = declared_end <= end && !ip.frag && !quoted;
        let l4len = declared_end.saturating_sub(p).min(u32::MAX as usize) as u32;
        if ip.first {
            self.l4_scope(buf, next, p, ip_end, l4_complete, &ip, l4len);
        }
        self.anon_v6(buf, off);
        self.anon_exts(buf, &exts[..nexts], ip_end);
        self.l4(buf, next, p, ip_end, depth, &ip);
        if !quoted {
            self.trailer(buf, ip_end, end);
        }
    }

    fn anon_v6(&mut self, buf: &mut [u8], off: usize) {
        if self.anon.is_some() {
            self.addr(buf, off + 8, AddrKind::V6);
            self.addr(buf, off + 24, AddrKind::V6);
        }
    }

    /// Zero-fills `buf[from..to]` whatever the masking rules say (addresses that cannot be
    /// rewritten), accounting for checksums.
    fn wipe(&mut self, buf: &mut [u8], from: usize, to: usize) {
        if from >= to {
            return;
        }
        let old = checksum::sum(&buf[from..to], false);
        buf[from..to].fill(0);
        self.changed(from, old, 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn l4_scope(
        &mut self,
        buf: &[u8],
        proto: u8,
        l4: usize,
        end: usize,
        complete: bool,
        ip: &Ip,
        l4len: u32,
    ) {
        match proto {
            6 => self.scope(
                buf,
                CkKind::Tcp,
                l4 + 16,
                l4,
                end,
                complete,
                Some((ip, 6, l4len)),
            ),
            17 => self.scope(
                buf,
                CkKind::Udp,
                l4 + 6,
                l4,
                end,
                complete,
                Some((ip, 17, l4len)),
            ),
            1 if ip.alen == 4 => self.scope(buf, CkKind::Icmp, l4 + 2, l4, end, complete, None),
            58 if ip.alen == 16 => self.scope(
                buf,
                CkKind::Icmpv6,
                l4 + 2,
                l4,
                end,
                complete,
                Some((ip, 58, l4len)),
            ),
            _ => {}
        }
    }

    fn dir_key(ip: &Ip, sport: u16, dport: u16) -> DirKey {
        let mut k = [0u8; 36];
        k[..16].copy_from_slice(&ip.src);
        k[16..32].copy_from_slice(&ip.dst);
        k[32..34].copy_from_slice(&sport.to_be_bytes());
        k[34..36].copy_from_slice(&dport.to_be_bytes());
        k
    }

    fn l4(&mut self, buf: &mut [u8], proto: u8, l4: usize, end: usize, depth: u8, ip: &Ip) {
        if !ip.first {
            // A later fragment: no transport header here.
            if self.masking() && l4 < end {
                self.zero(buf, l4, end, Bucket::Other);
            }
            return;
        }
        match proto {
            6 => self.tcp(buf, l4, end, ip),
            17 => self.udp(buf, l4, end, depth, ip),
            1 if ip.alen == 4 => self.icmp(buf, l4, end, depth),
            58 if ip.alen == 16 => self.icmpv6(buf, l4, end, depth),
            4 if !ip.quoted => self.ipv4(buf, l4, end, depth + 1, false),
            41 if !ip.quoted => self.ipv6(buf, l4, end, depth + 1, false),
            47 if !ip.quoted => self.gre(buf, l4, end, depth),
            // An Ethernet frame carried directly over IP (SRv6 L2 services, RFC 8986).
            143 if !ip.quoted => self.ether(buf, l4, end, depth + 1),
            103 if !ip.quoted && self.pim_register(buf, l4, end, depth) => {}
            _ => self.unparsed(buf, l4, end),
        }
    }

    /// Masks what follows the first 8 transport bytes of a quoted packet.
    fn quoted_rest(&mut self, buf: &mut [u8], l4: usize, end: usize) {
        if self.masking() && l4 + 8 < end {
            self.zero(buf, l4 + 8, end, Bucket::Other);
        }
    }

    fn tcp(&mut self, buf: &mut [u8], l4: usize, end: usize, ip: &Ip) {
        if ip.quoted {
            return self.quoted_rest(buf, l4, end);
        }
        if l4 + 20 > end {
            return; // Truncated header: nothing above it was captured.
        }
        let doff = (buf[l4 + 12] >> 4) as usize * 4;
        if doff < 20 || l4 + doff > end {
            self.unparsed(buf, l4 + 20, end);
            return;
        }
        let (sp, dp) = (be16(buf, l4), be16(buf, l4 + 2));
        let pay = l4 + doff;
        let data_end = end;
        let dns = is_dns_port(sp) || is_dns_port(dp);
        if dns && self.keeps_dns() && pay + 2 < end {
            // DNS over TCP: a 2-byte length, then the message (the first one of the segment).
            let msg_end = (pay + 2 + be16(buf, pay) as usize).min(end);
            self.dns_addresses(buf, pay + 2, msg_end);
        }
        if self.masker.is_none() {
            return;
        }
        if dns {
            let before = self.act.zeroed;
            let m = self.masker.as_deref().unwrap();
            m.dns(self.act, &mut buf[pay..data_end], pay);
            self.after_mask(pay, before);
            return;
        }
        let seq = u32::from_be_bytes([buf[l4 + 4], buf[l4 + 5], buf[l4 + 6], buf[l4 + 7]]);
        let flags = buf[l4 + 13];
        let key = Self::dir_key(ip, sp, dp);
        let before = self.act.zeroed;
        let m = self.masker.as_deref_mut().unwrap();
        m.tcp(
            self.act,
            &key,
            seq,
            flags & 0x05 != 0,
            self.ts_ns,
            &mut buf[pay..data_end],
            pay,
        );
        self.after_mask(pay, before);
    }

    fn udp(&mut self, buf: &mut [u8], l4: usize, end: usize, depth: u8, ip: &Ip) {
        if ip.quoted {
            return self.quoted_rest(buf, l4, end);
        }
        if l4 + 8 > end {
            return;
        }
        let (sp, dp) = (be16(buf, l4), be16(buf, l4 + 2));
        let pay = l4 + 8;
        if self.udp_tunnel(buf, sp, dp, pay, end, depth) {
            return;
        }
        let dns = is_dns_port(sp) || is_dns_port(dp);
        if dns && self.keeps_dns() {
            self.dns_addresses(buf, pay, end);
        }
        let Some(m) = self.masker.as_deref() else {
            return;
        };
        let before = self.act.zeroed;
        if dns {
            m.dns(self.act, &mut buf[pay..end], pay);
        } else {
            m.other(self.act, &mut buf[pay..end], pay);
        }
        self.after_mask(pay, before);
    }
}
