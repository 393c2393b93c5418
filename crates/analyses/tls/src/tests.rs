//! Analyzer tests on hand-built frames: a TLS 1.2 handshake with a certificate chain, TLS 1.3
//! with a HelloRetryRequest, any segmentation with duplicates, alerts, bounds and timeouts,
//! hostile bytes, and the QUIC Initials of RFC 9001 / RFC 9369.

use super::*;
use crate::parse::hello::tests::sample_client_hello;
use crate::quic::packet::tests::{hex, SERVER_INITIAL_V1, SERVER_INITIAL_V2};
use crate::quic::vectors::{CLIENT_INITIAL_V1, CLIENT_INITIAL_V2};
use netspectra_packet::{decode, DecodeOptions, LinkType, Packet};
use proptest::prelude::*;

const C: [u8; 4] = [10, 0, 0, 1];
const S: [u8; 4] = [192, 0, 2, 10];

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        proto,
        0,
        0,
    ]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(l4);
    f
}

fn tcp(
    src: [u8; 4],
    sp: u16,
    dst: [u8; 4],
    dp: u16,
    seq: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sp.to_be_bytes());
    t.extend_from_slice(&dp.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    ipv4(src, dst, 6, &t)
}

fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sp.to_be_bytes());
    u.extend_from_slice(&dp.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    ipv4(src, dst, 17, &u)
}

/// A handshake message with its 4-byte header.
fn hs(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![
        ty,
        (body.len() >> 16) as u8,
        (body.len() >> 8) as u8,
        body.len() as u8,
    ];
    v.extend_from_slice(body);
    v
}

/// TLS records of `ctype` carrying `data`, cut into records of at most `max` bytes.
fn records(ctype: u8, data: &[u8], max: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for c in data.chunks(max.max(1)) {
        v.extend_from_slice(&[ctype, 3, 3, (c.len() >> 8) as u8, c.len() as u8]);
        v.extend_from_slice(c);
    }
    v
}

/// A DER TLV.
fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    if body.len() < 128 {
        v.push(body.len() as u8);
    } else if body.len() < 256 {
        v.extend_from_slice(&[0x81, body.len() as u8]);
    } else {
        v.extend_from_slice(&[0x82, (body.len() >> 8) as u8, body.len() as u8]);
    }
    v.extend_from_slice(body);
    v
}

fn der_name(cn: &str) -> Vec<u8> {
    let attr = |oid: u8, tag: u8, val: &str| {
        let mut a = vec![6, 3, 0x55, 4, oid];
        a.extend(der(tag, val.as_bytes()));
        der(0x31, &der(0x30, &a))
    };
    let mut n = attr(6, 0x13, "US");
    n.extend(attr(10, 0x0c, "Test Org"));
    n.extend(attr(3, 0x0c, cn));
    der(0x30, &n)
}

/// A syntactically valid X.509 v3 certificate (signature bytes are not a real signature).
fn cert(cn: &str, issuer: &str, serial: &[u8], san: Option<&str>) -> Vec<u8> {
    let alg = der(0x30, &[6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2]);
    let mut tbs = der(0xa0, &[2, 1, 2]);
    tbs.extend(der(0x02, serial));
    tbs.extend(&alg);
    tbs.extend(der_name(issuer));
    let mut validity = der(0x17, b"240101000000Z");
    validity.extend(der(0x17, b"250101000000Z"));
    tbs.extend(der(0x30, &validity));
    tbs.extend(der_name(cn));
    let mut spki = der(
        0x30,
        &[
            6, 7, 0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1, 6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7,
        ],
    );
    let mut key = vec![0u8, 4];
    key.extend([7u8; 64]);
    spki.extend(der(0x03, &key));
    tbs.extend(der(0x30, &spki));
    if let Some(s) = san {
        let mut ext = vec![6, 3, 0x55, 0x1d, 0x11];
        ext.extend(der(0x04, &der(0x30, &der(0x82, s.as_bytes()))));
        tbs.extend(der(0xa3, &der(0x30, &der(0x30, &ext))));
    }
    let mut c = der(0x30, &tbs);
    c.extend(&alg);
    c.extend(der(0x03, &[0, 0x30, 6, 2, 1, 1, 2, 1, 1]));
    der(0x30, &c)
}

