//! `netspectra http` on hostile TCP payloads: binary garbage after a method name, endless
//! header lines, lines without colon, NUL bytes and a 1 MB header. No crash, exit 0, bounded
//! memory (the header buffer is capped), every case counted as malformed with its reason. A bad
//! `--filter` is a usage error (exit 2) for http and flows.

use etherparse::PacketBuilder;
use netspectra_packet::{LinkType, Timestamp};
use netspectra_pcap::PcapWriter;
use serde_json::Value;
use std::process::Command;

/// Frames of one client-to-server connection on `port`, one per payload.
fn conn(port: u16, payloads: &[Vec<u8>], out: &mut Vec<Vec<u8>>) {
    let mut seq = 1000u32;
    for p in payloads {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(port, 8080, seq, 65535)
            .ack(1);
        let mut f = Vec::new();
        b.write(&mut f, p).unwrap();
        out.push(f);
        seq = seq.wrapping_add(p.len() as u32);
    }
}

#[test]
fn hostile_payloads_are_counted_not_fatal() {
    let mut frames = Vec::new();
    conn(
        40001,
        &[b"GET \x00\x01\x02\xff binary garbage".to_vec()],
        &mut frames,
    );
    let mut endless = b"GET /endless HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..400 {
        endless.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    endless.extend_from_slice(b"\r\n");
    conn(
        40002,
        &endless.chunks(1400).map(|c| c.to_vec()).collect::<Vec<_>>(),
        &mut frames,
    );
    conn(
        40003,
        &[b"GET /nocolon HTTP/1.1\r\nHost: h\r\nthis line has no colon\r\n\r\n".to_vec()],
        &mut frames,
    );
    conn(
        40004,
        &[b"GET /nul HTTP/1.1\r\nHost: a\0b\r\n\r\n".to_vec()],
        &mut frames,
    );
    let mut big = vec![b"GET /big HTTP/1.1\r\nHost: big\r\nX-Big: ".to_vec()];
    big.extend((0..750).map(|_| vec![b'a'; 1400]));
    big.push(b"\r\n\r\nGET /after HTTP/1.1\r\nHost: big\r\n\r\n".to_vec());
    conn(40005, &big, &mut frames);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.pcap");
    let mut w = PcapWriter::new(
        std::fs::File::create(&path).unwrap(),
        LinkType::ETHERNET,
        65535,
        false,
    )
    .unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_record(
            Timestamp::from_parts(1_700_000_000, i as u32 * 1000),
            f.len() as u32,
            f,
        )
        .unwrap();
    }
    w.finish().unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_netspectra"))
        .arg("http")
        .arg(&path)
        .args(["--summary", "json", "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum: Value = serde_json::from_slice(&out.stderr).unwrap();
    let recs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let m = &sum["malformed"];
    assert_eq!(m["bad_request_line"], 1, "{sum}");
    assert_eq!(m["too_many_headers"], 1, "{sum}");
    assert_eq!(m["bad_header_line"], 1, "{sum}");
    assert_eq!(m["bad_header_value"], 1, "{sum}");
    assert_eq!(m["header_too_large"], 1, "{sum}");
    let uris: Vec<&str> = recs.iter().filter_map(|r| r["uri"].as_str()).collect();
    // The line without colon is skipped (as browsers do); the 1 MB header is cut to a partial
    // record and the request after it is found.
    assert_eq!(uris, ["/nocolon", "/big", "/after"], "{recs:?}");
    assert!(recs[1]["partial"].as_bool().unwrap());
    assert_eq!(recs[1]["host"], "big");
}

#[test]
fn a_bad_filter_is_a_usage_error_that_names_the_expression_once() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/sample.pcapng");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    for args in [
        vec!["http", sample, "-o", out.to_str().unwrap()],
        vec!["flows", sample, "-q", "--no-records"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_netspectra"))
            .args(&args)
            .args(["--filter", "tcp and and"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("syntax error"), "{err}");
        assert_eq!(err.matches("tcp and and").count(), 1, "{err}");
    }
}
