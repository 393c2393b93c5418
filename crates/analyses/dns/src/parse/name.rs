//! Domain names in DNS messages (RFC 1035 §3.1, §4.1.4): label sequences with compression
//! pointers, read with bounded work whatever the bytes.
//!
//! Every pointer must point strictly before the lowest offset this name has read so far. That
//! one rule rejects loops (a pointer can never reach bytes already visited) and forward pointers,
//! and bounds the number of jumps by the message length; a name is also capped at 255 bytes in
//! wire form and [`MAX_JUMPS`] pointers, so reading a name costs at most ~255 label steps.

use crate::summary::Malformed;

/// Largest name in uncompressed wire form (RFC 1035 §2.3.4), terminating zero included.
pub const MAX_NAME: usize = 255;

/// Most compression pointers followed for one name; real messages need one or two.
pub const MAX_JUMPS: usize = 32;

/// A name copied out of a message in uncompressed wire form (length-prefixed labels, no final
/// zero), in a fixed buffer so that reading one allocates nothing.
#[derive(Clone, Copy)]
pub struct NameBuf {
    len: u8,
    bytes: [u8; MAX_NAME],
}

impl Default for NameBuf {
    fn default() -> Self {
        NameBuf {
            len: 0,
            bytes: [0; MAX_NAME],
        }
    }
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.push_text(&mut s);
        f.write_str(&s)
    }
}

impl PartialEq for NameBuf {
    /// Names compare without regard to ASCII case (RFC 4343), as resolvers match them.
    fn eq(&self, o: &NameBuf) -> bool {
        self.wire().eq_ignore_ascii_case(o.wire())
    }
}

impl Eq for NameBuf {}

impl NameBuf {
    /// The labels in wire form (each prefixed by its length), without the root's zero.
    pub fn wire(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// True for the root name.
    pub fn is_root(&self) -> bool {
        self.len == 0
    }

    /// Iterates over the labels.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let w = self.wire();
        let mut at = 0usize;
        std::iter::from_fn(move || {
            let n = *w.get(at)? as usize;
            let l = w.get(at + 1..at + 1 + n)?;
            at += 1 + n;
            Some(l)
        })
    }

    /// Appends the presentation form, as tshark shows names: labels joined by dots, the root
    /// as `<Root>`; bytes outside printable ASCII as `\xNN` (see docs/DNS.md).
    pub fn push_text(&self, out: &mut String) {
        if self.is_root() {
            out.push_str("<Root>");
            return;
        }
        for (i, l) in self.labels().enumerate() {
            if i > 0 {
                out.push('.');
            }
            push_label(l, out);
        }
    }

    /// The presentation form as a new string.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(self.len as usize + 1);
        self.push_text(&mut s);
        s
    }

    /// The name in lower case, presentation form without escapes (for keyed hashing).
    pub fn push_lower(&self, out: &mut Vec<u8>) {
        for (i, l) in self.labels().enumerate() {
            if i > 0 {
                out.push(b'.');
            }
            out.extend(l.iter().map(u8::to_ascii_lowercase));
        }
    }

    fn push_label(&mut self, l: &[u8]) -> Result<(), Malformed> {
        let at = self.len as usize;
        // The final root zero also counts towards the 255-byte limit.
        if at + 1 + l.len() + 1 > MAX_NAME {
            return Err(Malformed::NameTooLong);
        }
        self.bytes[at] = l.len() as u8;
        self.bytes[at + 1..at + 1 + l.len()].copy_from_slice(l);
        self.len = (at + 1 + l.len()) as u8;
        Ok(())
    }
}

