//! Privileged end-to-end tests: replay generated frames from one namespace, capture them in
//! another. Run as root: `cargo test -p netspectra-capture --test live_veth`.

mod common;

use netspectra_capture::{
    open_fanout, open_live, Filter, LiveCompileError, LiveConfig, Sender, StopHandle,
    SKF_AD_VLAN_TAG, SKF_AD_VLAN_TAG_PRESENT,
};
use netspectra_packet::{decode, DecodeOptions, FlowKey, LinkType, Packet, PacketSource};
use netspectra_testnet::{enter, require_root, VethPair};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Captures on `p.b_if` with `cfg` while `frames` are sent from `p.a_if`; returns per worker the
/// captured frames (in ring order) and the summed stats.
fn run(
    p: &VethPair,
    cfg: LiveConfig,
    frames: &[Vec<u8>],
    expect: usize,
) -> (Vec<Vec<Vec<u8>>>, netspectra_capture::LiveStats) {
    run_with(p, cfg, frames, expect, |p| p.data.to_vec())
}

/// [`run`] keeping what `keep` takes of every captured packet.
fn run_with<T: Send + 'static>(
    p: &VethPair,
    mut cfg: LiveConfig,
    frames: &[Vec<u8>],
    expect: usize,
    keep: fn(Packet<'_>) -> T,
) -> (Vec<Vec<T>>, netspectra_capture::LiveStats) {
    let stop = StopHandle::new();
    cfg.iface = p.b_if.clone();
    cfg.stop = stop.clone();
    cfg.block_count = 64; // 64 MiB a socket: slack for a debug build on a loaded machine
    let (b_ns, a_ns, a_if) = (p.b.clone(), p.a.clone(), p.a_if.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let cap = std::thread::spawn(move || {
        enter(&b_ns);
        let sources = open_fanout(&cfg).expect("open capture");
        let handles: Vec<_> = sources.iter().map(|s| s.stats_handle()).collect();
        tx.send(()).unwrap();
        let workers: Vec<_> = sources
            .into_iter()
            .map(|mut s| {
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while s
                        .next_batch(&mut |b| got.extend(b.iter().map(keep)))
                        .unwrap()
                    {}
                    got
                })
            })
            .collect();
        let per: Vec<Vec<T>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        (per, netspectra_capture::group_stats(&handles))
    });
    rx.recv().unwrap();
    let owned = frames.to_vec();
    let sender = std::thread::spawn(move || {
        let refs: Vec<&[u8]> = owned.iter().map(|f| f.as_slice()).collect();
        enter(&a_ns);
        let mut s = Sender::open(&a_if, true).expect("open sender");
        for chunk in refs.chunks(256) {
            s.send_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        s.stats()
    });
    let sent = sender.join().unwrap();
    assert_eq!(sent.packets as usize, frames.len());
    // Stop once the capture saw what it should (or after a deadline); the drain delivers the rest.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        if expect == 0 {
            break;
        }
    }
    stop.stop();
    cap.join().unwrap()
}

#[test]
fn every_packet_sent_is_captured_byte_identical() {
    require_root!();
    let p = VethPair::quiet("ct");
    let frames = common::frames(20_000, 64);
    let (per, st) = run(&p, LiveConfig::new(""), &frames, frames.len());
    let got = &per[0];
    assert_eq!(got.len(), frames.len(), "count");
    assert_eq!(
        got.iter().map(|f| f.len()).sum::<usize>(),
        frames.iter().map(|f| f.len()).sum::<usize>(),
        "bytes"
    );
    assert!(got == &frames, "payloads differ");
    assert_eq!(st.packets as usize, frames.len());
    assert_eq!(st.kernel_drops, 0);
    assert_eq!(st.kernel_received as usize, frames.len());
}

