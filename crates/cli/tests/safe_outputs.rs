//! No command destroys the user's data: outputs that are inputs (through any spelling) are
//! refused before anything is opened for writing, a failed run leaves older results alone,
//! complete outputs appear under their names only when complete, interrupted file runs keep
//! `<name>.partial` and exit 128 + signal, errors come before summaries, and a closed standard
//! output ends a run quietly.

mod common;

use common::bin;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A small generated capture (HTTP included) at `dir/name`.
fn capture(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    common::generated_capture(
        &p,
        &netspectra_gen::GenConfig {
            packets: Some(3000),
            seed: 5,
            ..Default::default()
        },
    );
    p
}

fn out(args: &[&std::ffi::OsStr]) -> Output {
    bin().args(args).output().expect("spawn netspectra")
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit 2, a message naming both `a` and `b`, and that `file` still holds `bytes`.
fn refused(o: &Output, names: &[&str], file: &Path, bytes: &[u8]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    for n in names {
        assert!(e.contains(n), "message names {n}: {e}");
    }
    assert_eq!(
        std::fs::read(file).unwrap(),
        bytes,
        "{} changed",
        file.display()
    );
}

#[test]
fn an_output_that_is_an_input_is_refused_whatever_its_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "in.pcap");
    let orig = std::fs::read(&cap).unwrap();
    let link = dir.path().join("link.pcap");
    std::os::unix::fs::symlink(&cap, &link).unwrap();
    let hard = dir.path().join("hard.pcap");
    std::fs::hard_link(&cap, &hard).unwrap();
    let dotted = dir.path().join(".").join("in.pcap");
    for o in [&cap, &link, &hard, &dotted] {
        let r = out(&[
            os("sanitize"),
            cap.as_os_str(),
            os("-o"),
            o.as_os_str(),
            os("-q"),
        ]);
        refused(&r, &["in.pcap", "same file"], &cap, &orig);
        let r = out(&[os("http"), cap.as_os_str(), os("-o"), o.as_os_str()]);
        refused(&r, &["in.pcap"], &cap, &orig);
        let r = out(&[
            os("flows"),
            cap.as_os_str(),
            os("-q"),
            os("--records"),
            o.as_os_str(),
        ]);
        refused(&r, &["in.pcap"], &cap, &orig);
    }
    // The second of two inputs, and a report naming the input.
    let other = capture(dir.path(), "other.pcap");
    let other_bytes = std::fs::read(&other).unwrap();
    let r = out(&[
        os("http"),
        cap.as_os_str(),
        other.as_os_str(),
        os("-o"),
        other.as_os_str(),
    ]);
    refused(&r, &["other.pcap"], &other, &other_bytes);
    let r = out(&[
        os("sanitize"),
        cap.as_os_str(),
        os("-o"),
        dir.path().join("s.pcap").as_os_str(),
        os("--report"),
        cap.as_os_str(),
        os("-q"),
    ]);
    refused(&r, &["--report", "in.pcap"], &cap, &orig);
    assert!(!dir.path().join("s.pcap").exists(), "nothing written");
}

