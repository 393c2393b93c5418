//! `netspectra capture`: write live packets to pcap/pcapng files, rotating like tcpdump.
//!
//! A thin front-end: the sockets are opened here (`crate::live`), the files are written by
//! `netspectra_sinks::capture_files::RotatingWriter` (tcpdump's -C/-G/-W/-c), and
//! `netspectra_pipeline::record::record_live` runs the socket threads and the writer. This
//! module reads the arguments, serves metrics, prints periodic statistics and the summary.

use crate::exit::BadInput;
use anyhow::Result;
use clap::{Args, ValueEnum};
use netspectra_capture::{drop_privileges, FanoutMode, LiveConfig, LiveStats, LiveStatsHandle};
use netspectra_packet::PacketSource;
use netspectra_pcap::OutputFormat;
use netspectra_pipeline::record::{record_live, RecordError};
use netspectra_sinks::capture_files::{RotateConfig, RotatingWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Output file format of `capture`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// Classic pcap, microsecond timestamps.
    Pcap,
    /// Classic pcap, nanosecond timestamps.
    PcapNs,
    /// pcapng, nanosecond timestamps.
    Pcapng,
}

/// Arguments of `netspectra capture`.
#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Interface to capture on.
    #[arg(short = 'i', long)]
    pub interface: String,
    /// tcpdump filter expression (libpcap syntax), attached in the kernel.
    #[arg(short = 'f', long)]
    pub filter: Option<String>,
    /// Output file (with -G: a strftime pattern, UTC; %Y %m %d %H %M %S %s %j %%).
    #[arg(short = 'w', long)]
    pub write: PathBuf,
    /// Rotate when a file would exceed this size: millions of bytes, or with a k/m/g suffix
    /// (KiB/MiB/GiB), as tcpdump -C. Files: FILE, FILE1, FILE2... (FILE0.. with -W).
    #[arg(short = 'C', long = "file-size", value_name = "MB", value_parser = parse_size)]
    pub file_size: Option<u64>,
    /// Rotate every N seconds (as tcpdump -G).
    #[arg(short = 'G', long = "rotate-seconds", value_name = "SECONDS")]
    pub rotate_seconds: Option<u64>,
    /// With -C: keep a ring of N files (overwrite the oldest). With -G only: stop after N files.
    #[arg(short = 'W', long = "file-count", value_name = "N")]
    pub file_count: Option<u32>,
    /// Stop after writing COUNT packets.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "pcap")]
    pub format: Format,
    /// Capture threads (sockets in one PACKET_FANOUT group).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Fanout mode: hash (flow-symmetric), lb, cpu, qm, rollover, random.
    #[arg(long, default_value = "hash")]
    pub fanout: FanoutMode,
    /// Print kernel and user-space counters on stderr at this interval (e.g. 10s, 500ms).
    #[arg(long, value_parser = parse_duration)]
    pub stats: Option<Duration>,
    /// Serve the same counters as Prometheus metrics on this address (e.g. 127.0.0.1:9464),
    /// at GET /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Bytes kept per packet (0 = 262144).
    #[arg(short = 's', long, default_value_t = 0)]
    pub snaplen: u32,
    /// Do not put the interface in promiscuous mode.
    #[arg(short = 'p', long = "no-promiscuous-mode")]
    pub no_promisc: bool,
    /// Drop privileges to this user once the sockets are open (files are created as that user).
    #[arg(short = 'Z', long = "user")]
    pub user: Option<String>,
    /// Ring block size in KiB (power of two, >= 4); default 1024.
    #[arg(long)]
    pub block_kib: Option<u32>,
    /// Ring blocks per socket; default sized from the link speed.
    #[arg(long)]
    pub blocks: Option<u32>,
    /// Block retire timeout in milliseconds.
    #[arg(long, default_value_t = 10)]
    pub retire_ms: u64,
    /// Pin worker i to CPU cpus[i % len] (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
    /// Print the final summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1024u64),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1_000_000),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?} (e.g. 100, 512k, 10m)"))?;
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("bad size {s:?}"))
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("bad duration {s:?} (e.g. 10s, 500ms, 1m)");
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let v: f64 = s[..split].parse().map_err(|_| bad())?;
    let secs = match &s[split..] {
        "" | "s" => v,
        "ms" => v / 1000.0,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(bad()),
    };
    if !(secs > 0.0 && secs < 1e9) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Final counters of a run.
struct Summary {
    written: u64,
    bytes: u64,
    files: u64,
    names: Vec<PathBuf>,
    live: LiveStats,
    elapsed: Duration,
}

