//! `netspectra sanitize`: dedup, anonymize and mask a capture (or a directory of captures) in one
//! streaming pass, and `--verify` a sanitized capture.

use crate::exit::BadInput;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use netspectra_packet::{InterfaceInfo, OwnedBatch, Packet, PacketSource};
use netspectra_pcap::{
    CaptureReader, CaptureWriter, FileFormat, OutputFormat, ReadWarning, WriteError,
};
use netspectra_sanitize::{
    key_from_passphrase, key_hex, parse_key, AnonPolicy, DedupConfig, Inspector, MaskConfig,
    Report, SanitizeConfig, Sanitizer, CK_NAMES, KEY_LEN,
};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::stop::Stop;
use netspectra_sinks::outputs::{AtomicFile, OutputPlan};
use netspectra_sinks::Destination;

/// Output capture format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatArg {
    /// Classic pcap (nanosecond timestamps when the input had them).
    Pcap,
    /// pcapng.
    Pcapng,
}

/// Arguments of `netspectra sanitize`.
#[derive(Args, Debug)]
pub struct SanitizeArgs {
    /// Input capture (pcap/pcapng, optionally gzip), `-` for standard input, or a directory.
    input: PathBuf,
    /// Output capture (`-` for standard output), or a directory when the input is one.
    #[arg(short = 'o', long = "output", required_unless_present = "verify")]
    output: Option<PathBuf>,
    /// Remove exact duplicate frames (all stages run when none is named).
    #[arg(long)]
    dedup: bool,
    /// Rewrite IP (and optionally MAC) addresses with keyed prefix-preserving Crypto-PAn.
    #[arg(long)]
    anonymize: bool,
    /// Zero-fill payloads except what the rules keep (TLS record headers and handshakes, HTTP
    /// headers).
    #[arg(long)]
    mask: bool,
    /// YAML configuration file (see docs/SANITIZE.md); command-line flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output format (default: the input's).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Compare each frame with the previous N-1 frames, like `editcap -D N` (default: the last
    /// 1,000,000 frames).
    #[arg(long, value_name = "N")]
    dedup_window: Option<usize>,
    /// Only compare with frames at most this many seconds older, like `editcap -w`.
    #[arg(long, value_name = "SECONDS")]
    dedup_time: Option<f64>,
    /// Frames remembered when no window is given (about 32 bytes each).
    #[arg(long, value_name = "N")]
    dedup_capacity: Option<usize>,
    /// Anonymization key: 32 raw bytes or 64 hex digits (16 AES key + 16 pad).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Derive the key from a passphrase (also read from NETSPECTRA_PASSPHRASE).
    #[arg(long)]
    passphrase: Option<String>,
    /// Address ranges left unchanged, comma-separated from private, multicast, broadcast,
    /// loopback, or `none` (default: multicast,broadcast,loopback).
    #[arg(long, value_name = "LIST")]
    keep: Option<String>,
    /// Truncate IPv4 addresses to this prefix length instead of encrypting them (e.g. 24).
    #[arg(long, value_name = "BITS")]
    truncate_v4: Option<u8>,
    /// Truncate IPv6 addresses to this prefix length instead of encrypting them (e.g. 56).
    #[arg(long, value_name = "BITS")]
    truncate_v6: Option<u8>,
    /// Also map MAC addresses (Ethernet, SLL, ARP, NDP options).
    #[arg(long)]
    anonymize_mac: bool,
    /// Keep DNS payloads (they are masked by default).
    #[arg(long)]
    keep_dns: bool,
    /// Keep this many payload bytes after the transport header where no rule applies.
    #[arg(long, value_name = "N")]
    keep_bytes: Option<usize>,
    /// HTTP headers whose values are zero-filled, comma-separated (default:
    /// cookie,set-cookie,authorization,proxy-authorization).
    #[arg(long, value_name = "LIST")]
    secret_headers: Option<String>,
    /// Most TCP flow directions tracked for TLS/HTTP framing (default 65536).
    #[arg(long, value_name = "N")]
    max_flows: Option<usize>,
    /// Files processed in parallel in directory mode (each on one thread); for a single file, 1
    /// reads, sanitizes and writes on one thread and more pipelines these over three threads
    /// (same output). Default: number of CPUs.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print the JSON report on standard output instead of the summary.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// No progress bar and no summary (errors, warnings and a generated key are still shown;
    /// --json and --report still write the report).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Re-read a sanitized capture (the input) and fail if a TLS application-data byte, HTTP body
    /// byte or secret header value is non-zero, or (with --original) a checksum is newly wrong.
    #[arg(long)]
    verify: bool,
    /// With --verify: the capture the input was sanitized from, to tell new checksum errors from
    /// ones that were already there.
    #[arg(long, value_name = "FILE", requires = "verify")]
    original: Option<PathBuf>,
}

