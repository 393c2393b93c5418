//! Sanitizing capture files (dedup, anonymize, mask) from reader to writer: the run machinery
//! behind `netspectra sanitize`, for one file ([`sanitize_file`], on the calling thread or
//! pipelined over three) or for a directory of files in parallel ([`sanitize_dir`]).
//!
//! Why in the pipeline crate: a run needs the capture reader and writer (`netspectra_pcap`),
//! the sanitizer itself (`netspectra_sanitize`, an analysis) and the rule for complete outputs
//! (`netspectra_sinks`: a temporary name renamed into place when complete, `NAME.partial` when
//! a run stops early). The pipeline crate is the one that already sits above all three, so
//! dependencies keep pointing one way (`packet ← pcap ← analyses ← sinks ← pipeline ← cli`) and
//! the sanitize crate stays a packet-rewriting library with no file handling of its own.
//!
//! Nothing here prints: reader warnings, clamped timestamps and errors come back in
//! [`FileOutcome`] for the front-end to show; progress is a callback.

mod batch_writer;
mod dir;
mod pipelined;
mod sequential;

pub use dir::{dir_output_name, input_files, sanitize_dir};

use batch_writer::BatchWriter;
use netspectra_packet::{InterfaceInfo, PacketSource, SourceError};
use netspectra_pcap::{
    CaptureReader, CaptureWriter, FileFormat, OutputFormat, ReadWarning, WriteError,
};
use netspectra_sanitize::{Report, SanitizeConfig, Sanitizer, KEY_LEN};
use netspectra_sinks::{Destination, SinkError};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Output capture format asked for (the input's when none is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatChoice {
    /// Classic pcap (nanosecond timestamps when the input had them).
    Pcap,
    /// pcapng.
    Pcapng,
}

/// What every file of a run is sanitized with.
#[derive(Clone, Copy)]
pub struct SanitizeJob<'a> {
    /// The stages and their settings.
    pub config: &'a SanitizeConfig,
    /// The anonymization key (ignored when the configuration does not anonymize).
    pub key: &'a [u8; KEY_LEN],
    /// Output format; `None` keeps the input's.
    pub format: Option<FormatChoice>,
    /// Raised to stop: reading stops, what was read is written and kept as `NAME.partial`.
    pub stop: &'a Arc<AtomicBool>,
}

/// Called after each chunk with the input offset reached and the frames read so far.
pub type ProgressFn<'a> = &'a dyn Fn(u64, u64);

