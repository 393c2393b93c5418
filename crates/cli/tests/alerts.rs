//! Alert rules end to end: a generated capture with a known port scan, a known super-spreader
//! and a known heavy hitter mixed into its background traffic; `probe` with the rules fires
//! exactly those alerts, with the right keys, once each, and resolves them once; the events
//! reach the store (and the console's alerts API) and a webhook run by the test.

mod common;
#[path = "support/console.rs"]
mod console;

use etherparse::PacketBuilder;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The frames of a nanosecond pcap (timestamp in ns, frame).
fn read_pcap(p: &Path) -> Vec<(i64, Vec<u8>)> {
    let b = std::fs::read(p).unwrap();
    assert_eq!(&b[..4], &0xa1b2_3c4du32.to_le_bytes(), "nanosecond pcap");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let u = |i: usize| u32::from_le_bytes(b[at + i..at + i + 4].try_into().unwrap());
        let ts = i64::from(u(0)) * 1_000_000_000 + i64::from(u(4));
        let n = u(8) as usize;
        out.push((ts, b[at + 16..at + 16 + n].to_vec()));
        at += 16 + n;
    }
    out
}

fn write_pcap(p: &Path, frames: &[(i64, Vec<u8>)]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&65_535u32.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    for (ts, f) in frames {
        b.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    std::fs::write(p, b).unwrap();
}

fn syn(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, 1, 1024)
        .syn()
        .write(&mut f, &[])
        .unwrap();
    f
}

/// Background from the generator plus the three known offenders, between 5 s and 30 s into
/// the capture (inside its first one-minute interval).
fn capture(dir: &Path) -> std::path::PathBuf {
    let bg = dir.join("bg.pcap");
    common::generated_capture(
        &bg,
        &netspectra_gen::GenConfig {
            packets: Some(6000),
            seed: 11,
            packets_per_sec: 100.0,
            ..Default::default()
        },
    );
    let mut frames = read_pcap(&bg);
    let t0 = frames[0].0 + 5_000_000_000;
    for i in 0..300u16 {
        let t = t0 + i64::from(i) * 50_000_000;
        // Port scan: one source, one target, 300 ports.
        frames.push((t, syn([10, 99, 0, 1], [10, 0, 0, 50], 40_000, 1 + i)));
        // Super-spreader: one source, 300 destinations, one port.
        frames.push((
            t + 1,
            syn(
                [10, 99, 0, 2],
                [172, 31, (i >> 8) as u8, i as u8],
                40_001,
                445,
            ),
        ));
    }
    // Heavy hitter: 3000 large UDP datagrams of one flow (about 4.3 MB).
    for i in 0..3000i64 {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 99, 0, 3], [10, 0, 0, 60], 64)
            .udp(5000, 6000)
            .write(&mut f, &[0x5a; 1400])
            .unwrap();
        frames.push((t0 + 2 + i * 8_000_000, f));
    }
    frames.sort_by_key(|x| x.0);
    let p = dir.join("mixed.pcap");
    write_pcap(&p, &frames);
    p
}

/// A webhook receiver: collects the JSON bodies POSTed to it; stops on drop.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (Arc::clone(&got), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            while !s.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(120) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let n = c.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break Some(body[..len].to_string());
                        }
                    }
                };
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                if let Some(b) = body {
                    if let Ok(Value::Array(v)) = serde_json::from_str(&b) {
                        g.lock().unwrap().extend(v);
                    }
                }
            }
        });
        Receiver {
            port,
            got,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// (state, rule, key) of events, sorted.
fn summary(events: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["state"].as_str().unwrap().to_string(),
                e["rule"].as_str().unwrap().to_string(),
                e["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_scan_a_super_spreader_and_a_heavy_hitter_fire_exactly_their_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = capture(dir.path());
    let hook = Receiver::start();
    let db = dir.path().join("store.db");
    let cfg = dir.path().join("probe.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"probe: {{name: t1}}
analyses:
  flows:
    interval: 60s
    views:
      - name: by_src
        keys: [src_ip]
        metrics: [packets, bytes, flows, distinct(dst_port), distinct(dst_ip)]
  http: {{}}
alerts:
  rules:
    - name: port_scan
      measure: threshold
      view: by_src
      metric: distinct_dst_port
      above: 100
      severity: critical
      labels: {{kind: scan}}
    - name: super_spreader
      measure: threshold
      view: by_src
      metric: distinct_dst_ip
      above: 100
    - name: heavy_hitter
      measure: share
      view: by_src
      metric: bytes
      above: 0.4
    - name: http_errors
      measure: http_error_rate
      above: 0.9
  webhooks:
    - url: http://127.0.0.1:{}/hook
sinks:
  - type: store
    path: {}
"#,
            hook.port,
            db.display()
        ),
    )
    .unwrap();
    let o = common::bin()
        .args([
            "probe",
            "-q",
            "-c",
            cfg.to_str().unwrap(),
            "--read",
            pcap.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want: Vec<(String, String, String)> = [
        ("heavy_hitter", "src_ip=10.99.0.3"),
        ("port_scan", "src_ip=10.99.0.1"),
        ("super_spreader", "src_ip=10.99.0.2"),
    ]
    .iter()
    .flat_map(|(r, k)| {
        ["firing", "resolved"].map(|s| (s.to_string(), r.to_string(), k.to_string()))
    })
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect();
    // In the store, through the console.
    let c = console::Console::start(&["--store", db.to_str().unwrap()]);
    let a = c.json("/api/v1/alerts?limit=1000");
    let events = a["rows"].as_array().unwrap();
    assert_eq!(summary(events), want, "{a}");
    let scan = events
        .iter()
        .find(|e| e["rule"] == "port_scan" && e["state"] == "firing")
        .unwrap();
    assert_eq!(scan["severity"], "critical");
    assert_eq!(scan["labels"]["kind"], "scan");
    assert!(scan["value"].as_f64().unwrap() >= 250.0, "{scan}");
    // The same events at the webhook.
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(summary(&got), want);
}
