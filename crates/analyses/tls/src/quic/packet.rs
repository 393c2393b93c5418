//! QUIC long-header packets (RFC 9000 §17.2) and Initial packet protection (RFC 9001 §5,
//! RFC 9369 for version 2): key derivation from the client's Destination Connection ID with
//! HKDF-SHA256, header protection removal with AES-128, payload decryption with AES-128-GCM.

use aes08::cipher::{BlockEncrypt, KeyInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

/// QUIC version 1 (RFC 9000).
pub const V1: u32 = 1;
/// QUIC version 2 (RFC 9369).
pub const V2: u32 = 0x6b33_43cf;

/// Largest connection ID (RFC 9000 §17.2).
pub const MAX_CID: usize = 20;

/// Reads a variable-length integer (RFC 9000 §16); returns it and its length.
#[inline]
pub fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(..len)?;
    let mut v = (first & 0x3f) as u64;
    for &x in &bytes[1..] {
        v = (v << 8) | x as u64;
    }
    Some((v, len))
}

/// Long-header packet types, as numbered by QUIC version 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongType {
    /// Initial.
    Initial,
    /// 0-RTT.
    ZeroRtt,
    /// Handshake.
    Handshake,
    /// Retry.
    Retry,
}

/// The type bits of a long header in `version`.
fn long_type(version: u32, bits: u8) -> LongType {
    let v1_bits = if version == V2 {
        bits.wrapping_sub(1) & 3
    } else {
        bits
    };
    match v1_bits {
        0 => LongType::Initial,
        1 => LongType::ZeroRtt,
        2 => LongType::Handshake,
        _ => LongType::Retry,
    }
}

/// The cleartext parts of a long-header packet.
#[derive(Clone, Copy, Debug)]
pub struct LongHeader<'a> {
    /// Version.
    pub version: u32,
    /// Packet type.
    pub ty: LongType,
    /// Destination connection ID.
    pub dcid: &'a [u8],
    /// Source connection ID.
    pub scid: &'a [u8],
    /// Offset of the (protected) packet number.
    pub pn_at: usize,
    /// Length of the whole packet in the datagram.
    pub len: usize,
}

/// Reads the long header at the start of `d` (a datagram, possibly holding coalesced
/// packets). `None` for a short header, an unsupported version or a cut packet.
pub fn long_header(d: &[u8]) -> Option<LongHeader<'_>> {
    let first = *d.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let version = u32::from_be_bytes(d.get(1..5)?.try_into().ok()?);
    if version != V1 && version != V2 {
        return None;
    }
    let ty = long_type(version, (first >> 4) & 3);
    let mut at = 5;
    let dl = *d.get(at)? as usize;
    if dl > MAX_CID {
        return None;
    }
    let dcid = d.get(at + 1..at + 1 + dl)?;
    at += 1 + dl;
    let sl = *d.get(at)? as usize;
    if sl > MAX_CID {
        return None;
    }
    let scid = d.get(at + 1..at + 1 + sl)?;
    at += 1 + sl;
    if ty == LongType::Retry {
        return Some(LongHeader {
            version,
            ty,
            dcid,
            scid,
            pn_at: at,
            len: d.len(),
        });
    }
    if ty == LongType::Initial {
        let (tl, n) = varint(&d[at..])?;
        at += n + usize::try_from(tl).ok()?;
    }
    let (plen, n) = varint(d.get(at..)?)?;
    at += n;
    let len = at.checked_add(usize::try_from(plen).ok()?)?;
    if len > d.len() || plen < 20 {
        return None;
    }
    Some(LongHeader {
        version,
        ty,
        dcid,
        scid,
        pn_at: at,
        len,
    })
}

/// Keys protecting one direction's Initial packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialKeys {
    key: [u8; 16],
    iv: [u8; 12],
    hp: [u8; 16],
}

