//! Which UDP datagrams and TCP streams are DNS.
//!
//! On the DNS ports (53, 5353 mDNS, 5355 LLMNR, either side) every payload is read as DNS and a
//! message that does not parse is counted as malformed. On any other port a payload is DNS only
//! when it passes [`looks_like_dns`], a rule strict enough that random or other-protocol bytes
//! practically never pass it (one question, opcode QUERY, hostname-like labels, counts that fit,
//! and the whole payload consumed exactly by the records the header announces). NetBIOS name
//! service (port 137) uses the DNS message format for something else and is never read.

use crate::parse::{questions, Header, Question, RrIter, FLAG_Z, HEADER_LEN};

/// Ports on which every payload is read as DNS.
pub const DNS_PORTS: [u16; 3] = [53, 5353, 5355];

/// Ports whose protocol shares the DNS message format but is not DNS (NetBIOS name service).
pub const NOT_DNS_PORTS: [u16; 1] = [137];

/// True for a DNS port.
#[inline]
pub fn dns_port(p: u16) -> bool {
    DNS_PORTS.contains(&p)
}

/// True when a payload between these ports is never read as DNS.
#[inline]
pub fn excluded_port(a: u16, b: u16) -> bool {
    NOT_DNS_PORTS.contains(&a) || NOT_DNS_PORTS.contains(&b)
}

/// The content rule for other ports; `complete` says whether `m` is the whole message (a TCP
/// segment may hold only its start, then only the header and question are checked).
pub fn looks_like_dns(m: &[u8], complete: bool) -> bool {
    let Some(h) = Header::parse(m) else {
        return false;
    };
    if h.qdcount != 1 || h.opcode() != 0 || h.flag(FLAG_Z) {
        return false;
    }
    if h.is_response() {
        let rrs = h.ancount as u32 + h.nscount as u32 + h.arcount as u32;
        if rrs > 256 || h.rcode() > 10 {
            return false;
        }
    } else if h.ancount != 0 || h.nscount != 0 || h.arcount > 1 || h.rcode() != 0 {
        return false;
    }
    // The question name: hostname-like labels, no compression (nothing precedes it to point
    // to in a well-formed message).
    let mut at = HEADER_LEN;
    loop {
        let Some(&n) = m.get(at) else {
            return false;
        };
        if n == 0 {
            break;
        }
        if n > 63 || at + 1 + n as usize > m.len() || at > HEADER_LEN + 255 {
            return false;
        }
        let label = &m[at + 1..at + 1 + n as usize];
        if !label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        {
            return false;
        }
        at += 1 + n as usize;
    }
    let mut q = Question::default();
    let Ok(rr_start) = questions(m, &h, &mut q) else {
        return false;
    };
    if q.qtype == 0 || !matches!(q.qclass, 1 | 3 | 254 | 255) {
        return false;
    }
    if !complete {
        return true;
    }
    let mut it = RrIter::new(m, &h, rr_start);
    for rr in it.by_ref() {
        if rr.is_err() {
            return false;
        }
    }
    it.offset() == m.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const QUERY: &[u8] = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01";

    #[test]
    fn queries_and_responses_pass_other_payloads_do_not() {
        assert!(looks_like_dns(QUERY, true));
        let resp = crate::parse::tests_support::sample_response();
        assert!(looks_like_dns(&resp, true));
        // Trailing bytes, a cut message, two questions, a space in a label, class 0.
        let mut t = QUERY.to_vec();
        t.push(0);
        assert!(!looks_like_dns(&t, true));
        assert!(!looks_like_dns(&QUERY[..QUERY.len() - 2], true));
        let mut two = QUERY.to_vec();
        two[5] = 2;
        assert!(!looks_like_dns(&two, true));
        let mut sp = QUERY.to_vec();
        sp[14] = b' ';
        assert!(!looks_like_dns(&sp, true));
        let mut c0 = QUERY.to_vec();
        let n = c0.len();
        c0[n - 1] = 0;
        assert!(!looks_like_dns(&c0, true));
        // Other protocols.
        assert!(!looks_like_dns(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true));
        assert!(!looks_like_dns(&[0u8; 40], true));
        // The start of a message passes when it is not complete.
        assert!(looks_like_dns(&resp[..40], false));
    }

    proptest! {
        /// Random payloads essentially never pass (a pass needs one question, valid labels,
        /// a known class and an exact end).
        #[test]
        fn random_bytes_are_not_dns(m in proptest::collection::vec(any::<u8>(), 12..200)) {
            prop_assert!(!looks_like_dns(&m, true));
        }
    }
}
