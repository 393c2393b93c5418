//! Runs analyses over a packet source: single-threaded, or shared-nothing workers fed by a symmetric flow-hash partition.
