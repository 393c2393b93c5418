//! The single-threaded loop: read a chunk, sanitize it in place, write its kept frames.

use super::{close_error, scrub_interfaces, write_error, ProgressFn, RunOutcome, SanitizeError};
use netspectra_packet::{InterfaceInfo, OwnedBatch, PacketSource};
use netspectra_pcap::{CaptureReader, CaptureWriter};
use netspectra_sanitize::Sanitizer;
use netspectra_sinks::Destination;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `reader` through `san` into `writer` on the calling thread until the input ends, a
/// read or write error, or `stop`.
pub(super) fn run(
    mut reader: CaptureReader,
    mut writer: CaptureWriter<Destination>,
    mut ifaces: Vec<InterfaceInfo>,
    san: &mut Sanitizer,
    output: &Path,
    stop: &AtomicBool,
    progress: Option<ProgressFn<'_>>,
) -> RunOutcome {
    let mut spare: Option<OwnedBatch> = None;
    let mut keep = Vec::new();
    let mut error: Option<SanitizeError> = None;
    let mut interrupted = false;
    let mut write_failed = false;
    loop {
        let mut batch = match reader.next_owned(spare.take()) {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                error = Some(e.into());
                break;
            }
        };
        if reader.interfaces().len() != ifaces.len() {
            ifaces = scrub_interfaces(reader.interfaces());
        }
        // The batch buffer is ours: frames are rewritten where they lie, without a copy.
        san.process_batch(&mut batch.data, &batch.metas, &mut keep);
        let b = batch.as_batch();
        for (p, _) in b.iter().zip(&keep).filter(|(_, &k)| k) {
            if let Err(e) = writer.write_packet(&p, &ifaces) {
                error = Some(write_error(e, output, san.report().frames.packets_in));
                write_failed = true;
                break;
            }
        }
        spare = Some(batch);
        if let Some(show) = progress {
            show(reader.stats().input_offset, san.report().frames.packets_in);
        }
        if error.is_some() {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
    }
    interrupted |= reader.stopped_early();
    let clamped = writer.clamped_timestamps();
    let sink = match writer.finish().and_then(|mut w| w.flush().map(|()| w)) {
        Ok(w) if !write_failed => Some(w),
        Ok(_) => None,
        Err(e) => {
            error.get_or_insert(close_error(e, output));
            None
        }
    };
    RunOutcome {
        error,
        interrupted,
        warnings: reader.warnings().to_vec(),
        clamped,
        sink,
    }
}
