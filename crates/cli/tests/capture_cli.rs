//! Privileged end-to-end tests of `netspectra capture` and `netspectra replay` over a veth pair
//! between two network namespaces created (and always removed) by each test.
//! Run as root: `cargo test -p netspectra --test capture_cli`. Elsewhere they print SKIP.

mod common;

use common::{finish, interrupt, Netns, BIN};
use netspectra_packet::{LinkType, PacketSource, Timestamp};
use netspectra_pcap::{CaptureReader, PcapWriter};
use netspectra_testnet::require_root;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Deterministic Ethernet/IPv4/UDP frames of 60..1514 bytes over `flows` flows, both directions.
fn frames(n: usize, flows: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let fl = (i * 7919) % flows;
            let rev = (i / flows) % 2 == 1;
            let (mut s, mut d) = ([10u8, 1, (fl >> 8) as u8, fl as u8], [10u8, 2, 0, 1]);
            let (mut sp, mut dp) = (10_000 + fl as u16, 5001u16);
            if rev {
                std::mem::swap(&mut s, &mut d);
                std::mem::swap(&mut sp, &mut dp);
            }
            let plen = (i * 131) % 1472;
            let mut f = Vec::with_capacity(42 + plen);
            f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0]);
            let tot = (28 + plen) as u16;
            f.extend_from_slice(&[
                0x45,
                0,
                (tot >> 8) as u8,
                tot as u8,
                (i >> 8) as u8,
                i as u8,
            ]);
            f.extend_from_slice(&[0, 0, 64, 17, 0, 0]);
            f.extend_from_slice(&s);
            f.extend_from_slice(&d);
            let ul = (8 + plen) as u16;
            f.extend_from_slice(&sp.to_be_bytes());
            f.extend_from_slice(&dp.to_be_bytes());
            f.extend_from_slice(&ul.to_be_bytes());
            f.extend_from_slice(&[0, 0]);
            f.extend((0..plen).map(|k| (i + k) as u8));
            if f.len() < 60 {
                f.resize(60, 0);
            }
            f
        })
        .collect()
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = PcapWriter::new(f, LinkType::ETHERNET, 0, false).unwrap();
    for (i, fr) in frames.iter().enumerate() {
        let ts = Timestamp::from_parts(1_700_000_000, 0).plus_nanos(i as i64 * 10_000);
        w.write_record(ts, fr.len() as u32, fr).unwrap();
    }
    w.finish().unwrap();
}

/// All frames of the files starting with `prefix` in `dir`, file by file, sorted by name
/// number; also returns the file sizes.
fn read_outputs(dir: &Path, prefix: &str) -> (Vec<Vec<u8>>, Vec<(PathBuf, u64)>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    let num = |p: &PathBuf| -> u64 {
        let n = p.file_name().unwrap().to_string_lossy().to_string();
        let digits: String = n[prefix.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap_or(0)
    };
    files.sort_by_key(num);
    let mut out = Vec::new();
    let mut sizes = Vec::new();
    for f in files {
        sizes.push((f.clone(), std::fs::metadata(&f).unwrap().len()));
        let mut r = CaptureReader::open(&f).unwrap();
        while r
            .next_batch(&mut |b| out.extend(b.iter().map(|p| p.data.to_vec())))
            .unwrap()
        {}
    }
    (out, sizes)
}

#[test]
fn rotation_with_fanout_and_sigint_lose_nothing() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let sent_frames = frames(8000, 97);
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &sent_frames);
    let out = dir.path().join("out.pcap");
    let out_s = out.to_str().unwrap();
    let cap = ns.capture(&[
        "-w",
        out_s,
        "-C",
        "256k",
        "--threads",
        "2",
        "--stats",
        "200ms",
    ]);
    assert_eq!(ns.replay(&input, &["--pps", "40000"]), 8000);
    let sum = interrupt(cap);
    let (got, sizes) = read_outputs(dir.path(), "out.pcap");
    assert!(sizes.len() > 5, "expected rotation, got {sizes:?}");
    for (p, s) in &sizes {
        assert!(*s <= 256 * 1024, "{} is {s} bytes", p.display());
    }
    assert_eq!(sum["kernel_drops"], 0);
    assert_eq!(sum["written_packets"], 8000);
    assert_eq!(sum["files"].as_u64().unwrap() as usize, sizes.len());
    assert_eq!(got.len(), sent_frames.len());
    let (mut a, mut b) = (got, sent_frames);
    a.sort();
    b.sort();
    assert!(a == b, "captured frames differ from sent frames");
}

