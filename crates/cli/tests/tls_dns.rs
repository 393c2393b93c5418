//! `netspectra tls`, `netspectra dns` and the probe's `tls` and `dns` analyses, end to end:
//! the records equal the generator's truth (every TLS/QUIC handshake and DNS transaction),
//! whatever the number of workers; table formats write every field; the probe writes, in one
//! pass with flows and HTTP, the records the commands write; and its `anonymize` option maps
//! addresses as `sanitize` maps them in the capture (answers included) and replaces names by
//! keyed tokens; ClickHouse takes every TLS and DNS record, arrays included. The parsers themselves are checked against tshark and the JA4 reference in
//! crates/analyses/{tls,dns}/tests.

#[path = "support/clickhouse.rs"]
mod clickhouse;
mod common;

use clickhouse::ClickHouse;
use common::{bin, generated_capture, run};
use netspectra_gen::{GenConfig, Mix, Truth};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn capture(dir: &Path, seed: u64) -> (PathBuf, Truth) {
    let p = dir.join(format!("g{seed}.pcap"));
    let t = generated_capture(
        &p,
        &GenConfig {
            seed,
            packets: Some(20_000),
            mix: Mix::preset("all").unwrap(),
            ..GenConfig::default()
        },
    );
    assert!(t.tls.listed && t.tls.quic_sessions > 0 && t.dns.listed);
    (p, t)
}

fn records(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sorted_lines(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn endpoint(ip: &str, port: &Value) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn s(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

#[test]
fn tls_and_dns_records_equal_the_generator_truth_with_any_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, t) = capture(dir.path(), 31);
    let cap = cap.to_str().unwrap();
    for threads in ["1", "2"] {
        let tls = dir.path().join(format!("tls{threads}.jsonl"));
        let o = run(bin().args([
            "tls",
            cap,
            "--threads",
            threads,
            "-o",
            tls.to_str().unwrap(),
            "--summary",
            "json",
        ]));
        let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
        let recs = records(&tls);
        assert_eq!(
            recs.len(),
            t.tls.list.len(),
            "tls records, {threads} workers"
        );
        assert_eq!(summary["records"], recs.len() as u64);
        assert_eq!(summary["quic_connections"], t.tls.quic_sessions);
        let by_client: BTreeMap<(String, String), &Value> = recs
            .iter()
            .map(|r| {
                (
                    (
                        s(&r["transport"]),
                        endpoint(&s(&r["src_ip"]), &r["src_port"]),
                    ),
                    r,
                )
            })
            .collect();
        for h in &t.tls.list {
            let r = by_client
                .get(&(h.transport.clone(), h.client.clone()))
                .unwrap_or_else(|| panic!("no record for {} {}", h.transport, h.client));
            assert_eq!(r["sni"].as_str(), h.sni.as_deref(), "{}", h.client);
            assert_eq!(r["version"].as_str(), Some(h.version.as_str()));
            assert_eq!(r["cipher"], h.cipher, "{}", h.client);
            assert_eq!(r["alpn"].as_str(), h.alpn.as_deref(), "{}", h.client);
            assert_eq!(r["resumed"], h.resumed, "{}", h.client);
            assert!(r["ja4"].as_str().is_some_and(|j| j.len() == 36), "{r}");
        }

        let dns = dir.path().join(format!("dns{threads}.jsonl"));
        run(bin().args([
            "dns",
            cap,
            "--threads",
            threads,
            "--max-records",
            "128",
            "-o",
            dns.to_str().unwrap(),
            "--summary",
            "none",
        ]));
        let recs = records(&dns);
        let by_tx: BTreeMap<(String, String, String, u64), &Value> = recs
            .iter()
            .map(|r| {
                (
                    (
                        s(&r["transport"]),
                        endpoint(&s(&r["src_ip"]), &r["src_port"]),
                        endpoint(&s(&r["dst_ip"]), &r["dst_port"]),
                        r["id"].as_u64().unwrap(),
                    ),
                    r,
                )
            })
            .collect();
        assert_eq!(by_tx.len(), recs.len(), "one record per transaction");
        assert_eq!(recs.len(), t.dns.transactions.len(), "dns records");
        for x in &t.dns.transactions {
            let k = (
                x.transport.clone(),
                x.client.clone(),
                x.server.clone(),
                x.id as u64,
            );
            let r = by_tx
                .get(&k)
                .unwrap_or_else(|| panic!("no record for {k:?}"));
            assert_eq!(r["qname"], x.qname.as_str(), "{k:?}");
            assert_eq!(r["qtype"], x.qtype, "{k:?}");
            assert_eq!(r["rcode"].as_u64(), x.rcode.map(u64::from), "{k:?}");
            assert_eq!(r["tc"], x.tc, "{k:?}");
            let data: Vec<String> = r["answer_data"].as_array().unwrap().iter().map(s).collect();
            assert_eq!(data, x.answer_data, "{k:?}");
        }
    }
}

#[test]
fn table_formats_write_every_field_and_field_selection_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, t) = capture(dir.path(), 32);
    let cap = cap.to_str().unwrap();
    let csv = dir.path().join("tls.csv");
    run(bin().args([
        "tls",
        cap,
        "--format",
        "csv",
        "-o",
        csv.to_str().unwrap(),
        "-q",
        "--summary",
        "none",
    ]));
    let text = std::fs::read_to_string(&csv).unwrap();
    let header = text.lines().next().unwrap();
    assert_eq!(header, netspectra_tls::FIELDS.join(","));
    // One row per handshake (list cells are quoted, so commas inside them do not split rows).
    assert_eq!(text.lines().count() - 1, t.tls.list.len());

    let sel = dir.path().join("dns.tsv");
    run(bin().args([
        "dns",
        cap,
        "--format",
        "tsv",
        "-F",
        "qname,rcode_name,answer_data",
        "-o",
        sel.to_str().unwrap(),
        "--summary",
        "none",
    ]));
    let text = std::fs::read_to_string(&sel).unwrap();
    assert_eq!(text.lines().next(), Some("qname\trcode_name\tanswer_data"));
    assert_eq!(text.lines().count() - 1, t.dns.transactions.len());

    let o = bin()
        .args(["dns", cap, "-F", "qname,nope", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown field is a usage error"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown field 'nope'"));
    let o = bin().args(["tls", "--list-fields"]).output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .collect::<Vec<_>>(),
        netspectra_tls::FIELDS
    );
}

