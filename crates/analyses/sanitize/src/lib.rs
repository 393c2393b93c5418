//! Capture sanitizer: dedup, prefix-preserving Crypto-PAn anonymization and payload masking in one streaming pass.
//!
//! [`Sanitizer::process`] takes each frame in capture order and returns the bytes to write (or
//! `None` for a removed duplicate). Stages run in a fixed order over one reusable copy of the
//! frame: dedup decides keep/drop on the original bytes, anonymize rewrites addresses, mask
//! zero-fills payloads, and checksums are adjusted once at the end. Lengths and timestamps never
//! change. [`Inspector`] re-reads a sanitized frame for `--verify`.

pub mod anon;
pub mod checksum;
pub mod cryptopan;
pub mod dedup;
pub mod mask;
pub mod walk;

use netspectra_packet::{LinkType, Packet, PacketMeta};
use serde::Serialize;

pub use anon::{AnonPolicy, AnonStats, Anonymizer};
pub use cryptopan::{CryptoPan, KEY_LEN};
pub use dedup::{Dedup, DedupConfig};
pub use mask::{Critical, MaskConfig, MaskStats, Masker, Violation};
pub use walk::{CkKind, FrameResult, CK_NAMES};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum SanitizeError {
    /// A key file does not hold a usable key.
    #[error("key must be 32 bytes (raw) or 64 hex digits, got {0} bytes")]
    BadKey(usize),
}

/// Which stages run and how.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SanitizeConfig {
    /// Duplicate removal (None: off).
    pub dedup: Option<DedupConfig>,
    /// Address anonymization (None: off).
    pub anonymize: Option<AnonPolicy>,
    /// Payload masking (None: off).
    pub mask: Option<MaskConfig>,
}

/// Parses a key file: 32 raw bytes, or 64 hex digits (whitespace ignored).
pub fn parse_key(bytes: &[u8]) -> Result<[u8; KEY_LEN], SanitizeError> {
    let mut key = [0u8; KEY_LEN];
    if bytes.len() == KEY_LEN {
        key.copy_from_slice(bytes);
        return Ok(key);
    }
    let hex: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if hex.len() != 2 * KEY_LEN || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(SanitizeError::BadKey(bytes.len()));
    }
    for (i, k) in key.iter_mut().enumerate() {
        let s = std::str::from_utf8(&hex[2 * i..2 * i + 2]).expect("ascii");
        *k = u8::from_str_radix(s, 16).expect("hex digits");
    }
    Ok(key)
}

/// Formats a key as 64 hex digits (the form [`parse_key`] reads back).
pub fn key_hex(key: &[u8; KEY_LEN]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Derives a key from a passphrase: 100,000 rounds of salted SHA-256, so that the same
/// passphrase gives the same mapping everywhere and guessing it costs time.
pub fn key_from_passphrase(pass: &str) -> [u8; KEY_LEN] {
    use sha2::{Digest, Sha256};
    let mut h: [u8; 32] = Sha256::new()
        .chain_update(b"netspectra-sanitize-v1\0")
        .chain_update(pass.as_bytes())
        .finalize()
        .into();
    for _ in 0..100_000 {
        h = Sha256::new()
            .chain_update(h)
            .chain_update(pass.as_bytes())
            .finalize()
            .into();
    }
    h
}

/// Frame counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FrameStats {
    /// Frames read.
    pub packets_in: u64,
    /// Frames written.
    pub packets_out: u64,
    /// Captured bytes read.
    pub bytes_in: u64,
    /// Captured bytes written.
    pub bytes_out: u64,
    /// Duplicate frames removed.
    pub duplicates_removed: u64,
    /// Captured bytes of the removed duplicates.
    pub duplicate_bytes: u64,
    /// Frames with a part that could not be parsed (masked above the last layer understood).
    pub unparsed_packets: u64,
}

