//! Record data as text: addresses and names the way tshark shows them, the multi-field types
//! (MX, SOA, SRV, CAA) in zone-file order, character strings quoted, and every other type in
//! the RFC 3597 generic form `\# LENGTH HEX`.

use super::name::{read_name, NameBuf};
use super::Rr;
use crate::summary::Malformed;
use std::fmt::Write as _;
use std::net::Ipv6Addr;

/// How names are written into record text: as they are, or replaced by a keyed token.
pub trait NameWriter {
    /// Appends `name` to `out`.
    fn write_name(&self, name: &NameBuf, out: &mut String);
}

/// Writes names as they are.
pub struct PlainNames;

impl NameWriter for PlainNames {
    fn write_name(&self, name: &NameBuf, out: &mut String) {
        name.push_text(out);
    }
}

#[inline]
fn be16(d: &[u8], at: usize) -> Result<u16, Malformed> {
    match d.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(Malformed::BadRdata),
    }
}

#[inline]
fn be32(d: &[u8], at: usize) -> Result<u32, Malformed> {
    match d.get(at..at + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(Malformed::BadRdata),
    }
}

/// Reads a name inside record data; it must end within the record data.
fn name_in(m: &[u8], at: usize, end: usize, n: &mut NameBuf) -> Result<usize, Malformed> {
    let next = read_name(m, at, Some(n))?;
    if next > end {
        return Err(Malformed::BadRdata);
    }
    Ok(next)
}

/// Appends an IPv4 address in dotted decimal (what `Ipv4Addr`'s `Display` writes, without
/// the formatting machinery: A records are the most frequent data).
fn push_ipv4(b: [u8; 4], out: &mut String) {
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let x = *x;
        if x >= 100 {
            out.push((b'0' + x / 100) as char);
        }
        if x >= 10 {
            out.push((b'0' + x / 10 % 10) as char);
        }
        out.push((b'0' + x % 10) as char);
    }
}

/// Appends one character string in zone-file quoting: `"` and `\` escaped, bytes outside
/// printable ASCII as `\DDD`.
fn push_quoted(s: &[u8], out: &mut String) {
    out.push('"');
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
}

/// Appends the character strings of `d` (TXT, SPF, HINFO), each quoted, separated by a space.
fn push_strings(d: &[u8], out: &mut String) -> Result<(), Malformed> {
    let mut at = 0;
    let mut first = true;
    while at < d.len() {
        let n = d[at] as usize;
        let s = d.get(at + 1..at + 1 + n).ok_or(Malformed::BadRdata)?;
        if !first {
            out.push(' ');
        }
        first = false;
        push_quoted(s, out);
        at += 1 + n;
    }
    Ok(())
}

/// The RFC 3597 form: `\# LENGTH HEX`.
fn push_generic(d: &[u8], out: &mut String) {
    let _ = write!(out, "\\# {}", d.len());
    if !d.is_empty() {
        out.push(' ');
        for b in d {
            let _ = write!(out, "{b:02x}");
        }
    }
}

