//! The pipelined loop: reader, sanitizer and writer on three threads handing whole chunks to
//! each other through bounded queues. The sanitizer (order-dependent) sees exactly the same
//! chunks in the same order as the sequential loop, so the output is byte-identical; only the
//! `read()` and `write()` copies move to other cores.

use super::batch_writer::BatchWriter;
use super::{close_error, scrub_interfaces, write_error, ProgressFn, RunOutcome, SanitizeError};
use netspectra_packet::{InterfaceInfo, OwnedBatch, PacketSource, SourceError};
use netspectra_pcap::CaptureReader;
use netspectra_sanitize::Sanitizer;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

/// One chunk travelling reader → sanitizer → writer (and back to the reader for reuse).
#[derive(Default)]
struct Work {
    batch: OwnedBatch,
    /// Per frame: written (true) or removed as a duplicate.
    keep: Vec<bool>,
    /// The scrubbed interface list, when it changed with this chunk (pcapng).
    ifaces: Option<Vec<InterfaceInfo>>,
    /// Input offset after this chunk (progress).
    offset: u64,
    /// Frames read up to the end of this chunk (error messages).
    frames_through: u64,
}

/// Chunks in circulation: one being filled by the reader, one sanitized, one written and one
/// queued (slack for jitter). With the reader's own buffer that is 5 chunk buffers, allocated
/// once; the reader waits for a free one, so memory does not depend on timing.
const POOL: usize = 4;

/// Runs `reader` through `san` into `out`: the reader and writer on threads of their own, the
/// sanitizer on the calling thread (which also calls `progress`).
pub(super) fn run(
    reader: CaptureReader,
    out: BatchWriter,
    ifaces: Vec<InterfaceInfo>,
    san: &mut Sanitizer,
    output: &Path,
    stop: &AtomicBool,
    progress: Option<ProgressFn<'_>>,
) -> RunOutcome {
    let (to_san, from_reader) = sync_channel::<Result<Work, SourceError>>(POOL);
    let (to_writer, from_san) = sync_channel::<Work>(POOL);
    // Written chunks go back to the reader (queues never hold more than POOL chunks).
    let (free_tx, free_rx) = sync_channel::<Work>(POOL);
    for _ in 0..POOL {
        free_tx.send(Work::default()).expect("the queue has room");
    }
    std::thread::scope(|s| {
        let named = |n: &str| std::thread::Builder::new().name(n.into());
        let reader_thread = named("sanitize-read").spawn_scoped(s, move || {
            let mut reader = reader;
            let mut n_ifaces = reader.interfaces().len();
            // Ends when the writer has stopped and no free chunk is left.
            for mut w in free_rx.iter() {
                let spare = std::mem::take(&mut w.batch);
                match reader.next_owned(Some(spare)) {
                    Ok(Some(b)) => {
                        w.batch = b;
                        w.ifaces = None;
                        if reader.interfaces().len() != n_ifaces {
                            n_ifaces = reader.interfaces().len();
                            w.ifaces = Some(scrub_interfaces(reader.interfaces()));
                        }
                        w.offset = reader.stats().input_offset;
                        if to_san.send(Ok(w)).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = to_san.send(Err(e));
                        break;
                    }
                }
            }
            (reader.warnings().to_vec(), reader.stopped_early())
        });
        let reader_thread = reader_thread.expect("spawning the reader thread");
        let writer_thread = named("sanitize-write").spawn_scoped(s, move || {
            let mut out = out;
            let mut ifaces = ifaces;
            let mut error = None;
            for mut w in from_san {
                if let Some(i) = w.ifaces.take() {
                    ifaces = i;
                }
                if let Err(e) = out.write_batch(&mut w.batch, &w.keep, &ifaces) {
                    error = Some(write_error(e, output, w.frames_through));
                    break;
                }
                let _ = free_tx.send(w);
            }
            let clamped = out.clamped();
            let failed = error.is_some();
            let sink = match out.finish() {
                Ok(w) if !failed => Some(w),
                Ok(_) => None,
                Err(e) => {
                    error.get_or_insert(close_error(e, output));
                    None
                }
            };
            (error, clamped, sink)
        });
        let writer_thread = writer_thread.expect("spawning the writer thread");
        let mut error: Option<SanitizeError> = None;
        let mut interrupted = false;
        for msg in from_reader.iter() {
            let mut w = match msg {
                Ok(w) => w,
                Err(e) => {
                    error = Some(e.into());
                    break;
                }
            };
            san.process_batch(&mut w.batch.data, &w.batch.metas, &mut w.keep);
            w.frames_through = san.report().frames.packets_in;
            if let Some(show) = progress {
                show(w.offset, w.frames_through);
            }
            if to_writer.send(w).is_err() {
                break; // the writer failed; its error is reported below
            }
            if stop.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
        }
        // Closing the queues stops the reader and lets the writer drain and close the file.
        drop(from_reader);
        drop(to_writer);
        let (warnings, stopped_early) = reader_thread.join().expect("reader thread does not panic");
        interrupted |= stopped_early;
        let (werr, clamped, sink) = writer_thread.join().expect("writer thread does not panic");
        RunOutcome {
            error: error.or(werr),
            interrupted,
            warnings,
            clamped,
            sink,
        }
    })
}