#[test]
fn the_probe_writes_the_tls_and_dns_records_of_the_commands_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = capture(dir.path(), 33);
    let capr = cap.to_str().unwrap();
    let cfg = dir.path().join("p.yaml");
    let out = dir.path().join("p");
    std::fs::write(
        &cfg,
        format!(
            "analyses:\n  flows: {{}}\n  http: {{}}\n  tls: {{}}\n  dns: {{}}\n\
             sinks:\n  - type: files\n    dir: {}\n",
            out.display()
        ),
    )
    .unwrap();
    run(bin().args([
        "probe",
        "-q",
        "--threads",
        "2",
        "--config",
        cfg.to_str().unwrap(),
        "--read",
        capr,
    ]));
    for (cmd, file) in [
        ("tls", "tls.jsonl"),
        ("dns", "dns.jsonl"),
        ("http", "http.jsonl"),
    ] {
        let o = dir.path().join(format!("c-{file}"));
        run(bin().args([cmd, capr, "-o", o.to_str().unwrap(), "--summary", "none"]));
        let want = sorted_lines(&o);
        assert!(!want.is_empty(), "{cmd}");
        assert_eq!(sorted_lines(&out.join(file)), want, "{cmd} records");
    }
    let f = dir.path().join("f");
    run(bin().args(["flows", capr, "-q", "-o", f.to_str().unwrap()]));
    assert_eq!(
        sorted_lines(&out.join("flows.jsonl")),
        sorted_lines(&f.join("flows.jsonl"))
    );
}

