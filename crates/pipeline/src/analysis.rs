//! The analyses a pipeline can run, each split in two: a part per worker that sees every packet
//! (decoded once, by the worker) and shares nothing, and a collector on the merge thread that
//! turns the parts' messages into record batches.

use crate::metrics::WorkerSlot;
use netspectra_flow::{
    config::ViewSpec, FlowWorker, Merger, Output, Summary as FlowSummary, TableConfig, WorkerMsg,
};
use netspectra_http::{HttpAnalyzer, HttpConfig, HttpRecord, Stats as HttpStats};
use netspectra_packet::{Packet, Timestamp};
use netspectra_sinks::stream::{Payload, Stream, StreamKind};
use std::sync::mpsc::SyncSender;

/// The flow analysis: table settings, views, and top-list length of the summary.
#[derive(Clone, Debug)]
pub struct FlowsSetup {
    /// Table settings (timeouts, sizes, tunnels).
    pub table: TableConfig,
    /// Views, each with its snapshot cadence.
    pub views: Vec<ViewSpec>,
    /// Rows in the summary's top lists.
    pub top: usize,
}

/// Anonymization of every record stream: addresses through Crypto-PAn (the key and policy
/// `sanitize` uses, so addresses map alike everywhere), and optionally URI query strings cut.
#[derive(Clone, Debug)]
pub struct AnonymizeSetup {
    /// The Crypto-PAn key.
    pub key: [u8; netspectra_sanitize::KEY_LEN],
    /// Which addresses stay (as `sanitize`'s policy).
    pub policy: netspectra_sanitize::AnonPolicy,
    /// Cut HTTP URIs at `?`.
    pub strip_query: bool,
}

/// The forensic ring buffer: the last packets as rotating pcapng files, written by each worker
/// from the batches it already holds (no second socket, no copy between threads).
#[derive(Clone, Debug)]
pub struct RingSetup {
    /// Folder of the ring's files (`ring-w<worker>-<time>.pcapng[N]`).
    pub dir: std::path::PathBuf,
    /// Size of one file.
    pub file_size: u64,
    /// Most bytes kept in all (shared out among the workers).
    pub max_total: Option<u64>,
    /// Oldest packets kept.
    pub max_age: Option<std::time::Duration>,
}

/// Which analyses run, with their settings.
#[derive(Clone, Debug, Default)]
pub struct AnalysisSet {
    /// Flow records, views and the flow summary.
    pub flows: Option<FlowsSetup>,
    /// HTTP records.
    pub http: Option<HttpConfig>,
    /// Anonymized records.
    pub anonymize: Option<AnonymizeSetup>,
    /// The forensic ring buffer of raw packets.
    pub ring: Option<RingSetup>,
}

impl AnalysisSet {
    /// The engine's tick: the greatest common divisor of the cadences the analyses ask for
    /// (view snapshots; HTTP's idle sweep every second).
    pub fn base_tick(&self) -> Option<i64> {
        let mut ticks: Vec<i64> = Vec::new();
        if let Some(f) = &self.flows {
            ticks.extend(Merger::base_tick(&f.views));
        }
        if self.http.is_some() {
            ticks.push(HTTP_TICK_NS);
        }
        ticks.into_iter().filter(|&t| t > 0).reduce(gcd)
    }

    /// True when some analysis wants the packet as seen on the wire.
    pub fn wants_outer(&self) -> bool {
        self.flows.as_ref().is_some_and(|f| !f.table.inner)
    }

