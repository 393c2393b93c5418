//! Benchmark helper for the guard (run as root; see benches/guard/run.sh).
//!
//! `guard_bench testrun [REPEAT]`   per-packet cost with BPF_PROG_TEST_RUN (no network)
//! `guard_bench newflows`           cold new flows, one BPF_PROG_TEST_RUN call per distinct SYN
//! `guard_bench newflows1 [N]`      cold new flows, N distinct SYNs in one call (bench entry point)
//! `guard_bench mem RULES SESSIONS MAX` bytes_memlock of every guard map (fdinfo + bpftool)
//! `guard_bench policy RULES`       prints a policy with RULES deny rules that never match the
//!                                  benchmark traffic (10.77.0.1 -> 10.77.0.2), default allow
//! `guard_bench fill IFACE N`       adds N synthetic sessions to the running guard on IFACE
//! `guard_bench empty IFACE OBJ`    attaches the classifier `empty` of OBJ (a program that only
//!                                  returns TC_ACT_OK) with TCX on IFACE's ingress and egress, as
//!                                  the guard attaches, until SIGINT/SIGTERM: the cost of the hook

use netspectra_guard::abi::{SessKey, SessVal};
use netspectra_guard::frames::{build, FrameSpec, RST};
use netspectra_guard::policy::ip_to_u128;
use netspectra_guard::{FlowTuple, Guard, Maps, Policy};
use std::fmt::Write as _;

fn policy_yaml(n: usize) -> String {
    let mut y = String::from("default: allow\nevent_rate: 1\n");
    y.push_str(if n == 0 { "rules: []\n" } else { "rules:\n" });
    // a few broad rules above the benchmark destination so that a miss walks several levels
    let nested = [
        ("10.0.0.0/8", 9000),
        ("10.77.0.0/16", 9001),
        ("10.77.0.0/24", 9002),
        ("10.77.0.2", 9003),
    ];
    for (i, (dst, port)) in nested.iter().enumerate().take(n.min(4)) {
        let _ = writeln!(
            y,
            "  - {{name: nest{i}, src: 192.168.0.0/16, dst: {dst}, proto: tcp, port: {port}, action: deny}}"
        );
    }
    for i in 4..n {
        let dst = format!("10.{}.{}.0/24", 100 + (i >> 8) % 64, i & 255);
        let src = match i % 3 {
            0 => format!("172.{}.0.0/16", 16 + i % 16),
            1 => format!("172.16.{}.0/24", (i >> 4) & 255),
            _ => "any".to_string(),
        };
        let port = 1000 + (i * 7) % 30000;
        let proto = if i % 5 == 0 { "udp" } else { "tcp" };
        let _ = writeln!(
            y,
            "  - {{name: r{i}, src: {src}, dst: {dst}, proto: {proto}, port: {port}, action: deny}}"
        );
    }
    y
}

fn synth(i: u32, gen: u32) -> (SessKey, SessVal) {
    let a = ip_to_u128(std::net::Ipv4Addr::new(10, 200, (i >> 8) as u8, i as u8).into());
    let b = ip_to_u128(std::net::Ipv4Addr::new(10, 201, (i >> 16) as u8, 1).into());
    let k = SessKey {
        a: a.to_be_bytes(),
        b: b.to_be_bytes(),
        pa: 1024 + (i % 50000) as u16,
        pb: 80,
        proto: 6,
        pad: [0; 3],
    };
    let v = SessVal {
        generation: gen,
        rule_id: netspectra_guard::abi::RULE_DEFAULT,
        ..Default::default()
    };
    (k, v)
}

fn fill(maps: &Maps, n: u32) {
    let gen = maps.config().expect("config").generation;
    for i in 0..n {
        let (k, v) = synth(i, gen);
        maps.insert_session(&k, &v).expect("insert session");
    }
}

fn v4(s: &str) -> u128 {
    ip_to_u128(s.parse().unwrap())
}

