//! Raw packets into rotating pcap/pcapng files, as tcpdump writes them with `-w`, `-C`, `-G`,
//! `-W` and `-c`: the writer behind `netspectra capture` and the probe's forensic ring buffer
//! (the last N minutes or N GB of packets, see [`RotateConfig::max_total_bytes`] and
//! [`RotateConfig::max_age`]).
//!
//! These are live files, not complete results: each is written under its own name from its first
//! packet on and is a valid capture up to the last packet written (tcpdump's behaviour), so a
//! reader can follow it while it grows and a crash loses at most the write buffer. They are not
//! written through [`crate::outputs::AtomicFile`], which is for outputs that exist only whole.
//!
//! Rotation happens between two packets, so nothing is lost; the writer is fed whole batches
//! ([`RotatingWriter::write_batch`]) from a capture thread or from pipeline workers.
//!
//! Why in the sinks crate: it is an output like the record writers, and it needs only the
//! packet types and the pcap writer (`netspectra_packet`, `netspectra_pcap`), both below the
//! sinks, so dependencies keep pointing one way and both `capture` (through
//! `netspectra_pipeline::record`) and the probe's pipeline can use it.

mod names;
mod retention;

pub use names::strftime_utc;

use names::Naming;
use netspectra_packet::{Batch, InterfaceInfo, LinkType, Packet};
use netspectra_pcap::{CaptureWriter, OutputFormat, WriteError};
use retention::Retention;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How a [`RotatingWriter`] names, rotates, limits and expires its files.
#[derive(Clone, Debug)]
pub struct RotateConfig {
    /// The output file; with `every`, a strftime pattern (UTC; %Y %m %d %H %M %S %s %j %%).
    pub base: PathBuf,
    /// File format.
    pub format: OutputFormat,
    /// Start a new file when a packet would take the current one past this many bytes
    /// (tcpdump `-C`); files are then numbered: FILE, FILE1, FILE2... (FILE0... with a ring).
    pub size_limit: Option<u64>,
    /// Start a new file this often (tcpdump `-G`); the name is expanded again each time.
    pub every: Option<Duration>,
    /// With `size_limit`: a ring of this many numbered names, the oldest overwritten. Without
    /// it but with `every`: stop after this many files (tcpdump `-W`).
    pub max_files: Option<u32>,
    /// Stop after writing this many packets (tcpdump `-c`).
    pub max_packets: Option<u64>,
    /// Retention: delete the oldest finished files while all files of this writer take more
    /// than this many bytes (the file being written is never deleted).
    pub max_total_bytes: Option<u64>,
    /// Retention: delete finished files whose last packet is older than this.
    pub max_age: Option<Duration>,
}

impl RotateConfig {
    /// One file at `base`, never rotated, limited or expired.
    pub fn new(base: impl Into<PathBuf>, format: OutputFormat) -> RotateConfig {
        RotateConfig {
            base: base.into(),
            format,
            size_limit: None,
            every: None,
            max_files: None,
            max_packets: None,
            max_total_bytes: None,
            max_age: None,
        }
    }
}

/// Whether the writer wants more packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep feeding.
    Go,
    /// A limit was reached (`max_packets`, or `max_files` with `every` alone): stop the capture.
    Done,
}

/// Errors of a rotating writer; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaptureFileError {
    /// The configuration cannot work.
    #[error("{0}")]
    Config(&'static str),
    /// The folder of a new file could not be made.
    #[error("creating folder {}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A new file could not be created.
    #[error("creating {}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A new file's header could not be written.
    #[error("writing header of {}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A packet could not be written.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: WriteError,
    },
    /// A file could not be flushed when closed.
    #[error("flushing {}", path.display())]
    Flush {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An expired file could not be deleted.
    #[error("removing {} (capture file retention)", path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A batch came after the writer was closed.
    #[error("no open output file")]
    Closed,
}

/// Names, opens, rotates and expires capture files like tcpdump's `-C/-G/-W/-c`.
pub struct RotatingWriter {
    naming: Naming,
    format: OutputFormat,
    ifaces: Vec<InterfaceInfo>,
    size_limit: Option<u64>,
    every: Option<Duration>,
    max_files: Option<u32>,
    max_packets: Option<u64>,
    writer: Option<CaptureWriter<File>>,
    cur_name: PathBuf,
    /// Index used in the next name (tcpdump's `Cflag_count`).
    cnt: u32,
    /// Bytes in the current file (our own count, headers included).
    size: u64,
    packets_in_file: u64,
    opened: Instant,
    /// Files opened so far.
    files: u64,
    first_names: Vec<PathBuf>,
    packets: u64,
    bytes: u64,
    retention: Retention,
    /// Reused buffer for frames whose stripped VLAN tag is put back.
    scratch: Vec<u8>,
}

