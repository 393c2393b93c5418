//! The analysis pipeline that every command runs, from the capture ring (or a file) to the
//! sinks:
//!
//! ```text
//!  source ──► engine workers ─────────────────────────► merge thread ──► router ──► sink runners
//!  (file,     (one per --threads / fanout socket:        (one: flow views    (batch    (one thread
//!   AF_PACKET  decode each packet ONCE, hand the view    merged across       seq per   each, bounded
//!   ring)      to every enabled analysis; ticks)         workers, HTTP       stream)   queue, spool,
//!                                                        records passed on)            retries)
//! ```
//!
//! A worker owns one part of each enabled analysis (shared nothing); parts send their output
//! as messages over one bounded channel to the merge thread, which turns them into typed
//! record [`netspectra_sinks::stream::Batch`]es (flow records, view snapshots, HTTP records)
//! and hands each batch to every sink that takes its stream. Sinks never hold each other up:
//! each has its own thread, queue and spool (see `netspectra_sinks::delivery`).
//!
//! Two commands move packets rather than records, and their runs live here too: [`sanitize`]
//! (capture files in, rewritten capture files out) and [`record`] (live sockets to rotating
//! capture files).

pub mod analysis;
pub mod merge;
pub mod metrics;
pub mod probe;
pub mod record;
pub mod run;
pub mod sanitize;
pub mod worker;

pub use analysis::{AnalysisSet, AnonymizeSetup, FlowsSetup};
pub use metrics::PipelineMetrics;
pub use run::{Control, Pipeline, Producer, RunReport};

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A sink could not be started.
    #[error(transparent)]
    Sink(#[from] netspectra_sinks::sink::DeliverError),
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
}
