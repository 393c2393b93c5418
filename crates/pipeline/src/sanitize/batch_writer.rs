//! Writing the kept frames of whole chunks on the pipelined loop's writer thread, with the raw
//! `writev` path for pcap → pcap.

use netspectra_packet::{InterfaceInfo, OwnedBatch};
use netspectra_pcap::{CaptureWriter, OutputFormat, WriteError};
use netspectra_sinks::Destination;
use std::io::{self, Write};

/// Writes the kept frames of whole chunks.
pub(super) enum BatchWriter {
    /// Frame by frame through the capture writer (pcapng input or output).
    Framed(CaptureWriter<Destination>),
    /// Classic pcap from classic pcap: each kept frame's output record header is written over
    /// the 16 bytes in front of it in the chunk buffer (they held the input record header), so
    /// runs of kept records are contiguous and go out with `writev` straight from the chunk,
    /// without copying them into a write buffer. Same bytes as [`CaptureWriter`] writes.
    Raw {
        w: Destination,
        nanos: bool,
        runs: Vec<(usize, usize)>,
        /// Frames whose time pcap cannot hold (clamped).
        clamped: u64,
    },
}

impl BatchWriter {
    /// Switches a pcap writer (its file header already written) to raw record writes.
    pub(super) fn raw(
        writer: CaptureWriter<Destination>,
        fmt: OutputFormat,
    ) -> io::Result<BatchWriter> {
        match writer {
            CaptureWriter::Pcap(p) => {
                let nanos = matches!(fmt, OutputFormat::Pcap { nanos: true });
                Ok(BatchWriter::Raw {
                    w: p.finish()?,
                    nanos,
                    runs: Vec::new(),
                    clamped: 0,
                })
            }
            w => Ok(BatchWriter::Framed(w)),
        }
    }

    /// Writes the frames of `b` whose `keep` is true, in order. The raw path rewrites the
    /// record headers in `b`'s buffer.
    pub(super) fn write_batch(
        &mut self,
        b: &mut OwnedBatch,
        keep: &[bool],
        ifaces: &[InterfaceInfo],
    ) -> Result<(), WriteError> {
        let (w, nanos, runs) = match self {
            BatchWriter::Framed(w) => {
                for (p, _) in b.as_batch().iter().zip(keep).filter(|(_, &k)| k) {
                    w.write_packet(&p, ifaces)?;
                }
                return Ok(());
            }
            BatchWriter::Raw {
                w,
                nanos,
                runs,
                clamped,
            } => {
                *clamped += b
                    .metas
                    .iter()
                    .zip(keep)
                    .filter(|(m, &k)| k && !netspectra_pcap::pcap_ts_fits(m.ts))
                    .count() as u64;
                (w, *nanos, runs)
            }
        };
        runs.clear();
        let data = &mut b.data;
        for (m, _) in b.metas.iter().zip(keep).filter(|(_, &k)| k) {
            let start = m.offset as usize;
            let end = start.saturating_add(m.caplen as usize);
            let len = if end <= data.len() { end - start } else { 0 };
            let hdr = netspectra_pcap::pcap_record_header(m.ts, m.orig_len, len, nanos);
            if start < 16 || end > data.len() {
                // Not laid out as a pcap record (never produced by the reader): write it apart.
                write_runs(w, data, runs)?;
                runs.clear();
                w.write_all(&hdr)?;
                w.write_all(data.get(start..end).unwrap_or(&[]))?;
                continue;
            }
            let at = start - 16;
            data[at..start].copy_from_slice(&hdr);
            match runs.last_mut() {
                Some(r) if r.1 == at => r.1 = start + len,
                _ => runs.push((at, start + len)),
            }
        }
        write_runs(w, data, runs)?;
        Ok(())
    }

    /// Frames written with a clamped time.
    pub(super) fn clamped(&self) -> u64 {
        match self {
            BatchWriter::Framed(w) => w.clamped_timestamps(),
            BatchWriter::Raw { clamped, .. } => *clamped,
        }
    }

    /// Flushes and hands the output back for completing.
    pub(super) fn finish(self) -> io::Result<Destination> {
        match self {
            BatchWriter::Framed(w) => {
                let mut w = w.finish()?;
                w.flush()?;
                Ok(w)
            }
            BatchWriter::Raw { mut w, .. } => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

/// Writes byte ranges of `data` in order with as few `writev` calls as the kernel allows.
fn write_runs(w: &mut Destination, data: &[u8], runs: &[(usize, usize)]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = runs
        .iter()
        .map(|&(a, b)| io::IoSlice::new(&data[a..b]))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match w.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
