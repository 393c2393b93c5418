//! Fuzzes the TLS handshake layer: the input is read as a ClientHello and a ServerHello body
//! (with JA3/JA4/JA3S), then, after a ClientHello record header, cut into TCP segments of one
//! connection in both directions (with overlapping sequence ranges, FIN/RST) and fed to
//! `TlsAnalyzer`, which reads records, reassembles handshake messages, certificates (through
//! x509-parser) and alerts. Must never panic or hang, and the tables stay within their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netspectra_packet::{decode, DecodeOptions, LinkType, Packet, Timestamp};
use netspectra_tls::fingerprint::{ja3, ja3s, ja4};
use netspectra_tls::parse::hello::{ClientHello, ServerHello};
use netspectra_tls::{TlsAnalyzer, TlsConfig};

/// An Ethernet + IPv4 + TCP frame around `payload`.
fn frame(client: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (sp, dp) = if client { (50000u16, 443u16) } else { (443, 50000) };
    let (a, b) = if client { ([10, 0, 0, 1], [10, 0, 0, 2]) } else { ([10, 0, 0, 2], [10, 0, 0, 1]) };
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (40 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&a);
    f.extend_from_slice(&b);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fuzz_target!(|data: &[u8]| {
    if let Ok(ch) = ClientHello::parse(data) {
        let _ = (ja3(&ch), ja4(&ch, false), ch.sni(), ch.alpn().count());
    }
    if let Ok(sh) = ServerHello::parse(data) {
        let _ = (ja3s(&sh), sh.negotiated_version(), sh.alpn());
    }

    let mut a = TlsAnalyzer::new(TlsConfig {
        max_connections: 2,
        max_handshake_bytes: 4096,
        ..TlsConfig::default()
    });
    let opts = DecodeOptions { inner: true };
    let mut t = 0i64;
    let mut feed = |a: &mut TlsAnalyzer, f: &[u8]| {
        t += 1_000_000;
        let p = Packet::whole(Timestamp(t), LinkType::ETHERNET, f);
        let v = decode(f, LinkType::ETHERNET, None, &opts);
        a.on_packet(&p, &v);
    };
    // The first client segment starts a ClientHello record so that the connection is tracked.
    let mut first = vec![22, 3, 1, 0x40, 0, 1];
    first.extend_from_slice(&data[..data.len().min(64)]);
    feed(&mut a, &frame(true, 1000, 0x18, &first));
    let mut seq = [1000u32.wrapping_add(first.len() as u32), 9000u32];
    let mut rest = data;
    // Each segment: a control byte (direction, rewind, FIN/RST, length) and its payload.
    while let Some((&ctl, tail)) = rest.split_first() {
        let len = ((ctl as usize & 0x0f) * 97).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let d = (ctl >> 7) as usize;
        let mut s = seq[d];
        if ctl & 0x40 != 0 {
            s = s.wrapping_sub(len as u32 / 2);
        }
        let flags = match ctl & 0x30 {
            0x10 => 0x11,
            0x20 if ctl & 1 == 1 => 0x04,
            _ => 0x18,
        };
        feed(&mut a, &frame(d == 0, s, flags, payload));
        seq[d] = seq[d].max(s.wrapping_add(len as u32));
        assert!(a.connections() <= 2);
    }
    a.expire(Timestamp(t + 86_400_000_000_000));
    a.finish();
    let mut out = Vec::new();
    a.take_records(&mut out);
    assert_eq!(a.connections(), 0);
});