/// Runs `netspectra capture`.
pub fn run(args: CaptureArgs) -> Result<ExitCode> {
    if args.threads == 0 || args.threads > netspectra_engine::MAX_THREADS {
        return Err(BadInput(format!(
            "--threads must be 1..={}",
            netspectra_engine::MAX_THREADS
        ))
        .into());
    }
    let mut cfg = LiveConfig::new(&args.interface);
    cfg.threads = args.threads;
    cfg.fanout = args.fanout;
    cfg.filter = args.filter.clone().filter(|f| !f.trim().is_empty());
    cfg.snaplen = args.snaplen;
    cfg.promisc = !args.no_promisc;
    cfg.block_size = args.block_kib.map_or(0, |k| k.saturating_mul(1024));
    cfg.block_count = args.blocks.unwrap_or(0);
    cfg.retire_timeout = Duration::from_millis(args.retire_ms.max(1));
    cfg.cpus = args.cpus.clone();
    if args.count == Some(0) {
        return Err(BadInput(
            "-c must be at least 1 (leave it out to capture until stopped)".into(),
        )
        .into());
    }
    let signals = crate::stop::Stop::new();
    let sources = crate::live::open(&mut cfg, &signals)?;
    // Handlers only now: a signal during the filter compilation ends the process at once.
    signals.arm()?;
    let stop = signals.handle().clone();
    if let Some(u) = &args.user {
        drop_privileges(u)?;
    }
    let ifaces = sources[0].interfaces().to_vec();
    let (bs, bc) = sources[0].ring_size();
    let handles: Vec<LiveStatsHandle> = sources.iter().map(|s| s.stats_handle()).collect();
    let _metrics = match &args.metrics {
        Some(addr) => {
            let (h, iface) = (handles.clone(), args.interface.clone());
            Some(crate::metrics::serve(
                "netspectra capture",
                addr,
                false,
                move |e| crate::metrics::capture_metrics(e, &iface, &h),
            )?)
        }
        None => None,
    };
    let writer = RotatingWriter::new(rotate_config(&args)?, ifaces)?;
    eprintln!(
        "netspectra capture: listening on {} ({} thread{}, fanout {:?}, ring {} x {} KiB a \
         thread{}), writing {}",
        args.interface,
        args.threads,
        if args.threads == 1 { "" } else { "s" },
        args.fanout,
        bc,
        bs / 1024,
        cfg.filter
            .as_deref()
            .map(|f| format!(", filter {f:?}"))
            .unwrap_or_default(),
        writer.current_path().display()
    );
    let t0 = Instant::now();
    // Periodic statistics on this thread while the capture runs.
    let mut last = Instant::now();
    let mut show_stats = || {
        let Some(every) = args.stats else { return };
        if last.elapsed() >= every {
            last = Instant::now();
            let s = netspectra_capture::group_stats(&handles);
            eprintln!(
                "stats: {:.1}s captured {} pkts {} bytes; kernel received {} dropped {} \
                 freezes {}; user-space drops {}",
                t0.elapsed().as_secs_f64(),
                s.packets,
                s.bytes,
                s.kernel_received,
                s.kernel_drops,
                s.freezes,
                s.user_drops
            );
        }
    };
    let writer = record_live(sources, writer, &stop, &mut show_stats).map_err(|e| match e {
        // A socket's error stays its own (its kind decides the exit status).
        RecordError::Source(e) => anyhow::Error::from(e),
        other => anyhow::Error::from(other),
    })?;
    let live = netspectra_capture::group_stats(&handles);
    let s = Summary {
        written: writer.packets(),
        bytes: writer.bytes(),
        files: writer.files_opened(),
        names: writer.first_paths().to_vec(),
        live,
        elapsed: t0.elapsed(),
    };
    print_summary(&args, &s);
    Ok(ExitCode::SUCCESS)
}

/// The rotation settings of the arguments (tcpdump's -w, -C, -G, -W, -c).
fn rotate_config(args: &CaptureArgs) -> Result<RotateConfig> {
    let format = match args.format {
        Format::Pcap => OutputFormat::Pcap { nanos: false },
        Format::PcapNs => OutputFormat::Pcap { nanos: true },
        Format::Pcapng => OutputFormat::Pcapng,
    };
    if args.file_count == Some(0) {
        return Err(BadInput("-W must be at least 1".into()).into());
    }
    if args.rotate_seconds == Some(0) {
        return Err(BadInput("-G must be at least 1 second".into()).into());
    }
    let mut cfg = RotateConfig::new(&args.write, format);
    cfg.size_limit = args.file_size;
    cfg.every = args.rotate_seconds.map(Duration::from_secs);
    cfg.max_files = args.file_count;
    cfg.max_packets = args.count;
    Ok(cfg)
}

fn print_summary(args: &CaptureArgs, s: &Summary) {
    let l = &s.live;
    let not_written = l.packets.saturating_sub(s.written);
    if args.json {
        let names: Vec<String> = s.names.iter().map(|p| p.display().to_string()).collect();
        let v = serde_json::json!({
            "interface": args.interface,
            "threads": args.threads,
            "filter": args.filter,
            "written_packets": s.written,
            "written_bytes": s.bytes,
            "files": s.files,
            "first_files": names,
            "captured_packets": l.packets,
            "captured_bytes": l.bytes,
            "not_written_after_count": not_written,
            "kernel_received": l.kernel_received,
            "kernel_drops": l.kernel_drops,
            "freezes": l.freezes,
            "user_drops": l.user_drops,
            "seconds": s.elapsed.as_secs_f64(),
        });
        println!("{v}");
        return;
    }
    let first = s.names.first().map(|p| display(p)).unwrap_or_default();
    println!("netspectra capture summary ({}):", args.interface);
    println!(
        "  written            {} packets, {} bytes, {} file{} (first: {first})",
        s.written,
        s.bytes,
        s.files,
        if s.files == 1 { "" } else { "s" }
    );
    println!(
        "  captured           {} packets, {} bytes",
        l.packets, l.bytes
    );
    if not_written > 0 {
        println!("  beyond -c          {not_written} packets captured but not written");
    }
    println!("  kernel received    {}", l.kernel_received);
    println!(
        "  kernel dropped     {} ({:.4} %)",
        l.kernel_drops,
        l.drop_ratio() * 100.0
    );
    println!("  ring freezes       {}", l.freezes);
    println!("  user-space drops   {}", l.user_drops);
    println!("  duration           {:.3} s", s.elapsed.as_secs_f64());
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("2").unwrap(), 2_000_000);
        assert_eq!(parse_size("64k").unwrap(), 65_536);
        assert!(parse_size("x").is_err() && parse_size("0").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("-1s").is_err() && parse_duration("1x").is_err());
    }
}
