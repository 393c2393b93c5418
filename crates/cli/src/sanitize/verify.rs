//! `netspectra sanitize --verify`: re-read a sanitized capture and fail if a TLS
//! application-data byte, HTTP body byte or secret header value is left non-zero, or (with
//! `--original`) if a checksum is newly wrong.

use super::SanitizeArgs;
use crate::exit::BadInput;
use anyhow::Result;
use netspectra_packet::{OwnedBatch, Packet};
use netspectra_pcap::CaptureReader;
use netspectra_sanitize::{Inspector, CK_NAMES};
use std::path::Path;
use std::process::ExitCode;

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

/// The names of the checksums set in `bits`, comma-separated.
fn ck_names(bits: u8) -> String {
    (0..CK_NAMES.len())
        .filter(|k| bits & (1 << k) != 0)
        .map(|k| CK_NAMES[k])
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs the check; exit status 1 when it fails.
pub(super) fn verify(a: &SanitizeArgs) -> Result<ExitCode> {
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
