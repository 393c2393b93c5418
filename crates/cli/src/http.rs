//! `netspectra http`: HTTP/1.x request/response records (httpry / tshark `-Y http` / Zeek
//! http.log style) from capture files or a live interface, with a summary at the end.
//!
//! Workers (one per `--threads`) each own an [`HttpAnalyzer`]; their records travel in small
//! batches over a bounded channel to one writer thread, which serializes them. Nothing mutable
//! is shared between workers.

use crate::exit::BadInput;
use crate::record_format::RecordFormatArg;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use netspectra_capture::{FileFilter, LiveConfig};
use netspectra_engine::{run_file, run_live, Analysis, EngineConfig};
use netspectra_http::parse::ExtractOptions;
use netspectra_http::{HeaderSelect, HttpAnalyzer, HttpConfig, HttpRecord, Stats, Summary, FIELDS};
use netspectra_packet::{Batch, PacketMeta, Timestamp};
use netspectra_pcap::CaptureReader;
use netspectra_sinks::{RecordFormat, RecordWriter};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::sync::Mutex;
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

/// Live counters of an http run for `--metrics`.
#[derive(Default)]
struct HttpMetrics {
    records: std::sync::atomic::AtomicU64,
    /// The live capture's interface and counters, once it is open (`-i`).
    live: crate::metrics::LiveCounters,
}

impl HttpMetrics {
    fn render(&self, e: &mut netspectra_metrics::Exposition) {
        e.counter(
            "netspectra_http_records_written_total",
            "HTTP records written.",
            self.records.load(std::sync::atomic::Ordering::Relaxed),
        );
        self.live.render(e);
    }
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
        max_connections: a.max_connections.max(1),
        max_header_bytes: a.max_header_bytes,
        max_pipeline: a.max_pipeline.max(1),
        idle_timeout_ns: (a.idle_timeout.max(1) as i64).saturating_mul(1_000_000_000),
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
            max_name: a.max_name_len.max(1),
            max_value: a.max_value_len.max(1),
        },
        parse_user_agent: !a.no_ua,
        decode_tunnels: a.tunnels || !a.no_tunnels,
        ..HttpConfig::default()
    }
}

/// Records are handed to the writer thread in batches of this many.
const SEND_BATCH: usize = 512;

/// A batch of records from worker `.0`.
type Shipment = (usize, Vec<HttpRecord>);

/// One worker: an analyzer, an optional user-space filter, and the channels to and from the
/// writer. The writer hands written batches back so that the worker frees the records: memory
/// then returns to the allocating thread's cache instead of crossing threads on every record.
struct Worker<'a> {
    id: usize,
    an: HttpAnalyzer,
    filter: Option<FileFilter>,
    kept: Vec<PacketMeta>,
    pending: Vec<HttpRecord>,
    tx: SyncSender<Shipment>,
    back: &'a Mutex<Receiver<Vec<HttpRecord>>>,
}

impl<'a> Worker<'a> {
    fn new(
        id: usize,
        cfg: &HttpConfig,
        filter: Option<&str>,
        tx: SyncSender<Shipment>,
        back: &'a Mutex<Receiver<Vec<HttpRecord>>>,
    ) -> Self {
        Worker {
            id,
            an: HttpAnalyzer::new(cfg.clone()),
            filter: filter.map(FileFilter::new),
            kept: Vec::new(),
            pending: Vec::with_capacity(SEND_BATCH),
            tx,
            back,
        }
    }

    fn ship(&mut self, force: bool) {
        self.an.take_records(&mut self.pending);
        if self.pending.len() >= SEND_BATCH || (force && !self.pending.is_empty()) {
            // Reuse a returned batch (its records are dropped here, on this thread).
            let mut spare = None;
            if let Ok(back) = self.back.lock() {
                while let Ok(mut v) = back.try_recv() {
                    v.clear();
                    spare = Some(v);
                }
            }
            let next = spare.unwrap_or_else(|| Vec::with_capacity(SEND_BATCH));
            let batch = std::mem::replace(&mut self.pending, next);
            // The writer only hangs up after an output error, which it reports itself.
            let _ = self.tx.send((self.id, batch));
        }
    }

    /// Flushes every connection and sends the remaining records; returns the counters.
    fn finish(mut self) -> Stats {
        self.an.finish();
        self.ship(true);
        self.an.stats()
    }
}

impl Analysis for Worker<'_> {
    fn on_batch(&mut self, batch: &Batch<'_>) {
        match &mut self.filter {
            None => self.an.on_batch(batch),
            Some(filter) => {
                self.kept.clear();
                for m in batch.metas() {
                    if filter.matches(&batch.packet(m)) {
                        self.kept.push(*m);
                    }
                }
                self.an.on_batch(&Batch::new(batch.buffer(), &self.kept));
            }
        }
        self.ship(false);
    }

    fn on_tick(&mut self, at: Timestamp) {
        self.an.expire(at);
        self.ship(false);
    }
}

/// Interval between idle-timeout sweeps (packet time for files, wall clock for live).
const TICK_NS: i64 = 1_000_000_000;

