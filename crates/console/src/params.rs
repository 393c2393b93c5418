//! Query-string parameters, decoded and checked before any query is built: every value is
//! parsed into a typed form (numbers, addresses, prefixes, names from a fixed list, or text of a
//! limited alphabet and length), and anything else is a [`BadRequest`] naming the parameter.

use std::net::IpAddr;

/// Most rows any query returns.
pub const MAX_LIMIT: u64 = 10_000;
/// Longest text value accepted (host, URI prefix, ...).
pub const MAX_TEXT: usize = 512;

/// A request the API refuses (HTTP 400), with the reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad(msg: impl Into<String>) -> BadRequest {
    BadRequest(msg.into())
}

/// The decoded parameters of one request (name, value), in order.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes a raw query string (`a=1&b=x%20y`); values must be UTF-8 once decoded.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params, BadRequest> {
        let mut out = Vec::new();
        let Some(raw) = raw else {
            return Ok(Params(out));
        };
        if raw.len() > 8192 {
            return Err(bad("query string longer than 8192 bytes"));
        }
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = decode(k).ok_or_else(|| bad("a parameter name is not UTF-8"))?;
            let v = decode(v).ok_or_else(|| bad(format!("parameter {k:?} is not UTF-8")))?;
            if !allowed.contains(&k.as_str()) {
                return Err(bad(format!(
                    "unknown parameter {:?} (allowed: {})",
                    k.chars().take(64).collect::<String>(),
                    allowed.join(", ")
                )));
            }
            if out.iter().any(|(n, _)| *n == k) {
                return Err(bad(format!("parameter {k:?} given twice")));
            }
            out.push((k, v));
        }
        Ok(Params(out))
    }

    /// The value of `name`, if given (and not empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// An unsigned number in `lo..=hi`.
    pub fn num(&self, name: &str, lo: u64, hi: u64) -> Result<Option<u64>, BadRequest> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let n: u64 = v
            .parse()
            .map_err(|_| bad(format!("{name}: {:?} is not a number", short(v))))?;
        if !(lo..=hi).contains(&n) {
            return Err(bad(format!("{name}: {n} is out of range {lo}..={hi}")));
        }
        Ok(Some(n))
    }

    /// The row limit (`limit`, default `def`, at most [`MAX_LIMIT`]).
    pub fn limit(&self, def: u64) -> Result<u64, BadRequest> {
        Ok(self.num("limit", 1, MAX_LIMIT)?.unwrap_or(def))
    }

    /// A time: seconds since the epoch or `YYYY-MM-DDTHH:MM:SS[Z]`.
    pub fn time(&self, name: &str) -> Result<Option<i64>, BadRequest> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if let Ok(n) = v.parse::<i64>() {
            if (0..=253_402_300_799).contains(&n) {
                return Ok(Some(n));
            }
        }
        let t = if v.len() >= 19 && v.len() <= 30 {
            netspectra_store::schema::parse_time(&format!("{}.0Z", &v[..19.min(v.len())]))
        } else {
            None
        };
        t.map(Some).ok_or_else(|| {
            bad(format!(
                "{name}: {:?} is not a time (seconds since the epoch or YYYY-MM-DDTHH:MM:SSZ)",
                short(v)
            ))
        })
    }

    /// An address or prefix (`10.0.0.0/8`, `2001:db8::/32`, `10.0.0.1`).
    pub fn cidr(&self, name: &str) -> Result<Option<Cidr>, BadRequest> {
        self.get(name)
            .map(|v| Cidr::parse(v).map_err(|m| bad(format!("{name}: {m}"))))
            .transpose()
    }

    /// A text value of at most [`MAX_TEXT`] bytes of printable characters (no quotes,
    /// backslashes or control characters).
    pub fn text(&self, name: &str) -> Result<Option<String>, BadRequest> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if v.len() > MAX_TEXT {
            return Err(bad(format!("{name}: longer than {MAX_TEXT} bytes")));
        }
        if v.chars()
            .any(|c| c.is_control() || c == '\'' || c == '"' || c == '\\' || c == '`')
        {
            return Err(bad(format!(
                "{name}: quotes, backslashes and control characters are not accepted"
            )));
        }
        Ok(Some(v.to_string()))
    }

    /// A token of letters, digits, `-`, `_`, `.` and `:` (names, methods, Community IDs
    /// without their padding).
    pub fn token(&self, name: &str, max: usize) -> Result<Option<String>, BadRequest> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if v.len() > max
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
        {
            return Err(bad(format!(
                "{name}: {:?}: letters, digits and -_.:/+= only, at most {max}",
                short(v)
            )));
        }
        Ok(Some(v.to_string()))
    }

    /// One of `choices` (default `def`).
    pub fn choice<'a>(
        &self,
        name: &str,
        choices: &[&'a str],
        def: &'a str,
    ) -> Result<&'a str, BadRequest> {
        let Some(v) = self.get(name) else {
            return Ok(def);
        };
        choices.iter().copied().find(|c| *c == v).ok_or_else(|| {
            bad(format!(
                "{name}: {:?} is not one of {}",
                short(v),
                choices.join(", ")
            ))
        })
    }
}

