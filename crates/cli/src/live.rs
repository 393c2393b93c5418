//! Opening a live capture for a subcommand (`capture`, `flows -i`, `http -i`): SIGINT/SIGTERM
//! handling that drains the rings, the fanout group, and which failures are the user's input;
//! and the `--filter` check that `flows` and `http` make for files and interfaces alike.

use crate::exit::BadInput;
use anyhow::{Context, Result};
use netspectra_capture::{
    group_stats, open_fanout, CaptureError, Filter, LiveConfig, LiveSource, LiveStatsHandle,
    StopHandle,
};
use netspectra_metrics::Exposition;
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

/// Installs signal handlers and opens `cfg.threads` sockets of one fanout group. A bad filter,
/// configuration or interface name is bad input (exit code 2).
pub fn open(cfg: &mut LiveConfig) -> Result<(Vec<LiveSource>, StopHandle)> {
    let stop = StopHandle::new();
    stop.stop_on_signals()
        .context("installing SIGINT/SIGTERM handlers")?;
    cfg.stop = stop.clone();
    let sources = open_fanout(cfg).map_err(|e| match e {
        CaptureError::Filter { .. }
        | CaptureError::Config(_)
        | CaptureError::NoSuchInterface(_) => anyhow::Error::new(BadInput(e.to_string())),
        other => anyhow::Error::new(other),
    })?;
    Ok((sources, stop))
}

/// The line printed on stderr once a live command listens (tests wait for it).
pub fn announce(command: &str, iface: &str, threads: usize) {
    eprintln!(
        "netspectra {command}: listening on {iface} ({threads} thread{}); Ctrl-C to stop",
        if threads == 1 { "" } else { "s" }
    );
}

/// Adds the live capture's counters (summed over the fanout group's sockets) to a metrics
/// exposition: what reached user space, and what the kernel and user space dropped.
pub fn capture_metrics(e: &mut Exposition, iface: &str, handles: &[LiveStatsHandle]) {
    let s = group_stats(handles);
    let l = [("interface", iface)];
    let kind = netspectra_metrics::Kind::Counter;
    for (name, help, v) in [
        (
            "netspectra_capture_packets_total",
            "Packets handed to user space.",
            s.packets,
        ),
        (
            "netspectra_capture_bytes_total",
            "Captured bytes handed to user space.",
            s.bytes,
        ),
        (
            "netspectra_capture_wire_bytes_total",
            "Wire bytes of the packets handed to user space.",
            s.wire_bytes,
        ),
        (
            "netspectra_capture_snapped_total",
            "Packets cut by the snaplen.",
            s.snapped,
        ),
        (
            "netspectra_capture_kernel_received_total",
            "Packets the kernel passed to the sockets (PACKET_STATISTICS, drops included).",
            s.kernel_received,
        ),
        (
            "netspectra_capture_kernel_drops_total",
            "Packets the kernel dropped: ring full.",
            s.kernel_drops,
        ),
        (
            "netspectra_capture_freezes_total",
            "Times the kernel froze a ring queue.",
            s.freezes,
        ),
        (
            "netspectra_capture_user_drops_total",
            "Packets dropped in user space by a consumer that fell behind.",
            s.user_drops,
        ),
        (
            "netspectra_capture_blocks_total",
            "Ring blocks handed to user space.",
            s.blocks,
        ),
    ] {
        e.sample(name, kind, help, &l, v as f64);
    }
}

/// The capture counters a live command's metrics show once its sockets are open (`-i`); empty
/// for file input.
#[derive(Default)]
pub struct LiveCounters(std::sync::OnceLock<(String, Vec<LiveStatsHandle>)>);

impl LiveCounters {
    /// Remembers the interface and the stats handles of its fanout group's sockets.
    pub fn set(&self, iface: &str, sources: &[LiveSource]) {
        let handles = sources.iter().map(LiveSource::stats_handle).collect();
        let _ = self.0.set((iface.to_string(), handles));
    }

    /// Adds the capture's counters (see [`capture_metrics`]) once they are set.
    pub fn render(&self, e: &mut Exposition) {
        if let Some((iface, handles)) = self.0.get() {
            capture_metrics(e, iface, handles);
        }
    }
}
