//! Zero-copy reading of DNS messages (RFC 1035 §4): the header, the first question, an iterator
//! over the resource records of the three sections, and EDNS(0) (RFC 6891) with the client
//! subnet option (RFC 7871). Nothing here allocates; rendering record data to text is in
//! [`rdata`].

pub mod name;
pub mod rdata;

use crate::summary::Malformed;
use name::{read_name, skip_name, NameBuf};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// Length of the fixed message header.
pub const HEADER_LEN: usize = 12;

/// Record type of the EDNS(0) OPT pseudo-record.
pub const TYPE_OPT: u16 = 41;

#[inline]
fn be16(m: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]))
}

#[inline]
fn be32(m: &[u8], at: usize) -> Option<u32> {
    let b = m.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The fixed 12-byte header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Transaction id.
    pub id: u16,
    /// The flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub flags: u16,
    /// Questions.
    pub qdcount: u16,
    /// Answer records.
    pub ancount: u16,
    /// Authority records.
    pub nscount: u16,
    /// Additional records (OPT included).
    pub arcount: u16,
}

impl Header {
    /// Reads the header, `None` when the message is shorter than 12 bytes.
    #[inline]
    pub fn parse(m: &[u8]) -> Option<Header> {
        Some(Header {
            id: be16(m, 0)?,
            flags: be16(m, 2)?,
            qdcount: be16(m, 4)?,
            ancount: be16(m, 6)?,
            nscount: be16(m, 8)?,
            arcount: be16(m, 10)?,
        })
    }

    /// QR: a response.
    #[inline]
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// The 4-bit opcode (0 query, 4 notify, 5 update).
    #[inline]
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// The flag bit `mask` (one of the `FLAG_*` constants) is set.
    #[inline]
    pub fn flag(&self, mask: u16) -> bool {
        self.flags & mask != 0
    }

    /// The 4-bit rcode of the header (the OPT record may extend it).
    #[inline]
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }
}

/// Authoritative answer.
pub const FLAG_AA: u16 = 0x0400;
/// Truncated.
pub const FLAG_TC: u16 = 0x0200;
/// Recursion desired.
pub const FLAG_RD: u16 = 0x0100;
/// Recursion available.
pub const FLAG_RA: u16 = 0x0080;
/// Reserved bit, zero in well-formed messages.
pub const FLAG_Z: u16 = 0x0040;
/// Authentic data (DNSSEC).
pub const FLAG_AD: u16 = 0x0020;
/// Checking disabled (DNSSEC).
pub const FLAG_CD: u16 = 0x0010;

/// The first question of a message.
#[derive(Clone, Copy, Debug, Default)]
pub struct Question {
    /// Query name.
    pub name: NameBuf,
    /// Query type.
    pub qtype: u16,
    /// Query class (the mDNS unicast-response bit included).
    pub qclass: u16,
}

/// Reads the question section: the first question into `q` (left empty, the root name with
/// type and class 0, when there is none) and returns the offset where the answer section
/// starts. `q` is filled in place: a name is copied once, into its final place.
pub fn questions(m: &[u8], h: &Header, q: &mut Question) -> Result<usize, Malformed> {
    let mut at = HEADER_LEN;
    q.qtype = 0;
    q.qclass = 0;
    for i in 0..h.qdcount {
        if i == 0 {
            at = read_name(m, at, Some(&mut q.name))?;
            q.qtype = be16(m, at).ok_or(Malformed::Truncated)?;
            q.qclass = be16(m, at + 2).ok_or(Malformed::Truncated)?;
        } else {
            at = skip_name(m, at)?;
            if m.len() < at + 4 {
                return Err(Malformed::Truncated);
            }
        }
        at += 4;
    }
    if h.qdcount == 0 {
        q.name = NameBuf::default();
    }
    Ok(at)
}

/// The section a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Answer section.
    Answer,
    /// Authority section.
    Authority,
    /// Additional section.
    Additional,
}

