//! The generator's TLS, QUIC and DNS additions read back by tshark (an independent parser):
//! every listed TLS ClientHello (over TCP, and inside QUIC Initials that tshark decrypts with
//! the RFC 9001 keys) has the SNI, ALPN offer, cipher list and chosen cipher of the truth, and
//! the DNS counts (UDP, TCP, truncated) equal the truth. Skipped without tshark.

use netspectra_gen::{generate, GenConfig, Mix, Truth};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::Command;

fn have_tshark() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `tshark -T fields` rows (one per frame) of the given fields.
fn rows(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec![
        "-n".to_string(),
        "-r".into(),
        file.display().to_string(),
        "-d".into(),
        "tcp.port==8443,tls".into(),
        "-Y".into(),
        filter.into(),
        "-T".into(),
        "fields".into(),
        "-E".into(),
        "occurrence=a".into(),
    ];
    for f in fields {
        args.push("-e".into());
        args.push(f.to_string());
    }
    let out = Command::new("tshark").args(&args).output().expect("tshark");
    assert!(out.status.success(), "tshark {args:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

fn hex4(v: &[u16]) -> String {
    v.iter()
        .map(|c| format!("0x{c:04x}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn tshark_reads_the_generated_tls_quic_and_dns() {
    if !have_tshark() {
        netspectra_testnet::skip(
            "gen tls/dns oracle",
            "tshark not installed (run scripts/setup.sh)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.pcap");
    let cfg = GenConfig {
        seed: 21,
        packets: Some(15_000),
        dup_share: 0.0,
        mix: Mix::preset("all").unwrap(),
        ..GenConfig::default()
    };
    let t: Truth = generate(&cfg, File::create(&file).unwrap()).unwrap();
    assert!(t.tls.listed && t.dns.listed);
    assert!(
        t.tls.quic_sessions > 20 && t.dns.truncated > 5,
        "{:?}",
        (t.tls.quic_sessions, t.dns.truncated)
    );

    // ClientHellos, keyed by client endpoint and transport.
    let hellos = rows(
        &file,
        "tls.handshake.type == 1",
        &[
            "ip.src",
            "ipv6.src",
            "tcp.srcport",
            "udp.srcport",
            "tls.handshake.extensions_server_name",
            "tls.handshake.extensions_alpn_str",
            "tls.handshake.ciphersuite",
        ],
    );
    let mut got: BTreeMap<(String, String), (String, String, String)> = BTreeMap::new();
    for r in &hellos {
        let ip = if r[0].is_empty() {
            format!("[{}]", r[1])
        } else {
            r[0].clone()
        };
        let (port, transport) = if r[2].is_empty() {
            (&r[3], "quic")
        } else {
            (&r[2], "tcp")
        };
        got.insert(
            (format!("{ip}:{port}"), transport.to_string()),
            (r[4].clone(), r[5].clone(), r[6].clone()),
        );
    }
    assert_eq!(
        got.len(),
        t.tls.list.len(),
        "one ClientHello per listed session"
    );
    for s in &t.tls.list {
        let g = got
            .get(&(s.client.clone(), s.transport.clone()))
            .unwrap_or_else(|| panic!("no ClientHello for {s:?}"));
        assert_eq!(
            g.0,
            s.sni.clone().unwrap_or_default(),
            "SNI of {}",
            s.client
        );
        assert_eq!(g.1, s.alpn_offered.join(","), "ALPN of {}", s.client);
        assert_eq!(g.2, hex4(&s.ciphers_offered), "ciphers of {}", s.client);
    }
    // ServerHellos: the chosen cipher.
    let servers = rows(
        &file,
        "tls.handshake.type == 2",
        &[
            "ip.dst",
            "ipv6.dst",
            "tcp.dstport",
            "udp.dstport",
            "tls.handshake.ciphersuite",
        ],
    );
    let mut chosen = BTreeMap::new();
    for r in &servers {
        let ip = if r[0].is_empty() {
            format!("[{}]", r[1])
        } else {
            r[0].clone()
        };
        let port = if r[2].is_empty() { &r[3] } else { &r[2] };
        chosen.insert(format!("{ip}:{port}"), r[4].clone());
    }
    for s in &t.tls.list {
        assert_eq!(
            chosen.get(&s.client),
            Some(&hex4(&[s.cipher])),
            "cipher of {}",
            s.client
        );
    }

    // DNS over UDP and TCP, truncation.
    let count = |f: &str| rows(&file, f, &["frame.number"]).len() as u64;
    assert_eq!(count("dns.flags.response == 0"), t.dns.queries);
    assert_eq!(count("dns.flags.response == 1"), t.dns.responses);
    assert_eq!(count("tcp && dns.flags.response == 0"), t.dns.tcp_queries);
    assert_eq!(count("tcp && dns.flags.response == 1"), t.dns.tcp_responses);
    assert_eq!(count("dns.flags.truncated == 1"), t.dns.truncated);
    assert_eq!(
        count("quic"),
        count("udp.port == 443"),
        "every UDP/443 datagram is QUIC"
    );
    let v2 = t
        .tls
        .list
        .iter()
        .filter(|s| s.quic_version == Some(0x6b33_43cf))
        .count() as u64;
    assert!(v2 > 0);
    assert_eq!(
        count("quic.version == 0x6b3343cf && tls.handshake.type == 1"),
        v2
    );
    // Nothing malformed.
    assert_eq!(count("_ws.malformed || _ws.expert.severity >= error"), 0);
}
