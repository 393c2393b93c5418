//! The server's certificate chain of TLS 1.2 and below (RFC 5246 §7.4.2): for each certificate
//! its subject, issuer, serial number and validity, and the leaf's DNS subject alternative
//! names. The DER is read by x509-parser (rusticata), a well-kept parser that is fuzzed
//! upstream and here (`tls_parse`).

use crate::anon::NameKey;
use crate::record::TlsRecord;
use crate::summary::Malformed;
use x509_parser::extensions::GeneralName;
use x509_parser::parse_x509_certificate;

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
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
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
        rec.cert_subjects.push(name(c.subject().to_string()));
        rec.cert_issuers.push(name(c.issuer().to_string()));
        let mut serial = String::with_capacity(c.raw_serial().len() * 2);
        for b in c.raw_serial() {
            use std::fmt::Write as _;
            let _ = write!(serial, "{b:02x}");
        }
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