#[test]
fn outputs_do_not_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "in.pcap");
    let outdir = dir.path().join("out");
    // --records where a view snapshot goes.
    let view_file = outdir.join("2023-11-14T22:13:20Z/src_ip.jsonl");
    let r = out(&[
        os("flows"),
        cap.as_os_str(),
        os("-q"),
        os("-o"),
        outdir.as_os_str(),
        os("--view"),
        os("src_ip"),
        os("--records"),
        view_file.as_os_str(),
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("snapshot"), "{}", stderr(&r));
    // --report over the output.
    let s = dir.path().join("s.pcap");
    let r = out(&[
        os("sanitize"),
        cap.as_os_str(),
        os("-o"),
        s.as_os_str(),
        os("--report"),
        s.as_os_str(),
        os("-q"),
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("same output"), "{}", stderr(&r));
    // -o naming an existing file where a folder is expected: a clear message.
    let f = dir.path().join("plain-file");
    std::fs::write(&f, b"keep me").unwrap();
    let r = out(&[
        os("flows"),
        cap.as_os_str(),
        os("-q"),
        os("-o"),
        f.as_os_str(),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("not a directory"), "{}", stderr(&r));
    assert!(!stderr(&r).contains("os error"), "{}", stderr(&r));
    assert_eq!(std::fs::read(&f).unwrap(), b"keep me");
}

#[test]
fn directory_mode_never_writes_into_its_input_tree_or_through_links() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("caps");
    std::fs::create_dir(&tree).unwrap();
    let a = capture(&tree, "a.pcap");
    let a_bytes = std::fs::read(&a).unwrap();
    for o in [
        tree.clone(),
        tree.join("sanitized"),
        dir.path().to_path_buf(),
    ] {
        let r = out(&[
            os("sanitize"),
            tree.as_os_str(),
            os("-o"),
            o.as_os_str(),
            os("-q"),
        ]);
        refused(&r, &["caps"], &a, &a_bytes);
    }
    assert_eq!(
        std::fs::read_dir(&tree).unwrap().count(),
        1,
        "nothing added to the tree"
    );
    // A link in OUTDIR named like an input and pointing at it.
    let outdir = dir.path().join("outdir");
    std::fs::create_dir(&outdir).unwrap();
    std::os::unix::fs::symlink(&a, outdir.join("a.pcap")).unwrap();
    let r = out(&[
        os("sanitize"),
        tree.as_os_str(),
        os("-o"),
        outdir.as_os_str(),
        os("-q"),
    ]);
    refused(&r, &["a.pcap"], &a, &a_bytes);
}

#[test]
fn a_failed_run_leaves_earlier_results_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "in.pcap");
    let outdir = dir.path().join("out");
    let ok = out(&[
        os("flows"),
        cap.as_os_str(),
        os("-q"),
        os("-o"),
        outdir.as_os_str(),
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let records = outdir.join("flows.jsonl");
    let before = std::fs::read(&records).unwrap();
    assert!(!before.is_empty());
    let missing = dir.path().join("missing.pcap");
    // A port nobody listens on (bound, then closed).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ch = format!("clickhouse://127.0.0.1:{closed}/db.t");
    let failing: Vec<Vec<&std::ffi::OsStr>> = vec![
        vec![
            os("flows"),
            missing.as_os_str(),
            os("-o"),
            outdir.as_os_str(),
        ],
        vec![
            os("flows"),
            cap.as_os_str(),
            os("-o"),
            outdir.as_os_str(),
            os("--export"),
            os("ipfix://127.0.0.1:4739"),
            os("--export-rate"),
            os("0"),
        ],
        vec![
            os("flows"),
            cap.as_os_str(),
            os("-o"),
            outdir.as_os_str(),
            os("--metrics"),
            os("not-an-address"),
        ],
        vec![
            os("flows"),
            cap.as_os_str(),
            os("-o"),
            outdir.as_os_str(),
            os("--export"),
            os(&ch),
        ],
    ];
    for args in failing {
        let r = out(&args);
        assert!(!r.status.success(), "{args:?} must fail");
        assert_eq!(
            std::fs::read(&records).unwrap(),
            before,
            "{args:?} touched the records"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&outdir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let old = dir.path().join("old.jsonl");
    std::fs::write(&old, b"{\"earlier\":true}\n").unwrap();
    let r = out(&[os("http"), missing.as_os_str(), os("-o"), old.as_os_str()]);
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(std::fs::read(&old).unwrap(), b"{\"earlier\":true}\n");
}

#[test]
fn an_unopenable_input_gives_the_error_alone() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pcap");
    for cmd in ["info", "flows", "http"] {
        let r = out(&[os(cmd), missing.as_os_str()]);
        assert_eq!(r.status.code(), Some(2), "{cmd}");
        assert!(
            r.stdout.is_empty(),
            "{cmd} printed a summary: {}",
            String::from_utf8_lossy(&r.stdout)
        );
        let e = stderr(&r);
        assert!(e.contains("missing.pcap"), "{cmd}: {e}");
        assert_eq!(
            e.matches("missing.pcap").count(),
            1,
            "{cmd}: one message: {e}"
        );
    }
    let r = out(&[
        os("sanitize"),
        missing.as_os_str(),
        os("-o"),
        dir.path().join("o.pcap").as_os_str(),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(r.stdout.is_empty());
    assert!(!dir.path().join("o.pcap").exists());
}

/// Runs `netspectra ARGS` reading the first half of `cap` from a pipe that stays open (its
/// writer goes quiet, as `tcpdump -w -` does between packets), then sends SIGINT: the run must
/// stop where it is without waiting for more input or for the pipe to close.
fn interrupted(args: &[&std::ffi::OsStr], cap: &Path) -> Output {
    let bytes = std::fs::read(cap).unwrap();
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..bytes.len() / 2]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{args:?}: SIGINT did not stop a run waiting on a quiet pipe");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn an_interrupted_file_run_keeps_a_partial_file_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "in.pcap");
    let s = dir.path().join("s.pcap");
    let h = dir.path().join("h.jsonl");
    let f = dir.path().join("f.jsonl");
    for (args, dest) in [
        (
            vec![
                os("sanitize"),
                os("-"),
                os("-o"),
                s.as_os_str(),
                os("-q"),
                os("--passphrase"),
                os("x"),
            ],
            &s,
        ),
        (
            vec![
                os("http"),
                os("-"),
                os("-o"),
                h.as_os_str(),
                os("--summary"),
                os("json"),
            ],
            &h,
        ),
        (
            vec![
                os("flows"),
                os("-"),
                os("-q"),
                os("--json"),
                os("--records"),
                f.as_os_str(),
            ],
            &f,
        ),
    ] {
        let r = interrupted(&args, &cap);
        assert_eq!(r.status.code(), Some(130), "{args:?}: {}", stderr(&r));
        assert!(!dest.exists(), "{args:?}: nothing under the complete name");
        let mut partial = dest.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        assert!(partial.exists(), "{args:?}: keeps {}", partial.display());
        assert!(
            stderr(&r).contains(&partial.display().to_string()),
            "says where: {}",
            stderr(&r)
        );
        assert!(std::fs::metadata(&partial).unwrap().len() > 0);
    }
    // The partial capture is a valid one (capinfos reads it whole) when tshark's tools exist.
    if common::have("capinfos", "-v") {
        let p = dir.path().join("s.pcap.partial");
        let o = Command::new("capinfos").arg("-c").arg(&p).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn a_closed_standard_output_ends_the_run_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "in.pcap");
    let many: Vec<&std::ffi::OsStr> = std::iter::once(os("info"))
        .chain(std::iter::repeat_n(cap.as_os_str(), 50))
        .collect();
    for args in [
        many,
        vec![os("http"), cap.as_os_str()],
        vec![os("flows"), cap.as_os_str(), os("--records"), os("-")],
    ] {
        let mut child = bin()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away at once, like `| head -0`.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let e = stderr(&o);
        assert!(
            !e.contains("panicked") && !e.contains("Broken pipe"),
            "{:?}: {e}",
            args[0]
        );
        assert_eq!(o.status.code(), Some(141), "{:?}: {e}", args[0]);
    }
}

#[test]
fn secrets_and_sizes_are_checked_before_use() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "in.pcap");
    let o = dir.path().join("o.pcap");
    let base = [
        os("sanitize"),
        cap.as_os_str(),
        os("-o"),
        o.as_os_str(),
        os("-q"),
    ];
    let r = out(&[&base[..], &[os("--anonymize"), os("--passphrase"), os("")]].concat());
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("passphrase is empty"), "{}", stderr(&r));
    let r = bin()
        .args([&base[..], &[os("--anonymize")]].concat())
        .env("NETSPECTRA_PASSPHRASE", "")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    // A key "file" that never ends is refused after a few KiB, not read forever.
    let t0 = Instant::now();
    let r = out(&[
        &base[..],
        &[os("--anonymize"), os("--key-file"), os("/dev/zero")],
    ]
    .concat());
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("larger than"), "{}", stderr(&r));
    assert!(t0.elapsed() < Duration::from_secs(60), "hung on /dev/zero");
    let r = out(&[
        &base[..],
        &[os("--dedup"), os("--dedup-capacity"), os("1000000000")],
    ]
    .concat());
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("--dedup-capacity"), "{}", stderr(&r));
    // A config naming no stage would copy the input unchanged: refused, loudly.
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "stages: []\n").unwrap();
    let r = out(&[&base[..], &[os("--config"), cfg.as_os_str()]].concat());
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("no stage"), "{}", stderr(&r));
    assert!(!o.exists());
    // One thread cap for every command.
    for cmd in [
        vec![os("flows"), cap.as_os_str()],
        vec![os("http"), cap.as_os_str()],
    ] {
        let r = out(&[&cmd[..], &[os("--threads"), os("100000")]].concat());
        assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
        let e = stderr(&r);
        assert!(e.contains("1..=64") || e.contains("from 1 to 64"), "{e}");
    }
    // Zero never silently means one; too large is refused naming the flag.
    for (flag, v) in [
        ("--max-connections", "0"),
        ("--max-value-len", "0"),
        ("--max-header-bytes", "99999999999"),
    ] {
        let r = out(&[os("http"), cap.as_os_str(), os(flag), os(v)]);
        assert_eq!(r.status.code(), Some(2), "{flag} {v}");
        assert!(stderr(&r).contains(flag), "{}", stderr(&r));
    }
    // An empty guard policy would drop everything without a word.
    let pol = dir.path().join("p.yaml");
    std::fs::write(&pol, "# nothing yet\n").unwrap();
    let r = out(&[os("guard"), os("check"), os("--policy"), pol.as_os_str()]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("no rules"), "{}", stderr(&r));
}

