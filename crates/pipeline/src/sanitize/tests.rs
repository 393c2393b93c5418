//! The file runs: both loops write the same bytes and report, progress is seen, a stop keeps
//! `NAME.partial` and never the name, errors come back (nothing printed), and directory mode
//! runs every file under its output name.

use super::*;
use netspectra_gen::{generate, Format, GenConfig};
use netspectra_sanitize::{AnonPolicy, DedupConfig, MaskConfig};
use std::cell::Cell;

/// Every stage with its defaults.
fn all_stages() -> SanitizeConfig {
    SanitizeConfig {
        dedup: Some(DedupConfig::default()),
        anonymize: Some(AnonPolicy::default()),
        mask: Some(MaskConfig::default()),
    }
}

/// A generated capture with duplicates, several pipeline chunks long.
fn capture(dir: &Path, name: &str, format: Format) -> PathBuf {
    let p = dir.join(name);
    let cfg = GenConfig {
        seed: 9,
        packets: Some(12_000),
        format,
        dup_share: 0.05,
        ..GenConfig::default()
    };
    generate(&cfg, File::create(&p).unwrap()).unwrap();
    p
}

const KEY: [u8; KEY_LEN] = [7; KEY_LEN];

#[test]
fn both_loops_write_the_same_bytes_and_report() {
    let d = tempfile::tempdir().unwrap();
    let cfg = all_stages();
    let stop = Arc::new(AtomicBool::new(false));
    let job = SanitizeJob {
        config: &cfg,
        key: &KEY,
        format: None,
        stop: &stop,
    };
    for (name, format) in [("a.pcap", Format::Pcap), ("b.pcapng", Format::Pcapng)] {
        let input = capture(d.path(), name, format);
        let size = std::fs::metadata(&input).unwrap().len();
        let mut outs = Vec::new();
        for pipelined in [false, true] {
            let out = d.path().join(format!("{name}.{pipelined}"));
            let last = Cell::new((0u64, 0u64));
            let calls = Cell::new(0);
            let progress = |offset: u64, frames: u64| {
                assert!(offset >= last.get().0 && frames >= last.get().1);
                last.set((offset, frames));
                calls.set(calls.get() + 1);
            };
            let r = sanitize_file(&input, &out, &job, Some(&progress), pipelined);
            assert!(r.error.is_none(), "{:?}", r.error);
            assert!(!r.interrupted && r.warnings.is_empty() && r.clamped == 0);
            assert_eq!(r.kept.as_deref(), Some(out.as_path()));
            assert!(calls.get() >= 2, "{name}: progress seen per chunk");
            assert_eq!(last.get().0, size, "{name}: progress reaches the end");
            let rep = r.report.unwrap();
            assert_eq!(last.get().1, rep.frames.packets_in);
            assert!(rep.frames.duplicates_removed > 0);
            outs.push((std::fs::read(&out).unwrap(), rep));
        }
        assert!(outs[0].0 == outs[1].0, "{name}: outputs differ");
        assert_eq!(outs[0].1, outs[1].1, "{name}: reports differ");
    }
}

#[test]
fn a_stop_keeps_a_partial_capture_beside_the_name() {
    let d = tempfile::tempdir().unwrap();
    let input = capture(d.path(), "in.pcap", Format::Pcap);
    let cfg = all_stages();
    let stop = Arc::new(AtomicBool::new(true));
    let job = SanitizeJob {
        config: &cfg,
        key: &KEY,
        format: Some(FormatChoice::Pcapng),
        stop: &stop,
    };
    for pipelined in [false, true] {
        let out = d.path().join(format!("out-{pipelined}.pcapng"));
        let r = sanitize_file(&input, &out, &job, None, pipelined);
        assert!(r.interrupted && r.error.is_none());
        let partial = d.path().join(format!("out-{pipelined}.pcapng.partial"));
        assert_eq!(r.kept.as_deref(), Some(partial.as_path()));
        assert!(!out.exists(), "never under the name of a complete output");
        // What was written is a valid capture.
        let mut rd = CaptureReader::open(&partial).unwrap();
        while rd.next_owned(None).unwrap().is_some() {}
    }
}

