//! Runs analyses over packet sources, on one thread or on shared-nothing workers.
//!
//! * Files, one worker: a reader thread reads chunks ahead (at most two) while the calling
//!   thread runs the analysis, so reading and analysing overlap on two cores.
//! * Files, N workers: the calling thread reads chunks and partitions each chunk's packet records by a
//!   symmetric hash of the address pair (so both directions of a flow, and all fragments of a
//!   datagram, reach the same worker). Workers get the chunk behind an `Arc` plus their own
//!   records: packet bytes are never copied and no lock is taken per packet.
//! * Live sources: one worker thread per source (each a socket of one kernel fanout group,
//!   which already partitions by flow hash).
//!
//! Time is cut into intervals by in-band ticks: `on_tick(t)` reaches an analysis after every
//! packet before `t` (in source order) and before any packet at or after it, on every worker, so
//! per-interval state can be swapped out at the same cut everywhere.

use netspectra_packet::{
    decode, Batch, DecodeOptions, OwnedBatch, PacketMeta, PacketSource, SourceError, SourceStats,
    Timestamp,
};
use netspectra_pcap::CaptureReader;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A consumer of packet batches. One instance per worker; instances never share mutable state.
pub trait Analysis: Send {
    /// Processes one batch of packets.
    fn on_batch(&mut self, batch: &Batch<'_>);

    /// Called at each interval boundary `at`: every packet before `at` has been delivered.
    fn on_tick(&mut self, _at: Timestamp) {}
}

/// How the engine runs.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// Number of worker threads (1 = run on the calling thread).
    pub workers: usize,
    /// Interval between ticks in nanoseconds (packet time for files, wall clock for live
    /// sources); `None` for no ticks.
    pub tick_ns: Option<i64>,
    /// Chunks queued per worker before the reader waits (bounds memory).
    pub queue_depth: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            tick_ns: None,
            queue_depth: 4,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome<A> {
    /// The analyses, one per worker, in worker order.
    pub analyses: Vec<A>,
    /// The error that stopped the source early, if any (everything before it was processed).
    pub error: Option<SourceError>,
    /// Source counters at the end.
    pub stats: SourceStats,
    /// True when the stop flag ended the run.
    pub stopped: bool,
}

/// The symmetric partition hash of a frame: its address pair (so fragments stay with their
/// flow), or 0 for frames without an IP layer.
#[inline]
pub fn partition_hash(data: &[u8], meta: &PacketMeta) -> u64 {
    // Plain Ethernet (up to two VLAN tags) + IPv4/IPv6: read the two addresses directly, a
    // fraction of a full decode. Everything else takes the decoder. Both paths hash the
    // outermost address pair the same way, so a flow never depends on which path it took.
    if meta.link == netspectra_packet::LinkType::ETHERNET {
        if let Some((a, b)) = ethernet_addresses(data) {
            return pair_hash(fold(a), fold(b));
        }
    }
    let v = decode(data, meta.link, meta.vlan_tci, &DecodeOptions::default());
    match v.ip {
        Some(ip) => pair_hash(fold(ip.src), fold(ip.dst)),
        None => 0,
    }
}

#[inline]
fn pair_hash(a: u64, b: u64) -> u64 {
    mix(a.wrapping_add(b) ^ a.wrapping_mul(b).rotate_left(31))
}

/// The outermost IP addresses of an Ethernet frame with a well-formed IPv4 or IPv6 header
/// right after the Ethernet header and at most two VLAN tags; `None` for anything else.
#[inline]
fn ethernet_addresses(d: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(d.get(at..at + 2)?.try_into().ok()?))
    };
    let mut off = 12;
    let mut et = be16(off)?;
    for _ in 0..2 {
        if et != 0x8100 && et != 0x88a8 {
            break;
        }
        off += 4;
        et = be16(off)?;
    }
    let ip = d.get(off + 2..)?;
    match et {
        0x0800 if ip.len() >= 20 && ip[0] >> 4 == 4 && ip[0] & 15 >= 5 => {
            let a: [u8; 4] = ip[12..16].try_into().ok()?;
            let b: [u8; 4] = ip[16..20].try_into().ok()?;
            Some((IpAddr::from(a), IpAddr::from(b)))
        }
        0x86dd if ip.len() >= 40 && ip[0] >> 4 == 6 => {
            let a: [u8; 16] = ip[8..24].try_into().ok()?;
            let b: [u8; 16] = ip[24..40].try_into().ok()?;
            Some((IpAddr::from(a), IpAddr::from(b)))
        }
        _ => None,
    }
}

