//! The server's certificate chain of TLS 1.2 and below (RFC 5246 §7.4.2): for each certificate
//! its subject, issuer, serial number and validity, and the leaf's DNS subject alternative
//! names. The DER is read by x509-parser (rusticata), a well-kept parser that is fuzzed
//! upstream and here (`tls_parse`).

use crate::anon::NameKey;
use crate::record::TlsRecord;
use crate::summary::Malformed;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{
    OID_DOMAIN_COMPONENT, OID_PKCS9_EMAIL_ADDRESS, OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME,
    OID_X509_LOCALITY_NAME, OID_X509_ORGANIZATIONAL_UNIT, OID_X509_ORGANIZATION_NAME,
    OID_X509_STATE_OR_PROVINCE_NAME,
};
use x509_parser::parse_x509_certificate;
use x509_parser::x509::X509Name;

/// A name as x509-parser's `Display` writes it (`C=US, O=..., CN=...`, multi-valued RDNs
/// joined by ` + `), built directly for the common attributes and string types; anything else
/// falls back to that `Display`.
fn name_text(n: &X509Name<'_>) -> String {
    let mut out = String::with_capacity(64);
    for (i, rdn) in n.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        for (j, a) in rdn.iter().enumerate() {
            if j > 0 {
                out.push_str(" + ");
            }
            let t = a.attr_type();
            let abbrev = if *t == OID_X509_COMMON_NAME {
                "CN"
            } else if *t == OID_X509_COUNTRY_NAME {
                "C"
            } else if *t == OID_X509_ORGANIZATION_NAME {
                "O"
            } else if *t == OID_X509_ORGANIZATIONAL_UNIT {
                "OU"
            } else if *t == OID_X509_LOCALITY_NAME {
                "L"
            } else if *t == OID_X509_STATE_OR_PROVINCE_NAME {
                "ST"
            } else if *t == OID_DOMAIN_COMPONENT {
                "DC"
            } else if *t == OID_PKCS9_EMAIL_ADDRESS {
                "Email"
            } else {
                return n.to_string();
            };
            let Ok(v) = a.as_str() else {
                return n.to_string();
            };
            out.push_str(abbrev);
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

/// `YYYY-MM-DDThh:mm:ssZ` of a Unix time.
fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    // Written digit by digit: certificates are read for every TLS 1.2 connection.
    let mut out = String::with_capacity(20);
    let mut num = |v: i64, width: usize, sep: Option<char>| {
        let v = v.clamp(0, 9999);
        for p in (0..width).rev() {
            out.push((b'0' + (v / 10i64.pow(p as u32) % 10) as u8) as char);
        }
        if let Some(c) = sep {
            out.push(c);
        }
    };
    num(y, 4, Some('-'));
    num(m, 2, Some('-'));
    num(d, 2, Some('T'));
    num(sod / 3600, 2, Some(':'));
    num(sod / 60 % 60, 2, Some(':'));
    num(sod % 60, 2, Some('Z'));
    out
}

fn u24(b: &[u8]) -> usize {
    ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize
}

/// Reads a Certificate message body into `rec` (at most `max` certificates kept; names
/// replaced by tokens with a key). Returns how many certificates were read.
pub(crate) fn read_certificates(
    body: &[u8],
    rec: &mut TlsRecord,
    max: usize,
    key: Option<&NameKey>,
) -> Result<usize, Malformed> {
    let bad = Malformed::BadCertificate;
    if body.len() < 3 {
        return Err(bad);
    }
    let total = u24(body);
    let list = body.get(3..3 + total).ok_or(bad)?;
    let mut at = 0;
    let mut n = 0;
    while at < list.len() {
        let len = u24(list.get(at..at + 3).ok_or(bad)?);
        let der = list.get(at + 3..at + 3 + len).ok_or(bad)?;
        at += 3 + len;
        n += 1;
        rec.cert_count = rec.cert_count.saturating_add(1);
        if rec.cert_subjects.len() >= max {
            continue;
        }
        let (_, c) = parse_x509_certificate(der).map_err(|_| bad)?;
        let name = |s: String| match key {
            Some(k) => k.token(s.as_bytes()),
            None => s,
        };
        rec.cert_subjects.push(name(name_text(c.subject())));
        rec.cert_issuers.push(name(name_text(c.issuer())));
        let mut serial = String::with_capacity(c.raw_serial().len() * 2);
        crate::fingerprint::push_hex(&mut serial, c.raw_serial());
        rec.cert_serials.push(serial);
        rec.cert_not_before
            .push(iso8601(c.validity().not_before.timestamp()));
        rec.cert_not_after
            .push(iso8601(c.validity().not_after.timestamp()));
        if n == 1 {
            if let Ok(Some(san)) = c.subject_alternative_name() {
                for g in &san.value.general_names {
                    if let GeneralName::DNSName(d) = g {
                        rec.cert_san_dns.push(match key {
                            Some(k) => k.token(d.as_bytes()),
                            None => d.to_string(),
                        });
                    }
                }
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_698_796_800), "2023-11-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn cut_lists_are_errors() {
        let mut r = TlsRecord::default();
        assert_eq!(
            read_certificates(&[0, 0, 5, 0], &mut r, 8, None),
            Err(Malformed::BadCertificate)
        );
        assert_eq!(
            read_certificates(&[0, 0, 4, 0, 0, 9, 1], &mut r, 8, None),
            Err(Malformed::BadCertificate)
        );
        assert_eq!(read_certificates(&[0, 0, 0], &mut r, 8, None), Ok(0));
    }
}
