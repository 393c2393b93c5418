//! Running a pipeline over capture files or live sources, to the end of input or a stop
//! request, and what it reports.

use crate::analysis::{AnalysisReport, AnalysisSet, Collectors, Command, Msg, Parts};
use crate::merge::{merge_loop, Ctl, Router};
use crate::metrics::PipelineMetrics;
use crate::worker::PacketWorker;
use netspectra_capture::FileFilter;
use netspectra_engine::{run_file, run_live, EngineConfig};
use netspectra_flow::ViewSpec;
use netspectra_packet::{PacketSource, SourceError, SourceStats};
use netspectra_pcap::CaptureReader;
use netspectra_sinks::delivery::{DeliveryReport, SinkRunner};
use netspectra_sinks::sink::{Closed, DeliverError};
use netspectra_sinks::stream::{Payload, Stream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// Messages in flight from workers to the merge thread before workers wait: bounds memory
/// (each is a batch of records or deltas) and lets the merge thread fall behind briefly.
const QUEUE: usize = 256;

/// A pipeline ready to run: analyses, workers, a user-space filter, sinks.
pub struct Pipeline {
    set: AnalysisSet,
    workers: usize,
    filter: Option<String>,
    runners: Vec<SinkRunner>,
    metrics: Arc<PipelineMetrics>,
    ctl_tx: Sender<Ctl>,
    ctl_rx: Receiver<Ctl>,
    producers: Arc<()>,
}

/// Asks a running pipeline for changes and hands it records made elsewhere. Cloneable; it may
/// outlive the run (what it sends then goes nowhere).
#[derive(Clone)]
pub struct Control {
    tx: Sender<Ctl>,
}

impl Control {
    /// Switches the flow views at the next interval boundary (a reload).
    pub fn views(&self, views: Vec<ViewSpec>) {
        let _ = self.tx.send(Ctl::Command(Command::Views(views)));
    }

    /// Replaces every sink at the next interval boundary (where the views switch, when they
    /// do): old sinks drain and close, new ones take every batch from then on.
    pub fn sinks(&self, runners: Vec<SinkRunner>) {
        let _ = self.tx.send(Ctl::Sinks(runners));
    }

    /// Routes records made outside the workers (guard events, alerts) like any others.
    pub fn records(&self, stream: Stream, payload: Payload) {
        let _ = self
            .tx
            .send(Ctl::Command(Command::Records(stream, payload)));
    }

    /// Routes records made outside the workers that exist only as JSON lines (`records` of
    /// them, each ending with `\n`), like any others.
    pub fn lines(&self, stream: Stream, records: u64, json: Vec<u8>) {
        let _ = self
            .tx
            .send(Ctl::Command(Command::Lines(stream, records, json)));
    }
}

/// A source of records outside the workers (the guard's events) that the end of a run waits
/// for: until every producer is dropped (up to [`crate::merge::PRODUCER_WAIT`] after the
/// workers ended), the sinks stay open for its last records.
pub struct Producer {
    control: Control,
    _alive: Arc<()>,
}

impl Producer {
    /// Where its records go.
    pub fn control(&self) -> &Control {
        &self.control
    }
}

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    /// Source counters at the end (summed over files or sockets).
    pub stats: SourceStats,
    /// The error that ended reading early (everything before it was processed).
    pub error: Option<SourceError>,
    /// The path of the input the error is about.
    pub error_input: Option<PathBuf>,
    /// A stop request ended the run before its input did.
    pub stopped: bool,
    /// Reader warnings, each prefixed with its file.
    pub warnings: Vec<String>,
    /// What the analyses found.
    pub analyses: AnalysisReport,
    /// What each sink delivered and left behind (files complete, or partial).
    pub sinks: Vec<(DeliveryReport, Result<Closed, DeliverError>)>,
}

impl Pipeline {
    /// A pipeline of `workers` workers running the analyses of `set`; `filter` is a tcpdump
    /// expression applied in user space to files (live captures filter in the kernel).
    pub fn new(set: AnalysisSet, workers: usize, filter: Option<String>) -> Pipeline {
        let workers = workers.max(1);
        let set = set.resolved();
        let metrics = Arc::new(PipelineMetrics::new(workers, &set));
        let (ctl_tx, ctl_rx) = channel();
        Pipeline {
            set,
            workers,
            filter,
            runners: Vec::new(),
            metrics,
            ctl_tx,
            ctl_rx,
            producers: Arc::new(()),
        }
    }