/// HKDF-Expand-Label of TLS 1.3 (RFC 8446 §7.1) with an empty context.
fn expand_label(secret: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) {
    let mut info = [0u8; 32];
    let n = 4 + 6 + label.len();
    info[..2].copy_from_slice(&(out.len() as u16).to_be_bytes());
    info[2] = (6 + label.len()) as u8;
    info[3..9].copy_from_slice(b"tls13 ");
    info[9..9 + label.len()].copy_from_slice(label);
    info[9 + label.len()] = 0;
    // Output lengths here (12..32 bytes) are far below HKDF's limit.
    secret.expand(&info[..n], out).expect("HKDF output length");
}

impl InitialKeys {
    /// The Initial keys of `version` for packets sent by the client (`server` false) or the
    /// server, from the client's Destination Connection ID.
    pub fn new(version: u32, dcid: &[u8], server: bool) -> InitialKeys {
        let (salt, key, iv, hp): (&[u8], &[u8], &[u8], &[u8]) = if version == V2 {
            (
                &[
                    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e,
                    0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9,
                ],
                b"quicv2 key",
                b"quicv2 iv",
                b"quicv2 hp",
            )
        } else {
            (
                &[
                    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4,
                    0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
                ],
                b"quic key",
                b"quic iv",
                b"quic hp",
            )
        };
        let initial = Hkdf::<Sha256>::new(Some(salt), dcid);
        let mut secret = [0u8; 32];
        let side: &[u8] = if server { b"server in" } else { b"client in" };
        expand_label(&initial, side, &mut secret);
        let s = Hkdf::<Sha256>::from_prk(&secret).expect("32-byte PRK");
        let mut k = InitialKeys {
            key: [0; 16],
            iv: [0; 12],
            hp: [0; 16],
        };
        expand_label(&s, key, &mut k.key);
        expand_label(&s, iv, &mut k.iv);
        expand_label(&s, hp, &mut k.hp);
        k
    }

    /// Removes the protection of the Initial packet `pkt` (the packet's bytes, header included,
    /// as located by [`long_header`]) into `out` (reused; cleared first): the plaintext frames.
    /// `largest` is the largest packet number seen so far in this direction, for decoding the
    /// truncated packet number. Returns the packet number, or `None` when the packet does not
    /// authenticate with these keys.
    pub fn open(
        &self,
        pkt: &[u8],
        pn_at: usize,
        largest: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Option<u64> {
        // The sample starts 4 bytes after the start of the packet number (RFC 9001 §5.4.2).
        let sample = pkt.get(pn_at + 4..pn_at + 20)?;
        let mut mask = aes08::Block::clone_from_slice(sample);
        aes08::Aes128::new_from_slice(&self.hp)
            .ok()?
            .encrypt_block(&mut mask);
        let first = pkt[0] ^ (mask[0] & 0x0f);
        let pn_len = (first & 3) as usize + 1;
        let body_at = pn_at + pn_len;
        if pkt.len() < body_at + 16 {
            return None;
        }
        let mut truncated = 0u64;
        let mut header = [0u8; 64 + 2 * MAX_CID];
        if body_at > header.len() {
            return None;
        }
        header[..body_at].copy_from_slice(&pkt[..body_at]);
        header[0] = first;
        for i in 0..pn_len {
            let b = pkt[pn_at + i] ^ mask[1 + i];
            header[pn_at + i] = b;
            truncated = (truncated << 8) | b as u64;
        }
        let pn = decode_pn(largest, truncated, pn_len * 8);
        let mut nonce = self.iv;
        for (i, b) in pn.to_be_bytes().iter().enumerate() {
            nonce[4 + i] ^= b;
        }
        let tag_at = pkt.len() - 16;
        out.clear();
        out.extend_from_slice(&pkt[body_at..tag_at]);
        let aead = Aes128Gcm::new_from_slice(&self.key).ok()?;
        aead.decrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &header[..body_at],
            out,
            Tag::from_slice(&pkt[tag_at..]),
        )
        .ok()?;
        Some(pn)
    }
}

