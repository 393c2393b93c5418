//! `netspectra flows`: flow records, config-driven views with per-view snapshot cadences, and a
//! summary with top talkers and conversations (like softflowd/argus records plus
//! `tshark -z conv`).
//!
//! Threads: the engine's workers own one flow table each (shared nothing); a single writer
//! thread runs the merger (views, snapshots, summary sketches) and writes every file, so the
//! per-packet path never waits on output.

use crate::exit::BadInput;
use crate::record_format::RecordFormatArg;
use anyhow::{Context, Result};
use clap::Args;
use netspectra_capture::{FileFilter, LiveConfig};
use netspectra_clickhouse::{ClickHouseError, ClickHouseSink};
use netspectra_engine::{run_file, run_live, Analysis, EngineConfig};
use netspectra_flow::config::{default_views, parse_duration, DEFAULT_INTERVAL};
use netspectra_flow::record::{dir_stamp, FlowRecord};
use netspectra_flow::{
    EndReason, EndedFlow, FileConfig, FlowWorker, Merger, Output, Snapshot, Summary, TableConfig,
    ViewSpec, WorkerMsg,
};
use netspectra_ipfix::{EncoderConfig, ExportStats, ExporterConfig, IpfixError, IpfixExporter};
use netspectra_metrics::{Exposition, Kind};
use netspectra_packet::{Batch, SourceStats, Timestamp};
use netspectra_pcap::CaptureReader;
use netspectra_sinks::{create_output, RecordFormat, RecordWriter};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Instant;

