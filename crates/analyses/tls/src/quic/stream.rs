//! The start of a QUIC CRYPTO stream (RFC 9000 §19.6), reassembled from frames that may come
//! in any order, overlap and span packets, within a byte bound and a bound on the number of
//! holes.

/// Ranges of the stream received, at most this many separate pieces.
const MAX_RANGES: usize = 16;

/// Why data could not be kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Data beyond the byte bound.
    TooLarge,
    /// More separate pieces than kept.
    TooFragmented,
}

/// The stream's first `max` bytes, with the ranges received.
#[derive(Debug, Default)]
pub struct CryptoStream {
    buf: Vec<u8>,
    /// Received `[start, end)` ranges, sorted and merged.
    ranges: Vec<(usize, usize)>,
}

impl CryptoStream {
    /// An empty stream that stores its bytes in `buf` (a reused allocation).
    pub fn with_buf(mut buf: Vec<u8>) -> Self {
        buf.clear();
        CryptoStream {
            buf,
            ranges: Vec::new(),
        }
    }

    /// Empties the stream and hands its buffer back for reuse.
    pub fn take_buf(&mut self) -> Vec<u8> {
        self.ranges = Vec::new();
        std::mem::take(&mut self.buf)
    }

    /// Stores `data` at stream offset `off`; what lies beyond `max` is dropped (and said).
    pub fn insert(&mut self, off: u64, data: &[u8], max: usize) -> Result<(), Overflow> {
        let Ok(off) = usize::try_from(off) else {
            return Err(Overflow::TooLarge);
        };
        if off >= max {
            return if data.is_empty() {
                Ok(())
            } else {
                Err(Overflow::TooLarge)
            };
        }
        let end = off.saturating_add(data.len()).min(max);
        let cut = off + data.len() > max;
        if end > off {
            if self.buf.len() < end {
                self.buf.resize(end, 0);
            }
            self.buf[off..end].copy_from_slice(&data[..end - off]);
            self.add_range(off, end)?;
        }
        if cut {
            Err(Overflow::TooLarge)
        } else {
            Ok(())
        }
    }

    fn add_range(&mut self, s: usize, e: usize) -> Result<(), Overflow> {
        let mut s = s;
        let mut e = e;
        // Merge with every range that touches [s, e).
        self.ranges.retain(|&(a, b)| {
            if b < s || a > e {
                true
            } else {
                s = s.min(a);
                e = e.max(b);
                false
            }
        });
        if self.ranges.len() >= MAX_RANGES {
            return Err(Overflow::TooFragmented);
        }
        let at = self.ranges.partition_point(|&(a, _)| a < s);
        self.ranges.insert(at, (s, e));
        Ok(())
    }

    /// The bytes received without a hole from offset 0.
    pub fn contiguous(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, e)) => &self.buf[..e],
            _ => &[],
        }
    }

    /// Frees the memory.
    pub fn clear(&mut self) {
        self.buf = Vec::new();
        self.ranges = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn out_of_order_pieces_join() {
        let mut s = CryptoStream::default();
        s.insert(6, b"world", 100).unwrap();
        assert_eq!(s.contiguous(), b"");
        s.insert(0, b"hello ", 100).unwrap();
        assert_eq!(s.contiguous(), b"hello world");
        s.insert(3, b"lo w", 100).unwrap();
        assert_eq!(s.contiguous(), b"hello world");
        assert_eq!(s.insert(8, b"rld and more", 12), Err(Overflow::TooLarge));
        assert_eq!(s.contiguous(), b"hello world ");
    }

    proptest! {
        /// Any cutting and order of a message gives the message back; the buffer never grows
        /// past the bound.
        #[test]
        fn any_order(msg in proptest::collection::vec(any::<u8>(), 1..600),
                     cuts in proptest::collection::vec(0usize..600, 0..10),
                     seed in any::<u64>()) {
            let mut pts: Vec<usize> = cuts.iter().map(|c| c % msg.len()).collect();
            pts.push(0);
            pts.push(msg.len());
            pts.sort();
            pts.dedup();
            let mut pieces: Vec<(usize, usize)> = pts.windows(2).map(|w| (w[0], w[1])).collect();
            // A deterministic shuffle.
            let mut x = seed | 1;
            for i in (1..pieces.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                pieces.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut s = CryptoStream::default();
            for (a, b) in pieces {
                s.insert(a as u64, &msg[a..b], 1024).unwrap();
            }
            prop_assert_eq!(s.contiguous(), &msg[..]);
            prop_assert!(s.buf.len() <= 1024);
        }
    }
}
