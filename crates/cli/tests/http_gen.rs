//! `netspectra http` on generated captures: counts, methods, status codes, hosts, ports, IP
//! versions and VLAN-tagged requests equal the generator's truth exactly (duplicated frames,
//! split headers, pipelining, IPv6, VLAN/QinQ and non-standard ports included), and the
//! per-request fields equal what tshark decodes from the same file.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::have;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_netspectra")
}

/// Generates a capture and returns its path and truth.
fn generate(dir: &Path, seed: u64, packets: u64, format: &str) -> (PathBuf, Value) {
    let pcap = dir.join(format!("gen-{seed}.{format}"));
    let truth = dir.join(format!("gen-{seed}.json"));
    let st = Command::new(bin())
        .args([
            "gen",
            "--seed",
            &seed.to_string(),
            "--packets",
            &packets.to_string(),
        ])
        .args(["--format", format, "-o"])
        .arg(&pcap)
        .arg("--truth")
        .arg(&truth)
        .stderr(Stdio::null())
        .status()
        .expect("run gen");
    assert!(st.success());
    let t: Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    (pcap, t)
}

/// Runs `netspectra http` and returns the records and the JSON summary.
fn http(pcap: &Path, extra: &[&str]) -> (Vec<Value>, Value) {
    let out = Command::new(bin())
        .arg("http")
        .arg(pcap)
        .args(["--summary", "json", "-q"])
        .args(extra)
        .output()
        .expect("run http");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = serde_json::from_slice(&out.stderr).expect("summary json on stderr");
    (recs, summary)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn endpoint(ip: &Value, port: &Value) -> String {
    let ip = s(ip);
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn count<I: IntoIterator<Item = String>>(it: I) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for k in it {
        *m.entry(k).or_default() += 1;
    }
    m
}

fn truth_map(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn of_type<'a>(recs: &'a [Value], t: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    recs.iter().filter(move |r| r["type"] == t)
}

fn check_against_truth(pcap: &Path, t: &Value) {
    let h = &t["http"];
    let (recs, sum) = http(pcap, &[]);
    let reqs: Vec<&Value> = of_type(&recs, "request").collect();
    let resps: Vec<&Value> = of_type(&recs, "response").collect();
    assert_eq!(
        reqs.len() as u64,
        h["requests"].as_u64().unwrap(),
        "requests"
    );
    assert_eq!(
        resps.len() as u64,
        h["responses"].as_u64().unwrap(),
        "responses"
    );
    assert!(recs.iter().all(|r| r["partial"] == false));
    assert_eq!(sum["malformed"], serde_json::json!({}));
    assert_eq!(sum["orphan_responses"], 0);
    assert_eq!(
        count(reqs.iter().map(|r| s(&r["method"]))),
        truth_map(&h["by_method"])
    );
    assert_eq!(
        count(resps.iter().map(|r| s(&r["status"]))),
        truth_map(&h["by_status"])
    );
    assert_eq!(
        count(reqs.iter().map(|r| s(&r["host"]))),
        truth_map(&h["by_host"])
    );
    assert_eq!(
        count(reqs.iter().map(|r| format!("ipv{}", r["ip_version"]))),
        truth_map(&h["by_ip_version"])
    );
    assert_eq!(
        count(reqs.iter().map(|r| s(&r["dst_port"]))),
        truth_map(&h["by_port"])
    );
    assert_eq!(
        reqs.iter().filter(|r| !r["vlan"].is_null()).count() as u64,
        h["vlan_requests"].as_u64().unwrap()
    );
    // Transaction by transaction: the response carries its request's method and URI.
    let want = count(h["transactions"].as_array().unwrap().iter().map(|x| {
        format!(
            "{} {} {} {} {} {}",
            s(&x["client"]),
            s(&x["server"]),
            s(&x["method"]),
            s(&x["host"]),
            s(&x["uri"]),
            s(&x["status"])
        )
    }));
    let got = count(resps.iter().map(|r| {
        format!(
            "{} {} {} {} {} {}",
            endpoint(&r["dst_ip"], &r["dst_port"]),
            endpoint(&r["src_ip"], &r["src_port"]),
            s(&r["method"]),
            s(&r["host"]),
            s(&r["uri"]),
            s(&r["status"])
        )
    }));
    assert!(h["listed"].as_bool().unwrap());
    assert_eq!(got, want);
}

#[test]
fn pcap_matches_generator_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, t) = generate(dir.path(), 5, 40_000, "pcap");
    // The capture exercises what the test claims to cover.
    let h = &t["http"];
    for k in [
        "split_requests",
        "pipelined_requests",
        "chunked_responses",
        "vlan_requests",
    ] {
        assert!(h[k].as_u64().unwrap() > 0, "{k}");
    }
    assert!(t["duplicates"]["frames"].as_u64().unwrap() > 0);
    assert!(h["by_ip_version"]["ipv6"].as_u64().unwrap() > 0);
    check_against_truth(&pcap, &t);
}

