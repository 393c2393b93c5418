//! A compact JSON serializer for record lines that writes the same bytes as
//! `serde_json::to_writer`, only faster: strings are checked for characters that need escaping
//! eight bytes at a time and copied whole when clean (the common case for addresses, hosts,
//! URIs and user agents), integers go through `itoa`, and output lands in a reused `Vec`.
//!
//! `serde_json` stays the reference: the tests compare both byte for byte on random records.

use serde::ser::{self, Serialize};
use std::fmt::Display;

/// Serializer error (same type as `serde_json`'s, so callers see one error type).
pub type Error = serde_json::Error;

fn err(msg: impl Display) -> Error {
    <serde_json::Error as ser::Error>::custom(msg)
}

/// Appends the compact JSON text of `value` to `out`.
pub fn to_vec<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut JsonWriter { out })
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// True when one of the eight bytes of `w` is a control character, `"` or `\`.
#[inline]
fn has_special(w: u64) -> bool {
    let below_space = w.wrapping_sub(LO * 0x20) & !w;
    let q = w ^ (LO * b'"' as u64);
    let quote = q.wrapping_sub(LO) & !q;
    let b = w ^ (LO * b'\\' as u64);
    let backslash = b.wrapping_sub(LO) & !b;
    (below_space | quote | backslash) & HI != 0
}

/// Writes `s` as a JSON string with `serde_json`'s escapes (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
/// `\t`, other control characters as `\u00xx`; everything else verbatim).
#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let n = b.len();
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"));
    let half = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes"));
    // Find whether anything needs escaping, a word at a time; the last partial word is tested
    // as an overlapping load (no byte copies, which would stall the load).
    let (clean, i) = if n >= 8 {
        let mut i = 0;
        while i + 8 <= n && !has_special(word(i)) {
            i += 8;
        }
        (i + 8 > n && (i == n || !has_special(word(n - 8))), i.min(n))
    } else if n >= 4 {
        (
            !has_special(u64::from(half(0)) | u64::from(half(n - 4)) << 32),
            0,
        )
    } else {
        (b.iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\'), 0)
    };
    if clean {
        out.extend_from_slice(b);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (j, &c) in b.iter().enumerate().skip(i) {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&b[start..j]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(c >> 4) as usize],
                    HEX[(c & 15) as usize],
                ]);
                start = j + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[start..j]);
        out.extend_from_slice(esc);
        start = j + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

#[inline]
fn write_int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// The serializer: appends to `out`.
struct JsonWriter<'a> {
    out: &'a mut Vec<u8>,
}

/// A sequence, map or struct in progress: writes the separators.
struct Compound<'w, 'a> {
    w: &'w mut JsonWriter<'a>,
    first: bool,
    /// Closing text: `]`, `}`, or `]}` / `}}` for enum variants.
    close: &'static [u8],
}

impl Compound<'_, '_> {
    #[inline]
    fn comma(&mut self) {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
    }
}

