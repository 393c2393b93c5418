//! The `--metrics ADDR` endpoint of the long-running subcommands (`flows`, `http`, `capture`,
//! `guard run`): starting it, and the live capture's counters that several of them show.

use anyhow::{Context, Result};
use netspectra_capture::{group_stats, LiveSource, LiveStatsHandle};
use netspectra_metrics::{Exposition, MetricsServer};

/// Serves `render`'s exposition on `addr` and, unless `quiet`, says where on stderr as
/// `<command>: metrics on http://ADDR/metrics` (tests wait for that line); an address that
/// cannot be bound is an error naming `--metrics`.
pub fn serve(
    command: &str,
    addr: &str,
    quiet: bool,
    render: impl FnMut(&mut Exposition) + Send + 'static,
) -> Result<MetricsServer> {
    let srv = MetricsServer::start(addr, render).with_context(|| format!("--metrics {addr}"))?;
    if !quiet {
        eprintln!("{command}: metrics on http://{}/metrics", srv.local_addr());
    }
    Ok(srv)
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

    /// Packets the kernel received (drops included) and dropped, once the sockets are set.
    pub fn totals(&self) -> Option<(u64, u64)> {
        let (_, handles) = self.0.get()?;
        let s = group_stats(handles);
        Some((s.kernel_received, s.kernel_drops))
    }

    /// Adds the capture's counters (see [`capture_metrics`]) once they are set.
    pub fn render(&self, e: &mut Exposition) {
        if let Some((iface, handles)) = self.0.get() {
            capture_metrics(e, iface, handles);
        }
    }
}