#[test]
fn single_thread_pcapng_is_byte_identical_and_in_order() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let sent_frames = frames(5000, 13);
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &sent_frames);
    let out = dir.path().join("o.pcapng");
    let cap = ns.capture(&["-w", out.to_str().unwrap(), "--format", "pcapng"]);
    ns.replay(&input, &["--topspeed"]);
    let sum = interrupt(cap);
    let (got, _) = read_outputs(dir.path(), "o.pcapng");
    assert_eq!(sum["kernel_drops"], 0);
    assert!(
        got == sent_frames,
        "{} of {} frames, or order/bytes differ",
        got.len(),
        5000
    );
}

#[test]
fn count_stops_exactly_and_exits_by_itself() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let sent_frames = frames(3000, 5);
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &sent_frames);
    let out = dir.path().join("c.pcap");
    let mut cap = ns.capture(&["-w", out.to_str().unwrap(), "-c", "1000"]);
    ns.replay(&input, &["--pps", "50000"]);
    let sum = finish(&mut cap);
    let (got, _) = read_outputs(dir.path(), "c.pcap");
    assert_eq!(sum["written_packets"], 1000);
    assert!(got[..] == sent_frames[..1000]);
    // Two workers and the single writer: exactly COUNT written, no deadlock on the way out.
    let out2 = dir.path().join("d.pcap");
    let mut cap = ns.capture(&["-w", out2.to_str().unwrap(), "-c", "1500", "--threads", "2"]);
    ns.replay(&input, &["--pps", "50000"]);
    let sum = finish(&mut cap);
    let (got, _) = read_outputs(dir.path(), "d.pcap");
    assert_eq!(sum["written_packets"], 1500);
    assert_eq!(got.len(), 1500);
}

#[test]
fn ring_of_files_keeps_w_files() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &frames(4000, 7));
    let out = dir.path().join("r.pcap");
    let cap = ns.capture(&["-w", out.to_str().unwrap(), "-C", "64k", "-W", "3"]);
    ns.replay(&input, &["--pps", "50000"]);
    let sum = interrupt(cap);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("r.pcap"))
        .collect();
    names.sort();
    assert_eq!(names, ["r.pcap0", "r.pcap1", "r.pcap2"]);
    assert!(sum["files"].as_u64().unwrap() > 3);
    assert_eq!(sum["written_packets"], 4000);
}

#[test]
fn without_cap_net_raw_the_error_names_the_capability() {
    require_root!();
    if Command::new("setpriv").arg("--version").output().is_err() {
        netspectra_testnet::skip("capture without CAP_NET_RAW", "setpriv not found");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .args([BIN, "capture", "-i", "lo", "-w", "/dev/null"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
    assert!(
        err.contains("setcap cap_net_raw,cap_net_admin=eip"),
        "{err}"
    );
}

#[test]
fn drop_privileges_after_open_writes_as_that_user() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let wdir = dir.path().join("w");
    std::fs::create_dir(&wdir).unwrap();
    Command::new("chmod")
        .arg("777")
        .arg(&wdir)
        .status()
        .unwrap();
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &frames(500, 3));
    let out = wdir.join("z.pcap");
    let cap = ns.capture(&["-w", out.to_str().unwrap(), "-Z", "nobody"]);
    ns.replay(&input, &["--topspeed"]);
    let sum = interrupt(cap);
    assert_eq!(sum["written_packets"], 500);
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
}

#[test]
fn vlan_tags_stripped_by_the_kernel_are_restored_in_files() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let tagged: Vec<Vec<u8>> = frames(2000, 11)
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let mut t = f[..12].to_vec();
            let tci = 0x2000 | (100 + (i % 50) as u16); // PCP 1, VID 100..149
            t.extend_from_slice(&[0x81, 0x00]);
            t.extend_from_slice(&tci.to_be_bytes());
            t.extend_from_slice(&f[12..]);
            t
        })
        .collect();
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &tagged);
    let out = dir.path().join("v.pcap");
    let cap = ns.capture(&["-w", out.to_str().unwrap()]);
    ns.replay(&input, &["--pps", "50000"]);
    let sum = interrupt(cap);
    assert_eq!(sum["written_packets"], 2000);
    let (got, _) = read_outputs(dir.path(), "v.pcap");
    assert!(got == tagged, "tagged frames not restored byte-identical");
}