#[test]
fn errors_come_back_instead_of_being_printed() {
    let d = tempfile::tempdir().unwrap();
    let cfg = all_stages();
    let stop = Arc::new(AtomicBool::new(false));
    let job = SanitizeJob {
        config: &cfg,
        key: &KEY,
        format: None,
        stop: &stop,
    };
    let out = d.path().join("out.pcap");
    let r = sanitize_file(&d.path().join("missing.pcap"), &out, &job, None, true);
    assert!(matches!(r.error, Some(SanitizeError::Read(_))));
    assert!(r.report.is_none() && r.kept.is_none() && !out.exists());
    // A corrupt record after good ones: the frames before it are kept as NAME.partial.
    let input = capture(d.path(), "in.pcap", Format::Pcap);
    let mut bytes = std::fs::read(&input).unwrap();
    // A record header claiming 4 GiB of captured bytes.
    bytes.extend_from_slice(&[0; 8]);
    bytes.extend_from_slice(&[0xff; 8]);
    bytes.extend_from_slice(&[0; 64]);
    let bad = d.path().join("bad.pcap");
    std::fs::write(&bad, bytes).unwrap();
    for pipelined in [false, true] {
        let r = sanitize_file(&bad, &out, &job, None, pipelined);
        assert!(matches!(r.error, Some(SanitizeError::Read(_))), "{r:?}");
        assert!(r.report.unwrap().frames.packets_out > 0);
        assert_eq!(
            r.kept.as_deref(),
            Some(d.path().join("out.pcap.partial").as_path())
        );
        assert!(!out.exists());
    }
}

#[test]
fn directory_mode_runs_every_file_under_its_output_name() {
    let d = tempfile::tempdir().unwrap();
    let inputs = d.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    capture(&inputs, "a.pcap", Format::PcapUs);
    capture(&inputs, "b.pcapng", Format::Pcapng);
    std::fs::create_dir(inputs.join("sub")).unwrap();
    let files = input_files(&inputs).unwrap();
    assert_eq!(files, [inputs.join("a.pcap"), inputs.join("b.pcapng")]);
    assert_eq!(
        dir_output_name(Path::new("o"), Path::new("x/c.pcap.gz")),
        Path::new("o/c.pcap")
    );
    let cfg = all_stages();
    let stop = Arc::new(AtomicBool::new(false));
    let job = SanitizeJob {
        config: &cfg,
        key: &KEY,
        format: None,
        stop: &stop,
    };
    let outdir = d.path().join("out/deeper");
    let seen = std::sync::Mutex::new(Vec::new());
    let on_done = |p: &Path, r: &FileOutcome| {
        assert!(r.error.is_none());
        seen.lock().unwrap().push(p.to_path_buf());
    };
    let outcomes = sanitize_dir(&files, &outdir, &job, 2, &on_done).unwrap();
    assert_eq!(seen.into_inner().unwrap().len(), 2);
    for (f, r) in files.iter().zip(&outcomes) {
        let r = r.as_ref().expect("every file ran");
        assert_eq!(r.kept, Some(dir_output_name(&outdir, f)));
        // The same bytes as one file on its own.
        let alone = d.path().join("alone");
        sanitize_file(f, &alone, &job, None, false);
        assert!(std::fs::read(&alone).unwrap() == std::fs::read(r.kept.as_ref().unwrap()).unwrap());
    }
    // Stopped before it starts: no file runs.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcomes = sanitize_dir(&files, &outdir, &job, 2, &on_done_noop).unwrap();
    assert!(outcomes.iter().all(Option::is_none));
}

fn on_done_noop(_: &Path, _: &FileOutcome) {}
