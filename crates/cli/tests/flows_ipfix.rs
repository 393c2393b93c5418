//! `netspectra flows --export ipfix://...` against a real collector as the oracle: nfcapd
//! (nfdump 1.7) receives the IPFIX datagrams on 127.0.0.1 and nfdump reads its file back. Every
//! direction with packets in our JSON-lines records must be there as one uniflow record with
//! the same packets, IP bytes and times. Skips with a message when nfcapd or nfdump is missing.
//! Also: a collector that is down costs send errors, never the run.

#[path = "flows_common.rs"]
mod common;
use common::*;
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A UDP port on 127.0.0.1 that nothing listens on (just now).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The receive queue bytes and drop count of the UDP socket bound to 127.0.0.1:`port`, from
/// /proc/net/udp.
fn udp_queue(port: u16) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/udp").ok()?;
    let want = format!("0100007F:{port:04X}");
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1) != Some(&want.as_str()) {
            return None;
        }
        let rx = u64::from_str_radix(f[4].split(':').nth(1)?, 16).ok()?;
        let drops = f.last()?.parse().ok()?;
        Some((rx, drops))
    })
}

/// An nfcapd listening on 127.0.0.1:`port` and writing into `dir`; always stopped on drop.
struct Collector {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Collector {
    fn start(dir: &Path) -> Collector {
        let port = free_udp_port();
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new("nfcapd")
            .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-w"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nfcapd");
        let c = Collector {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
        };
        // Ready once its socket is bound.
        let t0 = Instant::now();
        while udp_queue(port).is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "nfcapd did not bind 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    /// Waits until nfcapd has read every queued datagram, stops it with SIGTERM (it then
    /// writes its file) and returns the datagrams its socket dropped.
    fn stop(&mut self) -> u64 {
        let t0 = Instant::now();
        let mut drops = 0;
        while let Some((rx, d)) = udp_queue(self.port) {
            drops = d;
            if rx == 0 || t0.elapsed() > Duration::from_secs(10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Its receive loop may still hold the last datagram it read.
        std::thread::sleep(Duration::from_millis(200));
        let mut child = self.child.take().expect("running");
        terminate(&mut child);
        drops
    }

    /// Every flow record the collector stored, as nfdump's JSON.
    fn records(&self) -> Vec<serde_json::Value> {
        let o = Command::new("nfdump")
            .env("TZ", "UTC")
            .arg("-R")
            .arg(&self.dir)
            .args(["-o", "json"])
            .output()
            .expect("run nfdump");
        assert!(
            o.status.success(),
            "nfdump: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout);
        if text.trim().is_empty() {
            return Vec::new();
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("nfdump json: {e}: {text:.500}"))
    }
}

/// SIGTERM, then SIGKILL if it has not exited within 10 s.
fn terminate(child: &mut Child) {
    // SAFETY: kill(2) on the id of a child this test started and has not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let t0 = Instant::now();
    while child.try_wait().ok().flatten().is_none() {
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
    }
}

/// A uniflow's identity: addresses, then ports (or ICMP type and code), protocol, VLAN.
type Key = (String, String, String, u64, u64);
/// What a uniflow counted: packets, IP bytes, first and last packet (UTC, milliseconds).
type Counts = (u64, u64, String, String);

/// Our records split into the uniflows the exporter sends: forward always, reverse when it
/// has packets. ICMP type/code as softflowd would report each direction's packets: a one-way
/// record's ports are its type and code; a paired record's are the request type (forward) and
/// the reply type (reverse), and the generator's echo messages have code 0.
fn our_uniflows(records: &[serde_json::Value]) -> BTreeMap<Key, Vec<Counts>> {
    let mut m: BTreeMap<Key, Vec<Counts>> = BTreeMap::new();
    for r in records {
        let s = |k: &str| r[k].as_str().unwrap().to_string();
        let n = |k: &str| r[k].as_u64().unwrap();
        let proto = n("proto");
        let icmp = proto == 1 || proto == 58;
        let ms = |k: &str| s(k)[..23].to_string(); // 2023-11-14T22:13:20.123
        for (src, dst, sp, dp, pk, by) in [
            (
                "src_ip",
                "dst_ip",
                "src_port",
                "dst_port",
                "fwd_packets",
                "fwd_ip_bytes",
            ),
            (
                "dst_ip",
                "src_ip",
                "dst_port",
                "src_port",
                "rev_packets",
                "rev_ip_bytes",
            ),
        ] {
            if n(pk) == 0 && pk == "rev_packets" {
                continue;
            }
            let paired = icmp
                && netspectra_packet::icmp_counterpart(proto as u8, n("src_port") as u8).is_some();
            let ports = if paired {
                format!("icmp {}/0", n(sp))
            } else if icmp {
                format!("icmp {}/{}", n("src_port"), n("dst_port"))
            } else {
                format!("{}-{}", n(sp), n(dp))
            };
            let key = (
                s(src),
                s(dst),
                ports,
                proto,
                r["vlan"].as_u64().unwrap_or(0),
            );
            m.entry(key)
                .or_default()
                .push((n(pk), n(by), ms("start"), ms("end")));
        }
    }
    m.values_mut().for_each(|v| v.sort());
    m
}

/// The collector's records in the same form.
fn their_uniflows(records: &[serde_json::Value]) -> BTreeMap<Key, Vec<Counts>> {
    let mut m: BTreeMap<Key, Vec<Counts>> = BTreeMap::new();
    for r in records {
        assert_eq!(r["type"], "FLOW", "{r}");
        let addr = |v4: &str, v6: &str| {
            r.get(v4)
                .or_else(|| r.get(v6))
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("no address in {r}"))
                .to_string()
        };
        let n = |k: &str| r[k].as_u64().unwrap_or(0);
        let ports = if r.get("icmp_type").is_some() {
            format!("icmp {}/{}", n("icmp_type"), n("icmp_code"))
        } else {
            format!("{}-{}", n("src_port"), n("dst_port"))
        };
        let key = (
            addr("src4_addr", "src6_addr"),
            addr("dst4_addr", "dst6_addr"),
            ports,
            n("proto"),
            n("src_vlan"),
        );
        let t = |k: &str| r[k].as_str().unwrap().to_string();
        m.entry(key)
            .or_default()
            .push((n("in_packets"), n("in_bytes"), t("first"), t("last")));
    }
    m.values_mut().for_each(|v| v.sort());
    m
}

#[test]
fn nfcapd_stores_every_direction_with_our_counts() {
    if !have("nfcapd", "-V") || !have("nfdump", "-V") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // ~500 flows: TCP, UDP, ICMP, ICMPv6, IPv4 and IPv6, VLAN-tagged ones (the generator's
    // default mix), in about sixty datagrams. They are paced (--export-rate) so that nfcapd's
    // default socket buffer (92 such datagrams on loopback) never overflows on a busy machine: a
    // loopback burst that the collector cannot read in time is dropped by the kernel.
    let (cap, truth) = gen(dir.path(), "x", 6000, 21);
    for k in ["tcp", "udp", "icmp", "icmpv6", "ipv6", "vlan"] {
        assert!(truth["flows"][k].as_u64().unwrap() > 0, "no {k} flows");
    }
    let mut nf = Collector::start(&dir.path().join("nf"));
    let rec = dir.path().join("r.jsonl");
    let url = format!("ipfix://127.0.0.1:{}", nf.port);
    let o = run(&[
        "flows",
        &cap,
        "-q",
        "--json",
        "--export",
        &url,
        "--export-domain",
        "7",
        "--export-rate",
        "5000",
        "--records",
        rec.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let drops = nf.stop();
    assert_eq!(drops, 0, "the collector's socket dropped datagrams");

    let records = jsonl(&rec);
    let ours = our_uniflows(&records);
    let theirs = their_uniflows(&nf.records());
    let count = |m: &BTreeMap<Key, Vec<Counts>>| m.values().map(Vec::len).sum::<usize>();
    let packets = |m: &BTreeMap<Key, Vec<Counts>>| m.values().flatten().map(|c| c.0).sum::<u64>();

    let x = &summary["ipfix"];
    assert_eq!(x["send_errors"], 0);
    assert_eq!(x["records"].as_u64().unwrap(), count(&ours) as u64);
    assert_eq!(count(&theirs), count(&ours), "records stored by nfcapd");
    assert!(count(&ours) > records.len(), "no reverse records");
    assert_eq!(packets(&theirs), packets(&ours));
    assert_eq!(
        packets(&ours),
        summary["table"]["flow_packets"].as_u64().unwrap()
    );
    let differ: Vec<_> = ours
        .iter()
        .filter(|(k, v)| theirs.get(*k) != Some(v))
        .map(|(k, v)| (k, v, theirs.get(k)))
        .take(5)
        .collect();
    assert!(differ.is_empty(), "ours vs nfdump: {differ:#?}");
    assert_eq!(ours.len(), theirs.len());
    // ICMP arrived as ICMP (type/code), not as ports.
    assert!(theirs.keys().any(|k| k.2.starts_with("icmp") && k.3 == 1));
    assert!(theirs.keys().any(|k| k.2.starts_with("icmp") && k.3 == 58));
    assert!(theirs.keys().any(|k| k.4 != 0), "no VLAN ids");
}

#[test]
fn collector_down_costs_send_errors_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = gen(dir.path(), "d", 6000, 22);
    let rec = dir.path().join("r.jsonl");
    let o = run(&["flows", &cap, "-q", "--records", rec.to_str().unwrap()]);
    assert!(o.status.success());
    let directions: u64 = jsonl(&rec)
        .iter()
        .map(|r| 1 + u64::from(r["rev_packets"].as_u64().unwrap() > 0))
        .sum();

    // Nothing listens on the port; `--export` alone writes no file (run in an empty folder).
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let url = format!("ipfix+udp://127.0.0.1:{}", free_udp_port());
    let o = Command::new(bin())
        .current_dir(&work)
        .args(["flows", &cap, "-q", "--json", "--export", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let x = &s["ipfix"];
    assert!(x["send_errors"].as_u64().unwrap() > 0, "{x}");
    assert_eq!(
        x["records"].as_u64().unwrap() + x["records_lost"].as_u64().unwrap(),
        directions
    );
    assert_eq!(s["records_written"], 0);
    assert!(s["warnings"][0]
        .as_str()
        .unwrap()
        .contains("datagrams not sent"));
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "files written"
    );

    // The text summary reports the export too.
    let o = run(&["flows", &cap, "-q", "--export", &url]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(&format!("IPFIX export to {url}:")), "{text}");
    assert!(text.contains("send errors"), "{text}");
}

#[test]
fn export_urls_other_than_ipfix_are_bad_input() {
    for (url, says) in [
        ("netflow://127.0.0.1:2055", "unsupported scheme"),
        ("ipfix://127.0.0.1", "not a collector URL"),
    ] {
        let o = run(&["flows", "/dev/null", "-q", "--export", url]);
        assert_eq!(o.status.code(), Some(2), "{url}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("--export") && err.contains(says),
            "{url}: {err}"
        );
    }
    let o = run(&["flows", "/dev/null", "-q", "--export-domain", "3"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sigint_flushes_every_ended_flow_to_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = gen(dir.path(), "s", 300_000, 23);
    // A collector socket that never reads: the exporter's own counts are checked here (the
    // kernel drops what overflows), against the records file of the same stopped run.
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let url = format!("ipfix://127.0.0.1:{}", sink.local_addr().unwrap().port());
    let rec = dir.path().join("r.jsonl");
    let child = Command::new(bin())
        .args(["flows", &cap, "-q", "--json", "--export", &url, "--records"])
        .arg(&rec)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(120));
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let o = child.wait_with_output().unwrap();
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // An interrupted file run exits 130 and keeps its records as `<name>.partial`.
    let rec = if s["stopped"] == true {
        assert_eq!(o.status.code(), Some(130));
        assert!(
            !rec.exists(),
            "no complete-looking records file after an interruption"
        );
        dir.path().join("r.jsonl.partial")
    } else {
        eprintln!("note: the run ended before SIGINT arrived; checked the end-of-input flush");
        assert!(o.status.success());
        rec
    };
    let directions: u64 = jsonl(&rec)
        .iter()
        .map(|r| 1 + u64::from(r["rev_packets"].as_u64().unwrap() > 0))
        .sum();
    assert!(directions > 0);
    assert_eq!(s["ipfix"]["records"].as_u64().unwrap(), directions, "{s}");
    assert_eq!(s["ipfix"]["send_errors"], 0);
}