    /// A handle to change the running pipeline (reloads) and feed it outside records.
    pub fn control(&self) -> Control {
        Control {
            tx: self.ctl_tx.clone(),
        }
    }

    /// A producer of records outside the workers whose last records the end of the run waits
    /// for (see [`Producer`]).
    pub fn producer(&self) -> Producer {
        Producer {
            control: self.control(),
            _alive: Arc::clone(&self.producers),
        }
    }

    /// The analyses it runs.
    pub fn analyses(&self) -> &AnalysisSet {
        &self.set
    }

    /// Adds a sink (already started on its own thread).
    pub fn add_sink(&mut self, r: SinkRunner) {
        self.metrics
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((r.name().to_string(), r.stats_handle()));
        self.runners.push(r);
    }

    /// The live counters (for a metrics endpoint).
    pub fn metrics(&self) -> Arc<PipelineMetrics> {
        Arc::clone(&self.metrics)
    }

    fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            workers: self.workers,
            tick_ns: self.set.base_tick(),
            queue_depth: 4,
        }
    }

    /// Starts the merge thread; returns the workers and what ends the run.
    fn start(
        self,
        filtered: bool,
    ) -> (
        Vec<PacketWorker>,
        std::thread::JoinHandle<crate::merge::MergeOutcome>,
        Arc<AtomicBool>,
    ) {
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        let complete = Arc::new(AtomicBool::new(true));
        let collectors = Collectors::new(&self.set, self.workers);
        let router = Router::new(self.runners);
        let metrics = Some(Arc::clone(&self.metrics));
        let c = Arc::clone(&complete);
        let ctl = self.ctl_rx;
        let producers = self.producers;
        let merge = std::thread::Builder::new()
            .name("merge".into())
            .spawn(move || merge_loop(rx, ctl, collectors, router, c, metrics, producers))
            .expect("spawning the merge thread");
        let (outer, inner) = (self.set.wants_outer(), self.set.wants_inner());
        // Neither: no analysis looks at the packet (nothing enabled): decode the outer view.
        let outer = outer || !inner;
        let workers =
            (0..self.workers)
                .map(|i| {
                    let w =
                        PacketWorker::new(
                            i,
                            Parts::new(i, &self.set, &tx),
                            if filtered {
                                self.filter.as_deref().map(FileFilter::new)
                            } else {
                                None
                            },
                            outer,
                            inner,
                            Some(Arc::clone(&self.metrics)),
                        )
                        .with_anonymizer(self.set.anonymize.as_ref().map(
                            |a| netspectra_sanitize::Anonymizer::new(&a.key, a.policy.clone()),
                        ));
                    w.with_ring(self.set.ring.as_ref(), self.workers)
                })
                .collect();
        (workers, merge, complete)
    }

    /// Runs over capture files one after another, as one continuous input (flows and
    /// connections carry over from one file to the next), until their end, a read error, or
    /// `stop`. `open` opens the next file (or fails); `progress` sees the reader's counters.
    pub fn run_files(
        self,
        files: &[PathBuf],
        open: &mut dyn FnMut(&PathBuf) -> Result<CaptureReader, SourceError>,
        stop: &Arc<AtomicBool>,
        progress: &mut dyn FnMut(&PathBuf, &SourceStats),
    ) -> RunReport {
        let cfg = self.engine_config();
        let (workers, merge, complete) = self.start(true);
        let slots: Mutex<Vec<Option<PacketWorker>>> =
            Mutex::new(workers.into_iter().map(Some).collect());
        let mut stats = SourceStats::default();
        let mut warnings = Vec::new();
        let (mut error, mut error_input, mut stopped) = (None, None, false);
        for file in files {
            let mut reader = match open(file) {
                Ok(r) => r,
                Err(e) => {
                    error = Some(e);
                    error_input = Some(file.clone());
                    break;
                }
            };
            reader.set_stop(Arc::clone(stop));
            let take = |i: usize| {
                slots.lock().unwrap_or_else(|p| p.into_inner())[i]
                    .take()
                    .expect("each worker runs once per file")
            };
            let out = run_file(&mut reader, &cfg, stop, take, &mut |st| progress(file, st));
            {
                let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
                for (i, w) in out.analyses.into_iter().enumerate() {
                    s[i] = Some(w);
                }
            }
            add(&mut stats, &out.stats);
            for w in reader.warnings() {
                warnings.push(format!("{}: {w}", file.display()));
            }
            if let Some(e) = out.error {
                error = Some(e);
                error_input = Some(file.clone());
                break;
            }
            if out.stopped || stop.load(Ordering::Relaxed) {
                stopped = true;
                break;
            }
        }
        complete.store(error.is_none() && !stopped, Ordering::Release);
        // Whatever happened, what was read is flushed and delivered.
        for w in slots
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .flatten()
        {
            w.finish();
        }
        let m = merge
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        RunReport {
            stats,
            error,
            error_input,
            stopped,
            warnings,
            analyses: m.analyses,
            sinks: m.sinks,
        }
    }

    /// Runs over live sources (one worker per socket of a fanout group) until they end (a
    /// stop request drains them): a live run ends complete.
    pub fn run_live<S: PacketSource + Send>(self, sources: Vec<S>) -> RunReport {
        let cfg = self.engine_config();
        let (workers, merge, _complete) = self.start(false);
        let slots: Mutex<Vec<Option<PacketWorker>>> =
            Mutex::new(workers.into_iter().map(Some).collect());
        let never = AtomicBool::new(false);
        let take = |i: usize| {
            slots.lock().unwrap_or_else(|p| p.into_inner())[i]
                .take()
                .expect("one worker per source")
        };
        let out = run_live(sources, &cfg, &never, take);
        // Live flows are not at an end of input: they end because the capture stopped.
        for w in out.analyses {
            w.finish_with(netspectra_flow::EndReason::Shutdown);
        }
        let m = merge
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        RunReport {
            stats: out.stats,
            error: out.error,
            error_input: None,
            stopped: true,
            warnings: Vec::new(),
            analyses: m.analyses,
            sinks: m.sinks,
        }
    }
}

