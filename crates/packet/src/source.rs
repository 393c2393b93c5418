//! The source interface: capture files and live kernel rings both deliver packets in batches
//! whose bytes live in a buffer the source owns (a file chunk or a TPACKET_V3 block). A source
//! lends one batch at a time to a callback and takes the memory back when the callback returns,
//! so no packet is ever copied on the way in.

use crate::{LinkType, Timestamp};
use std::io;
use std::path::PathBuf;

/// Where one packet's bytes sit inside its batch buffer, plus its capture metadata.
///
/// Metadata is position-based (not a borrowed slice) so that a batch can be split between worker
/// threads by copying 32-byte records while the packet bytes stay where they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Offset of the first captured byte in the batch buffer.
    pub offset: u32,
    /// Number of captured bytes (may be less than `orig_len` when a snaplen applied).
    pub caplen: u32,
    /// Length of the packet on the wire, including a VLAN tag the kernel stripped.
    pub orig_len: u32,
    /// Interface index, unique across the whole source (pcapng sections are flattened).
    pub iface: u32,
    /// Link type of the frame bytes.
    pub link: LinkType,
    /// A VLAN tag the kernel stripped from the frame (TPACKET_V3 `tp_vlan_tci`), if any.
    pub vlan_tci: Option<u16>,
}

/// One packet lent by a source: metadata plus a zero-copy view of its captured bytes.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Length of the packet on the wire, including a VLAN tag the kernel stripped.
    pub orig_len: u32,
    /// Interface index, unique across the whole source.
    pub iface: u32,
    /// Link type of `data`.
    pub link: LinkType,
    /// A VLAN tag stripped by the kernel before the frame reached the ring, if any.
    pub vlan_tci: Option<u16>,
    /// The captured bytes.
    pub data: &'a [u8],
}

impl<'a> Packet<'a> {
    /// A whole frame (nothing snapped, no stripped tag) from interface 0: what generators and
    /// tests write.
    #[inline]
    pub fn whole(ts: Timestamp, link: LinkType, data: &'a [u8]) -> Self {
        Packet {
            ts,
            orig_len: data.len() as u32,
            iface: 0,
            link,
            vlan_tci: None,
            data,
        }
    }

    /// Number of captured bytes.
    #[inline]
    pub fn caplen(&self) -> u32 {
        self.data.len() as u32
    }

    /// True when fewer bytes were captured than were on the wire (a kernel-stripped VLAN tag
    /// is not a missing byte).
    #[inline]
    pub fn is_snapped(&self) -> bool {
        let stripped = if self.vlan_tci.is_some() { 4 } else { 0 };
        (self.data.len() as u64 + stripped) < self.orig_len as u64
    }
}

/// A batch of packets lent by a source: one buffer and the records that index into it.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    data: &'a [u8],
    metas: &'a [PacketMeta],
}

impl<'a> Batch<'a> {
    /// Wraps a buffer and records that index into it. Records pointing outside `data` yield empty
    /// packets rather than panicking, so a corrupt record can never crash a consumer.
    #[inline]
    pub fn new(data: &'a [u8], metas: &'a [PacketMeta]) -> Self {
        Batch { data, metas }
    }

    /// Number of packets in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// True when the batch holds no packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// The records of this batch.
    #[inline]
    pub fn metas(&self) -> &'a [PacketMeta] {
        self.metas
    }

    /// The buffer the records index into.
    #[inline]
    pub fn buffer(&self) -> &'a [u8] {
        self.data
    }

    /// The `i`-th packet.
    #[inline]
    pub fn get(&self, i: usize) -> Option<Packet<'a>> {
        self.metas.get(i).map(|m| self.packet(m))
    }

    /// Resolves one record of this batch into a packet view.
    #[inline]
    pub fn packet(&self, m: &PacketMeta) -> Packet<'a> {
        let start = m.offset as usize;
        let end = start.saturating_add(m.caplen as usize);
        let data = self.data.get(start..end).unwrap_or(&[]);
        Packet {
            ts: m.ts,
            orig_len: m.orig_len,
            iface: m.iface,
            link: m.link,
            vlan_tci: m.vlan_tci,
            data,
        }
    }

    /// Iterates over the packets in capture order.
    #[inline]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Packet<'a>> + '_ {
        let this = *self;
        self.metas.iter().map(move |m| this.packet(m))
    }
}

