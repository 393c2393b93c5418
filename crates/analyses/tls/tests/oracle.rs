//! TLS records checked against independent oracles: the generator's truth (every TLS-over-TCP
//! and QUIC handshake of a generated capture, with its certificate, resumption and alert) and
//! tshark (SNI, ALPN offer, JA3, cipher list, negotiated version and cipher, JA3S of every
//! handshake, on generated captures and on the real ones of ../shared/corpus). The deliberate
//! differences are listed in docs/TLS.md and asserted here.

mod common;

use common::{
    analyze, as_shark, corpus, have_tshark, record_key, tshark_handshakes, tshark_rows, Shark,
};
use netspectra_gen::{generate, GenConfig, Mix, Truth};
use netspectra_tls::{TlsConfig, TlsRecord};
use std::collections::BTreeMap;
use std::fs::File;

#[test]
fn generated_captures_equal_the_truth_and_tshark() {
    for (mix, seed) in [("tls-heavy", 7u64), ("all", 8)] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("{mix}.pcap"));
        let cfg = GenConfig {
            seed,
            packets: Some(20_000),
            mix: Mix::preset(mix).unwrap(),
            ..GenConfig::default()
        };
        let t: Truth = generate(&cfg, File::create(&file).unwrap()).unwrap();
        assert!(t.tls.listed && t.tls.quic_sessions > 0);
        let (recs, st) = analyze(&file, TlsConfig::default());
        assert_eq!(st.malformed_total(), 0, "{mix}: {:?}", st.malformed);
        let ours: BTreeMap<(String, String), &TlsRecord> =
            recs.iter().map(|r| (record_key(r), r)).collect();
        assert_eq!(ours.len(), recs.len(), "{mix}: one record per connection");
        assert_eq!(recs.len(), t.tls.list.len(), "{mix}: records");

        // Every handshake of the truth.
        let (mut resumed, mut alerts, mut certs) = (0, 0, 0);
        for s in &t.tls.list {
            let k = (s.transport.clone(), s.client.clone());
            let r = ours
                .get(&k)
                .unwrap_or_else(|| panic!("{mix}: no record for {k:?}"));
            let ctx = format!("{mix} {k:?}");
            assert_eq!(r.sni, s.sni, "{ctx}");
            assert_eq!(r.alpn_offered, s.alpn_offered, "{ctx}");
            assert_eq!(r.alpn, s.alpn, "{ctx}");
            assert_eq!(r.version.as_deref(), Some(s.version.as_str()), "{ctx}");
            assert_eq!(r.cipher, Some(s.cipher), "{ctx}");
            assert_eq!(r.ciphers_offered, s.ciphers_offered, "{ctx}");
            assert_eq!(r.versions_offered, s.versions_offered, "{ctx}");
            assert_eq!(r.extensions, s.extensions, "{ctx}");
            assert_eq!(r.groups, s.groups, "{ctx}");
            assert_eq!(r.sig_algs, s.sig_algs, "{ctx}");
            assert_eq!(r.resumed, s.resumed, "{ctx}");
            assert_eq!(r.vlan, s.vlan, "{ctx}");
            assert_eq!(r.alert_descriptions.first().copied(), s.alert, "{ctx}");
            assert_eq!(r.cert_count, s.cert_count as u16, "{ctx}");
            assert_eq!(r.cert_subjects.first(), s.cert_subject.as_ref(), "{ctx}");
            assert_eq!(r.cert_issuers.first(), s.cert_issuer.as_ref(), "{ctx}");
            assert_eq!(r.cert_serials.first(), s.cert_serial.as_ref(), "{ctx}");
            assert_eq!(r.cert_san_dns, s.cert_san, "{ctx}");
            assert_eq!(r.quic_version, s.quic_version, "{ctx}");
            assert_eq!(r.quic_dcid, s.quic_dcid, "{ctx}");
            assert_eq!(r.quic_scid, s.quic_scid, "{ctx}");
            assert!(!r.partial, "{ctx}: {r:?}");
            assert!(r.ja4.is_some() && r.ja3.is_some() && r.handshake_latency_us.is_some());
            resumed += s.resumed as u32;
            alerts += s.alert.is_some() as u32;
            certs += s.cert_count;
        }
        assert!(
            resumed > 0 && certs > 0,
            "{mix}: the sample covers resumption and certificates"
        );
        if mix == "tls-heavy" {
            assert!(alerts > 0);
        }

        // tshark: the same handshakes, connection for connection.
        if !have_tshark() {
            netspectra_testnet::skip("tls tshark oracle", "tshark not installed");
            continue;
        }
        let theirs = tshark_handshakes(&file, &["-d", "tcp.port==8443,tls"]);
        assert_eq!(theirs.len(), recs.len(), "{mix}: handshakes seen by tshark");
        for (k, want) in &theirs {
            let got = as_shark(
                ours.get(k)
                    .unwrap_or_else(|| panic!("{mix}: no record {k:?}")),
            );
            assert_eq!(&normalize(got, want), want, "{mix} {k:?}");
        }
    }
}