fn server_hello(version13: bool, cipher: u16, sid: &[u8], alpn: Option<&str>) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&[9; 32]);
    b.push(sid.len() as u8);
    b.extend_from_slice(sid);
    b.extend_from_slice(&cipher.to_be_bytes());
    b.push(0);
    let mut e = Vec::new();
    if version13 {
        e.extend_from_slice(&[0, 43, 0, 2, 3, 4]);
    }
    if let Some(a) = alpn {
        e.extend_from_slice(&[
            0,
            16,
            0,
            (a.len() + 3) as u8,
            0,
            (a.len() + 1) as u8,
            a.len() as u8,
        ]);
        e.extend_from_slice(a.as_bytes());
    }
    b.extend_from_slice(&(e.len() as u16).to_be_bytes());
    b.extend_from_slice(&e);
    hs(2, &b)
}

/// The flights (side 0 client, 1 server) of a TLS 1.2 full handshake with a two-certificate
/// chain, application data and a closing alert.
fn tls12_flights() -> Vec<(usize, Vec<u8>)> {
    let hello = records(22, &hs(1, &sample_client_hello()), 16384);
    let mut flight = server_hello(false, 0xc02f, &[5; 32], Some("h2"));
    let leaf = cert(
        "www.example.com",
        "Test CA",
        &[0x01, 0x02, 0x03, 0x04],
        Some("www.example.com"),
    );
    let ca = cert("Test CA", "Test Root", &[0x42], None);
    let mut list = Vec::new();
    for c in [&leaf, &ca] {
        list.extend_from_slice(&[(c.len() >> 16) as u8, (c.len() >> 8) as u8, c.len() as u8]);
        list.extend_from_slice(c);
    }
    let mut body = vec![
        (list.len() >> 16) as u8,
        (list.len() >> 8) as u8,
        list.len() as u8,
    ];
    body.extend(list);
    flight.extend(hs(11, &body));
    flight.extend(hs(14, &[]));
    // The server's handshake flight in records of 300 bytes: messages span records.
    let server1 = records(22, &flight, 300);
    let mut client2 = records(22, &hs(16, &[0; 66]), 16384);
    client2.extend(records(20, &[1], 16));
    client2.extend(records(22, &[0xaa; 40], 16384));
    let mut server2 = records(20, &[1], 16);
    server2.extend(records(22, &[0xbb; 40], 16384));
    let client3 = records(23, &[0xcc; 500], 16384);
    let server3 = records(23, &[0xdd; 3000], 1400);
    let client4 = records(21, &[0xee; 26], 16384);
    vec![
        (0, hello),
        (1, server1),
        (0, client2),
        (1, server2),
        (0, client3),
        (1, server3),
        (0, client4),
    ]
}

struct Run {
    a: TlsAnalyzer,
    t: i64,
}

impl Run {
    fn new(cfg: TlsConfig) -> Self {
        Run {
            a: TlsAnalyzer::new(cfg),
            t: 1_700_000_000_000_000_000,
        }
    }

    fn feed(&mut self, frame: &[u8]) {
        self.t += 1_000_000;
        let p = Packet::whole(Timestamp(self.t), LinkType::ETHERNET, frame);
        let v = decode(
            frame,
            LinkType::ETHERNET,
            None,
            &DecodeOptions { inner: true },
        );
        self.a.on_packet(&p, &v);
    }

    fn done(mut self) -> (Vec<TlsRecord>, TlsStats) {
        self.a.finish();
        let mut r = Vec::new();
        self.a.take_records(&mut r);
        (r, self.a.stats())
    }
}

/// Sends the flights in order, each cut at `cuts` (positions within the flight), each segment
/// possibly twice; then FINs. The first segment of each side holds at least its first 16
/// bytes: detection needs the record header and handshake type (9 bytes).
fn exchange(r: &mut Run, flights: &[(usize, Vec<u8>)], cuts: &[usize], dup: &[bool]) {
    let (cp, sp) = (50000u16, 8443u16);
    r.feed(&tcp(C, cp, S, sp, 99, 0x02, &[]));
    r.feed(&tcp(S, sp, C, cp, 499, 0x12, &[]));
    let mut off = [100u32, 500u32];
    let mut k = 0;
    for (side, data) in flights {
        let mut pts: Vec<usize> = cuts
            .iter()
            .map(|c| c % (data.len() + 1))
            .filter(|&c| c >= 16)
            .collect();
        pts.push(0);
        pts.push(data.len());
        pts.sort();
        pts.dedup();
        for w in pts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let seq = off[*side] + a as u32;
            let f = if *side == 0 {
                tcp(C, cp, S, sp, seq, 0x18, &data[a..b])
            } else {
                tcp(S, sp, C, cp, seq, 0x18, &data[a..b])
            };
            r.feed(&f);
            if dup.get(k).copied().unwrap_or(false) {
                r.feed(&f);
            }
            k += 1;
        }
        off[*side] += data.len() as u32;
    }
    r.feed(&tcp(C, cp, S, sp, off[0], 0x11, &[]));
    r.feed(&tcp(S, sp, C, cp, off[1], 0x11, &[]));
}

