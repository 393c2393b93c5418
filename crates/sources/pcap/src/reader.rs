//! Streaming reader for pcap and pcapng files: constant memory whatever the file size, packets
//! handed out as zero-copy batches over a chunk buffer.
//!
//! Framing of the hot records (pcap record headers, pcapng enhanced/simple/obsolete packet
//! blocks) is done here without allocation; section and interface blocks, whose options need a
//! real parser, go through `pcap-parser`.

use crate::limits::max_caplen;
use netspectra_packet::{
    Batch, InterfaceInfo, LinkType, OwnedBatch, PacketMeta, PacketSource, SourceError, SourceStats,
    Timestamp,
};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Default size of one read chunk; a batch holds the whole records found in one chunk. 1 MiB:
/// with the read-ahead buffers in flight the working set stays near the L2/L3 sizes of small
/// machines; 2 MiB chunks were slower in every reader-bound command measured here (flows,
/// http, info; see BENCHMARKS.md).
pub const DEFAULT_CHUNK: usize = 1 << 20;
/// Largest pcapng block accepted (Wireshark uses the same bound).
pub const MAX_BLOCK: u32 = 16 << 20;
/// At most this many warnings are kept (the count keeps going).
const MAX_WARNINGS: usize = 64;

/// The on-disk format of a capture file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Classic libpcap format.
    Pcap {
        /// Version major.minor from the header.
        version: (u16, u16),
        /// Nanosecond timestamps (magic 0xa1b23c4d).
        nanos: bool,
        /// File written big-endian.
        big_endian: bool,
        /// Header snaplen.
        snaplen: u32,
        /// Kuznetsov's modified format (magic 0xa1b2cd34, 24-byte record headers).
        modified: bool,
    },
    /// pcapng.
    Pcapng {
        /// Byte order of the first section.
        big_endian: bool,
    },
}

impl FileFormat {
    /// Name as capinfos prints it.
    pub fn describe(&self) -> String {
        match self {
            FileFormat::Pcap { nanos: true, .. } => "pcap (nanosecond)".into(),
            FileFormat::Pcap { modified: true, .. } => "pcap (modified)".into(),
            FileFormat::Pcap { .. } => "pcap".into(),
            FileFormat::Pcapng { .. } => "pcapng".into(),
        }
    }

    /// Whether timestamps are kept at nanosecond precision.
    pub fn is_nanos(&self) -> bool {
        matches!(
            self,
            FileFormat::Pcap { nanos: true, .. } | FileFormat::Pcapng { .. }
        )
    }
}

/// A non-fatal problem found while reading (the reader carried on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadWarning {
    /// Byte offset in the (decompressed) input.
    pub offset: u64,
    /// What happened.
    pub message: String,
}

impl std::fmt::Display for ReadWarning {
    /// `byte offset N: message`, the form every command prints after the file name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "byte offset {}: {}", self.offset, self.message)
    }
}

/// Per-interface state of the current pcapng section.
#[derive(Clone, Copy, Debug)]
struct SectionIface {
    global: u32,
    link: LinkType,
    snaplen: u32,
    /// Timestamp units per second as (is_power_of_two, exponent).
    resol: (bool, u8),
    offset_secs: i64,
}

enum Framing {
    Pcap {
        be: bool,
        nanos: bool,
        link: LinkType,
        max: u32,
        rec_hdr: usize,
    },
    Pcapng {
        be: bool,
        ifaces: Vec<SectionIface>,
    },
}

