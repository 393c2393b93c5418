//! Buffered pcap and pcapng writers that keep timestamps at full (nanosecond) resolution and
//! original lengths.

use netspectra_packet::{InterfaceInfo, LinkType, Packet, Timestamp};
use std::io::{self, BufWriter, Write};

/// Output file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Classic pcap; `nanos` selects the nanosecond magic.
    Pcap {
        /// Write nanosecond timestamps (magic 0xa1b23c4d).
        nanos: bool,
    },
    /// pcapng with nanosecond `if_tsresol`.
    Pcapng,
}

/// Errors while writing a capture.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The underlying writer failed.
    #[error("write error: {0}")]
    Io(#[from] io::Error),
    /// A classic pcap file has one link type; a packet of another cannot go into it.
    #[error(
        "packet has link type {got} but this pcap file was opened for {want}; write pcapng instead"
    )]
    LinkTypeMismatch {
        /// The file's link type.
        want: LinkType,
        /// The packet's link type.
        got: LinkType,
    },
}

/// Writes a classic pcap file.
pub struct PcapWriter<W: Write> {
    w: BufWriter<W>,
    nanos: bool,
    link: LinkType,
    clamped: u64,
}

/// The latest time a classic pcap record can hold: its seconds field is an unsigned 32-bit
/// count from 1970 (2106-02-07T06:28:15Z plus a fraction).
pub const PCAP_MAX_SECS: i64 = u32::MAX as i64;

/// True when `ts` fits a classic pcap record header (1970-01-01 to 2106-02-07). Writers clamp
/// other times to the nearest end instead of letting the seconds wrap around, and count them
/// (see [`CaptureWriter::clamped_timestamps`]).
#[inline]
pub fn pcap_ts_fits(ts: Timestamp) -> bool {
    (0..=PCAP_MAX_SECS).contains(&ts.secs())
}

/// The 16-byte little-endian pcap record header for `len` captured bytes of a frame `orig_len`
/// bytes long (never less than `len`), with a nano- or microsecond fraction. For writers that
/// write record bytes themselves (e.g. straight from a read buffer). A time outside what pcap
/// can hold ([`pcap_ts_fits`]) is clamped to 1970-01-01 or 2106-02-07.
#[inline]
pub fn pcap_record_header(ts: Timestamp, orig_len: u32, len: usize, nanos: bool) -> [u8; 16] {
    let (secs, frac) = if ts.secs() < 0 {
        (0, 0)
    } else if ts.secs() > PCAP_MAX_SECS {
        (u32::MAX, if nanos { 999_999_999 } else { 999_999 })
    } else if nanos {
        (ts.secs() as u32, ts.subsec_nanos())
    } else {
        (ts.secs() as u32, ts.subsec_micros())
    };
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&secs.to_le_bytes());
    h[4..8].copy_from_slice(&frac.to_le_bytes());
    h[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    h[12..16].copy_from_slice(&orig_len.max(len as u32).to_le_bytes());
    h
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header for one link type and snapshot length.
    pub fn new(inner: W, link: LinkType, snaplen: u32, nanos: bool) -> io::Result<Self> {
        let mut w = BufWriter::with_capacity(1 << 20, inner);
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&magic.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&(if snaplen == 0 { 262_144 } else { snaplen }).to_le_bytes());
        h[20..24].copy_from_slice(&(link.0 as u32).to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter {
            w,
            nanos,
            link,
            clamped: 0,
        })
    }

    /// Appends one record.
    #[inline]
    pub fn write_record(&mut self, ts: Timestamp, orig_len: u32, data: &[u8]) -> io::Result<()> {
        if !pcap_ts_fits(ts) {
            self.clamped += 1;
        }
        self.w
            .write_all(&pcap_record_header(ts, orig_len, data.len(), self.nanos))?;
        self.w.write_all(data)
    }

    /// Appends a packet, checking that its link type matches the file's.
    pub fn write_packet(&mut self, p: &Packet<'_>) -> Result<(), WriteError> {
        if p.link != self.link {
            return Err(WriteError::LinkTypeMismatch {
                want: self.link,
                got: p.link,
            });
        }
        Ok(self.write_record(p.ts, p.orig_len, p.data)?)
    }

    /// Flushes buffered records.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