fn testrun(repeat: u32) {
    let mut g = Guard::load(131072).expect("load (root needed)");
    let mut frame = Vec::new();
    let t = FlowTuple {
        src: v4("10.77.0.1"),
        dst: v4("10.77.0.2"),
        proto: 17,
        dport: 5001,
    };
    let mut udp = FrameSpec::from_tuple(&t);
    udp.payload = 18; // 64-byte frame
    println!("| case | sessions | rules | ns/packet (BPF_PROG_TEST_RUN, repeat {repeat}) |");
    println!("|---|---:|---:|---:|");
    for sessions in [1_000u32, 100_000] {
        g = drop_and_reload(g);
        g.install(&Policy::from_yaml(&policy_yaml(10)).unwrap())
            .unwrap();
        fill(&g.maps, sessions - 1);
        build(&udp, &mut frame);
        g.test_run(&frame, 1).unwrap(); // creates the benchmark session
        let (ret, d) = g.test_run(&frame, repeat).unwrap();
        assert_eq!(ret, 0);
        println!(
            "| cached session hit (UDP 64 B) | {sessions} | 10 | {:.1} |",
            d.as_nanos() as f64
        );
    }
    let mut rst = FrameSpec::from_tuple(&FlowTuple {
        proto: 6,
        dport: 5001,
        ..t
    });
    rst.tcp_flags = RST;
    build(&rst, &mut frame);
    for rules in [0usize, 10, 10_000, 100_000] {
        g = drop_and_reload(g);
        let p = Policy::from_yaml(&policy_yaml(rules)).unwrap();
        let t0 = std::time::Instant::now();
        let (_, c) = g.install(&p).unwrap();
        let install = t0.elapsed();
        fill(&g.maps, 1000);
        let (ret, d) = g.test_run(&frame, repeat).unwrap();
        assert_eq!(ret, 0);
        println!(
            "| new flow without session insert (lone TCP RST: session miss + full policy walk to the default + verdict) | 1000 | {rules} | {:.1} |",
            d.as_nanos() as f64
        );
        eprintln!(
            "  ({rules} rules: {} LPM entries, {} destination nodes, depth {}, installed in {:.2} s)",
            c.rules.len(),
            c.dst.len(),
            c.depth,
            install.as_secs_f64()
        );
    }
    // warm new flows with their session insert: the same SYN repeatedly, the session deleted
    // after each run by the benchmark entry point (the delete is included)
    let mut syn = FrameSpec::from_tuple(&FlowTuple {
        proto: 6,
        dport: 5001,
        ..t
    });
    syn.sport = 40001;
    build(&syn, &mut frame);
    for rules in [0usize, 10, 10_000, 100_000] {
        g = drop_and_reload(g);
        g.load_program("guard_bench_newflow_del")
            .expect("load guard_bench_newflow_del");
        g.install(&Policy::from_yaml(&policy_yaml(rules)).unwrap())
            .unwrap();
        fill(&g.maps, 1000);
        let (ret, d) = g
            .test_run_program("guard_bench_newflow_del", &frame, repeat)
            .unwrap();
        assert_eq!(ret, 0);
        assert_eq!(g.maps.sessions().unwrap().len(), 1000);
        println!(
            "| new flow with session insert, warm (same TCP SYN repeated, session deleted after each run; delete included) | 1000 | {rules} | {:.1} |",
            d.as_nanos() as f64
        );
    }
    drop(g);
    new_flows_with_insert(10_000);
    new_flows_one_call(100_000);
}