fn short(v: &str) -> String {
    v.chars().take(64).collect()
}

/// Percent-decodes (and `+` to space); None when the result is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'%' => return None,
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// An address prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits cleared).
    pub addr: IpAddr,
    /// Prefix length.
    pub bits: u8,
}

impl Cidr {
    /// Parses `ADDR` or `ADDR/LEN`; IPv6 lengths are multiples of 8 (what both backends can
    /// cut).
    pub fn parse(v: &str) -> Result<Cidr, String> {
        let (a, l) = match v.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (v, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{:?} is not an IP address or prefix", short(v)))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match l {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{:?}: prefix length must be 0..={max}", short(v)))?,
            None => max,
        };
        if addr.is_ipv6() && !bits.is_multiple_of(8) {
            return Err(format!(
                "{:?}: IPv6 prefix lengths are multiples of 8",
                short(v)
            ));
        }
        Ok(Cidr {
            addr: mask(addr, bits),
            bits,
        })
    }

    /// True for a single address.
    pub fn is_host(&self) -> bool {
        self.bits == if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

/// `addr` with the bits after `bits` cleared.
pub fn mask(addr: IpAddr, bits: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits.min(32)))
            };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits.min(128)))
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_refuses_non_utf8_unknown_and_repeated_parameters() {
        let p = Params::parse(Some("a=x%20y&b=1+2"), &["a", "b"]).unwrap();
        assert_eq!(p.get("a"), Some("x y"));
        assert_eq!(p.get("b"), Some("1 2"));
        assert!(Params::parse(Some("a=%FF%FE"), &["a"])
            .unwrap_err()
            .0
            .contains("not UTF-8"));
        assert!(Params::parse(Some("a=%"), &["a"]).is_err());
        assert!(Params::parse(Some("a=%4"), &["a"]).is_err());
        assert!(Params::parse(Some("zz=1"), &["a"])
            .unwrap_err()
            .0
            .contains("unknown parameter"));
        assert!(Params::parse(Some("a=1&a=2"), &["a"]).is_err());
    }

    #[test]
    fn values_are_typed_and_bounded() {
        let p = Params::parse(
            Some("limit=99999999999&n=5&t=2023-11-14T22:13:20Z&h=a'b&c=10.1.2.3/24"),
            &["limit", "n", "t", "h", "c"],
        )
        .unwrap();
        assert!(p.limit(10).is_err());
        assert_eq!(p.num("n", 1, 10).unwrap(), Some(5));
        assert_eq!(p.time("t").unwrap(), Some(1_700_000_000));
        assert!(p.text("h").is_err());
        let c = p.cidr("c").unwrap().unwrap();
        assert_eq!(c.addr.to_string(), "10.1.2.0");
        assert_eq!(c.bits, 24);
        for b in ["10.0.0.0/33", "1.2.3", "fe80::/13", "x/8", "10.0.0.0/-1"] {
            assert!(Cidr::parse(b).is_err(), "{b}");
        }
        assert!(Cidr::parse("2001:db8::/32").is_ok());
    }
}
