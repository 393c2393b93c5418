//! Skipping message bodies by their framing (Content-Length or chunked), so that body bytes
//! are never mistaken for the start of the next message.

/// Where a direction is inside a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunked {
    /// Reading the hex chunk size (`digits` read so far, `size` accumulated).
    Size { size: u64, digits: u8 },
    /// After the size: skipping a chunk extension up to the line end.
    Ext { size: u64 },
    /// Skipping `left` bytes of chunk data.
    Data { left: u64 },
    /// Expecting the CRLF after chunk data (`seen` bytes of it seen).
    DataEnd,
    /// After the last (zero) chunk: trailer lines; `line_len` counts bytes of the current line.
    Trailer { line_len: u32 },
}

/// Result of feeding bytes to a body skipper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// All bytes were body; more body follows.
    More,
    /// The body ended after this many bytes; the rest starts the next message.
    Done(usize),
    /// The framing is broken (bad chunk size line).
    Bad,
}

impl Chunked {
    /// The state at the start of a chunked body.
    pub const START: Chunked = Chunked::Size { size: 0, digits: 0 };

    /// Consumes chunked-body bytes from `b`.
    pub fn feed(&mut self, b: &[u8]) -> Step {
        let mut i = 0;
        while i < b.len() {
            match *self {
                Chunked::Data { left } => {
                    let take = (b.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    i += take;
                    let left = left - take as u64;
                    *self = if left == 0 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data { left }
                    };
                }
                Chunked::Size { size, digits } => {
                    let c = b[i];
                    i += 1;
                    match (c as char).to_digit(16) {
                        Some(d) => {
                            if digits >= 15 {
                                return Step::Bad;
                            }
                            *self = Chunked::Size {
                                size: size << 4 | d as u64,
                                digits: digits + 1,
                            };
                        }
                        None if digits == 0 => return Step::Bad,
                        None if c == b'\n' => *self = Self::after_size(size),
                        None if c == b';' || c == b' ' || c == b'\t' || c == b'\r' => {
                            *self = Chunked::Ext { size }
                        }
                        None => return Step::Bad,
                    }
                }
                Chunked::Ext { size } => match b[i..].iter().position(|&c| c == b'\n') {
                    Some(p) => {
                        i += p + 1;
                        *self = Self::after_size(size);
                    }
                    None => i = b.len(),
                },
                Chunked::DataEnd => {
                    let c = b[i];
                    i += 1;
                    match c {
                        b'\r' => {}
                        b'\n' => *self = Chunked::START,
                        _ => return Step::Bad,
                    }
                }
                Chunked::Trailer { line_len } => {
                    let c = b[i];
                    i += 1;
                    match c {
                        b'\n' if line_len == 0 => return Step::Done(i),
                        b'\n' => *self = Chunked::Trailer { line_len: 0 },
                        b'\r' => {}
                        _ => {
                            *self = Chunked::Trailer {
                                line_len: line_len.saturating_add(1),
                            }
                        }
                    }
                }
            }
        }
        Step::More
    }

    fn after_size(size: u64) -> Chunked {
        if size == 0 {
            Chunked::Trailer { line_len: 0 }
        } else {
            Chunked::Data { left: size }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BODY: &[u8] =
        b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nGET";

    #[test]
    fn whole_body_then_next_message() {
        let mut c = Chunked::START;
        assert_eq!(c.feed(BODY), Step::Done(BODY.len() - 3));
    }

    #[test]
    fn bad_size_line() {
        let mut c = Chunked::START;
        assert_eq!(c.feed(b"zz\r\n"), Step::Bad);
        let mut c = Chunked::START;
        assert_eq!(c.feed(b"ffffffffffffffffff\r\n"), Step::Bad);
    }

    proptest! {
        /// Any split of the body into segments finds the same end.
        #[test]
        fn split_anywhere(cuts in proptest::collection::vec(0..BODY.len(), 0..6)) {
            let mut cuts = cuts;
            cuts.push(BODY.len());
            cuts.sort();
            let mut c = Chunked::START;
            let mut start = 0;
            let mut end = None;
            for cut in cuts {
                if cut < start { continue; }
                match c.feed(&BODY[start..cut]) {
                    Step::More => {}
                    Step::Done(n) => { end = Some(start + n); break; }
                    Step::Bad => prop_assert!(false, "bad"),
                }
                start = cut;
            }
            prop_assert_eq!(end, Some(BODY.len() - 3));
        }
    }
}
