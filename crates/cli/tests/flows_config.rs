//! Flow and generator settings (issue 17, "Also found"): zero sizes are refused rather than
//! taken as 1, every size has an upper bound that is refused before anything is allocated,
//! config-file errors name the YAML key and line and flag errors the flag, and `gen` refuses to
//! write its truth over its capture. Every case exits 2 (bad input).

#[path = "flows_common.rs"]
mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Runs `netspectra flows CAP -q ARGS` with an optional config file; returns exit code and
/// stderr.
fn flows(dir: &Path, cap: &str, yaml: Option<&str>, args: &[&str]) -> (Option<i32>, String) {
    let cfg = dir.join("c.yaml");
    let mut all = vec!["flows", cap, "-q", "--no-records"];
    if let Some(y) = yaml {
        std::fs::write(&cfg, y).unwrap();
        all.extend(["-c", cfg.to_str().unwrap()]);
    }
    all.extend(args);
    let o = run(&all);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Asserts exit 2 with a message that contains every `want` and none of `never`.
fn refused(r: (Option<i32>, String), want: &[&str], never: &[&str]) {
    let (code, err) = r;
    assert_eq!(code, Some(2), "{want:?}: {err}");
    for w in want {
        assert!(err.contains(w), "missing {w:?} in: {err}");
    }
    for n in never {
        assert!(!err.contains(n), "{n:?} in: {err}");
    }
}

/// serde's internal names that an error must never show.
const INTERNAL: [&str; 3] = ["untagged", "Raw", "StrOrNum"];

#[test]
fn zero_sizes_are_refused_naming_the_flag_or_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = gen(dir.path(), "z", 200, 1);
    let d = dir.path();
    // Each of these ran as if it were 1.
    refused(
        flows(d, &cap, None, &["--max-flows", "0"]),
        &["--max-flows"],
        &[],
    );
    refused(
        flows(d, &cap, Some("max_flows: 0\n"), &[]),
        &["max_flows: ", "line 1"],
        &["--"],
    );
    refused(
        flows(
            d,
            &cap,
            Some("views:\n  - name: a\n    keys: [src_ip]\n    max_keys: 0\n"),
            &[],
        ),
        &["views[0].max_keys: ", "line 4"],
        &["--"],
    );
    refused(
        flows(
            d,
            &cap,
            Some("views:\n  - name: a\n    mode: topk\n    top: 0\n"),
            &[],
        ),
        &["views[0].top: ", "line 4"],
        &["--"],
    );
    refused(
        flows(d, &cap, Some("frag_slots: 0\n"), &[]),
        &["frag_slots: ", "line 1"],
        &[],
    );
    // A timeout of 0 became 1 ns from a flag and stayed 0 from the file.
    refused(
        flows(d, &cap, None, &["--udp-timeout", "0"]),
        &["--udp-timeout"],
        &[],
    );
    refused(
        flows(d, &cap, Some("timeouts:\n  icmp: 0\n"), &[]),
        &["timeouts.icmp: ", "line 2"],
        &["--"],
    );
    // --top 0 prints no top lists (documented), it is not a size.
    let (code, err) = flows(d, &cap, None, &["--top", "0"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn huge_sizes_are_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = gen(dir.path(), "h", 200, 2);
    let d = dir.path();
    // frag_slots: 4294967295 aborted on allocation; --threads 100000 grew to 20.9 GB.
    refused(
        flows(d, &cap, Some("frag_slots: 4294967295\n"), &[]),
        &["frag_slots: ", "line 1", "1048576"],
        &[],
    );
    refused(
        flows(d, &cap, None, &["--threads", "100000"]),
        &["--threads", "64"],
        &[],
    );
    refused(
        flows(d, &cap, None, &["--max-flows", "99999999999"]),
        &["--max-flows"],
        &[],
    );
    refused(
        flows(d, &cap, None, &["--top", "1000"]),
        &["--top", "64"],
        &[],
    );
    refused(
        flows(d, &cap, Some("max_flows: 99999999999\n"), &[]),
        &["max_flows: ", "line 1"],
        &[],
    );
    for (view, key, line) in [
        ("    max_keys: 4294967295000\n", "max_keys", 4),
        ("    mode: topk\n    top: 4294967295\n", "top", 5),
        ("    mode: topk\n    eps: 0.000000001\n", "eps", 5),
        ("    mode: topk\n    delta: 0\n", "delta", 5),
        ("    hll_precision: 40\n", "hll_precision", 4),
    ] {
        let y = format!("views:\n  - name: a\n    keys: [src_ip]\n{view}");
        refused(
            flows(d, &cap, Some(&y), &[]),
            &[&format!("views[0].{key}: "), &format!("line {line}")],
            &["--"],
        );
    }
    // At the bounds the run goes through.
    let y = "max_flows: 268435456\nfrag_slots: 1048576\nviews:\n  - name: a\n    \
             keys: [src_ip]\n    mode: topk\n    top: 100000\n";
    let (code, err) = flows(d, &cap, Some(y), &["--threads", "2", "--top", "64"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn config_errors_name_the_yaml_key_and_flag_errors_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = gen(dir.path(), "n", 200, 3);
    let d = dir.path();
    // `interval: 0` in the file was reported as `--interval`.
    refused(
        flows(d, &cap, Some("interval: 0\n"), &[]),
        &["interval: ", "line 1"],
        &["--"],
    );
    refused(
        flows(d, &cap, Some("views:\n  - name: a\n    interval: 0\n"), &[]),
        &["views[0].interval: ", "line 3"],
        &["--"],
    );
    refused(
        flows(d, &cap, None, &["--interval", "0"]),
        &["--interval"],
        &[],
    );
    // A value of the wrong type was "data did not match any variant of untagged enum Raw".
    for y in [
        "interval: [1, 2]\n",
        "timeouts:\n  tcp: yes please\n",
        "interval: {a: 1}\n",
    ] {
        refused(
            flows(d, &cap, Some(y), &[]),
            &["duration", "line"],
            &INTERNAL,
        );
    }
}

/// Runs `netspectra gen` in `dir` with the given arguments; returns exit code and stderr.
fn gen_in(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(bin())
        .arg("gen")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn gen_errors_name_the_flag_or_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // `--dup 2` was reported as `dup_share`.
    refused(
        gen_in(d, &["-o", "x.pcap", "--dup", "2"]),
        &["--dup", "0.5"],
        &["dup_share"],
    );
    refused(
        gen_in(d, &["-o", "x.pcap", "--concurrency", "0"]),
        &["--concurrency"],
        &["concurrency:"],
    );
    refused(
        gen_in(d, &["-o", "x.pcap", "--packets", "0"]),
        &["--packets"],
        &[],
    );
    assert!(
        !d.join("x.pcap").exists(),
        "a refused run created its output"
    );
    std::fs::write(d.join("g.yaml"), "seed: 4\ndup_share: 2\n").unwrap();
    refused(
        gen_in(d, &["-o", "x.pcap", "--config", "g.yaml"]),
        &["g.yaml: dup_share: ", "line 2"],
        &["--", "untagged"],
    );
    std::fs::write(d.join("g.yaml"), "mix:\n  http: -3\n").unwrap();
    refused(
        gen_in(d, &["-o", "x.pcap", "--config", "g.yaml"]),
        &["mix.http: ", "line 2"],
        &["--"],
    );
}

#[test]
fn gen_refuses_a_truth_path_that_is_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Not there yet, in two spellings: nothing is created.
    let r = gen_in(
        d,
        &[
            "-o",
            "same.pcap",
            "--packets",
            "100",
            "--truth",
            "./same.pcap",
        ],
    );
    refused(r, &["--truth ./same.pcap", "-o same.pcap"], &[]);
    assert!(!d.join("same.pcap").exists());
    // An existing capture, named directly, through a hard link and through a symbolic link:
    // it is left as it was.
    std::fs::write(d.join("old.pcap"), b"keep me").unwrap();
    std::fs::hard_link(d.join("old.pcap"), d.join("hard.pcap")).unwrap();
    std::os::unix::fs::symlink(d.join("old.pcap"), d.join("soft.json")).unwrap();
    for truth in ["old.pcap", "hard.pcap", "soft.json"] {
        let r = gen_in(d, &["-o", "old.pcap", "--packets", "100", "--truth", truth]);
        refused(r, &[&format!("--truth {truth}"), "-o old.pcap"], &[]);
        assert_eq!(std::fs::read(d.join("old.pcap")).unwrap(), b"keep me");
    }
    // A symbolic link to a capture not yet written.
    std::os::unix::fs::symlink(d.join("new.pcap"), d.join("to-new.json")).unwrap();
    let r = gen_in(
        d,
        &[
            "-o",
            "new.pcap",
            "--packets",
            "100",
            "--truth",
            "to-new.json",
        ],
    );
    refused(r, &["--truth to-new.json"], &[]);
    // Different files are fine, and the truth is the generator's.
    let (code, err) = gen_in(
        d,
        &["-o", "a.pcap", "--packets", "100", "--truth", "a.json"],
    );
    assert_eq!(code, Some(0), "{err}");
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("a.json")).unwrap()).unwrap();
    assert_eq!(
        t["file_bytes"].as_u64().unwrap(),
        std::fs::metadata(d.join("a.pcap")).unwrap().len()
    );
}