fn add(t: &mut SourceStats, s: &SourceStats) {
    t.packets += s.packets;
    t.bytes += s.bytes;
    t.wire_bytes += s.wire_bytes;
    t.snapped += s.snapped;
    t.kernel_drops += s.kernel_drops;
    t.user_drops += s.user_drops;
    t.freezes += s.freezes;
    t.skipped_blocks += s.skipped_blocks;
    t.input_offset = s.input_offset;
}

#[cfg(test)]
mod tests {
    use super::*;
    use netspectra_sinks::delivery::DeliveryConfig;
    use netspectra_sinks::sink::{DeliverError, Routes, Sink};
    use netspectra_sinks::stream::{Batch, StreamKind};
    use std::time::Duration;

    /// Keeps the JSON lines of the guard stream.
    struct Collect(Arc<Mutex<Vec<u8>>>);

    impl Sink for Collect {
        fn name(&self) -> String {
            "collect".into()
        }
        fn routes(&self) -> Routes {
            Routes::kinds(&[StreamKind::Guard])
        }
        fn deliver(&mut self, b: &Batch) -> Result<(), DeliverError> {
            self.0.lock().unwrap().extend_from_slice(b.json());
            Ok(())
        }
    }

    #[test]
    fn the_end_of_a_run_waits_for_the_last_records_of_a_producer() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut p = Pipeline::new(AnalysisSet::default(), 1, None);
        let sink = Collect(Arc::clone(&got));
        p.add_sink(
            SinkRunner::start(Box::new(sink), &Routes::all(), DeliveryConfig::default()).unwrap(),
        );
        let producer = p.producer();
        let guard = Stream::of(StreamKind::Guard);
        producer
            .control()
            .lines(guard.clone(), 2, b"{\"a\":1}\n{\"a\":2}\n".to_vec());
        // The workers end at once (no input); the producer hands over its last line later.
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            producer.control().lines(guard, 1, b"{\"a\":3}\n".to_vec());
        });
        let stop = Arc::new(AtomicBool::new(false));
        let r = p.run_files(
            &[],
            &mut |_| unreachable!("no files"),
            &stop,
            &mut |_, _| {},
        );
        late.join().unwrap();
        assert_eq!(r.sinks[0].0.delivered, 3, "{:?}", r.sinks[0].0);
        assert_eq!(
            String::from_utf8_lossy(&got.lock().unwrap()),
            "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"
        );
    }
}
