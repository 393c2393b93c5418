//! `netspectra http` on hand-built captures of the cases tshark and Zeek read and a strict
//! parser misses, with tshark's verdict as the oracle where tshark 4.0 (Debian 12) gives one:
//! TCP Fast Open (the request on the SYN), request lines with spaces in the target or without
//! a version (recorded, marked `lenient`), HTTP/0.9, plain HTTP through a CONNECT tunnel;
//! and what stays out of scope by design (docs/HTTP.md): HTTP over UDP (SSDP) and requests
//! quoted inside ICMP errors, which tshark shows and Zeek does not log as HTTP.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

mod common;
#[path = "common/frames.rs"]
mod frames;
use common::have;
use frames::*;
use netspectra_packet::LinkType;

fn records(f: &Path) -> Vec<Value> {
    let o = Command::new(common::BIN)
        .args(["http", f.to_str().unwrap(), "--summary", "none", "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn requests(f: &Path) -> Vec<(String, String, Value)> {
    records(f)
        .into_iter()
        .filter(|r| r["type"] == "request")
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
            (s("method"), s("uri"), r["lenient"].clone())
        })
        .collect()
}

/// tshark's HTTP requests: `(method, uri)`, with `filter` added to `http.request`.
fn tshark_requests(f: &Path, filter: &str) -> Vec<(String, String)> {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(f)
        .args(["-Y", &format!("http.request {filter}"), "-T", "fields"])
        .args(["-e", "http.request.method", "-e", "http.request.uri"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let (m, u) = l.split_once('\t').unwrap_or((l, ""));
            (m.to_string(), u.to_string())
        })
        .collect()
}

fn ethernet(dir: &Path, name: &str, packets: &[Vec<u8>]) -> std::path::PathBuf {
    let p = dir.join(name);
    let frames: Vec<Vec<u8>> = packets.iter().map(|ip| eth(0x0800, ip)).collect();
    write_pcap(&p, LinkType::ETHERNET, &frames);
    p
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn tshark_or_skip() -> bool {
    if !have("tshark", "-v") {
        netspectra_testnet::skip("http edge cases vs tshark", "tshark not installed");
        return false;
    }
    true
}

#[test]
fn request_carried_on_the_syn_tcp_fast_open() {
    if !tshark_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let req = b"GET /tfo HTTP/1.1\r\nHost: t\r\n\r\n";
    let f = ethernet(
        dir.path(),
        "tfo.pcap",
        &tcp_conversation(40001, 80, req, &[(true, OK)]),
    );
    assert_eq!(tshark_requests(&f, ""), [("GET".into(), "/tfo".into())]);
    assert_eq!(requests(&f), [("GET".into(), "/tfo".into(), Value::Null)]);
    let resp: Vec<Value> = records(&f)
        .into_iter()
        .filter(|r| r["type"] == "response")
        .collect();
    assert_eq!((resp.len(), &resp[0]["uri"]), (1, &Value::from("/tfo")));
}

#[test]
fn lenient_request_lines_are_recorded_and_marked() {
    if !tshark_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let segs: [(bool, &[u8]); 4] = [
        (false, b"GET /a b c HTTP/1.1\r\nHost: h\r\n\r\n"),
        (true, OK),
        (false, b"GET /noversion\r\nHost: h\r\n\r\n"),
        (true, OK),
    ];
    let f = ethernet(
        dir.path(),
        "lenient.pcap",
        &tcp_conversation(40002, 80, b"", &segs),
    );
    // tshark takes the target up to the first space ("b c HTTP/1.1" becomes its version).
    let theirs = tshark_requests(&f, "");
    assert_eq!(
        theirs,
        [
            ("GET".into(), "/a".into()),
            ("GET".into(), "/noversion".into())
        ]
    );
    let mine = requests(&f);
    assert_eq!(
        mine,
        [
            ("GET".into(), "/a b c".into(), Value::from("space_in_uri")),
            ("GET".into(), "/noversion".into(), Value::from("no_version")),
        ]
    );
    for ((m, u), (m2, u2, _)) in theirs.iter().zip(&mine) {
        assert_eq!((m, u.as_str()), (m2, u2.split(' ').next().unwrap()));
    }

    // HTTP/0.9: the line alone, the answer a bare body to the close. tshark 4.0 waits for a
    // header block that never comes and shows nothing; Zeek logs it. The capture is the oracle.
    let old = ethernet(
        dir.path(),
        "http09.pcap",
        &tcp_conversation(
            40003,
            80,
            b"",
            &[(false, b"GET /old.html\r\n"), (true, b"<html>hi</html>")],
        ),
    );
    assert_eq!(
        requests(&old),
        [("GET".into(), "/old.html".into(), Value::from("no_version"))]
    );
    assert_eq!(
        records(&old).len(),
        1,
        "no response record for a bare HTTP/0.9 body"
    );
}

#[test]
fn plain_http_inside_a_connect_tunnel() {
    if !tshark_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let segs: [(bool, &[u8]); 4] = [
        (
            false,
            b"CONNECT origin.example:80 HTTP/1.1\r\nHost: origin.example:80\r\n\r\n",
        ),
        (true, b"HTTP/1.1 200 Connection established\r\n\r\n"),
        (
            false,
            b"GET /through HTTP/1.1\r\nHost: origin.example\r\n\r\n",
        ),
        (true, OK),
    ];
    let f = ethernet(
        dir.path(),
        "connect.pcap",
        &tcp_conversation(40004, 3128, b"", &segs),
    );
    // tshark 4.0 finds the CONNECT and shows what goes through the tunnel as data; the request
    // inside is what the capture holds.
    assert_eq!(
        tshark_requests(&f, ""),
        [("CONNECT".into(), "origin.example:80".into())]
    );
    let mine = requests(&f);
    assert_eq!(
        mine,
        [
            ("CONNECT".into(), "origin.example:80".into(), Value::Null),
            ("GET".into(), "/through".into(), Value::Null),
        ]
    );
    let statuses: Vec<Value> = records(&f).iter().map(|r| r["status"].clone()).collect();
    assert_eq!(statuses, [Value::Null, 200.into(), Value::Null, 200.into()]);
}

#[test]
fn http_over_udp_and_inside_icmp_errors_stays_out() {
    if !tshark_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ssdp = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n";
    let search = udp(CLIENT, [239, 255, 255, 250], 50000, 1900, ssdp, true);
    // A router's "port unreachable" quoting a whole request segment.
    let quoted = tcp(
        CLIENT,
        SERVER,
        40005,
        80,
        1,
        1,
        PSH_ACK,
        b"GET /quoted HTTP/1.1\r\nHost: q\r\n\r\n",
    );
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted);
    let f = ethernet(
        dir.path(),
        "out.pcap",
        &[search, ipv4(1, SERVER, CLIENT, &icmp)],
    );
    assert_eq!(
        tshark_requests(&f, "&& udp"),
        [("M-SEARCH".into(), "*".into())],
        "tshark reads SSDP"
    );
    assert_eq!(
        tshark_requests(&f, "&& icmp"),
        [("GET".into(), "/quoted".into())],
        "tshark reads the quoted request"
    );
    assert!(
        records(&f).is_empty(),
        "neither is recorded (TCP streams only)"
    );
}
