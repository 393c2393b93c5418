//! The merge thread: collects what every worker's parts send, turns it into record batches
//! (numbered per stream) and hands each batch to every sink that takes its stream.

use crate::analysis::{AnalysisReport, Collectors, Msg};
use crate::metrics::PipelineMetrics;
use netspectra_sinks::delivery::{DeliveryReport, SinkRunner};
use netspectra_sinks::sink::{Closed, DeliverError};
use netspectra_sinks::stream::{Batch, Payload, Stream, StreamKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// Hands batches to sinks: one sequence counter per stream, each batch shared (not copied) by
/// every sink that takes its stream.
pub struct Router {
    runners: Vec<SinkRunner>,
    seqs: HashMap<Stream, u64>,
}

impl Router {
    /// A router over these sinks.
    pub fn new(runners: Vec<SinkRunner>) -> Router {
        Router {
            runners,
            seqs: HashMap::new(),
        }
    }

    /// Numbers a batch and hands it to every sink that takes its stream. Flow and HTTP batches
    /// without records go nowhere; a view snapshot always does (an empty window is still a
    /// window).
    pub fn route(&mut self, stream: Stream, payload: Payload) {
        let empty = match &payload {
            Payload::Flows(v) => v.is_empty(),
            Payload::Http(v) => v.is_empty(),
            _ => false,
        };
        if empty || !self.runners.iter().any(|r| r.accepts(&stream)) {
            return;
        }
        let seq = self.seqs.entry(stream.clone()).or_insert(0);
        let b = Arc::new(Batch::new(stream, *seq, payload));
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
        handles
            .into_iter()
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

/// Runs until every worker's sender is gone, then closes the sinks (`complete` is read at that
/// point: false when the run stopped before its input ended).
pub fn merge_loop(
    rx: Receiver<Msg>,
    mut collectors: Collectors,
    mut router: Router,
    complete: Arc<AtomicBool>,
    metrics: Option<Arc<PipelineMetrics>>,
) -> MergeOutcome {
    for msg in rx {
        collectors.handle(msg, &mut |stream, payload| {
            if stream.kind == StreamKind::View {
                if let Some(m) = &metrics {
                    m.snapshots.fetch_add(1, Ordering::Relaxed);
                }
            }
            router.route(stream, payload);
        });
    }
    let analyses = collectors.report();
    let sinks = router.close(complete.load(Ordering::Acquire));
    MergeOutcome { analyses, sinks }
}