/// Our view in tshark's terms, with the fields tshark does not give for a connection blanked
/// (tshark computes no JA3S for QUIC ServerHellos), and ALPN names that are not text made
/// comparable (tshark shows such bytes as U+FFFD, we write `\xNN`).
fn normalize(mut got: Shark, want: &Shark) -> Shark {
    if want.ja3s.is_empty() {
        got.ja3s.clear();
    }
    let bin = |v: &mut Vec<String>| {
        for s in v {
            if s.contains('\u{fffd}') || s.contains("\\x") {
                *s = "<binary>".into();
            }
        }
    };
    bin(&mut got.alpn);
    got
}

/// How our records deliberately differ from tshark's view on one capture (docs/TLS.md).
enum Known {
    /// TLS found by content where tshark does not decode TLS: a ServerHello (the ClientHello
    /// is not in the capture) after a SOCKS4 exchange on port 9901.
    OnlyOurs,
    /// tshark does not decrypt the client's Initial sent again after Version Negotiation; we
    /// read its ClientHello. The server's fields are equal.
    TsharkMissesClientHello,
}

const KNOWN: &[(&str, Known)] = &[
    ("socks4-https.pcap", Known::OnlyOurs),
    ("quic_vn.pcap", Known::TsharkMissesClientHello),
];

#[test]
fn corpus_handshakes_equal_tshark() {
    let dirs = [corpus("tcpdump-tests"), corpus("ja4")];
    if !dirs[0].is_dir() {
        netspectra_testnet::skip("tls corpus oracle", "../shared/corpus not found");
        return;
    }
    if !have_tshark() {
        netspectra_testnet::skip("tls corpus oracle", "tshark not installed");
        return;
    }
    let mut files = Vec::new();
    for d in &dirs {
        if let Ok(rd) = std::fs::read_dir(d) {
            files.extend(
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file()),
            );
        }
    }
    files.sort();
    let (mut compared, mut handshakes, mut seen_known) = (0, 0, 0);
    let mut problems = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if !(name.contains(".pcap") || name.ends_with(".cap")) {
            continue;
        }
        let (recs, _) = analyze(f, TlsConfig::default());
        if recs.is_empty() && !name.contains("quic") && !name.contains("tls") {
            continue;
        }
        let ours: BTreeMap<_, _> = recs.iter().map(|r| (record_key(r), as_shark(r))).collect();
        let theirs = tshark_handshakes(f, &[]);
        if ours.is_empty() && theirs.is_empty() {
            continue;
        }
        compared += 1;
        handshakes += theirs.len();
        let known = KNOWN.iter().find(|(k, _)| *k == name).map(|(_, k)| k);
        let mut want_all = theirs.clone();
        for w in want_all.values_mut() {
            let alpn = std::mem::take(&mut w.alpn);
            w.alpn = normalize(
                Shark {
                    alpn,
                    ..Shark::default()
                },
                &Shark::default(),
            )
            .alpn;
        }
        match known {
            Some(Known::OnlyOurs) => {
                assert!(theirs.is_empty(), "{name}: tshark decodes it now");
                assert!(recs.iter().all(|r| r.cipher.is_some()), "{name}: {recs:#?}");
                assert!(!recs.is_empty());
                seen_known += 1;
                continue;
            }
            Some(Known::TsharkMissesClientHello) => {
                for (k, want) in &theirs {
                    let got = ours.get(k).expect("record");
                    assert!(
                        want.sni.is_empty() && want.ciphers.is_empty(),
                        "{name}: tshark reads it now"
                    );
                    assert!(!got.sni.is_empty() && !got.ciphers.is_empty());
                    assert_eq!((&got.version, &got.cipher), (&want.version, &want.cipher));
                }
                seen_known += 1;
                continue;
            }
            None => {}
        }
        for (k, want) in &want_all {
            match ours.get(k) {
                Some(got) if &normalize(got.clone(), want) == want => {}
                got => problems.push(format!("{name} {k:?}:\n ours   {got:?}\n tshark {want:?}")),
            }
        }
        for k in ours.keys().filter(|k| !theirs.contains_key(*k)) {
            problems.push(format!("{name} {k:?}: only ours"));
        }
    }
    eprintln!("tls corpus: {compared} files, {handshakes} tshark handshakes");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(seen_known, KNOWN.len(), "every listed difference was seen");
    assert!(handshakes >= 200, "{handshakes}");
}

