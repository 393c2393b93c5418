//! Client and server fingerprints: JA4 (FoxIO's JA4 specification, TLS client part), JA3 and
//! JA3S (Salesforce; MD5 of the decimal field lists, as tshark's `tls.handshake.ja3`).
//!
//! JA4's ALPN characters follow the reference implementation's output where it and the
//! specification's text differ: a non-ASCII byte becomes `9` (see docs/TLS.md).

use crate::parse::hello::{is_grease, u16s, ClientHello, ServerHello};
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Lower-case hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `b` as lower-case hex (the digest and list writers below avoid the formatting
/// machinery: fingerprints are computed for every connection).
pub(crate) fn push_hex(out: &mut String, b: &[u8]) {
    for x in b {
        out.push(HEX[(x >> 4) as usize] as char);
        out.push(HEX[(x & 15) as usize] as char);
    }
}

/// Appends a decimal number.
fn push_dec(out: &mut String, mut v: u16) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        out.push(d as char);
    }
}

/// Two-character JA4 version code.
fn ja4_version(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// The two ALPN characters of JA4 from the first protocol name offered.
fn ja4_alpn(first: Option<&[u8]>) -> [u8; 2] {
    let Some(v) = first.filter(|v| !v.is_empty()) else {
        return *b"00";
    };
    let (f, l) = (v[0], v[v.len() - 1]);
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        return [f, l];
    }
    if f >= 0x80 || l >= 0x80 {
        // What both reference implementations print: each non-ASCII byte as '9'.
        let nine = |b: u8| if b >= 0x80 { b'9' } else { b };
        return [nine(f), nine(l)];
    }
    // ASCII but not alphanumeric: the first and last hex digits of the whole value.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[(f >> 4) as usize], HEX[(l & 15) as usize]]
}

/// The first 12 hex digits of SHA-256 of `s`, or twelve zeros for an empty list.
fn hash12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    let d = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(12);
    push_hex(&mut out, &d[..6]);
    out
}

/// Comma-joined 4-digit lower-case hex.
fn hex_list(v: &[u16]) -> String {
    let mut s = String::with_capacity(v.len() * 5);
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_hex(&mut s, &x.to_be_bytes());
    }
    s
}

/// JA4 of a ClientHello; `quic` selects the `q` marker instead of `t`.
pub fn ja4(ch: &ClientHello<'_>, quic: bool) -> String {
    let version = ch
        .supported_versions()
        .and_then(|v| u16s(v).filter(|x| !is_grease(*x)).max())
        .unwrap_or(ch.version);
    let mut ciphers: Vec<u16> = ch.cipher_list().filter(|c| !is_grease(*c)).collect();
    let exts: Vec<u16> = ch.exts().map(|e| e.ty).filter(|t| !is_grease(*t)).collect();
    let sni = if exts.contains(&0) { 'd' } else { 'i' };
    let alpn = ja4_alpn(ch.alpn().next());
    let mut a = String::with_capacity(40);
    a.push(if quic { 'q' } else { 't' });
    a.push_str(ja4_version(version));
    a.push(sni);
    for n in [ciphers.len().min(99), exts.len().min(99)] {
        a.push((b'0' + (n / 10) as u8) as char);
        a.push((b'0' + (n % 10) as u8) as char);
    }
    a.push(alpn[0] as char);
    a.push(alpn[1] as char);
    ciphers.sort_unstable();
    let mut sorted: Vec<u16> = exts.into_iter().filter(|&t| t != 0 && t != 16).collect();
    sorted.sort_unstable();
    let sigs: Vec<u16> = if ch.ext(13).is_some() {
        u16s(ch.list16(13)).filter(|s| !is_grease(*s)).collect()
    } else {
        Vec::new()
    };
    let mut c = hex_list(&sorted);
    if !c.is_empty() && !sigs.is_empty() {
        c.push('_');
        c.push_str(&hex_list(&sigs));
    }
    a.push('_');
    a.push_str(&hash12(&hex_list(&ciphers)));
    a.push('_');
    a.push_str(&hash12(&c));
    a
}