/// Streaming reader of one capture file (or standard input, or a gzip stream).
pub struct CaptureReader {
    path: PathBuf,
    input: Box<dyn Read + Send>,
    /// For streams (pipes, standard input): the stop flag and whether it ended the input.
    pump: Option<Arc<PumpControl>>,
    format: FileFormat,
    framing: Framing,
    /// Unconsumed bytes start at index 0; `buf.len()` is the end of valid data.
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    chunk: usize,
    eof: bool,
    done: bool,
    interfaces: Vec<InterfaceInfo>,
    stats: SourceStats,
    warnings: Vec<ReadWarning>,
    warning_count: u64,
    sections: u32,
    spare: Option<OwnedBatch>,
    pending_error: Option<SourceError>,
    /// The decompressor failed (corrupt or cut-short gzip data): reported once every complete
    /// record decompressed before it was handed out.
    read_failure: Option<SourceError>,
    /// The input ended because of `read_failure` (not at a clean end).
    eof_from_failure: bool,
    total_size: Option<u64>,
    compressed: bool,
}

fn io_err(path: &Path, what: &str, e: io::Error) -> SourceError {
    SourceError::Io {
        context: format!("{}: {what}", path.display()),
        source: e,
    }
}

/// A decompression failure: corrupt or cut-short gzip data is the input's fault (a
/// [`SourceError::Corrupt`] at the decompressed offset where the data stopped), not the
/// machine's.
fn gzip_error(path: &Path, offset: u64, e: io::Error) -> SourceError {
    SourceError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: format!("gzip data unreadable after this decompressed offset: {e}"),
    }
}