/// Appends the text of `rr`'s data in message `m` to `out`. On error `out` may hold a prefix
/// of the text; the caller decides what to keep.
pub fn render(
    m: &[u8],
    rr: &Rr,
    names: &dyn NameWriter,
    out: &mut String,
) -> Result<(), Malformed> {
    let d = &m[rr.rdata.clone()];
    let end = rr.rdata.end;
    let start = rr.rdata.start;
    let mut n = NameBuf::default();
    match rr.rtype {
        1 => {
            let b: [u8; 4] = d.try_into().map_err(|_| Malformed::BadRdata)?;
            push_ipv4(b, out);
        }
        28 => {
            let b: [u8; 16] = d.try_into().map_err(|_| Malformed::BadRdata)?;
            let _ = write!(out, "{}", Ipv6Addr::from(b));
        }
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME: one name.
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 39 => {
            if name_in(m, start, end, &mut n)? != end {
                return Err(Malformed::BadRdata);
            }
            names.write_name(&n, out);
        }
        // MX, AFSDB, RT, KX: preference then a name.
        15 | 18 | 21 | 36 => {
            let pref = be16(d, 0)?;
            if name_in(m, start + 2, end, &mut n)? != end {
                return Err(Malformed::BadRdata);
            }
            let _ = write!(out, "{pref} ");
            names.write_name(&n, out);
        }
        6 => {
            let at = name_in(m, start, end, &mut n)?;
            names.write_name(&n, out);
            out.push(' ');
            let at = name_in(m, at, end, &mut n)?;
            names.write_name(&n, out);
            if end - at != 20 {
                return Err(Malformed::BadRdata);
            }
            let f = &m[at..end];
            for i in 0..5 {
                let _ = write!(out, " {}", be32(f, i * 4)?);
            }
        }
        33 => {
            let (prio, weight, port) = (be16(d, 0)?, be16(d, 2)?, be16(d, 4)?);
            if name_in(m, start + 6, end, &mut n)? != end {
                return Err(Malformed::BadRdata);
            }
            let _ = write!(out, "{prio} {weight} {port} ");
            names.write_name(&n, out);
        }
        // TXT, SPF, HINFO.
        16 | 99 | 13 => push_strings(d, out)?,
        257 => {
            let (&flags, &tlen) = (
                d.first().ok_or(Malformed::BadRdata)?,
                d.get(1).ok_or(Malformed::BadRdata)?,
            );
            let tag = d.get(2..2 + tlen as usize).ok_or(Malformed::BadRdata)?;
            let _ = write!(out, "{flags} {} ", String::from_utf8_lossy(tag));
            push_quoted(&d[2 + tlen as usize..], out);
        }
        _ => push_generic(d, out),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{questions, Header, RrIter};
    use super::*;

    fn rdata_text(m: &[u8]) -> Vec<Result<String, Malformed>> {
        let h = Header::parse(m).unwrap();
        let mut q = super::super::Question::default();
        let at = questions(m, &h, &mut q).unwrap();
        RrIter::new(m, &h, at)
            .map(|r| {
                let r = r?;
                let mut s = String::new();
                render(m, &r, &PlainNames, &mut s).map(|_| s)
            })
            .collect()
    }

    /// A response with no question and the given records (owner = root).
    fn msg(rrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = vec![0, 1, 0x81, 0x80, 0, 0, 0, rrs.len() as u8, 0, 0, 0, 0];
        for (t, d) in rrs {
            m.push(0);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 5]);
            m.extend_from_slice(&(d.len() as u16).to_be_bytes());
            m.extend_from_slice(d);
        }
        m
    }

    #[test]
    fn renders_common_types() {
        let soa = b"\x02ns\x00\x04host\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x05";
        let m = msg(&[
            (1, &[10, 0, 0, 1]),
            (
                28,
                &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ),
            (15, b"\x00\x0a\x04mail\x00"),
            (16, b"\x05hello\x07a \"q\"\\\x01"),
            (33, b"\x00\x01\x00\x02\x01\xbb\x03srv\x00"),
            (6, soa),
            (257, b"\x00\x05issueca.example"),
            (48, &[1, 2, 0xff]),
        ]);
        let t: Vec<String> = rdata_text(&m).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(
            t,
            [
                "10.0.0.1",
                "2001:db8::1",
                "10 mail",
                "\"hello\" \"a \\\"q\\\"\\\\\\001\"",
                "1 2 443 srv",
                "ns host 1 2 3 4 5",
                "0 issue \"ca.example\"",
                "\\# 3 0102ff",
            ]
        );
    }

    #[test]
    fn ipv4_text_equals_display() {
        for x in [
            [0u8, 0, 0, 0],
            [255, 255, 255, 255],
            [10, 9, 100, 199],
            [1, 20, 3, 40],
        ] {
            let mut s = String::new();
            push_ipv4(x, &mut s);
            assert_eq!(s, std::net::Ipv4Addr::from(x).to_string());
        }
    }

    #[test]
    fn inconsistent_lengths_are_bad_rdata() {
        let m = msg(&[(1, &[10, 0, 0]), (5, b"\x03abc\x00\x00"), (16, b"\x05ab")]);
        for r in rdata_text(&m) {
            assert_eq!(r, Err(Malformed::BadRdata));
        }
    }
}
