//! Every capture of tcpdump's regression corpus (../shared/corpus/tcpdump-tests, many of them
//! crafted crash cases) goes through all sanitize stages without panicking, yields a capture our
//! reader reads back frame for frame, leaves no TLS application-data / HTTP body byte for
//! `--verify` to find, and makes no checksum wrong that was right before.

use netspectra_packet::{InterfaceInfo, Packet, PacketSource};
use netspectra_pcap::{CaptureReader, CaptureWriter, FileFormat, OutputFormat};
use netspectra_sanitize::{
    AnonPolicy, DedupConfig, Inspector, MaskConfig, SanitizeConfig, Sanitizer, CK_NAMES,
};
use std::path::{Path, PathBuf};

fn corpus() -> Option<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/tcpdump-tests");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Some(v)
}

/// What one file gave.
#[derive(Default)]
struct Outcome {
    frames_in: u64,
    frames_out: u64,
    frames_reread: u64,
    newly_bad: Vec<String>,
    violations: Vec<String>,
}

fn run_file(path: &Path, cfg: &SanitizeConfig) -> Outcome {
    let mut o = Outcome::default();
    let Ok(mut r) = CaptureReader::open(path) else {
        return o;
    };
    let fmt = match r.format() {
        FileFormat::Pcap { nanos, .. } => OutputFormat::Pcap { nanos },
        FileFormat::Pcapng { .. } => OutputFormat::Pcapng,
    };
    let scrub = |v: &[InterfaceInfo]| -> Vec<InterfaceInfo> {
        v.iter()
            .map(|i| InterfaceInfo {
                link: i.link,
                snaplen: i.snaplen,
                ..Default::default()
            })
            .collect()
    };
    let mut ifaces = scrub(r.interfaces());
    let mut w = CaptureWriter::new(Vec::new(), fmt, &ifaces).unwrap();
    let mut san = Sanitizer::new(cfg, &[42u8; 32]);
    let mut before = Inspector::new();
    let mut after = Inspector::new();
    let mut spare = None;
    let dedup = cfg.dedup.is_some();
    while let Ok(Some(b)) = r.next_owned(spare.take()) {
        if r.interfaces().len() != ifaces.len() {
            ifaces = scrub(r.interfaces());
        }
        for p in b.as_batch().iter() {
            o.frames_in += 1;
            let bad_before = before.inspect(&p).frame.bad_checksums;
            let Some(data) = san.process(&p) else {
                continue;
            };
            let q = Packet { data, ..p };
            let ins = after.inspect(&q);
            if !dedup {
                let newly = ins.frame.bad_checksums & !bad_before;
                for (k, name) in CK_NAMES.iter().enumerate() {
                    if newly & (1 << k) != 0 {
                        o.newly_bad.push(format!("frame {}: {name}", o.frames_in));
                    }
                }
            }
            if let Some(v) = ins.violation {
                o.violations.push(format!("frame {}: {v:?}", o.frames_in));
            }
            // A pcap file takes one link type; frames of others cannot be written to it.
            if w.write_packet(&q, &ifaces).is_ok() {
                o.frames_out += 1;
            }
        }
        spare = Some(b);
    }
    let bytes = w.finish().unwrap();
    let mut rr = CaptureReader::from_reader("reread", Box::new(std::io::Cursor::new(bytes)), None)
        .expect("output has a valid header");
    while let Some(b) = rr
        .next_owned(None)
        .expect("output reads back without error")
    {
        o.frames_reread += b.metas.len() as u64;
    }
    o
}

#[test]
fn every_corpus_file_survives_all_stages() {
    let Some(files) = corpus() else {
        netspectra_testnet::skip(
            "sanitize corpus",
            "../shared/corpus/tcpdump-tests not present",
        );
        return;
    };
    let all = SanitizeConfig {
        dedup: Some(DedupConfig::default()),
        anonymize: Some(AnonPolicy {
            mac: true,
            ..Default::default()
        }),
        mask: Some(MaskConfig::default()),
    };
    let no_dedup = SanitizeConfig {
        dedup: None,
        ..all.clone()
    };
    let mut panics = Vec::new();
    let mut newly_bad = Vec::new();
    let mut violations = Vec::new();
    let mut frames = 0u64;
    for f in &files {
        for cfg in [&all, &no_dedup] {
            match std::panic::catch_unwind(|| run_file(f, cfg)) {
                Ok(o) => {
                    frames += o.frames_in;
                    assert_eq!(
                        o.frames_out,
                        o.frames_reread,
                        "{}: frames written and read back differ",
                        f.display()
                    );
                    newly_bad.extend(o.newly_bad.iter().map(|s| format!("{}: {s}", f.display())));
                    violations.extend(o.violations.iter().map(|s| format!("{}: {s}", f.display())));
                }
                Err(_) => panics.push(f.display().to_string()),
            }
        }
    }
    eprintln!("{} corpus files, {frames} frames sanitized", files.len());
    assert!(panics.is_empty(), "panicked on: {panics:#?}");
    assert!(
        violations.is_empty(),
        "content left behind: {violations:#?}"
    );
    assert!(
        newly_bad.is_empty(),
        "{} checksums newly wrong, first: {:#?}",
        newly_bad.len(),
        &newly_bad[..newly_bad.len().min(30)]
    );
}
