//! Live counters of a pipeline for Prometheus: each worker publishes its own slot once per
//! batch (written only by that worker), scrapes sum the slots; sinks are read from their
//! runners' counters.

use netspectra_flow::{EndReason, FlowWorker};
use netspectra_metrics::{Exposition, Kind};
use netspectra_sinks::delivery::DeliveryStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One worker's counters.
#[derive(Default)]
pub struct WorkerSlot {
    /// Packets read (before a user-space filter).
    pub packets: AtomicU64,
    /// Bytes on the wire of the packets read.
    pub bytes: AtomicU64,
    /// Packets in a flow.
    pub flow_packets: AtomicU64,
    /// Packets without a flow.
    pub not_flowable: AtomicU64,
    /// Flow records started.
    pub flows_started: AtomicU64,
    /// Flow records ended, by reason.
    pub ended: [AtomicU64; 7],
    /// Flows in the table.
    pub live: AtomicU64,
    /// Decode problems: truncated, malformed, undecoded.
    pub truncated: AtomicU64,
    /// See `truncated`.
    pub malformed: AtomicU64,
    /// See `truncated`.
    pub undecoded: AtomicU64,
    /// Connections or transactions tracked by each record analysis (HTTP, TLS, DNS: indexed
    /// by [`crate::analysis::RecordKind`]).
    pub tracked: [AtomicU64; 3],
    /// Records made by each record analysis (same index).
    pub records: [AtomicU64; 3],
}

impl WorkerSlot {
    /// Publishes a flow worker's counters.
    pub fn publish_flows(&self, w: &FlowWorker) {
        let c = w.table().counters();
        let d = w.decode_counters();
        self.flow_packets.store(c.flow_packets, Ordering::Relaxed);
        self.not_flowable.store(c.not_flowable(), Ordering::Relaxed);
        self.flows_started.store(c.flows_started, Ordering::Relaxed);
        for (a, v) in self.ended.iter().zip(c.ended) {
            a.store(v, Ordering::Relaxed);
        }
        self.live.store(w.table().live() as u64, Ordering::Relaxed);
        self.truncated.store(d.truncated, Ordering::Relaxed);
        self.malformed.store(d.malformed, Ordering::Relaxed);
        self.undecoded.store(d.undecoded, Ordering::Relaxed);
    }

    /// Publishes a record analysis's counters: what it tracks now and the records it made
    /// since the last call.
    pub fn publish_records(&self, kind: usize, tracked: u64, new_records: u64) {
        self.tracked[kind].store(tracked, Ordering::Relaxed);
        self.records[kind].fetch_add(new_records, Ordering::Relaxed);
    }
}

/// The counters of a whole pipeline.
#[derive(Default)]
pub struct PipelineMetrics {
    /// One slot per worker.
    pub workers: Vec<WorkerSlot>,
    /// Snapshots made by the merge thread.
    pub snapshots: AtomicU64,
    /// Sinks: name and counters (filled when the run starts).
    pub sinks: Mutex<Vec<(String, Arc<DeliveryStats>)>>,
    /// Which analyses run (their metrics are only shown then).
    pub flows: bool,
    /// See `flows`.
    pub http: bool,
    /// See `flows`.
    pub tls: bool,
    /// See `flows`.
    pub dns: bool,
}

impl PipelineMetrics {
    /// Counters for `workers` workers running the analyses of `set`.
    pub fn new(workers: usize, set: &crate::AnalysisSet) -> PipelineMetrics {
        PipelineMetrics {
            workers: (0..workers).map(|_| WorkerSlot::default()).collect(),
            flows: set.flows.is_some(),
            http: set.http.is_some(),
            tls: set.tls.is_some(),
            dns: set.dns.is_some(),
            ..PipelineMetrics::default()
        }
    }