impl<'w, 'a> ser::Serializer for &'w mut JsonWriter<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        // Rare in records: serde_json's own float formatting keeps the bytes identical.
        serde_json::to_writer(&mut *self.out, &v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, &v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.out.push(b'[');
        for (i, b) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_int(self.out, *b);
        }
        self.out.push(b']');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        v.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'w, 'a>, Error> {
        self.out.push(b'[');
        Ok(Compound {
            w: self,
            first: true,
            close: b"]",
        })
    }
    fn serialize_tuple(self, n: usize) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_seq(Some(n))
    }
    fn serialize_tuple_struct(self, _: &'static str, n: usize) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_seq(Some(n))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":[");
        Ok(Compound {
            w: self,
            first: true,
            close: b"]}",
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'w, 'a>, Error> {
        self.out.push(b'{');
        Ok(Compound {
            w: self,
            first: true,
            close: b"}",
        })
    }
    fn serialize_struct(self, _: &'static str, n: usize) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_map(Some(n))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":{");
        Ok(Compound {
            w: self,
            first: true,
            close: b"}}",
        })
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.comma();
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Error> {
        self.w.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
        self.comma();
        k.serialize(KeyWriter {
            out: &mut *self.w.out,
        })?;
        self.w.out.push(b':');
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Error> {
        self.w.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.comma();
        write_str(self.w.out, key);
        self.w.out.push(b':');
        v.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), Error> {
        self.w.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(self, key, v)
    }
    fn end(self) -> Result<(), Error> {
        self.w.out.extend_from_slice(self.close);
        Ok(())
    }
}

/// Map keys: strings, or numbers, booleans and chars written as strings (as `serde_json` does).
struct KeyWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl KeyWriter<'_> {
    fn quoted_int<I: itoa::Integer>(self, v: I) -> Result<(), Error> {
        self.out.push(b'"');
        write_int(self.out, v);
        self.out.push(b'"');
        Ok(())
    }
}

fn key_error() -> Error {
    err("key must be a string")
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"\"true\"" } else { b"\"false\"" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.quoted_int(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.quoted_int(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.quoted_int(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.quoted_int(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.quoted_int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.quoted_int(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.quoted_int(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.quoted_int(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.quoted_int(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.quoted_int(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.serialize_f64(v as f64)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(err("float key must be finite"));
        }
        self.out.push(b'"');
        serde_json::to_writer(&mut *self.out, &v)?;
        self.out.push(b'"');
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_error())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_error())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_error())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_error())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    #[derive(serde::Serialize, Debug, Clone)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Request,
        Other(u32),
        Pair(u8, i16),
        Shape { w: u32, h: Option<u64> },
    }

    #[derive(serde::Serialize, Debug, Clone)]
    struct Rec {
        #[serde(rename = "type")]
        kind: Kind,
        text: String,
        opt: Option<String>,
        n: u64,
        i: i64,
        f: f64,
        flag: bool,
        c: char,
        ip: IpAddr,
        list: Vec<String>,
        map: BTreeMap<String, u32>,
        nums: BTreeMap<u16, bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        unit: (),
        bytes: Vec<u8>,
        tuple: (u8, String),
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::Request),
            any::<u32>().prop_map(Kind::Other),
            (any::<u8>(), any::<i16>()).prop_map(|(a, b)| Kind::Pair(a, b)),
            (any::<u32>(), any::<Option<u64>>()).prop_map(|(w, h)| Kind::Shape { w, h }),
        ]
    }

    /// Strings rich in the characters that need escaping, plus arbitrary Unicode.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,40}",
            "[\\x00-\\x1f\"\\\\a-z\u{7f}\u{e9}\u{20ac}\u{1f600}]{0,40}",
            any::<String>(),
        ]
    }

    fn rec() -> impl Strategy<Value = Rec> {
        (
            (
                kind(),
                text(),
                proptest::option::of(text()),
                any::<u64>(),
                any::<i64>(),
                any::<f64>(),
                any::<bool>(),
                any::<char>(),
            ),
            (
                any::<[u8; 16]>(),
                proptest::collection::vec(text(), 0..4),
                proptest::collection::btree_map(text(), any::<u32>(), 0..4),
                proptest::collection::btree_map(any::<u16>(), any::<bool>(), 0..3),
                any::<Option<u8>>(),
                proptest::collection::vec(any::<u8>(), 0..5),
                (any::<u8>(), text()),
            ),
        )
            .prop_map(
                |(
                    (kind, text, opt, n, i, f, flag, c),
                    (ip, list, map, nums, skipped, bytes, tuple),
                )| {
                    let ip = if ip[0] % 2 == 0 {
                        IpAddr::from([ip[1], ip[2], ip[3], ip[4]])
                    } else {
                        IpAddr::from(ip)
                    };
                    Rec {
                        kind,
                        text,
                        opt,
                        n,
                        i,
                        f,
                        flag,
                        c,
                        ip,
                        list,
                        map,
                        nums,
                        skipped,
                        unit: (),
                        bytes,
                        tuple,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Same bytes as serde_json for random records (serde_json is the oracle).
        #[test]
        fn same_bytes_as_serde_json(r in rec()) {
            let mut ours = Vec::new();
            to_vec(&mut ours, &r).unwrap();
            prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&r).unwrap());
        }

        /// Every string, at every alignment, escapes exactly as serde_json escapes it.
        #[test]
        fn strings_escape_like_serde_json(s in text(), pad in 0usize..8) {
            let s = format!("{}{s}", "x".repeat(pad));
            let mut ours = Vec::new();
            write_str(&mut ours, &s);
            prop_assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn every_special_byte_is_found_in_every_lane() {
        for c in (0u8..0x20).chain([b'"', b'\\']) {
            for lane in 0..8 {
                let mut w = [b'a'; 8];
                w[lane] = c;
                assert!(
                    has_special(u64::from_le_bytes(w)),
                    "byte {c:#x} lane {lane}"
                );
            }
        }
        for c in (0x20u8..=0xff).filter(|&c| c != b'"' && c != b'\\') {
            assert!(!has_special(u64::from_le_bytes([c; 8])), "byte {c:#x}");
        }
    }

    #[test]
    fn map_keys_that_are_not_strings_or_numbers_are_errors() {
        let mut m = BTreeMap::new();
        m.insert(vec![1u8], 1u8);
        let mut out = Vec::new();
        assert!(to_vec(&mut out, &m).is_err());
        assert!(serde_json::to_string(&m).is_err());
    }
}
