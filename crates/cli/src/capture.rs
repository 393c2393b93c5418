//! `netspectra capture`: write live packets to pcap/pcapng files, rotating like tcpdump.
//!
//! One thread per fanout socket. With one thread the worker writes ring blocks straight to the
//! file (zero copy). With several, each worker copies its blocks into recycled buffers and sends
//! them over one bounded channel to a single writer thread (one channel operation per ring
//! block, no lock per packet). A full channel makes the workers wait, so the kernel ring absorbs
//! bursts and any loss shows up as kernel drops; nothing captured is ever discarded (except
//! beyond `-c COUNT`). Rotation happens between two packets in the writer, so it loses nothing.

use crate::exit::BadInput;
use anyhow::{anyhow, Context, Result};
use clap::{Args, ValueEnum};
use netspectra_capture::{
    drop_privileges, FanoutMode, LiveConfig, LiveStats, LiveStatsHandle, StopHandle,
};
use netspectra_packet::{
    Batch, InterfaceInfo, LinkType, OwnedBatch, Packet, PacketMeta, PacketSource,
};
use netspectra_pcap::{CaptureWriter, OutputFormat};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Minimal UTC strftime for -G file names.
fn strftime_utc(pat: &str, t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_mar + 2) / 153;
    let d = doy_mar - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cum[(m - 1) as usize] + d + (leap && m > 2) as i64;
    let mut out = String::with_capacity(pat.len() + 16);
    let mut it = pat.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('Y') => out.push_str(&format!("{y:04}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('H') => out.push_str(&format!("{:02}", sod / 3600)),
            Some('M') => out.push_str(&format!("{:02}", sod / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", sod % 60)),
            Some('s') => out.push_str(&secs.to_string()),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Names, opens and rotates output files like tcpdump's -C/-G/-W.
struct Rotator {
    base: String,
    format: OutputFormat,
    ifaces: Vec<InterfaceInfo>,
    size_limit: Option<u64>,
    every: Option<Duration>,
    max_files: Option<u32>,
    writer: Option<CaptureWriter<File>>,
    cur_name: PathBuf,
    /// Index used in the next name (tcpdump's `Cflag_count`).
    cnt: u32,
    /// Bytes in the current file (our own count, headers included).
    size: u64,
    packets_in_file: u64,
    opened: Instant,
    /// Files opened so far.
    files: u64,
    first_names: Vec<PathBuf>,
    packets: u64,
    bytes: u64,
    limit: Option<u64>,
    /// Reused buffer for frames whose stripped VLAN tag is put back.
    scratch: Vec<u8>,
}

/// What the writer wants after a packet.
#[derive(PartialEq, Eq)]
enum Flow {
    Go,
    Done,
}

impl Rotator {
    fn new(args: &CaptureArgs, ifaces: Vec<InterfaceInfo>) -> Result<Self> {
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
        let mut r = Rotator {
            base: args.write.to_string_lossy().into_owned(),
            format,
            ifaces,
            size_limit: args.file_size,
            every: args.rotate_seconds.map(Duration::from_secs),
            max_files: args.file_count,
            writer: None,
            cur_name: PathBuf::new(),
            cnt: 0,
            size: 0,
            packets_in_file: 0,
            opened: Instant::now(),
            files: 0,
            first_names: Vec::new(),
            packets: 0,
            bytes: 0,
            limit: args.count,
            scratch: Vec::with_capacity(1 << 16),
        };
        r.open_next()?;
        Ok(r)
    }

    fn name(&self) -> PathBuf {
        let base = if self.every.is_some() {
            strftime_utc(&self.base, SystemTime::now())
        } else {
            self.base.clone()
        };
        if self.size_limit.is_none() {
            return PathBuf::from(base);
        }
        match self.max_files {
            Some(n) => {
                let width = (n.saturating_sub(1)).to_string().len().max(1);
                let width = if n <= 1 { 1 } else { width };
                PathBuf::from(format!("{base}{:0width$}", self.cnt))
            }
            None if self.cnt == 0 => PathBuf::from(base),
            None => PathBuf::from(format!("{base}{}", self.cnt)),
        }
    }

    fn open_next(&mut self) -> Result<()> {
        self.close(false)?;
        let name = self.name();
        // Like the other commands, make the output folder (tcpdump's strftime names may name
        // a new one each -G period).
        if let Some(dir) = name.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating folder {}", dir.display()))?;
        }
        let f = File::create(&name).with_context(|| format!("creating {}", name.display()))?;
        let w = CaptureWriter::new(f, self.format, &self.ifaces)
            .with_context(|| format!("writing header of {}", name.display()))?;
        self.size = match self.format {
            OutputFormat::Pcap { .. } => 24,
            OutputFormat::Pcapng => 40,
        };
        self.writer = Some(w);
        if self.first_names.len() < 4 {
            self.first_names.push(name.clone());
        }
        self.cur_name = name;
        self.packets_in_file = 0;
        self.opened = Instant::now();
        self.files += 1;
        Ok(())
    }

    /// Flushes and closes the current file; `fsync` only for the last one (an fsync per
    /// rotation would stall the writer and, through it, the rings).
    fn close(&mut self, last: bool) -> Result<()> {
        if let Some(w) = self.writer.take() {
            let f = w
                .finish()
                .with_context(|| format!("flushing {}", self.cur_name.display()))?;
            if last {
                f.sync_data().ok();
            }
        }
        Ok(())
    }

    /// Rotates on time when due (called for every batch, including empty ones).
    fn tick(&mut self) -> Result<Flow> {
        if let Some(every) = self.every {
            if self.opened.elapsed() >= every {
                if self.size_limit.is_none() {
                    if let Some(n) = self.max_files {
                        if self.files >= n as u64 {
                            return Ok(Flow::Done);
                        }
                    }
                } else {
                    self.cnt = 0;
                }
                self.open_next()?;
            }
        }
        Ok(Flow::Go)
    }

    /// Writes every packet of a batch (up to the -c limit).
    fn write_batch(&mut self, b: &Batch<'_>) -> Result<Flow> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = self.write_batch_with(b, &mut scratch);
        self.scratch = scratch;
        r
    }

    fn write_batch_with(&mut self, b: &Batch<'_>, scratch: &mut Vec<u8>) -> Result<Flow> {
        if self.tick()? == Flow::Done {
            return Ok(Flow::Done);
        }
        for mut p in b.iter() {
            if self.limit.is_some_and(|l| self.packets >= l) {
                return Ok(Flow::Done);
            }
            // The kernel moved the 802.1Q tag into the ring's metadata; files carry it in the
            // frame (as libpcap writes them), so put it back after the MAC addresses.
            let tagged;
            if let (Some(tci), LinkType::ETHERNET, true) = (p.vlan_tci, p.link, p.data.len() >= 12)
            {
                scratch.clear();
                scratch.extend_from_slice(&p.data[..12]);
                scratch.extend_from_slice(&[0x81, 0x00]);
                scratch.extend_from_slice(&tci.to_be_bytes());
                scratch.extend_from_slice(&p.data[12..]);
                tagged = Packet {
                    data: scratch,
                    // orig_len already counts the stripped tag (the source's rule).
                    vlan_tci: None,
                    ..p
                };
                p = tagged;
            }
            let rec = match self.format {
                OutputFormat::Pcap { .. } => 16 + p.data.len() as u64,
                OutputFormat::Pcapng => 32 + p.data.len().next_multiple_of(4) as u64,
            };
            if let Some(limit) = self.size_limit {
                if self.packets_in_file > 0 && self.size + rec > limit {
                    self.cnt += 1;
                    if self.max_files.is_some_and(|n| self.cnt >= n) {
                        self.cnt = 0;
                    }
                    self.open_next()?;
                }
            }
            let Some(w) = self.writer.as_mut() else {
                return Err(anyhow!("no open output file"));
            };
            w.write_packet(&p, &self.ifaces)
                .with_context(|| format!("writing {}", self.cur_name.display()))?;
            self.size += rec;
            self.packets_in_file += 1;
            self.packets += 1;
            self.bytes += p.data.len() as u64;
        }
        if self.limit.is_some_and(|l| self.packets >= l) {
            return Ok(Flow::Done);
        }
        Ok(Flow::Go)
    }
}

/// Copies a lent batch into an owned one (packets only, compacted).
fn copy_batch(b: &Batch<'_>, out: &mut OwnedBatch) {
    out.clear();
    for m in b.metas() {
        let p = b.packet(m);
        let off = out.data.len() as u32;
        out.data.extend_from_slice(p.data);
        out.metas.push(PacketMeta {
            offset: off,
            caplen: p.data.len() as u32,
            ..*m
        });
    }
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
    let mut rot = Rotator::new(&args, ifaces)?;
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
        rot.cur_name.display()
    );
    let t0 = Instant::now();
    let result: Result<Rotator> = std::thread::scope(|sc| {
        let writer = if sources.len() == 1 {
            let mut src = sources.into_iter().next().expect("one source");
            let stop = stop.clone();
            sc.spawn(move || -> Result<Rotator> {
                let _ = src.pin_current_thread();
                let mut err = None;
                let mut done = false;
                loop {
                    let more = src.next_batch(&mut |b| {
                        if done || err.is_some() {
                            return;
                        }
                        match rot.write_batch(b) {
                            Ok(Flow::Go) => {}
                            Ok(Flow::Done) => {
                                done = true;
                                stop.stop();
                            }
                            Err(e) => {
                                err = Some(e);
                                stop.stop();
                            }
                        }
                    })?;
                    if !more {
                        break;
                    }
                }
                if let Some(e) = err {
                    return Err(e);
                }
                rot.close(true)?;
                Ok(rot)
            })
        } else {
            let (tx, rx) = sync_channel::<(usize, OwnedBatch)>(args.threads * 8);
            let mut recycle_txs = Vec::new();
            for mut src in sources {
                let (rtx, rrx) = std::sync::mpsc::channel::<OwnedBatch>();
                recycle_txs.push(rtx);
                let tx: SyncSender<(usize, OwnedBatch)> = tx.clone();
                sc.spawn(move || -> Result<()> {
                    let _ = src.pin_current_thread();
                    let idx = src.index();
                    let mut closed = false;
                    while src.next_batch(&mut |b| {
                        if b.is_empty() || closed {
                            return;
                        }
                        let mut ob = rrx.try_recv().unwrap_or_default();
                        copy_batch(b, &mut ob);
                        if tx.send((idx, ob)).is_err() {
                            closed = true; // writer is gone (error or -c reached)
                        }
                    })? {}
                    Ok(())
                });
            }
            drop(tx);
            let stop = stop.clone();
            sc.spawn(move || writer_loop(rot, rx, recycle_txs, stop))
        };
        // Main thread: periodic stats until the writer finishes.
        let mut last = Instant::now();
        while !writer.is_finished() {
            std::thread::sleep(Duration::from_millis(50));
            if let Some(every) = args.stats {
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
            }
        }
        writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    let rot = result?;
    let live = netspectra_capture::group_stats(&handles);
    let s = Summary {
        written: rot.packets,
        bytes: rot.bytes,
        files: rot.files,
        names: rot.first_names.clone(),
        live,
        elapsed: t0.elapsed(),
    };
    print_summary(&args, &s);
    Ok(ExitCode::SUCCESS)
}

/// The single writer of a multi-threaded capture: writes batches in arrival order, recycles the
/// buffers, stops the capture once `-c` is reached (then discards the drained rest).
fn writer_loop(
    mut rot: Rotator,
    rx: Receiver<(usize, OwnedBatch)>,
    recycle: Vec<std::sync::mpsc::Sender<OwnedBatch>>,
    stop: StopHandle,
) -> Result<Rotator> {
    let mut done = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((idx, ob)) => {
                if !done {
                    match rot.write_batch(&ob.as_batch()) {
                        Ok(Flow::Go) => {}
                        Ok(Flow::Done) => {
                            done = true;
                            stop.stop();
                        }
                        Err(e) => {
                            stop.stop();
                            return Err(e);
                        }
                    }
                }
                if let Some(r) = recycle.get(idx) {
                    let _ = r.send(ob);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if !done && rot.tick()? == Flow::Done {
                    done = true;
                    stop.stop();
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    rot.close(true)?;
    Ok(rot)
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
    fn sizes_durations_and_names() {
        assert_eq!(parse_size("2").unwrap(), 2_000_000);
        assert_eq!(parse_size("64k").unwrap(), 65_536);
        assert!(parse_size("x").is_err() && parse_size("0").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("-1s").is_err() && parse_duration("1x").is_err());
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // 2024-02-29T23:59:59Z
        assert_eq!(
            strftime_utc("c-%Y%m%d-%H%M%S-%j-%s%%", t),
            "c-20240229-235959-060-1709251199%"
        );
    }
}