/// File names remembered for the summary.
const FIRST_NAMES: usize = 4;

impl RotatingWriter {
    /// Checks `cfg` and opens the first file. `ifaces` describes the interfaces packets come
    /// from (a pcap file takes its link type from the first).
    pub fn new(
        cfg: RotateConfig,
        ifaces: Vec<InterfaceInfo>,
    ) -> Result<RotatingWriter, CaptureFileError> {
        if cfg.max_files == Some(0) {
            return Err(CaptureFileError::Config("max_files must be at least 1"));
        }
        if cfg.every == Some(Duration::ZERO) {
            return Err(CaptureFileError::Config(
                "the rotation period must not be 0",
            ));
        }
        if cfg.size_limit == Some(0) || cfg.max_packets == Some(0) {
            return Err(CaptureFileError::Config(
                "size_limit and max_packets must be at least 1",
            ));
        }
        if cfg.max_total_bytes == Some(0) || cfg.max_age == Some(Duration::ZERO) {
            return Err(CaptureFileError::Config(
                "max_total_bytes and max_age must not be 0",
            ));
        }
        let mut w = RotatingWriter {
            naming: Naming {
                base: cfg.base.to_string_lossy().into_owned(),
                timed: cfg.every.is_some(),
                numbered: cfg.size_limit.is_some(),
                ring: cfg.max_files,
            },
            format: cfg.format,
            ifaces,
            size_limit: cfg.size_limit,
            every: cfg.every,
            max_files: cfg.max_files,
            max_packets: cfg.max_packets,
            writer: None,
            cur_name: PathBuf::new(),
            cnt: 0,
            size: 0,
            packets_in_file: 0,
            opened: Instant::now(),
            files: 0,
            first_names: Vec::new(),
            packets: 0,
            bytes: 0,
            retention: Retention::new(cfg.max_total_bytes, cfg.max_age),
            scratch: Vec::with_capacity(1 << 16),
        };
        w.open_next()?;
        Ok(w)
    }

    /// The file being written (the last one after [`RotatingWriter::close`]).
    pub fn current_path(&self) -> &Path {
        &self.cur_name
    }

    /// The first few files opened, in order.
    pub fn first_paths(&self) -> &[PathBuf] {
        &self.first_names
    }

