//! End-to-end tests of the `netspectra guard` subcommands (the binary is built by the cli crate, so
//! this test finds it through NETSPECTRA_BIN or $CARGO_TARGET_DIR/{debug,release}/netspectra and
//! skips with a message when it is missing or when not root).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NETSPECTRA_BIN") {
        return Some(PathBuf::from(p));
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("netspectra"))
        .filter(|p| p.exists())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("guard-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn check_accepts_good_and_rejects_bad_policies_with_exit_2() {
    let Some(b) = bin() else {
        eprintln!("skipping: netspectra binary not built (cargo build -p netspectra) and NETSPECTRA_BIN unset");
        return;
    };
    let d = tmpdir("check");
    let good = write(&d, "good.yaml", "default: deny\nrules:\n  - {name: web, dst: 10.0.0.0/24, proto: tcp, port: 80-90, action: allow}\n  - {name: h, src: 10.0.0.1, dst: 10.0.0.2, proto: udp, port: 53, action: log}\n");
    let out = Command::new(&b)
        .args(["guard", "check", "--policy"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("web") && text.contains("LPM x1") && text.contains("exact"),
        "{text}"
    );
    for (name, body, needle) in [
        (
            "host-bits.yaml",
            "rules:\n  - {dst: 10.0.0.1/8, action: allow}\n",
            "dst",
        ),
        (
            "typo.yaml",
            "rules:\n  - {dst: 10.0.0.0/8, acton: allow}\n",
            "acton",
        ),
        (
            "port.yaml",
            "rules:\n  - {proto: icmp, port: 7, action: deny}\n",
            "port",
        ),
        ("syntax.yaml", "rules: [\n", "line"),
    ] {
        let p = write(&d, name, body);
        let out = Command::new(&b)
            .args(["guard", "check", "--policy"])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{name}: {err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

struct Ns(Vec<String>);
impl Drop for Ns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Two namespaces `a` and `s` joined by a veth pair (`vb` is the end in `s`) addressed 10.NET.0.1/24 (in `a`) and
/// 10.NET.0.2/24 (in `s`), named after the test's tag and pid; removed on drop.
struct VethPair {
    a: String,
    s: String,
    vb: String,
    _ns: Ns,
}

fn veth_pair(tag: &str, net: u8) -> VethPair {
    let id = std::process::id();
    let (a, s) = (format!("{tag}A{id}"), format!("{tag}B{id}"));
    let (va, vb) = (format!("{tag}vA{id}"), format!("{tag}vB{id}"));
    sh(&["ip", "netns", "add", &a]);
    let ns = Ns(vec![a.clone(), s.clone()]);
    sh(&["ip", "netns", "add", &s]);
    sh(&[
        "ip", "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &s,
    ]);
    sh(&[
        "ip",
        "-n",
        &a,
        "addr",
        "add",
        &format!("10.{net}.0.1/24"),
        "dev",
        &va,
    ]);
    sh(&[
        "ip",
        "-n",
        &s,
        "addr",
        "add",
        &format!("10.{net}.0.2/24"),
        "dev",
        &vb,
    ]);
    sh(&["ip", "-n", &a, "link", "set", &va, "up"]);
    sh(&["ip", "-n", &s, "link", "set", &vb, "up"]);
    VethPair { a, s, vb, _ns: ns }
}

/// The binary to test when namespaces can be made (root); prints why not otherwise.
fn privileged_bin() -> Option<PathBuf> {
    let Some(b) = bin() else {
        eprintln!("skipping: netspectra binary not built and NETSPECTRA_BIN unset");
        return None;
    };
    if !netspectra_guard::is_root() {
        eprintln!("skipping: needs root");
        return None;
    }
    Some(b)
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(args: &[&str]) {
    let s = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(s.success(), "{args:?}");
}

fn json(b: &PathBuf, args: &[&str]) -> serde_json::Value {
    let out = Command::new(b).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Scrapes the guard's metrics on port `port` of namespace `ns`'s loopback.
fn scrape(ns: &str, port: u16) -> Option<std::collections::HashMap<String, f64>> {
    netspectra_testnet::scrape_metrics(Some(ns), &format!("http://127.0.0.1:{port}/metrics"))
}

#[test]
fn run_status_events_sessions_reload_in_a_namespace() {
    let Some(b) = privileged_bin() else {
        return;
    };
    let pair = veth_pair("gc", 78);
    let (a, s, vb) = (pair.a.clone(), pair.s.clone(), pair.vb.clone());
    let d = tmpdir("run");
    let allow = write(
        &d,
        "allow.yaml",
        "default: deny\nrules:\n  - {name: pings, proto: icmp, action: log}\n",
    );
    let deny = write(
        &d,
        "deny.yaml",
        "default: deny\nrules:\n  - {name: nopings, proto: icmp, action: deny}\n",
    );
    // Metrics are served on the namespace's loopback.
    sh(&["ip", "-n", &s, "link", "set", "lo", "up"]);
    let child = Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{s}"))
        .arg(&b)
        .args([
            "guard",
            "run",
            "-i",
            &vb,
            "--metrics",
            "127.0.0.1:9464",
            "--policy",
        ])
        .arg(&allow)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut run = Kill(child);
    let state = PathBuf::from(format!("/run/netspectra/{vb}.json"));
    let t0 = Instant::now();
    while !state.exists() && t0.elapsed() < Duration::from_secs(120) {
        assert!(
            run.0.try_wait().unwrap().is_none(),
            "guard run exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(state.exists(), "guard did not start");
    let ping = |n: &str| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &a,
                "ping",
                "-c",
                n,
                "-i",
                "0.2",
                "-W",
                "1",
                "10.78.0.2",
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(ping("3"), "logged ping passes");
    let st = json(&b, &["guard", "status", "-i", &vb, "--json"]);
    assert_eq!(st["generation"], 1);
    assert!(st["counters"]["logged"].as_u64().unwrap() >= 6, "{st}");
    assert!(
        st["maps"]["sessions"]["entries"].as_u64().unwrap() >= 1,
        "{st}"
    );
    if let Some(m) = scrape(&s, 9464) {
        let status = json(&b, &["guard", "status", "-i", &vb, "--json"]);
        let logged = m[&format!("netspectra_guard_logged_total{{interface={vb}}}")];
        assert!(logged >= 6.0, "{m:?}");
        // Counters only grow: the scrape lies between the two status readings.
        assert!(logged <= status["counters"]["logged"].as_f64().unwrap());
        assert!(logged >= st["counters"]["logged"].as_f64().unwrap());
        assert_eq!(
            m[&format!("netspectra_guard_policy_generation{{interface={vb}}}")],
            1.0
        );
        assert_eq!(m[&format!("netspectra_guard_up{{interface={vb}}}")], 1.0);
        assert!(m[&format!("netspectra_guard_map_entries{{interface={vb},map=sessions}}")] >= 1.0);
        assert_eq!(
            m[&format!("netspectra_guard_map_max_entries{{interface={vb},map=sessions}}")],
            st["maps"]["sessions"]["max_entries"].as_f64().unwrap()
        );
    }
    let out = Command::new(&b)
        .args(["guard", "events", "-i", &vb, "--duration", "1.5"])
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pings: Vec<_> = lines.iter().filter(|l| l["rule"] == "pings").collect();
    assert_eq!(pings.len(), 6, "3 requests + 3 replies logged: {lines:?}");
    assert!(pings
        .iter()
        .all(|l| l["action"] == "log" && l["proto"] == "icmp"));
    let out = Command::new(&b)
        .args(["guard", "sessions", "-i", &vb, "--json"])
        .output()
        .unwrap();
    let sess: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["proto"] == "icmp")
        .expect("icmp session");
    assert_eq!(sess["proto"], "icmp");
    assert_eq!(sess["initiator"], "10.78.0.1");
    assert_eq!(sess["packets_fwd"], 3);
    assert_eq!(sess["packets_rev"], 3);
    // reload with a denying policy: the same ping flow (same echo id per ping run is new; both fail)
    let out = Command::new(&b)
        .args(["guard", "reload", "-i", &vb, "--policy"])
        .arg(&deny)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("generation 1 -> 2"));
    assert!(!ping("1"), "ping denied after reload");
    let st = json(&b, &["guard", "status", "-i", &vb, "--json"]);
    assert_eq!(st["generation"], 2);
    if let Some(m) = scrape(&s, 9464) {
        assert_eq!(
            m[&format!("netspectra_guard_policy_generation{{interface={vb}}}")],
            2.0
        );
    }
    assert!(st["counters"]["dropped"].as_u64().unwrap() >= 1);
    // a bad reload keeps the running generation and exits 2
    let bad = write(&d, "bad.yaml", "rules:\n  - {proto: bogus, action: deny}\n");
    let out = Command::new(&b)
        .args(["guard", "reload", "-i", &vb, "--policy"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // SIGINT detaches and removes the pins
    // SAFETY: signalling our own child.
    unsafe { libc::kill(run.0.id() as i32, libc::SIGINT) };
    let _ = run.0.wait();
    assert!(!PathBuf::from(format!("/sys/fs/bpf/netspectra/{vb}")).exists());
    assert!(!state.exists());
    assert!(ping("1"), "traffic passes again once detached");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn pin_keeps_the_guard_attached_after_exit_and_unpin_detaches() {
    let Some(b) = privileged_bin() else {
        return;
    };
    let pair = veth_pair("gp", 79);
    let (a, s, vb) = (pair.a.clone(), pair.s.clone(), pair.vb.clone());
    let d = tmpdir("pin");
    let deny = write(&d, "deny.yaml", "default: deny\nrules: []\n");
    let allow = write(&d, "allow.yaml", "default: allow\nrules: []\n");
    let ping = || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &a,
                "ping",
                "-c",
                "1",
                "-W",
                "1",
                "10.79.0.2",
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(ping(), "baseline");
    let mut run = Kill(
        Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{s}"))
            .arg(&b)
            .args(["guard", "run", "-i", &vb, "--pin", "--policy"])
            .arg(&deny)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let state = PathBuf::from(format!("/run/netspectra/{vb}.json"));
    let t0 = Instant::now();
    while !state.exists() && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(run.0.id() as i32, libc::SIGINT) };
    assert!(run.0.wait().unwrap().success());
    assert!(!ping(), "still enforced after the process exited");
    let out = Command::new(&b)
        .args(["guard", "reload", "-i", &vb, "--policy"])
        .arg(&allow)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ping(), "reload into the pinned maps takes effect");
    let out = Command::new(&b)
        .args(["guard", "reload", "-i", &vb, "--policy"])
        .arg(&deny)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!ping());
    let out = Command::new(&b)
        .args(["guard", "unpin", "-i", &vb])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The kernel releases an unpinned TCX link asynchronously (its id goes before the detach
    // completes), so give the detach up to a few pings to take effect.
    assert!(
        (0..5).any(|_| ping() || {
            std::thread::sleep(Duration::from_millis(200));
            false
        }),
        "detached after unpin"
    );
    assert!(!state.exists());
    let _ = std::fs::remove_dir_all(&d);
}