/// Appends decimal values joined by `-`, GREASE left out.
fn dash_list(out: &mut String, v: impl Iterator<Item = u16>) {
    let mut first = true;
    for x in v.filter(|x| !is_grease(*x)) {
        if !first {
            out.push('-');
        }
        first = false;
        push_dec(out, x);
    }
}

fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    let mut out = String::with_capacity(32);
    push_hex(&mut out, &d);
    out
}

/// The JA3 string (`version,ciphers,extensions,groups,point formats`).
pub fn ja3_string(ch: &ClientHello<'_>) -> String {
    let mut s = String::with_capacity(256);
    push_dec(&mut s, ch.version);
    s.push(',');
    dash_list(&mut s, ch.cipher_list());
    s.push(',');
    dash_list(&mut s, ch.exts().map(|e| e.ty));
    s.push(',');
    dash_list(&mut s, u16s(ch.list16(10)));
    s.push(',');
    dash_list(&mut s, ch.point_formats().iter().map(|&b| b as u16));
    s
}

/// JA3: the MD5 of [`ja3_string`], lower-case hex.
pub fn ja3(ch: &ClientHello<'_>) -> String {
    md5_hex(&ja3_string(ch))
}

/// JA3S: the MD5 of `version,cipher,extensions` of a ServerHello.
pub fn ja3s(sh: &ServerHello<'_>) -> String {
    let mut s = String::with_capacity(64);
    push_dec(&mut s, sh.version);
    s.push(',');
    push_dec(&mut s, sh.cipher);
    s.push(',');
    dash_list(&mut s, sh.exts().map(|e| e.ty));
    md5_hex(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's worked example: the cipher and extension lists of its section
    /// "Example" give `8daaf6152771` and `e5627efa2ab1`.
    #[test]
    fn spec_example_hashes() {
        let ciphers = [
            0x1301u16, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
            0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let mut c = ciphers.to_vec();
        c.sort_unstable();
        assert_eq!(hash12(&hex_list(&c)), "8daaf6152771");
        let mut e = vec![
            0x001bu16, 0x0033, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b,
            0xff01, 0x000b, 0x000a, 0x0015,
        ];
        e.sort_unstable();
        let sigs = [
            0x0403u16, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        assert_eq!(
            hash12(&format!("{}_{}", hex_list(&e), hex_list(&sigs))),
            "e5627efa2ab1"
        );
        assert_eq!(hash12(&hex_list(&e)), "6d807ffa2a79");
        assert_eq!(hash12(""), "000000000000");
    }

    #[test]
    fn number_writers() {
        let mut s = String::new();
        for v in [0u16, 7, 10, 771, 65535] {
            push_dec(&mut s, v);
            s.push(' ');
        }
        push_hex(&mut s, &[0x00, 0xab, 0x0f]);
        assert_eq!(s, "0 7 10 771 65535 00ab0f");
    }

    #[test]
    fn alpn_characters() {
        assert_eq!(&ja4_alpn(Some(b"h2")), b"h2");
        assert_eq!(&ja4_alpn(Some(b"http/1.1")), b"h1");
        assert_eq!(&ja4_alpn(Some(b"h")), b"hh");
        assert_eq!(&ja4_alpn(None), b"00");
        assert_eq!(&ja4_alpn(Some(b"")), b"00");
        assert_eq!(&ja4_alpn(Some(&[0xab, 0xcd])), b"99");
        // The specification's examples for ASCII bytes that are not alphanumeric.
        assert_eq!(&ja4_alpn(Some(&[0x20])), b"20");
        assert_eq!(&ja4_alpn(Some(&[0x20, 0x61])), b"21");
        assert_eq!(&ja4_alpn(Some(&[0x61, 0x20])), b"60");
    }

    #[test]
    fn sample_hello_fingerprints() {
        let b = crate::parse::hello::tests::sample_client_hello();
        let ch = ClientHello::parse(&b).unwrap();
        let j = ja4(&ch, false);
        // TLS 1.3 from supported_versions, SNI, 3 ciphers and 6 extensions without GREASE.
        assert!(j.starts_with("t13d0306h2_"), "{j}");
        assert_eq!(
            ja3_string(&ch),
            "771,4865-49199-47,0-16-10-11-13-43,29-23,0"
        );
        assert!(ja4(&ch, true).starts_with('q'));
    }
}
