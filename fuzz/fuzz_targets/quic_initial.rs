//! Fuzzes QUIC Initial handling. The input is used twice: as raw datagrams sent to UDP port
//! 443 (long-header parsing, key derivation, header protection, decryption failures), and as
//! the plaintext frames of client and server Initial packets that this target protects with
//! the RFC 9001 keys itself, so that the fuzzer reaches what lies behind a valid AEAD tag:
//! frame parsing, CRYPTO reassembly across packets and the ClientHello/ServerHello readers.
//! Must never panic or hang; the connection table stays within its bound.
#![no_main]

use aes08::cipher::{BlockEncrypt, KeyInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use libfuzzer_sys::fuzz_target;
use netspectra_packet::{decode, DecodeOptions, LinkType, Packet, Timestamp};
use netspectra_tls::quic::packet::{long_header, InitialKeys};
use netspectra_tls::quic::stream::CryptoStream;
use netspectra_tls::{TlsAnalyzer, TlsConfig};
use sha2::Sha256;

const DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

fn udp(client: bool, payload: &[u8]) -> Vec<u8> {
    let (sp, dp) = if client { (51000u16, 443u16) } else { (443, 51000) };
    let (a, b) = if client { ([10, 0, 0, 1], [10, 0, 0, 2]) } else { ([10, 0, 0, 2], [10, 0, 0, 1]) };
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (28 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&a);
    f.extend_from_slice(&b);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn expand(prk: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) {
    let mut info = vec![0, out.len() as u8, (6 + label.len()) as u8];
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    prk.expand(&info, out).unwrap();
}

/// A version 1 Initial (2-byte packet number `pn`) carrying `frames`, protected with the
/// keys of the client (`server` false) or server side, padded to 1200 bytes for the client.
fn initial(server: bool, pn: u16, frames: &[u8]) -> Vec<u8> {
    let salt = [
        0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c,
        0xad, 0xcc, 0xbb, 0x7f, 0x0a,
    ];
    let init = Hkdf::<Sha256>::new(Some(&salt), &DCID);
    let mut secret = [0u8; 32];
    expand(&init, if server { b"server in" } else { b"client in" }, &mut secret);
    let s = Hkdf::<Sha256>::from_prk(&secret).unwrap();
    let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
    expand(&s, b"quic key", &mut key);
    expand(&s, b"quic iv", &mut iv);
    expand(&s, b"quic hp", &mut hp);
    let mut body = frames.to_vec();
    if body.len() < 20 {
        body.resize(20, 0);
    }
    if !server && body.len() < 1150 {
        body.resize(1150, 0);
    }
    let mut pkt = vec![0xc1, 0, 0, 0, 1];
    if server {
        pkt.extend_from_slice(&[0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0]);
    } else {
        pkt.push(8);
        pkt.extend_from_slice(&DCID);
        pkt.extend_from_slice(&[0, 0]);
    }
    let len = 2 + body.len() + 16;
    pkt.extend_from_slice(&(0x4000u16 | len as u16).to_be_bytes());
    let pn_at = pkt.len();
    pkt.extend_from_slice(&pn.to_be_bytes());
    let mut nonce = iv;
    nonce[10] ^= (pn >> 8) as u8;
    nonce[11] ^= pn as u8;
    let aead = Aes128Gcm::new_from_slice(&key).unwrap();
    let tag = aead
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), &pkt, &mut body)
        .unwrap();
    pkt.extend_from_slice(&body);
    pkt.extend_from_slice(&tag);
    let mut mask = aes08::Block::clone_from_slice(&pkt[pn_at + 4..pn_at + 20]);
    aes08::Aes128::new_from_slice(&hp).unwrap().encrypt_block(&mut mask);
    pkt[0] ^= mask[0] & 0x0f;
    pkt[pn_at] ^= mask[1];
    pkt[pn_at + 1] ^= mask[2];
    pkt
}

fuzz_target!(|data: &[u8]| {
    // The packet layer on raw bytes.
    if let Some(h) = long_header(data) {
        let k = InitialKeys::new(h.version, h.dcid, false);
        let mut out = Vec::new();
        let _ = k.open(&data[..h.len], h.pn_at, None, &mut out);
    }
    let mut cs = CryptoStream::default();
    for c in data.chunks(7) {
        let off = c.first().copied().unwrap_or(0) as u64 * 13;
        let _ = cs.insert(off, c, 2048);
    }
    let _ = cs.contiguous();

    let mut a = TlsAnalyzer::new(TlsConfig {
        max_quic_connections: 2,
        max_crypto_bytes: 2048,
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
    feed(&mut a, &udp(true, data));
    // The input as frames: split at every 0xff byte into packets, alternating sides.
    for (i, frames) in data.split(|&b| b == 0xff).take(16).enumerate() {
        let server = i % 3 == 1;
        feed(&mut a, &udp(!server, &initial(server, i as u16, frames)));
        assert!(a.quic_connections() <= 2);
    }
    a.expire(Timestamp(t + 3_600_000_000_000));
    a.finish();
    let mut out = Vec::new();
    a.take_records(&mut out);
    assert_eq!(a.quic_connections(), 0);
});
