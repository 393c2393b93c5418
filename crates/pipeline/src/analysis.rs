//! The analyses a pipeline can run, each split in two: a part per worker that sees every packet
//! (decoded once, by the worker) and shares nothing, and a collector on the merge thread that
//! turns the parts' messages into record batches.

use crate::metrics::WorkerSlot;
use netspectra_dns::{DnsAnalyzer, DnsConfig, DnsRecord, DnsStats};
use netspectra_flow::{
    config::{ViewSpec, DEFAULT_EXPIRE_EVERY},
    FlowWorker, Merger, Output, Summary as FlowSummary, TableConfig, WorkerMsg,
};
use netspectra_http::{HttpAnalyzer, HttpConfig, HttpRecord, Stats as HttpStats};
use netspectra_packet::{Every, Packet, PacketView, Timestamp};
use netspectra_sinks::stream::{Payload, Stream, StreamKind};
use netspectra_tls::{TlsAnalyzer, TlsConfig, TlsRecord, TlsStats};
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
    /// Replace TLS server names and DNS query names by keyed tokens (HMAC-SHA256 under a
    /// key derived from `key`), for sharing records without the names.
    pub hash_names: bool,
}

impl AnonymizeSetup {
    /// The key of name tokens: derived from the Crypto-PAn key, so that one key file gives
    /// stable tokens without using the same key bytes for two algorithms.
    pub fn name_key(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"netspectra name tokens v1\0");
        h.update(self.key);
        h.finalize().into()
    }
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
    /// TLS and QUIC handshake records.
    pub tls: Option<TlsConfig>,
    /// DNS transaction records.
    pub dns: Option<DnsConfig>,
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
        if self.http.is_some() || self.tls.is_some() || self.dns.is_some() {
            ticks.push(RECORD_TICK_NS);
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
            || self.tls.is_some()
            || self.dns.is_some()
    }

    /// The analyses' settings with the anonymization applied where they take it (name
    /// tokens for TLS and DNS).
    pub fn resolved(mut self) -> AnalysisSet {
        if let Some(a) = self.anonymize.as_ref().filter(|a| a.hash_names) {
            let k = a.name_key();
            self.tls = self.tls.map(|c| c.with_name_key(k));
            self.dns = self.dns.map(|c| c.with_name_key(k));
        }
        self
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Connections and transactions of the record analyses (HTTP, TLS, DNS) idle past their
/// timeouts are swept at this cadence.
pub const RECORD_TICK_NS: i64 = 1_000_000_000;

/// Records a record part ships at once.
const RECORD_BATCH: usize = 512;

/// What worker parts send to the merge thread.
pub enum Msg {
    /// A flow worker's message.
    Flow(WorkerMsg),
    /// HTTP records of one worker, in the order they were made.
    Http(Vec<HttpRecord>),
    /// An HTTP part finished: its counters.
    HttpDone(Box<HttpStats>),
    /// TLS records of one worker.
    Tls(Vec<TlsRecord>),
    /// A TLS part finished: its counters.
    TlsDone(Box<TlsStats>),
    /// DNS records of one worker.
    Dns(Vec<DnsRecord>),
    /// A DNS part finished: its counters.
    DnsDone(Box<DnsStats>),
}

/// What the owner of a running pipeline can ask of it (through [`crate::run::Control`]).
pub enum Command {
    /// Switch to these views at the next interval boundary.
    Views(Vec<ViewSpec>),
    /// Records made outside the workers (guard events, alerts): routed like any other.
    Records(Stream, Payload),
    /// Records made outside the workers that exist only as JSON lines (guard events): how many,
    /// and the lines.
    Lines(Stream, u64, Vec<u8>),
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

/// An analysis whose worker part turns packets into records of one stream (HTTP, TLS, DNS):
/// what [`RecordPart`] needs of it.
pub trait RecordAnalysis: Send + 'static {
    /// The record it makes.
    type Record: Send + 'static;
    /// Its counters, merged on the merge thread at the end.
    type Stats: Send + 'static;
    /// Which of [`RecordKind`] it is (metrics slot, message kind).
    const KIND: RecordKind;
    /// True when it wants the packet inside tunnels.
    fn inner(&self) -> bool;
    /// One decoded packet.
    fn on_view(&mut self, p: &Packet<'_>, v: &PacketView);
    /// Emits what has been idle past its timeout (packet time).
    fn expire(&mut self, at: Timestamp);
    /// End of input: emits everything still held.
    fn finish(&mut self);
    /// Moves the records made so far into `into`.
    fn take(&mut self, into: &mut Vec<Self::Record>);
    /// Its counters.
    fn stats(&self) -> Self::Stats;
    /// Connections or transactions tracked now.
    fn tracked(&self) -> usize;
    /// The message carrying a batch of its records.
    fn batch(v: Vec<Self::Record>) -> Msg;
    /// The message carrying its final counters.
    fn done(s: Self::Stats) -> Msg;
}

/// The record analyses, for metrics and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// HTTP/1.x.
    Http = 0,
    /// TLS and QUIC handshakes.
    Tls = 1,
    /// DNS transactions.
    Dns = 2,
}

impl RecordAnalysis for HttpAnalyzer {
    type Record = HttpRecord;
    type Stats = HttpStats;
    const KIND: RecordKind = RecordKind::Http;
    fn inner(&self) -> bool {
        self.decodes_tunnels()
    }
    #[inline]
    fn on_view(&mut self, p: &Packet<'_>, v: &PacketView) {
        HttpAnalyzer::on_view(self, p, v)
    }
    fn expire(&mut self, at: Timestamp) {
        HttpAnalyzer::expire(self, at)
    }
    fn finish(&mut self) {
        HttpAnalyzer::finish(self)
    }
    fn take(&mut self, into: &mut Vec<HttpRecord>) {
        self.take_records(into)
    }
    fn stats(&self) -> HttpStats {
        HttpAnalyzer::stats(self)
    }
    fn tracked(&self) -> usize {
        self.connections()
    }
    fn batch(v: Vec<HttpRecord>) -> Msg {
        Msg::Http(v)
    }
    fn done(s: HttpStats) -> Msg {
        Msg::HttpDone(Box::new(s))
    }
}

/// `RecordAnalysis` for an analyzer with the TLS/DNS analyzers' method names: `on_packet`,
/// `expire`, `finish`, `take_records`, `stats`; it looks inside tunnels.
macro_rules! record_analysis {
    ($an:ty, $rec:ty, $stats:ty, $kind:ident, $batch:ident, $done:ident, $tracked:expr) => {
        impl RecordAnalysis for $an {
            type Record = $rec;
            type Stats = $stats;
            const KIND: RecordKind = RecordKind::$kind;
            fn inner(&self) -> bool {
                true
            }
            #[inline]
            fn on_view(&mut self, p: &Packet<'_>, v: &PacketView) {
                self.on_packet(p, v)
            }
            fn expire(&mut self, at: Timestamp) {
                <$an>::expire(self, at)
            }
            fn finish(&mut self) {
                <$an>::finish(self)
            }
            fn take(&mut self, into: &mut Vec<$rec>) {
                self.take_records(into)
            }
            fn stats(&self) -> $stats {
                <$an>::stats(self)
            }
            fn tracked(&self) -> usize {
                let f: fn(&$an) -> usize = $tracked;
                f(self)
            }
            fn batch(v: Vec<$rec>) -> Msg {
                Msg::$batch(v)
            }
            fn done(s: $stats) -> Msg {
                Msg::$done(Box::new(s))
            }
        }
    };
}

record_analysis!(TlsAnalyzer, TlsRecord, TlsStats, Tls, Tls, TlsDone, |a| a
    .connections()
    + a.quic_connections());
record_analysis!(DnsAnalyzer, DnsRecord, DnsStats, Dns, Dns, DnsDone, |a| a
    .transactions()
    + a.tcp_connections());

/// Changes made to each record before it leaves the worker (anonymization the packet view
/// cannot carry: URI query strings, addresses inside DNS answers).
type Rewrite<R> = Box<dyn FnMut(&mut R) + Send>;

/// A worker's part of a record analysis: the analyzer and the batch it is filling.
pub struct RecordPart<A: RecordAnalysis> {
    an: A,
    pending: Vec<A::Record>,
    tx: SyncSender<Msg>,
    rewrite: Option<Rewrite<A::Record>>,
    /// When records are sent on regardless of the batch size (so a record waits at most the
    /// flows' default expiry step, not a whole tick).
    send: Every,
}

impl<A: RecordAnalysis> RecordPart<A> {
    fn new(an: A, tx: &SyncSender<Msg>, rewrite: Option<Rewrite<A::Record>>) -> Self {
        RecordPart {
            an,
            pending: Vec::with_capacity(RECORD_BATCH),
            tx: tx.clone(),
            rewrite,
            send: Every::new(DEFAULT_EXPIRE_EVERY),
        }
    }

    /// Takes the analyzer's new records and sends them on once a batch is full (or `force`);
    /// returns how many were new.
    fn ship(&mut self, force: bool) -> u64 {
        let before = self.pending.len();
        self.an.take(&mut self.pending);
        let new = self.pending.len() - before;
        if let Some(f) = &mut self.rewrite {
            self.pending[before..].iter_mut().for_each(&mut **f);
        }
        if self.pending.len() >= RECORD_BATCH || (force && !self.pending.is_empty()) {
            let v = std::mem::replace(&mut self.pending, Vec::with_capacity(RECORD_BATCH));
            // The merge thread only goes away after a failure it reports.
            let _ = self.tx.send(A::batch(v));
        }
        new as u64
    }

    #[inline]
    fn packet(&mut self, p: &Packet<'_>, d: &netspectra_packet::Decoded) {
        let v = d.view(self.an.inner());
        self.an.on_view(p, v);
        self.send.see(p.ts.as_nanos());
    }

    fn end_batch(&mut self, slot: Option<&WorkerSlot>) {
        let due = self.send.due();
        let n = self.ship(due);
        if let Some(s) = slot {
            s.publish_records(A::KIND as usize, self.an.tracked() as u64, n);
        }
    }

    fn tick(&mut self, at: Timestamp) {
        self.an.expire(at);
        self.ship(true);
        self.send.done_at(at.as_nanos());
    }

    fn finish(mut self) {
        self.an.finish();
        self.ship(true);
        let _ = self.tx.send(A::done(self.an.stats()));
    }
}

/// Cuts HTTP URIs at `?`.
fn strip_query(r: &mut HttpRecord) {
    if let Some(u) = &r.uri {
        if let Some((path, _)) = u.split_once('?') {
            r.uri = Some(path.into());
        }
    }
}

/// One worker's parts of every enabled analysis.
pub struct Parts {
    /// Flows, when enabled.
    pub flows: Option<FlowsPart>,
    /// HTTP, when enabled.
    pub http: Option<RecordPart<HttpAnalyzer>>,
    /// TLS and QUIC, when enabled.
    pub tls: Option<RecordPart<TlsAnalyzer>>,
    /// DNS, when enabled.
    pub dns: Option<RecordPart<DnsAnalyzer>>,
}

impl Parts {
    /// Worker `i`'s parts of `set` (as [`AnalysisSet::resolved`] gives it), sending to the
    /// merge thread over `tx`.
    pub fn new(i: usize, set: &AnalysisSet, tx: &SyncSender<Msg>) -> Parts {
        let anon = set.anonymize.as_ref();
        Parts {
            flows: set.flows.as_ref().map(|f| FlowsPart::new(i, f, tx.clone())),
            http: set.http.as_ref().map(|c| {
                let strip = anon.is_some_and(|a| a.strip_query);
                RecordPart::new(
                    HttpAnalyzer::new(c.clone()),
                    tx,
                    strip.then(|| Box::new(strip_query) as Rewrite<HttpRecord>),
                )
            }),
            tls: set
                .tls
                .as_ref()
                .map(|c| RecordPart::new(TlsAnalyzer::new(c.clone()), tx, None)),
            dns: set.dns.as_ref().map(|c| {
                // Addresses in answers and the client subnet go through the same mapping as
                // the packet's (the view's addresses are mapped before any analysis sees them).
                let rewrite = anon.map(|a| {
                    let mut m = netspectra_sanitize::Anonymizer::new(&a.key, a.policy.clone());
                    Box::new(move |r: &mut DnsRecord| {
                        r.anonymize_data_addresses(&mut |ip| crate::worker::map(&mut m, ip));
                    }) as Rewrite<DnsRecord>
                });
                RecordPart::new(DnsAnalyzer::new(c.clone()), tx, rewrite)
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
            h.packet(p, d);
        }
        if let Some(t) = &mut self.tls {
            t.packet(p, d);
        }
        if let Some(n) = &mut self.dns {
            n.packet(p, d);
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
            h.end_batch(slot);
        }
        if let Some(t) = &mut self.tls {
            t.end_batch(slot);
        }
        if let Some(n) = &mut self.dns {
            n.end_batch(slot);
        }
    }

    /// An interval boundary.
    pub fn tick(&mut self, at: Timestamp) {
        if let Some(f) = &mut self.flows {
            f.worker.on_tick(at);
        }
        if let Some(h) = &mut self.http {
            h.tick(at);
        }
        if let Some(t) = &mut self.tls {
            t.tick(at);
        }
        if let Some(n) = &mut self.dns {
            n.tick(at);
        }
    }

    /// End of input (or of a live capture: flows then end with `reason`): everything still
    /// held goes out.
    pub fn finish(self, reason: netspectra_flow::EndReason) {
        if let Some(f) = self.flows {
            f.worker.finish_with(reason);
        }
        if let Some(h) = self.http {
            h.finish();
        }
        if let Some(t) = self.tls {
            t.finish();
        }
        if let Some(n) = self.dns {
            n.finish();
        }
    }
}

/// The merge thread's side of every analysis.
pub struct Collectors {
    flows: Option<(Merger, usize)>,
    http: Option<HttpStats>,
    tls: Option<TlsStats>,
    dns: Option<DnsStats>,
}

/// What the analyses produced over a run, for summaries.
#[derive(Debug, Default)]
pub struct AnalysisReport {
    /// The flow summary.
    pub flows: Option<FlowSummary>,
    /// The HTTP counters.
    pub http: Option<HttpStats>,
    /// The TLS counters.
    pub tls: Option<TlsStats>,
    /// The DNS counters.
    pub dns: Option<DnsStats>,
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
            tls: set.tls.as_ref().map(|c| TlsStats::new(c.summary_keys)),
            dns: set.dns.as_ref().map(|c| DnsStats::new(c.summary_keys)),
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
            Msg::Tls(v) => emit(Stream::of(StreamKind::Tls), Payload::Tls(v)),
            Msg::Dns(v) => emit(Stream::of(StreamKind::Dns), Payload::Dns(v)),
            Msg::HttpDone(st) => {
                if let Some(t) = &mut self.http {
                    t.merge(&st);
                }
            }
            Msg::TlsDone(st) => {
                if let Some(t) = &mut self.tls {
                    t.merge(&st);
                }
            }
            Msg::DnsDone(st) => {
                if let Some(t) = &mut self.dns {
                    t.merge(&st);
                }
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
            tls: self.tls.clone(),
            dns: self.dns.clone(),
        }
    }
}