/// What a run did, for the JSON report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Frame counters.
    pub frames: FrameStats,
    /// Address mapping counters (when anonymizing).
    pub anonymize: Option<AnonStats>,
    /// Payload bytes kept and masked per protocol (when masking).
    pub mask: Option<MaskStats>,
    /// TCP directions that lost their TLS/HTTP framing (masked until found again).
    pub stream_resyncs: u64,
    /// TLS/HTTP directions not tracked because the flow table was full (masked entirely).
    pub flows_untracked: u64,
}

fn add_km(a: &mut mask::KeptMasked, b: &mask::KeptMasked) {
    a.kept += b.kept;
    a.masked += b.masked;
}

impl Report {
    /// Adds another run's counts (directory mode).
    pub fn merge(&mut self, o: &Report) {
        let f = &mut self.frames;
        f.packets_in += o.frames.packets_in;
        f.packets_out += o.frames.packets_out;
        f.bytes_in += o.frames.bytes_in;
        f.bytes_out += o.frames.bytes_out;
        f.duplicates_removed += o.frames.duplicates_removed;
        f.duplicate_bytes += o.frames.duplicate_bytes;
        f.unparsed_packets += o.frames.unparsed_packets;
        if let Some(b) = &o.anonymize {
            let a = self.anonymize.get_or_insert_with(Default::default);
            a.ip_fields_rewritten += b.ip_fields_rewritten;
            a.ip_fields_kept += b.ip_fields_kept;
            a.cryptopan_computed += b.cryptopan_computed;
            a.mac_fields_rewritten += b.mac_fields_rewritten;
        }
        if let Some(b) = &o.mask {
            let a = self.mask.get_or_insert_with(Default::default);
            add_km(&mut a.tls, &b.tls);
            add_km(&mut a.http, &b.http);
            add_km(&mut a.dns, &b.dns);
            add_km(&mut a.other, &b.other);
            add_km(&mut a.unparsed, &b.unparsed);
            add_km(&mut a.trailer, &b.trailer);
        }
        self.stream_resyncs += o.stream_resyncs;
        self.flows_untracked += o.flows_untracked;
    }
}

/// The stage chain for one stream of frames (one file, or one worker).
pub struct Sanitizer {
    dedup: Option<Dedup>,
    anon: Option<Anonymizer>,
    masker: Option<Masker>,
    act: mask::Act,
    scopes: walk::Scopes,
    buf: Vec<u8>,
    hashes: Vec<u128>,
    stats: FrameStats,
}