impl CaptureReader {
    /// Opens a capture file by path; `-` reads standard input. Gzip is detected by magic.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let path = path.as_ref();
        if path.as_os_str() == "-" {
            return Self::from_reader("-", Box::new(io::stdin()), None);
        }
        let f = File::open(path).map_err(|e| io_err(path, "cannot open", e))?;
        let size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        let r = Self::from_reader(path, Box::new(f), size)?;
        // The size is the compressed one for gzip, not what the reader's offsets count.
        let size = if r.compressed { None } else { size };
        Ok(CaptureReader {
            total_size: size,
            ..r
        })
    }

    /// Reads a capture from any byte stream; `name` is used in messages.
    pub fn from_reader(
        name: impl AsRef<Path>,
        mut input: Box<dyn Read + Send>,
        total_size: Option<u64>,
    ) -> Result<Self, SourceError> {
        let path = name.as_ref().to_path_buf();
        let mut buf = Vec::with_capacity(DEFAULT_CHUNK);
        fill_to(&mut *input, &mut buf, 4).map_err(|e| io_err(&path, "read error", e))?;
        let mut compressed = false;
        if buf.starts_with(&[0x1f, 0x8b]) {
            let raw = std::io::Cursor::new(std::mem::take(&mut buf)).chain(input);
            input = Box::new(flate2::read::MultiGzDecoder::new(raw));
            buf = Vec::with_capacity(DEFAULT_CHUNK);
            fill_to(&mut *input, &mut buf, 4).map_err(|e| gzip_error(&path, 0, e))?;
            compressed = true;
        }
        let header = fill_to(&mut *input, &mut buf, 28);
        let read_failure = match header {
            Ok(_) => None,
            // Whatever decompressed is parsed; the failure comes after it.
            Err(e) if compressed => Some(gzip_error(&path, buf.len() as u64, e)),
            Err(e) => return Err(io_err(&path, "read error", e)),
        };
        let mut r = CaptureReader {
            path,
            input,
            format: FileFormat::Pcapng { big_endian: false },
            framing: Framing::Pcapng {
                be: false,
                ifaces: Vec::new(),
            },
            buf,
            buf_offset: 0,
            chunk: DEFAULT_CHUNK,
            eof: false,
            done: false,
            interfaces: Vec::new(),
            stats: SourceStats::default(),
            warnings: Vec::new(),
            warning_count: 0,
            sections: 0,
            spare: None,
            pump: None,
            pending_error: None,
            eof_from_failure: read_failure.is_some(),
            read_failure,
            total_size,
            compressed,
        };
        r.eof = r.eof_from_failure;
        if let Err(e) = r.read_file_header() {
            return Err(r.read_failure.take().unwrap_or(e));
        }
        if r.total_size.is_none() && !r.eof {
            // A stream: read it on a thread of its own, so that a stop request is seen while
            // its writer is quiet (a blocked read() would not see it).
            let raw = std::mem::replace(&mut r.input, Box::new(io::empty()));
            let (pump, ctl) = Pump::start(raw);
            r.input = Box::new(pump);
            r.pump = Some(ctl);
        }
        Ok(r)
    }

    /// Lets a stream (pipe, standard input) end early when `stop` is raised, even while no data
    /// arrives: the input then ends where it was, and [`CaptureReader::stopped_early`] says so.
    /// Regular files are read to their end by the caller's own loop, which checks the flag.
    pub fn set_stop(&mut self, stop: Arc<AtomicBool>) {
        if let Some(p) = &self.pump {
            let _ = p.stop.set(stop);
        }
    }

    /// True when a stop request ended a stream before its writer closed it.
    pub fn stopped_early(&self) -> bool {
        self.pump
            .as_ref()
            .is_some_and(|p| p.stopped.load(Ordering::Relaxed))
    }

    /// Sets the read chunk size (bytes per batch buffer); mainly for tests and tuning.
    pub fn with_chunk_size(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(4096);
        self.buf.shrink_to(self.chunk);
        self
    }

    /// The file (or `-`) being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected file format.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// True when the input was gzip-compressed.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// Size of the input file in bytes when known (regular uncompressed files), for progress.
    pub fn total_size(&self) -> Option<u64> {
        self.total_size
    }

    /// Number of pcapng sections seen (1 for pcap).
    pub fn sections(&self) -> u32 {
        self.sections
    }

    /// Warnings so far (at most 64 kept; see [`CaptureReader::warning_count`]).
    pub fn warnings(&self) -> &[ReadWarning] {
        &self.warnings
    }

    /// Total number of warnings so far.
    pub fn warning_count(&self) -> u64 {
        self.warning_count
    }

    fn warn(&mut self, offset: u64, message: String) {
        self.warning_count += 1;
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(ReadWarning { offset, message });
        }
    }

    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> SourceError {
        SourceError::Corrupt {
            path: self.path.clone(),
            offset,
            reason: reason.into(),
        }
    }

    fn read_file_header(&mut self) -> Result<(), SourceError> {
        let b = &self.buf;
        if b.len() < 4 {
            return Err(SourceError::Format {
                path: self.path.clone(),
                offset: 0,
                reason: format!("file too short for a capture header ({} bytes)", b.len()),
            });
        }
        let magic_le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let (be, nanos, modified) = match magic_le {
            0xa1b2c3d4 => (false, false, false),
            0xd4c3b2a1 => (true, false, false),
            0xa1b23c4d => (false, true, false),
            0x4d3cb2a1 => (true, true, false),
            0xa1b2cd34 => (false, false, true),
            0x34cdb2a1 => (true, false, true),
            0x0a0d0d0a => {
                self.format = FileFormat::Pcapng { big_endian: false };
                // Endianness is read from the section header when it is parsed.
                return Ok(());
            }
            _ => {
                return Err(SourceError::Format {
                    path: self.path.clone(),
                    offset: 0,
                    reason: format!("not a pcap or pcapng file (magic {:02x?})", &b[..4]),
                })
            }
        };
        if b.len() < 24 {
            return Err(SourceError::Format {
                path: self.path.clone(),
                offset: 0,
                reason: format!("pcap file header truncated ({} of 24 bytes)", b.len()),
            });
        }
        let u16_at = |o: usize| {
            if be {
                u16::from_be_bytes([b[o], b[o + 1]])
            } else {
                u16::from_le_bytes([b[o], b[o + 1]])
            }
        };
        let u32_at = |o: usize| {
            let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
            if be {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        let version = (u16_at(4), u16_at(6));
        if version.0 != 2 {
            return Err(SourceError::Format {
                path: self.path.clone(),
                offset: 4,
                reason: format!("unsupported pcap version {}.{}", version.0, version.1),
            });
        }
        let snaplen = u32_at(16);
        // Bits 26..28 of the link-type field carry FCS information (pcap spec); the type
        // itself is in the low bits, masked as Wireshark does.
        let hdr_link_raw = u32_at(20) & 0x03ff_ffff;
        let link = LinkType(hdr_link_raw as u16);
        if hdr_link_raw > u16::MAX as u32 {
            return Err(SourceError::Format {
                path: self.path.clone(),
                offset: 20,
                reason: format!("unknown link type {hdr_link_raw}"),
            });
        }
        self.format = FileFormat::Pcap {
            version,
            nanos,
            big_endian: be,
            snaplen,
            modified,
        };
        self.framing = Framing::Pcap {
            be,
            nanos,
            link,
            max: max_caplen(link),
            rec_hdr: if modified { 24 } else { 16 },
        };
        self.interfaces.push(InterfaceInfo {
            link,
            snaplen,
            ts_precision: if nanos { 9 } else { 6 },
            ..Default::default()
        });
        self.sections = 1;
        self.buf.drain(..24);
        self.buf_offset = 24;
        Ok(())
    }

    /// Reads more input into the buffer until it holds `chunk` bytes or the input ends.
    fn fill(&mut self) -> Result<(), SourceError> {
        if self.eof {
            return Ok(());
        }
        let want = self.chunk.max(self.buf.len() + 1);
        let got = if self.total_size.is_some() {
            fill_to(&mut *self.input, &mut self.buf, want)
        } else {
            // A pipe or socket (`tcpdump -U -w - | netspectra ...`): hand out what has arrived
            // instead of waiting for a whole chunk, so packets are not held back while the
            // writer is quiet.
            fill_available(&mut *self.input, &mut self.buf, want)
        };
        match got {
            Ok(true) => {}
            Ok(false) => self.eof = true,
            Err(e) if self.compressed => {
                // Corrupt or cut-short gzip data: what decompressed so far is still parsed,
                // then the failure is reported at the offset where the data stopped.
                let at = self.buf_offset + self.buf.len() as u64;
                self.read_failure = Some(gzip_error(&self.path, at, e));
                self.eof = true;
            }
            Err(e) => return Err(io_err(&self.path, "read error", e)),
        }
        Ok(())
    }

    /// Produces the next batch as an owned buffer (reusing `recycle`'s allocations), so it can be
    /// shared with worker threads. Returns `None` at end of input.
    pub fn next_owned(
        &mut self,
        recycle: Option<OwnedBatch>,
    ) -> Result<Option<OwnedBatch>, SourceError> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        let mut out = recycle.unwrap_or_default();
        out.clear();
        loop {
            if self.done {
                return Ok(None);
            }
            self.fill()?;
            let mut pos = 0usize;
            let mut need = 0usize; // bytes needed for the incomplete record at `pos`
            let result = self.parse_records(&mut out.metas, &mut pos, &mut need);
            if let Err(e) = result {
                // Hand out what was parsed before the corrupt record first; fail on the next call.
                self.done = true;
                if !out.metas.is_empty() {
                    self.pending_error = Some(e);
                    return Ok(Some(self.take_batch(out, pos)));
                }
                return Err(e);
            }
            if !out.metas.is_empty() || pos > 0 {
                if self.eof && pos == self.buf.len() {
                    self.done = true;
                    self.pending_error = self.read_failure.take();
                }
                let batch = self.take_batch(out, pos);
                if !batch.metas.is_empty() {
                    return Ok(Some(batch));
                }
                out = batch;
                out.clear();
                continue;
            }
            // Nothing complete in the buffer.
            if self.eof {
                self.done = true;
                if let Some(e) = self.read_failure.take() {
                    return Err(e);
                }
                if !self.buf.is_empty() {
                    let off = self.buf_offset;
                    let (have, want) = (self.buf.len(), need.max(self.buf.len() + 1));
                    if self.sections == 0 {
                        // A pcapng file cut inside its first section header is no capture
                        // at all, as a pcap file cut inside its file header is not.
                        return Err(SourceError::Format {
                            path: self.path.clone(),
                            offset: off,
                            reason: format!(
                                "pcapng section header block truncated ({have} of {want} bytes)"
                            ),
                        });
                    }
                    self.warn(
                        off,
                        format!("last record truncated: {have} of {want} bytes present; ignored"),
                    );
                }
                return Ok(None);
            }
            // A record larger than the chunk: grow the buffer to hold it.
            if need > self.buf.capacity() {
                self.buf.reserve(need - self.buf.len());
            }
            self.chunk = self.chunk.max(need);
        }
    }

    /// Splits the buffer after `pos`: the parsed part leaves in the batch, the tail stays.
    fn take_batch(&mut self, mut out: OwnedBatch, pos: usize) -> OwnedBatch {
        let mut next = std::mem::take(&mut out.data);
        next.clear();
        if next.capacity() < self.chunk {
            next.reserve(self.chunk);
        }
        next.extend_from_slice(&self.buf[pos..]);
        out.data = std::mem::replace(&mut self.buf, next);
        out.data.truncate(pos);
        self.buf_offset += pos as u64;
        self.stats.input_offset = self.buf_offset;
        out
    }
}

