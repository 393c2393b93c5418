//! Opening a live capture for a subcommand (`capture`, `flows -i`, `http -i`): SIGINT/SIGTERM
//! handling that drains the rings, the fanout group, and which failures are the user's input;
//! and the `--filter` check that `flows` and `http` make for files and interfaces alike.

use crate::exit::BadInput;
use crate::stop::Stop;
use anyhow::Result;
use netspectra_capture::{open_fanout, CaptureError, Filter, LiveConfig, LiveSource};
use netspectra_packet::LinkType;

/// The `--filter` expression, trimmed (blank means none), with its syntax checked before any
/// input is read: a bad one is bad input, and the error names the expression.
pub fn user_filter(arg: Option<&str>) -> Result<Option<&str>> {
    let filter = arg.map(str::trim).filter(|f| !f.is_empty());
    if let Some(f) = filter {
        Filter::compile(f, LinkType::ETHERNET, 0).map_err(|e| BadInput(e.to_string()))?;
    }
    Ok(filter)
}

/// Opens `cfg.threads` sockets of one fanout group that drain and end when `stop` is raised
/// (SIGINT/SIGTERM). A bad filter, configuration or interface name is bad input (exit code 2).
pub fn open(cfg: &mut LiveConfig, stop: &Stop) -> Result<Vec<LiveSource>> {
    cfg.stop = stop.handle().clone();
    let sources = open_fanout(cfg).map_err(|e| match e {
        CaptureError::Filter { .. }
        | CaptureError::Config(_)
        | CaptureError::NoSuchInterface(_) => anyhow::Error::new(BadInput(e.to_string())),
        other => anyhow::Error::new(other),
    })?;
    Ok(sources)
}

/// The line printed on stderr once a live command listens (tests wait for it).
pub fn announce(command: &str, iface: &str, threads: usize) {
    eprintln!(
        "netspectra {command}: listening on {iface} ({threads} thread{}); Ctrl-C to stop",
        if threads == 1 { "" } else { "s" }
    );
}
