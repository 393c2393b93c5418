//! Every capture of tcpdump's regression corpus (../shared/corpus/tcpdump-tests, many of them
//! crash cases for C dissectors) goes through `netspectra info`: no panic, no hang, and for every
//! file that capinfos reads, the same packet count.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::have;

fn corpus() -> Option<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/tcpdump-tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Some(files)
}

/// Runs a command with a deadline; returns (exit code, stdout) or panics on a hang.
fn run_with_deadline(cmd: &mut Command, deadline: Duration, what: &str) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut out = String::new();
            use std::io::Read;
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            return (status.code(), out);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!("{what} hung for more than {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn capinfos_count(f: &Path) -> Option<u64> {
    let (code, out) = run_with_deadline(
        Command::new("capinfos")
            .args(["-c", "-M", "-T", "-r"])
            .arg(f),
        Duration::from_secs(30),
        "capinfos",
    );
    if code != Some(0) {
        return None;
    }
    out.trim().split('\t').nth(1)?.trim().parse().ok()
}

#[test]
fn every_corpus_file_survives_info_and_matches_capinfos() {
    let Some(files) = corpus() else {
        netspectra_testnet::skip("info corpus", "../shared/corpus/tcpdump-tests not present");
        return;
    };
    let oracle = have("capinfos", "-v");
    if !oracle {
        eprintln!(
            "NOTE: capinfos not installed (scripts/setup.sh); checking only for panics and hangs"
        );
    }
    let bin = env!("CARGO_BIN_EXE_netspectra");
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for f in &files {
        let (code, out) = run_with_deadline(
            Command::new(bin).arg("info").arg("--json").arg(f),
            Duration::from_secs(20),
            &format!("netspectra info {}", f.display()),
        );
        assert!(
            matches!(code, Some(0) | Some(2)),
            "{}: exit code {code:?} (panic or crash)",
            f.display()
        );
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("{}: bad JSON {e}: {out}", f.display()));
        if code == Some(2) {
            assert!(
                v["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("byte offset")),
                "{}: error must name the offset: {v}",
                f.display()
            );
        }
        if oracle {
            if let Some(expected) = capinfos_count(f) {
                compared += 1;
                if v["packets"].as_u64() != Some(expected) {
                    mismatches.push(format!(
                        "{}: ours {} capinfos {expected}",
                        f.display(),
                        v["packets"]
                    ));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "packet counts differ from capinfos:\n{}",
        mismatches.join("\n")
    );
    if oracle {
        assert!(
            compared > 700,
            "only {compared} files compared with capinfos"
        );
    }
    eprintln!(
        "{} corpus files read; {compared} compared with capinfos",
        files.len()
    );
}
