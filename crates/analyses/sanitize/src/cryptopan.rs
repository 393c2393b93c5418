//! Keyed prefix-preserving address anonymization: Crypto-PAn (Xu, Fan, Ammar, Moon, 2002), built
//! on AES-128 as the pseudo-random function, for IPv4 and IPv6.
//!
//! Bit `i` of the output is bit `i` of the input XOR the first bit of
//! `AES(key, first i input bits || remaining bits of the encrypted pad)`. The blocks for all bit
//! positions depend only on the input, so they are encrypted together in one call (AES-NI
//! pipelines them).

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Block};

/// Length of a Crypto-PAn key: 16 bytes of AES key followed by 16 bytes of pad.
pub const KEY_LEN: usize = 32;

/// A Crypto-PAn instance for one key.
#[derive(Clone)]
pub struct CryptoPan {
    cipher: Aes128,
    /// The second key half encrypted with the first: the bits that fill each block.
    pad: [u8; 16],
}

impl std::fmt::Debug for CryptoPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("CryptoPan { .. }")
    }
}

impl CryptoPan {
    /// Builds the instance from a 32-byte key (AES key, then pad), as the reference code does.
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        let mut k = [0u8; 16];
        k.copy_from_slice(&key[..16]);
        let cipher = Aes128::new(&k.into());
        let mut pad = Block::default();
        pad.copy_from_slice(&key[16..]);
        cipher.encrypt_block(&mut pad);
        let mut p = [0u8; 16];
        p.copy_from_slice(&pad);
        CryptoPan { cipher, pad: p }
    }

    /// Encrypts one arbitrary 16-byte block with the instance's AES key (used for MAC mapping).
    pub fn prf(&self, input: [u8; 16]) -> [u8; 16] {
        let mut b = Block::from(input);
        self.cipher.encrypt_block(&mut b);
        b.into()
    }

    /// Anonymizes an IPv4 address given as a big-endian `u32`.
    pub fn anonymize_v4(&self, addr: u32) -> u32 {
        let pad4 = u32::from_be_bytes([self.pad[0], self.pad[1], self.pad[2], self.pad[3]]);
        let mut blocks = [Block::default(); 32];
        for (i, b) in blocks.iter_mut().enumerate() {
            // The first `i` bits come from the address, the rest from the pad.
            let keep = if i == 0 { 0 } else { u32::MAX << (32 - i) };
            let v = (addr & keep) | (pad4 & !keep);
            b.copy_from_slice(&self.pad);
            b[..4].copy_from_slice(&v.to_be_bytes());
        }
        self.cipher.encrypt_blocks(&mut blocks);
        let mut otp = 0u32;
        for (i, b) in blocks.iter().enumerate() {
            otp |= ((b[0] >> 7) as u32) << (31 - i);
        }
        addr ^ otp
    }

    /// Anonymizes an IPv6 address given as a big-endian `u128`.
    pub fn anonymize_v6(&self, addr: u128) -> u128 {
        let pad = u128::from_be_bytes(self.pad);
        let mut blocks = [Block::default(); 128];
        for (i, b) in blocks.iter_mut().enumerate() {
            let keep = if i == 0 { 0 } else { u128::MAX << (128 - i) };
            let v = (addr & keep) | (pad & !keep);
            b.copy_from_slice(&v.to_be_bytes());
        }
        self.cipher.encrypt_blocks(&mut blocks);
        let mut otp = 0u128;
        for (i, b) in blocks.iter().enumerate() {
            otp |= ((b[0] >> 7) as u128) << (127 - i);
        }
        addr ^ otp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The key of the Crypto-PAn paper's sample run.
    const PAPER_KEY: [u8; 32] = [
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131,
        121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
    ];

    fn v4(cp: &CryptoPan, a: &str) -> String {
        let a: Ipv4Addr = a.parse().unwrap();
        Ipv4Addr::from(cp.anonymize_v4(u32::from(a))).to_string()
    }

    fn v6(cp: &CryptoPan, a: &str) -> String {
        let a: Ipv6Addr = a.parse().unwrap();
        Ipv6Addr::from(cp.anonymize_v6(u128::from(a))).to_string()
    }

    /// Known answers: the first four from the reference implementation's sample output, all of
    /// them checked against the independent Python implementation `yacryptopan` 1.0.
    #[test]
    fn known_answers_v4() {
        let cp = CryptoPan::new(&PAPER_KEY);
        for (i, o) in [
            ("128.11.68.132", "135.242.180.132"),
            ("129.118.74.4", "134.136.186.123"),
            ("130.132.252.244", "133.68.164.234"),
            ("141.223.7.43", "141.167.8.160"),
            ("141.233.145.108", "141.129.237.235"),
            ("152.163.7.121", "151.140.248.186"),
            ("156.29.3.236", "147.225.12.42"),
            ("165.247.96.84", "162.9.99.234"),
            ("166.107.77.190", "160.132.178.185"),
            ("192.102.249.13", "252.138.62.131"),
            ("192.215.32.125", "252.43.47.189"),
            ("193.131.38.39", "253.179.56.40"),
            ("10.0.0.1", "117.15.0.1"),
            ("0.0.0.0", "120.255.240.1"),
            ("255.255.255.255", "206.120.97.255"),
        ] {
            assert_eq!(v4(&cp, i), o, "{i}");
        }
    }

    /// IPv6 answers from `yacryptopan` 1.0 with the same key.
    #[test]
    fn known_answers_v6() {
        let cp = CryptoPan::new(&PAPER_KEY);
        for (i, o) in [
            ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
            ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
            (
                "fe80::1234:5678:9abc:def0",
                "cf7f:c0e:1fc3:da1c:1dab:29e7:9a23:c10c",
            ),
            (
                "2a00:1450:4001:80b::200e",
                "4a30:ebed:a03e:bcc:e1ff:9e0e:170d:dd16",
            ),
        ] {
            assert_eq!(v6(&cp, i), o, "{i}");
        }
    }

    proptest! {
        /// Two addresses share exactly as many leading bits after mapping as before.
        #[test]
        fn prefix_preserving_v4(key in any::<[u8; 32]>(), a in any::<u32>(), b in any::<u32>()) {
            let cp = CryptoPan::new(&key);
            let (x, y) = (cp.anonymize_v4(a), cp.anonymize_v4(b));
            prop_assert_eq!((a ^ b).leading_zeros(), (x ^ y).leading_zeros());
        }

        /// Same for IPv6, with pairs forced to share a random-length prefix.
        #[test]
        fn prefix_preserving_v6(key in any::<[u8; 32]>(), a in any::<u128>(), b in any::<u128>(), n in 0u32..=128) {
            let cp = CryptoPan::new(&key);
            let keep = if n == 0 { 0 } else { u128::MAX << (128 - n) };
            let b = (a & keep) | (b & !keep);
            let (x, y) = (cp.anonymize_v6(a), cp.anonymize_v6(b));
            prop_assert_eq!((a ^ b).leading_zeros(), (x ^ y).leading_zeros());
        }

        /// Pairs sharing a chosen prefix length (random pairs almost never share a long one).
        #[test]
        fn prefix_preserving_v4_long(key in any::<[u8; 32]>(), a in any::<u32>(), b in any::<u32>(), n in 0u32..=32) {
            let cp = CryptoPan::new(&key);
            let keep = if n == 0 { 0 } else { u32::MAX << (32 - n) };
            let b = (a & keep) | (b & !keep);
            let (x, y) = (cp.anonymize_v4(a), cp.anonymize_v4(b));
            prop_assert_eq!((a ^ b).leading_zeros(), (x ^ y).leading_zeros());
        }
    }
}