/// Runs `netspectra http`.
pub fn run(a: HttpArgs) -> Result<ExitCode> {
    if a.list_fields {
        println!("{}", FIELDS.join("\n"));
        return Ok(ExitCode::SUCCESS);
    }
    if a.threads == 0 || a.threads > 256 {
        return Err(BadInput("--threads must be 1..=256".into()).into());
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
    let mut writer = RecordWriter::<HttpRecord>::create(&a.output, format)
        .map_err(|e| BadInput(e.to_string()))?;
    if let Some(f) = fields {
        writer = writer.with_fields(f);
    }
    let cfg = config(&a);
    let (tx, rx) = sync_channel::<Shipment>(64);
    let (back_txs, back_rxs): (Vec<Sender<Vec<HttpRecord>>>, Vec<_>) =
        (0..a.threads).map(|_| channel()).unzip();
    let back_rxs: Vec<Mutex<Receiver<Vec<HttpRecord>>>> =
        back_rxs.into_iter().map(Mutex::new).collect();
    let t0 = Instant::now();
    let to_stdout = a.output.as_os_str() == "-";

    let metrics = a
        .metrics
        .as_ref()
        .map(|_| std::sync::Arc::new(HttpMetrics::default()));
    let _metrics_server = match (&a.metrics, &metrics) {
        (Some(addr), Some(m)) => {
            let m = std::sync::Arc::clone(m);
            Some(crate::metrics::serve("http", addr, a.quiet, move |e| {
                m.render(e)
            })?)
        }
        _ => None,
    };
    let writer_metrics = metrics.clone();
    let writer_thread = std::thread::spawn(move || -> Result<u64> {
        for (id, batch) in rx {
            for r in &batch {
                writer.write(r).context("writing records")?;
            }
            if let Some(m) = &writer_metrics {
                m.records
                    .store(writer.records(), std::sync::atomic::Ordering::Relaxed);
            }
            // A worker that is gone no longer needs its batches back.
            let _ = back_txs[id].send(batch);
        }
        writer.finish().context("writing records")
    });

    let mut total = Stats::new(cfg.summary_keys);
    let mut packets = 0u64;
    let mut bytes = 0u64;
    let mut warnings = Vec::new();
    let run_result: Result<()> = (|| {
        if let Some(iface) = &a.interface {
            let mut lc = LiveConfig::new(iface);
            lc.threads = a.threads;
            lc.filter = filter.map(str::to_string);
            let (sources, _stop) = crate::live::open(&mut lc)?;
            if let Some(m) = &metrics {
                m.live.set(iface, &sources);
            }
            if !a.quiet {
                crate::live::announce("http", iface, a.threads);
            }
            let never = AtomicBool::new(false);
            let ecfg = EngineConfig {
                workers: a.threads,
                tick_ns: Some(TICK_NS),
                queue_depth: 4,
            };
            // The kernel filter already applied: workers need no user-space filter.
            let out = run_live(sources, &ecfg, &never, |i| {
                Worker::new(i, &cfg, None, tx.clone(), &back_rxs[i])
            });
            packets += out.stats.packets;
            bytes += out.stats.bytes;
            for w in out.analyses {
                total.merge(&w.finish());
            }
            if let Some(e) = out.error {
                return Err(anyhow::Error::new(e).context(format!("capturing on {iface}")));
            }
            return Ok(());
        }
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))
                .context("installing signal handlers")?;
        }
        for file in &a.files {
            let mut reader =
                CaptureReader::open(file).with_context(|| format!("opening {}", file.display()))?;
            let total_size = reader.total_size();
            let show = !a.quiet && std::io::stderr().is_terminal() && total_size.is_some();
            let mut last = Instant::now();
            let mut progress = |st: &netspectra_packet::SourceStats| {
                if show && last.elapsed().as_millis() >= 250 {
                    last = Instant::now();
                    let pct =
                        st.input_offset as f64 * 100.0 / total_size.unwrap_or(1).max(1) as f64;
                    eprint!("\r{}: {pct:5.1}% {} packets", file.display(), st.packets);
                }
            };
            let ecfg = EngineConfig {
                workers: a.threads,
                tick_ns: Some(TICK_NS),
                queue_depth: 4,
            };
            let out = run_file(
                &mut reader,
                &ecfg,
                &stop,
                |i| Worker::new(i, &cfg, filter, tx.clone(), &back_rxs[i]),
                &mut progress,
            );
            if show {
                eprint!("\r\x1b[K");
            }
            packets += out.stats.packets;
            bytes += out.stats.bytes;
            for w in out.analyses {
                total.merge(&w.finish());
            }
            for w in reader.warnings() {
                warnings.push(format!("{}: {w}", file.display()));
            }
            if let Some(e) = out.error {
                // Everything before the bad spot was processed and written.
                return Err(anyhow::Error::new(e).context(format!("reading {}", file.display())));
            }
            if out.stopped {
                break;
            }
        }
        Ok(())
    })();
    drop(tx);
    let written = writer_thread
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    let elapsed = t0.elapsed().as_secs_f64();

    if a.summary != SummaryArg::None {
        let summary = total.report(a.top);
        let text = if a.summary == SummaryArg::Json {
            let mut v = serde_json::to_value(&summary)?;
            v["records"] = written.into();
            v["packets"] = packets.into();
            v["bytes"] = bytes.into();
            v["seconds"] = elapsed.into();
            v["warnings"] = warnings.clone().into();
            serde_json::to_string(&v)?
        } else {
            render(&summary, written, packets, bytes, elapsed, &warnings)
        };
        if to_stdout {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
    run_result?;
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
