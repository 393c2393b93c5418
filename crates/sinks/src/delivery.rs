//! Runs one sink on its own thread behind a bounded queue, with the same behaviour for every
//! destination: batches wait in memory (bounded), then in the sink's on-disk spool when one is
//! configured (bounded), and are delivered in order, retried with back-off while the
//! destination fails. When both are full the newest batch is dropped and counted, or, for a
//! sink whose policy is to block (files of a one-shot run, where waiting costs nothing), the
//! producer waits. A slow or failing sink never holds up another sink.
//!
//! Ordering: every batch in memory is older than every batch in the spool (once anything is
//! spooled, newer batches follow it there until it is drained), so delivery order is production
//! order, also across a restart that finds a non-empty spool (its batches come first).

use crate::sink::{Closed, DeliverError, Routes, Sink};
use crate::spool::Spool;
use crate::stream::{Batch, StreamKind};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What happens when the memory queue (and the spool, if any) is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// The producer waits: right for files of a one-shot run (nothing is lost, and nothing
    /// live waits on it).
    Block,
    /// The newest batch is dropped, counted and logged: never holds up a live capture.
    DropNewest,
}

/// Settings of one sink's delivery.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Batches held in memory.
    pub memory_batches: usize,
    /// Bytes (of rendered JSON) held in memory.
    pub memory_bytes: usize,
    /// Spool directory and its size bound, for sinks that take JSON batches.
    pub spool: Option<(PathBuf, u64)>,
    /// Policy when memory and spool are full.
    pub when_full: WhenFull,
    /// First retry delay after a failure (doubled up to `retry_max`).
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Give up on a batch after failing this long (a one-shot run reports the error rather
    /// than wait forever); `None`: retry until delivered or the run ends.
    pub give_up_after: Option<Duration>,
    /// When idle this long, the sink is flushed.
    pub idle_flush: Duration,
    /// At close, how long undelivered batches may still be retried before they are left in
    /// the spool (or counted as lost without one).
    pub drain_timeout: Duration,
    /// A refusal ends the sink (files: a write error means later records cannot be written
    /// either): it takes nothing more, and `on_failure` is raised (to stop the run).
    pub fail_fast: bool,
    /// Raised when a fail-fast sink fails.
    pub on_failure: Option<Arc<AtomicBool>>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            memory_batches: 256,
            memory_bytes: 64 << 20,
            spool: None,
            when_full: WhenFull::DropNewest,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            give_up_after: None,
            idle_flush: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(10),
            fail_fast: false,
            on_failure: None,
        }
    }
}

/// Live counters of one sink (read by metrics scrapes and summaries).
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Batches handed to the sink.
    pub batches_in: AtomicU64,
    /// Records handed to the sink.
    pub records_in: AtomicU64,
    /// Records delivered (acknowledged by the destination).
    pub delivered: AtomicU64,
    /// Batches delivered.
    pub delivered_batches: AtomicU64,
    /// Records delivered per stream kind (in [`StreamKind::ALL`] order).
    pub delivered_by_kind: [AtomicU64; StreamKind::ALL.len()],
    /// Records that went through the spool.
    pub spooled: AtomicU64,
    /// Records dropped because memory and spool were full.
    pub dropped_full: AtomicU64,
    /// Records dropped because the destination refused them for good (or never took them
    /// within `give_up_after`).
    pub dropped_refused: AtomicU64,
    /// Failed delivery attempts.
    pub errors: AtomicU64,
    /// Records waiting (memory and spool).
    pub backlog: AtomicU64,
    /// Bytes waiting in the spool.
    pub spool_bytes: AtomicU64,
    /// True while the last attempt succeeded (or nothing was attempted yet).
    pub healthy: AtomicBool,
    /// A fail-fast sink failed and takes nothing more.
    pub failed: AtomicBool,
}