/// The YAML configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigFile {
    /// Stages to run: dedup, anonymize, mask (default all).
    stages: Option<Vec<String>>,
    format: Option<FormatArg>,
    dedup: DedupFile,
    anonymize: AnonFile,
    mask: Option<MaskConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DedupFile {
    window: Option<usize>,
    time_window: Option<f64>,
    capacity: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct AnonFile {
    key_file: Option<PathBuf>,
    passphrase: Option<String>,
    #[serde(flatten)]
    policy: Option<AnonPolicy>,
}

/// Largest configuration file read (YAML): far beyond any real one, so a wrong path (a
/// capture, a device) is refused instead of read without limit.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Runs the subcommand.
pub fn run(a: SanitizeArgs) -> Result<ExitCode> {
    if a.verify {
        return verify(&a);
    }
    let file_cfg: ConfigFile = match &a.config {
        Some(p) => {
            let bytes = read_bounded(p, MAX_CONFIG_BYTES, "config")?;
            let text = String::from_utf8(bytes)
                .map_err(|_| BadInput(format!("config {}: not UTF-8 text", p.display())))?;
            serde_yaml::from_str(&text)
                .map_err(|e| BadInput(format!("config {}: {e}", p.display())))?
        }
        None => ConfigFile::default(),
    };
    let cfg = build_config(&a, &file_cfg)?;
    let format = a.format.or(file_cfg.format);
    let output = a.output.clone().expect("clap requires -o without --verify");
    let to_stdout = output.as_os_str() == "-";
    // Every output is checked against the inputs (and each other) before anything is opened
    // for writing or a key is generated.
    let mut plan = OutputPlan::new();
    plan.input(&a.input);
    let dir_files = if a.input.is_dir() {
        if to_stdout {
            return Err(BadInput("a directory input needs -o OUTDIR".into()).into());
        }
        plan.output_dir(&output)
            .map_err(|e| BadInput(format!("-o: {e}")))?;
        let files = list_dir(&a.input)?;
        plan.input_files(files.iter().map(PathBuf::as_path));
        for f in &files {
            plan.output(&dir_output_name(&output, f))
                .map_err(|e| BadInput(format!("-o: {e}")))?;
        }
        Some(files)
    } else {
        plan.output(&output)
            .map_err(|e| BadInput(format!("-o: {e}")))?;
        if a.input.as_os_str() != "-" {
            // A missing or unreadable input is reported alone, before anything is written.
            // (Standard input cannot be looked at twice.)
            CaptureReader::open(&a.input)?;
        }
        None
    };
    if let Some(r) = &a.report {
        plan.output(r)
            .map_err(|e| BadInput(format!("--report: {e}")))?;
    }
    let key = if cfg.anonymize.is_some() {
        resolve_key(
            a.key_file.as_ref().or(file_cfg.anonymize.key_file.as_ref()),
            a.passphrase
                .clone()
                .or_else(|| std::env::var("NETSPECTRA_PASSPHRASE").ok())
                .or(file_cfg.anonymize.passphrase.clone())
                .as_deref(),
        )?
    } else {
        [0u8; KEY_LEN]
    };
    let stop = Stop::install()?;
    let (report_json, interrupted, failed, input_error) = match &dir_files {
        Some(files) => {
            let flag = stop.handle().shared();
            let (j, i, f) = run_dir(&a, files, &cfg, format, &key, &output, &flag)?;
            (j, i, f, None)
        }
        None => {
            let progress = progress_bar(&a.input, !to_stdout && !a.quiet);
            let r = sanitize_file(
                &a.input,
                &output,
                &cfg,
                format,
                &key,
                &stop.handle().shared(),
                progress.as_ref(),
                threads(&a) >= 2,
            );
            if let Some(p) = progress {
                p.finish_and_clear();
            }
            let Some(rep) = r.report else {
                // Nothing could be read or written: the error alone.
                return Err(r.error.expect("a run without a report has an error"));
            };
            let json = serde_json::json!({
                "input": a.input.display().to_string(),
                "output": output.display().to_string(),
                "kept": r.kept.as_ref().map(|p| p.display().to_string()),
                "interrupted": r.interrupted,
                "complete": r.error.is_none() && !r.interrupted,
                "report": rep,
            });
            (
                json,
                r.interrupted,
                Vec::new(),
                r.error.map(|e| (e, r.kept)),
            )
        }
    };
    if let Some(p) = &a.report {
        let text = serde_json::to_string_pretty(&report_json)? + "\n";
        let mut f = AtomicFile::create(p).with_context(|| format!("writing {}", p.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.commit().map(|_| ()))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(io::stderr())
    } else {
        Box::new(io::stdout())
    };
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report_json)?)?;
    } else if !a.quiet {
        print_summary(&mut out, &report_json)?;
    }
    out.flush()?;
    if let Some((e, kept)) = input_error {
        // The error names file and byte offset; what came before it is a valid capture.
        return Err(match kept {
            Some(p) => e.context(format!(
                "the frames sanitized before it are in {}",
                p.display()
            )),
            None => e,
        });
    }
    if !failed.is_empty() {
        return Err(BadInput(format!(
            "{} file(s) failed: {}",
            failed.len(),
            failed.join("; ")
        ))
        .into());
    }
    if interrupted {
        let detail = match report_json["kept"].as_str() {
            Some(p) => format!("the frames processed until then are in {p}"),
            None if dir_files.is_some() => {
                "files finished before it are complete; the one in progress is kept as \
                 <name>.partial"
                    .to_string()
            }
            None => "the output holds the frames processed until then".to_string(),
        };
        return Err(stop.interrupted(detail).into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The regular files of an input directory, sorted.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Where directory mode writes the sanitized copy of `input`: same name in OUTDIR, without a
/// `.gz` suffix (the output is not compressed, so the name must not say it is).
fn dir_output_name(outdir: &Path, input: &Path) -> PathBuf {
    let name = input.file_name().unwrap_or_default().to_string_lossy();
    let name = name
        .strip_suffix(".gz")
        .filter(|n| !n.is_empty())
        .unwrap_or(&name);
    outdir.join(name)
}

/// Reads a small file (key, config) whole, refusing one larger than `max` bytes instead of
/// reading a wrong path (a capture, `/dev/zero`) without limit.
fn read_bounded(p: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let f = File::open(p).with_context(|| format!("cannot read {what} {}", p.display()))?;
    let mut buf = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read {what} {}", p.display()))?;
    if buf.len() as u64 > max {
        return Err(BadInput(format!(
            "{what} {}: larger than {max} bytes; is this the right file?",
            p.display()
        ))
        .into());
    }
    Ok(buf)
}

fn build_config(a: &SanitizeArgs, f: &ConfigFile) -> Result<SanitizeConfig> {
    let mut stages = [a.dedup, a.anonymize, a.mask];
    if !stages.iter().any(|&s| s) {
        match &f.stages {
            Some(list) if list.is_empty() => {
                return Err(BadInput(
                    "config: `stages: []` names no stage, so the output would be an exact copy \
                     of the input; name at least one of dedup, anonymize, mask (or leave \
                     `stages` out for all three)"
                        .into(),
                )
                .into())
            }
            Some(list) => {
                for s in list {
                    match s.as_str() {
                        "dedup" => stages[0] = true,
                        "anonymize" => stages[1] = true,
                        "mask" => stages[2] = true,
                        other => {
                            return Err(BadInput(format!("config: unknown stage {other:?}")).into())
                        }
                    }
                }
            }
            None => stages = [true; 3],
        }
    }
    let dedup = stages[0].then(|| DedupConfig {
        window_packets: a.dedup_window.or(f.dedup.window),
        window_ns: a
            .dedup_time
            .or(f.dedup.time_window)
            .map(|s| (s * 1e9).round() as i64),
        capacity: a
            .dedup_capacity
            .or(f.dedup.capacity)
            .unwrap_or(netspectra_sanitize::dedup::DEFAULT_CAPACITY),
    });
    if let Some(d) = &dedup {
        if d.window_packets
            .is_some_and(|n| n > netspectra_sanitize::dedup::MAX_WINDOW)
        {
            return Err(BadInput(format!(
                "--dedup-window is at most {}",
                netspectra_sanitize::dedup::MAX_WINDOW
            ))
            .into());
        }
        if d.capacity == 0 || d.capacity > netspectra_sanitize::dedup::MAX_CAPACITY {
            return Err(BadInput(format!(
                "--dedup-capacity (dedup.capacity) must be 1..={} frames (about 32 bytes each)",
                netspectra_sanitize::dedup::MAX_CAPACITY
            ))
            .into());
        }
        if d.window_ns.is_some_and(|n| n < 0) {
            return Err(BadInput("--dedup-time must not be negative".into()).into());
        }
    }
    let anonymize = if stages[1] {
        let mut p = f.anonymize.policy.clone().unwrap_or_default();
        if let Some(list) = &a.keep {
            p.keep_private = false;
            p.keep_multicast = false;
            p.keep_broadcast = false;
            p.keep_loopback = false;
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match item {
                    "private" => p.keep_private = true,
                    "multicast" => p.keep_multicast = true,
                    "broadcast" => p.keep_broadcast = true,
                    "loopback" => p.keep_loopback = true,
                    "none" => {}
                    other => {
                        return Err(BadInput(format!("--keep: unknown range {other:?}")).into())
                    }
                }
            }
        }
        if a.truncate_v4.is_some() {
            p.truncate_v4 = a.truncate_v4;
        }
        if a.truncate_v6.is_some() {
            p.truncate_v6 = a.truncate_v6;
        }
        if p.truncate_v4.is_some_and(|b| b > 32) || p.truncate_v6.is_some_and(|b| b > 128) {
            return Err(
                BadInput("truncation is at most 32 (IPv4) / 128 (IPv6) bits".into()).into(),
            );
        }
        p.mac |= a.anonymize_mac;
        Some(p)
    } else {
        None
    };
    let mask = if stages[2] {
        let mut m = f.mask.clone().unwrap_or_default();
        m.keep_dns |= a.keep_dns;
        if let Some(n) = a.keep_bytes {
            m.keep_bytes = n;
        }
        if let Some(list) = &a.secret_headers {
            m.secret_headers = list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(n) = a.max_flows {
            m.max_flows = n;
        }
        Some(m)
    } else {
        None
    };
    Ok(SanitizeConfig {
        dedup,
        anonymize,
        mask,
    })
}

fn resolve_key(file: Option<&PathBuf>, pass: Option<&str>) -> Result<[u8; KEY_LEN]> {
    if let Some(p) = file {
        // A key file holds 32 bytes or 64 hex digits (with whitespace): 4 KiB is plenty.
        let bytes = read_bounded(p, 4096, "key file")?;
        return parse_key(&bytes)
            .map_err(|e| BadInput(format!("key file {}: {e}", p.display())).into());
    }
    if let Some(p) = pass {
        if p.is_empty() {
            // An empty secret is a key anyone can derive: the mapping would not be secret.
            return Err(BadInput(
                "the passphrase is empty (--passphrase, NETSPECTRA_PASSPHRASE or the config's \
                 anonymize.passphrase): give a secret one, or a --key-file"
                    .into(),
            )
            .into());
        }
        return Ok(key_from_passphrase(p));
    }
    let mut key = [0u8; KEY_LEN];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("reading a random key from /dev/urandom")?;
    eprintln!(
        "netspectra: no key given; using random key {} (save it to a file and pass --key-file to repeat this mapping)",
        key_hex(&key)
    );
    Ok(key)
}

fn progress_bar(input: &Path, enabled: bool) -> Option<ProgressBar> {
    if !enabled || !io::stderr().is_terminal() {
        return None;
    }
    let size = std::fs::metadata(input).ok().filter(|m| m.is_file())?.len();
    let pb = ProgressBar::new(size);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
        )
        .ok()?
        .progress_chars("=> "),
    );
    Some(pb)
}