/// The certificate chains of TLS 1.2 connections: serial numbers, validity and the leaf's DNS
/// names equal to what tshark's X.509 dissector reads, on the generated capture and on every
/// certificate of the corpus.
#[test]
fn certificates_equal_tshark() {
    if !have_tshark() {
        netspectra_testnet::skip("tls certificates", "tshark not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("tls.pcap");
    let cfg = GenConfig {
        seed: 9,
        packets: Some(10_000),
        mix: Mix::preset("tls-heavy").unwrap(),
        ..GenConfig::default()
    };
    generate(&cfg, File::create(&gen).unwrap()).unwrap();
    let mut files = vec![gen];
    if let Ok(rd) = std::fs::read_dir(corpus("ja4")) {
        files.extend(rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| {
            let n = p.to_string_lossy();
            n.contains(".pcap")
        }));
    }
    files.sort();
    let (mut chains, mut decrypted) = (0, 0);
    for f in &files {
        let (recs, _) = analyze(f, TlsConfig::default());
        let ours: BTreeMap<_, _> = recs.iter().map(|r| (record_key(r), r)).collect();
        let rows = tshark_rows(
            f,
            &["-d", "tcp.port==8443,tls"],
            "tls.handshake.type == 11",
            false,
            &["x509af.serialNumber", "x509ce.dNSName", "x509af.utcTime"],
        );
        for (k, v) in rows {
            let r = ours
                .get(&k)
                .unwrap_or_else(|| panic!("{f:?}: no record {k:?}"));
            let ctx = format!("{} {k:?}", f.display());
            if r.version_code.is_some_and(|v| v >= 0x0304) {
                // TLS 1.3 encrypts the certificate: tshark shows it only because the capture
                // embeds the session keys (pcapng decryption secrets), which we do not use.
                assert_eq!(r.cert_count, 0, "{ctx}");
                decrypted += 1;
                continue;
            }
            // tshark's fields also hold the certificates of an OCSP response (CertificateStatus)
            // in the same frame, after the chain: ours are a prefix.
            assert!(
                !r.cert_serials.is_empty() && v[0].starts_with(&r.cert_serials),
                "{ctx}: {:?} {:?}",
                r.cert_serials,
                v[0]
            );
            assert!(
                v[1].starts_with(&r.cert_san_dns),
                "{ctx}: {:?} {:?}",
                r.cert_san_dns,
                v[1]
            );
            // tshark: `2023-06-14 00:00:00 (UTC)`, notBefore then notAfter of each certificate.
            let ours_t: Vec<String> = r
                .cert_not_before
                .iter()
                .zip(&r.cert_not_after)
                .flat_map(|(a, b)| [a, b])
                .map(|t| format!("{} {} (UTC)", &t[..10], &t[11..19]))
                .collect();
            // Dates from 2050 are GeneralizedTime, another tshark field: compared when none is.
            if v[2].len() >= ours_t.len() {
                assert!(v[2].starts_with(&ours_t), "{ctx}: {ours_t:?} {:?}", v[2]);
            }
            chains += 1;
        }
    }
    eprintln!("tls certificates: {chains} chains compared, {decrypted} TLS 1.3 chains only tshark decrypts");
    assert!(chains > 20 && decrypted > 0, "{chains} {decrypted}");
}
