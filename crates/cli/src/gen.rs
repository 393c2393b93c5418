//! `netspectra gen`: deterministic synthetic traffic (TCP/HTTP/TLS/DNS/ICMP, VLANs, IPv6,
//! duplicates) written as pcap/pcapng, with an optional JSON truth file.

use crate::exit::BadInput;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use netspectra_gen::{generate, Format, GenConfig, Mix};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Output format on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    /// Classic pcap, nanosecond timestamps.
    Pcap,
    /// Classic pcap, microsecond timestamps.
    PcapUs,
    /// pcapng.
    Pcapng,
}

/// Arguments of `netspectra gen`.
#[derive(Args)]
pub struct GenArgs {
    /// Output capture file; `-` writes to standard output.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Stop after about this many packets (sessions in progress are completed).
    #[arg(long)]
    packets: Option<u64>,
    /// Stop once the file reaches about this size; accepts K, M, G suffixes (powers of 1024).
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Random seed: the same seed and settings give a byte-identical file.
    #[arg(long)]
    seed: Option<u64>,
    /// Output format.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Share of frames that are exact duplicates (default 0.05).
    #[arg(long)]
    dup: Option<f64>,
    /// Write the truth (exact counts of what was generated) as JSON to this file.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// YAML or JSON file with generator settings (any field of the library's GenConfig);
    /// command-line options override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Sessions alive at once.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Traffic mix preset: default, tls-heavy, dns-heavy or all (replaces a --config mix).
    #[arg(long)]
    mix: Option<String>,
}

/// Parses `123`, `10K`, `64M`, `1G`, `1.5G` (binary multiples).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?} (examples: 5000, 64M, 1G)"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("size must be positive: {s:?}"));
    }
    Ok((v * mult as f64) as u64)
}

/// Refuses flag values out of the generator's bounds, naming the flag (a config file's values
/// are checked as it is read, naming the key and line).
fn check_flags(a: &GenArgs) -> Result<(), BadInput> {
    use netspectra_gen::check;
    let flag = |name: &str, r: Result<(), String>| r.map_err(|m| BadInput(format!("{name} {m}")));
    if let Some(d) = a.dup {
        flag("--dup", check::dup_share(d).map(drop))?;
    }
    if let Some(c) = a.concurrency {
        flag("--concurrency", check::concurrency(c as u64).map(drop))?;
    }
    if let Some(n) = a.packets {
        flag("--packets", check::target(n).map(drop))?;
    }
    if let Some(n) = a.size {
        flag("--size", check::target(n).map(drop))?;
    }
    Ok(())
}

/// The file a path names, to compare two paths: its device and inode when it exists (hard
/// links, symbolic links and `.`/`..` spellings all compare equal), else the canonical path of
/// its folder plus its name (a dangling symbolic link: of its target). `-` is standard output.
fn file_identity(p: &Path) -> Option<Result<(u64, u64), PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let mut p = if p.as_os_str() == "-" {
        PathBuf::from("/dev/stdout")
    } else {
        p.to_path_buf()
    };
    if let Ok(m) = std::fs::metadata(&p) {
        return Some(Ok((m.dev(), m.ino())));
    }
    // A link to a file not yet created: writing it creates the target.
    for _ in 0..8 {
        match std::fs::read_link(&p) {
            Ok(target) => p = p.parent().unwrap_or(Path::new(".")).join(target),
            Err(_) => break,
        }
    }
    let name = p.file_name()?;
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Some(Err(std::fs::canonicalize(dir).ok()?.join(name)))
}

/// Refuses a truth file that is the capture itself (`gen -o X --truth X` wrote the truth over
/// the capture), before anything is opened for writing.
fn check_outputs(a: &GenArgs) -> Result<(), BadInput> {
    let Some(truth) = &a.truth else {
        return Ok(());
    };
    let (o, t) = (file_identity(&a.output), file_identity(truth));
    if o.is_some() && o == t {
        return Err(BadInput(format!(
            "--truth {} is the same file as the capture -o {}: give the truth another path",
            truth.display(),
            a.output.display()
        )));
    }
    Ok(())
}

/// Runs `netspectra gen`.
pub fn run(a: GenArgs) -> Result<ExitCode> {
    check_flags(&a)?;
    check_outputs(&a)?;
    let mut cfg = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config {}", p.display()))?;
            serde_yaml::from_str::<GenConfig>(&text)
                .map_err(|e| BadInput(format!("{}: {e}", p.display())))?
        }
        None => GenConfig::default(),
    };
    if let Some(n) = a.packets {
        cfg.packets = Some(n);
    }
    if let Some(n) = a.size {
        cfg.bytes = Some(n);
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(f) = a.format {
        cfg.format = match f {
            FormatArg::Pcap => Format::Pcap,
            FormatArg::PcapUs => Format::PcapUs,
            FormatArg::Pcapng => Format::Pcapng,
        };
    }
    if let Some(d) = a.dup {
        cfg.dup_share = d;
    }
    if let Some(c) = a.concurrency {
        cfg.concurrency = c;
    }
    if let Some(m) = &a.mix {
        cfg.mix = Mix::preset(m).ok_or_else(|| {
            BadInput(format!(
                "unknown --mix {m:?} (use one of: {})",
                Mix::PRESETS.join(", ")
            ))
        })?;
    }
    let started = Instant::now();
    let to_stdout = a.output.as_os_str() == "-";
    let result = if to_stdout {
        let out = io::stdout().lock();
        generate(&cfg, out)
    } else {
        let f = File::create(&a.output)
            .with_context(|| format!("cannot create {}", a.output.display()))?;
        generate(&cfg, f)
    };
    let truth = result.map_err(|e| match e {
        netspectra_gen::GenError::Config(m) => anyhow::Error::new(BadInput(m)),
        other => anyhow::Error::new(other).context(format!("writing {}", a.output.display())),
    })?;
    if let Some(p) = &a.truth {
        let f = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
        let mut w = BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, &truth)?;
        w.write_all(b"\n")?;
        w.flush()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let line = format!(
        "netspectra gen: {} packets, {} bytes ({} file bytes) in {:.2}s: {} TCP sessions, {} HTTP requests/{} responses, {} TLS sessions, {} DNS queries, {} duplicates, {} flows",
        truth.packets,
        truth.bytes,
        truth.file_bytes,
        secs,
        truth.tcp.sessions,
        truth.http.requests,
        truth.http.responses,
        truth.tls.sessions,
        truth.dns.queries,
        truth.duplicates.frames,
        truth.flows.total
    );
    if to_stdout {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("10K"), Ok(10 << 10));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert!(parse_size("x").is_err());
        assert!(parse_size("5Q").is_err());
        assert!(parse_size("-1").is_err());
    }
}