/// One resource record's fixed fields and where its name and data sit in the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    /// Section.
    pub section: Section,
    /// Offset of the owner name.
    pub name_pos: usize,
    /// Record type.
    pub rtype: u16,
    /// Class (the UDP payload size for OPT).
    pub class: u16,
    /// Time to live (extended rcode, version and flags for OPT).
    pub ttl: u32,
    /// The record data.
    pub rdata: Range<usize>,
}

/// Iterates over the records of the answer, authority and additional sections; stops after the
/// first error (which it yields).
pub struct RrIter<'a> {
    m: &'a [u8],
    at: usize,
    left: [u16; 3],
    sec: usize,
    done: bool,
}

impl<'a> RrIter<'a> {
    /// Records of `m` starting at `at` (the end of the question section).
    pub fn new(m: &'a [u8], h: &Header, at: usize) -> Self {
        RrIter {
            m,
            at,
            left: [h.ancount, h.nscount, h.arcount],
            sec: 0,
            done: false,
        }
    }

    /// Offset just after the last record read.
    pub fn offset(&self) -> usize {
        self.at
    }
}

impl Iterator for RrIter<'_> {
    type Item = Result<Rr, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        while self.sec < 3 && self.left[self.sec] == 0 {
            self.sec += 1;
        }
        if self.sec == 3 {
            self.done = true;
            return None;
        }
        self.left[self.sec] -= 1;
        let section = [Section::Answer, Section::Authority, Section::Additional][self.sec];
        let m = self.m;
        let name_pos = self.at;
        let r = skip_name(m, name_pos).and_then(|at| {
            let rtype = be16(m, at).ok_or(Malformed::Truncated)?;
            let class = be16(m, at + 2).ok_or(Malformed::Truncated)?;
            let ttl = be32(m, at + 4).ok_or(Malformed::Truncated)?;
            let len = be16(m, at + 8).ok_or(Malformed::Truncated)? as usize;
            let start = at + 10;
            if m.len() < start + len {
                return Err(Malformed::Truncated);
            }
            Ok(Rr {
                section,
                name_pos,
                rtype,
                class,
                ttl,
                rdata: start..start + len,
            })
        });
        match &r {
            Ok(rr) => self.at = rr.rdata.end,
            Err(_) => self.done = true,
        }
        Some(r)
    }
}

/// The EDNS client subnet option (RFC 7871).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientSubnet {
    /// Address family (1 IPv4, 2 IPv6).
    pub family: u16,
    /// Source prefix length.
    pub source: u8,
    /// Scope prefix length (responses).
    pub scope: u8,
    /// The address, zero-extended.
    pub addr: [u8; 16],
}

impl ClientSubnet {
    /// The address as an `IpAddr`, `None` for an unknown family.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.family {
            1 => Some(IpAddr::V4(Ipv4Addr::new(
                self.addr[0],
                self.addr[1],
                self.addr[2],
                self.addr[3],
            ))),
            2 => Some(IpAddr::V6(Ipv6Addr::from(self.addr))),
            _ => None,
        }
    }

    /// `address/source-prefix` (e.g. `192.0.2.0/24`), as written in reports.
    pub fn to_text(&self) -> String {
        match self.ip() {
            Some(ip) => format!("{ip}/{}", self.source),
            None => format!("family{}/{}", self.family, self.source),
        }
    }
}

/// What the OPT pseudo-record says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size.
    pub udp_size: u16,
    /// Upper 8 bits of the extended rcode.
    pub ext_rcode: u8,
    /// EDNS version.
    pub version: u8,
    /// DNSSEC OK.
    pub dnssec_ok: bool,
    /// Client subnet option, if present.
    pub client_subnet: Option<ClientSubnet>,
}