    /// True when some analysis looks inside tunnels.
    pub fn wants_inner(&self) -> bool {
        self.flows.as_ref().is_some_and(|f| f.table.inner)
            || self.http.as_ref().is_some_and(|h| h.decode_tunnels)
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// HTTP connections idle past their timeout are swept at this cadence.
pub const HTTP_TICK_NS: i64 = 1_000_000_000;

/// Records an HTTP part ships at once.
const HTTP_BATCH: usize = 512;

/// What worker parts send to the merge thread.
pub enum Msg {
    /// A flow worker's message.
    Flow(WorkerMsg),
    /// HTTP records of one worker, in the order they were made.
    Http(Vec<HttpRecord>),
    /// An HTTP part finished: its counters.
    HttpDone(Box<HttpStats>),
}

/// What the owner of a running pipeline can ask of it (through [`crate::run::Control`]).
pub enum Command {
    /// Switch to these views at the next interval boundary.
    Views(Vec<ViewSpec>),
    /// Records made outside the workers (guard events, alerts): routed like any other.
    Records(Stream, Payload),
}

/// A worker's part of the flow analysis.
pub struct FlowsPart {
    worker: FlowWorker,
}

impl FlowsPart {
    fn new(i: usize, cfg: &FlowsSetup, tx: SyncSender<Msg>) -> FlowsPart {
        FlowsPart {
            worker: FlowWorker::new(
                i,
                cfg.table.clone(),
                Box::new(move |m| {
                    // The merge thread only goes away after a failure it reports.
                    let _ = tx.send(Msg::Flow(m));
                }),
            ),
        }
    }
}

/// A worker's part of the HTTP analysis.
pub struct HttpPart {
    an: HttpAnalyzer,
    pending: Vec<HttpRecord>,
    tx: SyncSender<Msg>,
    strip_query: bool,
}

impl HttpPart {
    /// Takes the analyzer's new records and sends them on once a batch is full (or `force`);
    /// returns how many were new.
    fn ship(&mut self, force: bool) -> u64 {
        let before = self.pending.len();
        self.an.take_records(&mut self.pending);
        let new = self.pending.len() - before;
        if self.strip_query {
            for r in &mut self.pending[before..] {
                if let Some(u) = &r.uri {
                    if let Some((path, _)) = u.split_once('?') {
                        r.uri = Some(path.into());
                    }
                }
            }
        }
        if self.pending.len() >= HTTP_BATCH || (force && !self.pending.is_empty()) {
            let v = std::mem::replace(&mut self.pending, Vec::with_capacity(HTTP_BATCH));
            let _ = self.tx.send(Msg::Http(v));
        }
        new as u64
    }
}

/// One worker's parts of every enabled analysis.
pub struct Parts {
    /// Flows, when enabled.
    pub flows: Option<FlowsPart>,
    /// HTTP, when enabled.
    pub http: Option<HttpPart>,
}

impl Parts {
    /// Worker `i`'s parts of `set`, sending to the merge thread over `tx`.
    pub fn new(i: usize, set: &AnalysisSet, tx: &SyncSender<Msg>) -> Parts {
        Parts {
            flows: set.flows.as_ref().map(|f| FlowsPart::new(i, f, tx.clone())),
            http: set.http.as_ref().map(|c| HttpPart {
                an: HttpAnalyzer::new(c.clone()),
                pending: Vec::with_capacity(HTTP_BATCH),
                tx: tx.clone(),
                strip_query: set.anonymize.as_ref().is_some_and(|a| a.strip_query),
            }),
        }
    }

    /// One packet, decoded once for every part.
    #[inline]
    pub fn packet(&mut self, p: &Packet<'_>, d: &netspectra_packet::Decoded) {
        if let Some(f) = &mut self.flows {
            let v = d.view(f.worker.inner());
            f.worker.on_view(p.ts, p.orig_len, v);
        }
        if let Some(h) = &mut self.http {
            let v = d.view(h.an.decodes_tunnels());
            h.an.on_view(p, v);
        }
    }

    /// End of a batch: output that has piled up goes out; counters are published.
    pub fn end_batch(&mut self, slot: Option<&WorkerSlot>) {
        if let Some(f) = &mut self.flows {
            f.worker.end_batch();
            if let Some(s) = slot {
                s.publish_flows(&f.worker);
            }
        }
        if let Some(h) = &mut self.http {
            let n = h.ship(false);
            if let Some(s) = slot {
                s.publish_http(&h.an, n);
            }
        }
    }

    /// An interval boundary.
    pub fn tick(&mut self, at: Timestamp) {
        if let Some(f) = &mut self.flows {
            f.worker.on_tick(at);
        }
        if let Some(h) = &mut self.http {
            h.an.expire(at);
            h.ship(true);
        }
    }

    /// End of input (or of a live capture: flows then end with `reason`): everything still
    /// held goes out.
    pub fn finish(self, reason: netspectra_flow::EndReason) {
        if let Some(f) = self.flows {
            f.worker.finish_with(reason);
        }
        if let Some(mut h) = self.http {
            h.an.finish();
            h.ship(true);
            let _ = h.tx.send(Msg::HttpDone(Box::new(h.an.stats())));
        }
    }
}

/// The merge thread's side of every analysis.
pub struct Collectors {
    flows: Option<(Merger, usize)>,
    http: Option<HttpStats>,
    /// HTTP parts not finished yet.
    http_open: usize,
}

/// What the analyses produced over a run, for summaries.
#[derive(Debug, Default)]
pub struct AnalysisReport {
    /// The flow summary.
    pub flows: Option<FlowSummary>,
    /// The HTTP counters.
    pub http: Option<HttpStats>,
}

impl Collectors {
    /// Collectors for `workers` workers of `set`.
    pub fn new(set: &AnalysisSet, workers: usize) -> Collectors {
        Collectors {
            flows: set
                .flows
                .as_ref()
                .map(|f| (Merger::new(workers, f.views.clone()), f.top)),
            http: set.http.as_ref().map(|c| HttpStats::new(c.summary_keys)),
            http_open: if set.http.is_some() { workers } else { 0 },
        }
    }

    /// Handles one message; record batches go to `emit`.
    pub fn handle(&mut self, msg: Msg, emit: &mut dyn FnMut(Stream, Payload)) {
        match msg {
            Msg::Flow(m) => {
                if let Some((merger, _)) = &mut self.flows {
                    merger.handle(m, &mut |o| match o {
                        Output::Ended(v) => emit(Stream::of(StreamKind::Flows), Payload::Flows(v)),
                        Output::Snapshot(s) => {
                            emit(Stream::view(&s.view), Payload::Snapshot(s));
                        }
                    });
                }
            }
            Msg::Http(v) => emit(Stream::of(StreamKind::Http), Payload::Http(v)),
            Msg::HttpDone(st) => {
                if let Some(t) = &mut self.http {
                    t.merge(&st);
                }
                self.http_open = self.http_open.saturating_sub(1);
            }
        }
    }

    /// Switches the flow views at the next interval boundary (no-op without flows).
    pub fn reconfigure_views(&mut self, views: Vec<ViewSpec>) {
        if let Some((m, _)) = &mut self.flows {
            m.reconfigure(views);
        }
    }

    /// True while a view switch waits for its boundary.
    pub fn reconfiguring(&self) -> bool {
        self.flows.as_ref().is_some_and(|(m, _)| m.reconfiguring())
    }

    /// The summaries (complete once every worker finished).
    pub fn report(&self) -> AnalysisReport {
        AnalysisReport {
            flows: self.flows.as_ref().map(|(m, top)| m.summary(*top)),
            http: self.http.clone(),
        }
    }
}
