//! QUIC Initial packet protection for generated handshakes (RFC 9001 §5, RFC 9369 for version
//! 2): keys derived from the client's Destination Connection ID, AES-128-GCM payload
//! protection and AES header protection. Checked against both RFCs' sample packets.

use aes08::cipher::{BlockEncrypt, KeyInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

/// QUIC version 1 (RFC 9000).
pub const V1: u32 = 1;
/// QUIC version 2 (RFC 9369).
pub const V2: u32 = 0x6b33_43cf;

/// Keys protecting one direction's Initial packets.
pub(crate) struct InitialKeys {
    key: [u8; 16],
    iv: [u8; 12],
    hp: [u8; 16],
}

/// HKDF-Expand-Label of TLS 1.3 (RFC 8446 §7.1) with an empty context.
fn expand_label(secret: &Hkdf<Sha256>, label: &str, out: &mut [u8]) {
    let mut info = Vec::with_capacity(4 + 6 + label.len());
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label.as_bytes());
    info.push(0);
    // Output lengths here (12..32 bytes) are far below HKDF's limit.
    secret.expand(&info, out).expect("HKDF output length");
}

impl InitialKeys {
    /// The Initial keys of `version` for the client (`server` false) or server side.
    pub fn new(version: u32, dcid: &[u8], server: bool) -> InitialKeys {
        let (salt, prefix): (&[u8], &str) = if version == V2 {
            (
                &[
                    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e,
                    0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9,
                ],
                "quicv2 ",
            )
        } else {
            (
                &[
                    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4,
                    0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
                ],
                "quic ",
            )
        };
        let initial = Hkdf::<Sha256>::new(Some(salt), dcid);
        let mut secret = [0u8; 32];
        expand_label(
            &initial,
            if server { "server in" } else { "client in" },
            &mut secret,
        );
        let side = Hkdf::<Sha256>::from_prk(&secret).expect("32-byte PRK");
        let mut k = InitialKeys {
            key: [0; 16],
            iv: [0; 12],
            hp: [0; 16],
        };
        expand_label(&side, &format!("{prefix}key"), &mut k.key);
        expand_label(&side, &format!("{prefix}iv"), &mut k.iv);
        expand_label(&side, &format!("{prefix}hp"), &mut k.hp);
        k
    }

    /// Protects a long-header packet in place: `pkt` holds the unprotected header, whose
    /// packet number (`pn_len` bytes, value `pn`) ends it at `pn_at + pn_len`, followed by the
    /// plaintext payload. Appends the AEAD tag, then applies header protection.
    pub fn protect(&self, pkt: &mut Vec<u8>, pn_at: usize, pn_len: usize, pn: u64) {
        let hdr_end = pn_at + pn_len;
        let mut nonce = self.iv;
        for (i, b) in pn.to_be_bytes().iter().enumerate() {
            nonce[4 + i] ^= b;
        }
        let aead = Aes128Gcm::new_from_slice(&self.key).expect("16-byte key");
        let (hdr, body) = pkt.split_at_mut(hdr_end);
        let tag = aead
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), hdr, body)
            .expect("payload within AES-GCM limits");
        pkt.extend_from_slice(&tag);
        // The sample starts 4 bytes after the start of the packet number.
        let mut sample = aes08::Block::clone_from_slice(&pkt[pn_at + 4..pn_at + 20]);
        aes08::Aes128::new_from_slice(&self.hp)
            .expect("16-byte key")
            .encrypt_block(&mut sample);
        pkt[0] ^= sample[0] & 0x0f;
        for i in 0..pn_len {
            pkt[pn_at + i] ^= sample[1 + i];
        }
    }
}

/// Appends a QUIC variable-length integer (RFC 9000 §16), in the shortest form.
pub(crate) fn put_varint(v: &mut Vec<u8>, x: u64) {
    if x < 1 << 6 {
        v.push(x as u8);
    } else if x < 1 << 14 {
        v.extend_from_slice(&(0x4000 | x as u16).to_be_bytes());
    } else if x < 1 << 30 {
        v.extend_from_slice(&(0x8000_0000 | x as u32).to_be_bytes());
    } else {
        v.extend_from_slice(&(0xc000_0000_0000_0000 | x).to_be_bytes());
    }
}

/// Long-header packet types (RFC 9000 §17.2, RFC 9369 §3.2).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LongType {
    /// Initial.
    Initial,
    /// Handshake.
    Handshake,
}