/// A snapshot of [`DeliveryStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryReport {
    /// The sink.
    pub sink: String,
    /// Records handed to the sink.
    pub records_in: u64,
    /// Records delivered.
    pub delivered: u64,
    /// Records delivered per stream kind name.
    pub delivered_by_stream: std::collections::BTreeMap<&'static str, u64>,
    /// Records that went through the spool.
    pub spooled: u64,
    /// Records dropped because memory and spool were full.
    pub dropped_full: u64,
    /// Records refused by the destination for good (or given up on).
    pub dropped_refused: u64,
    /// Records still waiting (left in the spool for the next run when it has one).
    pub backlog: u64,
    /// Failed attempts.
    pub errors: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// The error that ended a fail-fast sink.
    pub failure: Option<String>,
}

struct State {
    mem: VecDeque<Arc<Batch>>,
    mem_bytes: usize,
    spool: Option<Spool>,
    closing: Option<bool>,
    last_error: Option<String>,
    failure: Option<String>,
    /// When a refusal was last logged (refusals are logged at most every 10 s).
    last_logged: Option<Instant>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the delivery thread (new work, closing).
    work: Condvar,
    /// Wakes producers waiting for room (Block policy).
    room: Condvar,
    stats: Arc<DeliveryStats>,
    cfg: DeliveryConfig,
    name: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn backlog(&self, st: &State) {
        let mem: u64 = st.mem.iter().map(|b| b.records()).sum();
        let sp = st.spool.as_ref().map_or(0, |s| s.records());
        self.stats.backlog.store(mem + sp, Ordering::Relaxed);
        self.stats.spool_bytes.store(
            st.spool.as_ref().map_or(0, |s| s.bytes()),
            Ordering::Relaxed,
        );
    }
}

/// One sink on its own thread, fed through [`SinkRunner::push`].
pub struct SinkRunner {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<Closed, DeliverError>>>,
    routes: Routes,
}

