//! Settings of a [`crate::TlsAnalyzer`], with documented defaults and bounds.

use crate::anon::NameKey;

/// A setting outside its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `key` must lie in `range`.
    #[error("tls: {key} = {value} is out of bounds (allowed {range})")]
    OutOfRange {
        /// The setting's name.
        key: &'static str,
        /// The value given.
        value: String,
        /// The allowed range, as text.
        range: &'static str,
    },
}

/// Configuration of a [`crate::TlsAnalyzer`].
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// TLS-over-TCP connections tracked at once (default 65,536; 1 to 16,777,216); when full
    /// the least recently active one is emitted and dropped (`evicted`).
    pub max_connections: usize,
    /// A TCP connection idle this long is emitted and dropped (default 300 s; 1 s to 24 h;
    /// nanoseconds of packet time).
    pub idle_timeout_ns: i64,
    /// QUIC connections tracked at once (default 16,384; 1 to 1,048,576).
    pub max_quic_connections: usize,
    /// A QUIC connection idle this long is emitted (when its handshake was incomplete) and
    /// forgotten (default 30 s; 1 s to 1 h).
    pub quic_idle_timeout_ns: i64,
    /// Largest handshake message reassembled across records and segments, per direction
    /// (default 65,536; 1,024 to 1,048,576): a longer ClientHello, ServerHello or Certificate
    /// is skipped and counted (`handshake_too_large`).
    pub max_handshake_bytes: usize,
    /// Largest QUIC CRYPTO stream prefix reassembled from Initial packets (default 16,384;
    /// 1,024 to 65,536); a ClientHello longer than that is counted (`crypto_too_large`).
    pub max_crypto_bytes: usize,
    /// Certificates of a chain kept in a record (default 8; 1 to 64); `cert_count` stays
    /// exact.
    pub max_certs: usize,
    /// Alerts kept in a record (default 8; 1 to 256).
    pub max_alerts: usize,
    /// Read QUIC Initial packets (default true).
    pub quic: bool,
    /// Keys kept per summary count map (default 10,000; 1 to 1,000,000).
    pub summary_keys: usize,
    /// When set, SNI and certificate names are replaced by keyed tokens (HMAC-SHA256, see
    /// [`NameKey`]) so records can be shared without the names.
    pub name_key: Option<NameKey>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            max_connections: 65_536,
            idle_timeout_ns: 300_000_000_000,
            max_quic_connections: 16_384,
            quic_idle_timeout_ns: 30_000_000_000,
            max_handshake_bytes: 65_536,
            max_crypto_bytes: 16_384,
            max_certs: 8,
            max_alerts: 8,
            quic: true,
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

impl TlsConfig {
    /// Replaces SNI and certificate names with tokens keyed by `key`.
    pub fn with_name_key(mut self, key: [u8; 32]) -> Self {
        self.name_key = Some(NameKey::new(key));
        self
    }

    /// Checks every bound; the error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            "max_connections",
            self.max_connections,
            1,
            1 << 24,
            "1..=16777216",
        )?;
        check(
            "idle_timeout_ns",
            self.idle_timeout_ns,
            1_000_000_000,
            86_400_000_000_000,
            "1 s..=24 h",
        )?;
        check(
            "max_quic_connections",
            self.max_quic_connections,
            1,
            1 << 20,
            "1..=1048576",
        )?;
        check(
            "quic_idle_timeout_ns",
            self.quic_idle_timeout_ns,
            1_000_000_000,
            3_600_000_000_000,
            "1 s..=1 h",
        )?;
        check(
            "max_handshake_bytes",
            self.max_handshake_bytes,
            1024,
            1 << 20,
            "1024..=1048576",
        )?;
        check(
            "max_crypto_bytes",
            self.max_crypto_bytes,
            1024,
            65_536,
            "1024..=65536",
        )?;
        check("max_certs", self.max_certs, 1, 64, "1..=64")?;
        check("max_alerts", self.max_alerts, 1, 256, "1..=256")?;
        check(
            "summary_keys",
            self.summary_keys,
            1,
            1_000_000,
            "1..=1000000",
        )?;
        Ok(())
    }

    /// Every value clamped into its bounds (what the analyzer runs with).
    pub(crate) fn clamped(mut self) -> Self {
        self.max_connections = self.max_connections.clamp(1, 1 << 24);
        self.max_quic_connections = self.max_quic_connections.clamp(1, 1 << 20);
        self.max_handshake_bytes = self.max_handshake_bytes.clamp(1024, 1 << 20);
        self.max_crypto_bytes = self.max_crypto_bytes.clamp(1024, 65_536);
        self.max_certs = self.max_certs.clamp(1, 64);
        self.max_alerts = self.max_alerts.clamp(1, 256);
        self.summary_keys = self.summary_keys.clamp(1, 1_000_000);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_key() {
        TlsConfig::default().validate().unwrap();
        let e = TlsConfig {
            max_crypto_bytes: 10,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("max_crypto_bytes"), "{e}");
        assert!(matches!(
            TlsConfig {
                idle_timeout_ns: 0,
                ..Default::default()
            }
            .validate(),
            Err(ConfigError::OutOfRange {
                key: "idle_timeout_ns",
                ..
            })
        ));
    }
}