/// Interface descriptions with everything identifying removed (names, descriptions, filters).
fn scrub(ifaces: &[InterfaceInfo]) -> Vec<InterfaceInfo> {
    ifaces
        .iter()
        .map(|i| InterfaceInfo {
            link: i.link,
            snaplen: i.snaplen,
            ts_precision: i.ts_precision,
            name: None,
            description: None,
            filter: None,
        })
        .collect()
}

fn out_format(choice: Option<FormatArg>, input: FileFormat) -> OutputFormat {
    match choice {
        Some(FormatArg::Pcapng) => OutputFormat::Pcapng,
        Some(FormatArg::Pcap) => OutputFormat::Pcap {
            nanos: input.is_nanos(),
        },
        None => match input {
            FileFormat::Pcap { nanos, .. } => OutputFormat::Pcap { nanos },
            FileFormat::Pcapng { .. } => OutputFormat::Pcapng,
        },
    }
}

/// What one file's run left behind.
struct FileOutcome {
    /// The report (when the output could be opened).
    report: Option<Report>,
    /// The error that ended the run early, if any.
    error: Option<anyhow::Error>,
    /// A signal stopped the run.
    interrupted: bool,
    /// Where the output is: its name when complete, `<name>.partial` when the run stopped
    /// early (the frames before the stop, a valid capture), nothing after a write error.
    kept: Option<PathBuf>,
}

