//! Internet (one's complement) checksum arithmetic.
//!
//! Checksums are updated incrementally (RFC 1624): the sum of the covered bytes is taken before
//! and after the frame is rewritten and the stored checksum moves by the difference. A checksum
//! that was right stays right; one that was wrong stays wrong by the same amount; and checksums
//! over bytes that were not captured (snaplen, fragments) are still adjusted for the bytes that
//! changed.

/// One's complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with
/// zero), folded to 16 bits. `odd` says the data starts at an odd offset from the start of the
/// checksummed area, which swaps the bytes of the result.
#[inline]
pub fn sum(data: &[u8], odd: bool) -> u16 {
    // Four independent accumulators of 32-bit words let the compiler vectorize the loop.
    let mut accs = [0u64; 4];
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        for (i, a) in accs.iter_mut().enumerate() {
            *a += u32::from_le_bytes([c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]]) as u64;
        }
    }
    let mut acc = accs.iter().map(|&a| fold(a) as u64).sum::<u64>();
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u16::from_le_bytes([p[0], p[1]]) as u64;
    }
    if let [b] = pairs.remainder() {
        acc += *b as u64;
    }
    let le = fold(acc);
    let be = le.swap_bytes();
    if odd {
        be.swap_bytes()
    } else {
        be
    }
}

/// Folds a wide one's complement accumulator to 16 bits.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// One's complement addition of two 16-bit values.
#[inline]
pub fn add(a: u16, b: u16) -> u16 {
    fold(a as u64 + b as u64)
}

/// Returns the checksum `old` adjusted for the covered data's sum changing from `before` to
/// `after` (RFC 1624, eqn. 3).
#[inline]
pub fn adjust(old: u16, before: u16, after: u16) -> u16 {
    !add(add(!old, !before), after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for w in data.chunks(2) {
            let v = if w.len() == 2 {
                u16::from_be_bytes([w[0], w[1]])
            } else {
                u16::from_be_bytes([w[0], 0])
            };
            s += v as u32;
        }
        fold(s as u64)
    }

    proptest! {
        #[test]
        fn sum_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(sum(&data, false), naive(&data));
        }

        #[test]
        fn split_sums_compose(data in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..200) {
            let cut = cut.min(data.len());
            let a = sum(&data[..cut], false);
            let b = sum(&data[cut..], cut % 2 == 1);
            prop_assert_eq!(fold(a as u64 + b as u64) % 0xffff, naive(&data) % 0xffff);
        }

        /// An incrementally adjusted checksum verifies exactly when the original did.
        #[test]
        fn adjust_keeps_validity(mut data in proptest::collection::vec(any::<u8>(), 4..100), pos in 2usize..100, val in any::<u8>(), wrong in any::<bool>()) {
            data[0] = 0; data[1] = 0;
            let ck = !naive(&data) ^ (wrong as u16);
            data[0..2].copy_from_slice(&ck.to_be_bytes());
            let before = sum(&data[2..], false);
            let pos = pos.min(data.len() - 1).max(2);
            data[pos] = val;
            let after = sum(&data[2..], false);
            let nc = adjust(ck, before, after);
            data[0..2].copy_from_slice(&nc.to_be_bytes());
            let ok = naive(&data) == 0xffff || naive(&data) == 0;
            prop_assert_eq!(ok, !wrong);
        }
    }
}
