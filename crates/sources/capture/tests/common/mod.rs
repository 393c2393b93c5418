//! Shared helpers for the privileged tests: a veth pair across two network namespaces that this
//! test creates and always removes, and generated frames.
#![allow(dead_code)]

use etherparse::PacketBuilder;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Returns a skip reason when the privileged tests cannot run here.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: network namespaces and AF_PACKET need root".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("iproute2 `ip` not found (run scripts/setup.sh)".into());
    }
    None
}

/// Skips the calling test with a printed reason when not privileged.
#[macro_export]
macro_rules! require_root {
    () => {
        if let Some(r) = common::skip_reason() {
            eprintln!("SKIP {}: {r}", module_path!());
            return;
        }
    };
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces `a` and `b` joined by a veth pair `a_if` <-> `b_if`; IPv6 off so the kernel
/// sends nothing on its own. Dropping it deletes both namespaces (and with them the veths).
pub struct NetnsPair {
    pub a: String,
    pub b: String,
    pub a_if: String,
    pub b_if: String,
}

impl NetnsPair {
    pub fn new() -> Self {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}x{n}", std::process::id());
        let p = NetnsPair {
            a: format!("nsct{id}a"),
            b: format!("nsct{id}b"),
            a_if: format!("vc{id}a"),
            b_if: format!("vc{id}b"),
        };
        // Register for cleanup before creating anything.
        for ns in [&p.a, &p.b] {
            ip(&["netns", "add", ns]);
            for k in ["all", "default"] {
                ip(&[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{k}.disable_ipv6=1"),
                ]);
            }
        }
        ip(&[
            "link", "add", &p.a_if, "netns", &p.a, "type", "veth", "peer", "name", &p.b_if,
            "netns", &p.b,
        ]);
        ip(&["-n", &p.a, "link", "set", &p.a_if, "up"]);
        ip(&["-n", &p.b, "link", "set", &p.b_if, "up"]);
        p
    }

    /// Moves the calling thread into namespace `ns` (setns affects only this thread).
    pub fn enter(ns: &str) {
        let f = File::open(format!("/var/run/netns/{ns}")).expect("open netns");
        // SAFETY: a valid namespace fd; CLONE_NEWNET switches only the calling thread.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Deterministic frames: `n` packets over `flows` UDP and TCP flows, both directions, sizes from
/// 60 to 1514 bytes, payload bytes derived from the packet index.
pub fn frames(n: usize, flows: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let flow = (x as usize) % flows.max(1);
        let reverse = (x >> 20) & 1 == 1;
        let (mut s, mut d) = ([10, 1, (flow >> 8) as u8, flow as u8], [10, 2, 0, 1]);
        let (mut sp, mut dp) = (
            10_000 + flow as u16,
            if flow.is_multiple_of(3) { 80 } else { 5001 },
        );
        if reverse {
            std::mem::swap(&mut s, &mut d);
            std::mem::swap(&mut sp, &mut dp);
        }
        let plen = (x >> 32) as usize % 1400;
        let payload: Vec<u8> = (0..plen).map(|k| (i + k) as u8).collect();
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(s, d, 64);
        let mut buf = Vec::with_capacity(plen + 64);
        if flow.is_multiple_of(2) {
            b.udp(sp, dp).write(&mut buf, &payload).unwrap();
        } else {
            b.tcp(sp, dp, i as u32, 1024)
                .write(&mut buf, &payload)
                .unwrap();
        }
        if buf.len() < 60 {
            buf.resize(60, 0);
        }
        out.push(buf);
    }
    out
}