/// Sanitizes one file. The output appears under its name only when the whole input was
/// sanitized; see [`FileOutcome`].
/// `pipelined`: read, sanitize and write on three threads (see [`run_pipelined`]); otherwise
/// everything runs on the calling thread.
#[allow(clippy::too_many_arguments)]
fn sanitize_file(
    input: &Path,
    output: &Path,
    cfg: &SanitizeConfig,
    format: Option<FormatArg>,
    key: &[u8; KEY_LEN],
    stop: &Arc<AtomicBool>,
    progress: Option<&ProgressBar>,
    pipelined: bool,
) -> FileOutcome {
    let failed = |e: anyhow::Error| FileOutcome {
        report: None,
        error: Some(e),
        interrupted: false,
        kept: None,
    };
    let mut reader = match CaptureReader::open(input) {
        Ok(r) => r,
        Err(e) => return failed(e.into()),
    };
    reader.set_stop(Arc::clone(stop));
    let fmt = out_format(format, reader.format());
    let ifaces = scrub(reader.interfaces());
    let sink: Sink = if output.as_os_str() == "-" && pipelined {
        // The writer thread needs an owned, unbuffered handle (not Stdout's line buffer).
        match io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => Destination::Writer(Box::new(File::from(fd))),
            Err(e) => return failed(anyhow::Error::new(e).context("cannot use standard output")),
        }
    } else {
        // A file is written under a temporary name and renamed when complete.
        match Destination::open(output) {
            Ok(d) => d,
            Err(e) => {
                return failed(
                    anyhow::Error::new(e).context(format!("cannot create {}", output.display())),
                )
            }
        }
    };
    let writer = match CaptureWriter::new(sink, fmt, &ifaces) {
        Ok(w) => w,
        Err(e) => return failed(anyhow::Error::new(e).context("writing output header")),
    };
    let mut san = Sanitizer::new(cfg, key);
    let (mut error, interrupted, warnings, sink) = if pipelined {
        let out = if matches!(reader.format(), FileFormat::Pcap { .. }) {
            BatchWriter::raw(writer, fmt)
        } else {
            Ok(BatchWriter::Framed(writer))
        };
        match out {
            // 1 MiB chunks: the pipeline holds 5 of them (see POOL).
            Ok(out) => run_pipelined(
                reader.with_chunk_size(PIPE_CHUNK),
                out,
                ifaces,
                &mut san,
                output,
                stop,
                progress,
            ),
            Err(e) => (
                Some(anyhow::Error::new(e).context("writing output header")),
                false,
                reader.warnings().to_vec(),
                None,
            ),
        }
    } else {
        run_sequential(reader, writer, ifaces, &mut san, output, stop, progress)
    };
    for w in warnings {
        eprintln!("netspectra: warning: {}: {w}", input.display());
    }
    // The output is complete only when the whole input was read; otherwise what was written
    // (a valid capture up to the stop) is kept beside it, never under its name. After a write
    // error the sink is gone and its temporary file with it.
    let kept = match sink {
        None => None,
        Some(d) => {
            let r = if error.is_some() || interrupted {
                d.partial()
            } else {
                d.complete()
            };
            match r {
                Ok(p) => p,
                Err(e) => {
                    error.get_or_insert(
                        anyhow::Error::new(e).context(format!("closing {}", output.display())),
                    );
                    None
                }
            }
        }
    };
    FileOutcome {
        report: Some(san.report()),
        error,
        interrupted,
        kept,
    }
}