impl std::fmt::Debug for Sanitizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sanitizer")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Sanitizer {
    /// Builds the chain. `key` is used only when anonymizing.
    pub fn new(cfg: &SanitizeConfig, key: &[u8; KEY_LEN]) -> Self {
        Sanitizer {
            dedup: cfg.dedup.as_ref().map(Dedup::new),
            anon: cfg.anonymize.clone().map(|p| Anonymizer::new(key, p)),
            masker: cfg.mask.clone().map(Masker::new),
            act: mask::Act::default(),
            scopes: walk::Scopes::default(),
            buf: Vec::with_capacity(1 << 16),
            hashes: Vec::new(),
            stats: FrameStats::default(),
        }
    }

    /// Runs the chain on one frame; returns the bytes to write, or `None` for a duplicate.
    /// The frame is copied into an internal buffer; see [`Sanitizer::process_in_place`] to
    /// avoid the copy when the caller owns the bytes.
    pub fn process<'s>(&'s mut self, p: &Packet<'s>) -> Option<&'s [u8]> {
        if self.anon.is_none() && self.masker.is_none() {
            return self.keep(p.data, p.ts.0).then_some(p.data);
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.extend_from_slice(p.data);
        let keep = self.process_in_place(&mut buf, p.ts.0, p.link);
        self.buf = buf;
        keep.then_some(&self.buf[..])
    }

    /// Dedup decision and counters; true when the frame is kept.
    fn keep(&mut self, data: &[u8], ts_ns: i64) -> bool {
        let st = &mut self.stats;
        st.packets_in += 1;
        st.bytes_in += data.len() as u64;
        if let Some(d) = &mut self.dedup {
            if d.check(data, ts_ns) {
                st.duplicates_removed += 1;
                st.duplicate_bytes += data.len() as u64;
                return false;
            }
        }
        st.packets_out += 1;
        st.bytes_out += data.len() as u64;
        true
    }

    /// Runs the chain on every frame of a batch the caller owns, rewriting frames in place;
    /// `keep[i]` tells whether frame `i` is written (false: a duplicate). Frame hashes are
    /// computed for the whole batch first so that dedup table lines are prefetched ahead.
    pub fn process_batch(&mut self, data: &mut [u8], metas: &[PacketMeta], keep: &mut Vec<bool>) {
        const AHEAD: usize = 8;
        let range = |m: &PacketMeta| {
            let s = m.offset as usize;
            s..s.saturating_add(m.caplen as usize)
        };
        keep.clear();
        if let Some(d) = self.dedup.as_mut() {
            self.hashes.clear();
            self.hashes.extend(
                metas
                    .iter()
                    .map(|m| dedup::frame_hash(data.get(range(m)).unwrap_or(&[]))),
            );
            for (i, m) in metas.iter().enumerate() {
                if let Some(&h) = self.hashes.get(i + AHEAD) {
                    d.prefetch(h);
                }
                d.prefetch_evicted_ahead(AHEAD);
                keep.push(!d.check_hashed(self.hashes[i], m.ts.0));
            }
        } else {
            keep.resize(metas.len(), true);
        }
        let rewrite = self.anon.is_some() || self.masker.is_some();
        for (m, &k) in metas.iter().zip(keep.iter()) {
            let frame: &mut [u8] = match data.get_mut(range(m)) {
                Some(f) => f,
                None => &mut [],
            };
            let len = frame.len() as u64;
            let st = &mut self.stats;
            st.packets_in += 1;
            st.bytes_in += len;
            if !k {
                st.duplicates_removed += 1;
                st.duplicate_bytes += len;
                continue;
            }
            st.packets_out += 1;
            st.bytes_out += len;
            if rewrite {
                let w = walk::Walker::new(
                    self.anon.as_mut(),
                    self.masker.as_mut(),
                    &mut self.act,
                    &mut self.scopes,
                    m.ts.0,
                );
                if w.frame(frame, m.link).unparsed {
                    self.stats.unparsed_packets += 1;
                }
            }
        }
    }

    /// Runs the chain on a frame the caller owns, rewriting it in place; returns false for a
    /// duplicate (to be dropped).
    pub fn process_in_place(&mut self, data: &mut [u8], ts_ns: i64, link: LinkType) -> bool {
        if !self.keep(data, ts_ns) {
            return false;
        }
        if self.anon.is_none() && self.masker.is_none() {
            return true;
        }
        let w = walk::Walker::new(
            self.anon.as_mut(),
            self.masker.as_mut(),
            &mut self.act,
            &mut self.scopes,
            ts_ns,
        );
        if w.frame(data, link).unparsed {
            self.stats.unparsed_packets += 1;
        }
        true
    }

    /// Counters so far.
    pub fn report(&self) -> Report {
        Report {
            frames: self.stats,
            anonymize: self.anon.as_ref().map(|a| a.stats),
            mask: self.masker.as_ref().map(|_| self.act.stats),
            stream_resyncs: self.masker.as_ref().map_or(0, |m| m.resyncs),
            flows_untracked: self.masker.as_ref().map_or(0, |m| m.untracked),
        }
    }
}

/// What [`Inspector::inspect`] found in one frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inspection {
    /// Checksum verdicts (see [`FrameResult`]).
    pub frame: FrameResult,
    /// The first critical byte left non-zero, if any.
    pub violation: Option<Violation>,
}

