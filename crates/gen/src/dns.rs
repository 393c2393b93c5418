//! DNS messages for generated sessions (queries, responses with CNAME chains, NXDOMAIN,
//! truncated UDP responses and the full answer over TCP), and their truth entries.

use crate::truth::DnsTruth;
use crate::vocab::CDN_NAMES;
use serde::{Deserialize, Serialize};

/// Index meaning "not listed" (the list was full or dropped).
pub(crate) const UNLISTED: u32 = u32::MAX;

/// Adds a transaction to the truth list; returns its index, or [`UNLISTED`] once more than
/// `max` were written (the list is then dropped and `listed` turns false).
pub(crate) fn list(t: &mut DnsTruth, max: usize, tx: impl FnOnce() -> DnsTransaction) -> u32 {
    if !t.listed {
        return UNLISTED;
    }
    if t.transactions.len() >= max {
        t.listed = false;
        t.transactions = Vec::new();
        return UNLISTED;
    }
    t.transactions.push(tx());
    (t.transactions.len() - 1) as u32
}

/// The listed transaction `i`, if it is listed.
pub(crate) fn listed(t: &mut DnsTruth, i: u32) -> Option<&mut DnsTransaction> {
    if t.listed {
        t.transactions.get_mut(i as usize)
    } else {
        None
    }
}

/// One DNS transaction as written: what a DNS analyzer must report for it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsTransaction {
    /// Client `ip:port` (IPv6 in brackets).
    pub client: String,
    /// Server `ip:port`.
    pub server: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// Outer VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Transaction id.
    pub id: u16,
    /// Query name.
    pub qname: String,
    /// Query type.
    pub qtype: u16,
    /// Response rcode (`None`: the query got no response).
    pub rcode: Option<u16>,
    /// The response had the TC bit (and no answers): the client retried over TCP.
    pub tc: bool,
    /// Answer types, in order.
    pub answer_types: Vec<u16>,
    /// Answer data as text (addresses, CNAME targets).
    pub answer_data: Vec<String>,
    /// The query carried an EDNS OPT record.
    pub edns: bool,
}

/// Writes `name` as labels; returns the offset after it.
pub(crate) fn put_name(b: &mut [u8], mut at: usize, name: &str) -> usize {
    for label in name.split('.') {
        b[at] = label.len() as u8;
        b[at + 1..at + 1 + label.len()].copy_from_slice(label.as_bytes());
        at += 1 + label.len();
    }
    b[at] = 0;
    at + 1
}

/// Writes an OPT record (UDP size 1232, no options).
fn put_opt(b: &mut [u8], at: usize) -> usize {
    b[at..at + 11].copy_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    at + 11
}

/// Writes a standard recursive query; returns its length.
pub(crate) fn query(b: &mut [u8], id: u16, name: &str, qtype: u16, edns: bool) -> usize {
    b[0..2].copy_from_slice(&id.to_be_bytes());
    b[2..12].copy_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns as u8]);
    let mut at = put_name(b, 12, name);
    b[at..at + 4].copy_from_slice(&[(qtype >> 8) as u8, qtype as u8, 0, 1]);
    at += 4;
    if edns {
        at = put_opt(b, at);
    }
    at
}

/// What a response says.
pub(crate) struct Answer<'a> {
    /// Transaction id.
    pub id: u16,
    /// Query name.
    pub name: &'a str,
    /// Query type.
    pub qtype: u16,
    /// Echo an OPT record.
    pub edns: bool,
    /// NXDOMAIN instead of answers.
    pub nx: bool,
    /// Answer through a CNAME.
    pub cname: bool,
    /// TTL of every answer.
    pub ttl: u32,
    /// Picks the CNAME target and addresses.
    pub seed: u64,
    /// Number of addresses; 0 picks 1-3.
    pub count: usize,
    /// Set the TC bit and leave the answers out (the UDP half of a truncated exchange).
    pub tc: bool,
}