type Sink = Destination;
/// Error (if any), whether a signal stopped the run, the reader's warnings, and the output
/// (closed; `None` after a write error).
type RunOutcome = (Option<anyhow::Error>, bool, Vec<ReadWarning>, Option<Sink>);

/// The single-threaded loop: read a chunk, sanitize it in place, write its kept frames.
fn run_sequential(
    mut reader: CaptureReader,
    mut writer: CaptureWriter<Sink>,
    mut ifaces: Vec<InterfaceInfo>,
    san: &mut Sanitizer,
    output: &Path,
    stop: &AtomicBool,
    progress: Option<&ProgressBar>,
) -> RunOutcome {
    let mut spare: Option<OwnedBatch> = None;
    let mut keep = Vec::new();
    let mut error: Option<anyhow::Error> = None;
    let mut interrupted = false;
    let mut write_failed = false;
    let started = std::time::Instant::now();
    loop {
        let batch = match reader.next_owned(spare.take()) {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                error = Some(e.into());
                break;
            }
        };
        if reader.interfaces().len() != ifaces.len() {
            ifaces = scrub(reader.interfaces());
        }
        // The batch buffer is ours: frames are rewritten where they lie, without a copy.
        let mut batch = batch;
        san.process_batch(&mut batch.data, &batch.metas, &mut keep);
        let b = batch.as_batch();
        for (p, _) in b.iter().zip(&keep).filter(|(_, &k)| k) {
            if let Err(e) = writer.write_packet(&p, &ifaces) {
                error = Some(write_error(e, output, san.report().frames.packets_in));
                write_failed = true;
                break;
            }
        }
        spare = Some(batch);
        show_progress(progress, reader.stats().input_offset, san, started);
        if error.is_some() {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
    }
    interrupted |= reader.stopped_early();
    note_clamped(writer.clamped_timestamps(), output);
    let sink = match writer.finish().and_then(|mut w| w.flush().map(|()| w)) {
        Ok(w) if !write_failed => Some(w),
        Ok(_) => None,
        Err(e) => {
            error.get_or_insert(
                anyhow::Error::new(e).context(format!("closing {}", output.display())),
            );
            None
        }
    };
    (error, interrupted, reader.warnings().to_vec(), sink)
}

/// Says on stderr how many frames had a time the output format cannot hold.
fn note_clamped(n: u64, output: &Path) {
    if n > 0 {
        eprintln!(
            "netspectra: warning: {}: {n} frame(s) had a time the output format cannot hold \
             (pcap: 1970 to 2106; pcapng: from 1970) and were written with the nearest one",
            output.display()
        );
    }
}

fn write_error(
    e: impl std::error::Error + Send + Sync + 'static,
    output: &Path,
    frame: u64,
) -> anyhow::Error {
    anyhow::Error::new(e).context(format!("writing {} (frame {frame})", output.display()))
}

fn show_progress(
    progress: Option<&ProgressBar>,
    offset: u64,
    san: &Sanitizer,
    started: std::time::Instant,
) {
    if let Some(pb) = progress {
        pb.set_position(offset);
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        let pps = san.report().frames.packets_in as f64 / secs;
        pb.set_message(format!("{:.0} kpkt/s", pps / 1e3));
    }
}

/// One chunk travelling reader → sanitizer → writer (and back to the reader for reuse).
#[derive(Default)]
struct Work {
    batch: OwnedBatch,
    /// Per frame: written (true) or removed as a duplicate.
    keep: Vec<bool>,
    /// The scrubbed interface list, when it changed with this chunk (pcapng).
    ifaces: Option<Vec<InterfaceInfo>>,
    /// Input offset after this chunk (progress).
    offset: u64,
    /// Frames read up to the end of this chunk (error messages).
    frames_through: u64,
}

/// Chunks in circulation: one being filled by the reader, one sanitized, one written and one
/// queued (slack for jitter). With the reader's own buffer that is 5 chunk buffers, allocated
/// once; the reader waits for a free one, so memory does not depend on timing.
const POOL: usize = 4;
/// Chunk size of the pipeline: 5 MiB of buffers in all. Batch boundaries do not change the
/// output.
const PIPE_CHUNK: usize = 1 << 20;

