//! `netspectra probe` over capture files and pipes: the same records as `flows` and `http`, a
//! ClickHouse outage that loses nothing and counts nothing twice, a restart that delivers its
//! spool first, reloads that lose and double-count nothing, records anonymized exactly as
//! `sanitize` anonymizes captures, configuration errors that name the key and the line, the
//! default embedded store, and the health endpoint (also as the console's probes page reads it).

#[path = "support/clickhouse.rs"]
mod clickhouse;
mod common;
#[path = "support/console.rs"]
mod console;

use clickhouse::ClickHouse;
use common::bin;
use console::Console;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

fn capture(dir: &Path, name: &str, packets: u64, seed: u64) -> (PathBuf, netspectra_gen::Truth) {
    paced(dir, name, packets, seed, 150_000.0)
}

/// A generated capture of `packets` frames at `pps` frames per second of capture time (slow
/// rates make a capture span many snapshot intervals).
fn paced(
    dir: &Path,
    name: &str,
    packets: u64,
    seed: u64,
    pps: f64,
) -> (PathBuf, netspectra_gen::Truth) {
    let p = dir.join(name);
    let t = common::generated_capture(
        &p,
        &netspectra_gen::GenConfig {
            packets: Some(packets),
            seed,
            packets_per_sec: pps,
            ..Default::default()
        },
    );
    (p, t)
}

fn run(args: &[&str]) -> Output {
    let o = bin().args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Every file under `dir` (relative path -> bytes), for comparing output trees.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn one_pass_gives_the_records_of_flows_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/sample.pcapng");
    let (gen, _) = capture(dir.path(), "g.pcap", 30_000, 4);
    for (i, cap) in [sample, gen].iter().enumerate() {
        let cap = cap.to_str().unwrap();
        let p = dir.path().join(format!("p{i}"));
        let f = dir.path().join(format!("f{i}"));
        let h = dir.path().join(format!("h{i}.jsonl"));
        run(&["probe", "--read", cap, "--out", p.to_str().unwrap(), "-q"]);
        run(&["flows", cap, "-q", "-o", f.to_str().unwrap()]);
        // HTTP inside tunnels is the probe's default.
        run(&[
            "http",
            cap,
            "-o",
            h.to_str().unwrap(),
            "--summary",
            "none",
            "--tunnels",
        ]);
        let mut probe = tree(&p);
        let http = probe.remove("http.jsonl").expect("http.jsonl");
        assert_eq!(http, std::fs::read(&h).unwrap(), "http records of {cap}");
        assert_eq!(probe, tree(&f), "flow records and view snapshots of {cap}");
    }
}