    /// Files opened so far.
    pub fn files_opened(&self) -> u64 {
        self.files
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Captured bytes of the packets written so far (record headers not counted).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Finished files deleted by retention so far, and their bytes.
    pub fn removed(&self) -> (u64, u64) {
        (self.retention.removed_files, self.retention.removed_bytes)
    }

    fn open_next(&mut self) -> Result<(), CaptureFileError> {
        self.close_current(false)?;
        let name = self.naming.name(self.cnt, SystemTime::now());
        // Like the other commands, make the output folder (tcpdump's strftime names may name
        // a new one each -G period).
        if let Some(dir) = name.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| CaptureFileError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        self.retention.reopened(&name);
        let f = File::create(&name).map_err(|source| CaptureFileError::Create {
            path: name.clone(),
            source,
        })?;
        let w = CaptureWriter::new(f, self.format, &self.ifaces).map_err(|source| {
            CaptureFileError::Header {
                path: name.clone(),
                source,
            }
        })?;
        self.size = match self.format {
            OutputFormat::Pcap { .. } => 24,
            OutputFormat::Pcapng => 40,
        };
        self.writer = Some(w);
        if self.first_names.len() < FIRST_NAMES {
            self.first_names.push(name.clone());
        }
        self.cur_name = name;
        self.packets_in_file = 0;
        self.opened = Instant::now();
        self.files += 1;
        Ok(())
    }

    /// Flushes and closes the current file; `fsync` only for the last one (an fsync per
    /// rotation would stall the writer and, through it, the capture rings).
    fn close_current(&mut self, fsync: bool) -> Result<(), CaptureFileError> {
        if let Some(w) = self.writer.take() {
            let f = w.finish().map_err(|source| CaptureFileError::Flush {
                path: self.cur_name.clone(),
                source,
            })?;
            if fsync {
                f.sync_data().ok();
            }
            if self.retention.active() {
                let bytes = f.metadata().map_or(self.size, |m| m.len());
                self.retention
                    .finished(self.cur_name.clone(), bytes, Instant::now());
            }
        }
        Ok(())
    }

    /// Flushes and closes the file being written, with an `fsync` when asked (the end of a
    /// capture). Batches written afterwards fail with [`CaptureFileError::Closed`].
    pub fn close(&mut self, fsync: bool) -> Result<(), CaptureFileError> {
        self.close_current(fsync)
    }

    /// Rotates on time when due and applies retention; call it when no batch came for a while
    /// ([`RotatingWriter::write_batch`] does both for every batch, empty ones included).
    pub fn tick(&mut self) -> Result<Flow, CaptureFileError> {
        let flow = self.rotate_on_time()?;
        self.apply_retention()?;
        Ok(flow)
    }

    /// Opens the next file when the `-G` period is over (or says the capture is done when
    /// that was the last file).
    fn rotate_on_time(&mut self) -> Result<Flow, CaptureFileError> {
        if let Some(every) = self.every {
            if self.opened.elapsed() >= every {
                if self.size_limit.is_none() {
                    if let Some(n) = self.max_files {
                        if self.files >= n as u64 {
                            return Ok(Flow::Done);
                        }
                    }
                } else {
                    self.cnt = 0;
                }
                self.open_next()?;
            }
        }
        Ok(Flow::Go)
    }

    /// Deletes what the retention budgets no longer allow (nothing without budgets).
    fn apply_retention(&mut self) -> Result<(), CaptureFileError> {
        if !self.retention.active() {
            return Ok(());
        }
        self.retention.enforce(self.size, Instant::now())
    }

    /// Writes every packet of a batch (up to `max_packets`), rotating between packets.
    pub fn write_batch(&mut self, b: &Batch<'_>) -> Result<Flow, CaptureFileError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = self.write_batch_with(b, &mut scratch);
        self.scratch = scratch;
        let flow = r?;
        self.apply_retention()?;
        Ok(flow)
    }

    fn write_batch_with(
        &mut self,
        b: &Batch<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<Flow, CaptureFileError> {
        if self.rotate_on_time()? == Flow::Done {
            return Ok(Flow::Done);
        }
        for mut p in b.iter() {
            if self.max_packets.is_some_and(|l| self.packets >= l) {
                return Ok(Flow::Done);
            }
            // The kernel moved the 802.1Q tag into the ring's metadata; files carry it in the
            // frame (as libpcap writes them), so put it back after the MAC addresses.
            let tagged;
            if let (Some(tci), LinkType::ETHERNET, true) = (p.vlan_tci, p.link, p.data.len() >= 12)
            {
                scratch.clear();
                scratch.extend_from_slice(&p.data[..12]);
                scratch.extend_from_slice(&[0x81, 0x00]);
                scratch.extend_from_slice(&tci.to_be_bytes());
                scratch.extend_from_slice(&p.data[12..]);
                tagged = Packet {
                    data: scratch,
                    // orig_len already counts the stripped tag (the source's rule).
                    vlan_tci: None,
                    ..p
                };
                p = tagged;
            }
            let rec = match self.format {
                OutputFormat::Pcap { .. } => 16 + p.data.len() as u64,
                OutputFormat::Pcapng => 32 + p.data.len().next_multiple_of(4) as u64,
            };
            if let Some(limit) = self.size_limit {
                if self.packets_in_file > 0 && self.size + rec > limit {
                    self.cnt += 1;
                    if self.max_files.is_some_and(|n| self.cnt >= n) {
                        self.cnt = 0;
                    }
                    self.open_next()?;
                }
            }
            let Some(w) = self.writer.as_mut() else {
                return Err(CaptureFileError::Closed);
            };
            w.write_packet(&p, &self.ifaces)
                .map_err(|source| CaptureFileError::Write {
                    path: self.cur_name.clone(),
                    source,
                })?;
            self.size += rec;
            self.packets_in_file += 1;
            self.packets += 1;
            self.bytes += p.data.len() as u64;
        }
        if self.max_packets.is_some_and(|l| self.packets >= l) {
            return Ok(Flow::Done);
        }
        Ok(Flow::Go)
    }
}

#[cfg(test)]
mod tests;
