//! `netspectra http`: HTTP/1.x request/response records (httpry / tshark `-Y http` / Zeek
//! http.log style) from capture files or a live interface, with a summary at the end.
//!
//! A thin front-end of the pipeline (`netspectra_pipeline`): workers (one per `--threads`)
//! each own an HTTP analyzer and share nothing; their records reach the file sink in batches.
//! Several files are read as one input (a connection may continue from one to the next).

use crate::exit::BadInput;
use crate::record_format::RecordFormatArg;
use crate::stdout::outln;
use crate::stop::Stop;
use anyhow::Result;
use clap::{Args, ValueEnum};
use netspectra_capture::LiveConfig;
use netspectra_engine::MAX_THREADS;
use netspectra_http::parse::ExtractOptions;
use netspectra_http::{HeaderSelect, HttpConfig, Stats, Summary, FIELDS};
use netspectra_packet::SourceError;
use netspectra_pcap::CaptureReader;
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
enum SummaryArg {
    /// Human-readable text.
    Text,
    /// One JSON object.
    Json,
    /// No summary.
    None,
}

/// Arguments of `netspectra http`.
#[derive(Args)]
pub struct HttpArgs {
    /// Capture files (pcap, pcapng, optionally gzip-compressed); `-` reads standard input.
    #[arg(required_unless_present = "interface", conflicts_with = "interface")]
    files: Vec<PathBuf>,
    /// Capture live from this interface (AF_PACKET ring) until SIGINT/SIGTERM.
    #[arg(short = 'i', long = "interface")]
    interface: Option<String>,
    /// tcpdump filter expression (libpcap syntax): in the kernel for `-i`, in user space for files.
    #[arg(short = 'f', long = "filter")]
    filter: Option<String>,
    /// Record output file; `-` (default) is standard output.
    #[arg(short = 'o', long = "output", default_value = "-")]
    output: PathBuf,
    /// Record format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: RecordFormatArg,
    /// Columns to write, comma-separated (record field names, or httpry names such as
    /// timestamp,source-ip,dest-ip,method,host,request-uri,status-code). `--list-fields` shows all.
    #[arg(short = 'F', long = "fields", value_delimiter = ',')]
    fields: Option<Vec<String>>,
    /// Print the available field names and exit.
    #[arg(long)]
    list_fields: bool,
    /// One record per transaction (request + response, Zeek http.log style).
    #[arg(long)]
    paired: bool,
    /// Worker threads (shared-nothing; connections are partitioned by address pair).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Extra headers to record in `headers`, comma-separated (case-insensitive).
    #[arg(long, value_delimiter = ',', conflicts_with = "all_headers")]
    headers: Option<Vec<String>>,
    /// Record every header in `headers`.
    #[arg(long)]
    all_headers: bool,
    /// Headers whose values are replaced by their length, comma-separated; empty for none.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "authorization,cookie,set-cookie"
    )]
    redact: Vec<String>,
    /// Cap on header name length in bytes.
    #[arg(long, default_value_t = 256)]
    max_name_len: usize,
    /// Cap on header value (and URI) length in bytes.
    #[arg(long, default_value_t = 2048)]
    max_value_len: usize,
    /// Connections tracked per worker; the least recently active is evicted when full.
    #[arg(long, default_value_t = 65_536)]
    max_connections: usize,
    /// Reassembly buffer per direction for a header block split across segments, in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Pipelined requests waiting for responses per connection.
    #[arg(long, default_value_t = 64)]
    max_pipeline: usize,
    /// Seconds of inactivity after which a connection is flushed.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Do not parse User-Agent strings.
    #[arg(long)]
    no_ua: bool,
    /// Do not look inside tunnels. By default HTTP is also found in packets carried by GRE,
    /// ERSPAN, VXLAN, VXLAN-GPE, GENEVE, MPLS over UDP, PIM register and IP-in-IP tunnels
    /// (nested up to four deep), as tshark, Zeek and Suricata do.
    #[arg(long)]
    no_tunnels: bool,
    /// Look inside tunnels: the default (accepted for older command lines).
    #[arg(long, hide = true, conflicts_with = "no_tunnels")]
    tunnels: bool,
    /// Summary format (printed on stderr when records go to stdout, else on stdout).
    #[arg(long, value_enum, default_value = "text")]
    summary: SummaryArg,
    /// Entries in the summary's top hosts and User-Agents.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// No progress display.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Serve Prometheus metrics (records written; with -i, the capture's counters) on this
    /// address, e.g. 127.0.0.1:9464, at GET /metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