/// Appends a long-header packet. Initial packets are protected with `keys`; Handshake packets
/// (whose keys come from the TLS handshake) get random-looking bytes from `filler`. `payload`
/// is the plaintext frames, padded with PADDING frames to `min_payload` bytes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn long_packet(
    out: &mut Vec<u8>,
    version: u32,
    ty: LongType,
    dcid: &[u8],
    scid: &[u8],
    pn: u64,
    payload: &[u8],
    min_payload: usize,
    keys: Option<&InitialKeys>,
    filler: &[u8],
) {
    let pn_len = 2usize;
    let bits = match (version == V2, ty) {
        (false, LongType::Initial) => 0,
        (false, LongType::Handshake) => 2,
        (true, LongType::Initial) => 1,
        (true, LongType::Handshake) => 3,
    };
    let mut pkt = Vec::with_capacity(64 + payload.len().max(min_payload) + 16);
    pkt.push(0xc0 | bits << 4 | (pn_len as u8 - 1));
    pkt.extend_from_slice(&version.to_be_bytes());
    pkt.push(dcid.len() as u8);
    pkt.extend_from_slice(dcid);
    pkt.push(scid.len() as u8);
    pkt.extend_from_slice(scid);
    if ty == LongType::Initial {
        put_varint(&mut pkt, 0); // no token
    }
    let body = payload.len().max(min_payload);
    put_varint(&mut pkt, (pn_len + body + 16) as u64);
    let pn_at = pkt.len();
    pkt.extend_from_slice(&(pn as u16).to_be_bytes());
    match (ty, keys) {
        (LongType::Initial, Some(k)) => {
            pkt.extend_from_slice(payload);
            pkt.resize(pn_at + pn_len + body, 0);
            k.protect(&mut pkt, pn_at, pn_len, pn);
        }
        _ => {
            let n = body + 16;
            let mut i = 0;
            while i < n {
                let m = (n - i).min(filler.len());
                pkt.extend_from_slice(&filler[..m]);
                i += m;
            }
        }
    }
    out.extend_from_slice(&pkt);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const DCID: &str = "8394c8f03e515708";

    /// The CRYPTO frame of RFC 9001 A.2 (and RFC 9369 A.2).
    const CLIENT_CRYPTO: &str = "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868
        04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578
        616d706c652e636f6dff01000100000a00080006001d00170018001000070005
        04616c706e0005000501000000000033002600 24001d00209370b2c9caa47fba
        baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400
        0d0010000e0403050306030203080408050806002d00020101001c0002400100
        3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000
        75300901100f088394c8f03e51570806048000ffff";

    /// RFC 9001 A.2: protect the client Initial (4-byte packet number 2) and compare.
    fn protect_client(version: u32, header: &str, expect_prefix: &str, expect_suffix: &str) {
        let k = InitialKeys::new(version, &hex(DCID), false);
        let mut pkt = hex(header);
        let pn_at = pkt.len() - 4;
        pkt.extend_from_slice(&hex(CLIENT_CRYPTO));
        pkt.resize(pn_at + 4 + 1162, 0);
        k.protect(&mut pkt, pn_at, 4, 2);
        assert_eq!(pkt.len(), 1200);
        assert_eq!(pkt[..32], hex(expect_prefix)[..]);
        assert_eq!(pkt[1200 - 16..], hex(expect_suffix)[..]);
    }

    #[test]
    fn rfc9001_appendix_a_keys_and_packets() {
        let c = InitialKeys::new(V1, &hex(DCID), false);
        assert_eq!(c.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(c.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(c.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
        let s = InitialKeys::new(V1, &hex(DCID), true);
        assert_eq!(s.key.to_vec(), hex("cf3a5331653c364c88f0f379b6067e37"));
        assert_eq!(s.iv.to_vec(), hex("0ac1493ca1905853b0bba03e"));
        assert_eq!(s.hp.to_vec(), hex("c206b8d9b9f0f37644430b490eeaa314"));
        protect_client(
            V1,
            "c300000001088394c8f03e5157080000449e00000002",
            "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11",
            "e221af44860018ab0856972e194cd934",
        );
        // A.3: the server Initial, 2-byte packet number 1.
        let mut pkt = hex("c1000000010008f067a5502a4262b50040750001");
        let pn_at = pkt.len() - 2;
        pkt.extend_from_slice(&hex(
            "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739
             88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94
             0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00
             020304",
        ));
        s.protect(&mut pkt, pn_at, 2, 1);
        assert_eq!(
            pkt,
            hex(
                "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a
                 5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3
                 dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84
                 022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4
                 2158407dd074ee"
            )
        );
    }

    #[test]
    fn rfc9369_appendix_a_keys_and_packets() {
        let c = InitialKeys::new(V2, &hex(DCID), false);
        assert_eq!(c.key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(c.iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(c.hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
        let s = InitialKeys::new(V2, &hex(DCID), true);
        assert_eq!(s.key.to_vec(), hex("82db637861d55e1d011f19ea71d5d2a7"));
        assert_eq!(s.iv.to_vec(), hex("dd13c276499c0249d3310652"));
        assert_eq!(s.hp.to_vec(), hex("edf6d05c83121201b436e16877593c3a"));
        protect_client(
            V2,
            "d36b3343cf088394c8f03e5157080000449e00000002",
            "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485",
            "a18b2faa745b6fe189cf772a9f84cbfc",
        );
    }

    #[test]
    fn varints_use_the_shortest_form() {
        for (x, want) in [
            (37u64, "25"),
            (15293, "7bbd"),
            (494_878_333, "9d7f3e7d"),
            (151_288_809_941_952_652, "c2197c5eff14e88c"),
        ] {
            let mut v = Vec::new();
            put_varint(&mut v, x);
            assert_eq!(v, hex(want), "{x}");
        }
    }
}