#[inline]
fn fold(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(v) => mix(u32::from(v) as u64 ^ 0x0400_0000_0000),
        IpAddr::V6(v) => {
            let x = u128::from(v);
            mix(x as u64 ^ mix((x >> 64) as u64))
        }
    }
}

#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Most worker threads any command runs (`--threads` of `flows`, `http`, `capture`, ...): one
/// documented cap for every command, refused beyond it. Each worker owns its own tables (a flow
/// worker's first-fragment cache alone is 1.5 MiB at the defaults, its flow table grows to
/// `max_flows` entries) and up to `queue_depth` queued chunks, and beyond a few workers per
/// core threads only compete for the CPU; 64 covers the largest common servers. `flows
/// --threads 100000` grew to 20.9 GB before it panicked.
pub const MAX_THREADS: usize = 64;

/// Most consecutive empty intervals announced one by one when time jumps forward; beyond that
/// (corrupt or hostile timestamps years apart, a wall clock set forward) the empty intervals are
/// skipped and the next tick is the boundary just below the new time. Keeps a jump of any size
/// from costing more than this many ticks.
pub const MAX_CATCHUP_TICKS: u32 = 100_000;

/// Chunks the reader thread may hold ready for a single worker (`DEFAULT_CHUNK`, 1 MiB each).
const READ_AHEAD: usize = 2;

/// Tracks the next interval boundary.
struct Ticker {
    every: Option<i64>,
    next: Option<i64>,
    /// Ticks emitted in a row for the current packet.
    run: u32,
}

impl Ticker {
    fn new(every: Option<i64>) -> Self {
        Ticker {
            every: every.filter(|&e| e > 0),
            next: None,
            run: 0,
        }
    }

    /// Returns the boundary to emit before a packet at `ts`, if one is due (call repeatedly).
    /// Every boundary is emitted at most once and boundaries strictly increase, so the calls
    /// for one packet always end, even at the end of the time range (a timestamp that
    /// saturated at the largest value): there, no later boundary exists and ticks stop.
    #[inline]
    fn due(&mut self, ts: i64) -> Option<i64> {
        let every = self.every?;
        match self.next {
            None => {
                self.next = ts
                    .div_euclid(every)
                    .checked_add(1)
                    .and_then(|n| n.checked_mul(every));
                if self.next.is_none() {
                    self.every = None; // no boundary after this time can be represented
                }
                None
            }
            Some(n) if ts >= n => {
                self.run += 1;
                let at = if self.run > MAX_CATCHUP_TICKS {
                    ts.div_euclid(every).saturating_mul(every).max(n)
                } else {
                    n
                };
                match at.checked_add(every) {
                    Some(next) => self.next = Some(next),
                    None => self.every = None,
                }
                Some(at)
            }
            Some(_) => {
                self.run = 0;
                None
            }
        }
    }
}