/// httpry's field names mapped to ours.
const HTTPRY_NAMES: &[(&str, &str)] = &[
    ("timestamp", "ts"),
    ("source-ip", "src_ip"),
    ("dest-ip", "dst_ip"),
    ("source-port", "src_port"),
    ("dest-port", "dst_port"),
    ("request-uri", "uri"),
    ("http-version", "version"),
    ("status-code", "status"),
    ("reason-phrase", "reason"),
    ("user-agent", "user_agent"),
    ("direction", "type"),
    ("content-type", "content_type"),
    ("content-length", "content_length"),
];

fn map_field(f: &str) -> Result<String> {
    let f = f.trim();
    let name = HTTPRY_NAMES
        .iter()
        .find(|(h, _)| h.eq_ignore_ascii_case(f))
        .map_or(f, |(_, ours)| *ours);
    if FIELDS.contains(&name) || name.starts_with("headers.") {
        Ok(name.to_string())
    } else {
        Err(BadInput(format!(
            "unknown field '{f}' (available: {})",
            FIELDS.join(",")
        ))
        .into())
    }
}

fn config(a: &HttpArgs) -> HttpConfig {
    HttpConfig {
        max_connections: a.max_connections,
        max_header_bytes: a.max_header_bytes,
        max_pipeline: a.max_pipeline,
        idle_timeout_ns: (a.idle_timeout.min(i64::MAX as u64 / 1_000_000_000) as i64)
            .saturating_mul(1_000_000_000),
        paired: a.paired,
        extract: ExtractOptions {
            extra: if a.all_headers {
                HeaderSelect::All
            } else {
                match &a.headers {
                    Some(h) if !h.is_empty() => HeaderSelect::List(
                        h.iter().map(|s| s.trim().to_ascii_lowercase()).collect(),
                    ),
                    _ => HeaderSelect::None,
                }
            },
            redact: a
                .redact
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            max_name: a.max_name_len,
            max_value: a.max_value_len,
        },
        parse_user_agent: !a.no_ua,
        decode_tunnels: a.tunnels || !a.no_tunnels,
        ..HttpConfig::default()
    }
}

