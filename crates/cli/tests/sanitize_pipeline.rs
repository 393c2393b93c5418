//! The pipelined single-file path (reader, sanitizer and writer threads; `--threads 2`) writes
//! byte for byte what the single-threaded path (`--threads 1`) writes, with the same report.

use serde_json::Value;
use std::path::{Path, PathBuf};

mod common;
use common::{bin, run};

/// A generated capture (HTTP, TLS, DNS, ICMP, VLANs, IPv6, 5 % duplicates) of several 1 MiB
/// chunks, so that chunks are recycled through the pipeline.
fn gen(dir: &Path, name: &str, format: &str) -> PathBuf {
    let cap = dir.join(name);
    run(bin().args(["gen", "-o"]).arg(&cap).args([
        "--packets",
        "30000",
        "--seed",
        "7",
        "--format",
        format,
    ]));
    assert!(std::fs::metadata(&cap).unwrap().len() > 3 * (2 << 20));
    cap
}

/// Runs sanitize with `threads` and returns the output bytes and the report.
fn sanitize(input: &Path, out: &Path, threads: &str, args: &[&str]) -> (Vec<u8>, Value) {
    let o = run(bin()
        .arg("sanitize")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["--threads", threads, "--json"])
        .args(args));
    let rep: Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    (std::fs::read(out).unwrap(), rep["report"].clone())
}

fn same_both_ways(dir: &Path, input: &Path, args: &[&str]) -> Value {
    let (one, rep1) = sanitize(input, &dir.join("one"), "1", args);
    let (two, rep2) = sanitize(input, &dir.join("two"), "2", args);
    assert!(
        one == two,
        "{}: {args:?}: pipelined output differs from single-threaded output ({} vs {} bytes)",
        input.display(),
        two.len(),
        one.len()
    );
    assert_eq!(rep1, rep2, "{}: {args:?}: reports differ", input.display());
    rep1
}

#[test]
fn pipelined_output_is_byte_identical() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("key.hex");
    std::fs::write(&key, "00112233445566778899aabbccddeeff".repeat(2)).unwrap();
    let key = key.to_str().unwrap();
    for (name, format) in [
        ("us.pcap", "pcap-us"),
        ("ns.pcap", "pcap"),
        ("ng.pcapng", "pcapng"),
    ] {
        let input = gen(d.path(), name, format);
        let rep = same_both_ways(d.path(), &input, &["--key-file", key]);
        // The capture exercises every stage: duplicates, TLS and HTTP framing.
        assert!(rep["frames"]["duplicates_removed"].as_u64().unwrap() > 100);
        assert!(rep["mask"]["tls"]["kept"].as_u64().unwrap() > 0);
        assert!(rep["mask"]["tls"]["masked"].as_u64().unwrap() > 0);
        assert!(rep["mask"]["http"]["kept"].as_u64().unwrap() > 0);
        assert!(rep["mask"]["http"]["masked"].as_u64().unwrap() > 0);
        same_both_ways(d.path(), &input, &["--dedup"]);
        same_both_ways(d.path(), &input, &["--anonymize", "--key-file", key]);
        same_both_ways(d.path(), &input, &["--mask"]);
        let other = if format == "pcapng" { "pcap" } else { "pcapng" };
        same_both_ways(d.path(), &input, &["--key-file", key, "--format", other]);
    }
}

#[test]
fn pipelined_output_to_stdout_is_byte_identical() {
    let d = tempfile::tempdir().unwrap();
    let input = gen(d.path(), "in.pcap", "pcap-us");
    let out = |threads: &str| {
        run(bin().arg("sanitize").arg(&input).args([
            "-o",
            "-",
            "--passphrase",
            "x",
            "--threads",
            threads,
        ]))
        .stdout
    };
    let one = out("1");
    assert!(one.len() > 1 << 20);
    assert!(one == out("2"), "stdout output differs");
}

/// A hand-written big-endian microsecond pcap whose record headers differ from what the writer
/// produces (byte order; original length below the captured length), with a duplicate: the
/// pipelined path rewrites every record header in place exactly as the writer would.
#[test]
fn odd_pcap_record_headers_are_rewritten_identically() {
    let d = tempfile::tempdir().unwrap();
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_be_bytes());
    f.extend_from_slice(&2u16.to_be_bytes());
    f.extend_from_slice(&4u16.to_be_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_be_bytes());
    f.extend_from_slice(&1u32.to_be_bytes()); // Ethernet
    let frame = |n: u8| {
        let mut e = vec![n; 6];
        e.extend_from_slice(&[2; 6]);
        e.extend_from_slice(&[0x88, 0xb5]); // local experimental EtherType
        e.extend_from_slice(&[n; 40]);
        e
    };
    for (i, (n, orig)) in [(1u8, 54u32), (1, 10), (2, 54), (3, 60)].iter().enumerate() {
        let e = frame(*n);
        f.extend_from_slice(&(1_700_000_000u32 + i as u32).to_be_bytes());
        f.extend_from_slice(&(999_999u32 - i as u32).to_be_bytes());
        f.extend_from_slice(&(e.len() as u32).to_be_bytes());
        f.extend_from_slice(&orig.to_be_bytes());
        f.extend_from_slice(&e);
    }
    let input = d.path().join("be.pcap");
    std::fs::write(&input, f).unwrap();
    let rep = same_both_ways(d.path(), &input, &["--passphrase", "x"]);
    assert_eq!(rep["frames"]["duplicates_removed"], 1);
    assert_eq!(rep["frames"]["packets_out"], 3);
}