/// Feeds one lent batch to an analysis, splitting it at tick boundaries.
fn feed_with_ticks<A: Analysis + ?Sized>(batch: &Batch<'_>, ticker: &mut Ticker, a: &mut A) {
    if ticker.every.is_none() {
        a.on_batch(batch);
        return;
    }
    let metas = batch.metas();
    let mut start = 0;
    for (i, m) in metas.iter().enumerate() {
        while let Some(t) = ticker.due(m.ts.as_nanos()) {
            if i > start {
                a.on_batch(&Batch::new(batch.buffer(), &metas[start..i]));
                start = i;
            }
            a.on_tick(Timestamp(t));
        }
    }
    if start < metas.len() {
        a.on_batch(&Batch::new(batch.buffer(), &metas[start..]));
    }
}

/// Runs one analysis over any source on the calling thread (ticks in packet time).
pub fn run_single<A: Analysis + ?Sized>(
    source: &mut dyn PacketSource,
    tick_ns: Option<i64>,
    stop: &AtomicBool,
    a: &mut A,
) -> (Option<SourceError>, bool) {
    let mut ticker = Ticker::new(tick_ns);
    loop {
        if stop.load(Ordering::Relaxed) {
            return (None, true);
        }
        match source.next_batch(&mut |b| feed_with_ticks(b, &mut ticker, a)) {
            Ok(true) => {}
            Ok(false) => return (None, false),
            Err(e) => return (Some(e), false),
        }
    }
}

enum Msg {
    Batch(Arc<OwnedBatch>, Vec<PacketMeta>),
    Tick(i64),
}

fn worker_loop<A: Analysis>(rx: Receiver<Msg>, mut a: A) -> A {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Batch(chunk, metas) => a.on_batch(&Batch::new(&chunk.data, &metas)),
            Msg::Tick(t) => a.on_tick(Timestamp(t)),
        }
    }
    a
}

/// Runs `cfg.workers` analyses over a capture file. `make(i)` builds worker `i`'s analysis;
/// `progress` is called after each chunk with the source counters.
pub fn run_file<A, F>(
    reader: &mut CaptureReader,
    cfg: &EngineConfig,
    stop: &AtomicBool,
    make: F,
    progress: &mut dyn FnMut(&SourceStats),
) -> RunOutcome<A>
where
    A: Analysis,
    F: Fn(usize) -> A + Sync,
{
    let n = cfg.workers.max(1);
    if n == 1 {
        // One worker: a reader thread reads ahead (copying file bytes and framing records is a
        // quarter of the work) while this thread runs the analysis; buffers travel back for reuse.
        let mut a = make(0);
        let mut ticker = Ticker::new(cfg.tick_ns);
        let (error, stopped, stats) = std::thread::scope(|s| {
            let (tx, rx) = sync_channel::<(OwnedBatch, SourceStats)>(READ_AHEAD);
            let (back_tx, back_rx) = std::sync::mpsc::channel::<OwnedBatch>();
            let reader = &mut *reader;
            let h = s.spawn(move || {
                let mut stopped = false;
                let mut error = None;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        stopped = true;
                        break;
                    }
                    match reader.next_owned(back_rx.try_recv().ok()) {
                        Ok(Some(b)) => {
                            if tx.send((b, reader.stats())).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
                (error, stopped || reader.stopped_early(), reader.stats())
            });
            for (b, st) in rx.iter() {
                feed_with_ticks(&b.as_batch(), &mut ticker, &mut a);
                progress(&st);
                let _ = back_tx.send(b);
            }
            h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        });
        return RunOutcome {
            analyses: vec![a],
            error,
            stats,
            stopped,
        };
    }

    std::thread::scope(|s| {
        let mut txs = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = sync_channel::<Msg>(cfg.queue_depth.max(1));
            txs.push(tx);
            let make = &make;
            handles.push(s.spawn(move || worker_loop(rx, make(i))));
        }
        let mut ticker = Ticker::new(cfg.tick_ns);
        let mut parts: Vec<Vec<PacketMeta>> = (0..n).map(|_| Vec::new()).collect();
        let mut error = None;
        let mut stopped = false;
        let flush = |chunk: &Arc<OwnedBatch>, parts: &mut Vec<Vec<PacketMeta>>| {
            for (w, p) in parts.iter_mut().enumerate() {
                if !p.is_empty() {
                    let metas = std::mem::replace(p, Vec::with_capacity(p.capacity()));
                    // A worker only disappears by panicking; its join reports that below.
                    let _ = txs[w].send(Msg::Batch(chunk.clone(), metas));
                }
            }
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                stopped = true;
                break;
            }
            let chunk = match reader.next_owned(None) {
                Ok(Some(b)) => Arc::new(b),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            for m in &chunk.metas {
                while let Some(t) = ticker.due(m.ts.as_nanos()) {
                    flush(&chunk, &mut parts);
                    for tx in &txs {
                        let _ = tx.send(Msg::Tick(t));
                    }
                }
                let start = m.offset as usize;
                let data = chunk
                    .data
                    .get(start..start + m.caplen as usize)
                    .unwrap_or(&[]);
                let w = (partition_hash(data, m) % n as u64) as usize;
                parts[w].push(*m);
            }
            flush(&chunk, &mut parts);
            progress(&reader.stats());
        }
        stopped |= reader.stopped_early();
        drop(txs);
        let analyses = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        RunOutcome {
            analyses,
            error,
            stats: reader.stats(),
            stopped,
        }
    })
}

