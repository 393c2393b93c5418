//! `netspectra info` end to end: formats, standard input, gzip, and bad input (warning for a
//! truncated tail, exit code 2 with the byte offset for a corrupt record, after the summary of
//! what was read).

use etherparse::PacketBuilder;
use netspectra_packet::{InterfaceInfo, LinkType, Packet, Timestamp};
use netspectra_pcap::{CaptureWriter, OutputFormat};
use std::io::Write;
use std::process::{Command, Stdio};

fn capture(fmt: OutputFormat, n: u32) -> Vec<u8> {
    let ifaces = [InterfaceInfo {
        link: LinkType::ETHERNET,
        snaplen: 65535,
        ..Default::default()
    }];
    let mut w = CaptureWriter::new(Vec::new(), fmt, &ifaces).unwrap();
    for i in 0..n {
        let mut f = Vec::new();
        match i % 4 {
            0 => PacketBuilder::ethernet2([1; 6], [2; 6])
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(1000, 80, i, 100)
                .write(&mut f, b"abc"),
            1 => PacketBuilder::ethernet2([1; 6], [2; 6])
                .ipv6([1; 16], [2; 16], 64)
                .udp(53, 999)
                .write(&mut f, b"d"),
            2 => PacketBuilder::ethernet2([1; 6], [2; 6])
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .icmpv4_echo_request(1, i as u16)
                .write(&mut f, b"ping"),
            _ => PacketBuilder::ethernet2([1; 6], [2; 6])
                .single_vlan(7.try_into().unwrap())
                .ipv4([10, 0, 0, 3], [10, 0, 0, 4], 64)
                .udp(1, 2)
                .write(&mut f, b""),
        }
        .unwrap();
        let ts = Timestamp::from_parts(1_700_000_000 + i as i64, 5_000);
        let p = Packet::whole(ts, LinkType::ETHERNET, &f);
        w.write_packet(&p, &ifaces).unwrap();
    }
    w.finish().unwrap()
}

fn info(args: &[&str], stdin: Option<&[u8]>) -> (i32, serde_json::Value, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netspectra"));
    c.arg("info")
        .arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut sin = child.stdin.take().unwrap();
    if let Some(b) = stdin {
        sin.write_all(b).unwrap();
    }
    drop(sin);
    let out = child.wait_with_output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap(),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn counts_protocols_in_pcap_and_pcapng() {
    let dir = tempfile::tempdir().unwrap();
    for (name, fmt) in [
        ("a.pcap", OutputFormat::Pcap { nanos: false }),
        ("a.pcapng", OutputFormat::Pcapng),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, capture(fmt, 100)).unwrap();
        let (code, v, _) = info(&[p.to_str().unwrap()], None);
        assert_eq!(code, 0);
        assert_eq!(v["packets"], 100);
        let c = &v["protocols"];
        assert_eq!(
            (c["ipv4"].as_u64(), c["ipv6"].as_u64()),
            (Some(75), Some(25))
        );
        assert_eq!(
            (c["tcp"].as_u64(), c["udp"].as_u64(), c["icmp"].as_u64()),
            (Some(25), Some(50), Some(25))
        );
        assert_eq!(v["duration_s"], 99.0);
        assert_eq!(v["first_ts"], "1700000000.000005000");
    }
}

#[test]
fn reads_standard_input_and_gzip() {
    let bytes = capture(OutputFormat::Pcapng, 40);
    let (code, v, _) = info(&["-"], Some(&bytes));
    assert_eq!((code, v["packets"].as_u64()), (0, Some(40)));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.pcapng.gz");
    std::fs::write(&p, gz.finish().unwrap()).unwrap();
    let (code, v, _) = info(&[p.to_str().unwrap()], None);
    assert_eq!(
        (code, v["packets"].as_u64(), v["compressed"].as_bool()),
        (0, Some(40), Some(true))
    );
}

#[test]
fn truncated_tail_warns_and_corrupt_middle_fails_with_offset_after_reporting() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = capture(OutputFormat::Pcap { nanos: false }, 10);
    let full = bytes.len();
    bytes.truncate(full - 5);
    let t = dir.path().join("trunc.pcap");
    std::fs::write(&t, &bytes).unwrap();
    let (code, v, _) = info(&[t.to_str().unwrap()], None);
    assert_eq!((code, v["packets"].as_u64()), (0, Some(9)));
    assert!(
        v["warnings"][0].as_str().unwrap().contains("truncated"),
        "{v}"
    );

    let mut bytes = capture(OutputFormat::Pcap { nanos: false }, 10);
    // Corrupt the 4th record's captured length: records before it are still counted.
    let mut off = 24;
    for _ in 0..3 {
        let incl = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + incl;
    }
    bytes[off + 8..off + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let c = dir.path().join("corrupt.pcap");
    std::fs::write(&c, &bytes).unwrap();
    let (code, v, _) = info(&[c.to_str().unwrap()], None);
    assert_eq!(code, 2);
    assert_eq!(v["packets"], 3);
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains("corrupt.pcap") && err.contains(&format!("byte offset {off}")),
        "{err}"
    );

    let (code, _, stderr) = info(&["/nonexistent/file.pcap"], None);
    assert_eq!(code, 2, "{stderr}");
}