#[test]
fn vlan_filters_match_the_tags_the_kernel_stripped() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    // 3,000 frames: a third tagged VLAN 10 (half with PCP 5), a third VLAN 20, a third
    // untagged; every fourth one TCP instead of UDP.
    let tag = |f: &[u8], tci: u16| {
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00]);
        t.extend_from_slice(&tci.to_be_bytes());
        t.extend_from_slice(&f[12..]);
        t
    };
    let sent: Vec<Vec<u8>> = frames(3000, 13)
        .into_iter()
        .enumerate()
        .map(|(i, mut f)| {
            if i % 4 == 0 {
                f[23] = 6;
            }
            match i % 3 {
                0 => tag(&f, if i % 2 == 0 { 10 } else { 0xa00a }),
                1 => tag(&f, 20),
                _ => f,
            }
        })
        .collect();
    fn vid(f: &[u8]) -> Option<u16> {
        (f[12..14] == [0x81, 0]).then(|| u16::from_be_bytes([f[14], f[15]]) & 0xfff)
    }
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &sent);
    type Case = (&'static str, fn(&[u8]) -> bool, usize);
    let cases: [Case; 3] = [
        ("vlan 10", |f| vid(f) == Some(10), 1000),
        (
            "vlan 10 and udp",
            |f| vid(f) == Some(10) && f[27] == 17,
            750,
        ),
        ("not vlan", |f| vid(f).is_none(), 1000),
    ];
    for (k, (expr, want_fn, n)) in cases.iter().enumerate() {
        let want: Vec<Vec<u8>> = sent.iter().filter(|f| want_fn(f)).cloned().collect();
        assert_eq!(want.len(), *n, "{expr}");
        let name = format!("v{k}.pcap");
        let out = dir.path().join(&name);
        let cap = ns.capture(&["-w", out.to_str().unwrap(), "-f", expr]);
        assert_eq!(ns.replay(&input, &["--pps", "50000"]), 3000);
        let sum = interrupt(cap);
        let (got, _) = read_outputs(dir.path(), &name);
        assert_eq!(sum["written_packets"], *n as u64, "{expr}: count");
        assert_eq!(sum["kernel_drops"], 0);
        assert_eq!(
            got.iter().map(Vec::len).sum::<usize>(),
            want.iter().map(Vec::len).sum::<usize>(),
            "{expr}: bytes"
        );
        // Tags restored byte-identical, in the order sent.
        assert!(
            got == want,
            "{expr}: {} frames, not the ones sent",
            got.len()
        );
    }
}

#[test]
fn time_rotation_loses_nothing() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let sent_frames = frames(2500, 9);
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &sent_frames);
    // One file per second, named by the epoch second; 2500 frames at 1000 pps span ~2.5 s.
    let pat = dir.path().join("g-%s.pcap");
    let cap = ns.capture(&["-w", pat.to_str().unwrap(), "-G", "1"]);
    ns.replay(&input, &["--pps", "1000"]);
    let sum = interrupt(cap);
    let (got, sizes) = read_outputs(dir.path(), "g-");
    assert!(sizes.len() >= 3, "expected >= 3 files, got {sizes:?}");
    assert_eq!(sum["written_packets"], 2500);
    // Sorting by name = by epoch second = capture order (single thread).
    assert!(got == sent_frames, "{} frames, or order differs", got.len());
}