/// Packet number decoding (RFC 9000 Appendix A.3).
fn decode_pn(largest: Option<u64>, truncated: u64, bits: usize) -> u64 {
    let expected = largest.map_or(0, |l| l + 1);
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | truncated;
    if candidate + hwin <= expected && candidate < (1 << 62) - win {
        candidate + win
    } else if candidate > expected + hwin && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const DCID: &str = "8394c8f03e515708";

    /// RFC 9001 A.3: the server Initial, which decrypts to an ACK and a CRYPTO frame.
    pub(crate) const SERVER_INITIAL_V1: &str =
        "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a
        5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3
        dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84
        022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4
        2158407dd074ee";

    /// RFC 9369 A.3: the same for version 2.
    pub(crate) const SERVER_INITIAL_V2: &str =
        "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698
        baeea26b91eb761d9b89237bbf872630179153582300 35f7fd3945d88965cf17
        f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2
        c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8
        4bed8521e2e140";

    const SERVER_PAYLOAD: &str = "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739
        88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94
        0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00
        020304";

    #[test]
    fn rfc9001_keys() {
        let c = InitialKeys::new(V1, &hex(DCID), false);
        assert_eq!(c.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(c.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(c.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
        let s = InitialKeys::new(V1, &hex(DCID), true);
        assert_eq!(s.key.to_vec(), hex("cf3a5331653c364c88f0f379b6067e37"));
        assert_eq!(s.iv.to_vec(), hex("0ac1493ca1905853b0bba03e"));
        assert_eq!(s.hp.to_vec(), hex("c206b8d9b9f0f37644430b490eeaa314"));
    }

    #[test]
    fn rfc9369_keys() {
        let c = InitialKeys::new(V2, &hex(DCID), false);
        assert_eq!(c.key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(c.iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(c.hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
        let s = InitialKeys::new(V2, &hex(DCID), true);
        assert_eq!(s.key.to_vec(), hex("82db637861d55e1d011f19ea71d5d2a7"));
        assert_eq!(s.iv.to_vec(), hex("dd13c276499c0249d3310652"));
        assert_eq!(s.hp.to_vec(), hex("edf6d05c83121201b436e16877593c3a"));
    }

    #[test]
    fn server_initials_of_both_rfcs_decrypt() {
        for (v, pkt) in [(V1, SERVER_INITIAL_V1), (V2, SERVER_INITIAL_V2)] {
            let p = hex(pkt);
            let h = long_header(&p).unwrap();
            assert_eq!((h.version, h.ty, h.len), (v, LongType::Initial, p.len()));
            assert_eq!(h.scid, hex("f067a5502a4262b5"));
            let k = InitialKeys::new(v, &hex(DCID), true);
            let mut out = Vec::new();
            assert_eq!(k.open(&p, h.pn_at, None, &mut out), Some(1));
            assert_eq!(out, hex(SERVER_PAYLOAD));
            // The client's keys do not open it; an altered byte does not authenticate.
            let c = InitialKeys::new(v, &hex(DCID), false);
            assert_eq!(c.open(&p, h.pn_at, None, &mut out), None);
            let mut bad = p.clone();
            bad[40] ^= 1;
            assert_eq!(k.open(&bad, h.pn_at, None, &mut out), None);
        }
    }

    #[test]
    fn packet_numbers_and_varints() {
        // RFC 9000 A.3's example.
        assert_eq!(decode_pn(Some(0xa82f30ea), 0x9b32, 16), 0xa82f9b32);
        assert_eq!(decode_pn(None, 2, 32), 2);
        assert_eq!(
            varint(&hex("c2197c5eff14e88c")),
            Some((151_288_809_941_952_652, 8))
        );
        assert_eq!(varint(&hex("9d7f3e7d")), Some((494_878_333, 4)));
        assert_eq!(varint(&hex("7bbd")), Some((15_293, 2)));
        assert_eq!(varint(&hex("25")), Some((37, 1)));
        assert_eq!(varint(&hex("40")), None);
    }
}
