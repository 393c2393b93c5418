//! Test support shared by the CLI tests: running `netspectra` and other tools with failures that
//! show stderr, and for the privileged tests a pair of network namespaces joined by a veth pair
//! (always removed on drop) with helpers to run `netspectra` inside them.
#![allow(dead_code)] // each test file uses a different subset

mod tool;
#[allow(unused_imports)] // not every test file compares with a tool
pub use tool::have;

use netspectra_testnet::{ip, VethPair};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_netspectra");

/// Two quiet namespaces joined by a veth pair (see `netspectra_testnet::VethPair::quiet`), with
/// helpers that run `netspectra` inside them; removed on drop.
pub struct Netns(VethPair);

impl std::ops::Deref for Netns {
    type Target = VethPair;
    fn deref(&self) -> &VethPair {
        &self.0
    }
}

impl Netns {
    pub fn new() -> Self {
        Netns(VethPair::quiet("cl"))
    }

    /// Starts `netspectra capture` in namespace b and waits until it listens.
    pub fn capture(&self, extra: &[&str]) -> Child {
        let mut args = vec!["capture", "-i", &self.b_if, "--json"];
        args.extend_from_slice(extra);
        self.spawn_b(&args)
    }

    /// Starts `netspectra ARGS` in namespace b and waits for its "listening on" line.
    pub fn spawn_b(&self, args: &[&str]) -> Child {
        let mut c = Command::new("ip")
            .args(["netns", "exec", &self.b, BIN])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn capture");
        let mut err = BufReader::new(c.stderr.take().expect("stderr"));
        let mut line = String::new();
        // A metrics endpoint is announced before the capture opens.
        for _ in 0..4 {
            line.clear();
            err.read_line(&mut line).expect("read capture stderr");
            if !line.contains("metrics on") {
                break;
            }
        }
        assert!(
            line.contains("listening on"),
            "capture did not start: {line}"
        );
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut s = String::new();
            while err.read_line(&mut s).map(|n| n > 0).unwrap_or(false) {
                s.clear();
            }
        });
        c
    }

    /// Replays `file` from namespace a and returns the packets sent.
    pub fn replay(&self, file: &Path, extra: &[&str]) -> u64 {
        self.replay_json(file, extra)["packets"]
            .as_u64()
            .expect("packets")
    }

    /// Replays `file` from namespace a and returns replay's JSON summary.
    pub fn replay_json(&self, file: &Path, extra: &[&str]) -> serde_json::Value {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.a, BIN, "replay", "-i", &self.a_if, "--json",
            ])
            .arg(file)
            .args(extra)
            .output()
            .expect("run replay");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("replay json")
    }
}

/// Writes a generated capture to `path` and returns its truth.
pub fn generated_capture(path: &Path, cfg: &netspectra_gen::GenConfig) -> netspectra_gen::Truth {
    let (bytes, truth) = netspectra_gen::generate_to_vec(cfg).expect("generate");
    std::fs::write(path, bytes).expect("write capture");
    truth
}

/// A `netspectra` command to add arguments to.
pub fn bin() -> Command {
    Command::new(BIN)
}

/// Runs a command to completion and fails the test, showing its stderr, on a non-zero exit.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs `netspectra ARGS` to completion and fails the test on a non-zero exit.
pub fn run_ok(args: &[&std::ffi::OsStr]) {
    run(bin().args(args));
}

impl Netns {
    /// Runs `netspectra LIVE_ARGS` on b's interface while `file` is replayed from a at top
    /// speed (every frame must be sent), then interrupts it and returns its JSON summary. The
    /// link MTU leaves room for QinQ tags on top of a 1514-byte frame.
    pub fn replay_through(
        &self,
        file: &Path,
        packets: u64,
        live_args: &[&str],
    ) -> serde_json::Value {
        for (ns, dev) in [(&self.a, &self.a_if), (&self.b, &self.b_if)] {
            ip(&["-n", ns, "link", "set", dev, "mtu", "9000"]);
        }
        let child = self.spawn_b(live_args);
        assert_eq!(self.replay(file, &["--topspeed"]), packets, "frames sent");
        interrupt(child)
    }
}

/// Sends SIGINT to the capture and returns its JSON summary.
pub fn interrupt(mut c: Child) -> serde_json::Value {
    std::thread::sleep(Duration::from_millis(300));
    let st = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    finish(&mut c)
}

pub fn finish(c: &mut Child) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            assert!(st.success(), "capture exited with {st}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "capture did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = String::new();
    std::io::Read::read_to_string(c.stdout.as_mut().unwrap(), &mut s).unwrap();
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("summary {s:?}: {e}"))
}

/// Scrapes `http://127.0.0.1:PORT/metrics` inside namespace `ns` (its loopback brought up);
/// see [`netspectra_testnet::scrape_metrics`].
pub fn scrape_in(ns: &str, port: u16) -> Option<std::collections::HashMap<String, f64>> {
    netspectra_testnet::scrape_metrics(Some(ns), &format!("http://127.0.0.1:{port}/metrics"))
}

/// Scrapes until `name` reaches `want` (the wait only bounds a hang) and returns that scrape.
pub fn scrape_until(
    ns: &str,
    port: u16,
    name: &str,
    want: f64,
) -> Option<std::collections::HashMap<String, f64>> {
    let t0 = Instant::now();
    loop {
        let m = scrape_in(ns, port)?;
        if m.get(name) == Some(&want) {
            return Some(m);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{name} never reached {want}: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