/// Current wall-clock time as a [`Timestamp`].
pub fn wall_clock() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp::from_parts(d.as_secs() as i64, d.subsec_nanos())
}

/// Runs one analysis per live source, each on its own thread, with wall-clock ticks. Returns
/// when every source ended or `stop` was set (sources must return from `next_batch`
/// periodically, e.g. on poll timeout, for the flag to be seen).
pub fn run_live<S, A, F>(
    sources: Vec<S>,
    cfg: &EngineConfig,
    stop: &AtomicBool,
    make: F,
) -> RunOutcome<A>
where
    S: PacketSource + Send,
    A: Analysis,
    F: Fn(usize) -> A + Sync,
{
    let results: Vec<(A, Option<SourceError>, SourceStats)> = std::thread::scope(|s| {
        let handles: Vec<_> = sources
            .into_iter()
            .enumerate()
            .map(|(i, mut src)| {
                let make = &make;
                s.spawn(move || {
                    let mut a = make(i);
                    let every = cfg.tick_ns.filter(|&e| e > 0);
                    let mut next_tick =
                        every.map(|e| (wall_clock().as_nanos().div_euclid(e) + 1) * e);
                    let mut err = None;
                    while !stop.load(Ordering::Relaxed) {
                        match src.next_batch(&mut |b| a.on_batch(b)) {
                            Ok(true) => {}
                            Ok(false) => break,
                            Err(e) => {
                                err = Some(e);
                                break;
                            }
                        }
                        if let (Some(e), Some(mut n)) = (every, next_tick) {
                            let now = wall_clock().as_nanos();
                            let mut run = 0;
                            while now >= n {
                                run += 1;
                                if run > MAX_CATCHUP_TICKS {
                                    n = now.div_euclid(e) * e; // the clock jumped: skip the empty intervals
                                }
                                a.on_tick(Timestamp(n));
                                n = n.saturating_add(e);
                                if n == i64::MAX {
                                    break;
                                }
                            }
                            next_tick = Some(n);
                        }
                    }
                    (a, err, src.stats())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut stats = SourceStats::default();
    let mut error = None;
    let mut analyses = Vec::with_capacity(results.len());
    for (a, e, st) in results {
        stats.packets += st.packets;
        stats.bytes += st.bytes;
        stats.wire_bytes += st.wire_bytes;
        stats.snapped += st.snapped;
        stats.kernel_drops += st.kernel_drops;
        stats.user_drops += st.user_drops;
        stats.freezes += st.freezes;
        if error.is_none() {
            error = e;
        }
        analyses.push(a);
    }
    RunOutcome {
        analyses,
        error,
        stats,
        stopped: stop.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests;
