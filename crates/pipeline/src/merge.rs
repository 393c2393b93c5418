//! The merge thread: collects what every worker's parts send, turns it into record batches
//! (numbered per stream) and hands each batch to every sink that takes its stream.

use crate::analysis::{AnalysisReport, Collectors, Command, Msg};
use crate::metrics::PipelineMetrics;
use netspectra_sinks::delivery::{DeliveryReport, SinkRunner};
use netspectra_sinks::sink::{Closed, DeliverError};
use netspectra_sinks::stream::{Batch, Payload, Stream, StreamKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the owner of a running pipeline sends its merge thread.
pub enum Ctl {
    /// A command (views, injected records).
    Command(Command),
    /// Replace every sink with these at the next interval boundary.
    Sinks(Vec<SinkRunner>),
}

type Closing = JoinHandle<(DeliveryReport, Result<Closed, DeliverError>)>;

/// Hands batches to sinks: one sequence counter per stream, each batch shared (not copied) by
/// every sink that takes its stream.
pub struct Router {
    runners: Vec<SinkRunner>,
    seqs: HashMap<Stream, u64>,
    /// Sinks replaced by a reload, still draining.
    retired: Vec<Closing>,
}

impl Router {
    /// A router over these sinks.
    pub fn new(runners: Vec<SinkRunner>) -> Router {
        Router {
            runners,
            seqs: HashMap::new(),
            retired: Vec::new(),
        }
    }

    /// Replaces every sink: the old ones drain what they hold and close (complete) on their
    /// own threads; batches from now on go to the new ones.
    pub fn swap(&mut self, runners: Vec<SinkRunner>, metrics: Option<&PipelineMetrics>) {
        if let Some(m) = metrics {
            let mut list = m.sinks.lock().unwrap_or_else(|p| p.into_inner());
            *list = runners
                .iter()
                .map(|r| (r.name().to_string(), r.stats_handle()))
                .collect();
        }
        for old in std::mem::replace(&mut self.runners, runners) {
            self.retired
                .push(std::thread::spawn(move || old.close(true)));
        }
    }

    /// Numbers a batch and hands it to every sink that takes its stream. Flow, HTTP, TLS and DNS
    /// batches without records go nowhere; a view snapshot always does (an empty window is still a
    /// window).
    pub fn route(&mut self, stream: Stream, payload: Payload) {
        let empty = match &payload {
            Payload::Flows(v) => v.is_empty(),
            Payload::Http(v) => v.is_empty(),
            Payload::Tls(v) => v.is_empty(),
            Payload::Dns(v) => v.is_empty(),
            _ => false,
        };
        if !empty {
            self.number_and_push(stream, |s, seq| Batch::new(s, seq, payload));
        }
    }

    /// Numbers a batch known only as JSON lines (`records` of them) and hands it to every sink
    /// that takes its stream.
    pub fn route_lines(&mut self, stream: Stream, records: u64, json: Vec<u8>) {
        if records > 0 {
            self.number_and_push(stream, |s, seq| Batch::encoded(s, seq, records, json));
        }
    }

    /// Gives the batch `make` builds the stream's next number and hands it to every sink that
    /// takes the stream (nothing is built or numbered when none does).
    fn number_and_push(&mut self, stream: Stream, make: impl FnOnce(Stream, u64) -> Batch) {
        if !self.runners.iter().any(|r| r.accepts(&stream)) {
            return;
        }
        let seq = self.seqs.entry(stream.clone()).or_insert(0);
        let b = Arc::new(make(stream, *seq));
        *seq += 1;
        for r in &self.runners {
            if r.accepts(&b.stream) {
                r.push(&b);
            }
        }
    }

    /// Closes every sink (complete or partial outputs) and returns what each delivered.
    pub fn close(self, complete: bool) -> Vec<(DeliveryReport, Result<Closed, DeliverError>)> {
        // Sinks drain in parallel: one slow destination does not delay the others' close.
        let handles: Vec<_> = self
            .runners
            .into_iter()
            .map(|r| std::thread::spawn(move || r.close(complete)))
            .collect();
        self.retired
            .into_iter()
            .chain(handles)
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    }
}

/// What the merge thread returns.
pub struct MergeOutcome {
    /// The analyses' summaries.
    pub analyses: AnalysisReport,
    /// Each sink's delivery report and what it left behind.
    pub sinks: Vec<(DeliveryReport, Result<Closed, DeliverError>)>,
}

/// How long the end of a run waits for the producers outside the workers (see
/// [`crate::run::Producer`]) to hand over their last records.
pub const PRODUCER_WAIT: Duration = Duration::from_secs(5);

/// Runs until every worker's sender is gone and every producer outside the workers is done (or
/// [`PRODUCER_WAIT`] passed), then closes the sinks (`complete` is read at that point: false
/// when the run stopped before its input ended).
pub fn merge_loop(
    rx: Receiver<Msg>,
    ctl: Receiver<Ctl>,
    mut collectors: Collectors,
    mut router: Router,
    complete: Arc<AtomicBool>,
    metrics: Option<Arc<PipelineMetrics>>,
    producers: Arc<()>,
) -> MergeOutcome {
    let mut pending_sinks: Option<Vec<SinkRunner>> = None;
    let emit = |router: &mut Router, stream: Stream, payload: Payload| {
        if stream.kind == StreamKind::View {
            if let Some(m) = &metrics {
                m.snapshots.fetch_add(1, Ordering::Relaxed);
            }
        }
        router.route(stream, payload);
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(msg) => collectors.handle(msg, &mut |s, p| emit(&mut router, s, p)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while let Ok(c) = ctl.try_recv() {
            match c {
                Ctl::Command(Command::Views(v)) => collectors.reconfigure_views(v),
                Ctl::Command(Command::Records(s, p)) => emit(&mut router, s, p),
                Ctl::Command(Command::Lines(s, n, json)) => router.route_lines(s, n, json),
                Ctl::Sinks(r) => pending_sinks = Some(r),
            }
        }
        // New sinks take over at the boundary where the views switch (at once without a
        // view change waiting), so every window goes whole to one set of sinks.
        if pending_sinks.is_some() && !collectors.reconfiguring() {
            let r = pending_sinks.take().expect("checked");
            router.swap(r, metrics.as_deref());
        }
    }
    // The producers outside the workers (the guard) see the same stop: their last records
    // arrive within moments.
    // Past the wait, what is queued is taken (a producer still sending cannot hold the end
    // back for more than twice the wait).
    let t0 = std::time::Instant::now();
    while t0.elapsed() < 2 * PRODUCER_WAIT {
        let waiting = Arc::strong_count(&producers) > 1 && t0.elapsed() < PRODUCER_WAIT;
        let next = if waiting {
            ctl.recv_timeout(Duration::from_millis(20)).ok()
        } else {
            ctl.try_recv().ok()
        };
        match next {
            Some(Ctl::Command(Command::Records(s, p))) => emit(&mut router, s, p),
            Some(Ctl::Command(Command::Lines(s, n, json))) => router.route_lines(s, n, json),
            Some(_) => {}
            None if waiting => {}
            None => break,
        }
    }
    if let Some(r) = pending_sinks {
        router.swap(r, metrics.as_deref());
    }
    let analyses = collectors.report();
    let sinks = router.close(complete.load(Ordering::Acquire));
    MergeOutcome { analyses, sinks }
}