/// Appends one label: printable ASCII as is, anything else as `\xNN`.
fn push_label(l: &[u8], out: &mut String) {
    // The common case, printable ASCII, is copied at once (one validating pass).
    if let Ok(s) = std::str::from_utf8(l) {
        if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            out.push_str(s);
            return;
        }
    }
    for &b in l {
        if (0x20..0x7f).contains(&b) {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push('\\');
            out.push('x');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// Reads the name at `pos` of `msg` into `out` (when given) and returns the offset just after
/// the name where it sits (after its first pointer, if compressed).
pub fn read_name(
    msg: &[u8],
    pos: usize,
    mut out: Option<&mut NameBuf>,
) -> Result<usize, Malformed> {
    if let Some(o) = out.as_deref_mut() {
        o.len = 0;
    }
    let mut at = pos;
    // Lowest offset read so far: every pointer must go strictly below it.
    let mut low = pos;
    let mut end = None;
    let mut jumps = 0usize;
    let mut wire_len = 1usize;
    loop {
        let Some(&b) = msg.get(at) else {
            return Err(Malformed::Truncated);
        };
        match b & 0xc0 {
            0x00 => {
                let n = b as usize;
                if n == 0 {
                    return Ok(end.unwrap_or(at + 1));
                }
                let Some(l) = msg.get(at + 1..at + 1 + n) else {
                    return Err(Malformed::Truncated);
                };
                wire_len += 1 + n;
                if wire_len > MAX_NAME {
                    return Err(Malformed::NameTooLong);
                }
                if let Some(o) = out.as_deref_mut() {
                    o.push_label(l)?;
                }
                at += 1 + n;
            }
            0xc0 => {
                let Some(&b2) = msg.get(at + 1) else {
                    return Err(Malformed::Truncated);
                };
                let target = ((b as usize & 0x3f) << 8) | b2 as usize;
                if target >= low {
                    return Err(if target > at {
                        Malformed::ForwardPointer
                    } else {
                        Malformed::PointerLoop
                    });
                }
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(Malformed::TooManyPointers);
                }
                if end.is_none() {
                    end = Some(at + 2);
                }
                low = target;
                at = target;
            }
            // 0x40 (extended label, RFC 6891 deprecated it) and 0x80 are not defined.
            _ => return Err(Malformed::BadLabelType),
        }
    }
}

/// Skips the name at `pos` without copying it; returns the offset after it.
#[inline]
pub fn skip_name(msg: &[u8], pos: usize) -> Result<usize, Malformed> {
    read_name(msg, pos, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(msg: &[u8], pos: usize) -> Result<(String, usize), Malformed> {
        let mut n = NameBuf::default();
        let end = read_name(msg, pos, Some(&mut n))?;
        Ok((n.to_text(), end))
    }

    #[test]
    fn plain_and_compressed_names() {
        // "www.example.com" at 0, then "mail" + pointer to "example.com" (offset 4).
        let mut m = b"\x03www\x07example\x03com\x00".to_vec();
        let p = m.len();
        m.extend_from_slice(b"\x04mail\xc0\x04");
        assert_eq!(name(&m, 0).unwrap(), ("www.example.com".into(), 17));
        assert_eq!(name(&m, p).unwrap(), ("mail.example.com".into(), p + 7));
        assert_eq!(name(b"\x00", 0).unwrap(), ("<Root>".into(), 1));
    }

    #[test]
    fn hostile_pointers_are_rejected() {
        // A pointer to itself.
        assert_eq!(name(b"\xc0\x00", 0), Err(Malformed::PointerLoop));
        // Forward pointer.
        assert_eq!(
            name(b"\xc0\x02\x03abc\x00", 0),
            Err(Malformed::ForwardPointer)
        );
        // A label followed by a pointer back to that label: a loop.
        assert_eq!(name(b"\x03abc\xc0\x00", 0), Err(Malformed::PointerLoop));
        // Two names pointing at each other: the second jump goes forward.
        let m = b"\x01a\xc0\x04\x01b\xc0\x00";
        assert_eq!(name(m, 4), Err(Malformed::ForwardPointer));
        // Reserved label types.
        assert_eq!(name(b"\x41abc", 0), Err(Malformed::BadLabelType));
        assert_eq!(name(b"\x81abc", 0), Err(Malformed::BadLabelType));
        // Cut short.
        assert_eq!(name(b"\x05ab", 0), Err(Malformed::Truncated));
        assert_eq!(name(b"\xc0", 0), Err(Malformed::Truncated));
    }

    #[test]
    fn long_names_are_rejected() {
        // 5 labels of 63 bytes: 320 bytes of wire form.
        let mut m = Vec::new();
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'a'; 63]);
        }
        m.push(0);
        assert_eq!(name(&m, 0), Err(Malformed::NameTooLong));
        // Exactly 255 bytes with the root zero: 3 x 63 + 61 + 4 length bytes + 1 = 255.
        let mut m = Vec::new();
        for n in [63, 63, 63, 61] {
            m.push(n);
            m.extend(std::iter::repeat_n(b'b', n as usize));
        }
        m.push(0);
        assert_eq!(m.len(), 255);
        assert!(name(&m, 0).is_ok());
    }

    #[test]
    fn a_chain_of_backward_pointers_is_bounded() {
        // Each name is "x" + pointer to the previous one: 40 levels exceed MAX_JUMPS.
        let mut m = vec![0u8];
        let mut prev = 0usize;
        for _ in 0..40 {
            let here = m.len();
            m.extend_from_slice(&[0xc0 | (prev >> 8) as u8, prev as u8]);
            prev = here;
        }
        assert_eq!(name(&m, prev), Err(Malformed::TooManyPointers));
    }

    #[test]
    fn non_printable_bytes_are_escaped() {
        let m = b"\x03a.b\x02\x00\xff\x00";
        assert_eq!(name(m, 0).unwrap().0, "a.b.\\x00\\xff");
    }

    proptest! {
        /// Any bytes: never panics, and the work is bounded (the end offset is inside the
        /// message and the copied name fits its buffer).
        #[test]
        fn arbitrary_bytes(m in proptest::collection::vec(any::<u8>(), 0..600), pos in 0usize..600) {
            let mut n = NameBuf::default();
            if let Ok(end) = read_name(&m, pos, Some(&mut n)) {
                prop_assert!(end <= m.len());
                prop_assert!(n.wire().len() < MAX_NAME);
            }
        }
    }
}
