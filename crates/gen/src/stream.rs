//! One direction of a TCP byte stream: literal bytes built per message (headers, TLS
//! handshakes) interleaved with references into precomputed body templates, so that large
//! bodies cost no memory and no per-packet allocation.

use std::collections::VecDeque;

/// Length of each body template (a power of two).
pub const TPL_LEN: usize = 1 << 18;

/// Precomputed body bytes shared by all sessions.
pub struct Templates {
    /// Words and spaces only: valid inside HTML, plain text and JSON strings.
    pub text: Vec<u8>,
    /// Random bytes (encrypted or compressed payloads).
    pub random: Vec<u8>,
}

impl Templates {
    /// Builds the templates from the run's random stream.
    pub fn new(rng: &mut crate::rng::Rng) -> Self {
        let mut random = vec![0u8; TPL_LEN];
        rng.fill(&mut random);
        let mut text = Vec::with_capacity(TPL_LEN + 16);
        while text.len() < TPL_LEN {
            text.extend_from_slice(rng.pick(crate::vocab::WORDS).as_bytes());
            text.push(if rng.chance(0.08) { b'.' } else { b' ' });
        }
        text.truncate(TPL_LEN);
        Templates { text, random }
    }
}

/// Where a piece's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// The stream's literal buffer, from `off`.
    Lit,
    /// The text template, from `off` (wrapping).
    Text,
    /// The random template, from `off` (wrapping).
    Rand,
}

/// A run of bytes in the stream.
#[derive(Clone, Copy, Debug)]
pub struct Piece {
    src: Src,
    off: u32,
    len: u32,
}

/// Pending bytes of one direction.
#[derive(Debug, Default)]
pub struct Stream {
    lit: Vec<u8>,
    pieces: VecDeque<Piece>,
    /// Bytes of the front piece already sent.
    done: u32,
    /// Bytes not yet sent.
    pub pending: u64,
    /// Bytes sent since the stream was created.
    pub sent: u64,
    /// Forced segment boundaries (absolute `sent` positions), ascending.
    splits: [u64; 4],
    nsplit: usize,
}

impl Stream {
    /// Drops everything pending and reuses the allocations.
    pub fn reset(&mut self) {
        self.lit.clear();
        self.pieces.clear();
        self.done = 0;
        self.pending = 0;
        self.sent = 0;
        self.nsplit = 0;
    }

    /// Absolute stream position of the next byte appended.
    pub fn end(&self) -> u64 {
        self.sent + self.pending
    }

    /// Appends literal bytes produced by `f`.
    pub fn lit(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        if self.pending == 0 {
            self.lit.clear();
            self.pieces.clear();
            self.done = 0;
        }
        let start = self.lit.len();
        f(&mut self.lit);
        let len = self.lit.len() - start;
        if len == 0 {
            return;
        }
        self.pending += len as u64;
        if let Some(last) = self.pieces.back_mut() {
            if last.src == Src::Lit && (last.off + last.len) as usize == start {
                last.len += len as u32;
                return;
            }
        }
        self.pieces.push_back(Piece {
            src: Src::Lit,
            off: start as u32,
            len: len as u32,
        });
    }

