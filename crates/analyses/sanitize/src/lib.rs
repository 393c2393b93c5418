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
mod tests;
