//! ClientHello and ServerHello (RFC 8446 §4.1.2-4.1.3, RFC 5246 §7.4.1), read in place: the
//! structs hold slices of the message and iterators walk the lists, so reading a hello
//! allocates nothing.

use crate::summary::Malformed;

/// The RFC 8701 GREASE values: `0x?a?a` with both bytes equal.
#[inline]
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// A cursor over a byte slice whose reads fail instead of panicking.
struct Reader<'a> {
    d: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(d: &'a [u8]) -> Self {
        Reader { d, at: 0 }
    }
    fn u8(&mut self) -> Option<u8> {
        let v = *self.d.get(self.at)?;
        self.at += 1;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.d.get(self.at..self.at + 2)?;
        self.at += 2;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.d.get(self.at..self.at + n)?;
        self.at += n;
        Some(b)
    }
    /// A vector with a length prefix of 1 or 2 bytes.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.bytes(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.bytes(n)
    }
    fn rest(&self) -> &'a [u8] {
        &self.d[self.at.min(self.d.len())..]
    }
}

/// Big-endian u16 values of a list (a trailing odd byte is ignored).
pub fn u16s(d: &[u8]) -> impl Iterator<Item = u16> + '_ {
    d.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// One extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ext<'a> {
    /// Extension type.
    pub ty: u16,
    /// Extension data.
    pub data: &'a [u8],
}

/// Iterates over an extensions block; stops at the first extension that does not fit.
#[derive(Clone)]
pub struct Exts<'a> {
    r: &'a [u8],
}

impl<'a> Iterator for Exts<'a> {
    type Item = Ext<'a>;
    fn next(&mut self) -> Option<Ext<'a>> {
        let mut rd = Reader::new(self.r);
        let ty = rd.u16()?;
        let data = rd.vec16()?;
        self.r = rd.rest();
        Some(Ext { ty, data })
    }
}

/// Checks that an extensions block is a whole number of well-formed extensions.
fn exts_fit(mut d: &[u8]) -> bool {
    while !d.is_empty() {
        let mut rd = Reader::new(d);
        if rd.u16().is_none() || rd.vec16().is_none() {
            return false;
        }
        d = rd.rest();
    }
    true
}

/// A ClientHello body (after the 4-byte handshake header).
#[derive(Clone, Copy, Debug)]
pub struct ClientHello<'a> {
    /// legacy_version.
    pub version: u16,
    /// Random.
    pub random: &'a [u8],
    /// legacy_session_id.
    pub session_id: &'a [u8],
    /// Cipher suites, 2 bytes each.
    pub ciphers: &'a [u8],
    /// Compression methods.
    pub compression: &'a [u8],
    /// The extensions block (empty when there is none).
    pub extensions: &'a [u8],
}

impl<'a> ClientHello<'a> {
    /// Reads a ClientHello body.
    pub fn parse(body: &'a [u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(body);
        let bad = Malformed::BadClientHello;
        let version = r.u16().ok_or(bad)?;
        let random = r.bytes(32).ok_or(bad)?;
        let session_id = r.vec8().ok_or(bad)?;
        let ciphers = r.vec16().ok_or(bad)?;
        let compression = r.vec8().ok_or(bad)?;
        // Extensions are optional (RFC 5246 §7.4.1.2); trailing bytes after them are an error.
        let extensions = if r.rest().is_empty() {
            &[][..]
        } else {
            let e = r.vec16().ok_or(bad)?;
            if !exts_fit(e) {
                return Err(Malformed::BadExtension);
            }
            e
        };
        if ciphers.len() % 2 != 0 || session_id.len() > 32 {
            return Err(bad);
        }
        Ok(ClientHello {
            version,
            random,
            session_id,
            ciphers,
            compression,
            extensions,
        })
    }

    /// Cipher suites in order.
    pub fn cipher_list(&self) -> impl Iterator<Item = u16> + 'a {
        u16s(self.ciphers)
    }

    /// Extensions in order.
    pub fn exts(&self) -> Exts<'a> {
        Exts { r: self.extensions }
    }

    /// The data of the first extension of type `ty`.
    pub fn ext(&self, ty: u16) -> Option<&'a [u8]> {
        self.exts().find(|e| e.ty == ty).map(|e| e.data)
    }

    /// The host name of the server_name extension (RFC 6066 §3).
    pub fn sni(&self) -> Option<&'a [u8]> {
        let mut r = Reader::new(self.ext(0)?);
        let mut list = Reader::new(r.vec16()?);
        while let Some(kind) = list.u8() {
            let name = list.vec16()?;
            if kind == 0 {
                return Some(name);
            }
        }
        None
    }

    /// The protocol names of the ALPN extension (RFC 7301), in order.
    pub fn alpn(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let list = self
            .ext(16)
            .and_then(|d| Reader::new(d).vec16())
            .unwrap_or(&[]);
        let mut r = Reader::new(list);
        std::iter::from_fn(move || r.vec8())
    }

    /// supported_versions (RFC 8446 §4.2.1), when the extension is present.
    pub fn supported_versions(&self) -> Option<&'a [u8]> {
        Reader::new(self.ext(43)?).vec8()
    }

    /// A list extension with a 2-byte length (supported_groups 10, signature_algorithms 13).
    pub fn list16(&self, ty: u16) -> &'a [u8] {
        self.ext(ty)
            .and_then(|d| Reader::new(d).vec16())
            .unwrap_or(&[])
    }

    /// ec_point_formats (RFC 8422 §5.1.2).
    pub fn point_formats(&self) -> &'a [u8] {
        self.ext(11)
            .and_then(|d| Reader::new(d).vec8())
            .unwrap_or(&[])
    }
}

