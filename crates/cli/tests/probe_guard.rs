//! `netspectra probe` running the eBPF guard of its configuration (root; two namespaces joined
//! by a veth pair the test makes): the guard drops what its policy denies on the probe's
//! interface, every deny/log event is a record of the probe's `guard` stream (the objects
//! `netspectra guard run --events` prints), its counters are in the probe's metrics, SIGHUP
//! reloads its policy with the configuration, and SIGTERM detaches it.

#[path = "support/clickhouse.rs"]
mod clickhouse;
mod common;

use netspectra_testnet::{in_ns, require_root, Side, VethPair};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const A: &str = "10.91.0.1";
const B: &str = "10.91.0.2";

/// The probe's configuration: files (and ClickHouse at `ch`, a URL) take the guard stream.
fn config(iface: &str, out: &Path, deny_port: u16, ch: Option<&str>) -> String {
    let ch = ch
        .map(|u| format!("  - type: clickhouse\n    url: {u}\n    streams: [guard]\n"))
        .unwrap_or_default();
    format!(
        "capture:\n  interfaces:\n    - name: {iface}\nanalyses:\n  flows: {{}}\n\
         sinks:\n  - type: files\n    dir: {}\n    streams: [guard, flows]\n{ch}\
         metrics:\n  listen: 127.0.0.1:9471\n\
         guard:\n  interface: {iface}\n  ingress: true\n  policy:\n    default: allow\n    rules:\n\
         \x20     - name: no-{deny_port}\n        src: {A}\n        proto: udp\n        port: {deny_port}\n        action: deny\n\
         \x20     - name: log-7777\n        proto: udp\n        port: 7777\n        action: log\n",
        out.display()
    )
}

/// `netspectra` in network namespace `ns` only (`ip netns exec` would also give it a mount
/// namespace of its own, where the guard's pins under /sys/fs/bpf are out of sight of the
/// other commands).
fn in_netns(ns: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/var/run/netns/{ns}")).arg(common::BIN);
    c
}

/// The running probe; when the test fails half-way, dropping it kills the probe and removes
/// what its guard left (pins, state file).
struct Probe {
    child: Child,
    iface: String,
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(format!("/sys/fs/bpf/netspectra/{}", self.iface));
        let _ = std::fs::remove_file(format!("/run/netspectra/{}.json", self.iface));
    }
}

/// Starts the probe in namespace `ns`; its stderr lines arrive on the receiver.
fn spawn_probe(ns: &str, cfg: &Path) -> (Child, Receiver<String>) {
    let mut c = in_netns(ns)
        .args(["probe", "--json", "-c"])
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn probe");
    let err = BufReader::new(c.stderr.take().unwrap());
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            eprintln!("probe: {l}");
            let _ = tx.send(l);
        }
    });
    (c, rx)
}

/// Waits for a stderr line containing `what`.
fn wait_line(rx: &Receiver<String>, what: &str) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            assert!(!l.contains("error"), "{l}");
            if l.contains(what) {
                return;
            }
        }
    }
    panic!("the probe never said {what:?}");
}

/// Sends `per` datagrams to B:`port` from each of `sockets` new sockets in namespace `ns`;
/// returns the source ports.
fn send(ns: &str, port: u16, sockets: usize, per: usize) -> Vec<u16> {
    in_ns(ns, || {
        (0..sockets)
            .map(|_| {
                let s = UdpSocket::bind(format!("{A}:0")).unwrap();
                for i in 0..per {
                    s.send_to(format!("datagram {i}").as_bytes(), format!("{B}:{port}"))
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                }
                s.local_addr().unwrap().port()
            })
            .collect()
    })
}

/// Datagrams waiting on `s` (it has a read timeout).
fn received(s: &UdpSocket) -> usize {
    let mut buf = [0u8; 1500];
    let mut n = 0;
    while s.recv_from(&mut buf).is_ok() {
        n += 1;
    }
    n
}

fn sigterm_and_wait(c: &mut Child) -> serde_json::Value {
    let st = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    common::finish(c)
}