/// Reads, sanitizes and writes on three threads that hand whole chunks to each other through
/// bounded queues: the reader thread parses chunks, this thread runs the (order-dependent)
/// sanitizer over each chunk in capture order, and the writer thread writes the kept frames.
/// The sanitizer sees exactly the same chunks in the same order as [`run_sequential`], so the
/// output is byte-identical; only the `read()` and `write()` copies move to other cores.
fn run_pipelined(
    reader: CaptureReader,
    out: BatchWriter,
    ifaces: Vec<InterfaceInfo>,
    san: &mut Sanitizer,
    output: &Path,
    stop: &AtomicBool,
    progress: Option<&ProgressBar>,
) -> RunOutcome {
    use std::sync::mpsc::sync_channel;
    let (to_san, from_reader) = sync_channel::<Result<Work, netspectra_packet::SourceError>>(POOL);
    let (to_writer, from_san) = sync_channel::<Work>(POOL);
    // Written chunks go back to the reader (queues never hold more than POOL chunks).
    let (free_tx, free_rx) = sync_channel::<Work>(POOL);
    for _ in 0..POOL {
        free_tx.send(Work::default()).expect("the queue has room");
    }
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        let named = |n: &str| std::thread::Builder::new().name(n.into());
        let reader_thread = named("sanitize-read").spawn_scoped(s, move || {
            let mut reader = reader;
            let mut n_ifaces = reader.interfaces().len();
            // Ends when the writer has stopped and no free chunk is left.
            for mut w in free_rx.iter() {
                let spare = std::mem::take(&mut w.batch);
                match reader.next_owned(Some(spare)) {
                    Ok(Some(b)) => {
                        w.batch = b;
                        w.ifaces = None;
                        if reader.interfaces().len() != n_ifaces {
                            n_ifaces = reader.interfaces().len();
                            w.ifaces = Some(scrub(reader.interfaces()));
                        }
                        w.offset = reader.stats().input_offset;
                        if to_san.send(Ok(w)).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = to_san.send(Err(e));
                        break;
                    }
                }
            }
            (reader.warnings().to_vec(), reader.stopped_early())
        });
        let reader_thread = reader_thread.expect("spawning the reader thread");
        let writer_thread = named("sanitize-write").spawn_scoped(s, move || {
            let mut out = out;
            let mut ifaces = ifaces;
            let mut error = None;
            for mut w in from_san {
                if let Some(i) = w.ifaces.take() {
                    ifaces = i;
                }
                if let Err(e) = out.write_batch(&mut w.batch, &w.keep, &ifaces) {
                    error = Some(write_error(e, output, w.frames_through));
                    break;
                }
                let _ = free_tx.send(w);
            }
            note_clamped(out.clamped(), output);
            let failed = error.is_some();
            let sink = match out.finish() {
                Ok(w) if !failed => Some(w),
                Ok(_) => None,
                Err(e) => {
                    error.get_or_insert(
                        anyhow::Error::new(e).context(format!("closing {}", output.display())),
                    );
                    None
                }
            };
            (error, sink)
        });
        let writer_thread = writer_thread.expect("spawning the writer thread");
        let mut error = None;
        let mut interrupted = false;
        for msg in from_reader.iter() {
            let mut w = match msg {
                Ok(w) => w,
                Err(e) => {
                    error = Some(e.into());
                    break;
                }
            };
            san.process_batch(&mut w.batch.data, &w.batch.metas, &mut w.keep);
            w.frames_through = san.report().frames.packets_in;
            show_progress(progress, w.offset, san, started);
            if to_writer.send(w).is_err() {
                break; // the writer failed; its error is reported below
            }
            if stop.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
        }
        // Closing the queues stops the reader and lets the writer drain and close the file.
        drop(from_reader);
        drop(to_writer);
        let (warnings, stopped_early) = reader_thread.join().expect("reader thread does not panic");
        interrupted |= stopped_early;
        let (werr, sink) = writer_thread.join().expect("writer thread does not panic");
        (error.or(werr), interrupted, warnings, sink)
    })
}

/// Writes the kept frames of whole chunks.
enum BatchWriter {
    /// Frame by frame through the capture writer (pcapng input or output).
    Framed(CaptureWriter<Sink>),
    /// Classic pcap from classic pcap: each kept frame's output record header is written over
    /// the 16 bytes in front of it in the chunk buffer (they held the input record header), so
    /// runs of kept records are contiguous and go out with `writev` straight from the chunk,
    /// without copying them into a write buffer. Same bytes as [`CaptureWriter`] writes.
    Raw {
        w: Sink,
        nanos: bool,
        runs: Vec<(usize, usize)>,
        /// Frames whose time pcap cannot hold (clamped).
        clamped: u64,
    },
}

impl BatchWriter {
    /// Switches a pcap writer (its file header already written) to raw record writes.
    fn raw(writer: CaptureWriter<Sink>, fmt: OutputFormat) -> io::Result<BatchWriter> {
        match writer {
            CaptureWriter::Pcap(p) => {
                let nanos = matches!(fmt, OutputFormat::Pcap { nanos: true });
                Ok(BatchWriter::Raw {
                    w: p.finish()?,
                    nanos,
                    runs: Vec::new(),
                    clamped: 0,
                })
            }
            w => Ok(BatchWriter::Framed(w)),
        }
    }

