//! One engine worker: decodes each packet once and hands the view to every enabled analysis.

use crate::analysis::Parts;
use crate::metrics::PipelineMetrics;
use netspectra_capture::FileFilter;
use netspectra_engine::Analysis;
use netspectra_packet::{
    decode, decode_all, Batch, DecodeOptions, Decoded, IpPair, LinkType, PacketView, Timestamp,
};
use netspectra_sanitize::anon::Anonymizer;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A worker of the pipeline (one per file-reading worker thread or fanout socket).
pub struct PacketWorker {
    id: usize,
    parts: Option<Parts>,
    /// A user-space filter (files; live captures filter in the kernel).
    filter: Option<FileFilter>,
    outer: bool,
    inner: bool,
    metrics: Option<Arc<PipelineMetrics>>,
    /// Addresses are replaced by their Crypto-PAn image before any analysis sees them.
    anon: Option<Box<Anonymizer>>,
    /// The forensic ring this worker writes (its share of it).
    ring: Option<Box<netspectra_sinks::capture_files::RotatingWriter>>,
}

impl PacketWorker {
    /// Worker `id` running `parts`; `outer`/`inner` say which views the parts want.
    pub fn new(
        id: usize,
        parts: Parts,
        filter: Option<FileFilter>,
        outer: bool,
        inner: bool,
        metrics: Option<Arc<PipelineMetrics>>,
    ) -> PacketWorker {
        PacketWorker {
            id,
            parts: Some(parts),
            filter,
            outer,
            inner,
            metrics,
            anon: None,
            ring: None,
        }
    }

    /// Writes every packet this worker sees into its share of the forensic ring too. A ring
    /// that cannot start is reported and left out; one that fails to write later is reported
    /// once and switched off: the analyses go on either way.
    pub fn with_ring(
        mut self,
        ring: Option<&crate::analysis::RingSetup>,
        workers: usize,
    ) -> PacketWorker {
        use netspectra_sinks::capture_files::{RotateConfig, RotatingWriter};
        let Some(r) = ring else { return self };
        let mut cfg = RotateConfig::new(
            r.dir
                .join(format!("ring-w{}-%Y%m%dT%H%M%SZ.pcapng", self.id)),
            netspectra_pcap::OutputFormat::Pcapng,
        );
        cfg.size_limit = Some(r.file_size);
        // New names every minute (the age budget then deletes whole minutes).
        cfg.every = Some(std::time::Duration::from_secs(60));
        cfg.max_total_bytes = r
            .max_total
            .map(|t| (t / workers.max(1) as u64).max(r.file_size));
        cfg.max_age = r.max_age;
        match RotatingWriter::new(cfg, Vec::new()) {
            Ok(w) => self.ring = Some(Box::new(w)),
            Err(e) => eprintln!("netspectra: forensic ring: {e}; the ring is off"),
        }
        self
    }

    /// Anonymizes every address the analyses see (each worker keeps its own cache; Crypto-PAn
    /// is deterministic, so every worker maps an address alike).
    pub fn with_anonymizer(mut self, a: Option<Anonymizer>) -> PacketWorker {
        self.anon = a.map(Box::new);
        self
    }

    /// End of input: every part flushes what it holds (flows still live end with
    /// `end_of_input`).
    pub fn finish(self) {
        self.finish_with(netspectra_flow::EndReason::EndOfInput);
    }

    /// End of a live capture: flows still live end with `reason` (`shutdown`).
    pub fn finish_with(mut self, reason: netspectra_flow::EndReason) {
        if let Some(mut r) = self.ring.take() {
            let _ = r.close(true);
        }
        if let Some(p) = self.parts.take() {
            p.finish(reason);
        }
    }
}

impl Analysis for PacketWorker {
    fn on_batch(&mut self, batch: &Batch<'_>) {
        if let Some(r) = &mut self.ring {
            if let Err(e) = r.write_batch(batch) {
                eprintln!(
                    "netspectra: forensic ring of worker {}: {e}; the ring is off",
                    self.id
                );
                self.ring = None;
            }
        }
        let Some(parts) = self.parts.as_mut() else {
            return;
        };
        let mut bytes = 0u64;
        for p in batch.iter() {
            bytes += p.orig_len as u64;
            if let Some(f) = &mut self.filter {
                if !f.matches(&p) {
                    continue;
                }
            }
            let mut d = decode_views(p.data, p.link, p.vlan_tci, self.outer, self.inner);
            if let Some(a) = &mut self.anon {
                anonymize(a, &mut d.outer);
                if let Some(i) = &mut d.inner {
                    anonymize(a, i);
                }
            }
            parts.packet(&p, &d);
        }
        let slot = self.metrics.as_ref().and_then(|m| m.workers.get(self.id));
        if let Some(s) = slot {
            s.packets.fetch_add(batch.len() as u64, Ordering::Relaxed);
            s.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        parts.end_batch(slot);
    }

    fn on_tick(&mut self, at: Timestamp) {
        if let Some(r) = &mut self.ring {
            if r.tick().is_err() {
                self.ring = None;
            }
        }
        if let Some(p) = self.parts.as_mut() {
            p.tick(at);
        }
    }
}

/// The views the analyses want from one walk of the frame: both when some want the wire's
/// packet and some the tunnelled one, else the one they want (as `outer`, which
/// [`Decoded::view`] then gives for either question).
#[inline]
fn decode_views(
    data: &[u8],
    link: LinkType,
    vlan_tci: Option<u16>,
    outer: bool,
    inner: bool,
) -> Decoded {
    if outer && inner {
        return decode_all(data, link, vlan_tci);
    }
    Decoded {
        outer: decode(data, link, vlan_tci, &DecodeOptions { inner: !outer }),
        inner: None,
    }
}

/// Replaces the view's addresses by their anonymized images.
#[inline]
fn anonymize(a: &mut Anonymizer, v: &mut PacketView) {
    if let Some(ip) = v.ip {
        v.ip = Some(IpPair {
            src: map(a, ip.src),
            dst: map(a, ip.dst),
        });
    }
}

/// The anonymized image of an address.
#[inline]
pub(crate) fn map(a: &mut Anonymizer, ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(x) => IpAddr::V4(a.map_v4(u32::from(x)).into()),
        IpAddr::V6(x) => IpAddr::V6(a.map_v6(u128::from(x)).into()),
    }
}