/// New flows that do create a session: one BPF_PROG_TEST_RUN call (repeat 1) per distinct TCP
/// SYN, averaged over `n` flows; an ARP frame through the same program gives the repeat-1 floor.
fn new_flows_with_insert(n: u16) {
    let g = Guard::load(131072).expect("load");
    let mut frame = Vec::new();
    let mut arp = vec![0xffu8; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.resize(60, 0);
    let floor = (0..n)
        .map(|_| g.test_run(&arp, 1).unwrap().1.as_nanos() as f64)
        .sum::<f64>()
        / n as f64;
    for rules in [0usize, 10, 10_000, 100_000] {
        g.install(&Policy::from_yaml(&policy_yaml(rules)).unwrap())
            .unwrap();
        for (k, _) in g.maps.sessions().unwrap() {
            g.maps.delete_session(&k).unwrap();
        }
        fill(&g.maps, 1000);
        let mut total = 0f64;
        for i in 0..n {
            let mut syn = FrameSpec::from_tuple(&FlowTuple {
                src: v4("10.77.0.1"),
                dst: v4("10.77.0.2"),
                proto: 6,
                dport: 5001,
            });
            syn.sport = 1024 + i;
            build(&syn, &mut frame);
            total += g.test_run(&frame, 1).unwrap().1.as_nanos() as f64;
        }
        println!(
            "| new flow with session insert (TCP SYN, {n} distinct flows, repeat 1 each; ARP floor {floor:.0} ns) | 1000 | {rules} | {:.1} |",
            total / n as f64
        );
    }
}

/// Map memory of this process's guard maps: bytes_memlock (/proc/self/fdinfo, the figure
/// `bpftool map show` prints) per map, identified by `bpftool map show id`.
fn mem(rules: usize, sessions: u32, max: u32) {
    let g = Guard::load(max).expect("load");
    g.install(&Policy::from_yaml(&policy_yaml(rules)).unwrap())
        .unwrap();
    fill(&g.maps, sessions);
    let mut rows = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let fd = e.file_name().to_string_lossy().to_string();
        let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
            continue;
        };
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
        };
        let (Some(id), Some(memlock)) = (field("map_id:"), field("memlock:")) else {
            continue;
        };
        let out = std::process::Command::new("bpftool")
            .args(["map", "show", "id", &id, "-j"])
            .output()
            .expect("bpftool");
        let js = String::from_utf8_lossy(&out.stdout);
        let name = js
            .split("\"name\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?")
            .to_string();
        rows.push((name, memlock.parse::<u64>().unwrap_or(0)));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    let total: u64 = rows.iter().map(|r| r.1).sum();
    let per: Vec<String> = rows
        .iter()
        .map(|(n, b)| format!("{n}={:.2}", *b as f64 / 1048576.0))
        .collect();
    println!(
        "| {rules} rules | {sessions} sessions (max {max}) | {total} bytes = {:.2} MiB = {:.2} MB | {} |",
        total as f64 / 1048576.0,
        total as f64 / 1e6,
        per.join(" ")
    );
}

/// New flows with their session insert, measured in the kernel without the per-call harness:
/// one BPF_PROG_TEST_RUN call with repeat `n` of the entry point `guard_bench_newflow`, which
/// increments the frame's IPv4 source before each run, so every run is a distinct new TCP SYN
/// flow (session miss, full policy walk, LRU insert into a fresh slot). The session map holds
/// 1000 sessions before each call and is emptied after it; three calls per policy.
fn new_flows_one_call(n: u32) {
    let mut g = Guard::load(131072).expect("load");
    g.load_program("guard_bench_newflow")
        .expect("load guard_bench_newflow");
    let mut frame = Vec::new();
    for rules in [0usize, 10, 10_000, 100_000] {
        g.install(&Policy::from_yaml(&policy_yaml(rules)).unwrap())
            .unwrap();
        let mut runs = Vec::new();
        for call in 0..3u32 {
            for (k, _) in g.maps.sessions().unwrap() {
                g.maps.delete_session(&k).unwrap();
            }
            fill(&g.maps, 1000);
            let mut syn = FrameSpec::from_tuple(&FlowTuple {
                // 100.64.0.0/10 + call * 2^18: sources no rule mentions
                src: ip_to_u128(std::net::Ipv4Addr::from(0x6440_0000u32 + (call << 18)).into()),
                dst: v4("10.77.0.2"),
                proto: 6,
                dport: 5001,
            });
            syn.sport = 40000;
            build(&syn, &mut frame);
            let (ret, d) = g
                .test_run_program("guard_bench_newflow", &frame, n)
                .unwrap();
            assert_eq!(ret, 0);
            let live = g.maps.sessions().unwrap().len();
            assert_eq!(live, 1000 + n as usize, "every run created one session");
            runs.push(d.as_nanos() as f64);
        }
        let min = runs.iter().cloned().fold(f64::MAX, f64::min);
        let max = runs.iter().cloned().fold(0f64, f64::max);
        println!(
            "| new flow with session insert (TCP SYN, {n} distinct flows in one call, 3 calls) | 1000 -> {} | {rules} | {min:.0}-{max:.0} |",
            1000 + n
        );
    }
}