/// Re-reads sanitized frames: checksums and critical content (`--verify`).
pub struct Inspector {
    masker: Masker,
    act: mask::Act,
    scopes: walk::Scopes,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").finish_non_exhaustive()
    }
}

impl Default for Inspector {
    fn default() -> Self {
        Self::new()
    }
}

impl Inspector {
    /// Builds an inspector with the default TLS/HTTP rules and an ample flow table.
    pub fn new() -> Self {
        Inspector {
            masker: Masker::new(MaskConfig {
                max_flows: 1 << 20,
                ..Default::default()
            }),
            act: mask::Act {
                inspect: true,
                ..Default::default()
            },
            scopes: walk::Scopes::default(),
            buf: Vec::with_capacity(1 << 16),
        }
    }

    /// Checks one frame.
    pub fn inspect(&mut self, p: &Packet<'_>) -> Inspection {
        self.buf.clear();
        self.buf.extend_from_slice(p.data);
        self.act.violation = None;
        let w = walk::Walker::new(
            None,
            Some(&mut self.masker),
            &mut self.act,
            &mut self.scopes,
            p.ts.0,
        );
        let frame = w.frame(&mut self.buf, p.link);
        Inspection {
            frame,
            violation: self.act.violation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use netspectra_packet::Timestamp;
    use proptest::prelude::*;

    fn all() -> SanitizeConfig {
        SanitizeConfig {
            dedup: Some(DedupConfig::default()),
            anonymize: Some(AnonPolicy {
                mac: true,
                ..Default::default()
            }),
            mask: Some(MaskConfig::default()),
        }
    }

    fn pkt(data: &[u8], link: LinkType) -> Packet<'_> {
        Packet::whole(Timestamp(1), link, data)
    }

    /// Checksum kinds that do not verify, as the inspector sees them.
    fn bad(data: &[u8]) -> (u8, u8) {
        let r = Inspector::new()
            .inspect(&pkt(data, LinkType::ETHERNET))
            .frame;
        (r.bad_checksums, r.checked)
    }

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
            .ipv4([192, 0, 2, 1], [198, 51, 100, 7], 64)
            .tcp(40000, 443, 1000, 65535);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn checksums_right_stay_right_and_wrong_stay_wrong() {
        let mut rec = vec![23, 3, 3, 0, 8];
        rec.extend_from_slice(b"ciphertx");
        let good = tcp_frame(&rec);
        assert_eq!(bad(&good), (0, 0b11));
        let mut s = Sanitizer::new(&all(), &[3u8; 32]);
        let out = s.process(&pkt(&good, LinkType::ETHERNET)).unwrap().to_vec();
        assert_ne!(out, good);
        assert_eq!(&out[out.len() - 8..], &[0u8; 8], "application data masked");
        assert_eq!(bad(&out), (0, 0b11), "still verifies");
        // A frame whose TCP checksum was wrong stays wrong after rewriting.
        let mut wrong = good.clone();
        wrong[14 + 20 + 16] ^= 0x55;
        assert_eq!(bad(&wrong).0, 1 << CkKind::Tcp as u8);
        let mut s = Sanitizer::new(&all(), &[3u8; 32]);
        let out = s
            .process(&pkt(&wrong, LinkType::ETHERNET))
            .unwrap()
            .to_vec();
        assert_eq!(bad(&out).0, 1 << CkKind::Tcp as u8);
    }

    #[test]
    fn udp_and_icmp_error_quotes_are_rewritten_consistently() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([203, 0, 113, 9], [192, 0, 2, 1], 64)
            .udp(5000, 9999);
        let mut udp = Vec::new();
        b.write(&mut udp, b"payload!").unwrap();
        // ICMP port unreachable quoting that datagram's IP header and 8 bytes.
        let quote = &udp[14..14 + 28];
        let b = PacketBuilder::ethernet2([2; 6], [1; 6])
            .ipv4([192, 0, 2, 1], [203, 0, 113, 9], 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ));
        let mut icmp = Vec::new();
        b.write(&mut icmp, quote).unwrap();
        assert_eq!(bad(&udp).0, 0);
        assert_eq!(bad(&icmp).0, 0);
        let mut s = Sanitizer::new(&all(), &[9u8; 32]);
        let u = s.process(&pkt(&udp, LinkType::ETHERNET)).unwrap().to_vec();
        let i = s.process(&pkt(&icmp, LinkType::ETHERNET)).unwrap().to_vec();
        assert_eq!(bad(&u).0, 0);
        assert_eq!(bad(&i).0, 0);
        // The quoted addresses map exactly like the outer ones of the datagram.
        assert_eq!(&i[14 + 28 + 12..14 + 28 + 20], &u[14 + 12..14 + 20]);
        assert_ne!(&u[14 + 12..14 + 20], &udp[14 + 12..14 + 20]);
        // Payload masked, lengths unchanged.
        assert_eq!(&u[u.len() - 8..], &[0u8; 8]);
        assert_eq!(u.len(), udp.len());
    }

    #[test]
    fn ipv6_tcp_http_secrets_masked_and_checksum_kept() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .tcp(40000, 80, 1, 65535);
        let msg = b"GET / HTTP/1.1\r\nCookie: sid=1\r\n\r\n";
        let mut f = Vec::new();
        b.write(&mut f, msg).unwrap();
        assert_eq!(bad(&f).0, 0);
        let mut s = Sanitizer::new(&all(), &[1u8; 32]);
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
        assert_eq!(bad(&out).0, 0);
        let pay = &out[out.len() - msg.len()..];
        assert_eq!(pay, b"GET / HTTP/1.1\r\nCookie: \0\0\0\0\0\r\n\r\n");
    }

    /// An IPv6 address 2001:db8::`n` (documentation range, so it is encrypted, not kept).
    fn v6(n: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 1, 0xd, 0xb8]);
        a[15] = n;
        a
    }

    /// UDP over IPv6 with the given extension headers (`next` = type of the first) whose
    /// checksum is computed here, independently of the sanitizer, over the pseudo-header with
    /// `final_dst` (RFC 8200 8.1).
    fn udp6(next: u8, exts: &[u8], final_dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
        let (src, dst) = (v6(1), v6(2));
        let ulen = 8 + payload.len();
        let mut f = vec![2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((exts.len() + ulen) as u16).to_be_bytes());
        f.extend_from_slice(&[next, 64]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(exts);
        let u = f.len();
        f.extend_from_slice(&[0x13, 0x88, 0x00, 0x35]);
        f.extend_from_slice(&(ulen as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        let ck = udp6_checksum(&f[22..38], &final_dst, &f[u..]);
        f[u + 6..u + 8].copy_from_slice(&ck.to_be_bytes());
        f
    }

    /// Plain one's complement UDP checksum over an IPv6 pseudo-header (test oracle).
    fn udp6_checksum(src: &[u8], dst: &[u8], udp: &[u8]) -> u16 {
        let mut words: Vec<u8> = Vec::new();
        words.extend_from_slice(src);
        words.extend_from_slice(dst);
        words.extend_from_slice(&(udp.len() as u32).to_be_bytes());
        words.extend_from_slice(&[0, 0, 0, 17]);
        words.extend_from_slice(&udp[..6]);
        words.extend_from_slice(&[0, 0]);
        words.extend_from_slice(&udp[8..]);
        if words.len() % 2 == 1 {
            words.push(0);
        }
        let mut acc: u32 = 0;
        for w in words.chunks(2) {
            acc += u16::from_be_bytes([w[0], w[1]]) as u32;
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        match !(acc as u16) {
            0 => 0xffff,
            c => c,
        }
    }

    /// How the sanitizer maps `a`, taken from a frame where it is the plain IPv6 source.
    fn mapped(s: &mut Sanitizer, a: [u8; 16]) -> [u8; 16] {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6(a, v6(99), 64)
            .udp(1, 2);
        let mut f = Vec::new();
        b.write(&mut f, b"x").unwrap();
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap();
        out[22..38].try_into().unwrap()
    }

    fn anon_only() -> SanitizeConfig {
        SanitizeConfig {
            dedup: None,
            anonymize: Some(AnonPolicy::default()),
            mask: None,
        }
    }

    #[test]
    fn ipv6_routing_header_addresses_are_mapped_and_checksums_follow_the_final_destination() {
        // Type 0 routing header, two addresses, both segments left: the final destination is
        // the last address, so the UDP checksum is computed over it, not over the IPv6 dst.
        let mut rh = vec![17, 4, 0, 2, 0, 0, 0, 0];
        rh.extend_from_slice(&v6(10));
        rh.extend_from_slice(&v6(11));
        let f = udp6(43, &rh, v6(11), b"hello");
        assert_eq!(bad(&f), (0, 1 << CkKind::Udp as u8), "input verifies");
        let mut s = Sanitizer::new(&anon_only(), &[4u8; 32]);
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
        let (a10, a11) = (mapped(&mut s, v6(10)), mapped(&mut s, v6(11)));
        assert_eq!(
            &out[62..78],
            &a10,
            "first routing address mapped like elsewhere"
        );
        assert_eq!(
            &out[78..94],
            &a11,
            "final destination mapped like elsewhere"
        );
        for n in [1, 2, 10, 11] {
            assert!(
                !out.windows(16).any(|w| w == v6(n)),
                "2001:db8::{n} still in the output"
            );
        }
        let u = 94;
        let ck = u16::from_be_bytes([out[u + 6], out[u + 7]]);
        assert_eq!(ck, udp6_checksum(&out[22..38], &a11, &out[u..]));
        assert_eq!(bad(&out), (0, 1 << CkKind::Udp as u8));

        // A wrong checksum stays wrong.
        let mut wrong = f.clone();
        wrong[u + 6] ^= 0x21;
        let mut s = Sanitizer::new(&anon_only(), &[4u8; 32]);
        let out = s
            .process(&pkt(&wrong, LinkType::ETHERNET))
            .unwrap()
            .to_vec();
        assert_eq!(bad(&out).0, 1 << CkKind::Udp as u8);
    }

    #[test]
    fn segment_lists_home_addresses_and_unknown_routing_types_do_not_leak() {
        // Segment routing header (type 4), segments left 1, segment list [final, next hop]:
        // the final destination is entry 0.
        let mut srh = vec![60, 4, 4, 1, 1, 0, 0, 0];
        srh.extend_from_slice(&v6(20));
        srh.extend_from_slice(&v6(21));
        // Destination options: PadN (2 bytes), home address option, Pad1 x2.
        let mut dopt = vec![17, 2, 1, 0, 0xc9, 16];
        dopt.extend_from_slice(&v6(30));
        dopt.extend_from_slice(&[0, 0]);
        let mut exts = srh.clone();
        exts.extend_from_slice(&dopt);
        let f = udp6(43, &exts, v6(20), b"segment routed");
        assert_eq!(bad(&f).0, 0, "input verifies");
        let mut s = Sanitizer::new(&anon_only(), &[6u8; 32]);
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
        assert_eq!(&out[62..78], &mapped(&mut s, v6(20)));
        assert_eq!(&out[78..94], &mapped(&mut s, v6(21)));
        assert_eq!(&out[94 + 6..94 + 22], &mapped(&mut s, v6(30)));
        for n in [20, 21, 30] {
            assert!(!out.windows(16).any(|w| w == v6(n)), "2001:db8::{n} leaked");
        }
        assert_eq!(bad(&out).0, 0, "checksum still verifies");

        // RPL source route (type 3, compressed addresses): not understood, so zero-filled
        // beyond its fixed part, and the frame's checksum is still exactly as right.
        let mut rpl = vec![17, 2, 3, 0, 0x88, 0, 0, 0];
        rpl.extend_from_slice(&[0xab; 16]);
        let f = udp6(43, &rpl, v6(2), b"rpl");
        assert_eq!(bad(&f).0, 0);
        let mut s = Sanitizer::new(&anon_only(), &[6u8; 32]);
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
        assert_eq!(&out[54..62], &rpl[..8]);
        assert_eq!(&out[62..78], &[0u8; 16]);
        assert_eq!(bad(&out).0, 0);
    }

    /// A DNS response for example.com: one A and one AAAA answer (compressed names) and an
    /// OPT record with an EDNS client subnet of 198.51.100.0/22 (3 address bytes).
    fn dns_response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1];
        m.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 80]);
        m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
        m.extend_from_slice(&v6(77));
        m.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 11]);
        m.extend_from_slice(&[0, 8, 0, 7, 0, 1, 22, 0, 198, 51, 103]);
        m
    }

    fn mapped_v4(s: &mut Sanitizer, a: [u8; 4]) -> [u8; 4] {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(a, [192, 0, 2, 99], 64)
            .udp(1, 2);
        let mut f = Vec::new();
        b.write(&mut f, b"x").unwrap();
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap();
        out[26..30].try_into().unwrap()
    }

    #[test]
    fn kept_dns_answers_and_client_subnets_are_anonymized() {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([192, 0, 2, 53], [192, 0, 2, 7], 64)
            .udp(53, 40000);
        let msg = dns_response();
        let mut f = Vec::new();
        b.write(&mut f, &msg).unwrap();
        assert_eq!(bad(&f), (0, 0b101), "input verifies (IPv4 and UDP)");
        let pay = f.len() - msg.len();
        let (a_at, aaaa_at, ecs_at) = (pay + 41, pay + 57, pay + msg.len() - 3);
        let keep = SanitizeConfig {
            dedup: None,
            anonymize: Some(AnonPolicy::default()),
            mask: Some(MaskConfig {
                keep_dns: true,
                ..Default::default()
            }),
        };
        for cfg in [anon_only(), keep] {
            let mut s = Sanitizer::new(&cfg, &[7u8; 32]);
            let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
            assert_eq!(bad(&out).0, 0, "checksums still verify");
            assert_eq!(&out[pay..a_at], &f[pay..a_at], "names and header kept");
            assert_eq!(&out[a_at..a_at + 4], &mapped_v4(&mut s, [203, 0, 113, 80]));
            assert_eq!(&out[aaaa_at..aaaa_at + 16], &mapped(&mut s, v6(77)));
            // The client subnet maps like the /22 of a whole address.
            let net = mapped_v4(&mut s, [198, 51, 103, 0]);
            assert_eq!(&out[ecs_at..ecs_at + 2], &net[..2]);
            assert_eq!(out[ecs_at + 2], net[2] & 0xfc);
            assert_ne!(&out[ecs_at..ecs_at + 3], &[198, 51, 103]);
        }
        // Masked DNS (the default with masking) is zero-filled instead.
        let mut s = Sanitizer::new(&all(), &[7u8; 32]);
        let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
        assert!(out[pay..].iter().all(|&b| b == 0));
    }

    proptest! {
        /// Arbitrary bytes of any link type: no panic, same length, and a frame sanitized twice
        /// with the same key is sanitized identically (deterministic).
        #[test]
        fn arbitrary_frames_never_panic(sel in 0usize..9, data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let link = [LinkType::ETHERNET, LinkType::RAW, LinkType::IPV4, LinkType::IPV6, LinkType::NULL, LinkType::LOOP, LinkType::LINUX_SLL, LinkType::LINUX_SLL2, LinkType(147)][sel];
            let cfg = SanitizeConfig { dedup: None, ..all() };
            let mut a = Sanitizer::new(&cfg, &[5u8; 32]);
            let mut b = Sanitizer::new(&cfg, &[5u8; 32]);
            let x = a.process(&pkt(&data, link)).unwrap().to_vec();
            let y = b.process(&pkt(&data, link)).unwrap().to_vec();
            prop_assert_eq!(x.len(), data.len());
            prop_assert_eq!(&x, &y);
            let _ = Inspector::new().inspect(&pkt(&x, link));
        }

        /// IPv6 with arbitrary extension-header chains (routing, options, fragment; lengths and
        /// contents random, possibly truncated): no panic, same length, and every checksum
        /// verdict (over whatever final destination the chain names) is the same after.
        #[test]
        fn arbitrary_ipv6_extension_chains(
            kinds in proptest::collection::vec(prop_oneof![Just(0u8), Just(43), Just(60), Just(44)], 1..7),
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 6..40), 7),
            cut in 0usize..400,
        ) {
            let mut exts = Vec::new();
            for (i, k) in kinds.iter().enumerate() {
                let next = kinds.get(i + 1).copied().unwrap_or(17);
                let mut b = bodies[i].clone();
                if *k == 44 {
                    b.truncate(6);
                    b[0] = 0;
                    b[1] = 0; // first fragment, offset 0, so the UDP header follows
                    exts.extend_from_slice(&[next, 0]);
                    exts.extend_from_slice(&b);
                    continue;
                }
                let len8 = b.len().div_ceil(8) * 8;
                b.resize(len8 + 6, 0);
                exts.extend_from_slice(&[next, (len8 / 8) as u8]);
                exts.extend_from_slice(&b);
            }
            // The checksum's pseudo-header destination, as our walk defines it.
            let mut f = udp6(kinds[0], &exts, v6(2), b"data");
            let mut s = Sanitizer::new(&anon_only(), &[8u8; 32]);
            let whole = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
            prop_assert_eq!(whole.len(), f.len());
            prop_assert_eq!(bad(&whole), bad(&f));
            f.truncate(cut.min(f.len()));
            let mut s = Sanitizer::new(&SanitizeConfig { dedup: None, ..all() }, &[8u8; 32]);
            let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
            prop_assert_eq!(out.len(), f.len());
        }

        /// Arbitrary DNS payloads (random counts, names, pointers and lengths, with the real
        /// response's bytes as a start) with addresses rewritten: no panic, and the UDP
        /// checksum stays right.
        #[test]
        fn arbitrary_dns_messages(tail in proptest::collection::vec(any::<u8>(), 0..120), cut in 0usize..90, flip in any::<(usize, u8)>()) {
            let mut msg = dns_response();
            msg.truncate(cut.min(msg.len()));
            msg.extend_from_slice(&tail);
            if !msg.is_empty() {
                let i = flip.0 % msg.len();
                msg[i] ^= flip.1;
            }
            let b = PacketBuilder::ethernet2([1; 6], [2; 6])
                .ipv4([192, 0, 2, 53], [192, 0, 2, 7], 64)
                .udp(53, 40000);
            let mut f = Vec::new();
            b.write(&mut f, &msg).unwrap();
            let mut s = Sanitizer::new(&anon_only(), &[7u8; 32]);
            let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
            prop_assert_eq!(out.len(), f.len());
            prop_assert_eq!(bad(&out).0, 0);
        }

        /// Well-formed TCP/IPv4 frames with any payload keep valid checksums.
        #[test]
        fn valid_checksums_survive(payload in proptest::collection::vec(any::<u8>(), 0..200), key in any::<[u8; 32]>()) {
            let f = tcp_frame(&payload);
            let mut s = Sanitizer::new(&all(), &key);
            let out = s.process(&pkt(&f, LinkType::ETHERNET)).unwrap().to_vec();
            prop_assert_eq!(bad(&out).0, 0);
        }
    }
}
