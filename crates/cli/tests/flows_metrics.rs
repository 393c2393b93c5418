//! `netspectra flows --metrics ADDR` while a run is in progress: the capture goes in through a
//! pipe that stays open, so the run cannot end; every scrape is parsed by the Prometheus
//! project's own Python parser (an independent check of the format, skipped with a message
//! when python3-prometheus-client is missing), and its counters must reach exactly what the
//! input holds and what the final summary reports.

#[path = "flows_common.rs"]
mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn metrics_follow_a_run_in_progress_and_agree_with_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, truth) = gen(dir.path(), "m", 5000, 31);
    let packets = truth["packets"].as_u64().unwrap();
    let mut child = Command::new(bin())
        .args([
            "flows",
            "-",
            "--no-records",
            "--json",
            "--metrics",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The address actually bound (port 0 picks one) is announced on stderr.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "no metrics address announced"
        );
        if let Some(rest) = line.trim().strip_prefix("flows: metrics on ") {
            break rest.to_string();
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(&cap).unwrap()).unwrap();
    stdin.flush().unwrap();
    // Input is in, but the pipe is open: the run goes on, and its packets show up.
    let t0 = Instant::now();
    let m = loop {
        // None (with a SKIP line) without the parser.
        let Some(m) = netspectra_testnet::scrape_metrics(None, &url) else {
            drop(stdin);
            let _ = child.wait();
            return;
        };
        if m["netspectra_flows_packets_total{}"] as u64 == packets {
            break m;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "packets never reached {packets}: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(m["netspectra_flows_live{}"] > 0.0, "{m:?}");
    assert_eq!(m["netspectra_flows_ended_total{reason=end_of_input}"], 0.0);
    // Wire bytes as the generator's truth counts them.
    assert_eq!(
        m["netspectra_flows_bytes_total{}"],
        truth["bytes"].as_f64().unwrap()
    );
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["input_packets"].as_u64(), Some(packets));
    // Every flow was started by the scrape; each is live or ended (by a reason no further
    // along than at the end).
    let started: f64 = m["netspectra_flows_started_total{}"];
    assert_eq!(Some(started), s["flows"].as_f64(), "{s}");
    let reasons = [
        "fin",
        "rst",
        "idle",
        "active",
        "table_full",
        "end_of_input",
        "shutdown",
    ];
    let mut ended = 0.0;
    for (i, r) in reasons.iter().enumerate() {
        let at_scrape = m[&format!("netspectra_flows_ended_total{{reason={r}}}")];
        assert!(
            at_scrape <= s["table"]["ended"][i].as_f64().unwrap(),
            "{r}: {s}"
        );
        ended += at_scrape;
    }
    assert_eq!(m["netspectra_flows_live{}"] + ended, started, "{m:?}");
}