impl SinkRunner {
    /// Starts the delivery thread of `sink` for the streams of `routes` that it can take
    /// (opening its spool, which may hold batches of an earlier run: they are delivered first).
    pub fn start(
        sink: Box<dyn Sink>,
        routes: &Routes,
        cfg: DeliveryConfig,
    ) -> Result<SinkRunner, DeliverError> {
        let name = sink.name();
        let routes = routes.intersect(&sink.routes());
        let spool = match &cfg.spool {
            Some((dir, max)) if sink.takes_json() => Some(
                Spool::open(dir, *max).map_err(|e| DeliverError::fatal(&name, e.to_string()))?,
            ),
            _ => None,
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mem: VecDeque::new(),
                mem_bytes: 0,
                spool,
                closing: None,
                last_error: None,
                failure: None,
                last_logged: None,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            stats: Arc::new(DeliveryStats::default()),
            cfg,
            name,
        });
        shared.stats.healthy.store(true, Ordering::Relaxed);
        shared.backlog(&shared.lock());
        let sh = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("sink {}", shared.name))
            .spawn(move || deliver_loop(&sh, sink))
            .map_err(|e| DeliverError::fatal(&shared.name, format!("starting its thread: {e}")))?;
        Ok(SinkRunner {
            shared,
            thread: Some(thread),
            routes,
        })
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// True when the sink takes this stream.
    pub fn accepts(&self, s: &crate::stream::Stream) -> bool {
        self.routes.accepts(s)
    }

    /// The live counters.
    pub fn stats(&self) -> &DeliveryStats {
        &self.shared.stats
    }

    /// The live counters, shared (for metrics scrapes that outlive a borrow).
    pub fn stats_handle(&self) -> Arc<DeliveryStats> {
        Arc::clone(&self.shared.stats)
    }

    /// Hands a batch over. Returns at once unless memory and spool are full and the policy is
    /// [`WhenFull::Block`].
    pub fn push(&self, b: &Arc<Batch>) {
        let sh = &self.shared;
        let st = &sh.stats;
        st.batches_in.fetch_add(1, Ordering::Relaxed);
        st.records_in.fetch_add(b.records(), Ordering::Relaxed);
        if st.failed.load(Ordering::Relaxed) {
            st.dropped_refused.fetch_add(b.records(), Ordering::Relaxed);
            return;
        }
        let mut g = sh.lock();
        loop {
            let mem_full = g.mem.len() >= sh.cfg.memory_batches.max(1)
                || (g.mem_bytes >= sh.cfg.memory_bytes && !g.mem.is_empty());
            let spool_busy = g.spool.as_ref().is_some_and(|s| !s.is_empty());
            if !mem_full && !spool_busy {
                g.mem_bytes += b.approx_bytes();
                g.mem.push_back(Arc::clone(b));
                break;
            }
            if let Some(sp) = g.spool.as_mut() {
                match sp.push(b) {
                    Ok(true) => {
                        st.spooled.fetch_add(b.records(), Ordering::Relaxed);
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => g.last_error = Some(e.to_string()),
                }
            }
            match sh.cfg.when_full {
                WhenFull::DropNewest => {
                    st.dropped_full.fetch_add(b.records(), Ordering::Relaxed);
                    break;
                }
                WhenFull::Block => {
                    if g.closing.is_some() || g.failure.is_some() {
                        st.dropped_full.fetch_add(b.records(), Ordering::Relaxed);
                        break;
                    }
                    g = sh.room.wait(g).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
        sh.backlog(&g);
        drop(g);
        sh.work.notify_one();
    }

    /// Ends delivery: what waits is delivered (retried for at most the drain timeout, then
    /// left in the spool for the next run, or counted as lost without one), the sink is
    /// flushed and closed. `complete` is false when the run stopped before its input ended.
    pub fn close(mut self, complete: bool) -> (DeliveryReport, Result<Closed, DeliverError>) {
        {
            let mut g = self.shared.lock();
            g.closing = Some(complete);
        }
        self.shared.work.notify_all();
        self.shared.room.notify_all();
        let r = match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            None => Ok(Closed::default()),
        };
        (self.report(), r)
    }

    /// A snapshot of the counters.
    pub fn report(&self) -> DeliveryReport {
        let s = &self.shared.stats;
        let g = self.shared.lock();
        DeliveryReport {
            sink: self.shared.name.clone(),
            records_in: s.records_in.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            delivered_by_stream: StreamKind::ALL
                .iter()
                .zip(&s.delivered_by_kind)
                .map(|(k, n)| (k.name(), n.load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            spooled: s.spooled.load(Ordering::Relaxed),
            dropped_full: s.dropped_full.load(Ordering::Relaxed),
            dropped_refused: s.dropped_refused.load(Ordering::Relaxed),
            backlog: s.backlog.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            last_error: g.last_error.clone(),
            failure: g.failure.clone(),
        }
    }
}

impl Drop for SinkRunner {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.lock().closing = Some(false);
            self.shared.work.notify_all();
            self.shared.room.notify_all();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Where the batch being delivered came from.
enum From {
    Memory,
    Spool,
}

/// Most records handed to a sink in one group: far below ClickHouse's insert block
/// (1,048,576 rows), so that one group stays one atomic insert.
const GROUP_RECORDS: u64 = 262_144;

/// The batch at the front of memory and, up to the sink's group limit for its stream and
/// [`GROUP_RECORDS`] records, those right behind it of the same stream.
fn front_group(mem: &VecDeque<Arc<Batch>>, sink: &dyn Sink) -> Vec<Arc<Batch>> {
    let mut out: Vec<Arc<Batch>> = Vec::new();
    let mut records = 0;
    let limit = mem
        .front()
        .map_or(1, |f| sink.group_limit(&f.stream).max(1));
    for b in mem.iter() {
        if let Some(f) = out.first() {
            if out.len() >= limit || b.stream != f.stream || records + b.records() > GROUP_RECORDS {
                break;
            }
        }
        records += b.records();
        out.push(Arc::clone(b));
    }
    out
}

fn deliver_loop(sh: &Shared, mut sink: Box<dyn Sink>) -> Result<Closed, DeliverError> {
    let mut drain_deadline: Option<Instant> = None;
    loop {
        // Next batches, oldest first: memory (a backlog of one stream together, when the sink
        // takes groups), then the spool (one at a time).
        let (group, from, closing) = {
            let mut g = sh.lock();
            loop {
                if !g.mem.is_empty() {
                    break (front_group(&g.mem, &*sink), From::Memory, g.closing);
                }
                match g.spool.as_mut().map(|s| s.peek()) {
                    Some(Ok(Some(b))) => break (vec![Arc::new(b)], From::Spool, g.closing),
                    Some(Err(e)) => {
                        g.last_error = Some(e.to_string());
                    }
                    _ => {}
                }
                if g.closing.is_some() {
                    break (Vec::new(), From::Memory, g.closing);
                }
                let (ng, t) = sh
                    .work
                    .wait_timeout(g, sh.cfg.idle_flush)
                    .unwrap_or_else(|p| p.into_inner());
                g = ng;
                if t.timed_out() && g.mem.is_empty() {
                    drop(g);
                    if let Err(e) = sink.flush() {
                        note_error(sh, &e);
                    }
                    g = sh.lock();
                }
            }
        };
        if closing.is_some() && drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + sh.cfg.drain_timeout);
        }
        if group.is_empty() {
            break;
        }
        if sh.stats.failed.load(Ordering::Relaxed) {
            break;
        }
        let mut missing = group.clone();
        let outcome = deliver_with_retry(sh, &mut *sink, &mut missing, drain_deadline);
        if matches!(outcome, Outcome::OutOfTime) {
            break;
        }
        for b in &group {
            let refused =
                matches!(outcome, Outcome::Refused) && missing.iter().any(|m| Arc::ptr_eq(m, b));
            if refused {
                sh.stats
                    .dropped_refused
                    .fetch_add(b.records(), Ordering::Relaxed);
            } else {
                sh.stats.delivered.fetch_add(b.records(), Ordering::Relaxed);
                if let Some(i) = StreamKind::ALL.iter().position(|k| *k == b.stream.kind) {
                    sh.stats.delivered_by_kind[i].fetch_add(b.records(), Ordering::Relaxed);
                }
                sh.stats.delivered_batches.fetch_add(1, Ordering::Relaxed);
            }
            pop(sh, &from, b);
        }
        if matches!(outcome, Outcome::Refused) && sh.cfg.fail_fast {
            fail(sh);
        }
    }
    // Closing: flush, then keep what was not delivered for the next run (spool) or count it.
    let complete = sh.lock().closing.unwrap_or(false);
    if let Err(e) = sink.flush() {
        note_error(sh, &e);
    }
    {
        let mut g = sh.lock();
        let left: Vec<Arc<Batch>> = g.mem.drain(..).collect();
        g.mem_bytes = 0;
        // What memory still holds is older than everything in the spool: it goes in front,
        // so the next run delivers in production order.
        let kept = match g.spool.as_mut().map(|sp| sp.prepend(&left)) {
            Some(Ok(n)) => {
                let r: u64 = left[..n].iter().map(|b| b.records()).sum();
                sh.stats.spooled.fetch_add(r, Ordering::Relaxed);
                n
            }
            Some(Err(e)) => {
                g.last_error = Some(e.to_string());
                0
            }
            None => 0,
        };
        for b in &left[kept..] {
            sh.stats
                .dropped_full
                .fetch_add(b.records(), Ordering::Relaxed);
        }
        if let Some(sp) = g.spool.as_mut() {
            if let Err(e) = sp.sync() {
                g.last_error = Some(e.to_string());
            }
        }
        sh.backlog(&g);
    }
    sh.room.notify_all();
    sink.close(complete)
}

/// Ends a fail-fast sink: what waits is dropped (counted), producers are released, and the
/// run is asked to stop.
fn fail(sh: &Shared) {
    let mut g = sh.lock();
    g.failure = g.last_error.clone();
    sh.stats.failed.store(true, Ordering::Relaxed);
    let dropped: u64 = g.mem.drain(..).map(|b| b.records()).sum();
    g.mem_bytes = 0;
    sh.stats
        .dropped_refused
        .fetch_add(dropped, Ordering::Relaxed);
    sh.backlog(&g);
    drop(g);
    sh.room.notify_all();
    if let Some(f) = &sh.cfg.on_failure {
        f.store(true, Ordering::Relaxed);
    }
}

fn pop(sh: &Shared, from: &From, b: &Batch) {
    let mut g = sh.lock();
    match from {
        From::Memory => {
            if let Some(x) = g.mem.pop_front() {
                g.mem_bytes = g.mem_bytes.saturating_sub(x.approx_bytes());
            }
        }
        From::Spool => {
            if let Some(sp) = g.spool.as_mut() {
                if let Err(e) = sp.ack(b.records()) {
                    g.last_error = Some(e.to_string());
                }
            }
        }
    }
    sh.backlog(&g);
    drop(g);
    sh.room.notify_all();
}

enum Outcome {
    Delivered,
    Refused,
    OutOfTime,
}

fn note_error(sh: &Shared, e: &DeliverError) {
    sh.stats.errors.fetch_add(1, Ordering::Relaxed);
    sh.stats.healthy.store(false, Ordering::Relaxed);
    sh.lock().last_error = Some(e.to_string());
}

/// Delivers `missing` (one batch, or a group of one stream) until done, refused for good or out
/// of time; batches found already delivered after an ambiguous failure leave `missing`, so
/// that on refusal it holds what was not delivered.
fn deliver_with_retry(
    sh: &Shared,
    sink: &mut dyn Sink,
    missing: &mut Vec<Arc<Batch>>,
    mut deadline: Option<Instant>,
) -> Outcome {
    let first_failure = Instant::now();
    let mut delay = sh.cfg.retry_min;
    // After a failure whose outcome is unknown (the answer was lost), every later attempt
    // first asks the destination whether each batch arrived: it may have, and delivering it
    // again would count its records twice. The question itself can fail (still down): then
    // wait and ask again.
    let mut unsure = false;
    loop {
        if unsure {
            // Batches found there leave `missing`; after a failed question the rest stay.
            let mut failed = None;
            missing.retain(|b| {
                if failed.is_some() {
                    return true;
                }
                match sink.already_delivered(b) {
                    Ok(found) => !found,
                    Err(e) => {
                        failed = Some(e);
                        true
                    }
                }
            });
            if missing.is_empty() {
                sh.stats.healthy.store(true, Ordering::Relaxed);
                return Outcome::Delivered;
            }
            match failed {
                None => unsure = false,
                Some(e) => {
                    note_error(sh, &e);
                    if !wait_retry(sh, &mut deadline, &mut delay) {
                        return Outcome::OutOfTime;
                    }
                    continue;
                }
            }
        }
        let r = match missing.as_slice() {
            [b] => sink.deliver(b),
            group => sink.deliver_group(group),
        };
        match r {
            Ok(()) => {
                sh.stats.healthy.store(true, Ordering::Relaxed);
                return Outcome::Delivered;
            }
            Err(e) => {
                note_error(sh, &e);
                if !e.retryable {
                    if !sh.cfg.fail_fast {
                        // Logged at most every 10 s: a destination that refuses everything
                        // must not flood the log (the counters have the totals).
                        let mut g = sh.lock();
                        if g.last_logged
                            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
                        {
                            g.last_logged = Some(Instant::now());
                            eprintln!(
                                "netspectra: sink {}: {} records of {} refused: {e}",
                                sh.name,
                                missing.iter().map(|b| b.records()).sum::<u64>(),
                                missing[0].stream
                            );
                        }
                    }
                    return Outcome::Refused;
                }
                unsure |= e.ambiguous;
                if sh
                    .cfg
                    .give_up_after
                    .is_some_and(|g| first_failure.elapsed() >= g)
                {
                    return Outcome::Refused;
                }
            }
        }
        if !wait_retry(sh, &mut deadline, &mut delay) {
            return Outcome::OutOfTime;
        }
    }
}

/// Waits before the next attempt (doubling the delay up to the maximum); false when the
/// drain deadline of a closing sink has passed. Closing sets the deadline but does not
/// shorten the wait.
fn wait_retry(sh: &Shared, deadline: &mut Option<Instant>, delay: &mut Duration) -> bool {
    let g = sh.lock();
    if deadline.is_none() && g.closing.is_some() {
        *deadline = Some(Instant::now() + sh.cfg.drain_timeout);
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return false;
    }
    let wait = match *deadline {
        Some(d) => (*delay).min(d.saturating_duration_since(Instant::now())),
        None => *delay,
    };
    let (g, _) = sh
        .work
        .wait_timeout(g, wait)
        .unwrap_or_else(|p| p.into_inner());
    drop(g);
    *delay = (*delay * 2).min(sh.cfg.retry_max);
    true
}

#[cfg(test)]
mod tests;