#[test]
fn fanout_never_splits_a_flow() {
    require_root!();
    let p = VethPair::quiet("ct");
    let frames = common::frames(20_000, 200);
    let mut cfg = LiveConfig::new("");
    cfg.threads = 2;
    let (per, st) = run(&p, cfg, &frames, frames.len());
    assert_eq!(per.iter().map(Vec::len).sum::<usize>(), frames.len());
    assert_eq!(st.kernel_drops, 0);
    let mut owner: HashMap<_, usize> = HashMap::new();
    for (w, got) in per.iter().enumerate() {
        assert!(
            !got.is_empty(),
            "worker {w} got nothing: hash fanout did not spread"
        );
        for f in got {
            let v = decode(f, LinkType::ETHERNET, None, &DecodeOptions::default());
            let key = FlowKey::from_view(&v).expect("flow key").canonical().0;
            let prev = *owner.entry(key).or_insert(w);
            assert_eq!(prev, w, "flow split across workers");
        }
    }
    // Same multiset of frames as sent.
    let mut all: Vec<_> = per.into_iter().flatten().collect();
    let mut want = frames.clone();
    all.sort();
    want.sort();
    assert!(all == want);
}

#[test]
fn kernel_filter_matches_libpcap_offline() {
    require_root!();
    let p = VethPair::quiet("ct");
    let frames = common::frames(5_000, 64);
    let expr = "(udp and dst port 5001) or (tcp and greater 700)";
    let prog = pcap::Capture::dead(pcap::Linktype(1))
        .unwrap()
        .compile(expr, true)
        .unwrap();
    let want: Vec<Vec<u8>> = frames.iter().filter(|f| prog.filter(f)).cloned().collect();
    assert!(!want.is_empty() && want.len() < frames.len());
    // Our user-space interpreter agrees with libpcap too.
    let f = Filter::compile(expr, LinkType::ETHERNET, 0).unwrap();
    let ours = frames
        .iter()
        .filter(|fr| f.run(fr, fr.len() as u32) != 0)
        .count();
    assert_eq!(ours, want.len());
    let mut cfg = LiveConfig::new("");
    cfg.filter = Some(expr.into());
    let (per, _) = run(&p, cfg, &frames, want.len());
    assert!(
        per[0] == want,
        "kernel filter selected {} of {}",
        per[0].len(),
        want.len()
    );
}

#[test]
fn stop_without_traffic_ends_promptly_and_empty_batches_tick() {
    require_root!();
    let p = VethPair::quiet("ct");
    let b = p.b.clone();
    let i = p.b_if.clone();
    std::thread::spawn(move || {
        enter(&b);
        let mut cfg = LiveConfig::new(i);
        cfg.poll_timeout = Duration::from_millis(20);
        let stop = cfg.stop.clone();
        let mut s = open_live(&cfg).unwrap();
        let mut empty = 0;
        let t0 = Instant::now();
        while s.next_batch(&mut |b| empty += b.is_empty() as u32).unwrap() {
            if t0.elapsed() > Duration::from_millis(200) {
                stop.stop();
            }
        }
        assert!(empty >= 3, "empty batches on timeout: {empty}");
        assert!(t0.elapsed() < Duration::from_secs(2));
    })
    .join()
    .unwrap();
}

#[test]
fn unknown_interface_is_a_clear_error() {
    require_root!();
    let e = open_live(&LiveConfig::new("nope-no-such0")).unwrap_err();
    assert!(e.to_string().contains("no such network interface"), "{e}");
}

