//! Recording a live capture to rotating files: every socket of a fanout group feeds one
//! [`RotatingWriter`] (the engine of `netspectra capture`).
//!
//! With one socket its thread writes ring blocks straight to the file (zero copy). With several,
//! each socket's thread copies its blocks into recycled buffers and sends them over one bounded
//! channel to a single writer thread (one channel operation per ring block, no lock per
//! packet). A full channel makes the socket threads wait, so the kernel ring absorbs bursts and
//! any loss shows up as kernel drops; nothing captured is ever discarded, except what arrives
//! after the writer said [`Flow::Done`] (its packet or file limit). Rotation happens between
//! two packets in the writer, so it loses nothing.

use netspectra_capture::{LiveSource, StopHandle};
use netspectra_packet::{Batch, OwnedBatch, PacketMeta, PacketSource, SourceError};
use netspectra_sinks::capture_files::{CaptureFileError, Flow, RotatingWriter};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// Why a recording ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A socket failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The files could not be written.
    #[error(transparent)]
    Files(#[from] CaptureFileError),
}

/// Ring blocks queued per socket for the writer before the socket threads wait.
const QUEUE_PER_SOCKET: usize = 8;
/// How long the writer waits for a block before it checks the time rotation.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// How often the calling thread runs `on_wait` while the capture runs.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Writes what `sources` capture to `writer` until they end (after `stop` was raised) or the
/// writer says [`Flow::Done`] (which raises `stop`), then closes the last file with an fsync
/// and hands the writer back for its counters. The calling thread runs `on_wait` about every
/// 50 ms meanwhile (periodic statistics).
pub fn record_live(
    sources: Vec<LiveSource>,
    writer: RotatingWriter,
    stop: &StopHandle,
    on_wait: &mut dyn FnMut(),
) -> Result<RotatingWriter, RecordError> {
    let queue = sources.len() * QUEUE_PER_SOCKET;
    std::thread::scope(|sc| {
        let handle = if sources.len() == 1 {
            let src = sources.into_iter().next().expect("one source");
            sc.spawn(move || write_one(src, writer, stop))
        } else {
            let (tx, rx) = sync_channel::<(usize, OwnedBatch)>(queue);
            let mut recycle_txs = Vec::new();
            for mut src in sources {
                let (rtx, rrx) = channel::<OwnedBatch>();
                recycle_txs.push(rtx);
                let tx = tx.clone();
                sc.spawn(move || -> Result<(), SourceError> {
                    let _ = src.pin_current_thread();
                    let idx = src.index();
                    let mut closed = false;
                    while src.next_batch(&mut |b| {
                        if b.is_empty() || closed {
                            return;
                        }
                        let mut ob = rrx.try_recv().unwrap_or_default();
                        copy_batch(b, &mut ob);
                        if tx.send((idx, ob)).is_err() {
                            closed = true; // writer is gone (error or limit reached)
                        }
                    })? {}
                    Ok(())
                });
            }
            drop(tx);
            sc.spawn(move || writer_loop(writer, rx, recycle_txs, stop))
        };
        while !handle.is_finished() {
            std::thread::sleep(WAIT_SLICE);
            on_wait();
        }
        handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// One socket: its thread writes each ring block straight from the ring.
fn write_one(
    mut src: LiveSource,
    mut writer: RotatingWriter,
    stop: &StopHandle,
) -> Result<RotatingWriter, RecordError> {
    let _ = src.pin_current_thread();
    let mut err = None;
    let mut done = false;
    loop {
        let more = src.next_batch(&mut |b| {
            if done || err.is_some() {
                return;
            }
            match writer.write_batch(b) {
                Ok(Flow::Go) => {}
                Ok(Flow::Done) => {
                    done = true;
                    stop.stop();
                }
                Err(e) => {
                    err = Some(e);
                    stop.stop();
                }
            }
        })?;
        if !more {
            break;
        }
    }
    if let Some(e) = err {
        return Err(e.into());
    }
    writer.close(true)?;
    Ok(writer)
}

/// The single writer of several sockets: writes batches in arrival order, recycles the
/// buffers, stops the capture once the writer is done (then discards the drained rest).
fn writer_loop(
    mut writer: RotatingWriter,
    rx: Receiver<(usize, OwnedBatch)>,
    recycle: Vec<Sender<OwnedBatch>>,
    stop: &StopHandle,
) -> Result<RotatingWriter, RecordError> {
    let mut done = false;
    loop {
        match rx.recv_timeout(IDLE_TICK) {
            Ok((idx, ob)) => {
                if !done {
                    match writer.write_batch(&ob.as_batch()) {
                        Ok(Flow::Go) => {}
                        Ok(Flow::Done) => {
                            done = true;
                            stop.stop();
                        }
                        Err(e) => {
                            stop.stop();
                            return Err(e.into());
                        }
                    }
                }
                if let Some(r) = recycle.get(idx) {
                    let _ = r.send(ob);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if !done && writer.tick()? == Flow::Done {
                    done = true;
                    stop.stop();
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    writer.close(true)?;
    Ok(writer)
}

/// Copies a lent batch into an owned one (packets only, compacted).
fn copy_batch(b: &Batch<'_>, out: &mut OwnedBatch) {
    out.clear();
    for m in b.metas() {
        let p = b.packet(m);
        let off = out.data.len() as u32;
        out.data.extend_from_slice(p.data);
        out.metas.push(PacketMeta {
            offset: off,
            caplen: p.data.len() as u32,
            ..*m
        });
    }
}
