//! End-to-end tests of `netspectra sanitize` against independent oracles: editcap for dedup, the
//! generator's truth file for duplicates, tshark for checksums/malformed packets, and `--verify`.

use netspectra_pcap::CaptureReader;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{bin, have, run};

/// Generates a capture with duplicates and its truth file.
fn gen(dir: &Path, name: &str, packets: u32, seed: u32, format: &str) -> (PathBuf, Value) {
    let cap = dir.join(name);
    let truth = dir.join(format!("{name}.json"));
    run(bin()
        .args(["gen", "-o"])
        .arg(&cap)
        .args([
            "--packets",
            &packets.to_string(),
            "--seed",
            &seed.to_string(),
            "--format",
            format,
            "--dup",
            "0.05",
            "--truth",
        ])
        .arg(&truth));
    let t: Value = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    (cap, t)
}

/// All frames of a capture as (timestamp ns, bytes).
fn frames(p: &Path) -> Vec<(i64, Vec<u8>)> {
    let mut r = CaptureReader::open(p).unwrap();
    let mut v = Vec::new();
    while let Some(b) = r.next_owned(None).unwrap() {
        for pk in b.as_batch().iter() {
            v.push((pk.ts.0, pk.data.to_vec()));
        }
    }
    v
}

fn sanitize_json(args: &[&str], input: &Path, output: &Path) -> Value {
    let out = run(bin()
        .arg("sanitize")
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(args)
        .arg("--json"));
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn dedup_removes_exactly_what_editcap_removes() {
    if !have("editcap", "-v") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (cap, _) = gen(d.path(), "in.pcap", 8000, 11, "pcap");
    let cases: [(&[&str], &[&str]); 5] = [
        (&["-D", "2"], &["--dedup-window", "2"]),
        (&["-d"], &["--dedup-window", "5"]),
        (&["-D", "50"], &["--dedup-window", "50"]),
        (&["-D", "10000"], &[]),
        (&["-w", "0.0005"], &["--dedup-time", "0.0005"]),
    ];
    for (i, (ed, ours)) in cases.iter().enumerate() {
        let e = d.path().join(format!("e{i}.pcap"));
        let o = d.path().join(format!("o{i}.pcap"));
        run(Command::new("editcap").args(*ed).arg(&cap).arg(&e));
        let mut args = vec!["--dedup"];
        args.extend_from_slice(ours);
        sanitize_json(&args, &cap, &o);
        let (fe, fo) = (frames(&e), frames(&o));
        assert_eq!(
            fe.len(),
            fo.len(),
            "editcap {ed:?} vs ours {ours:?}: frame counts"
        );
        assert!(fe == fo, "editcap {ed:?} vs ours {ours:?}: frames differ");
    }
}

#[test]
fn dedup_removes_exactly_the_generated_duplicates() {
    let d = tempfile::tempdir().unwrap();
    for (format, seed) in [("pcap", 3), ("pcapng", 4)] {
        let (cap, truth) = gen(d.path(), &format!("in.{format}"), 6000, seed, format);
        let dups = &truth["duplicates"];
        assert_eq!(dups["listed"], Value::Bool(true));
        let listed: std::collections::BTreeSet<u64> = dups["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_u64().unwrap())
            .collect();
        let out = d.path().join(format!("out.{format}"));
        let rep = sanitize_json(&["--dedup"], &cap, &out);
        let f = &rep["report"]["frames"];
        assert_eq!(f["duplicates_removed"], dups["frames"]);
        assert_eq!(f["duplicate_bytes"], dups["bytes"]);
        // The frames left are exactly the input minus the listed duplicate indices.
        let input = frames(&cap);
        let want: Vec<_> = input
            .iter()
            .enumerate()
            .filter(|(i, _)| !listed.contains(&(*i as u64)))
            .map(|(_, f)| f.clone())
            .collect();
        assert!(
            frames(&out) == want,
            "{format}: kept frames differ from truth"
        );
    }
}

/// Counts, per check, the frames tshark flags: malformed, error-severity expert items, and each
/// checksum that does not verify.
fn tshark_problems(p: &Path) -> Vec<(String, usize)> {
    let checks = [
        "_ws.malformed",
        "_ws.expert.severity == \"Error\"",
        "ip.checksum.status == \"Bad\"",
        "tcp.checksum.status == \"Bad\"",
        "udp.checksum.status == \"Bad\"",
        "icmp.checksum.status == \"Bad\"",
        "icmpv6.checksum.status == \"Bad\"",
        "tcp.checksum.status == \"Good\"",
    ];
    checks
        .iter()
        .map(|c| {
            let out = run(Command::new("tshark")
                .args([
                    "-n",
                    "-o",
                    "ip.check_checksum:TRUE",
                    "-o",
                    "tcp.check_checksum:TRUE",
                    "-o",
                    "udp.check_checksum:TRUE",
                    "-r",
                ])
                .arg(p)
                .args(["-Y", c, "-T", "fields", "-e", "frame.number"]));
            let n = String::from_utf8_lossy(&out.stdout).lines().count();
            (c.to_string(), n)
        })
        .collect()
}

#[test]
fn tshark_sees_no_new_problems_and_verify_passes() {
    if !have("tshark", "-v") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (cap, truth) = gen(d.path(), "in.pcap", 6000, 5, "pcap");
    let deduped = d.path().join("dedup.pcap");
    let out = d.path().join("out.pcap");
    let key = d.path().join("key");
    std::fs::write(
        &key,
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    )
    .unwrap();
    sanitize_json(&["--dedup"], &cap, &deduped);
    let rep = sanitize_json(&["--key-file", key.to_str().unwrap()], &cap, &out);
    let f = &rep["report"]["frames"];
    let packets: u64 = truth["packets"].as_u64().unwrap();
    let dups = truth["duplicates"]["frames"].as_u64().unwrap();
    assert_eq!(f["packets_in"].as_u64(), Some(packets));
    assert_eq!(f["packets_out"].as_u64(), Some(packets - dups));
    assert_eq!(
        f["bytes_out"].as_u64().unwrap(),
        f["bytes_in"].as_u64().unwrap() - truth["duplicates"]["bytes"].as_u64().unwrap()
    );
    // Masking really happened and kept TLS handshakes and HTTP headers.
    let m = &rep["report"]["mask"];
    for k in ["tls", "http"] {
        assert!(m[k]["kept"].as_u64().unwrap() > 0, "{k} kept");
        assert!(m[k]["masked"].as_u64().unwrap() > 0, "{k} masked");
    }
    let before = tshark_problems(&deduped);
    let after = tshark_problems(&out);
    for ((check, b), (_, a)) in before.iter().zip(&after) {
        if check.contains("Good") {
            // Checksums were really verified, and all that were good stay good.
            assert!(*b > 0, "tshark verified no TCP checksum");
            assert_eq!(a, b, "{check}");
        } else {
            assert!(a <= b, "{check}: {b} frames before, {a} after");
        }
    }
    // Same frames and timestamps, same lengths, same TCP conversations count.
    let (fb, fa) = (frames(&deduped), frames(&out));
    assert_eq!(fb.len(), fa.len());
    assert!(fb
        .iter()
        .zip(&fa)
        .all(|(x, y)| x.0 == y.0 && x.1.len() == y.1.len()));
    let conv = |p: &Path| {
        let o = run(Command::new("tshark")
            .arg("-r")
            .arg(p)
            .args(["-q", "-z", "conv,tcp"]));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("<->"))
            .count()
    };
    assert_eq!(conv(&deduped), conv(&out));
    // --verify passes on the output and fails on the unsanitized input, naming a packet.
    run(bin()
        .args(["sanitize", "--verify"])
        .arg(&out)
        .arg("--original")
        .arg(&cap));
    let bad = bin()
        .args(["sanitize", "--verify"])
        .arg(&cap)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(msg.contains("packet "), "{msg}");
}

#[test]
fn same_key_same_mapping_in_directory_mode() {
    let d = tempfile::tempdir().unwrap();
    let ind = d.path().join("in");
    std::fs::create_dir(&ind).unwrap();
    gen(&ind, "a.pcap", 2000, 1, "pcap");
    gen(&ind, "b.pcapng", 2000, 2, "pcapng");
    for f in ["a.pcap.json", "b.pcapng.json"] {
        std::fs::remove_file(ind.join(f)).unwrap();
    }
    let outd = d.path().join("out");
    let pass = ["--anonymize", "--passphrase", "correct horse"];
    let rep = sanitize_json(&pass, &ind, &outd);
    assert_eq!(rep["files"].as_array().unwrap().len(), 2);
    for f in ["a.pcap", "b.pcapng"] {
        let single = d.path().join(format!("single-{f}"));
        sanitize_json(&pass, &ind.join(f), &single);
        assert!(
            std::fs::read(&single).unwrap() == std::fs::read(outd.join(f)).unwrap(),
            "{f}: directory and single-file runs differ"
        );
        // Anonymization changed the frames.
        assert!(frames(&single) != frames(&ind.join(f)));
    }
    // Another passphrase gives another mapping.
    let other = d.path().join("other.pcap");
    sanitize_json(
        &["--anonymize", "--passphrase", "other"],
        &ind.join("a.pcap"),
        &other,
    );
    assert!(frames(&other) != frames(&outd.join("a.pcap")));
}

#[test]
fn pcapng_metadata_is_not_carried_over() {
    if !have("editcap", "-v") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (cap, _) = gen(d.path(), "in.pcapng", 500, 9, "pcapng");
    let commented = d.path().join("c.pcapng");
    run(Command::new("editcap")
        .args([
            "--capture-comment",
            "SECRET-capture-comment",
            "-a",
            "3:SECRET-frame-comment",
        ])
        .arg(&cap)
        .arg(&commented));
    assert!(contains(&std::fs::read(&commented).unwrap(), b"SECRET-"));
    let out = d.path().join("out.pcapng");
    sanitize_json(&[], &commented, &out);
    let bytes = std::fs::read(&out).unwrap();
    assert!(!contains(&bytes, b"SECRET-"), "a comment survived");
    assert_eq!(
        frames(&out).len(),
        frames(&commented).len() - count_dups(&commented)
    );
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

fn count_dups(p: &Path) -> usize {
    let mut seen = std::collections::HashSet::new();
    frames(p)
        .into_iter()
        .filter(|f| !seen.insert(f.1.clone()))
        .count()
}

#[test]
fn bad_input_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let junk = d.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file at all").unwrap();
    let o = bin()
        .arg("sanitize")
        .arg(&junk)
        .arg("-o")
        .arg(d.path().join("o.pcap"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("junk.pcap"));
    let key = d.path().join("short.key");
    std::fs::write(&key, b"short").unwrap();
    let (cap, _) = gen(d.path(), "in.pcap", 100, 1, "pcap");
    let o = bin()
        .arg("sanitize")
        .arg(&cap)
        .arg("-o")
        .arg(d.path().join("o.pcap"))
        .arg("--key-file")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// tshark's view of each frame: checksum verdicts, and every address it decodes in `fields`.
fn tshark_addrs(p: &Path, fields: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(p)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
        ])
        .args(["-T", "fields", "-E", "separator=|"])
        .args(["-e", "tcp.checksum.status", "-e", "udp.checksum.status"])
        .args(["-e", "icmpv6.checksum.status"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let text = String::from_utf8(run(&mut cmd).stdout).unwrap();
    let mut verdicts = Vec::new();
    let mut addrs = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').collect();
        verdicts.push(f[..3].join("|"));
        for a in f[3..].iter().flat_map(|x| x.split(',')) {
            if !a.is_empty() {
                addrs.push(a.to_string());
            }
        }
    }
    (verdicts, addrs)
}

/// Sanitizes corpus `files` with `--anonymize` only and checks with tshark that every address
/// it decodes in `fields` changed, none went missing, and no checksum verdict changed.
fn anonymized_per_tshark(files: &[&str], fields: &[&str]) {
    if !have("tshark", "-v") {
        return;
    }
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/tcpdump-tests");
    if !corpus.join(files[0]).exists() {
        netspectra_testnet::skip(
            "sanitize corpus files",
            "../shared/corpus/tcpdump-tests not present",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut verdicts_checked = 0;
    for f in files {
        let input = corpus.join(f);
        let output = dir.path().join(f);
        run(bin()
            .arg("sanitize")
            .arg(&input)
            .arg("-o")
            .arg(&output)
            .args(["--anonymize", "--passphrase", "corpus"]));
        let (v_in, a_in) = tshark_addrs(&input, fields);
        let (v_out, a_out) = tshark_addrs(&output, fields);
        assert_eq!(v_in, v_out, "{f}: checksum verdicts changed");
        verdicts_checked += v_in.iter().filter(|v| v.contains('1')).count();
        assert!(!a_in.is_empty(), "{f}: tshark decoded no addresses");
        assert_eq!(a_in.len(), a_out.len(), "{f}: address fields lost");
        let leaked: Vec<&String> = a_out.iter().filter(|a| a_in.contains(a)).collect();
        assert!(
            leaked.is_empty(),
            "{f}: addresses passed through: {leaked:?}"
        );
    }
    assert!(verdicts_checked >= 2, "tshark verified too few checksums");
}

#[test]
fn ipv6_routing_headers_are_anonymized_with_checksums_kept() {
    anonymized_per_tshark(
        &[
            "ipv6-routing-header.pcap",   // type 0, TCP and ICMPv6 with segments left
            "ipv6-srh-insert-cksum.pcap", // segment routing, UDP with segments left
            "ipv6-srh-ext-header.pcap",
            "ipv6-srh-tlv-hmac.pcap",
            "ipv6-srh-ipproto-ether.pcap", // Ethernet inside the segment-routed packet
        ],
        &[
            "ipv6.src",
            "ipv6.dst",
            "ipv6.routing.src.addr",
            "ipv6.routing.srh.addr",
            "ipv6.routing.mipv6.home_address",
        ],
    );
}

#[test]
fn dns_answers_and_client_subnets_are_anonymized_with_checksums_kept() {
    anonymized_per_tshark(
        &[
            "edns-opts.pcap", // A answers and client subnets (IPv4 /24, /32, IPv6 /100)
            "dns_udp.pcap",
            "dns_tcp.pcap",
        ],
        &[
            "ip.src",
            "ip.dst",
            "dns.a",
            "dns.aaaa",
            "dns.opt.client.addr4",
            "dns.opt.client.addr6",
        ],
    );
}

#[test]
fn quiet_prints_nothing_but_still_writes_the_same_capture_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = gen(dir.path(), "q.pcap", 300, 5, "pcap");
    let (loud, quiet) = (dir.path().join("loud.pcap"), dir.path().join("quiet.pcap"));
    let report = dir.path().join("report.json");
    let l = run(bin()
        .arg("sanitize")
        .arg(&cap)
        .arg("-o")
        .arg(&loud)
        .args(["--passphrase", "q"]));
    let q = run(bin()
        .arg("sanitize")
        .arg(&cap)
        .arg("-o")
        .arg(&quiet)
        .args(["--passphrase", "q", "-q", "--report"])
        .arg(&report));
    assert!(!l.stdout.is_empty(), "the summary is printed without -q");
    assert!(
        q.stdout.is_empty(),
        "-q printed {:?}",
        String::from_utf8_lossy(&q.stdout)
    );
    assert_eq!(
        std::fs::read(&loud).unwrap(),
        std::fs::read(&quiet).unwrap()
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let n = frames(&cap).len() as u64;
    assert_eq!(r["report"]["frames"]["packets_in"].as_u64(), Some(n), "{r}");
    let v = run(bin().args(["sanitize", "--verify", "-q"]).arg(&quiet));
    assert!(v.stdout.is_empty());
}