#[test]
fn replay_paces_pps_and_original_timing() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    // 1000 frames 10 µs apart in the file (10 ms in total).
    write_pcap(&input, &frames(1000, 3));
    let t0 = Instant::now();
    assert_eq!(ns.replay(&input, &["--pps", "4000"]), 1000);
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(240),
        "--pps 4000 sent 1000 in {el:?}"
    );
    let t0 = Instant::now();
    assert_eq!(ns.replay(&input, &["--speed", "0.02"]), 1000); // 10 ms / 0.02 = 0.5 s
    let el = t0.elapsed();
    assert!(el >= Duration::from_millis(480), "--speed 0.02 took {el:?}");
    assert_eq!(ns.replay(&input, &["--topspeed", "--loop", "3"]), 3000);
}

/// A direction-free flow of [`frames`]: its sorted IPv4 address pair.
type Flow = ([u8; 4], [u8; 4]);

/// The flow of a frame built by [`frames`].
fn flow_of(f: &[u8]) -> Flow {
    let (a, b): ([u8; 4], [u8; 4]) = (f[26..30].try_into().unwrap(), f[30..34].try_into().unwrap());
    (a.min(b), a.max(b))
}

/// Each flow's frames, in the order of `all`.
fn per_flow(all: &[Vec<u8>]) -> std::collections::BTreeMap<Flow, Vec<&[u8]>> {
    let mut m = std::collections::BTreeMap::new();
    for f in all {
        m.entry(flow_of(f))
            .or_insert_with(Vec::new)
            .push(f.as_slice());
    }
    m
}

#[test]
fn replay_with_two_threads_sends_every_frame_and_keeps_each_flow_in_order() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let file_frames = frames(12_000, 64);
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &file_frames);
    let out = dir.path().join("t.pcap");
    let cap = ns.capture(&["-w", out.to_str().unwrap()]);
    let sum = ns.replay_json(
        &input,
        &[
            "--topspeed",
            "--threads",
            "2",
            "--cpus",
            "0,1",
            "--loop",
            "2",
        ],
    );
    let cap = interrupt(cap);
    // Sent twice, in file order within each loop.
    let sent: Vec<Vec<u8>> = file_frames.iter().chain(&file_frames).cloned().collect();
    let bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();
    assert_eq!(sum["threads"], 2);
    assert_eq!(sum["packets"], sent.len() as u64);
    assert_eq!(sum["bytes"], bytes);
    let per_thread: Vec<u64> = sum["per_thread"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["packets"].as_u64().unwrap())
        .collect();
    assert_eq!(per_thread.len(), 2);
    assert!(
        per_thread.iter().all(|&p| p > sent.len() as u64 / 5),
        "one thread did (almost) nothing: {per_thread:?}"
    );
    assert_eq!(per_thread.iter().sum::<u64>(), sent.len() as u64);
    assert_eq!(cap["kernel_drops"], 0);
    let (got, _) = read_outputs(dir.path(), "t.pcap");
    assert_eq!(got.len(), sent.len(), "frames captured");
    assert_eq!(got.iter().map(|f| f.len() as u64).sum::<u64>(), bytes);
    // Every flow's frames arrive complete, byte-identical and in the order they were sent.
    let (want, have) = (per_flow(&sent), per_flow(&got));
    assert_eq!(want.len(), 64);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        have.keys().collect::<Vec<_>>()
    );
    for (k, w) in &want {
        assert!(
            have[k] == *w,
            "flow {k:?}: frames missing, changed or reordered"
        );
    }
}

