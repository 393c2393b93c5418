//! Network namespaces for the privileged tests (capture, CLI, guard): two namespaces joined by a
//! veth pair that the test creates and that are always removed, also when the test fails half-way.
//!
//! Only namespaces made here are touched, so no traffic leaves the machine.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Why the privileged tests cannot run here (not root, or no iproute2), or None when they can.
pub fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: network namespaces, AF_PACKET and BPF need root");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("iproute2 `ip` not found (run scripts/setup.sh)");
    }
    None
}

/// Reports a test (or part of one) that cannot run here: prints `SKIP what: why` for a developer,
/// and panics when `CI=true`, because in CI a skipped test is a failure (every tool, server,
/// privilege and corpus a test needs is provided there by `scripts/setup.sh` and `.ci/run`).
#[track_caller]
pub fn skip(what: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what}: cannot run in CI: {why}");
    }
    eprintln!("SKIP {what}: {why}");
}

/// Returns from the calling test with a printed reason when it cannot create namespaces (and
/// fails it under `CI=true`, see [`skip`]).
#[macro_export]
macro_rules! require_root {
    () => {
        if let Some(r) = $crate::skip_reason() {
            $crate::skip(module_path!(), r);
            return;
        }
    };
}

/// Runs `ip ARGS` and panics with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Addresses of one side of a [`VethPair`]: IPv4 and IPv6, each with its prefix length.
#[derive(Clone, Copy, Debug)]
pub struct Side<'a> {
    /// e.g. "10.77.0.1/24".
    pub v4: &'a str,
    /// e.g. "fd77::1/64".
    pub v6: &'a str,
}

/// Two namespaces `a` and `b` joined by a veth pair `a_if` <-> `b_if`, links up. Dropping it
/// ends any process still inside and deletes both namespaces (and with them the veth ends).
#[derive(Debug)]
pub struct VethPair {
    /// First (usually sending or client) namespace.
    pub a: String,
    /// Second (usually receiving or server) namespace.
    pub b: String,
    /// veth end in `a`.
    pub a_if: String,
    /// veth end in `b`.
    pub b_if: String,
}

impl VethPair {
    /// A pair without addresses and with IPv6 off, so that the kernel sends nothing on its own
    /// (what capture tests need to count frames exactly). `tag` (a few letters) keeps the
    /// names of different test crates apart.
    pub fn quiet(tag: &str) -> VethPair {
        let p = VethPair::create(tag);
        for ns in [&p.a, &p.b] {
            for k in ["all", "default"] {
                let kv = format!("net.ipv6.conf.{k}.disable_ipv6=1");
                ip(&["netns", "exec", ns, "sysctl", "-qw", &kv]);
            }
        }
        p.link_up();
        p
    }

    /// A pair with loopback up and the given IPv4 and IPv6 addresses on the veth ends (IPv6
    /// without duplicate address detection, usable at once).
    pub fn addressed(tag: &str, a: Side<'_>, b: Side<'_>) -> VethPair {
        let p = VethPair::create(tag);
        for (ns, dev, s) in [(&p.a, &p.a_if, a), (&p.b, &p.b_if, b)] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "addr", "add", s.v4, "dev", dev]);
            ip(&["-n", ns, "-6", "addr", "add", s.v6, "dev", dev, "nodad"]);
        }
        p.link_up();
        p
    }

    fn create(tag: &str) -> VethPair {
        let id = format!(
            "{tag}{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        // Interface names are limited to 15 bytes: "v" + id + side.
        let p = VethPair {
            a: format!("ns{id}a"),
            b: format!("ns{id}b"),
            a_if: format!("v{id}a"),
            b_if: format!("v{id}b"),
        };
        assert!(p.a_if.len() <= 15, "interface name {} too long", p.a_if);
        // `p` owns the names from here on: if a step panics, its Drop removes what exists.
        ip(&["netns", "add", &p.a]);
        ip(&["netns", "add", &p.b]);
        ip(&[
            "link", "add", &p.a_if, "netns", &p.a, "type", "veth", "peer", "name", &p.b_if,
            "netns", &p.b,
        ]);
        p
    }

    fn link_up(&self) {
        ip(&["-n", &self.a, "link", "set", &self.a_if, "up"]);
        ip(&["-n", &self.b, "link", "set", &self.b_if, "up"]);
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            // A test that failed half-way may leave a process in the namespace: end it first.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Moves the calling thread into namespace `ns` for good (setns affects only this thread).
pub fn enter(ns: &str) {
    let f = File::open(format!("/var/run/netns/{ns}")).expect("open netns");
    // SAFETY: a valid namespace fd; CLONE_NEWNET switches only the calling thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Runs `f` with the calling thread inside namespace `ns`, then switches back.
pub fn in_ns<R>(ns: &str, f: impl FnOnce() -> R) -> R {
    let orig = File::open("/proc/thread-self/ns/net").expect("own netns");
    enter(ns);
    let r = f();
    // SAFETY: a valid namespace fd for the calling thread.
    let back = unsafe { libc::setns(orig.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(back, 0, "setns back: {}", std::io::Error::last_os_error());
    r
}

/// Scrapes a Prometheus endpoint (`url`, e.g. `http://127.0.0.1:9464/metrics`), inside network
/// namespace `ns` when given, and parses it with the Prometheus project's own Python parser (an
/// independent check of the format and of the content type): samples keyed
/// `name{label=value,...}`, labels sorted. None, with a SKIP line, when the parser
/// (python3-prometheus-client) is missing; panics when the scrape itself fails.
pub fn scrape_metrics(
    ns: Option<&str>,
    url: &str,
) -> Option<std::collections::HashMap<String, f64>> {
    const PY: &str = r#"
import sys, urllib.request
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("NO_PARSER"); sys.exit(0)
r = urllib.request.urlopen(sys.argv[1], timeout=10)
assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers["Content-Type"]
for fam in text_string_to_metric_families(r.read().decode()):
    for s in fam.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        print("%s{%s}\t%r" % (s.name, labels, s.value))
"#;
    // Debian's interpreter, where the apt package installs the parser (a pyenv `python3` first
    // in PATH would not see it).
    let py = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, py]);
            c
        }
        None => Command::new(py),
    };
    let out = cmd.args(["-c", PY, url]).output().expect("run python3");
    assert!(
        out.status.success(),
        "scrape of {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 scrape");
    if text.trim() == "NO_PARSER" {
        skip(
            "prometheus scrape check",
            "python3-prometheus-client not installed (scripts/setup.sh installs it)",
        );
        return None;
    }
    Some(
        text.lines()
            .map(|l| {
                let (k, v) = l.split_once('\t').expect("name\tvalue");
                (k.to_string(), v.parse().expect("a number"))
            })
            .collect(),
    )
}