#[test]
fn configuration_errors_name_the_key_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.yaml");
    for (text, line, says) in [
        ("probe:\n  name: x\n  nmae: y\n", 3, "nmae"),
        (
            "capture:\n  interfaces:\n    - name: eth0\n      threads: 100\n",
            4,
            "threads",
        ),
        (
            "sinks:\n  - type: files\n    dir: /tmp/x\n    format: xml\n",
            4,
            "format",
        ),
        (
            "analyses:\n  http:\n    max_connections: 0\n",
            3,
            "max_connections",
        ),
        ("metrics:\n  listen: 0.0.0.0:9999\n", 2, "token"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let o = bin()
            .args(["probe", "--check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text}: {e}");
        assert!(
            e.contains(&format!("line {line}")) && e.contains(says),
            "{text}: {e}"
        );
    }
    let o = bin()
        .args(["probe", "--check-config", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/probe.yaml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Without any sink the records go to the embedded store the console reads by default.
    let dir = tempfile::tempdir().unwrap();
    let (cap, truth) = capture(dir.path(), "in.pcap", 2_000, 3);
    let o = bin()
        .current_dir(dir.path())
        .args(["probe", "-q", "--read", "in.pcap"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("embedded store netspectra.db"));
    let db = netspectra_store::open_read(&dir.path().join("netspectra.db")).unwrap();
    let packets: i64 = db
        .query_row(
            "SELECT sum(fwd_packets + rev_packets) FROM flows",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(packets as u64, truth.packets);
    drop(db);
    // A store is an output like any other: never one of the inputs.
    let before = std::fs::read(&cap).unwrap();
    let o = bin()
        .current_dir(dir.path())
        .args(["probe", "-q", "--read", "in.pcap", "--store", "in.pcap"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("in.pcap"));
    assert_eq!(std::fs::read(&cap).unwrap(), before);
}

/// A probe reading a capture through a pipe that this test feeds in pieces, so that things can
/// happen (an outage, a reload) in the middle of the run.
struct Fed {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    bytes: Vec<u8>,
    sent: usize,
}

impl Fed {
    fn start(cap: &Path, args: &[&str]) -> Fed {
        let mut child = bin()
            .arg("probe")
            .args(["--read", "-", "-q", "--json"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        Fed {
            child,
            stdin,
            bytes: std::fs::read(cap).unwrap(),
            sent: 0,
        }
    }

    /// Sends the next `share` of the capture (0..1).
    fn feed(&mut self, share: f64) {
        let end = ((self.bytes.len() as f64 * share) as usize + self.sent).min(self.bytes.len());
        let w = self.stdin.as_mut().unwrap();
        w.write_all(&self.bytes[self.sent..end]).unwrap();
        w.flush().unwrap();
        self.sent = end;
    }

    fn finish(mut self) -> serde_json::Value {
        let n = self.bytes.len() - self.sent;
        if n > 0 {
            self.feed(1.0);
        }
        drop(self.stdin.take());
        let o = self.child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "probe: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

/// Rows of a table as JSON lines (our records' fields only, in our order), sorted.
fn rows(ch: &ClickHouse, table: &str, cols: &str) -> Vec<String> {
    let text = ch
        .query(&format!("SELECT {cols} FROM {table} FORMAT JSONEachRow"))
        .expect("select");
    // Re-serialized: ClickHouse writes `\/` where serde writes `/`.
    sorted(
        text.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap()
                    .to_string()
            })
            .collect(),
    )
}

/// Our records with only the fields ClickHouse returns, in the same JSON shape (for a set
/// comparison with [`rows`]).
fn projected(file: &Path, cols: &[&str]) -> Vec<String> {
    sorted(
        lines(file)
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let mut m = serde_json::Map::new();
                for c in cols {
                    m.insert(c.to_string(), v[*c].clone());
                }
                serde_json::Value::Object(m).to_string()
            })
            .collect(),
    )
}

const FLOW_COLS: &[&str] = &[
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "proto",
    "community_id",
    "fwd_packets",
    "fwd_bytes",
    "rev_packets",
    "rev_bytes",
    "end_reason",
    "start",
    "end",
];
const HTTP_COLS: &[&str] = &[
    "type", "ts", "src_ip", "src_port", "dst_ip", "dst_port", "uri", "status",
];

#[test]
fn a_clickhouse_outage_loses_nothing_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut ch) = ClickHouse::start(&dir.path().join("ch")) else {
        return;
    };
    // 60 s of capture time: snapshots and HTTP records go out while it is read.
    let (cap, truth) = paced(dir.path(), "g.pcap", 60_000, 9, 1_000.0);
    let out = dir.path().join("out");
    let url = format!("clickhouse://127.0.0.1:{}/nsp", ch.http);
    let cfg = dir.path().join("p.yaml");
    std::fs::write(
        &cfg,
        format!(
            "probe:\n  name: p1\nanalyses:\n  flows:\n    interval: 1s\n  http: {{}}\n\
             sinks:\n  - type: files\n    dir: {}\n  - type: clickhouse\n    url: {url}\n    \
             queue:\n      batches: 4\n    spool:\n      dir: {}\n      max: 1G\n",
            out.display(),
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let mut fed = Fed::start(&cap, &["--config", cfg.to_str().unwrap()]);
    fed.feed(0.3);
    // Some rows are in before the server goes away.
    let t0 = Instant::now();
    while ch
        .query("SELECT count() FROM nsp.http")
        .map_or(0, |s| s.trim().parse().unwrap_or(0))
        == 0
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no rows reached ClickHouse"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ch.kill();
    let down = Instant::now();
    for _ in 0..5 {
        fed.feed(0.1);
        std::thread::sleep(Duration::from_millis(500));
    }
    // Down for 15 s, in the middle of the run.
    std::thread::sleep(Duration::from_secs(15).saturating_sub(down.elapsed()));
    ch.restart();
    let s = fed.finish();
    let sink = s["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["sink"].as_str().unwrap().starts_with("clickhouse://"))
        .unwrap()
        .clone();
    assert!(
        sink["spooled"].as_u64().unwrap() > 0,
        "the outage went through the spool: {sink}"
    );
    assert!(sink["errors"].as_u64().unwrap() > 0, "{sink}");
    assert_eq!(sink["backlog"], 0, "{sink}");
    // Every record exactly once: the table equals the JSON-lines sink of the same run.
    let ours = projected(&out.join("flows.jsonl"), FLOW_COLS);
    let theirs = rows(&ch, "nsp.flows", &FLOW_COLS.join(", "));
    assert_eq!(theirs.len(), ours.len(), "flow rows");
    assert_eq!(theirs, ours);
    let total: u64 = ch.count("SELECT sum(fwd_packets + rev_packets) FROM nsp.flows");
    assert_eq!(total, truth.packets);
    let ours = projected(&out.join("http.jsonl"), HTTP_COLS);
    assert_eq!(
        rows(&ch, "nsp.http", &HTTP_COLS.join(", ")),
        ours,
        "http rows"
    );
    // View snapshots: every snapshot file's rows, once each.
    let view_rows: usize = tree(&out)
        .iter()
        .filter(|(k, _)| k.ends_with("/src_ip.jsonl"))
        .map(|(_, v)| v.iter().filter(|&&b| b == b'\n').count())
        .sum();
    assert_eq!(
        ch.count("SELECT count() FROM nsp.view_src_ip") as usize,
        view_rows
    );
    assert_eq!(ch.count("SELECT uniqExact(probe) FROM nsp.flows"), 1);
}

#[test]
fn a_restart_delivers_its_spool_first() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut ch) = ClickHouse::start(&dir.path().join("ch")) else {
        return;
    };
    let url = format!("clickhouse://127.0.0.1:{}/nsp", ch.http);
    let cfg = dir.path().join("p.yaml");
    std::fs::write(
        &cfg,
        format!(
            "analyses:\n  flows: {{}}\nsinks:\n  - type: clickhouse\n    url: {url}\n    streams: [flows]\n    \
             queue:\n      drain_timeout: 1s\n    spool:\n      dir: {}\n      max: 1G\n",
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let (a, ta) = capture(dir.path(), "a.pcap", 8_000, 1);
    let (b, tb) = capture(dir.path(), "b.pcap", 8_000, 2);
    ch.kill();
    // The server is down for the whole first run: its records stay in the spool.
    let o = bin()
        .args([
            "probe",
            "-q",
            "--json",
            "--config",
            cfg.to_str().unwrap(),
            "--read",
        ])
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("not delivered"));
    ch.restart();
    run(&[
        "probe",
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "--read",
        b.to_str().unwrap(),
    ]);
    assert_eq!(
        ch.count("SELECT sum(fwd_packets + rev_packets) FROM nsp.flows"),
        ta.packets + tb.packets
    );
    // Nothing twice: one row per flow record of the two runs.
    assert_eq!(
        ch.count("SELECT count() FROM nsp.flows"),
        ch.count(
            "SELECT count() FROM (SELECT DISTINCT community_id, start, src_port FROM nsp.flows)"
        )
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
        0
    );
}

#[test]
fn a_reload_changes_views_without_losing_or_double_counting_a_packet() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, truth) = paced(dir.path(), "g.pcap", 60_000, 12, 2_000.0);
    let out = dir.path().join("out");
    let cfg = dir.path().join("p.yaml");
    let views = |second: &str| {
        format!(
            "analyses:\n  flows:\n    interval: 1s\n    views:\n      - name: kept\n        keys: [src_ip]\n      - name: {second}\n        keys: [dst_port]\n        interval: 2s\n\
             sinks:\n  - type: files\n    dir: {}\n",
            out.display()
        )
    };
    std::fs::write(&cfg, views("before")).unwrap();
    let mut fed = Fed::start(&cap, &["--config", cfg.to_str().unwrap()]);
    fed.feed(0.4);
    std::thread::sleep(Duration::from_millis(800));
    std::fs::write(&cfg, views("after")).unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(fed.child.id() as libc::pid_t, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(800));
    fed.feed(0.3);
    std::thread::sleep(Duration::from_millis(300));
    let s = fed.finish();
    let packets = |view: &str| -> u64 {
        tree(&out)
            .iter()
            .filter(|(k, _)| k.ends_with(&format!("/{view}.jsonl")))
            .flat_map(|(_, v)| {
                String::from_utf8_lossy(v)
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<serde_json::Value>(l).unwrap()["packets"]
                            .as_u64()
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
            .sum()
    };
    let total = s["flows"]["packets"].as_u64().unwrap();
    assert_eq!(total, truth.packets);
    assert_eq!(packets("kept"), total, "a view kept across the reload");
    let (b, a) = (packets("before"), packets("after"));
    assert!(b > 0 && a > 0, "before {b}, after {a}");
    assert_eq!(b + a, total, "the replaced view plus its replacement");
}

#[test]
fn records_are_anonymized_as_sanitize_anonymizes_captures() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = capture(dir.path(), "g.pcap", 20_000, 21);
    let key = dir.path().join("k.hex");
    std::fs::write(
        &key,
        "00112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    // The probe over the real capture, anonymizing.
    let cfg = dir.path().join("p.yaml");
    let pout = dir.path().join("p");
    std::fs::write(
        &cfg,
        format!(
            "anonymize:\n  key_file: {}\nsinks:\n  - type: files\n    dir: {}\n",
            key.display(),
            pout.display()
        ),
    )
    .unwrap();
    run(&[
        "probe",
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "--read",
        cap.to_str().unwrap(),
    ]);
    // The capture sanitized with the same key (addresses only), then analysed as is.
    let san = dir.path().join("s.pcap");
    run(&[
        "sanitize",
        cap.to_str().unwrap(),
        "-o",
        san.to_str().unwrap(),
        "--anonymize",
        "--key-file",
        key.to_str().unwrap(),
        "-q",
    ]);
    let f = dir.path().join("f");
    run(&[
        "flows",
        san.to_str().unwrap(),
        "-q",
        "-o",
        f.to_str().unwrap(),
    ]);
    let h = dir.path().join("h.jsonl");
    run(&[
        "http",
        san.to_str().unwrap(),
        "-o",
        h.to_str().unwrap(),
        "--summary",
        "none",
        "--tunnels",
    ]);
    // The same records, addresses and Community IDs included, from either side.
    assert_eq!(
        sorted(lines(&pout.join("flows.jsonl"))),
        sorted(lines(&f.join("flows.jsonl")))
    );
    assert_eq!(
        projected(
            &pout.join("http.jsonl"),
            &["src_ip", "dst_ip", "community_id", "ts", "type"]
        ),
        projected(&h, &["src_ip", "dst_ip", "community_id", "ts", "type"])
    );
    // And nothing of the real addresses is left.
    let real = sorted(lines(&{
        let o = dir.path().join("real");
        run(&[
            "flows",
            cap.to_str().unwrap(),
            "-q",
            "-o",
            o.to_str().unwrap(),
        ]);
        o.join("flows.jsonl")
    }));
    let anon = lines(&pout.join("flows.jsonl")).join("\n");
    let public_real = real
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["src_ip"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|a| !a.starts_with("ff") && !a.starts_with("224.") && !a.starts_with("127."))
        .find(|a| anon.contains(&format!("\"{a}\"")));
    assert_eq!(
        public_real, None,
        "a real address is in the anonymized records"
    );
}

#[test]
fn health_endpoints_say_whether_capture_and_sinks_are_working() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = paced(dir.path(), "g.pcap", 5_000, 3, 500.0);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = dir.path().join("p.yaml");
    std::fs::write(
        &cfg,
        format!(
            "sinks:\n  - type: store\n    path: {}\n  - type: files\n    dir: {}\n  - type: clickhouse\n    url: clickhouse://127.0.0.1:{closed}/x\n    \
             queue:\n      drain_timeout: 1s\n    spool:\n      dir: {}\n      max: 1G\n\
             metrics:\n  listen: {addr}\n",
            dir.path().join("store.db").display(),
            dir.path().join("o").display(),
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let mut fed = Fed::start(&cap, &["--config", cfg.to_str().unwrap()]);
    fed.feed(0.5);
    let get = |path: &str| -> (u16, String) {
        use std::io::Read;
        let t0 = Instant::now();
        loop {
            if let Ok(mut c) = std::net::TcpStream::connect(&addr) {
                c.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                    .unwrap();
                let mut s = String::new();
                let _ = c.read_to_string(&mut s);
                let code = s
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                return (code, s);
            }
            assert!(t0.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(get("/healthz").0, 200);
    // ClickHouse is not there: not ready, and the answer says which sink.
    let t0 = Instant::now();
    let (code, body) = loop {
        let r = get("/readyz");
        if r.0 == 503 || t0.elapsed() > Duration::from_secs(30) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("clickhouse://") && body.contains("not delivering"),
        "{body}"
    );
    let (code, body) = get("/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("netspectra_sink_backlog_records"), "{body}");
    assert!(body.contains("netspectra_flows_packets_total"), "{body}");
    // The console's probes page reads the same endpoint live: packets, the ClickHouse sink
    // down with records waiting; and a probe that does not answer is shown down.
    let c = Console::start(&[
        "--store",
        dir.path().join("store.db").to_str().unwrap(),
        "--probe-metrics",
        &format!("http://{addr}/metrics"),
        "--probe-metrics",
        &format!("http://127.0.0.1:{closed}"),
    ]);
    let p = c.json("/api/v1/probes");
    let live = p["live"].as_array().expect("live");
    assert_eq!(live.len(), 2, "{p}");
    assert_eq!(live[0]["up"], true, "{p}");
    assert_eq!(live[0]["sinks_down"], 1, "{p}");
    assert!(live[0]["packets"].as_u64().unwrap() > 0, "{p}");
    assert!(
        live[0]["sink_backlog_records"].as_u64().unwrap()
            + live[0]["sink_spool_bytes"].as_u64().unwrap()
            > 0,
        "{p}"
    );
    assert_eq!(live[1]["up"], false, "{p}");
    assert!(!live[1]["error"].as_str().unwrap().is_empty(), "{p}");
    drop(c);
    // The pipe stays open, so stop the run: the spool keeps what ClickHouse did not get.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(fed.child.id() as libc::pid_t, libc::SIGTERM) };
    let o = fed.child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Packets in every capture file under `dir` (read by `netspectra info`, checked against
/// capinfos by the info tests), and their total size.
fn ring_contents(dir: &Path) -> (u64, u64, usize, String) {
    let mut packets = 0;
    let mut bytes = 0;
    let mut files = 0;
    let mut last = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        bytes += std::fs::metadata(&p).unwrap().len();
        files += 1;
        let o = run(&["info", "--json", p.to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        packets += v["packets"].as_u64().unwrap();
        last = last.max(v["last_ts"].as_str().unwrap_or("").to_string());
    }
    (packets, bytes, files, last)
}

#[test]
fn the_forensic_ring_keeps_the_last_packets_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, truth) = capture(dir.path(), "g.pcap", 40_000, 31);
    let o = run(&["info", "--json", cap.to_str().unwrap()]);
    let last_in: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for (budget, whole) in [("1G", true), ("3M", false)] {
        let ring = dir.path().join(format!("ring-{budget}"));
        let cfg = dir.path().join("p.yaml");
        std::fs::write(
            &cfg,
            format!(
                "analyses:\n  flows: {{}}\nsinks:\n  - type: files\n    dir: {}\n\
                 ring:\n  dir: {}\n  file_size: 1M\n  max_total: {budget}\n",
                dir.path().join(format!("out-{budget}")).display(),
                ring.display()
            ),
        )
        .unwrap();
        run(&[
            "probe",
            "-q",
            "--config",
            cfg.to_str().unwrap(),
            "--read",
            cap.to_str().unwrap(),
        ]);
        let (packets, bytes, files, last) = ring_contents(&ring);
        assert_eq!(
            last,
            last_in["last_ts"].as_str().unwrap(),
            "the newest packet is kept"
        );
        if whole {
            // Room for everything: every packet is in the ring, in files of about 1 MiB.
            assert_eq!(packets, truth.packets);
            assert!(files > 3, "{files} files");
        } else {
            // The budget (plus the file being written) holds; the newest packets stay.
            assert!(bytes <= (3 << 20) + (1 << 20) + 4096, "{bytes} bytes");
            assert!(packets > 0 && packets < truth.packets, "{packets}");
        }
    }
}