#[test]
fn replay_with_threads_paces_against_one_clock() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    // 1000 frames 10 µs apart in the file (10 ms in total), 16 flows.
    write_pcap(&input, &frames(1000, 16));
    let t0 = Instant::now();
    let v = ns.replay_json(&input, &["--pps", "4000", "--threads", "2"]);
    let el = t0.elapsed();
    assert_eq!(v["packets"], 1000);
    // Together, not each, at 4000 pps: about 250 ms (not 125).
    assert!(
        el >= Duration::from_millis(240),
        "--pps 4000 with 2 threads sent 1000 in {el:?}"
    );
    let t0 = Instant::now();
    assert_eq!(
        ns.replay(&input, &["--speed", "0.02", "--threads", "3"]),
        1000
    );
    let el = t0.elapsed();
    assert!(el >= Duration::from_millis(480), "--speed 0.02 took {el:?}");
    let t0 = Instant::now();
    assert_eq!(
        ns.replay(&input, &["--pps", "10000", "--threads", "2", "--loop", "3"]),
        3000
    );
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(290),
        "--loop 3 at 10 kpps took {el:?}"
    );
}

#[test]
fn metrics_count_what_was_captured() {
    require_root!();
    let ns = Netns::new();
    netspectra_testnet::ip(&["-n", &ns.b, "link", "set", "lo", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let sent = frames(3000, 31);
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &sent);
    let out = dir.path().join("out.pcap");
    let cap = ns.capture(&["-w", out.to_str().unwrap(), "--metrics", "127.0.0.1:9464"]);
    assert_eq!(ns.replay(&input, &["--pps", "40000"]), 3000);
    let iface = &ns.b_if;
    let m = common::scrape_until(
        &ns.b,
        9464,
        &format!("netspectra_capture_packets_total{{interface={iface}}}"),
        3000.0,
    );
    let sum = interrupt(cap);
    let Some(m) = m else { return };
    let wire: u64 = sent.iter().map(|f| f.len() as u64).sum();
    assert_eq!(
        m[&format!("netspectra_capture_wire_bytes_total{{interface={iface}}}")],
        wire as f64
    );
    assert_eq!(
        m[&format!("netspectra_capture_kernel_drops_total{{interface={iface}}}")],
        sum["kernel_drops"].as_f64().unwrap()
    );
    assert_eq!(sum["written_packets"], 3000);
}

#[test]
fn count_zero_is_refused_and_a_missing_output_folder_is_made() {
    // -c 0 is refused before any socket is opened (no root needed for that part).
    let o = Command::new(BIN)
        .args(["capture", "-i", "lo", "-w", "/tmp/never.pcap", "-c", "0"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("-c must be at least 1"));
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    write_pcap(&input, &frames(200, 3));
    let out = dir.path().join("new/deeper/c.pcap");
    let mut cap = ns.capture(&["-w", out.to_str().unwrap(), "-c", "200"]);
    ns.replay(&input, &["--pps", "20000"]);
    let sum = finish(&mut cap);
    assert_eq!(sum["written_packets"], 200);
    assert!(out.exists());
}

/// A capture with a long quiet gap: the first Ctrl-C ends the replay while it waits.
#[test]
fn replay_stops_at_the_first_signal_during_a_long_gap() {
    require_root!();
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("gap.pcap");
    let fr = frames(2, 1);
    let f = std::fs::File::create(&input).unwrap();
    let mut w = PcapWriter::new(f, LinkType::ETHERNET, 0, false).unwrap();
    w.write_record(
        Timestamp::from_parts(1_700_000_000, 0),
        fr[0].len() as u32,
        &fr[0],
    )
    .unwrap();
    w.write_record(
        Timestamp::from_parts(1_700_000_600, 0),
        fr[1].len() as u32,
        &fr[1],
    )
    .unwrap();
    w.finish().unwrap();
    let mut child = Command::new("ip")
        .args([
            "netns", "exec", &ns.a, BIN, "replay", "-i", &ns.a_if, "--json",
        ])
        .arg(&input)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let t0 = Instant::now();
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "replay ignored the first SIGINT during a 600 s gap"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Interrupted before the end of its file: the summary, then exit 130.
    let o = child.wait_with_output().unwrap();
    assert_eq!(code, Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["packets"], 1);
}