/// Arguments of `netspectra flows`.
#[derive(Args)]
pub struct FlowsArgs {
    /// Capture file (pcap, pcapng, gzip; `-` = standard input).
    #[arg(conflicts_with_all = ["read", "interface"])]
    file: Option<PathBuf>,
    /// Capture file to read (same as the positional argument).
    #[arg(short = 'r', long = "read", conflicts_with = "interface")]
    read: Option<PathBuf>,
    /// Capture live from this interface (AF_PACKET; Ctrl-C stops and flushes).
    #[arg(short = 'i', long = "interface")]
    interface: Option<String>,
    /// tcpdump filter expression: in the kernel with `-i`, in user space for files.
    #[arg(short = 'f', long = "filter")]
    filter: Option<String>,
    /// YAML configuration (views, timeouts, table size; see examples/flows.yaml).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Output folder: flow records in `<out>/flows.<ext>`, view snapshots in
    /// `<out>/<interval-start>/<view>.<ext>`.
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
    /// Where to write flow records (`-` = standard output); overrides `<out>/flows.<ext>`.
    #[arg(long)]
    records: Option<PathBuf>,
    /// Do not write flow records (views and summary only).
    #[arg(long)]
    no_records: bool,
    /// Also send flow records to an IPFIX collector over UDP: `ipfix://HOST:PORT` (or
    /// `ipfix+udp://HOST:PORT`; one record per direction with packets, as softflowd does), or
    /// insert them into a ClickHouse table: `clickhouse://HOST[:8123]/[DB.]TABLE` (HTTP
    /// interface; database and table created when missing).
    #[arg(long, value_name = "URL")]
    export: Option<String>,
    /// IPFIX observation domain ID of the exported messages.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "export")]
    export_domain: u32,
    /// Send at most this many IPFIX datagrams per second (default: unpaced), so that a burst
    /// does not overflow the socket buffer of a collector that reads slower than we send.
    #[arg(long, value_name = "N", requires = "export")]
    export_rate: Option<u32>,
    /// Format of records and snapshots.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: RecordFormatArg,
    /// Default snapshot cadence of views (e.g. 60s, 5m); packet time for files.
    #[arg(long, value_parser = dur)]
    interval: Option<i64>,
    /// Add an ad-hoc view keyed on these fields (e.g. `src_ip,dst_port`, `src_ip/24`); repeatable.
    #[arg(long = "view")]
    views: Vec<String>,
    /// Only the views from --view and the config file, not the default ones.
    #[arg(long)]
    no_default_views: bool,
    /// Worker threads (flows are partitioned by a symmetric address hash).
    #[arg(short = 't', long, default_value_t = 1)]
    threads: usize,
    /// Maximum live flows per worker (when full, the least recently seen flow is exported).
    #[arg(long)]
    max_flows: Option<usize>,
    /// TCP idle timeout.
    #[arg(long, value_parser = dur)]
    tcp_timeout: Option<i64>,
    /// UDP idle timeout.
    #[arg(long, value_parser = dur)]
    udp_timeout: Option<i64>,
    /// ICMP idle timeout.
    #[arg(long, value_parser = dur)]
    icmp_timeout: Option<i64>,
    /// Idle timeout of other IP protocols.
    #[arg(long, value_parser = dur)]
    other_timeout: Option<i64>,
    /// Timeout after a TCP FIN exchange or RST.
    #[arg(long, value_parser = dur)]
    tcp_closed_timeout: Option<i64>,
    /// Active timeout: longer flows are exported and restarted.
    #[arg(long, value_parser = dur)]
    active_timeout: Option<i64>,
    /// Key flows on the innermost packet of GRE/VXLAN/GENEVE/IP-in-IP tunnels.
    #[arg(long)]
    inner: bool,
    /// Rows in the summary's top lists.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// No progress display.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Serve Prometheus metrics of the run (packets, flows by end reason, live flows, records,
    /// IPFIX export) on this address, e.g. 127.0.0.1:9464, at GET /metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

/// What one worker has counted so far, published once per batch for `--metrics` (written only
/// by its worker; read by scrapes).
#[derive(Default)]
struct WorkerMetrics {
    bytes: AtomicU64,
    packets: AtomicU64,
    flow_packets: AtomicU64,
    not_flowable: AtomicU64,
    flows_started: AtomicU64,
    ended: [AtomicU64; 6],
    live: AtomicU64,
    truncated: AtomicU64,
    malformed: AtomicU64,
    undecoded: AtomicU64,
}

/// Live counters of a flows run for `--metrics`: one set per worker plus the writer's.
#[derive(Default)]
struct FlowsMetrics {
    workers: Vec<WorkerMetrics>,
    records_written: AtomicU64,
    snapshots_written: AtomicU64,
    ipfix_messages: AtomicU64,
    ipfix_records: AtomicU64,
    ipfix_send_errors: AtomicU64,
    clickhouse_rows: AtomicU64,
    /// The live capture's interface and counters, once it is open (`-i`).
    live: crate::metrics::LiveCounters,
}

impl FlowsMetrics {
    /// Publishes worker `i`'s counters after a batch of `packets` read (`bytes` on the wire).
    fn publish(&self, i: usize, w: &FlowWorker, packets: u64, bytes: u64) {
        let m = &self.workers[i];
        let c = w.table().counters();
        let d = w.decode_counters();
        m.bytes.fetch_add(bytes, Ordering::Relaxed);
        m.packets.fetch_add(packets, Ordering::Relaxed);
        m.flow_packets.store(c.flow_packets, Ordering::Relaxed);
        m.not_flowable.store(c.not_flowable(), Ordering::Relaxed);
        m.flows_started.store(c.flows_started, Ordering::Relaxed);
        for (a, v) in m.ended.iter().zip(c.ended) {
            a.store(v, Ordering::Relaxed);
        }
        m.live.store(w.table().live() as u64, Ordering::Relaxed);
        m.truncated.store(d.truncated, Ordering::Relaxed);
        m.malformed.store(d.malformed, Ordering::Relaxed);
        m.undecoded.store(d.undecoded, Ordering::Relaxed);
    }