/// Why a file's run failed or ended early. Each message names what failed the way the command
/// has always printed it; the cause is the error's source.
#[derive(Debug, thiserror::Error)]
pub enum SanitizeError {
    /// The input could not be opened or read (a corrupt record names its byte offset).
    #[error(transparent)]
    Read(#[from] SourceError),
    /// Standard output could not be taken over by the writer thread.
    #[error("cannot use standard output")]
    Stdout(#[source] io::Error),
    /// The output file could not be created.
    #[error("cannot create {}", path.display())]
    Create {
        /// The output.
        path: PathBuf,
        /// Why.
        #[source]
        source: SinkError,
    },
    /// The output's file header could not be written.
    #[error("writing output header")]
    Header(#[source] io::Error),
    /// A frame could not be written.
    #[error("writing {} (frame {frame})", path.display())]
    Write {
        /// The output.
        path: PathBuf,
        /// Frames read up to the failing write (the first is 1).
        frame: u64,
        /// Why.
        #[source]
        source: WriteError,
    },
    /// Flushing, renaming or keeping the output failed.
    #[error("closing {}", path.display())]
    Close {
        /// The output.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The input directory could not be listed.
    #[error("cannot list {}", path.display())]
    ListDir {
        /// The input directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The output directory could not be created.
    #[error("cannot create output directory {}", path.display())]
    OutputDir {
        /// The output directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What one file's run left behind.
#[derive(Debug)]
pub struct FileOutcome {
    /// The report (when the output could be opened).
    pub report: Option<Report>,
    /// The error that ended the run early, if any.
    pub error: Option<SanitizeError>,
    /// A stop request ended the run before its input did.
    pub interrupted: bool,
    /// Where the output is: its name when complete, `<name>.partial` when the run stopped
    /// early (the frames before the stop, a valid capture), nothing after a write error or for
    /// standard output.
    pub kept: Option<PathBuf>,
    /// The reader's warnings (skipped or odd records), in input order.
    pub warnings: Vec<ReadWarning>,
    /// Frames whose time the output format cannot hold, written with the nearest one.
    pub clamped: u64,
}

impl FileOutcome {
    /// A run that failed before anything was read or written.
    fn failed(e: SanitizeError) -> FileOutcome {
        FileOutcome {
            report: None,
            error: Some(e),
            interrupted: false,
            kept: None,
            warnings: Vec::new(),
            clamped: 0,
        }
    }
}

/// How one file's read–sanitize–write loop ended.
struct RunOutcome {
    /// The error that ended it early.
    error: Option<SanitizeError>,
    /// A stop request ended it.
    interrupted: bool,
    /// The reader's warnings.
    warnings: Vec<ReadWarning>,
    /// Frames written with a clamped time.
    clamped: u64,
    /// The output, flushed (`None` after a write error: dropping it removes its temporary).
    sink: Option<Destination>,
}

/// Chunk size of the pipelined loop: 5 MiB of buffers in all (see `pipelined::POOL`). Batch
/// boundaries do not change the output.
const PIPE_CHUNK: usize = 1 << 20;

/// Interface descriptions with everything identifying removed (names, descriptions, filters).
pub fn scrub_interfaces(ifaces: &[InterfaceInfo]) -> Vec<InterfaceInfo> {
    ifaces
        .iter()
        .map(|i| InterfaceInfo {
            link: i.link,
            snaplen: i.snaplen,
            ts_precision: i.ts_precision,
            name: None,
            description: None,
            filter: None,
        })
        .collect()
}

/// The output format for an input of format `input` when `choice` was asked for.
pub fn output_format(choice: Option<FormatChoice>, input: FileFormat) -> OutputFormat {
    match choice {
        Some(FormatChoice::Pcapng) => OutputFormat::Pcapng,
        Some(FormatChoice::Pcap) => OutputFormat::Pcap {
            nanos: input.is_nanos(),
        },
        None => match input {
            FileFormat::Pcap { nanos, .. } => OutputFormat::Pcap { nanos },
            FileFormat::Pcapng { .. } => OutputFormat::Pcapng,
        },
    }
}

/// Sanitizes one file (`-`: standard input) into `output` (`-`: standard output). The output
/// appears under its name only when the whole input was sanitized; see [`FileOutcome`].
/// `pipelined`: read, sanitize and write on three threads (same bytes out); otherwise
/// everything runs on the calling thread. `progress` is called on the calling thread.
pub fn sanitize_file(
    input: &Path,
    output: &Path,
    job: &SanitizeJob<'_>,
    progress: Option<ProgressFn<'_>>,
    pipelined: bool,
) -> FileOutcome {
    let mut reader = match CaptureReader::open(input) {
        Ok(r) => r,
        Err(e) => return FileOutcome::failed(e.into()),
    };
    reader.set_stop(Arc::clone(job.stop));
    let fmt = output_format(job.format, reader.format());
    let ifaces = scrub_interfaces(reader.interfaces());
    let sink = if output.as_os_str() == "-" && pipelined {
        // The writer thread needs an owned, unbuffered handle (not Stdout's line buffer).
        match io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => Destination::Writer(Box::new(File::from(fd))),
            Err(e) => return FileOutcome::failed(SanitizeError::Stdout(e)),
        }
    } else {
        // A file is written under a temporary name and renamed when complete.
        match Destination::open(output) {
            Ok(d) => d,
            Err(e) => {
                return FileOutcome::failed(SanitizeError::Create {
                    path: output.to_path_buf(),
                    source: e,
                })
            }
        }
    };
    let writer = match CaptureWriter::new(sink, fmt, &ifaces) {
        Ok(w) => w,
        Err(e) => return FileOutcome::failed(SanitizeError::Header(e)),
    };
    let mut san = Sanitizer::new(job.config, job.key);
    let run = if pipelined {
        let out = if matches!(reader.format(), FileFormat::Pcap { .. }) {
            BatchWriter::raw(writer, fmt)
        } else {
            Ok(BatchWriter::Framed(writer))
        };
        match out {
            Ok(out) => pipelined::run(
                reader.with_chunk_size(PIPE_CHUNK),
                out,
                ifaces,
                &mut san,
                output,
                job.stop,
                progress,
            ),
            Err(e) => RunOutcome {
                error: Some(SanitizeError::Header(e)),
                interrupted: false,
                warnings: reader.warnings().to_vec(),
                clamped: 0,
                sink: None,
            },
        }
    } else {
        sequential::run(reader, writer, ifaces, &mut san, output, job.stop, progress)
    };
    let RunOutcome {
        mut error,
        interrupted,
        warnings,
        clamped,
        sink,
    } = run;
    // The output is complete only when the whole input was read; otherwise what was written
    // (a valid capture up to the stop) is kept beside it, never under its name. After a write
    // error the sink is gone and its temporary file with it.
    let kept = match sink {
        None => None,
        Some(d) => {
            let r = if error.is_some() || interrupted {
                d.partial()
            } else {
                d.complete()
            };
            match r {
                Ok(p) => p,
                Err(e) => {
                    error.get_or_insert(SanitizeError::Close {
                        path: output.to_path_buf(),
                        source: e,
                    });
                    None
                }
            }
        }
    };
    FileOutcome {
        report: Some(san.report()),
        error,
        interrupted,
        kept,
        warnings,
        clamped,
    }
}

/// The error of a frame write that failed after `frame` frames were read.
fn write_error(source: WriteError, output: &Path, frame: u64) -> SanitizeError {
    SanitizeError::Write {
        path: output.to_path_buf(),
        frame,
        source,
    }
}

/// The error of flushing or closing the output.
fn close_error(source: io::Error, output: &Path) -> SanitizeError {
    SanitizeError::Close {
        path: output.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests;