#[test]
fn stripped_vlan_tag_is_reported_in_the_metadata() {
    require_root!();
    let p = VethPair::quiet("ct");
    let frames: Vec<Vec<u8>> = common::frames(500, 8)
        .into_iter()
        .map(|f| {
            let mut t = f[..12].to_vec();
            t.extend_from_slice(&[0x81, 0x00, 0x00, 42]);
            t.extend_from_slice(&f[12..]);
            t
        })
        .collect();
    let (b_ns, b_if, a_ns, a_if) = (p.b.clone(), p.b_if.clone(), p.a.clone(), p.a_if.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let cap = std::thread::spawn(move || {
        enter(&b_ns);
        let cfg = LiveConfig::new(b_if);
        let stop = cfg.stop.clone();
        let mut s = open_live(&cfg).unwrap();
        tx.send(stop).unwrap();
        let mut got = Vec::new();
        while s
            .next_batch(&mut |b| {
                got.extend(b.iter().map(|p| (p.vlan_tci, p.data.to_vec(), p.orig_len)))
            })
            .unwrap()
        {}
        got
    });
    let stop = rx.recv().unwrap();
    let sent = frames.clone();
    std::thread::spawn(move || {
        enter(&a_ns);
        let refs: Vec<&[u8]> = sent.iter().map(|f| f.as_slice()).collect();
        Sender::open(&a_if, true).unwrap().send_all(&refs).unwrap();
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stop.stop();
    let got = cap.join().unwrap();
    assert_eq!(got.len(), frames.len());
    for ((tci, data, len), f) in got.iter().zip(&frames) {
        assert_eq!(*tci, Some(42));
        assert_eq!(data[..12], f[..12]);
        assert_eq!(data[12..], f[16..]);
        // The wire length counts the tag the kernel moved into the metadata.
        assert_eq!(*len as usize, f.len());
    }
}

/// A `tcpdump -d`-style listing of a classic BPF program (the opcodes libpcap emits), with the
/// Linux ancillary fields by name as tcpdump prints them.
fn disasm(insns: &[libc::sock_filter]) -> String {
    let mut out = String::new();
    for (pc, i) in insns.iter().enumerate() {
        let (c, k) = (i.code, i.k);
        let size = match c & 0x18 {
            0x00 => "",
            0x08 => "h",
            _ => "b",
        };
        let abs = |k: u32| match k.wrapping_sub(0xffff_f000) {
            4 => "[type]".to_string(),
            44 => "[vlan_tci]".to_string(),
            48 => "[vlanp]".to_string(),
            n if k >= 0xffff_f000 => format!("[ancillary {n}]"),
            _ => format!("[{k}]"),
        };
        let src = if c & 0x08 != 0 {
            "x".to_string()
        } else {
            format!("#{k:#x}")
        };
        let jump = |op: &str| {
            format!(
                "{op:<8} {src:<16} jt {}\tjf {}",
                pc + 1 + i.jt as usize,
                pc + 1 + i.jf as usize
            )
        };
        let text = match c & 7 {
            0 => match c & 0xe0 {
                0x00 => format!("ld       #{k:#x}"),
                0x20 => format!("ld{size:<7}{}", abs(k)),
                0x40 => format!("ld{size:<7}[x + {k}]"),
                0x60 => format!("ld       M[{k}]"),
                0x80 => "ld       #pktlen".into(),
                _ => format!("?ld {c:#x}"),
            },
            1 => match c & 0xe0 {
                0x00 => format!("ldx      #{k:#x}"),
                0x60 => format!("ldx      M[{k}]"),
                0xa0 => format!("ldxb     4*([{k}]&0xf)"),
                _ => format!("?ldx {c:#x}"),
            },
            2 => format!("st       M[{k}]"),
            3 => format!("stx      M[{k}]"),
            4 => {
                let op = [
                    "add", "sub", "mul", "div", "or", "and", "lsh", "rsh", "neg", "mod",
                ]
                .get((c >> 4) as usize)
                .copied()
                .unwrap_or("?alu");
                format!("{op:<8} {src}")
            }
            5 => match c & 0xf0 {
                0x00 => format!("ja       {}", pc + 1 + k as usize),
                0x10 => jump("jeq"),
                0x20 => jump("jgt"),
                0x30 => jump("jge"),
                0x40 => jump("jset"),
                _ => format!("?jmp {c:#x}"),
            },
            6 => match c & 0x18 {
                0x00 => format!("ret      #{k}"),
                _ => "ret      a".into(),
            },
            _ => (if c & 0xf8 == 0 { "tax" } else { "txa" }).to_string(),
        };
        out.push_str(&format!("({pc:03}) {text}\n"));
    }
    out
}

fn has_load(f: &Filter, k: u32) -> bool {
    f.instructions()
        .iter()
        .any(|i| i.code & 7 == 0 && i.code & 0xe0 == 0x20 && i.k == k)
}

/// `frame` with an 802.1Q tag (TPID 0x8100) inserted after the MAC addresses.
fn tag(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut t = frame[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&tci.to_be_bytes());
    t.extend_from_slice(&frame[12..]);
    t
}

/// The VLAN ID of a frame tagged in its bytes (TPID 0x8100).
fn vid(frame: &[u8]) -> Option<u16> {
    (frame[12..14] == [0x81, 0x00]).then(|| u16::from_be_bytes([frame[14], frame[15]]) & 0xfff)
}

/// The IP protocol of a frame, tagged or not.
fn ip_proto(frame: &[u8]) -> u8 {
    frame[if vid(frame).is_some() { 27 } else { 23 }]
}

/// Compiles `exprs` on a live handle on `iface` inside namespace `ns`.
fn compile_live_in(ns: &str, iface: &str, exprs: &[&str]) -> Vec<Filter> {
    let (ns, iface) = (ns.to_string(), iface.to_string());
    let exprs: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
    std::thread::spawn(move || {
        enter(&ns);
        exprs
            .iter()
            .map(|e| Filter::compile_live(&iface, e, 0).expect("live compile"))
            .collect()
    })
    .join()
    .unwrap()
}

#[test]
fn live_compile_tests_the_stripped_tag_with_ancillary_loads() {
    require_root!();
    let p = VethPair::quiet("ct");
    let exprs = ["vlan 10", "vlan 10 and udp", "not vlan", "udp port 53"];
    let live = compile_live_in(&p.b, &p.b_if, &exprs);
    for (e, f) in exprs.iter().zip(&live) {
        println!(
            "live program for {e:?} on {}:\n{}",
            p.b_if,
            disasm(f.instructions())
        );
        assert!(f.is_live());
        assert_eq!(f.link(), LinkType::ETHERNET);
        let file = Filter::compile(e, LinkType::ETHERNET, 0).unwrap();
        assert!(!file.is_live());
        assert!(
            !has_load(&file, SKF_AD_VLAN_TAG_PRESENT),
            "{e}: file program"
        );
    }
    for f in &live[..3] {
        assert!(
            has_load(f, SKF_AD_VLAN_TAG_PRESENT),
            "{}: no [vlanp]",
            f.expr()
        );
        assert!(f.user_space_exact());
    }
    assert!(
        has_load(&live[0], SKF_AD_VLAN_TAG),
        "vlan 10: no [vlan_tci]"
    );
    // `udp port 53` has no VLAN test: like tcpdump, it matches the inner UDP of a stripped frame.
    assert!(!has_load(&live[3], SKF_AD_VLAN_TAG_PRESENT));

    // The interpreter evaluates the VLAN loads from `vlan_tci`, as the kernel does.
    let plain = common::frames(64, 2);
    let udp = plain.iter().find(|f| ip_proto(f) == 17).unwrap();
    let tcp = plain.iter().find(|f| ip_proto(f) == 6).unwrap();
    let on = |f: &Filter, d: &[u8], tci: Option<u16>| f.run_meta(d, d.len() as u32, tci) != 0;
    let (v10, v10u, novlan) = (&live[0], &live[1], &live[2]);
    // Stripped tag (metadata), PCP bits ignored.
    assert!(on(v10, udp, Some(10)) && on(v10, tcp, Some(0x600a)));
    assert!(!on(v10, udp, Some(20)) && !on(v10, udp, None));
    assert!(on(v10u, udp, Some(10)) && !on(v10u, tcp, Some(10)) && !on(v10u, udp, Some(20)));
    assert!(on(novlan, udp, None) && !on(novlan, udp, Some(10)) && !on(novlan, udp, Some(0)));
    // Tag still in the bytes (a file): the same program falls back to the frame's TPID.
    assert!(on(v10, &tag(udp, 10), None) && !on(v10, &tag(udp, 20), None));
    assert!(on(v10u, &tag(udp, 10), None) && !on(v10u, &tag(tcp, 10), None));
    assert!(!on(novlan, &tag(udp, 10), None));

    // `inbound` needs SKF_AD_PKTTYPE: live only, and not decidable in user space.
    let inbound = compile_live_in(&p.b, &p.b_if, &["inbound"]).remove(0);
    assert!(!inbound.user_space_exact());
    assert!(Filter::compile("inbound", LinkType::ETHERNET, 0).is_err());
}

#[test]
fn vlan_filters_select_exactly_the_tagged_frames_live() {
    require_root!();
    let p = VethPair::quiet("ct");
    // 3,000 frames (UDP and TCP): a third tagged VLAN 10 (half of them with PCP 3), a third
    // VLAN 20, a third untagged.
    let frames: Vec<Vec<u8>> = common::frames(3_000, 16)
        .into_iter()
        .enumerate()
        .map(|(i, f)| match i % 3 {
            0 => tag(&f, if i % 2 == 0 { 10 } else { 0x600a }),
            1 => tag(&f, 20),
            _ => f,
        })
        .collect();
    // (expression, which sent frames it selects, how many if known from the construction)
    type Case = (&'static str, fn(&[u8]) -> bool, usize);
    let cases: [Case; 3] = [
        ("vlan 10", |f| vid(f) == Some(10), 1000),
        (
            "vlan 10 and udp",
            |f| vid(f) == Some(10) && ip_proto(f) == 17,
            0,
        ),
        ("not vlan", |f| vid(f).is_none(), 1000),
    ];
    let exprs: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let live = compile_live_in(&p.b, &p.b_if, &exprs);
    for ((expr, want_fn, n), lf) in cases.iter().zip(&live) {
        let want: Vec<Vec<u8>> = frames.iter().filter(|f| want_fn(f)).cloned().collect();
        if *n > 0 {
            assert_eq!(want.len(), *n, "{expr}");
        }
        assert!(!want.is_empty() && want.len() < frames.len());
        // libpcap's own file semantics agree on the sent (tagged-in-the-bytes) frames, and so
        // does the live program run in user space.
        let prog = pcap::Capture::dead(pcap::Linktype(1))
            .unwrap()
            .compile(expr, true)
            .unwrap();
        for f in &frames {
            assert_eq!(prog.filter(f), want_fn(f), "{expr}: libpcap offline");
            assert_eq!(
                lf.run(f, f.len() as u32) != 0,
                want_fn(f),
                "{expr}: user space"
            );
        }
        let mut cfg = LiveConfig::new("");
        cfg.filter = Some(expr.to_string());
        let (per, st) = run_with(&p, cfg, &frames, want.len(), |p| {
            (p.vlan_tci, p.data.to_vec(), p.orig_len)
        });
        let got = &per[0];
        assert_eq!(st.kernel_drops, 0);
        // The ring reports the stripped tag; put it back and compare with what was sent.
        let mut restored = Vec::with_capacity(got.len());
        for (tci, data, len) in got {
            assert!(
                lf.run_meta(data, *len, *tci) != 0,
                "{expr}: user space rejects a packet the kernel accepted"
            );
            let f = match tci {
                Some(t) => tag(data, *t),
                None => data.clone(),
            };
            assert_eq!(*len as usize, f.len(), "{expr}: orig_len counts the tag");
            restored.push(f);
        }
        println!(
            "{expr:?}: {} of {} frames captured, {} bytes",
            got.len(),
            frames.len(),
            restored.iter().map(Vec::len).sum::<usize>()
        );
        assert_eq!(restored.len(), want.len(), "{expr}: count");
        assert_eq!(
            restored.iter().map(Vec::len).sum::<usize>(),
            want.iter().map(Vec::len).sum::<usize>(),
            "{expr}: bytes"
        );
        assert!(restored == want, "{expr}: frames differ");
        assert_eq!(
            st.wire_bytes as usize,
            want.iter().map(Vec::len).sum::<usize>()
        );
    }
}

#[test]
fn down_interface_falls_back_to_the_file_compile() {
    require_root!();
    let p = VethPair::quiet("ct");
    let out = std::process::Command::new("ip")
        .args(["-n", &p.b, "link", "set", &p.b_if, "down"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (b, i) = (p.b.clone(), p.b_if.clone());
    std::thread::spawn(move || {
        enter(&b);
        // libpcap refuses to activate on a down interface ("That device is not up") ...
        match Filter::compile_live(&i, "vlan 10", 0) {
            Err(LiveCompileError::Handle(m)) => println!("live compile: {m}"),
            other => panic!("expected a handle error, got {other:?}"),
        }
        // ... a bad expression is still the user's error ...
        let mut cfg = LiveConfig::new(i.clone());
        cfg.filter = Some("vlan 10 and".into());
        assert!(matches!(
            open_live(&cfg),
            Err(netspectra_capture::CaptureError::Filter { .. })
        ));
        // ... and the capture opens with the file program (and a warning on stderr).
        cfg.filter = Some("vlan 10".into());
        open_live(&cfg).expect("fallback");
    })
    .join()
    .unwrap();
}
