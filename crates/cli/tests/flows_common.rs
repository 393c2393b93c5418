//! Helpers shared by the `flows` integration tests (included with `#[path]`, not a test crate
//! of its own).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

#[path = "common/tool.rs"]
mod tool;
#[allow(unused_imports)] // not every test file compares with a tool
pub use tool::have;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_netspectra")
}

/// Runs the binary with arguments.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run netspectra")
}

/// Generates a capture (and its truth file) with `netspectra gen`.
pub fn gen(dir: &Path, name: &str, packets: u64, seed: u64) -> (String, serde_json::Value) {
    let cap = dir.join(format!("{name}.pcap"));
    let truth = dir.join(format!("{name}.json"));
    let o = run(&[
        "gen",
        "-o",
        cap.to_str().unwrap(),
        "--packets",
        &packets.to_string(),
        "--seed",
        &seed.to_string(),
        "--truth",
        truth.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "gen failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let t = serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
    (cap.to_str().unwrap().to_string(), t)
}

/// Reads JSON lines.
pub fn jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An endpoint as tshark prints it (`addr:port`).
pub type Ep = String;

/// Per-conversation counts: (frames A→B, frames B→A, bytes A→B, bytes B→A, bytes exact?).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conv {
    pub frames_ab: u64,
    pub frames_ba: u64,
    pub bytes_ab: u64,
    pub bytes_ba: u64,
    /// Granularity of the byte counts as printed: 1 for "bytes", 1000 for kB, ...
    pub unit_ab: u64,
    pub unit_ba: u64,
}

fn unit(u: &str) -> u64 {
    match u {
        "bytes" => 1,
        "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => panic!("unknown unit {other}"),
    }
}

/// Parses `tshark -q -z conv,<proto>` output into conversations keyed by the endpoints in
/// sorted order (both orders of the same tuple are summed, as are repeated rows).
pub fn parse_conv(text: &str, section: &str) -> BTreeMap<(Ep, Ep), Conv> {
    let mut out: BTreeMap<(Ep, Ep), Conv> = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with(section) {
            inside = true;
            continue;
        }
        if line.starts_with("====") {
            inside = false;
            continue;
        }
        if !inside || !line.contains("<->") {
            continue;
        }
        let (a, rest) = line.split_once("<->").unwrap();
        let mut t = rest.split_whitespace();
        let b = t.next().unwrap().to_string();
        let a = a.trim().to_string();
        let v: Vec<&str> = t.collect();
        // "<-" = frames/bytes B→A, "->" = A→B.
        let (f_ba, b_ba, u_ba) = (
            v[0].parse::<u64>().unwrap(),
            v[1].parse::<u64>().unwrap(),
            unit(v[2]),
        );
        let (f_ab, b_ab, u_ab) = (
            v[3].parse::<u64>().unwrap(),
            v[4].parse::<u64>().unwrap(),
            unit(v[5]),
        );
        let (key, swap) = if a <= b {
            ((a, b), false)
        } else {
            ((b, a), true)
        };
        let c = out.entry(key).or_default();
        let (fab, fba, bab, bba, uab, uba) = if swap {
            (f_ba, f_ab, b_ba * u_ba, b_ab * u_ab, u_ba, u_ab)
        } else {
            (f_ab, f_ba, b_ab * u_ab, b_ba * u_ba, u_ab, u_ba)
        };
        c.frames_ab += fab;
        c.frames_ba += fba;
        c.bytes_ab += bab;
        c.bytes_ba += bba;
        c.unit_ab = c.unit_ab.max(uab);
        c.unit_ba = c.unit_ba.max(uba);
    }
    out
}

fn ep(ip: &str, port: u64) -> Ep {
    format!("{ip}:{port}")
}

/// Our flow records aggregated like [`parse_conv`] for one IP protocol.
pub fn our_convs(records: &[serde_json::Value], proto: u64) -> BTreeMap<(Ep, Ep), Conv> {
    let mut out: BTreeMap<(Ep, Ep), Conv> = BTreeMap::new();
    for r in records.iter().filter(|r| r["proto"] == proto) {
        let a = ep(
            r["src_ip"].as_str().unwrap(),
            r["src_port"].as_u64().unwrap(),
        );
        let b = ep(
            r["dst_ip"].as_str().unwrap(),
            r["dst_port"].as_u64().unwrap(),
        );
        let (fp, fb) = (
            r["fwd_packets"].as_u64().unwrap(),
            r["fwd_bytes"].as_u64().unwrap(),
        );
        let (rp, rb) = (
            r["rev_packets"].as_u64().unwrap(),
            r["rev_bytes"].as_u64().unwrap(),
        );
        let (key, swap) = if a <= b {
            ((a, b), false)
        } else {
            ((b, a), true)
        };
        let c = out.entry(key).or_default();
        if swap {
            c.frames_ab += rp;
            c.frames_ba += fp;
            c.bytes_ab += rb;
            c.bytes_ba += fb;
        } else {
            c.frames_ab += fp;
            c.frames_ba += rp;
            c.bytes_ab += fb;
            c.bytes_ba += rb;
        }
        c.unit_ab = 1;
        c.unit_ba = 1;
    }
    out
}

/// True when our exact bytes are what tshark printed at its granularity (it rounds to kB/MB).
pub fn bytes_agree(ours: u64, theirs: u64, unit: u64) -> bool {
    if unit <= 1 {
        return ours == theirs;
    }
    // tshark prints the value rounded to the unit; accept one unit of slack either way.
    ours.abs_diff(theirs) <= unit
}

/// Compares two conversation tables; returns a description of every difference.
pub fn diff_convs(
    ours: &BTreeMap<(Ep, Ep), Conv>,
    theirs: &BTreeMap<(Ep, Ep), Conv>,
) -> Vec<String> {
    let mut d = Vec::new();
    for (k, t) in theirs {
        match ours.get(k) {
            None => d.push(format!("{k:?}: tshark {t:?}, ours missing")),
            Some(o) => {
                if o.frames_ab != t.frames_ab
                    || o.frames_ba != t.frames_ba
                    || !bytes_agree(o.bytes_ab, t.bytes_ab, t.unit_ab)
                    || !bytes_agree(o.bytes_ba, t.bytes_ba, t.unit_ba)
                {
                    d.push(format!("{k:?}: tshark {t:?}, ours {o:?}"));
                }
            }
        }
    }
    for k in ours.keys() {
        if !theirs.contains_key(k) {
            d.push(format!("{k:?}: ours {:?}, tshark missing", ours[k]));
        }
    }
    d
}

/// Runs tshark's conversation statistics for TCP and UDP on a file.
pub fn tshark_conv(file: &str) -> String {
    // Tests of one binary that run in parallel ask for the same files: tshark, by far the
    // slowest part, reads each file once per process.
    type Cache = Mutex<HashMap<String, Arc<OnceLock<String>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let slot = Arc::clone(
        CACHE
            .get_or_init(Cache::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(file.to_string())
            .or_default(),
    );
    slot.get_or_init(|| {
        let o = Command::new("tshark")
            .args(["-n", "-r", file, "-q", "-z", "conv,tcp", "-z", "conv,udp"])
            .output()
            .expect("tshark");
        String::from_utf8_lossy(&o.stdout).to_string()
    })
    .clone()
}
