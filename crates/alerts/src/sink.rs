//! The rule engine as a sink: it takes view snapshots and HTTP records (under the common
//! delivery runner, like every sink), evaluates the rules at each snapshot, and sends the
//! events as `alerts` batches to the sinks that take that stream, to the webhooks, and to
//! [`AlertMetrics`].

use crate::webhook::Webhook;
use crate::{AlertMetrics, Engine, Event};
use netspectra_sinks::delivery::SinkRunner;
use netspectra_sinks::sink::{Closed, DeliverError, Routes, Sink};
use netspectra_sinks::stream::{Batch, Payload, Stream, StreamKind};
use std::sync::Arc;
use std::time::Duration;

/// Capture counters (packets received, dropped by the kernel) read at each snapshot.
pub type CaptureCounters = Arc<dyn Fn() -> Option<(u64, u64)> + Send + Sync>;

/// Evaluates alert rules on the record streams and delivers the events.
pub struct AlertSink {
    engine: Engine,
    outputs: Vec<SinkRunner>,
    webhooks: Vec<Webhook>,
    metrics: Arc<AlertMetrics>,
    capture: Option<CaptureCounters>,
    seq: u64,
    /// The end of the last interval judged for HTTP and capture rules.
    last_end: i64,
}

impl AlertSink {
    /// A sink for `engine`; events go to `outputs` (runners of sinks that take the `alerts`
    /// stream), `webhooks` and `metrics`.
    pub fn new(
        engine: Engine,
        outputs: Vec<SinkRunner>,
        webhooks: Vec<Webhook>,
        metrics: Arc<AlertMetrics>,
        capture: Option<CaptureCounters>,
    ) -> AlertSink {
        AlertSink {
            engine,
            outputs,
            webhooks,
            metrics,
            capture,
            seq: 0,
            last_end: i64::MIN,
        }
    }

    fn emit(&mut self, events: &[Event]) {
        self.metrics.update(&self.engine, events);
        if events.is_empty() {
            return;
        }
        let mut json = Vec::new();
        for e in events {
            if serde_json::to_writer(&mut json, e).is_ok() {
                json.push(b'\n');
            }
        }
        let b = Arc::new(Batch::encoded(
            Stream::of(StreamKind::Alerts),
            self.seq,
            events.len() as u64,
            json,
        ));
        self.seq += 1;
        for o in &self.outputs {
            o.push(&b);
        }
        for w in &self.webhooks {
            w.send(events);
        }
    }
}

impl Sink for AlertSink {
    fn name(&self) -> String {
        "alerts".into()
    }

    fn routes(&self) -> Routes {
        Routes::kinds(&[StreamKind::View, StreamKind::Http])
    }

    fn deliver(&mut self, b: &Batch) -> Result<(), DeliverError> {
        match b.stream.kind {
            StreamKind::Http => self.engine.on_http(b.json()),
            StreamKind::View => {
                let view = b.stream.view.as_deref().unwrap_or("");
                let end = match &b.payload {
                    Payload::Snapshot(s) => Some(s.end.div_euclid(1_000_000_000)),
                    _ => b
                        .json()
                        .split(|&c| c == b'\n')
                        .next()
                        .and_then(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
                        .and_then(|v| v["interval_end"].as_str().and_then(crate::parse_time)),
                };
                let Some(end) = end else { return Ok(()) };
                let mut events = self.engine.on_snapshot(view, end, b.json());
                // HTTP and capture rules are judged once per interval end.
                if end > self.last_end {
                    self.last_end = end;
                    let cap = self.capture.as_ref().and_then(|f| f());
                    events.extend(self.engine.end_interval(end, cap));
                }
                self.emit(&events);
            }
            _ => {}
        }
        Ok(())
    }

    fn close(&mut self, complete: bool) -> Result<Closed, DeliverError> {
        let mut closed = Closed::default();
        for o in std::mem::take(&mut self.outputs) {
            let (_, r) = o.close(complete);
            if let Ok(c) = r {
                closed.files.extend(c.files);
            }
        }
        for w in std::mem::take(&mut self.webhooks) {
            w.close(Duration::from_secs(5));
        }
        Ok(closed)
    }
}
