//! Privileged end-to-end tests: replay generated frames from one namespace, capture them in
//! another. Run as root: `cargo test -p netspectra-capture --test live_veth`.

mod common;

use common::NetnsPair;
use netspectra_capture::{open_fanout, open_live, Filter, LiveConfig, Sender, StopHandle};
use netspectra_packet::{decode, DecodeOptions, FlowKey, LinkType, PacketSource};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Captures on `p.b_if` with `cfg` while `frames` are sent from `p.a_if`; returns per worker the
/// captured frames (in ring order) and the summed stats.
fn run(
    p: &NetnsPair,
    mut cfg: LiveConfig,
    frames: &[Vec<u8>],
    expect: usize,
) -> (Vec<Vec<Vec<u8>>>, netspectra_capture::LiveStats) {
    let stop = StopHandle::new();
    cfg.iface = p.b_if.clone();
    cfg.stop = stop.clone();
    cfg.block_count = 64; // 64 MiB a socket: slack for a debug build on a loaded machine
    let (b_ns, a_ns, a_if) = (p.b.clone(), p.a.clone(), p.a_if.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    let cap = std::thread::spawn(move || {
        NetnsPair::enter(&b_ns);
        let sources = open_fanout(&cfg).expect("open capture");
        let handles: Vec<_> = sources.iter().map(|s| s.stats_handle()).collect();
        tx.send(()).unwrap();
        let workers: Vec<_> = sources
            .into_iter()
            .map(|mut s| {
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while s
                        .next_batch(&mut |b| got.extend(b.iter().map(|p| p.data.to_vec())))
                        .unwrap()
                    {}
                    got
                })
            })
            .collect();
        let per: Vec<Vec<Vec<u8>>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        (per, netspectra_capture::group_stats(&handles))
    });
    rx.recv().unwrap();
    let owned = frames.to_vec();
    let sender = std::thread::spawn(move || {
        let refs: Vec<&[u8]> = owned.iter().map(|f| f.as_slice()).collect();
        NetnsPair::enter(&a_ns);
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
    let p = NetnsPair::new();
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
    let p = NetnsPair::new();
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
    let p = NetnsPair::new();
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
    let p = NetnsPair::new();
    let b = p.b.clone();
    let i = p.b_if.clone();
    std::thread::spawn(move || {
        NetnsPair::enter(&b);
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
    let p = NetnsPair::new();
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
        NetnsPair::enter(&b_ns);
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
        NetnsPair::enter(&a_ns);
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