/// Writes a pcapng file: one section, interfaces described on first use.
pub struct PcapngWriter<W: Write> {
    w: BufWriter<W>,
    /// Source interface index -> pcapng interface id in this file.
    ids: Vec<Option<u32>>,
    next_id: u32,
    clamped: u64,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header; `app` is recorded as `shb_userappl` when given.
    pub fn new(inner: W, app: Option<&str>) -> io::Result<Self> {
        let mut w = BufWriter::with_capacity(1 << 20, inner);
        let mut opts = Vec::new();
        if let Some(a) = app {
            push_opt(&mut opts, 4, a.as_bytes());
            push_opt(&mut opts, 0, &[]);
        }
        let len = 28 + opts.len() as u32;
        w.write_all(&0x0a0d_0d0au32.to_le_bytes())?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&0x1a2b_3c4du32.to_le_bytes())?;
        w.write_all(&1u16.to_le_bytes())?;
        w.write_all(&0u16.to_le_bytes())?;
        w.write_all(&(-1i64).to_le_bytes())?;
        w.write_all(&opts)?;
        w.write_all(&len.to_le_bytes())?;
        Ok(PcapngWriter {
            w,
            ids: Vec::new(),
            next_id: 0,
            clamped: 0,
        })
    }

    /// Describes an interface and returns its id in this file. Only the link type, snaplen,
    /// name, description and filter of `info` are written (callers scrub what must not leak).
    pub fn add_interface(&mut self, info: &InterfaceInfo) -> io::Result<u32> {
        let mut opts = Vec::new();
        if let Some(n) = &info.name {
            push_opt(&mut opts, 2, n.as_bytes());
        }
        if let Some(d) = &info.description {
            push_opt(&mut opts, 3, d.as_bytes());
        }
        if let Some(f) = &info.filter {
            let mut v = vec![0u8];
            v.extend_from_slice(f.as_bytes());
            push_opt(&mut opts, 11, &v);
        }
        push_opt(&mut opts, 9, &[9]); // if_tsresol: nanoseconds
        push_opt(&mut opts, 0, &[]);
        let len = 20 + opts.len() as u32;
        self.w.write_all(&1u32.to_le_bytes())?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(&info.link.0.to_le_bytes())?;
        self.w.write_all(&0u16.to_le_bytes())?;
        self.w.write_all(&info.snaplen.to_le_bytes())?;
        self.w.write_all(&opts)?;
        self.w.write_all(&len.to_le_bytes())?;
        let id = self.next_id;
        self.next_id += 1;
        Ok(id)
    }

    /// Appends an enhanced packet block on interface `id` (from [`PcapngWriter::add_interface`]).
    #[inline]
    pub fn write_record(
        &mut self,
        id: u32,
        ts: Timestamp,
        orig_len: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let pad = pad4(data.len());
        let len = (32 + data.len() + pad) as u32;
        // Units are unsigned nanoseconds since 1970: a time before it is clamped to 1970 (as
        // a plain cast it would become the far future).
        let units = if ts.as_nanos() < 0 {
            self.clamped += 1;
            0
        } else {
            ts.as_nanos() as u64
        };
        let mut h = [0u8; 28];
        h[0..4].copy_from_slice(&6u32.to_le_bytes());
        h[4..8].copy_from_slice(&len.to_le_bytes());
        h[8..12].copy_from_slice(&id.to_le_bytes());
        h[12..16].copy_from_slice(&((units >> 32) as u32).to_le_bytes());
        h[16..20].copy_from_slice(&(units as u32).to_le_bytes());
        h[20..24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[24..28].copy_from_slice(&orig_len.max(data.len() as u32).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(data)?;
        self.w.write_all(&[0u8; 3][..pad])?;
        self.w.write_all(&len.to_le_bytes())
    }

    /// Appends a packet, describing its source interface (from `ifaces`) on first use.
    pub fn write_packet(&mut self, p: &Packet<'_>, ifaces: &[InterfaceInfo]) -> io::Result<()> {
        let idx = p.iface as usize;
        if self.ids.len() <= idx {
            self.ids.resize(idx + 1, None);
        }
        let id = match self.ids[idx] {
            Some(id) => id,
            None => {
                let fallback = InterfaceInfo {
                    link: p.link,
                    ..Default::default()
                };
                let info = ifaces.get(idx).unwrap_or(&fallback);
                let info = InterfaceInfo {
                    link: p.link,
                    ..info.clone()
                };
                let id = self.add_interface(&info)?;
                self.ids[idx] = Some(id);
                id
            }
        };
        self.write_record(id, p.ts, p.orig_len, p.data)
    }

    /// Flushes buffered blocks.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.w.into_inner().map_err(|e| e.into_error())
    }
}

fn push_opt(out: &mut Vec<u8>, code: u16, val: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(val.len() as u16).to_le_bytes());
    out.extend_from_slice(val);
    out.extend(std::iter::repeat_n(0u8, pad4(val.len())));
}

/// Either writer behind one interface, chosen at run time.
pub enum CaptureWriter<W: Write> {
    /// Classic pcap.
    Pcap(PcapWriter<W>),
    /// pcapng.
    Pcapng(PcapngWriter<W>),
}

impl<W: Write> CaptureWriter<W> {
    /// Opens a writer of the given format. For pcap, the link type and snaplen come from the
    /// first interface (`ifaces[0]`), as a pcap file has only one.
    pub fn new(inner: W, format: OutputFormat, ifaces: &[InterfaceInfo]) -> io::Result<Self> {
        Ok(match format {
            OutputFormat::Pcap { nanos } => {
                let first = ifaces.first().cloned().unwrap_or_default();
                CaptureWriter::Pcap(PcapWriter::new(inner, first.link, first.snaplen, nanos)?)
            }
            OutputFormat::Pcapng => {
                CaptureWriter::Pcapng(PcapngWriter::new(inner, Some("netspectra"))?)
            }
        })
    }

    /// Packets whose time the format could not hold and that were written with the nearest
    /// time it can (see [`pcap_ts_fits`]; pcapng holds 1970 to 2554).
    pub fn clamped_timestamps(&self) -> u64 {
        match self {
            CaptureWriter::Pcap(w) => w.clamped,
            CaptureWriter::Pcapng(w) => w.clamped,
        }
    }

    /// Appends a packet.
    #[inline]
    pub fn write_packet(
        &mut self,
        p: &Packet<'_>,
        ifaces: &[InterfaceInfo],
    ) -> Result<(), WriteError> {
        match self {
            CaptureWriter::Pcap(w) => w.write_packet(p),
            CaptureWriter::Pcapng(w) => Ok(w.write_packet(p, ifaces)?),
        }
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            CaptureWriter::Pcap(w) => w.flush(),
            CaptureWriter::Pcapng(w) => w.flush(),
        }
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            CaptureWriter::Pcap(w) => w.finish(),
            CaptureWriter::Pcapng(w) => w.finish(),
        }
    }
}