    fn render(&self, e: &mut Exposition) {
        let sum = |f: fn(&WorkerMetrics) -> &AtomicU64| -> u64 {
            self.workers
                .iter()
                .map(|w| f(w).load(Ordering::Relaxed))
                .sum()
        };
        e.counter(
            "netspectra_flows_packets_total",
            "Packets read (before a user-space filter).",
            sum(|w| &w.packets),
        );
        e.counter(
            "netspectra_flows_bytes_total",
            "Bytes on the wire of the packets read.",
            sum(|w| &w.bytes),
        );
        e.counter(
            "netspectra_flows_flow_packets_total",
            "Packets counted in a flow.",
            sum(|w| &w.flow_packets),
        );
        e.counter(
            "netspectra_flows_not_flowable_packets_total",
            "Packets without a flow (no IP layer, missing transport header, orphan fragment).",
            sum(|w| &w.not_flowable),
        );
        for (name, f) in [
            (
                "truncated",
                (|w| &w.truncated) as fn(&WorkerMetrics) -> &AtomicU64,
            ),
            ("malformed", |w| &w.malformed),
            ("undecoded", |w| &w.undecoded),
        ] {
            e.sample(
                "netspectra_flows_decode_problems_total",
                Kind::Counter,
                "Packets that did not decode completely, by reason.",
                &[("reason", name)],
                sum(f) as f64,
            );
        }
        e.counter(
            "netspectra_flows_started_total",
            "Flow records started.",
            sum(|w| &w.flows_started),
        );
        for (i, r) in EndReason::ALL.iter().enumerate() {
            let n: u64 = self
                .workers
                .iter()
                .map(|w| w.ended[i].load(Ordering::Relaxed))
                .sum();
            e.sample(
                "netspectra_flows_ended_total",
                Kind::Counter,
                "Flow records ended, by reason.",
                &[("reason", r.name())],
                n as f64,
            );
        }
        e.gauge(
            "netspectra_flows_live",
            "Flows in the tables now.",
            sum(|w| &w.live) as f64,
        );
        e.counter(
            "netspectra_flows_records_written_total",
            "Flow records written to the record file.",
            self.records_written.load(Ordering::Relaxed),
        );
        e.counter(
            "netspectra_flows_snapshots_total",
            "View snapshots handed to the snapshot writers.",
            self.snapshots_written.load(Ordering::Relaxed),
        );
        e.counter(
            "netspectra_flows_ipfix_messages_total",
            "IPFIX datagrams sent to the collector.",
            self.ipfix_messages.load(Ordering::Relaxed),
        );
        e.counter(
            "netspectra_flows_ipfix_records_total",
            "IPFIX data records sent to the collector.",
            self.ipfix_records.load(Ordering::Relaxed),
        );
        e.counter(
            "netspectra_flows_ipfix_send_errors_total",
            "IPFIX datagrams whose send failed.",
            self.ipfix_send_errors.load(Ordering::Relaxed),
        );
        e.counter(
            "netspectra_flows_clickhouse_rows_total",
            "Flow records inserted into ClickHouse.",
            self.clickhouse_rows.load(Ordering::Relaxed),
        );
        self.live.render(e);
    }
}

fn dur(s: &str) -> Result<i64, String> {
    parse_duration(s)
}

/// The engine-facing wrapper: a flow worker plus an optional user-space filter.
struct FlowsAnalysis {
    worker: FlowWorker,
    filter: Option<FileFilter>,
    /// Where to publish counters after each batch (`--metrics`), and this worker's index.
    metrics: Option<(Arc<FlowsMetrics>, usize)>,
}

impl Analysis for FlowsAnalysis {
    fn on_batch(&mut self, batch: &Batch<'_>) {
        match &mut self.filter {
            None => self.worker.on_batch(batch),
            Some(filter) => {
                for p in batch.iter() {
                    if filter.matches(&p) {
                        self.worker.on_packet(&p);
                    }
                }
                self.worker.end_batch();
            }
        }
        if let Some((m, i)) = &self.metrics {
            let bytes = batch.iter().map(|p| p.orig_len as u64).sum();
            m.publish(*i, &self.worker, batch.len() as u64, bytes);
        }
    }

