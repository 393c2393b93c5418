//! Keyed name tokens for sharing records without the names: a name becomes the first 16 bytes
//! of HMAC-SHA256(key, lower-case name) in hex. `netspectra-dns` uses the same construction for
//! query names, so the same key gives the same token for a name in both and records still join
//! on it; without the key a name can be neither recovered nor confirmed by guessing.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A 32-byte key for name tokens.
#[derive(Clone)]
pub struct NameKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for NameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("NameKey(..)")
    }
}

impl NameKey {
    /// A key for tokens.
    pub fn new(key: [u8; 32]) -> Self {
        NameKey {
            // HMAC accepts keys of any length; 32 bytes cannot fail.
            mac: Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length"),
        }
    }

    /// The token of a name (compared without regard to ASCII case).
    pub fn token(&self, name: &[u8]) -> String {
        let mut m = self.mac.clone();
        for chunk in name.chunks(64) {
            let mut lower = [0u8; 64];
            for (d, s) in lower.iter_mut().zip(chunk) {
                *d = s.to_ascii_lowercase();
            }
            m.update(&lower[..chunk.len()]);
        }
        let tag = m.finalize().into_bytes();
        let mut out = String::with_capacity(32);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for b in &tag[..16] {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same key and name give the token netspectra-dns gives (its test pins the same
    /// value, computed independently with Python's hmac module), whatever the case.
    #[test]
    fn tokens_match_the_dns_crate_and_ignore_case() {
        let k = NameKey::new([7; 32]);
        let pinned = "2a03ff158de2c3272ea5b9313a9fe9d0";
        assert_eq!(k.token(b"WWW.Example.com"), pinned);
        assert_eq!(k.token(b"www.example.com"), pinned);
        assert_ne!(NameKey::new([8; 32]).token(b"www.example.com"), pinned);
    }
}