    fn write_batch(
        &mut self,
        b: &mut OwnedBatch,
        keep: &[bool],
        ifaces: &[InterfaceInfo],
    ) -> Result<(), WriteError> {
        let (w, nanos, runs) = match self {
            BatchWriter::Framed(w) => {
                for (p, _) in b.as_batch().iter().zip(keep).filter(|(_, &k)| k) {
                    w.write_packet(&p, ifaces)?;
                }
                return Ok(());
            }
            BatchWriter::Raw {
                w,
                nanos,
                runs,
                clamped,
            } => {
                *clamped += b
                    .metas
                    .iter()
                    .zip(keep)
                    .filter(|(m, &k)| k && !netspectra_pcap::pcap_ts_fits(m.ts))
                    .count() as u64;
                (w, *nanos, runs)
            }
        };
        runs.clear();
        let data = &mut b.data;
        for (m, _) in b.metas.iter().zip(keep).filter(|(_, &k)| k) {
            let start = m.offset as usize;
            let end = start.saturating_add(m.caplen as usize);
            let len = if end <= data.len() { end - start } else { 0 };
            let hdr = netspectra_pcap::pcap_record_header(m.ts, m.orig_len, len, nanos);
            if start < 16 || end > data.len() {
                // Not laid out as a pcap record (never produced by the reader): write it apart.
                write_runs(w, data, runs)?;
                runs.clear();
                w.write_all(&hdr)?;
                w.write_all(data.get(start..end).unwrap_or(&[]))?;
                continue;
            }
            let at = start - 16;
            data[at..start].copy_from_slice(&hdr);
            match runs.last_mut() {
                Some(r) if r.1 == at => r.1 = start + len,
                _ => runs.push((at, start + len)),
            }
        }
        write_runs(w, data, runs)?;
        Ok(())
    }

    /// Frames written with a clamped time.
    fn clamped(&self) -> u64 {
        match self {
            BatchWriter::Framed(w) => w.clamped_timestamps(),
            BatchWriter::Raw { clamped, .. } => *clamped,
        }
    }

    /// Flushes and hands the output back for completing.
    fn finish(self) -> io::Result<Sink> {
        match self {
            BatchWriter::Framed(w) => {
                let mut w = w.finish()?;
                w.flush()?;
                Ok(w)
            }
            BatchWriter::Raw { mut w, .. } => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

/// Writes byte ranges of `data` in order with as few `writev` calls as the kernel allows.
fn write_runs(w: &mut Sink, data: &[u8], runs: &[(usize, usize)]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = runs
        .iter()
        .map(|&(a, b)| io::IoSlice::new(&data[a..b]))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match w.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `--threads`, by default the number of CPUs.
fn threads(a: &SanitizeArgs) -> usize {
    a.threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

type DirOutcome = (serde_json::Value, bool, Vec<String>);
/// One file's report, error message and interruption flag.
type DirFileOutcome = (Option<Report>, Option<String>, bool);

#[allow(clippy::too_many_arguments)]
fn run_dir(
    a: &SanitizeArgs,
    files: &[PathBuf],
    cfg: &SanitizeConfig,
    format: Option<FormatArg>,
    key: &[u8; KEY_LEN],
    outdir: &Path,
    stop: &Arc<AtomicBool>,
) -> Result<DirOutcome> {
    std::fs::create_dir_all(outdir)
        .with_context(|| format!("cannot create output directory {}", outdir.display()))?;
    let threads = threads(a).clamp(1, files.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<DirFileOutcome>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files.len() || stop.load(Ordering::Relaxed) {
                    break;
                }
                let inp = &files[i];
                let out = dir_output_name(outdir, inp);
                // Files already run in parallel: each file on one thread.
                let r = sanitize_file(inp, &out, cfg, format, key, stop, None, false);
                let err = r.error.map(|e| match &r.kept {
                    Some(k) => format!(
                        "{}: {e:#} (the frames before it are in {})",
                        inp.display(),
                        k.display()
                    ),
                    None => format!("{}: {e:#}", inp.display()),
                });
                results.lock().expect("no worker panics holding the lock")[i] =
                    Some((r.report, err, r.interrupted));
            });
        }
    });
    let results = results.into_inner().expect("workers finished");
    let mut total = Report::default();
    let mut per_file = Vec::new();
    let mut failed = Vec::new();
    let mut interrupted = false;
    for (f, r) in files.iter().zip(results) {
        let Some((rep, err, intr)) = r else {
            interrupted = true;
            continue;
        };
        interrupted |= intr;
        if let Some(rep) = &rep {
            total.merge(rep);
        }
        if let Some(e) = &err {
            eprintln!("netspectra: error: {e}");
            failed.push(e.clone());
        }
        per_file.push(serde_json::json!({
            "input": f.display().to_string(),
            "report": rep,
            "error": err,
        }));
    }
    let json = serde_json::json!({
        "input": a.input.display().to_string(),
        "output": outdir.display().to_string(),
        "interrupted": interrupted,
        "report": total,
        "files": per_file,
    });
    Ok((json, interrupted, failed))
}

fn print_summary(out: &mut dyn Write, j: &serde_json::Value) -> io::Result<()> {
    let r = &j["report"];
    let f = &r["frames"];
    writeln!(out, "input:      {}", j["input"].as_str().unwrap_or(""))?;
    writeln!(out, "output:     {}", j["output"].as_str().unwrap_or(""))?;
    writeln!(
        out,
        "frames:     {} in, {} out ({} bytes in, {} out)",
        f["packets_in"], f["packets_out"], f["bytes_in"], f["bytes_out"]
    )?;
    writeln!(
        out,
        "duplicates: {} removed ({} bytes)",
        f["duplicates_removed"], f["duplicate_bytes"]
    )?;
    if let Some(a) = r["anonymize"].as_object() {
        writeln!(
            out,
            "addresses:  {} fields rewritten, {} kept, {} distinct mapped, {} MACs",
            a["ip_fields_rewritten"],
            a["ip_fields_kept"],
            a["cryptopan_computed"],
            a["mac_fields_rewritten"]
        )?;
    }
    if let Some(m) = r["mask"].as_object() {
        for k in ["tls", "http", "dns", "other", "unparsed", "trailer"] {
            writeln!(
                out,
                "mask {k:<9} {} bytes kept, {} masked",
                m[k]["kept"], m[k]["masked"]
            )?;
        }
        writeln!(
            out,
            "unparsed:   {} frames masked above the last layer understood",
            f["unparsed_packets"]
        )?;
    }
    if j["interrupted"].as_bool() == Some(true) {
        writeln!(
            out,
            "interrupted: output is complete up to the last frame processed"
        )?;
    }
    Ok(())
}

/// Reads a capture packet by packet across batches.
struct Cursor {
    reader: CaptureReader,
    batch: Option<OwnedBatch>,
    idx: usize,
    started: bool,
}

impl Cursor {
    fn open(p: &Path) -> Result<Self> {
        Ok(Cursor {
            reader: CaptureReader::open(p)?,
            batch: None,
            idx: 0,
            started: false,
        })
    }