#[test]
fn the_probe_anonymizes_tls_and_dns_records_as_sanitize_anonymizes_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, t) = capture(dir.path(), 34);
    let key = dir.path().join("k.hex");
    std::fs::write(
        &key,
        "00112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let cfg = dir.path().join("p.yaml");
    let out = dir.path().join("p");
    std::fs::write(
        &cfg,
        format!(
            "analyses:\n  tls: {{}}\n  dns: {{}}\nanonymize:\n  key_file: {}\n  hash_names: true\n\
             sinks:\n  - type: files\n    dir: {}\n",
            key.display(),
            out.display()
        ),
    )
    .unwrap();
    run(bin().args([
        "probe",
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "--read",
        cap.to_str().unwrap(),
    ]));
    // The oracle: the capture anonymized by `sanitize` with the same key, then analysed.
    let san = dir.path().join("s.pcap");
    run(bin().args([
        "sanitize",
        cap.to_str().unwrap(),
        "-o",
        san.to_str().unwrap(),
        "--anonymize",
        "--key-file",
        key.to_str().unwrap(),
        "-q",
    ]));
    // Columns, and the address answers (A, AAAA: names in answers are tokens on one side)
    // of DNS over UDP: `sanitize` works packet by packet, so a DNS-over-TCP message split
    // across segments keeps its answer addresses there (docs/SANITIZE.md), where the probe,
    // which reassembles, maps them all.
    let project = |recs: &[Value], cols: &[&str]| -> BTreeSet<String> {
        recs.iter()
            .map(|r| {
                let mut v: Vec<String> = cols.iter().map(|c| s(&r[*c])).collect();
                if let (Some(types), Some(data), "udp") = (
                    r["answer_types"].as_array(),
                    r["answer_data"].as_array(),
                    r["transport"].as_str().unwrap_or(""),
                ) {
                    for (t, d) in types.iter().zip(data) {
                        if t == 1 || t == 28 {
                            v.push(s(d));
                        }
                    }
                }
                v.join("|")
            })
            .collect()
    };
    for (cmd, cols) in [
        (
            "tls",
            &["ts", "src_ip", "dst_ip", "community_id", "ja4"][..],
        ),
        ("dns", &["ts", "src_ip", "dst_ip", "community_id", "id"][..]),
    ] {
        let o = dir.path().join(format!("s-{cmd}.jsonl"));
        run(bin().args([
            cmd,
            san.to_str().unwrap(),
            "-o",
            o.to_str().unwrap(),
            "--summary",
            "none",
        ]));
        let ours = records(&out.join(format!("{cmd}.jsonl")));
        assert!(!ours.is_empty());
        let (a, b) = (project(&ours, cols), project(&records(&o), cols));
        let only_ours: Vec<_> = a.difference(&b).take(5).collect();
        let only_theirs: Vec<_> = b.difference(&a).take(5).collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty() && a.len() == ours.len(),
            "{cmd}: only in the probe's records {only_ours:?}, only in sanitize's {only_theirs:?}"
        );
    }
    // Names are tokens: none of the generated names is left, and one name gives one token.
    let real_names: BTreeSet<&str> = t
        .tls
        .list
        .iter()
        .filter_map(|h| h.sni.as_deref())
        .chain(t.dns.transactions.iter().map(|x| x.qname.as_str()))
        .collect();
    let tls = records(&out.join("tls.jsonl"));
    let dns = records(&out.join("dns.jsonl"));
    for r in tls
        .iter()
        .map(|r| &r["sni"])
        .chain(dns.iter().map(|r| &r["qname"]))
    {
        if let Some(n) = r.as_str() {
            assert!(!real_names.contains(n), "a real name is left: {n}");
        }
    }
    let distinct = |v: Vec<&str>| v.into_iter().collect::<BTreeSet<_>>().len();
    assert_eq!(
        distinct(dns.iter().map(|r| r["qname"].as_str().unwrap()).collect()),
        distinct(
            t.dns
                .transactions
                .iter()
                .map(|x| x.qname.as_str())
                .collect()
        ),
        "one token per name"
    );
}

#[test]
fn clickhouse_takes_every_tls_and_dns_record() {
    let dir = tempfile::tempdir().unwrap();
    let Some(ch) = ClickHouse::start(&dir.path().join("ch")) else {
        return;
    };
    let (cap, t) = capture(dir.path(), 35);
    let url = format!("clickhouse://127.0.0.1:{}/nsp", ch.http);
    let cfg = dir.path().join("p.yaml");
    let out = dir.path().join("p");
    std::fs::write(
        &cfg,
        format!(
            "analyses:\n  tls: {{}}\n  dns:\n    max_records: 128\n\
             sinks:\n  - type: files\n    dir: {}\n  - type: clickhouse\n    url: {url}\n",
            out.display()
        ),
    )
    .unwrap();
    run(bin().args([
        "probe",
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "--read",
        cap.to_str().unwrap(),
    ]));
    assert_eq!(
        ch.count("SELECT count() FROM nsp.tls"),
        t.tls.list.len() as u64
    );
    assert_eq!(
        ch.count("SELECT count() FROM nsp.dns"),
        t.dns.transactions.len() as u64
    );
    // Arrays and nullable fields arrive whole: the answers, SNI and JA4 of every record.
    let sum_answers: u64 = records(&out.join("dns.jsonl"))
        .iter()
        .map(|r| r["answer_data"].as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(
        ch.count("SELECT sum(length(answer_data)) FROM nsp.dns"),
        sum_answers
    );
    let with_sni = t.tls.list.iter().filter(|h| h.sni.is_some()).count() as u64;
    assert_eq!(
        ch.count("SELECT count() FROM nsp.tls WHERE isNotNull(sni)"),
        with_sni
    );
    assert_eq!(
        ch.count("SELECT count() FROM nsp.tls WHERE length(ja4) = 36"),
        t.tls.list.len() as u64
    );
}
