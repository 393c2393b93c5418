//! Each encapsulation the decoder learnt (tunnels: GRE TEB, ERSPAN I/II/III, GENEVE → IP →
//! GRE → IP, VXLAN with reserved bits set, ERSPAN → VXLAN on the source port, NSH over
//! VXLAN-GPE, PIM register; link layers and shims: PPPoE, PPP, Cisco HDLC, 802.1BR E-Tag, NSH,
//! QinQ + three MPLS labels, SLL2 on a GRE device, MACsec) in a hand-built capture of one HTTP
//! exchange, checked against tshark's verdict on the same file: `http` finds the request
//! tshark finds (by default, inside tunnels too), `flows --inner` has tshark's TCP
//! conversation with the same frame counts, `info` counts the IPv4/TCP frames tshark decodes
//! (outside tunnels), and `sanitize --anonymize` rewrites every IPv4 address tshark decodes,
//! inner ones included, with checksums as right as before.

use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
#[path = "common/frames.rs"]
mod frames;
use common::have;
use frames::*;

fn ours(args: &[&str]) -> std::process::Output {
    let o = Command::new(common::BIN).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn tshark(args: &[&str]) -> String {
    let o = Command::new("tshark").args(args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One capture per class: `(class, path)`.
fn captures(dir: &Path) -> Vec<(Class, PathBuf)> {
    classes()
        .into_iter()
        .map(|c| {
            let p = dir.join(format!("{}.pcap", c.name));
            let frames: Vec<Vec<u8>> = http_exchange(&format!("/c/{}", c.name), "h.example")
                .iter()
                .map(|ip| (c.wrap)(ip))
                .collect();
            write_pcap(&p, c.link, &frames);
            (c, p)
        })
        .collect()
}

/// Runs `check` on the capture of every class and fails once at the end, naming every class
/// that failed (a regression shows all the classes it breaks, not only the first).
fn each_class(dir: &Path, check: impl Fn(&Class, &Path)) {
    let failed: Vec<&str> = captures(dir)
        .iter()
        .filter(|(c, p)| std::panic::catch_unwind(AssertUnwindSafe(|| check(c, p))).is_err())
        .map(|(c, _)| c.name)
        .collect();
    assert!(failed.is_empty(), "failed for {failed:?}");
}

fn tshark_or_skip() -> bool {
    if !have("tshark", "-v") {
        netspectra_testnet::skip("encapsulations vs tshark", "tshark not installed");
        return false;
    }
    true
}

#[test]
fn http_finds_the_request_tshark_finds_in_every_encapsulation() {
    if !tshark_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    each_class(dir.path(), |c, p| {
        let f = p.to_str().unwrap();
        let theirs = tshark(&[
            "-r",
            f,
            "-Y",
            "tcp && http.request",
            "-T",
            "fields",
            "-e",
            "http.request.method",
            "-e",
            "http.host",
            "-e",
            "http.request.uri",
        ]);
        let want = format!("GET\th.example\t/c/{}\n", c.name);
        assert_eq!(theirs, want, "{}: tshark's verdict", c.name);
        let out = ours(&["http", f, "--summary", "none", "-q"]);
        let reqs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["type"] == "request")
            .map(|r| {
                format!(
                    "{}\t{}\t{}\n",
                    r["method"].as_str().unwrap(),
                    r["host"].as_str().unwrap(),
                    r["uri"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(reqs, [want], "{}", c.name);
        // Tunnels can be left alone: then a tunnelled request is not found.
        let off = ours(&["http", f, "--summary", "none", "-q", "--no-tunnels"]);
        assert_eq!(
            off.stdout.is_empty(),
            c.tunnel,
            "{} with --no-tunnels",
            c.name
        );
    });
}

/// tshark's TCP conversations: endpoints → total frames.
fn tshark_tcp_convs(f: &str) -> BTreeMap<(String, String), u64> {
    let text = tshark(&["-n", "-r", f, "-q", "-z", "conv,tcp"]);
    let mut m = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("<->")) {
        let (a, rest) = line.split_once("<->").unwrap();
        let v: Vec<&str> = rest.split_whitespace().collect();
        let (a, b) = (a.trim().to_string(), v[0].to_string());
        let key = if a <= b { (a, b) } else { (b, a) };
        *m.entry(key).or_default() += v[1].parse::<u64>().unwrap() + v[4].parse::<u64>().unwrap();
    }
    m
}

#[test]
fn flows_inner_has_tshark_tcp_conversations_and_info_counts_like_tshark() {
    if !tshark_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    each_class(dir.path(), |c, p| {
        let f = p.to_str().unwrap();
        let rec = dir.path().join(format!("{}.jsonl", c.name));
        let r = rec.to_str().unwrap();
        ours(&[
            "flows",
            f,
            "--inner",
            "--records",
            r,
            "--no-default-views",
            "-q",
        ]);
        let mut mine = BTreeMap::new();
        for l in std::fs::read_to_string(&rec).unwrap().lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            if v["proto"] != 6 {
                continue;
            }
            let ep = |ip: &str, port: &str| format!("{}:{}", v[ip].as_str().unwrap(), v[port]);
            let (a, b) = (ep("src_ip", "src_port"), ep("dst_ip", "dst_port"));
            let key = if a <= b { (a, b) } else { (b, a) };
            let n = v["fwd_packets"].as_u64().unwrap() + v["rev_packets"].as_u64().unwrap();
            *mine.entry(key).or_insert(0u64) += n;
        }
        let theirs = tshark_tcp_convs(f);
        assert_eq!(theirs.len(), 1, "{}: {theirs:?}", c.name);
        assert_eq!(mine, theirs, "{}", c.name);

        // `info` decodes the outer view: outside tunnels, every frame is IPv4 and TCP.
        let info: Value = serde_json::from_slice(&ours(&["info", "--json", f]).stdout).unwrap();
        let pr = &info["protocols"];
        let count = |filter: &str| tshark(&["-r", f, "-Y", filter]).lines().count() as u64;
        if !c.tunnel {
            assert_eq!(pr["ipv4"].as_u64(), Some(count("ip")), "{}: {pr}", c.name);
            assert_eq!(pr["tcp"].as_u64(), Some(count("tcp")), "{}: {pr}", c.name);
        }
        assert_eq!(pr["undecoded"], 0, "{}", c.name);
        assert_eq!(pr["truncated"], 0, "{}", c.name);
        assert_eq!(pr["malformed"], 0, "{}", c.name);
    });
}

/// Every IPv4 address tshark decodes (outer and inner) and its checksum verdicts per frame.
fn tshark_addresses(f: &Path) -> (Vec<String>, Vec<String>) {
    let text = tshark(&[
        "-r",
        f.to_str().unwrap(),
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
        "-e",
        "ip.checksum.status",
        "-e",
        "tcp.checksum.status",
        "-e",
        "udp.checksum.status",
        "-e",
        "ip.src",
        "-e",
        "ip.dst",
    ]);
    let mut verdicts = Vec::new();
    let mut addrs = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').collect();
        verdicts.push(f[..3].join("|"));
        addrs.extend(
            f[3..]
                .iter()
                .flat_map(|x| x.split(','))
                .filter(|a| !a.is_empty())
                .map(String::from),
        );
    }
    (verdicts, addrs)
}

#[test]
fn sanitize_rewrites_inner_addresses_and_keeps_checksums_right() {
    if !tshark_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // One key for every class (a key file: a passphrase costs 100,000 hash rounds per run).
    let key = dir.path().join("key");
    std::fs::write(&key, "00112233445566778899aabbccddeeff".repeat(2)).unwrap();
    let mapped: RefCell<BTreeMap<String, String>> = RefCell::default();
    each_class(dir.path(), |c, p| {
        let out = dir.path().join(format!("{}.anon.pcap", c.name));
        ours(&[
            "sanitize",
            p.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--anonymize",
            "--key-file",
            key.to_str().unwrap(),
            "-q",
        ]);
        let (v_in, a_in) = tshark_addresses(p);
        let (v_out, a_out) = tshark_addresses(&out);
        assert!(
            v_in.iter().all(|v| !v.contains('0')),
            "{}: a checksum of the input is bad: {v_in:?}",
            c.name
        );
        assert!(
            v_in.iter().any(|v| v.contains('1')),
            "{}: tshark checked no checksum",
            c.name
        );
        assert_eq!(v_in, v_out, "{}: checksum verdicts changed", c.name);
        assert_eq!(a_in.len(), a_out.len(), "{}: address fields lost", c.name);
        let inner = ["10.1.2.3", "10.9.8.7"];
        assert!(
            inner.iter().all(|a| a_in.iter().any(|x| x == a)),
            "{}: {a_in:?}",
            c.name
        );
        let leaked: Vec<&String> = a_out.iter().filter(|a| a_in.contains(a)).collect();
        assert!(
            leaked.is_empty(),
            "{}: addresses passed through: {leaked:?}",
            c.name
        );
        // The inner addresses map as in every other class (one key, prefix-preserving).
        for (a, b) in a_in.iter().zip(&a_out) {
            let mut mapped = mapped.borrow_mut();
            let first = mapped.entry(a.clone()).or_insert_with(|| b.clone());
            assert_eq!(first, b, "{}: {a} mapped two ways", c.name);
        }
    });
}