    fn on_tick(&mut self, at: Timestamp) {
        self.worker.on_tick(at);
    }
}

/// Writes finished flows as records.
fn write_records(w: &mut RecordWriter<FlowRecord>, flows: &[EndedFlow]) -> Result<()> {
    for f in flows {
        w.write_rendered(
            |line| netspectra_flow::record::write_jsonl(f, line),
            || FlowRecord::from_ended(f),
        )
        .context("writing flow records")?;
    }
    Ok(())
}

fn write_snapshot(dir: &Path, format: RecordFormat, s: &Snapshot) -> Result<()> {
    let path = dir
        .join(dir_stamp(s.start))
        .join(format!("{}.{}", s.view, format.extension()));
    if format == RecordFormat::JsonLines {
        // The common case: one pass over the rows, no serde per row.
        let mut out = BufWriter::with_capacity(
            256 << 10,
            create_output(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        s.write_jsonl(&mut out)
            .and_then(|()| out.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    let mut w = RecordWriter::<netspectra_flow::views::SnapRow<'_>>::create(&path, format)
        .with_context(|| format!("creating {}", path.display()))?;
    for i in 0..s.rows.len() {
        w.write(&s.row(i))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    w.finish()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Builds the table settings and views from the config file and flags (flags win). Every
/// size-like flag is checked against the same bound as its config key, and an error names the
/// flag (the file's errors name the key and line): zero sizes are refused, not taken as 1.
fn configure(a: &FlowsArgs) -> Result<(TableConfig, Vec<ViewSpec>)> {
    use netspectra_flow::config::{MAX_FLOWS, MIN_INTERVAL};
    let max_threads = netspectra_engine::MAX_THREADS;
    if a.threads == 0 || a.threads > max_threads {
        return Err(BadInput(format!(
            "--threads must be from 1 to {max_threads}, got {}",
            a.threads
        ))
        .into());
    }
    let max_top = netspectra_flow::views::SUMMARY_TOP;
    if a.top > max_top {
        return Err(BadInput(format!(
            "--top must be at most {max_top} (0 prints no top lists), got {}",
            a.top
        ))
        .into());
    }
    if let Some(n) = a.max_flows.filter(|n| !(1..=MAX_FLOWS).contains(n)) {
        return Err(BadInput(format!(
            "--max-flows must be from 1 to {MAX_FLOWS}, got {n}"
        ))
        .into());
    }
    if let Some(i) = a.interval.filter(|&i| i < MIN_INTERVAL) {
        return Err(BadInput(format!("--interval must be at least 1ms, got {i} ns")).into());
    }
    let mut table = TableConfig::default();
    let file = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading config {}", p.display()))
                .map_err(|e| BadInput(format!("{e:#}")))?;
            let origin = p.display().to_string();
            Some((
                FileConfig::from_yaml(&text, &origin).map_err(|e| BadInput(e.to_string()))?,
                origin,
            ))
        }
        None => None,
    };
    let interval = a
        .interval
        .or_else(|| file.as_ref().and_then(|(f, _)| f.interval.map(|d| d.0)))
        .unwrap_or(DEFAULT_INTERVAL);
    let mut views = match &file {
        Some((f, origin)) => {
            f.apply_table(&mut table);
            f.views(origin, interval)
                .map_err(|e| BadInput(e.to_string()))?
        }
        None => default_views(interval),
    };
    if a.no_default_views {
        let defaults: Vec<String> = default_views(interval)
            .into_iter()
            .map(|v| v.name)
            .collect();
        let listed = file.as_ref().is_some_and(|(f, _)| !f.views.is_empty());
        if !listed {
            views.retain(|v| !defaults.contains(&v.name));
        }
    }
    for spec in &a.views {
        let v = ViewSpec::adhoc(spec, interval)
            .map_err(|e| BadInput(format!("--view {spec:?}: {e}")))?;
        if !views.iter().any(|x| x.name == v.name) {
            views.push(v);
        }
    }
    let t = &mut table.timeouts;
    for (flag, dst, v) in [
        ("--tcp-timeout", &mut t.tcp, a.tcp_timeout),
        ("--udp-timeout", &mut t.udp, a.udp_timeout),
        ("--icmp-timeout", &mut t.icmp, a.icmp_timeout),
        ("--other-timeout", &mut t.other, a.other_timeout),
        (
            "--tcp-closed-timeout",
            &mut t.tcp_closed,
            a.tcp_closed_timeout,
        ),
        ("--active-timeout", &mut t.active, a.active_timeout),
    ] {
        match v {
            // A timeout of 0 used to become 1 ns from a flag (and stay 0 from the file).
            Some(0) => return Err(BadInput(format!("{flag} must be longer than 0")).into()),
            Some(v) => *dst = v,
            None => {}
        }
    }
    if let Some(n) = a.max_flows {
        table.max_flows = n;
    }
    if a.inner {
        table.inner = true;
    }
    Ok((table, views))
}

/// Runs `netspectra flows`.
pub fn run(a: FlowsArgs) -> Result<ExitCode> {
    let input = a.file.clone().or_else(|| a.read.clone());
    if input.is_none() && a.interface.is_none() {
        return Err(
            BadInput("give a capture file (-r FILE) or an interface (-i IFACE)".into()).into(),
        );
    }
    if a.threads == 0 {
        return Err(BadInput("--threads must be at least 1".into()).into());
    }
    let format = RecordFormat::from(a.format);
    let filter = crate::live::user_filter(a.filter.as_deref())?;
    let (table_cfg, mut views) = configure(&a)?;
    if a.out.is_none() {
        // Views are only written under --out: without it, do not compute them.
        views.clear();
    }
    let records_path = if a.no_records {
        None
    } else {
        a.records.clone().or_else(|| {
            a.out
                .as_ref()
                .map(|d| d.join(format!("flows.{}", format.extension())))
        })
    };
    let mut records = match &records_path {
        Some(p) => Some(
            RecordWriter::<FlowRecord>::create(p, format).map_err(|e| BadInput(e.to_string()))?,
        ),
        None => None,
    };
    let to_stdout = records_path
        .as_deref()
        .is_some_and(|p| p.as_os_str() == "-");
    let (mut exporter, mut clickhouse) = match a.export.as_deref() {
        Some(url) if url.starts_with("clickhouse://") => {
            // A bad URL is the user's input (exit 2); a server that fails is not.
            let sink = ClickHouseSink::connect(url).map_err(|e| match e {
                ClickHouseError::Url { .. } => BadInput(format!("--export: {e}")).into(),
                e => anyhow::Error::new(e).context(format!("--export {url}")),
            })?;
            (None, Some(sink))
        }
        Some(url) => (
            Some(open_exporter(url, a.export_domain, a.export_rate)?),
            None,
        ),
        None => (None, None),
    };
    let workers = a.threads;
    let metrics = a.metrics.as_ref().map(|_| {
        Arc::new(FlowsMetrics {
            workers: (0..workers).map(|_| WorkerMetrics::default()).collect(),
            ..FlowsMetrics::default()
        })
    });
    let _metrics_server = match (&a.metrics, &metrics) {
        (Some(addr), Some(m)) => {
            let m = Arc::clone(m);
            Some(crate::metrics::serve("flows", addr, a.quiet, move |e| {
                m.render(e)
            })?)
        }
        _ => None,
    };
    let writer_metrics = metrics.clone();
    let base_tick = Merger::base_tick(&views);
    let out_dir = a.out.clone();
    let mut merger = Merger::new(workers, views);
    let top = a.top.min(64);
    let (tx, rx) = sync_channel::<WorkerMsg>(256);
    let t0 = Instant::now();

    // Output threads: the merger folds worker deltas into the views and the summary; the writer
    // serializes flow records and hands snapshots to two snapshot writers. They overlap, so
    // views cost the workers nothing and the merger never waits for the disk.
    let (otx, orx) = sync_channel::<Output>(8);
    type Inserted = Option<(
        netspectra_clickhouse::Target,
        netspectra_clickhouse::SinkStats,
    )>;
    let writer = std::thread::spawn(move || -> Result<(u64, Option<ExportStats>, Inserted)> {
        // Snapshot files are independent of each other and of the record file: two threads
        // take them from one queue (per file, not per packet), so the final flush (every live
        // flow's record plus every view's rows) uses both cores.
        let (stx, srx) = sync_channel::<Snapshot>(4);
        let srx = std::sync::Arc::new(std::sync::Mutex::new(srx));
        let snapshots: Vec<_> = (0..2)
            .map(|_| {
                let srx = std::sync::Arc::clone(&srx);
                let out_dir = out_dir.clone();
                std::thread::spawn(move || -> Result<()> {
                    let mut err = None;
                    loop {
                        let next = srx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(snap) = next else { break };
                        // After an error, keep draining so that the sender never blocks.
                        if let (Some(dir), None) = (&out_dir, &err) {
                            if let Err(e) = write_snapshot(dir, format, &snap) {
                                err = Some(e);
                            }
                        }
                    }
                    err.map_or(Ok(()), Err)
                })
            })
            .collect();
        let mut err: Option<anyhow::Error> = None;
        // With a ClickHouse sink, wake up twice per batch age even when nothing arrives, so
        // that rows gathered in a quiet live capture are inserted about that soon.
        let wake = netspectra_clickhouse::BATCH_AGE / 2;
        loop {
            let o = if clickhouse.is_some() {
                match orx.recv_timeout(wake) {
                    Ok(o) => Some(o),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match orx.recv() {
                    Ok(o) => Some(o),
                    Err(_) => break,
                }
            };
            match o {
                None => {}
                // Snapshot writers drain until the queue closes; errors are reported below.
                Some(Output::Snapshot(snap)) => {
                    let _ = stx.send(snap);
                    if let Some(m) = &writer_metrics {
                        m.snapshots_written.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Output::Ended(flows)) => {
                    if let (Some(w), None) = (&mut records, &err) {
                        if let Err(e) = write_records(w, &flows) {
                            err = Some(e);
                        }
                    }
                    // A batch's records are sent whole (partial last message included): in
                    // a live capture no record waits for the next batch of ended flows.
                    if let Some(x) = &mut exporter {
                        x.export(&flows);
                        x.flush();
                    }
                    if let (Some(ch), None) = (&mut clickhouse, &err) {
                        ch.add(&flows);
                    }
                    if let Some(m) = &writer_metrics {
                        if let Some(w) = &records {
                            m.records_written.store(w.records(), Ordering::Relaxed);
                        }
                        if let Some(x) = &exporter {
                            let st = x.stats();
                            m.ipfix_messages.store(st.messages, Ordering::Relaxed);
                            m.ipfix_records.store(st.records, Ordering::Relaxed);
                            m.ipfix_send_errors.store(st.send_errors, Ordering::Relaxed);
                        }
                    }
                }
            }
            // Inserts gather batches (up to 16 MiB or 1 s); a refused insert stops the export
            // (reported), never drops rows silently.
            if let (Some(ch), None) = (&mut clickhouse, &err) {
                if let Err(e) = ch.maybe_flush() {
                    err = Some(anyhow::Error::new(e).context("inserting flow records"));
                }
                if let Some(m) = &writer_metrics {
                    m.clickhouse_rows.store(ch.stats().rows, Ordering::Relaxed);
                }
            }
        }
        drop(stx);
        let snap_result = snapshots
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Result<Vec<()>>>();
        let exported = exporter.as_mut().map(|x| {
            x.flush();
            x.stats()
        });
        if let (Some(ch), None) = (&mut clickhouse, &err) {
            if let Err(e) = ch.flush() {
                err = Some(anyhow::Error::new(e).context("inserting flow records"));
            }
        }
        let inserted = clickhouse.as_ref().map(|c| (c.target().clone(), c.stats()));
        let written = match records.take() {
            Some(w) => w.finish().context("writing flow records")?,
            None => 0,
        };
        match err {
            Some(e) => Err(e),
            None => snap_result.map(|_| (written, exported, inserted)),
        }
    });
    let merger_thread = std::thread::spawn(move || -> Summary {
        for msg in rx {
            merger.handle(msg, &mut |o| {
                // The writer only stops early after an output error, which it reports.
                let _ = otx.send(o);
            });
        }
        merger.summary(top)
    });

    let make = |i: usize| {
        let tx: SyncSender<WorkerMsg> = tx.clone();
        FlowsAnalysis {
            worker: FlowWorker::new(
                i,
                table_cfg.clone(),
                Box::new(move |m| {
                    // The writer only goes away after an output error, reported below.
                    let _ = tx.send(m);
                }),
            ),
            filter: None,
            metrics: metrics.as_ref().map(|m| (Arc::clone(m), i)),
        }
    };
    let ecfg = EngineConfig {
        workers,
        tick_ns: base_tick,
        queue_depth: 4,
    };
    let mut stats = SourceStats::default();
    let mut warnings = Vec::new();
    let mut stopped = false;
    let run_result: Result<()> = (|| {
        if let Some(iface) = &a.interface {
            let mut lc = LiveConfig::new(iface);
            lc.threads = workers;
            lc.filter = filter.map(str::to_string);
            let (sources, _stop) = crate::live::open(&mut lc)?;
            if let Some(m) = &metrics {
                m.live.set(iface, &sources);
            }
            if !a.quiet {
                crate::live::announce("flows", iface, workers);
            }
            let never = AtomicBool::new(false);
            // The kernel filter already applied; ticks follow the wall clock.
            let out = run_live(sources, &ecfg, &never, make);
            stats = out.stats;
            stopped = true;
            for w in out.analyses {
                w.worker.finish();
            }
            if let Some(e) = out.error {
                return Err(anyhow::Error::new(e).context(format!("capturing on {iface}")));
            }
            return Ok(());
        }
        let file = input.clone().unwrap_or_default();
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))
                .context("installing signal handlers")?;
        }
        let mut reader =
            CaptureReader::open(&file).with_context(|| format!("opening {}", file.display()))?;
        let bar = progress_bar(reader.total_size(), !a.quiet);
        let mut progress = |st: &SourceStats| {
            if let Some(b) = &bar {
                b.set_position(st.input_offset);
            }
        };
        let make_filtered = |i: usize| {
            let mut w = make(i);
            w.filter = filter.map(FileFilter::new);
            w
        };
        let out = run_file(&mut reader, &ecfg, &stop, make_filtered, &mut progress);
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        stats = out.stats;
        stopped = out.stopped;
        // Whatever happened, flush what was aggregated so far.
        for w in out.analyses {
            w.worker.finish();
        }
        for w in reader.warnings() {
            warnings.push(format!("{}: {w}", file.display()));
        }
        if let Some(e) = out.error {
            return Err(anyhow::Error::new(e).context(format!("reading {}", file.display())));
        }
        Ok(())
    })();
    drop(tx);
    let summary = merger_thread
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    let (written, exported, inserted) = writer
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    let secs = t0.elapsed().as_secs_f64();
    if let Some(x) = &exported {
        if x.send_errors > 0 {
            warnings.push(format!(
                "IPFIX export to {}: {} of {} datagrams not sent ({} records; last error: {})",
                a.export.as_deref().unwrap_or_default(),
                x.send_errors,
                x.send_errors + x.messages,
                x.records_lost,
                x.last_error.map_or_else(String::new, io_kind),
            ));
        }
    }
    let text = if a.json {
        let mut v = serde_json::to_value(&summary)?;
        v["input_packets"] = stats.packets.into();
        v["input_bytes"] = stats.bytes.into();
        v["records_written"] = written.into();
        if let Some(x) = &exported {
            v["ipfix"] = serde_json::json!({
                "collector": a.export,
                "messages": x.messages,
                "records": x.records,
                "bytes": x.bytes,
                "send_errors": x.send_errors,
                "records_lost": x.records_lost,
            });
        }
        if let Some((t, c)) = &inserted {
            v["clickhouse"] = serde_json::json!({
                "server": t.host,
                "table": format!("{}.{}", t.database, t.table),
                "rows": c.rows,
                "inserts": c.inserts,
                "bytes": c.bytes,
            });
        }
        v["seconds"] = secs.into();
        v["stopped"] = stopped.into();
        v["warnings"] = warnings.clone().into();
        serde_json::to_string(&v)?
    } else {
        let export = a.export.as_deref().zip(exported.as_ref());
        let mut text = render(&summary, &stats, written, secs, a.top, export, &warnings);
        if let Some((t, c)) = &inserted {
            text.push_str(&format!(
                "\nClickHouse {}.{} at {}: {} rows in {} inserts ({})",
                t.database,
                t.table,
                t.host,
                c.rows,
                c.inserts,
                human(c.bytes)
            ));
        }
        text
    };
    if to_stdout {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    run_result?;
    Ok(ExitCode::SUCCESS)
}

/// Opens the IPFIX exporter of `--export URL` (a bad URL is bad input, naming the flag).
fn open_exporter(url: &str, domain: u32, rate: Option<u32>) -> Result<IpfixExporter> {
    let peer = netspectra_ipfix::resolve_collector(url).map_err(|e| match e {
        // --export also takes ClickHouse URLs, which the IPFIX crate does not know about.
        IpfixError::Scheme(s) => BadInput(format!(
            "--export {url:?}: unsupported scheme {s:?} (use ipfix://HOST:PORT, \
             ipfix+udp://HOST:PORT or clickhouse://HOST[:PORT]/[DB.]TABLE)"
        )),
        e => BadInput(format!("--export {url:?}: {e}")),
    })?;
    if rate == Some(0) {
        return Err(BadInput("--export-rate must be at least 1".into()).into());
    }
    let cfg = ExporterConfig {
        encoder: EncoderConfig {
            observation_domain: domain,
            ..EncoderConfig::default()
        },
        max_rate: rate,
    };
    IpfixExporter::connect(peer, cfg).with_context(|| format!("--export {url}"))
}

/// An I/O error kind as words ("connection refused").
fn io_kind(k: std::io::ErrorKind) -> String {
    std::io::Error::from(k).to_string()
}

fn progress_bar(total: Option<u64>, enabled: bool) -> Option<indicatif::ProgressBar> {
    let total = total?;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(total);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .ok()?,
    );
    Some(b)
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => format!("ip-proto-{n}"),
    }
}

fn human(n: u64) -> String {
    let f = n as f64;
    if f >= 1e9 {
        format!("{:.2} GB", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2} MB", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1} kB", f / 1e3)
    } else {
        format!("{n} B")
    }
}

/// The human-readable summary.
fn render(
    s: &Summary,
    st: &SourceStats,
    written: u64,
    secs: f64,
    top: usize,
    export: Option<(&str, &ExportStats)>,
    warnings: &[String],
) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let t = &s.table;
    let rate = if secs > 0.0 {
        st.packets as f64 / secs
    } else {
        0.0
    };
    let _ = writeln!(
        o,
        "Flows: {} packets ({}) in {secs:.2} s ({:.2} Mpps)",
        st.packets,
        human(st.bytes),
        rate / 1e6
    );
    let _ = writeln!(
        o,
        "  {} flow records ({} written), {} packets in flows, {} not flow-able \
         (no IP {}, transport header missing {}, orphan fragments {})",
        s.flows,
        written,
        t.flow_packets,
        t.not_flowable(),
        t.no_ip,
        t.l4_missing,
        t.orphan_fragments
    );
    let ends: Vec<String> = EndReason::ALL
        .iter()
        .zip(t.ended.iter())
        .filter(|(_, &n)| n > 0)
        .map(|(r, n)| format!("{} {n}", r.name()))
        .collect();
    let _ = writeln!(o, "  ended: {}", ends.join(", "));
    let _ = writeln!(
        o,
        "  peak live flows {} (table memory at end {}), fragments attributed {}, decode: \
         truncated {}, malformed {}, undecoded {}; {} snapshots",
        t.peak_live,
        human(s.table_bytes as u64),
        t.fragments_attributed,
        s.decode.truncated,
        s.decode.malformed,
        s.decode.undecoded,
        s.snapshots
    );
    if let Some((url, x)) = export {
        let _ = writeln!(
            o,
            "  IPFIX export to {url}: {} messages, {} records, {} sent, {} send errors",
            x.messages,
            x.records,
            human(x.bytes),
            x.send_errors
        );
    }
    let _ = writeln!(o, "\nBy protocol:          flows      packets        bytes");
    for (p, v) in &s.by_proto {
        let _ = writeln!(
            o,
            "  {:<12} {:>12} {:>12} {:>12}",
            proto_name(*p),
            v[0],
            v[1],
            v[2]
        );
    }
    let _ = writeln!(
        o,
        "\nTop talkers (bytes sent + received; estimates, at most +{} over):",
        s.top_max_overestimate
    );
    for (a, b) in s.top_talkers.iter().take(top) {
        let _ = writeln!(o, "  {:<40} {:>12}", a.to_string(), human(*b));
    }
    let _ = writeln!(o, "\nTop conversations (address pairs, bytes):");
    for (a, b, n) in s.top_conversations.iter().take(top) {
        let _ = writeln!(o, "  {:<40} {:>12}", format!("{a} <-> {b}"), human(*n));
    }
    for w in warnings {
        let _ = writeln!(o, "warning: {w}");
    }
    o.trim_end().to_string()
}
