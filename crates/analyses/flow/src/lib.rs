//! Flow table, config-driven views, sketches (HyperLogLog, Count-Min + top-K) and snapshots.
//!
//! Per packet, a worker does one decode, one hash lookup and a few adds in its
//! [`table::FlowTable`]. Views are never updated per packet: at each snapshot tick the worker
//! hands the deltas of the flows it touched (a dirty list) to the [`views::Merger`], which rolls
//! them into every view, each on its own cadence, and merges workers.

pub mod config;
pub mod hll;
pub mod record;
mod slots;
pub mod table;
pub mod topk;
pub mod views;
pub mod worker;

pub use config::{FileConfig, TableConfig, Timeouts, ViewSpec};
pub use table::{EndReason, EndedFlow, FlowDelta, FlowTable, TableCounters};
pub use views::{Merger, Output, Snapshot, Summary};
pub use worker::{FlowWorker, WorkerMsg};

/// Errors of the flow crate.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The configuration is invalid (the message names the key and, for YAML, the line).
    #[error("bad flow configuration: {0}")]
    Config(String),
}