/// A batch that owns its buffer, so it can be sent to worker threads (behind an `Arc`) and
/// recycled afterwards.
#[derive(Debug, Default)]
pub struct OwnedBatch {
    /// Packet bytes; records index into it.
    pub data: Vec<u8>,
    /// One record per packet, in capture order.
    pub metas: Vec<PacketMeta>,
}

impl OwnedBatch {
    /// Borrows the owned batch as a lent batch.
    #[inline]
    pub fn as_batch(&self) -> Batch<'_> {
        Batch::new(&self.data, &self.metas)
    }

    /// Empties the batch but keeps both allocations for reuse.
    pub fn clear(&mut self) {
        self.data.clear();
        self.metas.clear();
    }
}

/// What is known about one capture interface (a pcap file has one; pcapng files and live
/// captures may have several).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Link type of frames captured on it.
    pub link: LinkType,
    /// Snapshot length (0 = unknown/unlimited).
    pub snaplen: u32,
    /// Interface name, if the source recorded one.
    pub name: Option<String>,
    /// Interface description, if the source recorded one.
    pub description: Option<String>,
    /// Capture filter string, if the source recorded one.
    pub filter: Option<String>,
    /// Timestamp resolution of the source as a power of ten (6 = µs, 9 = ns).
    pub ts_precision: u8,
}

impl Default for LinkType {
    fn default() -> Self {
        LinkType::ETHERNET
    }
}

/// Running counters every source keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// Packets handed out.
    pub packets: u64,
    /// Captured bytes handed out.
    pub bytes: u64,
    /// Sum of on-the-wire lengths of the packets handed out.
    pub wire_bytes: u64,
    /// Packets whose captured length is below their wire length (snaplen cut).
    pub snapped: u64,
    /// Packets the kernel dropped before they reached the ring (live sources).
    pub kernel_drops: u64,
    /// Packets dropped in user space because a worker fell behind (live sources).
    pub user_drops: u64,
    /// Times the kernel froze the ring queue (live sources).
    pub freezes: u64,
    /// Non-packet blocks skipped (pcapng statistics, name resolution, unknown blocks, ...).
    pub skipped_blocks: u64,
    /// Bytes of input consumed so far (for progress reporting on files).
    pub input_offset: u64,
}

/// Why a source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The operating system refused an operation (open, read, socket, mmap, ...).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file or interface.
        context: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// The input is not a capture file NetSpectra can read (bad magic, unknown version).
    #[error("{path}: byte offset {offset}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Offset of the offending bytes.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The input became unreadable part-way through (corrupt block, absurd length).
    #[error("{path}: byte offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Offset of the offending record or block.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A live capture needs a privilege the process lacks.
    #[error("{0}")]
    Permission(String),
    /// Anything else a source reports (bad filter expression, unknown interface, ...).
    #[error("{0}")]
    Other(String),
}

/// A producer of packet batches: a capture file, a live ring, or one share of either.
pub trait PacketSource {
    /// Lends the next batch to `f`. Returns `Ok(false)` at end of input (after `f` was called for
    /// every packet), `Ok(true)` when more may follow. A live source may call `f` with an empty
    /// batch when its poll times out, so that callers can run timers.
    fn next_batch(&mut self, f: &mut dyn FnMut(&Batch<'_>)) -> Result<bool, SourceError>;

    /// Counters so far.
    fn stats(&self) -> SourceStats;

    /// Interfaces seen so far, indexed by [`PacketMeta::iface`].
    fn interfaces(&self) -> &[InterfaceInfo];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_resolves_records_and_never_panics_on_bad_offsets() {
        let data = [1u8, 2, 3, 4, 5, 6];
        let metas = [
            PacketMeta {
                offset: 0,
                caplen: 2,
                orig_len: 2,
                ..Default::default()
            },
            PacketMeta {
                offset: 2,
                caplen: 4,
                orig_len: 10,
                ..Default::default()
            },
            PacketMeta {
                offset: 5,
                caplen: 4,
                orig_len: 4,
                ..Default::default()
            },
        ];
        let b = Batch::new(&data, &metas);
        let v: Vec<_> = b.iter().map(|p| p.data.to_vec()).collect();
        assert_eq!(v, vec![vec![1, 2], vec![3, 4, 5, 6], vec![]]);
        assert!(b.get(1).unwrap().is_snapped());
        assert!(b.get(3).is_none());
    }
}