/// A pcapng whose one packet has the largest time pcapng can say (high word 0xFFFFFFFF):
/// every run over it ends, with and without snapshots.
#[test]
fn a_far_future_timestamp_does_not_hang_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = Vec::new();
    // Section header block.
    f.extend_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
    f.extend_from_slice(&28u32.to_le_bytes());
    f.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    f.extend_from_slice(&[1, 0, 0, 0]);
    f.extend_from_slice(&(-1i64).to_le_bytes());
    f.extend_from_slice(&28u32.to_le_bytes());
    // Interface description block: Ethernet, microseconds.
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&20u32.to_le_bytes());
    f.extend_from_slice(&[1, 0, 0, 0]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&20u32.to_le_bytes());
    // Two enhanced packet blocks: a normal time, then the far future.
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1, 1000)
        .write(&mut frame, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let pad = (4 - frame.len() % 4) % 4;
    for ts in [1_700_000_000_000_000u64, 0xFFFF_FFFF_0000_0000] {
        let len = (32 + frame.len() + pad) as u32;
        f.extend_from_slice(&6u32.to_le_bytes());
        f.extend_from_slice(&len.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        f.extend_from_slice(&(ts as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&frame);
        f.extend_from_slice(&vec![0; pad]);
        f.extend_from_slice(&len.to_le_bytes());
    }
    let cap = dir.path().join("future.pcapng");
    std::fs::write(&cap, &f).unwrap();
    let outdir = dir.path().join("o");
    let h = dir.path().join("h.jsonl");
    for args in [
        vec![
            os("flows"),
            cap.as_os_str(),
            os("-q"),
            os("-o"),
            outdir.as_os_str(),
            os("--interval"),
            os("1s"),
        ],
        vec![os("http"), cap.as_os_str(), os("-o"), h.as_os_str()],
    ] {
        let mut child = bin()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let st = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if t0.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!("{:?} hung on a far-future timestamp", args[0]);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(st.success(), "{:?}: {st}", args[0]);
    }
}

#[test]
fn directory_mode_names_say_what_the_files_are() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("caps");
    std::fs::create_dir(&tree).unwrap();
    let plain = capture(dir.path(), "x.pcap");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&std::fs::read(&plain).unwrap()).unwrap();
    std::fs::write(tree.join("x.pcap.gz"), gz.finish().unwrap()).unwrap();
    let outdir = dir.path().join("sanitized");
    let r = out(&[
        os("sanitize"),
        tree.as_os_str(),
        os("-o"),
        outdir.as_os_str(),
        os("-q"),
        os("--dedup"),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        !outdir.join("x.pcap.gz").exists(),
        "uncompressed data under a .gz name"
    );
    let written = std::fs::read(outdir.join("x.pcap")).unwrap();
    let magic = u32::from_le_bytes(written[..4].try_into().unwrap());
    assert!(
        [0xa1b2_c3d4, 0xa1b2_3c4d].contains(&magic),
        "a plain pcap, not gzip: {magic:#x}"
    );
}

#[test]
fn gzip_damage_is_bad_input_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let plain = capture(dir.path(), "x.pcap");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&std::fs::read(&plain).unwrap()).unwrap();
    let bytes = gz.finish().unwrap();
    let cut = dir.path().join("cut.pcap.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let r = out(&[os("info"), cut.as_os_str()]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    let e = stderr(&r);
    assert_eq!(e.matches("error").count(), 1, "{e}");
    assert!(
        e.contains("cut.pcap.gz") && e.contains("byte offset"),
        "{e}"
    );
    // What decompressed before the damage was read and summarized.
    let s = String::from_utf8_lossy(&r.stdout);
    let packets: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("Packets:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(packets > 100, "{s}");
}

/// A small tmpfs mounted for one test and always unmounted.
struct FullDisk(PathBuf);

impl FullDisk {
    fn new(at: PathBuf, size: &str) -> FullDisk {
        std::fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs");
        FullDisk(at)
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Writing to a full file system is an error naming the path, exit 1, never a summary that
/// claims success, and no half-written file under the name.
#[test]
fn a_full_disk_is_an_error_naming_the_path() {
    netspectra_testnet::require_root!();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("big.pcap");
    common::generated_capture(
        &cap,
        &netspectra_gen::GenConfig {
            packets: Some(40_000),
            seed: 9,
            ..Default::default()
        },
    );
    let disk = FullDisk::new(dir.path().join("full"), "64k");
    let s = disk.0.join("s.pcap");
    let h = disk.0.join("h.jsonl");
    let f = disk.0.join("f");
    for (args, name) in [
        (
            vec![
                os("sanitize"),
                cap.as_os_str(),
                os("-o"),
                s.as_os_str(),
                os("-q"),
                os("--dedup"),
            ],
            "s.pcap",
        ),
        (
            vec![os("http"), cap.as_os_str(), os("-o"), h.as_os_str()],
            "h.jsonl",
        ),
        (
            vec![
                os("flows"),
                cap.as_os_str(),
                os("-q"),
                os("-o"),
                f.as_os_str(),
            ],
            "flows.jsonl",
        ),
    ] {
        let r = out(&args);
        let e = stderr(&r);
        assert_eq!(r.status.code(), Some(1), "{:?}: {e}", args[0]);
        assert!(
            e.contains(name) && e.contains("No space left"),
            "{:?}: {e}",
            args[0]
        );
    }
    assert!(!s.exists() && !h.exists() && !f.join("flows.jsonl").exists());
    let left: Vec<_> = walk(&disk.0);
    assert!(
        left.iter().all(|p| !p.to_string_lossy().contains(".tmp-")),
        "{left:?}"
    );
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `-o /dev/null` (or a FIFO, a terminal) is written in place: the rename that makes regular
/// outputs appear whole would replace the device with a plain file, and every later program
/// writing to or reading from it would get the wrong thing. A FIFO stands for /dev/null here.
#[test]
fn a_device_or_fifo_output_is_written_in_place_never_replaced() {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), "in.pcap");
    let fifo = dir.path().join("out.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for args in [
        vec!["http", "-q"],
        vec!["tls", "-q"],
        vec!["dns", "-q"],
        vec!["sanitize", "--passphrase", "x"],
    ] {
        let f2 = fifo.clone();
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::fs::File::open(&f2)
                .unwrap()
                .read_to_end(&mut v)
                .unwrap();
            v.len()
        });
        let o = bin()
            .args(&args)
            .arg(&cap)
            .arg("-o")
            .arg(&fifo)
            .output()
            .unwrap();
        // A command that never opened the FIFO would leave the reader waiting: open it too.
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo);
        }
        let got = reader.join().unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(
            got > 0 || args[0] != "http",
            "{args:?}: nothing came through the FIFO"
        );
        let m = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(
            m.file_type().is_fifo(),
            "{args:?} replaced the FIFO with a {:?}",
            m.file_type()
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 2, "temporary files left: {left:?}");
}
