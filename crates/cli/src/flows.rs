//! `netspectra flows`: flow records, config-driven views with per-view snapshot cadences, and a
//! summary with top talkers and conversations (like softflowd/argus records plus
//! `tshark -z conv`).
//!
//! A thin front-end of the pipeline (`netspectra_pipeline`): workers own one flow table each
//! (shared nothing), the merge thread folds their deltas into the views and the summary, and
//! every output (the records file, view snapshots, IPFIX, ClickHouse) is a sink on its own
//! thread.

use crate::exit::BadInput;
use crate::record_format::RecordFormatArg;
use crate::stdout::outln;
use crate::stop::Stop;
use anyhow::{Context, Result};
use clap::Args;
use netspectra_capture::LiveConfig;
use netspectra_clickhouse::{ClickHouseSink, SinkOptions};
use netspectra_flow::config::{default_views, parse_duration, DEFAULT_INTERVAL};
use netspectra_flow::{EndReason, FileConfig, Summary, TableConfig, ViewSpec};
use netspectra_ipfix::sink::IpfixSink;
use netspectra_ipfix::{EncoderConfig, ExportStats, ExporterConfig, IpfixError, IpfixExporter};
use netspectra_metrics::Exposition;
use netspectra_packet::SourceStats;
use netspectra_pcap::CaptureReader;
use netspectra_pipeline::{AnalysisSet, FlowsSetup, Pipeline, RunReport};
use netspectra_sinks::delivery::{DeliveryConfig, SinkRunner, WhenFull};
use netspectra_sinks::file_sink::{FileSink, FileSinkConfig, Rotation};
use netspectra_sinks::outputs::OutputPlan;
use netspectra_sinks::sink::Routes;
use netspectra_sinks::stream::StreamKind;
use netspectra_sinks::RecordFormat;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

