//! One interface for every destination of record streams: files, standard output, ClickHouse,
//! IPFIX collectors, the bus. A sink only delivers; queueing, spooling to disk, retries and
//! counting are the [`crate::delivery`] runner's, the same for every sink.

use crate::stream::{Batch, Stream, StreamKind};
use std::path::PathBuf;
use std::sync::Arc;

/// Which streams a sink takes: a set of kinds, and optionally only some views by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routes {
    kinds: Vec<StreamKind>,
    views: Option<Vec<String>>,
}

impl Routes {
    /// Every stream.
    pub fn all() -> Routes {
        Routes {
            kinds: StreamKind::ALL.to_vec(),
            views: None,
        }
    }

    /// These kinds (every view when [`StreamKind::View`] is among them).
    pub fn kinds(kinds: &[StreamKind]) -> Routes {
        Routes {
            kinds: kinds.to_vec(),
            views: None,
        }
    }

    /// Narrows the views to these names.
    pub fn with_views(mut self, views: Vec<String>) -> Routes {
        self.views = Some(views);
        self
    }

    /// True when `s` is routed here.
    pub fn accepts(&self, s: &Stream) -> bool {
        if !self.kinds.contains(&s.kind) {
            return false;
        }
        match (&self.views, &s.view) {
            (Some(names), Some(v)) => names.iter().any(|n| **n == **v),
            _ => true,
        }
    }

    /// The streams both routes take.
    pub fn intersect(&self, o: &Routes) -> Routes {
        let kinds = self
            .kinds
            .iter()
            .copied()
            .filter(|k| o.kinds.contains(k))
            .collect();
        let views = match (&self.views, &o.views) {
            (Some(a), Some(b)) => Some(a.iter().filter(|v| b.contains(v)).cloned().collect()),
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        };
        Routes { kinds, views }
    }
}

/// Why a sink could not take a batch.
#[derive(Debug, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct DeliverError {
    /// The sink (its URL or path).
    pub sink: String,
    /// What went wrong, naming the server or path.
    pub message: String,
    /// Worth trying again later (a server down, a timeout); otherwise the batch can never be
    /// delivered (a record the destination refuses) and is dropped, counted.
    pub retryable: bool,
    /// The batch may have been delivered although the sink saw an error (a connection lost
    /// after the request was sent): before a retry, [`Sink::already_delivered`] is asked.
    pub ambiguous: bool,
}

impl DeliverError {
    /// A failure worth retrying.
    pub fn retry(sink: impl Into<String>, message: impl Into<String>) -> DeliverError {
        DeliverError {
            sink: sink.into(),
            message: message.into(),
            retryable: true,
            ambiguous: false,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn fatal(sink: impl Into<String>, message: impl Into<String>) -> DeliverError {
        DeliverError {
            sink: sink.into(),
            message: message.into(),
            retryable: false,
            ambiguous: false,
        }
    }

    /// Marks the outcome as unknown (the request went out; the answer did not come back).
    pub fn ambiguous(mut self) -> DeliverError {
        self.ambiguous = true;
        self
    }
}

/// What a sink left behind when it closed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Closed {
    /// Files written (complete ones under their names, partial ones as `NAME.partial`).
    pub files: Vec<PathBuf>,
}

/// A destination of record batches. Each sink runs on its own thread (see
/// [`crate::delivery::SinkRunner`]), so `deliver` may block on the network or the disk without
/// holding up the capture or the other sinks.
pub trait Sink: Send {
    /// The sink as users name it (a path, a URL), for messages and metrics labels.
    fn name(&self) -> String;

    /// The streams the sink can take (IPFIX only flows, ...); configuration may narrow it.
    fn routes(&self) -> Routes;

    /// True when the sink can deliver a batch that exists only as JSON lines (one read back
    /// from a spool). Sinks that need typed records (IPFIX, CSV, Parquet) say no, and are
    /// never given a spool.
    fn takes_json(&self) -> bool {
        true
    }

    /// Delivers one batch whole, or fails. Called again with the same batch after a
    /// retryable error.
    fn deliver(&mut self, batch: &Batch) -> Result<(), DeliverError>;

    /// After an [`DeliverError::ambiguous`] failure: true when the destination already holds the
    /// batch (so delivering it again would count its records twice).
    fn already_delivered(&mut self, _batch: &Batch) -> Result<bool, DeliverError> {
        Ok(false)
    }

    /// Most batches of one stream the sink takes in one [`Sink::deliver_group`] call when a
    /// backlog has built up (fewer, larger requests for destinations that pay per request,
    /// as ClickHouse does per insert); 1, the default, delivers batch by batch.
    fn group_limit(&self, _stream: &Stream) -> usize {
        1
    }

    /// Delivers 2 to [`Sink::group_limit`] consecutive batches of one stream, whole or not at
    /// all (a sink raising the limit must make this atomic, as one insert is). Called again
    /// with the batches still missing after a retryable error.
    fn deliver_group(&mut self, group: &[Arc<Batch>]) -> Result<(), DeliverError> {
        for b in group {
            self.deliver(b)?;
        }
        Ok(())
    }

    /// Pushes buffered output on (called when the queue is idle, at interval ends and before
    /// closing).
    fn flush(&mut self) -> Result<(), DeliverError> {
        Ok(())
    }

    /// End of the run: `complete` is false when it stopped before its input ended (files are
    /// then kept as `NAME.partial`).
    fn close(&mut self, _complete: bool) -> Result<Closed, DeliverError> {
        Ok(Closed::default())
    }
}