#[inline]
fn rd16(be: bool, b: &[u8], o: usize) -> u16 {
    let a = [b[o], b[o + 1]];
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

#[inline]
fn rd32(be: bool, b: &[u8], o: usize) -> u32 {
    let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// Shared between a [`CaptureReader`] and its [`Pump`].
struct PumpControl {
    stop: OnceLock<Arc<AtomicBool>>,
    stopped: AtomicBool,
}

/// Reads a stream on its own thread and hands its bytes over in pieces: a reader that can
/// give up waiting when asked to stop. Holds at most `PUMP_DEPTH` pieces of 64 KiB.
struct Pump {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    ctl: Arc<PumpControl>,
}

const PUMP_DEPTH: usize = 16;

impl Pump {
    fn start(mut input: Box<dyn Read + Send>) -> (Pump, Arc<PumpControl>) {
        let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(PUMP_DEPTH);
        let ctl = Arc::new(PumpControl {
            stop: OnceLock::new(),
            stopped: AtomicBool::new(false),
        });
        // Detached: it ends at the stream's end, or at its next read once the reader is gone.
        let _ = std::thread::Builder::new()
            .name("capture-pump".into())
            .spawn(move || loop {
                let mut piece = vec![0u8; 64 * 1024];
                match input.read(&mut piece) {
                    Ok(0) => {
                        let _ = tx.send(Ok(Vec::new()));
                        return;
                    }
                    Ok(n) => {
                        piece.truncate(n);
                        if tx.send(Ok(piece)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            });
        let pump = Pump {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
            ctl: Arc::clone(&ctl),
        };
        (pump, ctl)
    }
}

impl Read for Pump {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.cur.len() {
                let n = buf.len().min(self.cur.len() - self.pos);
                buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            match self.rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(v)) if v.is_empty() => self.done = true,
                Ok(Ok(v)) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self
                        .ctl
                        .stop
                        .get()
                        .is_some_and(|s| s.load(Ordering::Relaxed))
                    {
                        self.ctl.stopped.store(true, Ordering::Relaxed);
                        self.done = true;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => self.done = true,
            }
        }
    }
}

/// Appends to `buf` up to `want` bytes in all, stopping after a read that returned less than it
/// asked for (nothing more is available right now); false at end of input. Blocks only while
/// nothing at all has arrived.
fn fill_available(input: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let mut piece = [0u8; 64 * 1024];
    let mut any = false;
    while buf.len() < want {
        let ask = piece.len().min(want - buf.len());
        let n = match input.read(&mut piece[..ask]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(any);
        }
        buf.extend_from_slice(&piece[..n]);
        any = true;
        if n < ask {
            break;
        }
    }
    Ok(true)
}

/// Reads until `buf` holds `want` bytes (`Ok(true)`) or the input ends (`Ok(false)`), without
/// zero-filling the buffer first.
fn fill_to(input: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    while buf.len() < want {
        let n = input.take((want - buf.len()) as u64).read_to_end(buf)?;
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Converts pcapng timestamp units to a [`Timestamp`].
fn pcapng_ts(units: u64, resol: (bool, u8), offset_secs: i64) -> Timestamp {
    let (pow2, exp) = resol;
    let u = units as i128;
    let ns: i128 = if pow2 {
        (u * 1_000_000_000) >> exp.min(100)
    } else if exp <= 9 {
        u * 10i128.pow(9 - exp as u32)
    } else {
        u / 10i128.pow(exp as u32 - 9)
    };
    let ns = ns + offset_secs as i128 * 1_000_000_000;
    Timestamp(ns.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

impl CaptureReader {
    fn parse_records(
        &mut self,
        metas: &mut Vec<PacketMeta>,
        pos: &mut usize,
        need: &mut usize,
    ) -> Result<(), SourceError> {
        match self.framing {
            Framing::Pcap {
                be,
                nanos,
                link,
                max,
                rec_hdr,
            } => self.parse_pcap(be, nanos, link, max, rec_hdr, metas, pos, need),
            Framing::Pcapng { .. } => self.parse_pcapng(metas, pos, need),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn parse_pcap(
        &mut self,
        be: bool,
        nanos: bool,
        link: LinkType,
        max: u32,
        rec_hdr: usize,
        metas: &mut Vec<PacketMeta>,
        pos: &mut usize,
        need: &mut usize,
    ) -> Result<(), SourceError> {
        let buf = &self.buf;
        let mut p = *pos;
        let mut st = self.stats;
        while p + rec_hdr <= buf.len() {
            let secs = rd32(be, buf, p);
            let frac = rd32(be, buf, p + 4);
            let incl = rd32(be, buf, p + 8);
            let orig = rd32(be, buf, p + 12);
            if incl > max {
                *pos = p;
                self.stats = st;
                return Err(self.corrupt(
                    self.buf_offset + p as u64,
                    format!("packet record claims {incl} captured bytes, more than the maximum of {max} (corrupt file?)"),
                ));
            }
            let total = rec_hdr + incl as usize;
            if p + total > buf.len() {
                *need = total;
                break;
            }
            let nsec = if nanos { frac } else { frac.wrapping_mul(1000) };
            metas.push(PacketMeta {
                ts: Timestamp::from_parts(secs as i64, 0).plus_nanos(nsec as i64),
                offset: (p + rec_hdr) as u32,
                caplen: incl,
                orig_len: orig,
                iface: 0,
                link,
                vlan_tci: None,
            });
            st.packets += 1;
            st.bytes += incl as u64;
            st.wire_bytes += orig as u64;
            st.snapped += (incl < orig) as u64;
            p += total;
        }
        if p < buf.len() && p + rec_hdr > buf.len() {
            // Not even the record header is complete: that is what is missing.
            *need = rec_hdr;
        }
        *pos = p;
        self.stats = st;
        Ok(())
    }

    fn parse_pcapng(
        &mut self,
        metas: &mut Vec<PacketMeta>,
        pos: &mut usize,
        need: &mut usize,
    ) -> Result<(), SourceError> {
        let mut p = *pos;
        let res = loop {
            let buf = &self.buf;
            if p + 12 > buf.len() {
                *need = 12;
                break Ok(());
            }
            let off = self.buf_offset + p as u64;
            let Framing::Pcapng { be: cur_be, .. } = self.framing else {
                unreachable!()
            };
            let is_shb = buf[p..p + 4] == [0x0a, 0x0d, 0x0d, 0x0a];
            let be = if is_shb {
                match buf[p + 8..p + 12] {
                    [0x1a, 0x2b, 0x3c, 0x4d] => true,
                    [0x4d, 0x3c, 0x2b, 0x1a] => false,
                    _ => {
                        break Err(self
                            .corrupt(off + 8, "section header block has a bad byte-order magic"))
                    }
                }
            } else {
                cur_be
            };
            if !is_shb && self.sections == 0 {
                break Err(self.corrupt(
                    off,
                    "pcapng file does not start with a section header block",
                ));
            }
            let btype = rd32(be, buf, p);
            let blen = rd32(be, buf, p + 4);
            if blen < 12 || !blen.is_multiple_of(4) {
                break Err(self.corrupt(
                    off,
                    format!("block of type {btype:#x} has invalid length {blen}"),
                ));
            }
            if blen > MAX_BLOCK {
                break Err(self.corrupt(off, format!("block of type {btype:#x} claims {blen} bytes, more than the maximum of {MAX_BLOCK}")));
            }
            let blen = blen as usize;
            if p + blen > buf.len() {
                *need = blen;
                break Ok(());
            }
            if rd32(be, buf, p + blen - 4) as usize != blen {
                break Err(self.corrupt(
                    off,
                    format!("block of type {btype:#x}: leading and trailing lengths differ"),
                ));
            }
            if let Err(e) = self.pcapng_block(btype, be, p, blen, off, metas) {
                break Err(e);
            }
            p += blen;
        };
        *pos = p;
        res
    }

    fn pcapng_block(
        &mut self,
        btype: u32,
        be: bool,
        p: usize,
        blen: usize,
        off: u64,
        metas: &mut Vec<PacketMeta>,
    ) -> Result<(), SourceError> {
        let block = &self.buf[p..p + blen];
        match btype {
            0x0a0d0d0a => {
                let parsed = pcap_parser::pcapng::parse_sectionheaderblock(block);
                let shb = match parsed {
                    Ok((_, shb)) => shb,
                    Err(_) => return Err(self.corrupt(off, "unreadable section header block")),
                };
                if shb.major_version != 1 {
                    return Err(self.corrupt(
                        off + 12,
                        format!(
                            "unsupported pcapng version {}.{}",
                            shb.major_version, shb.minor_version
                        ),
                    ));
                }
                if self.sections == 0 {
                    self.format = FileFormat::Pcapng { big_endian: be };
                }
                self.sections += 1;
                self.framing = Framing::Pcapng {
                    be,
                    ifaces: Vec::new(),
                };
            }
            1 => {
                let parsed = if be {
                    pcap_parser::pcapng::parse_interfacedescriptionblock_be(block)
                } else {
                    pcap_parser::pcapng::parse_interfacedescriptionblock_le(block)
                };
                let idb = match parsed {
                    Ok((_, idb)) => idb,
                    Err(_) => {
                        return Err(self.corrupt(off, "unreadable interface description block"))
                    }
                };
                let raw = idb.if_tsresol;
                let resol = (raw & 0x80 != 0, raw & 0x7f);
                if !resol.0 && resol.1 > 19 {
                    return Err(
                        self.corrupt(off, format!("interface has an invalid if_tsresol {raw}"))
                    );
                }
                // pcap-parser 0.17 decodes if_tsoffset as little-endian even in big-endian
                // sections, so the option is read here with the section's byte order.
                let tsoffset = idb
                    .options
                    .iter()
                    .find(|o| o.code.0 == 14 && o.value.len() >= 8)
                    .map(|o| {
                        let b: [u8; 8] = o.value[..8].try_into().unwrap_or([0; 8]);
                        if be {
                            i64::from_be_bytes(b)
                        } else {
                            i64::from_le_bytes(b)
                        }
                    })
                    .unwrap_or(0);
                let link = LinkType(idb.linktype.0 as u16);
                let text = |o: Option<Result<&str, _>>| o.and_then(|r| r.ok()).map(str::to_owned);
                let info = InterfaceInfo {
                    link,
                    snaplen: idb.snaplen,
                    name: text(idb.if_name()),
                    description: text(idb.if_description()),
                    filter: text(idb.if_filter()),
                    ts_precision: if resol.0 { 9 } else { resol.1 },
                };
                let global = self.interfaces.len() as u32;
                self.interfaces.push(info);
                if let Framing::Pcapng { ifaces, .. } = &mut self.framing {
                    ifaces.push(SectionIface {
                        global,
                        link,
                        snaplen: idb.snaplen,
                        resol,
                        offset_secs: tsoffset,
                    });
                }
            }
            6 | 2 => {
                if blen < 32 {
                    return Err(self.corrupt(off, "packet block too short"));
                }
                let (if_id, ts_hi, ts_lo, caplen, orig) = if btype == 6 {
                    (
                        rd32(be, block, 8),
                        rd32(be, block, 12),
                        rd32(be, block, 16),
                        rd32(be, block, 20),
                        rd32(be, block, 24),
                    )
                } else {
                    (
                        rd16(be, block, 8) as u32,
                        rd32(be, block, 12),
                        rd32(be, block, 16),
                        rd32(be, block, 20),
                        rd32(be, block, 24),
                    )
                };
                let iface = self.section_iface(if_id, off)?;
                if 28 + caplen as usize > blen - 4 {
                    return Err(self.corrupt(
                        off,
                        format!(
                            "packet block claims {caplen} captured bytes but holds only {}",
                            blen - 32
                        ),
                    ));
                }
                let max = crate::limits::max_caplen(iface.link);
                if caplen > max {
                    return Err(self.corrupt(
                        off,
                        format!("packet of {caplen} captured bytes exceeds the maximum of {max}"),
                    ));
                }
                let units = (ts_hi as u64) << 32 | ts_lo as u64;
                self.push_meta(
                    metas,
                    pcapng_ts(units, iface.resol, iface.offset_secs),
                    p + 28,
                    caplen,
                    orig,
                    &iface,
                );
            }
            3 => {
                let iface = self.section_iface(0, off)?;
                if blen < 16 {
                    return Err(self.corrupt(off, "simple packet block too short"));
                }
                let orig = rd32(be, block, 8);
                let mut caplen = orig.min((blen - 16) as u32);
                if iface.snaplen != 0 {
                    caplen = caplen.min(iface.snaplen);
                }
                self.push_meta(metas, Timestamp(0), p + 12, caplen, orig, &iface);
            }
            _ => self.stats.skipped_blocks += 1,
        }
        Ok(())
    }

    fn section_iface(&self, if_id: u32, off: u64) -> Result<SectionIface, SourceError> {
        match &self.framing {
            Framing::Pcapng { ifaces, .. } => {
                ifaces.get(if_id as usize).copied().ok_or_else(|| {
                    self.corrupt(
                        off,
                        format!("packet refers to interface {if_id}, which was not described"),
                    )
                })
            }
            Framing::Pcap { .. } => unreachable!("pcapng block in a pcap file"),
        }
    }

    fn push_meta(
        &mut self,
        metas: &mut Vec<PacketMeta>,
        ts: Timestamp,
        offset: usize,
        caplen: u32,
        orig: u32,
        iface: &SectionIface,
    ) {
        metas.push(PacketMeta {
            ts,
            offset: offset as u32,
            caplen,
            orig_len: orig,
            iface: iface.global,
            link: iface.link,
            vlan_tci: None,
        });
        let st = &mut self.stats;
        st.packets += 1;
        st.bytes += caplen as u64;
        st.wire_bytes += orig as u64;
        st.snapped += (caplen < orig) as u64;
    }
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PacketSource for CaptureReader {
    fn next_batch(&mut self, f: &mut dyn FnMut(&Batch<'_>)) -> Result<bool, SourceError> {
        let spare = self.spare.take();
        match self.next_owned(spare)? {
            Some(b) => {
                f(&b.as_batch());
                self.spare = Some(b);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }

    fn interfaces(&self) -> &[InterfaceInfo] {
        &self.interfaces
    }
}