    /// Appends literal bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.lit(|v| v.extend_from_slice(b));
    }

    /// Appends `len` template bytes starting at template offset `off`.
    pub fn template(&mut self, src: Src, off: u32, len: u64) {
        if self.pending == 0 {
            self.lit.clear();
            self.pieces.clear();
            self.done = 0;
        }
        let mut left = len;
        let mut off = off;
        while left > 0 {
            let n = left.min(u32::MAX as u64 / 2) as u32;
            self.pieces.push_back(Piece { src, off, len: n });
            self.pending += n as u64;
            left -= n as u64;
            off = off.wrapping_add(n);
        }
    }

    /// Forces a segment boundary at absolute position `at`.
    pub fn split_at(&mut self, at: u64) {
        if self.nsplit < self.splits.len() && at > self.sent && at < self.end() {
            self.splits[self.nsplit] = at;
            self.nsplit += 1;
        }
    }

    /// Length of the next segment given the sender's MSS.
    pub fn next_len(&mut self, mss: usize) -> usize {
        let mut n = self.pending.min(mss as u64);
        while self.nsplit > 0 && self.splits[0] <= self.sent {
            self.splits.copy_within(1.., 0);
            self.nsplit -= 1;
        }
        if self.nsplit > 0 {
            n = n.min(self.splits[0] - self.sent);
        }
        // Never leave a tail of fewer than 8 bytes for the last segment: tshark's chunked-body
        // parser fails when the final `0\r\n\r\n` is cut between CR and LF.
        let rest = self.pending - n;
        if rest > 0 && rest < 8 && n > 16 {
            n -= 8;
        }
        n as usize
    }

    /// Shortens the pending template bytes at the end of the stream so that at most `keep`
    /// bytes stay pending (literal bytes are never cut); used to stop bulk transfers early.
    pub fn cut_tail(&mut self, keep: u64) {
        while self.pending > keep {
            let n = self.pieces.len();
            let done = if n == 1 { self.done } else { 0 };
            let Some(back) = self.pieces.back_mut() else {
                break;
            };
            if back.src == Src::Lit {
                break;
            }
            let avail = back.len - done;
            let cut = (self.pending - keep).min(avail as u64) as u32;
            back.len -= cut;
            self.pending -= cut as u64;
            if back.len == done {
                self.pieces.pop_back();
                if n == 1 {
                    self.done = 0;
                }
            }
        }
    }

    /// Copies the next `out.len()` pending bytes into `out`.
    pub fn take(&mut self, out: &mut [u8], tpl: &Templates) {
        let mut w = 0;
        while w < out.len() {
            let p = *self.pieces.front().expect("stream underflow");
            let avail = (p.len - self.done) as usize;
            let n = avail.min(out.len() - w);
            let dst = &mut out[w..w + n];
            match p.src {
                Src::Lit => {
                    let s = (p.off + self.done) as usize;
                    dst.copy_from_slice(&self.lit[s..s + n]);
                }
                Src::Text | Src::Rand => {
                    let t = if p.src == Src::Text {
                        &tpl.text
                    } else {
                        &tpl.random
                    };
                    let mut s = (p.off.wrapping_add(self.done)) as usize % TPL_LEN;
                    let mut k = 0;
                    while k < n {
                        let m = (n - k).min(TPL_LEN - s);
                        dst[k..k + m].copy_from_slice(&t[s..s + m]);
                        k += m;
                        s = 0;
                    }
                }
            }
            w += n;
            self.done += n as u32;
            if self.done == p.len {
                self.pieces.pop_front();
                self.done = 0;
            }
        }
        self.pending -= out.len() as u64;
        self.sent += out.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_come_out_in_order_with_splits() {
        let mut rng = crate::rng::Rng::new(1);
        let tpl = Templates::new(&mut rng);
        let mut s = Stream::default();
        s.bytes(b"GET / HTTP/1.1\r\n");
        s.template(Src::Text, 5, 100);
        s.bytes(b"END");
        s.split_at(4);
        assert_eq!(s.pending, 119);
        let n = s.next_len(1460);
        assert_eq!(n, 4);
        let mut out = vec![0u8; n];
        s.take(&mut out, &tpl);
        assert_eq!(&out, b"GET ");
        let n = s.next_len(1460);
        assert_eq!(n, 115);
        let mut out = vec![0u8; n];
        s.take(&mut out, &tpl);
        assert_eq!(&out[..12], b"/ HTTP/1.1\r\n");
        assert_eq!(&out[12..112], &tpl.text[5..105]);
        assert_eq!(&out[112..], b"END");
        assert_eq!(s.pending, 0);
    }
}
