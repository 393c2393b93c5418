//! JA4 against the JA4 reference implementation's own output on its capture set
//! (../shared/corpus/ja4, FoxIO-LLC/ja4 at commit 0e54bc83; see its README for what may be
//! used): for every TLS ClientHello the reference lists (`JA4.1`, and `JA4.2` after a
//! HelloRetryRequest), our record of that connection has the same JA4 and SNI, and its ALPN
//! offer is what tshark reads. The reference's Python output (`expected/`) lists no QUIC
//! connection; the JA4 of the three QUIC ClientHellos of these captures comes from the same
//! reference's Rust implementation output (ja4/src/snapshots at that commit), copied below.

mod common;

use common::{analyze, corpus, endpoint, have_tshark, tshark_rows};
use netspectra_tls::{TlsConfig, TlsRecord};
use serde_json::Value;
use std::collections::BTreeMap;

/// (capture, client endpoint, SNI, JA4) of the QUIC ClientHellos, from the reference's Rust
/// snapshots (`q` marker).
const QUIC: &[(&str, &str, &str, &str)] = &[
    (
        "quic-tls-handshake.pcapng",
        "192.168.1.168:59102",
        "www.google.com",
        "q13d0310h3_55b375c5d22e_cd85d2d88918",
    ),
    (
        "quic-with-several-tls-frames.pcapng",
        "192.168.1.168:55906",
        "ogs.google.com",
        "q13d0310h3_55b375c5d22e_cd85d2d88918",
    ),
    (
        "chrome-cloudflare-quic-with-secrets.pcapng",
        "[2001:db8:1::1]:50280",
        "cloudflare-quic.com",
        "q13d0310h3_55b375c5d22e_cd85d2d88918",
    ),
];

fn find<'a>(recs: &'a [TlsRecord], transport: &str, client: &str) -> Option<&'a TlsRecord> {
    recs.iter()
        .find(|r| r.transport == transport && endpoint(&r.src_ip, r.src_port) == client)
}

#[test]
fn ja4_equals_the_reference_on_every_client_hello() {
    let dir = corpus("ja4");
    if !dir.join("expected").is_dir() {
        netspectra_testnet::skip("ja4 reference", "../shared/corpus/ja4 not found");
        return;
    }
    let mut files: Vec<_> = std::fs::read_dir(dir.join("expected"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let (mut checked, mut hellos) = (0, 0);
    let mut problems = Vec::new();
    for json in &files {
        let name = json
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".json", "");
        let cap = dir.join(&name);
        let expected: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        if !expected.iter().any(|e| e.get("JA4.1").is_some()) {
            continue;
        }
        let (recs, _) = analyze(&cap, TlsConfig::default());
        for e in expected.iter().filter(|e| e.get("JA4.1").is_some()) {
            hellos += 1;
            let (src, port) = (e["src"].as_str().unwrap(), e["srcport"].as_str().unwrap());
            let client = if src.contains(':') {
                format!("[{src}]:{port}")
            } else {
                format!("{src}:{port}")
            };
            let Some(r) = find(&recs, "tcp", &client) else {
                problems.push(format!("{name}: no record for {client}"));
                continue;
            };
            let want = e["JA4.1"].as_str().unwrap();
            if r.ja4.as_deref() != Some(want) {
                problems.push(format!("{name} {client}: JA4 {:?} want {want}", r.ja4));
            }
            if let Some(second) = e.get("JA4.2").and_then(Value::as_str) {
                hellos += 1;
                if r.ja4_retry.as_deref() != Some(second) {
                    problems.push(format!(
                        "{name} {client}: second JA4 {:?} want {second}",
                        r.ja4_retry
                    ));
                }
            }
            if r.sni.as_deref() != e.get("domain").and_then(Value::as_str) {
                problems.push(format!(
                    "{name} {client}: SNI {:?} want {:?}",
                    r.sni,
                    e.get("domain")
                ));
            }
            checked += 1;
        }
    }
    for (name, client, sni, ja4) in QUIC {
        let (recs, _) = analyze(&dir.join(name), TlsConfig::default());
        hellos += 1;
        match find(&recs, "quic", client) {
            Some(r) => {
                if r.ja4.as_deref() != Some(*ja4) || r.sni.as_deref() != Some(*sni) {
                    problems.push(format!("{name} {client}: {:?} {:?}", r.ja4, r.sni));
                }
                checked += 1;
            }
            None => problems.push(format!("{name}: no QUIC record for {client}")),
        }
    }
    eprintln!("ja4 reference: {checked} connections, {hellos} ClientHellos compared");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // 160 TLS ClientHellos in 150 connections in expected/, and the three QUIC ones.
    assert_eq!((checked, hellos), (153, 163));
}

/// The ALPN offer implied by JA4 is the offer tshark reads, on every ClientHello of the set.
#[test]
fn alpn_offers_equal_tshark_on_the_reference_captures() {
    let dir = corpus("ja4");
    if !dir.is_dir() || !have_tshark() {
        netspectra_testnet::skip("ja4 alpn", "../shared/corpus/ja4 or tshark missing");
        return;
    }
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !(name.contains(".pcap") || name.ends_with(".cap")) {
            continue;
        }
        let (recs, _) = analyze(&p, TlsConfig::default());
        let mut ours: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for r in &recs {
            if r.client_hellos > 0 {
                ours.insert(
                    (r.transport.to_string(), endpoint(&r.src_ip, r.src_port)),
                    r.alpn_offered.clone(),
                );
            }
        }
        let mut theirs: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (k, v) in tshark_rows(
            &p,
            &[],
            "tls.handshake.type == 1",
            true,
            &["tls.handshake.extensions_alpn_str"],
        ) {
            theirs.entry(k).or_insert(v[0].clone());
        }
        // tshark shows bytes that are not UTF-8 as U+FFFD; we write them as \xNN.
        let norm = |v: &Vec<String>| -> Vec<String> {
            v.iter()
                .map(|s| {
                    if s.contains('\u{fffd}') || s.contains("\\x") {
                        "<binary>".into()
                    } else {
                        s.clone()
                    }
                })
                .collect()
        };
        for (k, v) in &theirs {
            assert_eq!(ours.get(k).map(norm), Some(norm(v)), "{name} {k:?}");
            n += 1;
        }
    }
    assert!(n >= 150, "{n} ClientHellos compared");
}