/// Reads an OPT record (RFC 6891 §6.1.2); the owner must be the root.
pub fn read_opt(m: &[u8], rr: &Rr) -> Result<Edns, Malformed> {
    if m.get(rr.name_pos) != Some(&0) {
        return Err(Malformed::BadOpt);
    }
    let mut e = Edns {
        udp_size: rr.class,
        ext_rcode: (rr.ttl >> 24) as u8,
        version: (rr.ttl >> 16) as u8,
        dnssec_ok: rr.ttl & 0x8000 != 0,
        client_subnet: None,
    };
    let d = &m[rr.rdata.clone()];
    let mut at = 0;
    while at < d.len() {
        let (Some(code), Some(len)) = (be16(d, at), be16(d, at + 2)) else {
            return Err(Malformed::BadOpt);
        };
        let Some(v) = d.get(at + 4..at + 4 + len as usize) else {
            return Err(Malformed::BadOpt);
        };
        if code == 8 {
            // family(2) source(1) scope(1) address(ceil(source/8) bytes, at most the family's).
            let (Some(family), Some(&source), Some(&scope)) = (be16(v, 0), v.get(2), v.get(3))
            else {
                return Err(Malformed::BadOpt);
            };
            let addr = &v[4..];
            let max = match family {
                1 => 4,
                2 => 16,
                _ => 16,
            };
            if addr.len() > max {
                return Err(Malformed::BadOpt);
            }
            let mut a = [0u8; 16];
            a[..addr.len()].copy_from_slice(addr);
            e.client_subnet = Some(ClientSubnet {
                family,
                source,
                scope,
                addr: a,
            });
        }
        at += 4 + len as usize;
    }
    Ok(e)
}

/// Sample messages shared by the unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    /// A response for www.example.com A with one CNAME, one A, and an OPT with a client subnet.
    pub(crate) fn sample_response() -> Vec<u8> {
        let mut m = vec![
            0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1, // header
        ];
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        // CNAME -> cdn.example.net
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0x0e, 0x10, 0, 17]);
        m.extend_from_slice(b"\x03cdn\x07example\x03net\x00");
        // A 192.0.2.7 owned by the CNAME target (offset 45).
        m.extend_from_slice(&[0xc0, 45, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        // OPT: udp 1232, DO, ECS 198.51.100.0/24 scope 0.
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 11]);
        m.extend_from_slice(&[0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100]);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sample_response;
    use super::*;

    #[test]
    fn walks_every_section() {
        let m = sample_response();
        let h = Header::parse(&m).unwrap();
        assert!(h.is_response() && h.flag(FLAG_RD) && h.flag(FLAG_RA) && !h.flag(FLAG_TC));
        let mut q = Question::default();
        let at = questions(&m, &h, &mut q).unwrap();
        assert_eq!(q.name.to_text(), "www.example.com");
        assert_eq!((q.qtype, q.qclass), (1, 1));
        let rrs: Vec<Rr> = RrIter::new(&m, &h, at).map(|r| r.unwrap()).collect();
        assert_eq!(rrs.len(), 3);
        assert_eq!(rrs[0].rtype, 5);
        assert_eq!(rrs[0].ttl, 3600);
        assert_eq!(rrs[1].section, Section::Answer);
        assert_eq!(&m[rrs[1].rdata.clone()], &[192, 0, 2, 7]);
        assert_eq!(rrs[2].section, Section::Additional);
        let e = read_opt(&m, &rrs[2]).unwrap();
        assert_eq!(e.udp_size, 1232);
        assert!(e.dnssec_ok);
        assert_eq!(e.client_subnet.unwrap().to_text(), "198.51.100.0/24");
    }

    #[test]
    fn truncated_record_is_an_error_then_the_iterator_ends() {
        let m = sample_response();
        let cut = &m[..m.len() - 20];
        let h = Header::parse(cut).unwrap();
        let mut q = Question::default();
        let at = questions(cut, &h, &mut q).unwrap();
        let r: Vec<_> = RrIter::new(cut, &h, at).collect();
        // CNAME and A are whole, the OPT record is cut.
        assert!(r[0].is_ok() && r[1].is_ok());
        assert_eq!(r.last().unwrap(), &Err(Malformed::Truncated));
        assert_eq!(r.len(), 3);
    }
}