    fn sum(&self, f: fn(&WorkerSlot) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| f(w).load(Ordering::Relaxed))
            .sum()
    }

    /// Writes every counter (names as the `flows` and `http` commands have always used).
    pub fn render(&self, e: &mut Exposition) {
        if self.flows {
            e.counter(
                "netspectra_flows_packets_total",
                "Packets read (before a user-space filter).",
                self.sum(|w| &w.packets),
            );
            e.counter(
                "netspectra_flows_bytes_total",
                "Bytes on the wire of the packets read.",
                self.sum(|w| &w.bytes),
            );
            e.counter(
                "netspectra_flows_flow_packets_total",
                "Packets counted in a flow.",
                self.sum(|w| &w.flow_packets),
            );
            e.counter(
                "netspectra_flows_not_flowable_packets_total",
                "Packets without a flow (no IP layer, missing transport header, orphan fragment).",
                self.sum(|w| &w.not_flowable),
            );
            for (name, f) in [
                (
                    "truncated",
                    (|w| &w.truncated) as fn(&WorkerSlot) -> &AtomicU64,
                ),
                ("malformed", |w| &w.malformed),
                ("undecoded", |w| &w.undecoded),
            ] {
                e.sample(
                    "netspectra_flows_decode_problems_total",
                    Kind::Counter,
                    "Packets that did not decode completely, by reason.",
                    &[("reason", name)],
                    self.sum(f) as f64,
                );
            }
            e.counter(
                "netspectra_flows_started_total",
                "Flow records started.",
                self.sum(|w| &w.flows_started),
            );
            for (i, r) in EndReason::ALL.iter().enumerate() {
                let n: u64 = self
                    .workers
                    .iter()
                    .map(|w| w.ended[i].load(Ordering::Relaxed))
                    .sum();
                e.sample(
                    "netspectra_flows_ended_total",
                    Kind::Counter,
                    "Flow records ended, by reason.",
                    &[("reason", r.name())],
                    n as f64,
                );
            }
            e.gauge(
                "netspectra_flows_live",
                "Flows in the tables now.",
                self.sum(|w| &w.live) as f64,
            );
            e.counter(
                "netspectra_flows_snapshots_total",
                "View snapshots made.",
                self.snapshots.load(Ordering::Relaxed),
            );
        } else {
            e.counter(
                "netspectra_packets_total",
                "Packets read (before a user-space filter).",
                self.sum(|w| &w.packets),
            );
        }
        for (on, kind, tracked, help) in [
            (
                self.http,
                0,
                "http_connections",
                "HTTP connections tracked now.",
            ),
            (
                self.tls,
                1,
                "tls_connections",
                "TLS and QUIC connections tracked now.",
            ),
            (
                self.dns,
                2,
                "dns_pending",
                "DNS queries awaiting a response and DNS-over-TCP connections tracked now.",
            ),
        ] {
            if !on {
                continue;
            }
            let name = ["http", "tls", "dns"][kind];
            e.gauge(
                &format!("netspectra_{tracked}"),
                help,
                self.workers
                    .iter()
                    .map(|w| w.tracked[kind].load(Ordering::Relaxed))
                    .sum::<u64>() as f64,
            );
            e.counter(
                &format!("netspectra_{name}_records_total"),
                &format!("{} records made.", name.to_uppercase()),
                self.workers
                    .iter()
                    .map(|w| w.records[kind].load(Ordering::Relaxed))
                    .sum(),
            );
        }
        let sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        for (name, s) in sinks.iter() {
            let l = [("sink", name.as_str())];
            let v = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
            for (metric, help, kind, val) in [
                (
                    "netspectra_sink_records_in_total",
                    "Records handed to the sink.",
                    Kind::Counter,
                    v(&s.records_in),
                ),
                (
                    "netspectra_sink_delivered_records_total",
                    "Records the destination acknowledged.",
                    Kind::Counter,
                    v(&s.delivered),
                ),
                (
                    "netspectra_sink_spooled_records_total",
                    "Records that went through the on-disk spool.",
                    Kind::Counter,
                    v(&s.spooled),
                ),
                (
                    "netspectra_sink_dropped_records_total",
                    "Records dropped because memory and spool were full.",
                    Kind::Counter,
                    v(&s.dropped_full),
                ),
                (
                    "netspectra_sink_refused_records_total",
                    "Records the destination refused for good.",
                    Kind::Counter,
                    v(&s.dropped_refused),
                ),
                (
                    "netspectra_sink_errors_total",
                    "Failed delivery attempts.",
                    Kind::Counter,
                    v(&s.errors),
                ),
                (
                    "netspectra_sink_backlog_records",
                    "Records waiting in memory and spool.",
                    Kind::Gauge,
                    v(&s.backlog),
                ),
                (
                    "netspectra_sink_spool_bytes",
                    "Bytes waiting in the spool.",
                    Kind::Gauge,
                    v(&s.spool_bytes),
                ),
                (
                    "netspectra_sink_up",
                    "1 while the last delivery attempt succeeded.",
                    Kind::Gauge,
                    if s.healthy.load(Ordering::Relaxed) {
                        1.0
                    } else {
                        0.0
                    },
                ),
            ] {
                e.sample(metric, kind, help, &l, val);
            }
        }
    }
}