fn dur(s: &str) -> Result<i64, String> {
    parse_duration(s)
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

/// Checks that no output of the run is one of its inputs or another output: `-o DIR` is not
/// an input tree or a file, and `--records` does not name the input or a view file under DIR.
fn plan_outputs(
    input: Option<&Path>,
    out: Option<&Path>,
    records: Option<&Path>,
    views: &[ViewSpec],
    format: RecordFormat,
) -> Result<()> {
    let mut plan = OutputPlan::new();
    if let Some(i) = input {
        plan.input(i);
    }
    if let Some(d) = out {
        plan.output_dir(d)
            .map_err(|e| BadInput(format!("-o: {e}")))?;
    }
    if let Some(r) = records {
        plan.output(r)
            .map_err(|e| BadInput(format!("--records: {e}")))?;
        // View snapshots go to DIR/<interval start>/<view>.<ext>: a records file there would
        // be replaced by (or replace) a snapshot.
        if let (Some(d), Some(name)) = (out, r.file_name().and_then(|n| n.to_str())) {
            let inside = r
                .parent()
                .and_then(|p| p.parent())
                .is_some_and(|gp| same_dir(gp, d));
            let is_view = views
                .iter()
                .any(|v| name == format!("{}.{}", v.name, format.extension()));
            if inside && is_view {
                return Err(BadInput(format!(
                    "--records {}: that is where a snapshot of view {name:?} is written; choose \
                     another name",
                    r.display()
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// True when two directory spellings name the same place (both need not exist yet).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Runs `netspectra flows`.
pub fn run(a: FlowsArgs) -> Result<ExitCode> {
    let input = a.file.clone().or_else(|| a.read.clone());
    if input.is_none() && a.interface.is_none() {
        return Err(
            BadInput("give a capture file (-r FILE) or an interface (-i IFACE)".into()).into(),
        );
    }
    if a.export_rate == Some(0) {
        return Err(BadInput("--export-rate must be at least 1".into()).into());
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
    plan_outputs(
        input.as_deref(),
        a.out.as_deref(),
        records_path.as_deref(),
        &views,
        format,
    )?;
    let to_stdout = records_path
        .as_deref()
        .is_some_and(|p| p.as_os_str() == "-");
    let stop = Stop::new();
    // Sinks: each on its own thread (a slow or failing one never holds up the others); files
    // of a one-shot run wait for room rather than drop anything.
    let file_cfg = DeliveryConfig {
        when_full: WhenFull::Block,
        memory_batches: 16,
        fail_fast: true,
        on_failure: Some(stop.handle().shared()),
        ..DeliveryConfig::default()
    };
    let mut runners = Vec::new();
    let mut ipfix_stats = None;
    let mut clickhouse = None;
    match a.export.as_deref() {
        Some(url) if url.starts_with("clickhouse://") => {
            // A bad URL is the user's input (exit 2); a server that fails is not.
            let t = netspectra_clickhouse::parse_url(url)
                .map_err(|e| BadInput(format!("--export: {e}")))?;
            let opts = SinkOptions {
                database: t.database.clone(),
                flows_table: Some(t.table.clone()),
                routes: Routes::kinds(&[StreamKind::Flows]),
                probe: None,
            };
            let sink = ClickHouseSink::connect(&t.host, opts)
                .map_err(|e| anyhow::Error::new(e).context(format!("--export {url}")))?;
            clickhouse = Some((t, sink.stats()));
            let cfg = DeliveryConfig {
                when_full: WhenFull::Block,
                // A one-shot run reports a server that stays down instead of waiting forever.
                give_up_after: Some(Duration::from_secs(30)),
                ..DeliveryConfig::default()
            };
            runners.push(SinkRunner::start(Box::new(sink), &Routes::all(), cfg)?);
        }
        Some(url) => {
            let exporter = open_exporter(url, a.export_domain, a.export_rate)?;
            let (sink, stats) = IpfixSink::new(url, exporter);
            ipfix_stats = Some(stats);
            let cfg = DeliveryConfig {
                when_full: WhenFull::Block,
                ..DeliveryConfig::default()
            };
            runners.push(SinkRunner::start(Box::new(sink), &Routes::all(), cfg)?);
        }
        None => {}
    }
    let set = AnalysisSet {
        flows: Some(FlowsSetup {
            table: table_cfg,
            views,
            top: a.top,
        }),
        ..AnalysisSet::default()
    };
    let workers = a.threads;
    let mut pipeline = Pipeline::new(set, workers, filter.map(str::to_string));
    let metrics = pipeline.metrics();
    let live_counters = Arc::new(crate::metrics::LiveCounters::default());
    let extra = FlowsExtra {
        ipfix: ipfix_stats.clone(),
        clickhouse: clickhouse.as_ref().map(|(_, s)| Arc::clone(s)),
        live: Arc::clone(&live_counters),
    };
    let _metrics_server = match &a.metrics {
        Some(addr) => Some(crate::metrics::serve("flows", addr, a.quiet, move |e| {
            metrics.render(e);
            extra.render(e);
        })?),
        None => None,
    };
    // Open the input before anything is written: a missing or unreadable file is reported
    // alone, with no summary and no output touched. (After the metrics endpoint: reading a
    // pipe's header waits for its writer, who may be waiting for the endpoint.)
    let mut reader = match (&input, &a.interface) {
        (Some(file), None) => Some(CaptureReader::open(file)?),
        _ => None,
    };
    // Outputs last: every check above can fail without touching an older result. Files
    // appear under their names only when complete.
    let mut file_sink = None;
    if records_path.is_some() || a.out.is_some() {
        let mut kinds = Vec::new();
        if records_path.is_some() {
            kinds.push(StreamKind::Flows);
        }
        if a.out.is_some() {
            kinds.push(StreamKind::View);
        }
        let fcfg = FileSinkConfig {
            dir: a.out.clone(),
            paths: records_path
                .iter()
                .map(|p| (StreamKind::Flows, p.clone()))
                .collect(),
            format,
            fields: Vec::new(),
            rotation: Rotation::default(),
            routes: Routes::kinds(&kinds),
            keep_going: false,
        };
        let inputs: Vec<PathBuf> = input.iter().cloned().collect();
        let sink = FileSink::new(fcfg, &inputs);
        file_sink = Some(netspectra_sinks::sink::Sink::name(&sink));
        runners.insert(
            0,
            SinkRunner::start(Box::new(sink), &Routes::all(), file_cfg)?,
        );
    }
    for r in runners {
        pipeline.add_sink(r);
    }
    let t0 = Instant::now();
    let report = if let Some(iface) = &a.interface {
        let mut lc = LiveConfig::new(iface);
        lc.threads = workers;
        lc.filter = filter.map(str::to_string);
        let sources = crate::live::open(&mut lc, &stop)?;
        // Handlers only now: a signal during the filter compilation ends the process.
        stop.arm()?;
        live_counters.set(iface, &sources);
        if !a.quiet {
            crate::live::announce("flows", iface, workers);
        }
        pipeline.run_live(sources)
    } else {
        let file = input.clone().unwrap_or_default();
        stop.arm()?;
        let bar = progress_bar(reader.as_ref().and_then(|r| r.total_size()), !a.quiet);
        let mut progress = |_: &PathBuf, st: &SourceStats| {
            if let Some(b) = &bar {
                b.set_position(st.input_offset);
            }
        };
        let r = pipeline.run_files(
            std::slice::from_ref(&file),
            &mut |_| Ok(reader.take().expect("the input was opened once")),
            &stop.handle().shared(),
            &mut progress,
        );
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        r
    };
    let secs = t0.elapsed().as_secs_f64();
    let outs = Outputs {
        file_sink,
        ipfix: ipfix_stats,
        clickhouse,
    };
    finish_report(&a, report, secs, &stop, to_stdout, outs)
}

/// What the run's outputs are, for the summary.
struct Outputs {
    /// The file sink's name (its records count as written).
    file_sink: Option<String>,
    ipfix: Option<Arc<Mutex<ExportStats>>>,
    clickhouse: Option<ClickHouseTarget>,
}

/// The `--metrics` figures beyond the pipeline's own: IPFIX and ClickHouse export counters and
/// the live capture's.
struct FlowsExtra {
    ipfix: Option<Arc<Mutex<ExportStats>>>,
    clickhouse: Option<Arc<netspectra_clickhouse::SinkStats>>,
    live: Arc<crate::metrics::LiveCounters>,
}

impl FlowsExtra {
    fn render(&self, e: &mut Exposition) {
        if let Some(x) = &self.ipfix {
            let st = *x.lock().unwrap_or_else(|p| p.into_inner());
            e.counter(
                "netspectra_flows_ipfix_messages_total",
                "IPFIX datagrams sent to the collector.",
                st.messages,
            );
            e.counter(
                "netspectra_flows_ipfix_records_total",
                "IPFIX data records sent to the collector.",
                st.records,
            );
            e.counter(
                "netspectra_flows_ipfix_send_errors_total",
                "IPFIX datagrams whose send failed.",
                st.send_errors,
            );
        }
        if let Some(c) = &self.clickhouse {
            e.counter(
                "netspectra_flows_clickhouse_rows_total",
                "Flow records inserted into ClickHouse.",
                c.rows.load(Ordering::Relaxed),
            );
        }
        self.live.render(e);
    }
}

type ClickHouseTarget = (
    netspectra_clickhouse::Target,
    Arc<netspectra_clickhouse::SinkStats>,
);

/// Prints the summary of a finished run and picks its outcome (errors after the summary,
/// interruption, success).
fn finish_report(
    a: &FlowsArgs,
    report: RunReport,
    secs: f64,
    stop: &Stop,
    to_stdout: bool,
    outs: Outputs,
) -> Result<ExitCode> {
    let Outputs {
        file_sink,
        ipfix,
        clickhouse,
    } = outs;
    let mut warnings = report.warnings.clone();
    let mut written = 0;
    let mut kept_partial = None;
    let mut sink_failure = None;
    for (rep, closed) in &report.sinks {
        if file_sink.as_deref() == Some(rep.sink.as_str()) {
            written += rep.delivered_by_stream.get("flows").copied().unwrap_or(0);
        }
        match closed {
            Ok(c) => {
                if let Some(p) = c
                    .files
                    .iter()
                    .find(|p| p.to_string_lossy().ends_with(".partial"))
                {
                    kept_partial.get_or_insert(p.clone());
                }
            }
            Err(e) => {
                sink_failure.get_or_insert(e.to_string());
            }
        }
        if let Some(f) = &rep.failure {
            sink_failure.get_or_insert(f.clone());
        } else if rep.dropped_refused > 0 || rep.dropped_full > 0 {
            sink_failure.get_or_insert(format!(
                "{}: {} records not delivered: {}",
                rep.sink,
                rep.dropped_refused + rep.dropped_full,
                rep.last_error.as_deref().unwrap_or("refused")
            ));
        }
    }
    if let Some(f) = sink_failure {
        if crate::stdout::is_closed_pipe_message(&f) {
            crate::stdout::closed();
        }
        // An output that could not be written (a full disk, a server that refused) is the
        // run's error: no summary claims success.
        return Err(anyhow::anyhow!("{f}"));
    }
    let exported = ipfix.map(|x| *x.lock().unwrap_or_else(|p| p.into_inner()));
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
    let summary = report.analyses.flows.clone().unwrap_or_default();
    let stats = report.stats;
    let stopped = report.stopped;
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
        if let Some((t, c)) = &clickhouse {
            v["clickhouse"] = serde_json::json!({
                "server": t.host,
                "table": format!("{}.{}", t.database, t.table),
                "rows": c.rows.load(Ordering::Relaxed),
                "inserts": c.inserts.load(Ordering::Relaxed),
                "bytes": c.bytes.load(Ordering::Relaxed),
            });
        }
        v["seconds"] = secs.into();
        v["stopped"] = stopped.into();
        v["warnings"] = warnings.clone().into();
        serde_json::to_string(&v)?
    } else {
        let export = a.export.as_deref().zip(exported.as_ref());
        let mut text = render(&summary, &stats, written, secs, a.top, export, &warnings);
        if let Some((t, c)) = &clickhouse {
            text.push_str(&format!(
                "\nClickHouse {}.{} at {}: {} rows in {} inserts ({})",
                t.database,
                t.table,
                t.host,
                c.rows.load(Ordering::Relaxed),
                c.inserts.load(Ordering::Relaxed),
                human(c.bytes.load(Ordering::Relaxed))
            ));
        }
        text
    };
    if to_stdout {
        eprintln!("{text}");
    } else {
        outln!("{text}");
    }
    if let Some(e) = report.error {
        // Everything before the bad spot was aggregated and written: say where.
        return Err(crate::exit::input_failure(
            e,
            report.error_input.as_deref(),
            a.interface.as_deref(),
            kept_partial.as_deref(),
            "flow records",
        ));
    }
    if stopped && a.interface.is_none() {
        let detail = match &kept_partial {
            Some(p) => format!(
                "the flow records of the packets read until then are in {}",
                p.display()
            ),
            None => "the output holds the packets read until then".to_string(),
        };
        return Err(stop.interrupted(detail).into());
    }
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
