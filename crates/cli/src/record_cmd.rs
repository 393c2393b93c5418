//! The front end the record commands share (`http`, `tls`, `dns`): inputs (capture files or a
//! live interface), a tcpdump filter, one record output with its format and field selection,
//! worker threads, the end-of-run summary and a metrics endpoint. Each command adds only its
//! analysis settings and the text of its summary.

use crate::exit::BadInput;
use crate::record_format::RecordFormatArg;
use crate::stdout::outln;
use crate::stop::Stop;
use anyhow::Result;
use clap::{Args, ValueEnum};
use netspectra_capture::LiveConfig;
use netspectra_engine::MAX_THREADS;
use netspectra_http::summary::LatencySummary;
use netspectra_packet::SourceError;
use netspectra_pcap::CaptureReader;
use netspectra_pipeline::analysis::AnalysisReport;
use netspectra_pipeline::{AnalysisSet, Pipeline};
use netspectra_sinks::delivery::{DeliveryConfig, SinkRunner, WhenFull};
use netspectra_sinks::file_sink::{FileSink, FileSinkConfig, Rotation};
use netspectra_sinks::outputs::OutputPlan;
use netspectra_sinks::sink::Routes;
use netspectra_sinks::stream::StreamKind;
use netspectra_sinks::RecordFormat;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// How the end-of-run summary is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SummaryArg {
    /// Human-readable text.
    Text,
    /// One JSON object.
    Json,
    /// No summary.
    None,
}

/// The options every record command takes.
#[derive(Args)]
pub struct RecordArgs {
    /// Capture files (pcap, pcapng, optionally gzip-compressed); `-` reads standard input.
    #[arg(
        required_unless_present_any = ["interface", "list_fields"],
        conflicts_with = "interface"
    )]
    pub files: Vec<PathBuf>,
    /// Capture live from this interface (AF_PACKET ring) until SIGINT/SIGTERM.
    #[arg(short = 'i', long = "interface")]
    pub interface: Option<String>,
    /// tcpdump filter expression (libpcap syntax): in the kernel for `-i`, in user space for files.
    #[arg(short = 'f', long = "filter")]
    pub filter: Option<String>,
    /// Record output file; `-` (default) is standard output.
    #[arg(short = 'o', long = "output", default_value = "-")]
    pub output: PathBuf,
    /// Record format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: RecordFormatArg,
    /// Columns (CSV/TSV/Parquet) or keys (JSON) to write, comma-separated record field
    /// names; `--list-fields` shows them.
    #[arg(short = 'F', long = "fields", value_delimiter = ',')]
    pub fields: Option<Vec<String>>,
    /// Print the available field names and exit.
    #[arg(long)]
    pub list_fields: bool,
    /// Worker threads (shared-nothing; connections are partitioned by address pair).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Summary format (printed on stderr when records go to stdout, else on stdout).
    #[arg(long, value_enum, default_value = "text")]
    pub summary: SummaryArg,
    /// Entries in each of the summary's top lists.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// No progress display.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Serve Prometheus metrics (records made; with -i, the capture's counters) on this
    /// address, e.g. 127.0.0.1:9464, at GET /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
}

/// The run's totals, for every command's summary.
pub struct Totals<'a> {
    /// Records written.
    pub records: u64,
    /// Packets read.
    pub packets: u64,
    /// Bytes on the wire of the packets read.
    pub bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Interrupted before the end of the input.
    pub stopped: bool,
    /// Reader warnings.
    pub warnings: &'a [String],
}

impl Totals<'_> {
    /// Adds the totals to a command's JSON summary object.
    fn add_to(&self, v: &mut serde_json::Value) {
        v["records"] = self.records.into();
        v["packets"] = self.packets.into();
        v["bytes"] = self.bytes.into();
        v["seconds"] = self.seconds.into();
        v["stopped"] = self.stopped.into();
        v["warnings"] = self.warnings.to_vec().into();
    }

    /// The first line of a text summary: `<what> summary: packets, bytes, rates`.
    pub fn headline(&self, what: &str) -> String {
        let rate = |n: f64| {
            if self.seconds > 0.0 {
                n / self.seconds
            } else {
                0.0
            }
        };
        format!(
            "{what} summary: {} packets, {:.1} MB in {:.2} s ({:.0} MB/s, {:.2} Mpps)",
            self.packets,
            self.bytes as f64 / 1e6,
            self.seconds,
            rate(self.bytes as f64) / 1e6,
            rate(self.packets as f64) / 1e6
        )
    }
}

/// A command's summary in both forms: a JSON object (the totals are added to it) and text.
pub trait CommandSummary {
    /// The summary as a JSON object.
    fn json(&self, r: &AnalysisReport, top: usize) -> Result<serde_json::Value>;
    /// The summary as text.
    fn text(&self, r: &AnalysisReport, top: usize, t: &Totals<'_>) -> String;
}

/// What a record command adds to the shared front end.
pub struct RecordCommand<'a> {
    /// The command's name (progress and live announcements, metrics).
    pub name: &'static str,
    /// The stream it writes.
    pub kind: StreamKind,
    /// The analysis it runs (already validated).
    pub set: AnalysisSet,
    /// The field selection (already mapped to record field names).
    pub fields: Option<Vec<String>>,
    /// Its summary.
    pub summary: &'a dyn CommandSummary,
}