#[test]
fn tls12_handshake_fields() {
    let mut r = Run::new(TlsConfig::default());
    exchange(&mut r, &tls12_flights(), &[], &[]);
    let (recs, st) = r.done();
    assert_eq!(recs.len(), 1);
    let x = &recs[0];
    assert_eq!((x.transport, x.src_port, x.dst_port), ("tcp", 50000, 8443));
    assert_eq!(x.sni.as_deref(), Some("example.com"));
    assert_eq!(x.alpn_offered, ["h2", "http/1.1"]);
    assert_eq!(x.alpn.as_deref(), Some("h2"));
    assert_eq!(x.version.as_deref(), Some("TLS 1.2"));
    assert_eq!(
        (x.cipher, x.cipher_name),
        (Some(0xc02f), Some("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"))
    );
    assert_eq!(x.ciphers_offered, [0x0a0a, 0x1301, 0xc02f, 0x002f]);
    assert_eq!(x.versions_offered, [0x3a3a, 0x0304]);
    assert_eq!(x.groups, [0x2a2a, 0x1d, 0x17]);
    assert_eq!(x.sig_algs, [0x0403, 0x0804]);
    assert!(x.ja4.as_deref().unwrap().starts_with("t13d0306h2_"));
    assert_eq!(x.ja3.as_ref().map(String::len), Some(32));
    assert_eq!(x.cert_count, 2);
    assert_eq!(
        x.cert_subjects,
        [
            "C=US, O=Test Org, CN=www.example.com",
            "C=US, O=Test Org, CN=Test CA"
        ]
    );
    assert_eq!(x.cert_issuers[0], "C=US, O=Test Org, CN=Test CA");
    assert_eq!(x.cert_serials, ["01020304", "42"]);
    assert_eq!(x.cert_not_before[0], "2024-01-01T00:00:00Z");
    assert_eq!(x.cert_not_after[0], "2025-01-01T00:00:00Z");
    assert_eq!(x.cert_san_dns, ["www.example.com"]);
    assert_eq!(x.handshake_latency_us, Some(1000));
    assert!(!x.resumed && x.established && !x.partial, "{x:?}");
    assert_eq!(
        x.encrypted_alerts, 1,
        "the closing alert after ChangeCipherSpec"
    );
    assert!(x.alert_levels.is_empty());
    assert_eq!(st.malformed_total(), 0, "{:?}", st.malformed);
    let json = serde_json::to_value(x).unwrap();
    assert!(
        json.as_object().unwrap().values().all(|v| !v.is_object()),
        "flat record"
    );
}

proptest! {
    /// Any segmentation, with duplicated segments, gives the same record.
    #[test]
    fn segmentation_and_duplicates_do_not_change_the_record(
        cuts in proptest::collection::vec(0usize..6000, 0..40),
        dup in proptest::collection::vec(any::<bool>(), 0..60),
    ) {
        let fl = tls12_flights();
        let mut r = Run::new(TlsConfig::default());
        exchange(&mut r, &fl, &[], &[]);
        let (want, _) = r.done();
        let mut r = Run::new(TlsConfig::default());
        exchange(&mut r, &fl, &cuts, &dup);
        let (got, st) = r.done();
        let strip = |mut v: Vec<TlsRecord>| { for x in &mut v { x.ts = Timestamp(0); x.handshake_latency_us = None; } v };
        prop_assert_eq!(strip(got), strip(want));
        prop_assert_eq!(st.malformed_total(), 0);
    }

    /// Arbitrary bytes after a valid record start: no panic, tables bounded.
    #[test]
    fn arbitrary_bytes(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 1..12)) {
        let mut r = Run::new(TlsConfig { max_connections: 2, max_quic_connections: 2, ..TlsConfig::default() });
        let mut seq = 1u32;
        for (i, ch) in chunks.iter().enumerate() {
            let mut p = vec![22, 3, 1, 1, 0, 1];
            p.extend_from_slice(ch);
            let port = 1000 + (i % 3) as u16;
            r.feed(&tcp(C, port, S, 443, seq, 0x18, &p));
            r.feed(&tcp(S, 443, C, port, seq, 0x18, ch));
            seq = seq.wrapping_add(p.len() as u32);
            let mut q = vec![0xc0, 0, 0, 0, 1, 8];
            q.extend_from_slice(ch);
            q.resize(1200, 0);
            r.feed(&udp(C, port, S, 443, &q));
            prop_assert!(r.a.connections() <= 2 && r.a.quic_connections() <= 2);
        }
        r.done();
    }
}