#[test]
fn a_probe_runs_the_guard_and_its_deny_events_are_guard_records() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let pair = VethPair::addressed(
        "pg",
        Side {
            v4: "10.91.0.1/24",
            v6: "fd91::1/64",
        },
        Side {
            v4: "10.91.0.2/24",
            v6: "fd91::2/64",
        },
    );
    let out = dir.path().join("out");
    let cfg = dir.path().join("probe.yaml");
    // ClickHouse in b (optional: without a server the files alone are checked, with a SKIP
    // line; CI has one).
    let ch = clickhouse::ClickHouse::start_in(&dir.path().join("ch"), Some(&pair.b));
    let url = ch
        .as_ref()
        .map(|c| format!("clickhouse://127.0.0.1:{}/pg", c.http));
    std::fs::write(&cfg, config(&pair.b_if, &out, 9999, url.as_deref())).unwrap();
    // The configuration checks (the policy compiles) without loading anything.
    let check = common::run(
        common::bin()
            .args(["probe", "--check-config", "-c"])
            .arg(&cfg),
    );
    assert!(
        String::from_utf8_lossy(&check.stdout).contains(&format!("guard on {}", pair.b_if)),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // Receivers in b, bound before anything is sent.
    let (r9999, r7777) = in_ns(&pair.b, || {
        let r = |p: u16| {
            let s = UdpSocket::bind(format!("0.0.0.0:{p}")).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            s
        };
        (r(9999), r(7777))
    });
    let (child, lines) = spawn_probe(&pair.b, &cfg);
    let mut probe = Probe {
        child,
        iface: pair.b_if.clone(),
    };
    wait_line(&lines, "listening on");
    let state = format!("/run/netspectra/{}.json", pair.b_if);
    assert!(Path::new(&state).exists(), "the guard publishes its state");

    let denied = send(&pair.a, 9999, 3, 2);
    let logged = send(&pair.a, 7777, 2, 2);
    assert_eq!(received(&r9999), 0, "denied datagrams must not arrive");
    assert_eq!(received(&r7777), 4, "logged datagrams pass");

    // The guard's counters are in the probe's metrics.
    let dropped = format!("netspectra_guard_dropped_total{{interface={}}}", pair.b_if);
    if let Some(m) = common::scrape_until(&pair.b, 9471, &dropped, 6.0) {
        let l = |n: &str| m[&format!("netspectra_guard_{n}{{interface={}}}", pair.b_if)];
        assert_eq!(l("denied_total"), 6.0, "{m:?}");
        assert_eq!(l("logged_total"), 4.0, "{m:?}");
        assert_eq!(l("policy_generation"), 1.0);
        assert_eq!(l("up"), 1.0);
    }
    // `guard status` finds the probe's guard.
    let st = common::run(
        in_netns(&pair.b)
            .args(["guard", "status", "--json", "-i"])
            .arg(&pair.b_if),
    );
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["running"], true, "{st}");
    assert_eq!(st["counters"]["dropped"], 6, "{st}");

    // SIGHUP: the reloaded configuration denies 8888 instead; 9999 passes from now on.
    std::fs::write(&cfg, config(&pair.b_if, &out, 8888, url.as_deref())).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &probe.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_line(&lines, "generation 1 -> 2");
    let after = send(&pair.a, 9999, 1, 1);
    assert_eq!(received(&r9999), 1, "9999 is allowed after the reload");
    // `guard reload` signals the probe (which reloads its configuration), and refuses a
    // policy file of its own for a probe's guard.
    let rl = common::run(in_netns(&pair.b).args(["guard", "reload", "-i", &pair.b_if]));
    assert!(
        String::from_utf8_lossy(&rl.stdout).contains("generation 2 -> 3"),
        "{}",
        String::from_utf8_lossy(&rl.stdout)
    );
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, "default: allow\n").unwrap();
    let rl = in_netns(&pair.b)
        .args(["guard", "reload", "-i", &pair.b_if, "--policy"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(rl.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&rl.stderr).contains("netspectra probe"));

    let s = sigterm_and_wait(&mut probe.child);
    assert_eq!(s["guard"]["events"], 10, "{s}");
    assert_eq!(s["guard"]["interface"], pair.b_if.as_str(), "{s}");
    // Detached and cleaned up: the pins and the state are gone, denied traffic passes.
    assert!(!Path::new(&format!("/sys/fs/bpf/netspectra/{}", pair.b_if)).exists());
    assert!(!Path::new(&state).exists());

    // The guard stream: exactly the deny and log events, with the guard's own fields.
    let text = std::fs::read_to_string(out.join("guard.jsonl")).unwrap();
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 10, "{text}");
    let mut deny_ports = BTreeMap::new();
    let mut log_ports = BTreeMap::new();
    for r in &recs {
        assert_eq!(r["src"], A, "{r}");
        assert_eq!(r["dst"], B, "{r}");
        assert_eq!(r["proto"], "udp", "{r}");
        assert_eq!(r["generation"], 1, "{r}");
        assert!(r["ts"].as_f64().unwrap() > 1.6e9, "{r}");
        let sport = r["sport"].as_u64().unwrap() as u16;
        match r["action"].as_str().unwrap() {
            "deny" => {
                assert_eq!(r["dport"], 9999, "{r}");
                assert_eq!(r["rule"], "no-9999", "{r}");
                assert!(r["flags"]
                    .as_array()
                    .unwrap()
                    .contains(&serde_json::json!("dropped")));
                *deny_ports.entry(sport).or_insert(0) += 1;
            }
            "log" => {
                assert_eq!(r["dport"], 7777, "{r}");
                assert_eq!(r["rule"], "log-7777", "{r}");
                *log_ports.entry(sport).or_insert(0) += 1;
            }
            other => panic!("unexpected action {other}: {r}"),
        }
    }
    let want = |ports: &[u16]| {
        ports
            .iter()
            .map(|&p| (p, 2))
            .collect::<BTreeMap<u16, i32>>()
    };
    assert_eq!(
        deny_ports,
        want(&denied),
        "two deny events per denied socket"
    );
    assert_eq!(log_ports, want(&logged), "two log events per logged socket");
    assert!(!after.is_empty());
    // The ClickHouse table: one column per field, the same events.
    if let Some(ch) = &ch {
        let q = |w: &str| ch.count(&format!("SELECT count() FROM pg.guard WHERE {w}"));
        assert_eq!(q("1"), 10);
        assert_eq!(
            q(&format!(
                "action = 'deny' AND rule = 'no-9999' AND src = '{A}' AND dst = '{B}' \
                 AND dport = 9999 AND proto = 'udp' AND has(flags, 'dropped')"
            )),
            6
        );
        assert_eq!(
            q(&format!("action = 'log' AND src = '{A}' AND dport = 7777")),
            4
        );
        assert_eq!(
            q("time < now() - 600 OR probe = ''"),
            0,
            "time and probe are set"
        );
        for p in &denied {
            assert_eq!(q(&format!("action = 'deny' AND sport = {p}")), 2);
        }
    }
    // Flows of the capture still arrive next to the guard's records.
    assert!(out.join("flows.jsonl").exists());
}
