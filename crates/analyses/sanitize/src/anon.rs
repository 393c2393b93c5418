//! Address mapping policy around Crypto-PAn: special ranges kept, optional truncation, MAC
//! mapping, and bounded direct-mapped caches in front (an address recurs millions of times and
//! Crypto-PAn costs one AES block per address bit).

use crate::cryptopan::{CryptoPan, KEY_LEN};
use serde::{Deserialize, Serialize};

/// Which addresses are left as they are and how the rest are mapped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnonPolicy {
    /// Keep RFC 1918 (10/8, 172.16/12, 192.168/16), IPv6 ULA (fc00::/7) and link-local
    /// (169.254/16, fe80::/10) addresses.
    pub keep_private: bool,
    /// Keep multicast (224/4, ff00::/8).
    pub keep_multicast: bool,
    /// Keep the limited broadcast 255.255.255.255.
    pub keep_broadcast: bool,
    /// Keep loopback (127/8, ::1).
    pub keep_loopback: bool,
    /// Instead of encrypting IPv4 addresses, keep this many leading bits and zero the rest.
    pub truncate_v4: Option<u8>,
    /// Instead of encrypting IPv6 addresses, keep this many leading bits and zero the rest.
    pub truncate_v6: Option<u8>,
    /// Map MAC addresses too (Ethernet, ARP, NDP options); group addresses are kept.
    pub mac: bool,
}

impl Default for AnonPolicy {
    fn default() -> Self {
        AnonPolicy {
            keep_private: false,
            keep_multicast: true,
            keep_broadcast: true,
            keep_loopback: true,
            truncate_v4: None,
            truncate_v6: None,
            mac: false,
        }
    }
}

const V4_SLOTS: usize = 1 << 16;
const V6_SLOTS: usize = 1 << 14;
const MAC_SLOTS: usize = 1 << 12;

/// Counters of the anonymizer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AnonStats {
    /// Address fields rewritten (IPv4 and IPv6, all layers).
    pub ip_fields_rewritten: u64,
    /// Address fields left alone by the keep-ranges policy (0.0.0.0 and :: always are).
    pub ip_fields_kept: u64,
    /// Crypto-PAn computations (cache misses): close to the number of distinct addresses.
    pub cryptopan_computed: u64,
    /// MAC address fields rewritten.
    pub mac_fields_rewritten: u64,
}

/// Maps addresses for one worker. Every instance built from the same key maps identically.
pub struct Anonymizer {
    cp: CryptoPan,
    policy: AnonPolicy,
    v4: Vec<(u32, u32)>,
    v4_used: Vec<bool>,
    v6: Vec<(u128, u128)>,
    v6_used: Vec<bool>,
    mac: Vec<([u8; 6], [u8; 6])>,
    mac_used: Vec<bool>,
    /// Counters.
    pub stats: AnonStats,
}

impl std::fmt::Debug for Anonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anonymizer")
            .field("policy", &self.policy)
            .finish()
    }
}

#[inline]
fn slot(h: u64, slots: usize) -> usize {
    // Multiplicative hash: the cache key is attacker-controlled but a collision only costs a
    // recomputation.
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize & (slots - 1)
}

impl Anonymizer {
    /// Builds an anonymizer for a 32-byte key and a policy.
    pub fn new(key: &[u8; KEY_LEN], policy: AnonPolicy) -> Self {
        let mut a = Anonymizer {
            cp: CryptoPan::new(key),
            policy,
            v4: vec![(0, 0); V4_SLOTS],
            v4_used: vec![false; V4_SLOTS],
            v6: vec![(0, 0); V6_SLOTS],
            v6_used: vec![false; V6_SLOTS],
            mac: vec![([0; 6], [0; 6]); MAC_SLOTS],
            mac_used: vec![false; MAC_SLOTS],
            stats: AnonStats::default(),
        };
        // Resident from the start (about 1.1 MB), not as addresses fill them: flat memory.
        crate::dedup::prefault(&mut a.v4);
        crate::dedup::prefault(&mut a.v4_used);
        crate::dedup::prefault(&mut a.v6);
        crate::dedup::prefault(&mut a.v6_used);
        crate::dedup::prefault(&mut a.mac);
        crate::dedup::prefault(&mut a.mac_used);
        a
    }

    /// The policy in force.
    pub fn policy(&self) -> &AnonPolicy {
        &self.policy
    }

    fn keep_v4(&self, a: u32) -> bool {
        let p = &self.policy;
        let o = a.to_be_bytes();
        a == 0
            || (p.keep_private
                && (o[0] == 10
                    || (o[0] == 172 && o[1] & 0xf0 == 16)
                    || (o[0] == 192 && o[1] == 168)
                    || (o[0] == 169 && o[1] == 254)))
            || (p.keep_multicast && o[0] & 0xf0 == 224)
            || (p.keep_broadcast && a == u32::MAX)
            || (p.keep_loopback && o[0] == 127)
    }

    fn keep_v6(&self, a: u128) -> bool {
        let p = &self.policy;
        let top = (a >> 112) as u16;
        a == 0
            || (p.keep_private && (top & 0xfe00 == 0xfc00 || top & 0xffc0 == 0xfe80))
            || (p.keep_multicast && top & 0xff00 == 0xff00)
            || (p.keep_loopback && a == 1)
    }