#[test]
fn tls13_retry_request_and_two_client_hellos() {
    let c1 = records(22, &hs(1, &sample_client_hello()), 16384);
    let mut s1 = {
        let mut b = vec![3, 3];
        b.extend_from_slice(&crate::parse::hello::HRR_RANDOM);
        b.extend_from_slice(&[0, 0x13, 0x01, 0, 0, 6, 0, 43, 0, 2, 3, 4]);
        records(22, &hs(2, &b), 16384)
    };
    // Compatibility mode: ChangeCipherSpec after the HelloRetryRequest and before the second
    // ClientHello; the hellos after them are still in clear.
    s1.extend(records(20, &[1], 16));
    // The second ClientHello without GREASE in front of the ciphers.
    let mut second = sample_client_hello();
    second[37] = 0x13;
    second[38] = 0x02;
    let mut c2 = records(20, &[1], 16);
    c2.extend(records(22, &hs(1, &second), 16384));
    let mut s2 = records(22, &server_hello(true, 0x1301, &[], None), 16384);
    s2.extend(records(23, &[1; 200], 16384));
    let c3 = records(23, &[2; 60], 16384);
    let flights = vec![(0, c1), (1, s1), (0, c2), (1, s2), (0, c3)];
    let mut r = Run::new(TlsConfig::default());
    exchange(&mut r, &flights, &[], &[]);
    let (recs, st) = r.done();
    let x = &recs[0];
    assert!(x.hello_retry);
    assert_eq!(x.client_hellos, 2);
    assert!(x.ja4_retry.is_some() && x.ja4_retry != x.ja4, "{x:?}");
    assert_eq!(x.version.as_deref(), Some("TLS 1.3"));
    assert_eq!(x.cipher, Some(0x1301));
    assert!(x.established);
    assert_eq!(st.server_hellos, 2);
}

#[test]
fn plaintext_alert_is_recorded_and_large_hello_is_bounded() {
    let flights = vec![
        (0, records(22, &hs(1, &sample_client_hello()), 16384)),
        (0, records(21, &[2, 40], 16)),
        (1, records(21, &[2, 70], 16)),
    ];
    let mut r = Run::new(TlsConfig::default());
    exchange(&mut r, &flights, &[30], &[]);
    let (recs, st) = r.done();
    let x = &recs[0];
    assert_eq!(x.alert_senders, ["client", "server"]);
    assert_eq!(x.alert_descriptions, [40, 70]);
    assert_eq!(x.alert_levels, [2, 2]);
    assert!(x.partial, "no ServerHello");
    assert_eq!(st.alerts, 2);

    // A ClientHello of ~3 KB (a long padding extension) over a 1 KiB bound.
    let mut big = sample_client_hello();
    let mut e = vec![0u8, 21, 0x0b, 0xb8];
    e.resize(4 + 3000, 0);
    big.extend_from_slice(&e);
    // Fix the extensions length (it sits right after the compression methods).
    let at = 2 + 32 + 1 + 2 + 8 + 2;
    let old = u16::from_be_bytes([big[at], big[at + 1]]) as usize;
    big[at..at + 2].copy_from_slice(&((old + e.len()) as u16).to_be_bytes());
    let mut r = Run::new(TlsConfig {
        max_handshake_bytes: 1024,
        ..TlsConfig::default()
    });
    let flights = vec![
        (0, records(22, &hs(1, &big), 1000)),
        (
            1,
            records(22, &server_hello(false, 0x002f, &[], None), 16384),
        ),
    ];
    exchange(&mut r, &flights, &[500, 1500], &[]);
    let (recs, st) = r.done();
    assert_eq!(st.malformed.get(&Malformed::HandshakeTooLarge), Some(&1));
    assert!(recs[0].partial && recs[0].ja4.is_none());
    assert_eq!(
        recs[0].cipher,
        Some(0x002f),
        "the ServerHello after it is still read"
    );
}

#[test]
fn non_tls_bytes_after_a_hello_lose_the_framing() {
    let mut c = records(22, &hs(1, &sample_client_hello()), 16384);
    c.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let mut r = Run::new(TlsConfig::default());
    exchange(&mut r, &[(0, c)], &[], &[]);
    let (recs, st) = r.done();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].malformed, Some("bad_record"));
    assert_eq!(st.malformed.get(&Malformed::BadRecord), Some(&1));
}