fn drop_and_reload(g: Guard) -> Guard {
    drop(g);
    Guard::load(131072).expect("load")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("hit") => {
            let g = Guard::load(131072).expect("load");
            g.install(&Policy::from_yaml(&policy_yaml(10)).unwrap())
                .unwrap();
            let mut frame = Vec::new();
            let mut udp = FrameSpec::from_tuple(&FlowTuple {
                src: v4("10.77.0.1"),
                dst: v4("10.77.0.2"),
                proto: 17,
                dport: 5001,
            });
            udp.payload = 18;
            build(&udp, &mut frame);
            g.test_run(&frame, 1).unwrap();
            for _ in 0..3 {
                let (_, d) = g.test_run(&frame, 1_000_000).unwrap();
                println!("hit: {} ns", d.as_nanos());
            }
        }
        Some("newflows") => new_flows_with_insert(10_000),
        Some("newflows1") => {
            new_flows_one_call(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000))
        }
        Some("mem") => {
            let n = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
            mem(
                n(2, 100_000) as usize,
                n(3, 100_000) as u32,
                n(4, 131072) as u32,
            );
        }
        Some("testrun") => testrun(
            args.get(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or(1_000_000),
        ),
        Some("policy") => print!(
            "{}",
            policy_yaml(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000))
        ),
        Some("fill") => {
            let iface = args.get(2).expect("fill IFACE N");
            let n: u32 = args
                .get(3)
                .and_then(|s| s.parse().ok())
                .expect("fill IFACE N");
            let maps = Maps::open_pinned(iface).expect("open pinned maps");
            fill(&maps, n);
            eprintln!("added {n} sessions");
        }
        Some("empty") => {
            let (Some(iface), Some(obj)) = (args.get(2), args.get(3)) else {
                eprintln!("usage: guard_bench empty IFACE OBJ");
                std::process::exit(2);
            };
            attach_empty_until_signal(iface, obj);
        }
        _ => {
            eprintln!("usage: guard_bench testrun [REPEAT] | newflows | newflows1 [N] | mem RULES SESSIONS MAX | policy RULES | fill IFACE N | empty IFACE OBJ | hit");
            std::process::exit(2);
        }
    }
}

/// Attaches an empty classifier like the guard (TCX ingress + egress) and holds it until
/// SIGINT/SIGTERM; the links go away with the process.
fn attach_empty_until_signal(iface: &str, obj: &str) {
    use aya::programs::{SchedClassifier, TcAttachType};
    // Block the signals first so that sigwait() receives them instead of the default action.
    // SAFETY: an all-zero sigset_t is a valid value, and sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned by this frame; the mask applies to this thread.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let mut ebpf = aya::Ebpf::load_file(obj).expect("load the empty program's object");
    let p: &mut SchedClassifier = ebpf
        .program_mut("empty")
        .expect("program `empty` in the object")
        .try_into()
        .expect("a classifier");
    p.load().expect("verify");
    for t in [TcAttachType::Ingress, TcAttachType::Egress] {
        p.attach(iface, t).expect("attach with TCX");
    }
    eprintln!("empty classifier attached to {iface} (TCX ingress + egress)");
    let mut sig = 0;
    // SAFETY: `set` and `sig` are valid for the call; the signals are blocked above.
    unsafe { libc::sigwait(&set, &mut sig) };
}
