//! Settings of a [`crate::DnsAnalyzer`], with documented defaults and bounds.

use crate::anon::NameKey;

/// A setting outside its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `key` must lie in `range`.
    #[error("dns: {key} = {value} is out of bounds (allowed {range})")]
    OutOfRange {
        /// The setting's name.
        key: &'static str,
        /// The value given.
        value: String,
        /// The allowed range, as text.
        range: &'static str,
    },
}

/// Configuration of a [`crate::DnsAnalyzer`].
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Transactions remembered at once, pending or recently answered (default 65,536; 1 to
    /// 16,777,216). When full, the oldest answered one is dropped, else the oldest pending one
    /// (emitted as unanswered); counted in `evicted`.
    pub max_transactions: usize,
    /// A query with no response after this long is emitted as unanswered (default 10 s; 1 ms
    /// to 1 h; nanoseconds of packet time).
    pub query_timeout_ns: i64,
    /// An answered transaction is remembered this long after its response, so that duplicated
    /// frames and retransmissions are recognised and not recorded again (default 1 s; 0 to
    /// 1 h). A duplicate arriving later is recorded as an orphan response.
    pub duplicate_window_ns: i64,
    /// DNS-over-TCP connections tracked at once (default 16,384; 1 to 1,048,576); when full the
    /// least recently active one is dropped (counted in `tcp_evicted`).
    pub max_tcp_connections: usize,
    /// A DNS-over-TCP connection idle this long is dropped (default 60 s; 1 s to 1 h).
    pub tcp_idle_timeout_ns: i64,
    /// Largest DNS-over-TCP message reassembled across segments (default 65,535, the most the
    /// length prefix can say; 512 to 65,535). Longer messages are skipped and counted in
    /// `tcp_too_large`.
    pub max_tcp_message: usize,
    /// Records kept per section of one transaction (default 64; 1 to 4,096); the header counts
    /// stay exact and `records_capped` counts the cut.
    pub max_records: usize,
    /// Look for DNS on UDP/TCP ports other than 53, 5353 (mDNS) and 5355 (LLMNR), by content
    /// (default true; see docs/DNS.md for the rule).
    pub detect_off_port: bool,
    /// Keys kept in the summary's query-name map (default 10,000; 1 to 1,000,000).
    pub summary_keys: usize,
    /// When set, query names and every name in record data are replaced by a keyed token
    /// (HMAC-SHA256, see [`NameKey`]) so records can be shared without the names.
    pub name_key: Option<NameKey>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            max_transactions: 65_536,
            query_timeout_ns: 10_000_000_000,
            duplicate_window_ns: 1_000_000_000,
            max_tcp_connections: 16_384,
            tcp_idle_timeout_ns: 60_000_000_000,
            max_tcp_message: 65_535,
            max_records: 64,
            detect_off_port: true,
            summary_keys: 10_000,
            name_key: None,
        }
    }
}

fn check<T: PartialOrd + ToString>(
    key: &'static str,
    v: T,
    lo: T,
    hi: T,
    range: &'static str,
) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::OutOfRange {
            key,
            value: v.to_string(),
            range,
        });
    }
    Ok(())
}

impl DnsConfig {
    /// Replaces names with tokens keyed by `key` (see [`DnsConfig::name_key`]).
    pub fn with_name_key(mut self, key: [u8; 32]) -> Self {
        self.name_key = Some(NameKey::new(key));
        self
    }

    /// Checks every bound; the error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            "max_transactions",
            self.max_transactions,
            1,
            1 << 24,
            "1..=16777216",
        )?;
        check(
            "query_timeout_ns",
            self.query_timeout_ns,
            1_000_000,
            3_600_000_000_000,
            "1 ms..=1 h",
        )?;
        check(
            "max_tcp_connections",
            self.max_tcp_connections,
            1,
            1 << 20,
            "1..=1048576",
        )?;
        check(
            "tcp_idle_timeout_ns",
            self.tcp_idle_timeout_ns,
            1_000_000_000,
            3_600_000_000_000,
            "1 s..=1 h",
        )?;
        check(
            "max_tcp_message",
            self.max_tcp_message,
            512,
            65_535,
            "512..=65535",
        )?;
        check("max_records", self.max_records, 1, 4096, "1..=4096")?;
        check(
            "summary_keys",
            self.summary_keys,
            1,
            1_000_000,
            "1..=1000000",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_key() {
        DnsConfig::default().validate().unwrap();
        let c = DnsConfig {
            max_records: 0,
            ..Default::default()
        };
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("max_records"), "{e}");
        let c = DnsConfig {
            query_timeout_ns: 10,
            ..Default::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::OutOfRange {
                key: "query_timeout_ns",
                ..
            })
        ));
    }
}
