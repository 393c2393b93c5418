//! `netspectra sanitize`: dedup, anonymize and mask a capture (or a directory of captures) in one
//! streaming pass, and `--verify` a sanitized capture.
//!
//! A thin front-end of `netspectra_pipeline::sanitize`, which runs the files: this module reads
//! the arguments and configuration (`config`), checks every output against the inputs, resolves
//! the key, shows progress, warnings and the summary, and picks the exit status.

mod config;
mod verify;

use crate::exit::BadInput;
use crate::stop::Stop;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use netspectra_pcap::CaptureReader;
use netspectra_pipeline::sanitize::{
    dir_output_name, input_files, sanitize_dir, sanitize_file, FileOutcome, FormatChoice,
    SanitizeError, SanitizeJob,
};
use netspectra_sanitize::{Report, KEY_LEN};
use netspectra_sinks::outputs::{AtomicFile, OutputPlan};
use serde::{Deserialize, Serialize};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

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

impl From<FormatArg> for FormatChoice {
    fn from(f: FormatArg) -> FormatChoice {
        match f {
            FormatArg::Pcap => FormatChoice::Pcap,
            FormatArg::Pcapng => FormatChoice::Pcapng,
        }
    }
}

/// Runs the subcommand.
pub fn run(a: SanitizeArgs) -> Result<ExitCode> {
    if a.verify {
        return verify::verify(&a);
    }
    let file_cfg = config::load(&a)?;
    let cfg = config::build_config(&a, &file_cfg)?;
    let format = a.format.or(file_cfg.format).map(FormatChoice::from);
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
        let files = input_files(&a.input).map_err(into_anyhow)?;
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
        config::resolve_key(
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
    let flag = stop.handle().shared();
    let job = SanitizeJob {
        config: &cfg,
        key: &key,
        format,
        stop: &flag,
    };
    let (report_json, interrupted, failed, input_error) = match &dir_files {
        Some(files) => {
            let (j, i, f) = run_dir(&a, files, &job, &output)?;
            (j, i, f, None)
        }
        None => {
            let progress = progress_bar(&a.input, !to_stdout && !a.quiet);
            let started = Instant::now();
            let show = |offset: u64, frames: u64| {
                if let Some(pb) = &progress {
                    pb.set_position(offset);
                    let secs = started.elapsed().as_secs_f64().max(1e-3);
                    pb.set_message(format!("{:.0} kpkt/s", frames as f64 / secs / 1e3));
                }
            };
            let r = sanitize_file(
                &a.input,
                &output,
                &job,
                progress.is_some().then_some(&show as &dyn Fn(u64, u64)),
                threads(&a) >= 2,
            );
            if let Some(p) = progress {
                p.finish_and_clear();
            }
            print_notes(&a.input, &output, &r);
            let Some(rep) = r.report else {
                // Nothing could be read or written: the error alone.
                return Err(into_anyhow(
                    r.error.expect("a run without a report has an error"),
                ));
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
                r.error.map(|e| (into_anyhow(e), r.kept)),
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

/// A library error as the CLI reports it: a read error stays the reader's own error (its kind
/// decides between exit status 2 and 1), every other one keeps its message and causes.
fn into_anyhow(e: SanitizeError) -> anyhow::Error {
    match e {
        SanitizeError::Read(e) => e.into(),
        other => other.into(),
    }
}

/// Prints a file's warnings on stderr: frames with a time the output format cannot hold, then
/// what the reader skipped or found odd.
fn print_notes(input: &Path, output: &Path, r: &FileOutcome) {
    if r.clamped > 0 {
        eprintln!(
            "netspectra: warning: {}: {} frame(s) had a time the output format cannot hold \
             (pcap: 1970 to 2106; pcapng: from 1970) and were written with the nearest one",
            output.display(),
            r.clamped
        );
    }
    for w in &r.warnings {
        eprintln!("netspectra: warning: {}: {w}", input.display());
    }
}

/// `--threads`, by default the number of CPUs.
fn threads(a: &SanitizeArgs) -> usize {
    a.threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// The directory run's JSON report, whether a signal interrupted it, and the failed files.
type DirOutcome = (serde_json::Value, bool, Vec<String>);

/// Sanitizes every file of the input directory (several at a time) and sums their reports.
fn run_dir(
    a: &SanitizeArgs,
    files: &[PathBuf],
    job: &SanitizeJob<'_>,
    outdir: &Path,
) -> Result<DirOutcome> {
    let notes = |input: &Path, r: &FileOutcome| {
        print_notes(input, &dir_output_name(outdir, input), r);
    };
    let outcomes = sanitize_dir(files, outdir, job, threads(a), &notes).map_err(into_anyhow)?;
    let mut total = Report::default();
    let mut per_file = Vec::new();
    let mut failed = Vec::new();
    let mut interrupted = false;
    for (f, r) in files.iter().zip(outcomes) {
        let Some(r) = r else {
            interrupted = true;
            continue;
        };
        interrupted |= r.interrupted;
        let err = r.error.map(|e| match &r.kept {
            Some(k) => format!(
                "{}: {:#} (the frames before it are in {})",
                f.display(),
                into_anyhow(e),
                k.display()
            ),
            None => format!("{}: {:#}", f.display(), into_anyhow(e)),
        });
        if let Some(rep) = &r.report {
            total.merge(rep);
        }
        if let Some(e) = &err {
            eprintln!("netspectra: error: {e}");
            failed.push(e.clone());
        }
        per_file.push(serde_json::json!({
            "input": f.display().to_string(),
            "report": r.report,
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

/// A progress bar over the input's size, when stderr is a terminal and the input a file.
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

/// The human-readable summary of a run's JSON report.
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