/// The `random` of a HelloRetryRequest (RFC 8446 §4.1.3): SHA-256 of "HelloRetryRequest".
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A ServerHello body.
#[derive(Clone, Copy, Debug)]
pub struct ServerHello<'a> {
    /// legacy_version.
    pub version: u16,
    /// Random.
    pub random: &'a [u8],
    /// legacy_session_id_echo.
    pub session_id: &'a [u8],
    /// The chosen cipher suite.
    pub cipher: u16,
    /// The chosen compression method.
    pub compression: u8,
    /// The extensions block.
    pub extensions: &'a [u8],
}

impl<'a> ServerHello<'a> {
    /// Reads a ServerHello body.
    pub fn parse(body: &'a [u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(body);
        let bad = Malformed::BadServerHello;
        let version = r.u16().ok_or(bad)?;
        let random = r.bytes(32).ok_or(bad)?;
        let session_id = r.vec8().ok_or(bad)?;
        let cipher = r.u16().ok_or(bad)?;
        let compression = r.u8().ok_or(bad)?;
        let extensions = if r.rest().is_empty() {
            &[][..]
        } else {
            let e = r.vec16().ok_or(bad)?;
            if !exts_fit(e) {
                return Err(Malformed::BadExtension);
            }
            e
        };
        Ok(ServerHello {
            version,
            random,
            session_id,
            cipher,
            compression,
            extensions,
        })
    }

    /// Extensions in order.
    pub fn exts(&self) -> Exts<'a> {
        Exts { r: self.extensions }
    }

    /// The data of the first extension of type `ty`.
    pub fn ext(&self, ty: u16) -> Option<&'a [u8]> {
        self.exts().find(|e| e.ty == ty).map(|e| e.data)
    }

    /// A HelloRetryRequest rather than a ServerHello.
    pub fn is_retry_request(&self) -> bool {
        self.random == HRR_RANDOM
    }

    /// The negotiated version: supported_versions when present, else legacy_version.
    pub fn negotiated_version(&self) -> u16 {
        self.ext(43)
            .and_then(|d| Reader::new(d).u16())
            .unwrap_or(self.version)
    }

    /// The selected ALPN protocol (TLS 1.2 servers send it here; TLS 1.3 ones encrypt it).
    pub fn alpn(&self) -> Option<&'a [u8]> {
        let mut r = Reader::new(self.ext(16)?);
        let mut list = Reader::new(r.vec16()?);
        list.vec8()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello body: TLS 1.2 legacy version, GREASE, SNI, ALPN h2/http1.1, versions.
    pub(crate) fn sample_client_hello() -> Vec<u8> {
        let mut v = vec![3, 3];
        v.extend_from_slice(&[7; 32]);
        v.push(0);
        v.extend_from_slice(&[0, 8, 0x0a, 0x0a, 0x13, 0x01, 0xc0, 0x2f, 0x00, 0x2f]);
        v.extend_from_slice(&[1, 0]);
        let mut e = Vec::new();
        let mut ext = |ty: u16, d: &[u8]| {
            e.extend_from_slice(&ty.to_be_bytes());
            e.extend_from_slice(&(d.len() as u16).to_be_bytes());
            e.extend_from_slice(d);
        };
        ext(0x1a1a, &[]);
        ext(0, b"\x00\x0e\x00\x00\x0bexample.com");
        ext(16, b"\x00\x0c\x02h2\x08http/1.1");
        ext(10, &[0, 6, 0x2a, 0x2a, 0, 0x1d, 0, 0x17]);
        ext(11, &[1, 0]);
        ext(13, &[0, 4, 4, 3, 8, 4]);
        ext(43, &[4, 0x3a, 0x3a, 3, 4]);
        v.extend_from_slice(&(e.len() as u16).to_be_bytes());
        v.extend_from_slice(&e);
        v
    }

    #[test]
    fn client_hello_fields() {
        let b = sample_client_hello();
        let h = ClientHello::parse(&b).unwrap();
        assert_eq!(h.version, 0x0303);
        assert_eq!(
            h.cipher_list().collect::<Vec<_>>(),
            [0x0a0a, 0x1301, 0xc02f, 0x002f]
        );
        assert_eq!(h.sni(), Some(&b"example.com"[..]));
        assert_eq!(h.alpn().collect::<Vec<_>>(), [&b"h2"[..], &b"http/1.1"[..]]);
        assert_eq!(
            u16s(h.supported_versions().unwrap()).collect::<Vec<_>>(),
            [0x3a3a, 0x0304]
        );
        assert_eq!(u16s(h.list16(10)).collect::<Vec<_>>(), [0x2a2a, 0x1d, 0x17]);
        assert_eq!(h.point_formats(), &[0]);
        assert_eq!(h.exts().count(), 7);
        // Cut anywhere: an error, never a panic.
        for n in 0..b.len() {
            let _ = ClientHello::parse(&b[..n]);
        }
        assert!(ClientHello::parse(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn grease_values() {
        let all: Vec<u16> = (0..=u16::MAX).filter(|&v| is_grease(v)).collect();
        assert_eq!(all.len(), 16);
        assert_eq!(all[0], 0x0a0a);
        assert_eq!(all[15], 0xfafa);
    }

    #[test]
    fn server_hello_and_retry_request() {
        let mut b = vec![3, 3];
        b.extend_from_slice(&HRR_RANDOM);
        b.extend_from_slice(&[0, 0x13, 0x01, 0, 0, 6, 0, 43, 0, 2, 3, 4]);
        let s = ServerHello::parse(&b).unwrap();
        assert!(s.is_retry_request());
        assert_eq!(s.negotiated_version(), 0x0304);
        assert_eq!(s.cipher, 0x1301);
        assert_eq!(s.alpn(), None);
    }
}