/// Runs `netspectra http`.
pub fn run(a: HttpArgs) -> Result<ExitCode> {
    if a.list_fields {
        outln!("{}", FIELDS.join("\n"));
        return Ok(ExitCode::SUCCESS);
    }
    if a.threads == 0 || a.threads > MAX_THREADS {
        return Err(BadInput(format!("--threads must be 1..={MAX_THREADS}")).into());
    }
    let format = RecordFormat::from(a.format);
    let fields = match &a.fields {
        Some(f) => Some(f.iter().map(|x| map_field(x)).collect::<Result<Vec<_>>>()?),
        None if matches!(
            format,
            RecordFormat::Csv | RecordFormat::Tsv | RecordFormat::Parquet
        ) =>
        {
            // Fixed columns, so that every row has the same shape whatever the first record.
            Some(
                FIELDS
                    .iter()
                    // Both are maps or rarely set; `-F` selects them.
                    .filter(|f| **f != "headers" && **f != "lenient")
                    .map(|f| f.to_string())
                    .collect(),
            )
        }
        None => None,
    };
    let filter = crate::live::user_filter(a.filter.as_deref())?;
    let mut plan = OutputPlan::new();
    for f in &a.files {
        plan.input(f);
    }
    plan.output(&a.output)
        .map_err(|e| BadInput(format!("-o: {e}")))?;
    let cfg = config(&a);
    cfg.validate().map_err(|e| {
        // The library names its keys; here they are flags.
        let flag = match e.key {
            "idle_timeout" => "--idle-timeout (seconds)".to_string(),
            k => format!("--{}", k.replace('_', "-")),
        };
        BadInput(format!(
            "{flag} must be {}..={} (got {})",
            e.min, e.max, e.got
        ))
    })?;
    if a.top > 1000 {
        return Err(BadInput("--top must be 0..=1000 (0: no top lists)".into()).into());
    }
    if format == RecordFormat::Parquet && !netspectra_sinks::parquet_enabled() {
        return Err(BadInput(netspectra_sinks::SinkError::ParquetDisabled.to_string()).into());
    }
    let stop = Stop::new();
    let set = AnalysisSet {
        flows: None,
        http: Some(cfg),
        anonymize: None,
        ring: None,
    };
    let mut pipeline = Pipeline::new(set, a.threads, filter.map(str::to_string));
    let metrics = pipeline.metrics();
    let live_counters = Arc::new(crate::metrics::LiveCounters::default());
    let live_render = Arc::clone(&live_counters);
    let _metrics_server = match &a.metrics {
        Some(addr) => Some(crate::metrics::serve("http", addr, a.quiet, move |e| {
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
        paths: vec![(StreamKind::Http, a.output.clone())],
        format,
        http_fields: fields,
        rotation: Rotation::default(),
        routes: Routes::kinds(&[StreamKind::Http]),
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
            crate::live::announce("http", iface, a.threads);
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
        written += rep.delivered_by_stream.get("http").copied().unwrap_or(0);
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
        let total = report
            .analyses
            .http
            .clone()
            .unwrap_or_else(|| Stats::new(1));
        let summary = total.report(a.top);
        let (packets, bytes) = (report.stats.packets, report.stats.bytes);
        let text = if a.summary == SummaryArg::Json {
            let mut v = serde_json::to_value(&summary)?;
            v["records"] = written.into();
            v["packets"] = packets.into();
            v["bytes"] = bytes.into();
            v["seconds"] = elapsed.into();
            v["stopped"] = interrupted.into();
            v["warnings"] = report.warnings.clone().into();
            serde_json::to_string(&v)?
        } else {
            render(&summary, written, packets, bytes, elapsed, &report.warnings)
        };
        if to_stdout {
            eprintln!("{text}");
        } else {
            outln!("{text}");
        }
    }
    if let Some(e) = report.error {
        if let Some(p) = &kept_partial {
            // Everything before the bad spot was extracted and written: say where.
            eprintln!(
                "netspectra: note: the records of the packets before the error are in {}",
                p.display()
            );
        }
        let what = match (&report.error_input, &a.interface) {
            (_, Some(i)) => format!("capturing on {i}"),
            (Some(f), None) => format!("reading {}", f.display()),
            _ => "reading".to_string(),
        };
        return Err(anyhow::Error::new(e).context(what));
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

/// The human-readable summary.
fn render(
    s: &Summary,
    records: u64,
    packets: u64,
    bytes: u64,
    secs: f64,
    warnings: &[String],
) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let rate = |n: f64| if secs > 0.0 { n / secs } else { 0.0 };
    let _ = writeln!(
        o,
        "HTTP summary: {} packets, {:.1} MB in {secs:.2} s ({:.0} MB/s, {:.2} Mpps)",
        packets,
        bytes as f64 / 1e6,
        rate(bytes as f64) / 1e6,
        rate(packets as f64) / 1e6
    );
    let _ = writeln!(
        o,
        "  records {records}: requests {}, responses {} (paired {}), unanswered requests {}, responses without request {}, partial {}",
        s.requests, s.responses, s.paired, s.unanswered, s.orphan_responses, s.partial
    );
    let _ = writeln!(
        o,
        "  connections {} (evicted {}, timed out {}, tunnels {}); segments ignored as retransmitted/duplicate {}, sequence gaps {}",
        s.connections, s.evicted, s.timed_out, s.tunnels, s.retransmissions, s.gaps
    );
    let list = |m: &mut dyn Iterator<Item = (String, u64)>| {
        m.map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(o, "  methods: {}", list(&mut s.methods.clone().into_iter()));
    let _ = writeln!(o, "  status:  {}", list(&mut s.status.clone().into_iter()));
    let l = &s.latency_us;
    let us = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.3} ms", v as f64 / 1000.0));
    let _ = writeln!(
        o,
        "  latency: p50 {}, p90 {}, p99 {}, max {} ({} pairs)",
        us(l.p50),
        us(l.p90),
        us(l.p99),
        us(l.max),
        l.count
    );
    let _ = writeln!(o, "  top hosts:");
    for (h, n) in &s.top_hosts {
        let _ = writeln!(o, "    {n:>10}  {h}");
    }
    let _ = writeln!(o, "  top user agents:");
    for (h, n) in &s.top_user_agents {
        let _ = writeln!(o, "    {n:>10}  {h}");
    }
    let _ = write!(
        o,
        "  malformed: {}",
        if s.malformed.is_empty() {
            "none".to_string()
        } else {
            list(&mut s.malformed.clone().into_iter())
        }
    );
    if let Some(r) = s.ua_cache_hit_rate {
        let _ = write!(o, "\n  user-agent cache hit rate: {:.1} %", r * 100.0);
    }
    for w in warnings {
        let _ = write!(o, "\n  warning: {w}");
    }
    o
}