/// Writes the response; appends its answers to `types`/`data` when given (for the truth).
/// Returns its length.
pub(crate) fn response(
    b: &mut [u8],
    a: &Answer<'_>,
    mut truth: Option<(&mut Vec<u16>, &mut Vec<String>)>,
) -> usize {
    let answerable = matches!(a.qtype, 1 | 28);
    let naddr = if a.nx || !answerable || a.tc {
        0
    } else if a.count > 0 {
        a.count
    } else {
        1 + (a.seed % 3) as usize
    };
    let cname = a.cname && !a.nx && answerable && !a.tc;
    let ancount = naddr + cname as usize;
    b[0..2].copy_from_slice(&a.id.to_be_bytes());
    let flags0 = 0x81 | if a.tc { 0x02 } else { 0 };
    b[2..4].copy_from_slice(&[flags0, if a.nx { 0x83 } else { 0x80 }]);
    b[4..12].copy_from_slice(&[
        0,
        1,
        (ancount >> 8) as u8,
        ancount as u8,
        0,
        0,
        0,
        a.edns as u8,
    ]);
    let mut at = put_name(b, 12, a.name);
    let qt = a.qtype;
    b[at..at + 4].copy_from_slice(&[(qt >> 8) as u8, qt as u8, 0, 1]);
    at += 4;
    let mut owner: u16 = 0xc00c;
    let t = a.ttl.to_be_bytes();
    if cname {
        b[at..at + 10].copy_from_slice(&[0xc0, 0x0c, 0, 5, 0, 1, t[0], t[1], t[2], t[3]]);
        let target = CDN_NAMES[(a.seed >> 8) as usize % CDN_NAMES.len()];
        let rd = at + 12;
        let end = put_name(b, rd, target);
        b[at + 10..at + 12].copy_from_slice(&((end - rd) as u16).to_be_bytes());
        owner = 0xc000 | rd as u16;
        at = end;
        if let Some((ty, d)) = truth.as_mut() {
            ty.push(5);
            d.push(target.to_string());
        }
    }
    for i in 0..naddr {
        let o = owner.to_be_bytes();
        b[at..at + 10].copy_from_slice(&[o[0], o[1], 0, qt as u8, 0, 1, t[0], t[1], t[2], t[3]]);
        let x = (a.seed >> (16 + (i % 6) * 8)) as u8;
        if qt == 1 {
            b[at + 10..at + 12].copy_from_slice(&[0, 4]);
            let ip = [198, 18, 10 + (i % 200) as u8, x | 1];
            b[at + 12..at + 16].copy_from_slice(&ip);
            at += 16;
            if let Some((ty, d)) = truth.as_mut() {
                ty.push(1);
                d.push(std::net::Ipv4Addr::from(ip).to_string());
            }
        } else {
            b[at + 10..at + 12].copy_from_slice(&[0, 16]);
            let mut ip = [0u8; 16];
            ip[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0x5]);
            ip[13] = (i >> 8) as u8;
            ip[14] = i as u8;
            ip[15] = x | 1;
            b[at + 12..at + 28].copy_from_slice(&ip);
            at += 28;
            if let Some((ty, d)) = truth.as_mut() {
                ty.push(28);
                d.push(std::net::Ipv6Addr::from(ip).to_string());
            }
        }
    }
    if a.edns {
        at = put_opt(b, at);
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_response_has_tc_and_no_answers() {
        let mut b = [0u8; 2048];
        let a = Answer {
            id: 5,
            name: "big.example.com",
            qtype: 1,
            edns: true,
            nx: false,
            cname: true,
            ttl: 60,
            seed: 9,
            count: 60,
            tc: true,
        };
        let mut ty = Vec::new();
        let mut d = Vec::new();
        let n = response(&mut b, &a, Some((&mut ty, &mut d)));
        assert_eq!(b[2] & 0x02, 0x02);
        assert_eq!(&b[6..8], &[0, 0]);
        assert!(ty.is_empty() && n < 60);
        let full = Answer { tc: false, ..a };
        let n = response(&mut b, &full, Some((&mut ty, &mut d)));
        assert_eq!(ty.len(), 61);
        assert_eq!(ty[0], 5);
        assert!(
            n > 512,
            "the full answer does not fit a classic 512-byte UDP response"
        );
    }
}