#[test]
fn table_bound_and_idle_timeout() {
    let mut r = Run::new(TlsConfig {
        max_connections: 3,
        ..TlsConfig::default()
    });
    let hello = records(22, &hs(1, &sample_client_hello()), 16384);
    for i in 0..5u16 {
        r.feed(&tcp(C, 40000 + i, S, 443, 1, 0x18, &hello));
    }
    assert_eq!(r.a.connections(), 3);
    assert_eq!(r.a.records().len(), 2, "two evicted and emitted");
    let t = r.t;
    r.a.expire(Timestamp(t + 299_000_000_000));
    assert_eq!(r.a.records().len(), 2);
    r.a.expire(Timestamp(t + 301_000_000_000));
    assert_eq!(r.a.records().len(), 5);
    assert_eq!(r.a.connections(), 0);
    let (_, st) = r.done();
    assert_eq!((st.evicted, st.timed_out), (2, 3));
}

#[test]
fn name_key_hides_sni_and_certificate_names() {
    let mut r = Run::new(TlsConfig::default().with_name_key([7; 32]));
    exchange(&mut r, &tls12_flights(), &[], &[]);
    let (recs, _) = r.done();
    let x = &recs[0];
    assert_eq!(
        x.sni.as_deref(),
        Some(NameKey::new([7; 32]).token(b"example.com").as_str())
    );
    assert!(x
        .cert_subjects
        .iter()
        .chain(&x.cert_san_dns)
        .all(|n| !n.contains("example")));
    let mut y = x.clone();
    y.anonymize_addresses(&mut |_| "10.9.9.9".parse().unwrap());
    assert_ne!(y.community_id, x.community_id);
}

/// The RFC 9001 / RFC 9369 client and server Initials as one QUIC connection.
fn quic_rfc(client: &str, server: &str) -> (Vec<TlsRecord>, TlsStats) {
    let mut r = Run::new(TlsConfig::default());
    r.feed(&udp(C, 51000, S, 443, &hex(client)));
    r.feed(&udp(S, 443, C, 51000, &hex(server)));
    r.done()
}

#[test]
fn quic_initials_of_rfc9001_and_rfc9369() {
    for (v, c, s) in [
        (1u32, CLIENT_INITIAL_V1, SERVER_INITIAL_V1),
        (0x6b33_43cf, CLIENT_INITIAL_V2, SERVER_INITIAL_V2),
    ] {
        let (recs, st) = quic_rfc(c, s);
        assert_eq!(recs.len(), 1, "{v:#x}");
        let x = &recs[0];
        assert_eq!(x.transport, "quic");
        assert_eq!(x.quic_version, Some(v));
        assert_eq!(x.quic_dcid.as_deref(), Some("8394c8f03e515708"));
        assert_eq!(x.quic_scid.as_deref(), Some(""));
        assert_eq!(x.quic_server_scid.as_deref(), Some("f067a5502a4262b5"));
        assert_eq!(x.sni.as_deref(), Some("example.com"));
        assert_eq!(x.alpn_offered, ["alpn"]);
        assert_eq!(x.ciphers_offered, [0x1301, 0x1302]);
        assert_eq!(x.version.as_deref(), Some("TLS 1.3"));
        assert_eq!(x.cipher, Some(0x1301));
        assert!(
            x.ja4.as_deref().unwrap().starts_with("q13d0211an_"),
            "{:?}",
            x.ja4
        );
        assert!(!x.partial);
        assert_eq!(st.quic_initials, 2);
        assert_eq!(st.malformed_total(), 0);
    }
}

#[test]
fn quic_needs_a_padded_client_initial_and_wrong_keys_are_counted() {
    // A client Initial cut below 1200 bytes does not open a connection.
    let c = hex(CLIENT_INITIAL_V1);
    let mut r = Run::new(TlsConfig::default());
    r.feed(&udp(C, 51000, S, 443, &c[..1100]));
    assert_eq!(r.a.quic_connections(), 0);
    // An altered byte in the protected payload: opened, not decrypted.
    let mut bad = c.clone();
    bad[600] ^= 0x40;
    r.feed(&udp(C, 51000, S, 443, &bad));
    let (recs, st) = r.done();
    assert_eq!(recs.len(), 1);
    assert!(recs[0].partial && recs[0].sni.is_none());
    assert_eq!(st.malformed.get(&Malformed::QuicDecrypt), Some(&1));
}
