//! What `netspectra sanitize` runs with: the YAML configuration file, the command-line flags
//! over it, and the anonymization key (file, passphrase, or a random one that is shown).

use super::{FormatArg, SanitizeArgs};
use crate::exit::BadInput;
use anyhow::{Context, Result};
use netspectra_sanitize::{
    key_from_passphrase, key_hex, parse_key, AnonPolicy, DedupConfig, MaskConfig, SanitizeConfig,
    KEY_LEN,
};
use serde::Deserialize;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The YAML configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ConfigFile {
    /// Stages to run: dedup, anonymize, mask (default all).
    stages: Option<Vec<String>>,
    pub(super) format: Option<FormatArg>,
    dedup: DedupFile,
    pub(super) anonymize: AnonFile,
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
pub(super) struct AnonFile {
    pub(super) key_file: Option<PathBuf>,
    pub(super) passphrase: Option<String>,
    #[serde(flatten)]
    policy: Option<AnonPolicy>,
}

/// Largest configuration file read (YAML): far beyond any real one, so a wrong path (a
/// capture, a device) is refused instead of read without limit.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads the `--config` file (an empty configuration without one).
pub(super) fn load(a: &SanitizeArgs) -> Result<ConfigFile> {
    Ok(match &a.config {
        Some(p) => {
            let bytes = read_bounded(p, MAX_CONFIG_BYTES, "config")?;
            let text = String::from_utf8(bytes)
                .map_err(|_| BadInput(format!("config {}: not UTF-8 text", p.display())))?;
            serde_yaml::from_str(&text)
                .map_err(|e| BadInput(format!("config {}: {e}", p.display())))?
        }
        None => ConfigFile::default(),
    })
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

/// The stages and their settings: flags over the configuration file.
pub(super) fn build_config(a: &SanitizeArgs, f: &ConfigFile) -> Result<SanitizeConfig> {
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

/// The key: a key file, else a passphrase, else a random key (printed so it can be reused).
pub(super) fn resolve_key(file: Option<&PathBuf>, pass: Option<&str>) -> Result<[u8; KEY_LEN]> {
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
