//! A running `netspectra console` for tests (killed by PID on drop, also when a test fails), a
//! plain HTTP/1.1 GET, and the API checks every backend must pass against a capture's truth.
#![allow(dead_code)] // each test file uses a different subset

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A console process and its URL.
pub struct Console {
    child: Child,
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    /// host:port.
    pub addr: String,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Console {
    /// Starts `netspectra console ARGS --listen 127.0.0.1:0` and waits for its URL line.
    pub fn start(args: &[&str]) -> Console {
        let mut child = Command::new(env!("CARGO_BIN_EXE_netspectra"))
            .arg("console")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn console");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).expect("console output");
        let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("console did not start: {line:?}");
        };
        let url = url.to_string();
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Console { child, url, addr }
    }

    /// GET `path` (raw, already encoded) with optional extra headers: status, head, body.
    pub fn get_with(&self, path: &str, headers: &str) -> (u16, String, String) {
        let mut c = std::net::TcpStream::connect(&self.addr).expect("connect console");
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{headers}Connection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut r = Vec::new();
        c.read_to_end(&mut r).unwrap();
        let r = String::from_utf8_lossy(&r).to_string();
        let (head, body) = r.split_once("\r\n\r\n").unwrap_or((&r, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> (u16, String, String) {
        self.get_with(path, "")
    }

    /// GET an API path that must answer 200 with JSON.
    pub fn json(&self, path: &str) -> Value {
        let (s, _, body) = self.get(path);
        assert_eq!(s, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}

/// The API answers of a store filled from a generated capture equal the capture's truth; a
/// known flow's trace shows its records and HTTP transactions. Returns that flow's Community
/// ID and its packets (for the page test).
pub fn check_api(c: &Console, truth: &netspectra_gen::Truth) -> (String, u64) {
    let s = c.json("/api/v1/summary");
    assert_eq!(s["flows"]["flows"], truth.flows.total, "{s}");
    assert_eq!(s["flows"]["packets"], truth.packets, "{s}");
    assert_eq!(s["flows"]["bytes"], truth.bytes, "{s}");
    assert_eq!(s["http"]["requests"], truth.http.requests, "{s}");
    assert_eq!(s["http"]["responses"], truth.http.responses, "{s}");
    // Aggregates add up to the totals whatever the key.
    for by in ["proto", "src_ip/16,dst_port", "dst_ip/24/48", "vlan"] {
        let a = c.json(&format!("/api/v1/flows/aggregate?by={by}&limit=10000"));
        let rows = a["rows"].as_array().unwrap();
        let sum = |m: &str| rows.iter().map(|r| r[m].as_u64().unwrap()).sum::<u64>();
        assert_eq!(sum("packets"), truth.packets, "by {by}");
        assert_eq!(sum("flows"), truth.flows.total, "by {by}");
    }
    let p = c.json("/api/v1/flows/aggregate?by=proto&limit=100");
    let of = |proto: u64| {
        p["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["proto"] == proto)
            .map_or(0, |r| r["flows"].as_u64().unwrap())
    };
    assert_eq!(of(6), truth.flows.tcp);
    assert_eq!(of(17), truth.flows.udp);
    assert_eq!(of(1), truth.flows.icmp);
    assert_eq!(of(58), truth.flows.icmpv6);
    let v = c.json("/api/v1/flows/aggregate?by=proto&vlan=0&limit=5");
    assert!(v["rows"].is_array());
    // Filters: the IPv6 flows are those in ::/0.
    let v6 = c.json("/api/v1/summary?src_ip=::/0");
    assert_eq!(v6["flows"]["flows"], truth.flows.ipv6, "{v6}");
    // Top-N shares add up to at most 1, ordered.
    let top = c.json("/api/v1/flows/top?by=src_ip&limit=5");
    let shares: Vec<f64> = top["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["share"].as_f64().unwrap())
        .collect();
    assert!(shares.windows(2).all(|w| w[0] >= w[1]), "{shares:?}");
    assert!(shares.iter().sum::<f64>() <= 1.0 + 1e-9);
    // Time series add up too.
    let ts = c.json("/api/v1/flows/timeseries?step=10");
    let tsum: u64 = ts["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(tsum, truth.packets);
    // HTTP counts equal the truth by status and by host.
    let st = c.json("/api/v1/http/counts?by=status&limit=10000");
    for (code, n) in &truth.http.by_status {
        let got = st["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"].as_u64().map(|k| k.to_string()).as_deref() == Some(code.as_str()))
            .map_or(0, |r| r["count"].as_u64().unwrap());
        assert_eq!(got, *n, "status {code}");
    }
    let hosts = c.json("/api/v1/http/counts?by=host&limit=10000");
    let hrows = hosts["rows"].as_array().unwrap();
    assert_eq!(hrows.len(), truth.http.by_host.len());
    for r in hrows {
        let h = r["key"].as_str().unwrap();
        assert_eq!(
            r["count"].as_u64(),
            truth.http.by_host.get(h).copied(),
            "{h}"
        );
    }
    // A host search finds exactly that host's requests.
    let (host, n) = truth.http.by_host.iter().max_by_key(|(_, n)| **n).unwrap();
    let found = c.json(&format!(
        "/api/v1/http/search?host={host}&type=request&limit=10000"
    ));
    assert_eq!(found["rows"].as_array().unwrap().len() as u64, *n);
    let lat = c.json("/api/v1/http/latency?by=none");
    let l = &lat["rows"][0];
    assert!(l["p50"].as_u64() <= l["p90"].as_u64() && l["p90"].as_u64() <= l["p99"].as_u64());
    assert!(l["p99"].as_u64() <= l["max"].as_u64());
    assert_eq!(l["count"], truth.http.responses);
    // Trace the flow of one HTTP request by its 5-tuple: its records, its transactions.
    let req = &found["rows"][0];
    let t = c.json(&format!(
        "/api/v1/flows/trace?src_ip={}&dst_ip={}&src_port={}&dst_port={}&proto=6",
        req["src_ip"].as_str().unwrap(),
        req["dst_ip"].as_str().unwrap(),
        req["src_port"],
        req["dst_port"]
    ));
    assert_eq!(t["community_id"], req["community_id"], "{t}");
    let sum = &t["summary"];
    assert!(sum["records"].as_u64().unwrap() >= 1, "{t}");
    let packets = sum["fwd_packets"].as_u64().unwrap() + sum["rev_packets"].as_u64().unwrap();
    assert!(
        packets >= 4,
        "a TCP session with HTTP has at least 4 packets: {t}"
    );
    let http = t["http"].as_array().unwrap();
    assert!(
        http.iter()
            .any(|h| h["type"] == "request" && h["host"] == req["host"]),
        "{t}"
    );
    // Distinct destination ports per source: the greatest first.
    let d = c.json("/api/v1/flows/distinct?by=src_ip&count=dst_port&limit=5");
    let counts: Vec<u64> = d["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["distinct_count"].as_u64().unwrap())
        .collect();
    assert!(!counts.is_empty() && counts.windows(2).all(|w| w[0] >= w[1]));
    let pr = c.json("/api/v1/probes");
    assert_eq!(pr["rows"][0]["packets"], truth.packets);
    (t["community_id"].as_str().unwrap().to_string(), packets)
}

/// Hostile parameters: each gets 400 with a JSON message, never a server error.
pub fn check_hostile(c: &Console) {
    let cases = [
        "/api/v1/flows/aggregate?limit=100000000000000000000",
        "/api/v1/flows/aggregate?limit=-1",
        "/api/v1/flows/aggregate?limit=0",
        "/api/v1/flows/aggregate?src_ip=10.0.0.0/33",
        "/api/v1/flows/aggregate?src_ip=999.1.1.1",
        "/api/v1/flows/aggregate?dst_ip=fe80::/13",
        "/api/v1/flows/aggregate?by=src_ip;DROP%20TABLE%20flows",
        "/api/v1/flows/aggregate?by=src_ip%20FROM%20flows--",
        "/api/v1/flows/aggregate?order=bytes%20DESC;%20DELETE",
        "/api/v1/flows/aggregate?proto=1%20OR%201=1",
        "/api/v1/flows/aggregate?from=1'%20OR%20'1'='1",
        "/api/v1/flows/aggregate?probe=x'%20OR%20'1'='1",
        "/api/v1/flows/aggregate?whatever=1",
        "/api/v1/flows/aggregate?by=src_ip/24/13",
        "/api/v1/flows/aggregate?by=src_port/8",
        "/api/v1/http/search?host=%FF%FE",
        "/api/v1/http/search?host=a'%20OR%20'1'='1",
        "/api/v1/http/search?uri_prefix=%2F%5C",
        "/api/v1/http/search?host=a%00b",
        "/api/v1/http/search?status=99999",
        "/api/v1/http/counts?by=host;--",
        "/api/v1/flows/trace?community_id=x'--",
        "/api/v1/flows/trace?src_ip=10.0.0.1",
        "/api/v1/flows/trace?src_ip=10.0.0.0/8&dst_ip=10.0.0.2&proto=6",
        "/api/v1/flows/timeseries?step=0",
        "/api/v1/flows/distinct?count=bytes",
        "/api/v1/alerts?limit=1&limit=2",
    ];
    for q in cases {
        let (s, head, body) = c.get(q);
        assert_eq!(s, 400, "{q}: {body}");
        assert!(head.contains("content-type: application/json"), "{q}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert!(
            v["error"].as_str().is_some_and(|m| m.len() > 5),
            "{q}: {body}"
        );
    }
    let long = format!("/api/v1/http/search?host={}", "a".repeat(9000));
    assert_eq!(c.get(&long).0, 400);
    let (s, _, body) = c.get("/api/v1/nothing");
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("error"));
}