    /// Moves to the next packet; false at the end.
    fn advance(&mut self) -> Result<bool> {
        if self.started {
            self.idx += 1;
        } else {
            self.started = true;
            self.idx = 0;
        }
        loop {
            if let Some(b) = &self.batch {
                if self.idx < b.metas.len() {
                    return Ok(true);
                }
            }
            let spare = self.batch.take();
            match self.reader.next_owned(spare)? {
                Some(b) => {
                    self.batch = Some(b);
                    self.idx = 0;
                }
                None => return Ok(false),
            }
        }
    }

    fn packet(&self) -> Packet<'_> {
        let b = self.batch.as_ref().expect("advance returned true");
        b.as_batch().packet(&b.metas[self.idx])
    }
}

fn ck_names(bits: u8) -> String {
    (0..CK_NAMES.len())
        .filter(|k| bits & (1 << k) != 0)
        .map(|k| CK_NAMES[k])
        .collect::<Vec<_>>()
        .join(",")
}

fn verify(a: &SanitizeArgs) -> Result<ExitCode> {
    let mut out = Cursor::open(&a.input)?;
    let mut orig = match &a.original {
        Some(p) => Some(Cursor::open(p)?),
        None => None,
    };
    let mut ins_out = Inspector::new();
    let mut ins_orig = Inspector::new();
    let mut n = 0u64;
    let mut bad_out = [0u64; CK_NAMES.len()];
    while out.advance()? {
        n += 1;
        let p = out.packet();
        let r = ins_out.inspect(&p);
        if let Some(v) = r.violation {
            eprintln!(
                "netspectra: verify failed: {}: packet {n}: {:?} byte at frame offset {} is not zero",
                a.input.display(),
                v.what,
                v.offset
            );
            return Ok(ExitCode::from(1));
        }
        for (k, c) in bad_out.iter_mut().enumerate() {
            *c += (r.frame.bad_checksums >> k & 1) as u64;
        }
        if let Some(o) = orig.as_mut() {
            // Find the same frame in the original; duplicates removed from it are skipped.
            let (ts, len) = (p.ts, p.data.len());
            let mut before = None;
            while o.advance()? {
                let q = o.packet();
                if q.ts == ts && q.data.len() == len {
                    before = Some(ins_orig.inspect(&q).frame.bad_checksums);
                    break;
                }
            }
            let Some(before) = before else {
                return Err(BadInput(format!(
                    "{}: packet {n} has no counterpart in {}: not a sanitized copy of it",
                    a.input.display(),
                    a.original.as_ref().expect("orig is set").display()
                ))
                .into());
            };
            let newly = r.frame.bad_checksums & !before;
            if newly != 0 {
                eprintln!(
                    "netspectra: verify failed: {}: packet {n}: {} checksum newly wrong",
                    a.input.display(),
                    ck_names(newly)
                );
                return Ok(ExitCode::from(1));
            }
        }
    }
    let bad: serde_json::Map<String, serde_json::Value> = CK_NAMES
        .iter()
        .zip(bad_out)
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect();
    let j = serde_json::json!({
        "file": a.input.display().to_string(),
        "packets": n,
        "ok": true,
        "checksums_not_verifying": bad,
        "compared_with_original": a.original.is_some(),
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else if a.quiet {
        // The exit status says it.
    } else if a.original.is_some() {
        println!(
            "verify ok: {}: {n} packets; no TLS application-data, HTTP body or secret header byte left; no checksum newly wrong",
            a.input.display()
        );
    } else {
        println!(
            "verify ok: {}: {n} packets; no TLS application-data, HTTP body or secret header byte left; checksums not verifying (pass --original to tell new from old): {}",
            a.input.display(),
            serde_json::Value::Object(bad)
        );
    }
    Ok(ExitCode::SUCCESS)
}