#[test]
fn pcapng_matches_generator_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, t) = generate(dir.path(), 77, 20_000, "pcapng");
    check_against_truth(&pcap, &t);
}

/// User-Agents per request against the truth.
#[test]
fn user_agents_match_generator_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, t) = generate(dir.path(), 5, 40_000, "pcap");
    let (recs, _) = http(&pcap, &[]);
    assert_eq!(
        count(
            of_type(&recs, "request")
                .filter(|r| !r["user_agent"].is_null())
                .map(|r| s(&r["user_agent"]))
        ),
        truth_map(&t["http"]["by_user_agent"])
    );
}

#[test]
fn threads_and_paired_mode_give_the_same_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, t) = generate(dir.path(), 9, 30_000, "pcap");
    let key = |r: &Value| {
        format!(
            "{} {} {} {} {} {} {}",
            s(&r["type"]),
            s(&r["src_ip"]),
            s(&r["src_port"]),
            s(&r["method"]),
            s(&r["uri"]),
            s(&r["status"]),
            s(&r["user_agent"])
        )
    };
    let (one, _) = http(&pcap, &[]);
    let (two, sum2) = http(&pcap, &["--threads", "2"]);
    assert_eq!(count(one.iter().map(key)), count(two.iter().map(key)));
    assert_eq!(sum2["requests"], t["http"]["requests"]);
    let (paired, _) = http(&pcap, &["--paired"]);
    assert_eq!(paired.len() as u64, t["http"]["requests"].as_u64().unwrap());
    assert!(paired.iter().all(|r| r["type"] == "transaction"));
    assert_eq!(
        count(paired.iter().map(|r| s(&r["status"]))),
        truth_map(&t["http"]["by_status"])
    );
    assert!(paired.iter().all(|r| r["latency_us"].is_u64()));
}

#[test]
fn csv_with_httpry_field_names() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, t) = generate(dir.path(), 3, 5_000, "pcap");
    let out = Command::new(bin())
        .arg("http")
        .arg(&pcap)
        .args([
            "--format",
            "csv",
            "-F",
            "timestamp,source-ip,dest-port,method,host,status-code",
        ])
        .args(["--summary", "none"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ts,src_ip,dst_port,method,host,status"));
    let rows: Vec<&str> = lines.collect();
    let h = &t["http"];
    assert_eq!(
        rows.len() as u64,
        h["requests"].as_u64().unwrap() + h["responses"].as_u64().unwrap()
    );
    assert!(rows.iter().all(|r| r.split(',').count() == 6));
    let bad = Command::new(bin())
        .arg("http")
        .arg(&pcap)
        .args(["-F", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// The same generated file through tshark, told to decode HTTP on every server port the
/// generator used: requests (method, host, URI, User-Agent) and response codes agree.
#[test]
fn agrees_with_tshark_on_generated_capture() {
    if !have("tshark", "-v") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pcap, t) = generate(dir.path(), 5, 40_000, "pcap");
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&pcap);
    for port in t["http"]["by_port"].as_object().unwrap().keys() {
        cmd.args(["-d", &format!("tcp.port=={port},http")]);
    }
    let out = cmd
        .args(["-Y", "http.request || http.response", "-T", "fields"])
        .args([
            "-e",
            "http.request.method",
            "-e",
            "http.host",
            "-e",
            "http.request.uri",
        ])
        .args(["-e", "http.user_agent", "-e", "http.response.code"])
        .args(["-E", "occurrence=a", "-E", "aggregator=\u{1}"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut want_req = Vec::new();
    let mut want_ua = Vec::new();
    let mut want_status = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| c.split('\u{1}').filter(|x| !x.is_empty()).collect())
            .collect();
        let col = |i: usize, j: usize| cols.get(i).and_then(|c| c.get(j)).copied().unwrap_or("");
        // Several messages in one frame are listed as occurrences, in order.
        for j in 0..cols[0].len() {
            want_req.push(format!("{} {} {}", col(0, j), col(1, j), col(2, j)));
        }
        // A request without User-Agent has no occurrence: compare the User-Agents as a multiset.
        want_ua.extend(cols.get(3).into_iter().flatten().map(|u| u.to_string()));
        want_status.extend(cols.get(4).into_iter().flatten().map(|c| c.to_string()));
    }
    let (recs, _) = http(&pcap, &[]);
    let reqs: Vec<&Value> = of_type(&recs, "request").collect();
    assert_eq!(
        count(reqs.iter().map(|r| format!(
            "{} {} {}",
            s(&r["method"]),
            s(&r["host"]),
            s(&r["uri"])
        ))),
        count(want_req)
    );
    assert_eq!(
        count(
            reqs.iter()
                .filter(|r| !r["user_agent"].is_null())
                .map(|r| s(&r["user_agent"]))
        ),
        count(want_ua)
    );
    assert_eq!(
        count(of_type(&recs, "response").map(|r| s(&r["status"]))),
        count(want_status)
    );
}