/// Checks the shared options that need no input: threads, top-list length, Parquet.
pub fn check_args(a: &RecordArgs) -> Result<()> {
    if a.threads == 0 || a.threads > MAX_THREADS {
        return Err(BadInput(format!("--threads must be 1..={MAX_THREADS}")).into());
    }
    if a.top > 1000 {
        return Err(BadInput("--top must be 0..=1000 (0: no top lists)".into()).into());
    }
    if RecordFormat::from(a.format) == RecordFormat::Parquet && !netspectra_sinks::parquet_enabled()
    {
        return Err(BadInput(netspectra_sinks::SinkError::ParquetDisabled.to_string()).into());
    }
    Ok(())
}

/// Resolves `-F`: each name through `known` (which maps aliases and says whether the name is
/// a field); without `-F`, table formats get every field of `all` but `skip` (fixed columns,
/// so every row has the same shape whatever the first record), JSON lines every field.
pub fn select_fields(
    a: &RecordArgs,
    all: &[&str],
    skip: &[&str],
    known: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Vec<String>>> {
    let format = RecordFormat::from(a.format);
    match &a.fields {
        Some(f) => f
            .iter()
            .map(|x| {
                known(x.trim()).ok_or_else(|| {
                    BadInput(format!(
                        "unknown field '{}' (available: {})",
                        x.trim(),
                        all.join(",")
                    ))
                    .into()
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        None if matches!(
            format,
            RecordFormat::Csv | RecordFormat::Tsv | RecordFormat::Parquet
        ) =>
        {
            Ok(Some(
                all.iter()
                    .filter(|f| !skip.contains(f))
                    .map(|f| f.to_string())
                    .collect(),
            ))
        }
        None => Ok(None),
    }
}

/// The common start of a record command: `--list-fields` prints `all` and ends the command
/// (`Ok(None)`); otherwise the shared options are checked and `-F` resolved (see
/// [`select_fields`]).
pub fn start(
    a: &RecordArgs,
    all: &[&str],
    skip: &[&str],
    known: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Option<Vec<String>>>> {
    if a.list_fields {
        outln!("{}", all.join("\n"));
        return Ok(None);
    }
    check_args(a)?;
    select_fields(a, all, skip, known).map(Some)
}

/// Field lookup for records without aliases: the name itself when it is one of `all`.
pub fn plain_fields(all: &'static [&'static str]) -> impl Fn(&str) -> Option<String> {
    move |f| all.contains(&f).then(|| f.to_string())
}

/// Runs a record command: checks every input before anything is written, runs the pipeline
/// over the files or the interface into one record output (complete under its name only at
/// the end), prints the summary, and turns errors and interruptions into exit codes.
pub fn run(a: &RecordArgs, cmd: RecordCommand<'_>) -> Result<ExitCode> {
    check_args(a)?;
    let format = RecordFormat::from(a.format);
    let filter = crate::live::user_filter(a.filter.as_deref())?;
    let mut plan = OutputPlan::new();
    for f in &a.files {
        plan.input(f);
    }
    plan.output(&a.output)
        .map_err(|e| BadInput(format!("-o: {e}")))?;
    let stop = Stop::new();
    let mut pipeline = Pipeline::new(cmd.set, a.threads, filter.map(str::to_string));
    let metrics = pipeline.metrics();
    let live_counters = Arc::new(crate::metrics::LiveCounters::default());
    let live_render = Arc::clone(&live_counters);
    let _metrics_server = match &a.metrics {
        Some(addr) => Some(crate::metrics::serve(cmd.name, addr, a.quiet, move |e| {
            metrics.render(e);
            live_render.render(e);
        })?),
        None => None,
    };
    // Every input is checked before anything is written: a missing or unreadable file is
    // reported alone, without a summary of zero packets and without touching an older output.
    // (After the metrics endpoint: reading a pipe's header waits for its writer.)
    let mut first_reader = None;
    for (i, f) in a.files.iter().enumerate() {
        if i == 0 {
            first_reader = Some(CaptureReader::open(f)?);
        } else if f.as_os_str() != "-" {
            std::fs::File::open(f).map_err(|e| SourceError::Io {
                context: format!("{}: cannot open", f.display()),
                source: e,
            })?;
        }
    }
    // The output last; it appears under its name only when complete.
    let fcfg = FileSinkConfig {
        dir: None,
        paths: vec![(cmd.kind, a.output.clone())],
        format,
        fields: cmd.fields.map(|f| vec![(cmd.kind, f)]).unwrap_or_default(),
        rotation: Rotation::default(),
        routes: Routes::kinds(&[cmd.kind]),
        keep_going: false,
    };
    let sink = FileSink::new(fcfg, &a.files);
    let dcfg = DeliveryConfig {
        when_full: WhenFull::Block,
        memory_batches: 16,
        fail_fast: true,
        on_failure: Some(stop.handle().shared()),
        ..DeliveryConfig::default()
    };
    pipeline.add_sink(SinkRunner::start(Box::new(sink), &Routes::all(), dcfg)?);
    let t0 = Instant::now();
    let to_stdout = a.output.as_os_str() == "-";
    let report = if let Some(iface) = &a.interface {
        let mut lc = LiveConfig::new(iface);
        lc.threads = a.threads;
        lc.filter = filter.map(str::to_string);
        let sources = crate::live::open(&mut lc, &stop)?;
        // Handlers only now: a signal during the filter compilation ends the process.
        stop.arm()?;
        live_counters.set(iface, &sources);
        if !a.quiet {
            crate::live::announce(cmd.name, iface, a.threads);
        }
        pipeline.run_live(sources)
    } else {
        stop.arm()?;
        let show = !a.quiet && std::io::stderr().is_terminal();
        let mut last = Instant::now();
        let mut progress = |file: &PathBuf, st: &netspectra_packet::SourceStats| {
            if show && last.elapsed().as_millis() >= 250 {
                last = Instant::now();
                eprint!("\r{}: {} packets", file.display(), st.packets);
            }
        };
        let r = pipeline.run_files(
            &a.files,
            &mut |f| match first_reader.take() {
                Some(r) => Ok(r),
                None => CaptureReader::open(f),
            },
            &stop.handle().shared(),
            &mut progress,
        );
        if show {
            eprint!("\r\x1b[K");
        }
        r
    };
    let elapsed = t0.elapsed().as_secs_f64();
    let (mut written, mut kept_partial, mut failure) = (0, None, None);
    for (rep, closed) in &report.sinks {
        written += rep
            .delivered_by_stream
            .get(cmd.kind.name())
            .copied()
            .unwrap_or(0);
        match closed {
            Ok(c) => {
                kept_partial = c
                    .files
                    .iter()
                    .find(|p| p.to_string_lossy().ends_with(".partial"))
                    .cloned()
            }
            Err(e) => failure = Some(e.to_string()),
        }
        if let Some(f) = &rep.failure {
            failure.get_or_insert(f.clone());
        }
    }
    if let Some(f) = failure {
        if crate::stdout::is_closed_pipe_message(&f) {
            crate::stdout::closed();
        }
        return Err(anyhow::anyhow!("{f}"));
    }
    let interrupted = report.stopped && a.interface.is_none();
    if a.summary != SummaryArg::None {
        let totals = Totals {
            records: written,
            packets: report.stats.packets,
            bytes: report.stats.bytes,
            seconds: elapsed,
            stopped: interrupted,
            warnings: &report.warnings,
        };
        let text = if a.summary == SummaryArg::Json {
            let mut v = cmd.summary.json(&report.analyses, a.top)?;
            totals.add_to(&mut v);
            serde_json::to_string(&v)?
        } else {
            let mut t = cmd.summary.text(&report.analyses, a.top, &totals);
            for w in &report.warnings {
                t.push_str(&format!("\n  warning: {w}"));
            }
            t
        };
        if to_stdout {
            eprintln!("{text}");
        } else {
            outln!("{text}");
        }
    }
    if let Some(e) = report.error {
        // Everything before the bad spot was extracted and written: say where.
        return Err(crate::exit::input_failure(
            e,
            report.error_input.as_deref(),
            a.interface.as_deref(),
            kept_partial.as_deref(),
            "records",
        ));
    }
    if interrupted {
        let detail = match &kept_partial {
            Some(p) => format!(
                "the records of the packets read until then are in {}",
                p.display()
            ),
            None => "the output holds the records of the packets read until then".to_string(),
        };
        return Err(stop.interrupted(detail).into());
    }
    Ok(ExitCode::SUCCESS)
}

/// `key count` pairs joined by commas (`none` when empty).
pub fn list<'a>(m: impl IntoIterator<Item = (&'a String, &'a u64)>) -> String {
    let s = m
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    if s.is_empty() {
        "none".into()
    } else {
        s
    }
}

/// A latency in microseconds as milliseconds (`-` when unknown).
pub fn ms(v: Option<u64>) -> String {
    v.map_or("-".to_string(), |v| format!("{:.3} ms", v as f64 / 1000.0))
}

/// Appends a summary's latency line: `  LABEL: p50 …, p90 …, p99 …, max … (COUNT WHAT)`.
pub fn latency_line(o: &mut String, label: &str, l: &LatencySummary, what: &str) {
    use std::fmt::Write;
    let _ = writeln!(
        o,
        "  {label}: p50 {}, p90 {}, p99 {}, max {} ({} {what})",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.max),
        l.count
    );
}

/// Appends a top list, one `count  key` line each, under `title`.
pub fn top_list(o: &mut String, title: &str, v: &[(String, u64)]) {
    use std::fmt::Write;
    let _ = writeln!(o, "  {title}:");
    for (k, n) in v {
        let _ = writeln!(o, "    {n:>10}  {k}");
    }
}