    /// Maps one IPv4 address.
    pub fn map_v4(&mut self, a: u32) -> u32 {
        if self.keep_v4(a) {
            self.stats.ip_fields_kept += 1;
            return a;
        }
        self.stats.ip_fields_rewritten += 1;
        if let Some(bits) = self.policy.truncate_v4 {
            return if bits >= 32 {
                a
            } else if bits == 0 {
                0
            } else {
                a & (u32::MAX << (32 - bits))
            };
        }
        let s = slot(a as u64, V4_SLOTS);
        if self.v4_used[s] && self.v4[s].0 == a {
            return self.v4[s].1;
        }
        self.stats.cryptopan_computed += 1;
        let m = self.cp.anonymize_v4(a);
        self.v4[s] = (a, m);
        self.v4_used[s] = true;
        m
    }

    /// Maps one IPv6 address.
    pub fn map_v6(&mut self, a: u128) -> u128 {
        if self.keep_v6(a) {
            self.stats.ip_fields_kept += 1;
            return a;
        }
        self.stats.ip_fields_rewritten += 1;
        if let Some(bits) = self.policy.truncate_v6 {
            return if bits >= 128 {
                a
            } else if bits == 0 {
                0
            } else {
                a & (u128::MAX << (128 - bits))
            };
        }
        let s = slot((a as u64) ^ ((a >> 64) as u64).rotate_left(17), V6_SLOTS);
        if self.v6_used[s] && self.v6[s].0 == a {
            return self.v6[s].1;
        }
        self.stats.cryptopan_computed += 1;
        let m = self.cp.anonymize_v6(a);
        self.v6[s] = (a, m);
        self.v6_used[s] = true;
        m
    }

    /// Rewrites an IPv4 address stored at `b[..4]`.
    #[inline]
    pub fn rewrite_v4(&mut self, b: &mut [u8]) {
        let a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        b[..4].copy_from_slice(&self.map_v4(a).to_be_bytes());
    }

    /// Rewrites an IPv6 address stored at `b[..16]`.
    #[inline]
    pub fn rewrite_v6(&mut self, b: &mut [u8]) {
        let mut x = [0u8; 16];
        x.copy_from_slice(&b[..16]);
        b[..16].copy_from_slice(&self.map_v6(u128::from_be_bytes(x)).to_be_bytes());
    }

    /// Rewrites a MAC address stored at `b[..6]` when the policy asks for it. Group (multicast
    /// and broadcast) addresses are kept; others map to keyed locally-administered addresses.
    pub fn rewrite_mac(&mut self, b: &mut [u8]) {
        if !self.policy.mac || b[0] & 1 == 1 {
            return;
        }
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[..6]);
        self.stats.mac_fields_rewritten += 1;
        let s = slot(
            u64::from_be_bytes([0, 0, a[0], a[1], a[2], a[3], a[4], a[5]]),
            MAC_SLOTS,
        );
        if self.mac_used[s] && self.mac[s].0 == a {
            b[..6].copy_from_slice(&self.mac[s].1);
            return;
        }
        let mut blk = [0u8; 16];
        blk[0] = b'M';
        blk[1..7].copy_from_slice(&a);
        let out = self.cp.prf(blk);
        let mut m = [0u8; 6];
        m.copy_from_slice(&out[..6]);
        m[0] = (m[0] & 0xfc) | 0x02;
        self.mac[s] = (a, m);
        self.mac_used[s] = true;
        b[..6].copy_from_slice(&m);
    }

    /// True when MACs are mapped.
    pub fn maps_macs(&self) -> bool {
        self.policy.mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_gives_same_answer_and_keeps_specials() {
        let key = [7u8; 32];
        let mut a = Anonymizer::new(&key, AnonPolicy::default());
        let cp = CryptoPan::new(&key);
        for x in [0x0a000001u32, 0x08080808, 0x0a000001, 0xc0a80101] {
            assert_eq!(a.map_v4(x), cp.anonymize_v4(x));
        }
        assert_eq!(a.map_v4(0x7f000001), 0x7f000001);
        assert_eq!(a.map_v4(0xe0000001), 0xe0000001);
        assert_eq!(a.map_v4(u32::MAX), u32::MAX);
        let mut p = Anonymizer::new(
            &key,
            AnonPolicy {
                keep_private: true,
                truncate_v4: Some(24),
                ..Default::default()
            },
        );
        assert_eq!(p.map_v4(0x0a000001), 0x0a000001);
        assert_eq!(p.map_v4(0x08080808), 0x08080800);
    }

    #[test]
    fn macs_map_consistently() {
        let mut a = Anonymizer::new(
            &[1u8; 32],
            AnonPolicy {
                mac: true,
                ..Default::default()
            },
        );
        let mut m1 = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
        let mut m2 = m1;
        a.rewrite_mac(&mut m1);
        a.rewrite_mac(&mut m2);
        assert_eq!(m1, m2);
        assert_ne!(m1, [0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
        let mut bc = [0xff; 6];
        a.rewrite_mac(&mut bc);
        assert_eq!(bc, [0xff; 6]);
    }
}
