//! Counters and the end-of-run summary: connections, handshake messages, table bounds hit,
//! malformed messages by reason, top SNI, ALPN and JA4, versions and ciphers, handshake
//! latency. Mergeable across workers.

use crate::names::{cipher_name, version_name};
pub use netspectra_tally::{BoundedCounts, LatencyHistogram as Latency, LatencySummary};
use serde::Serialize;
use std::collections::BTreeMap;

/// Why something was counted as malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformed {
    /// A record header that is not TLS (content type or version out of range) where one was
    /// expected: the direction lost its framing.
    BadRecord,
    /// A ClientHello that does not parse.
    BadClientHello,
    /// A ServerHello that does not parse.
    BadServerHello,
    /// An extensions block whose extensions do not fit it.
    BadExtension,
    /// A Certificate message or certificate that does not parse.
    BadCertificate,
    /// A handshake message longer than the reassembly bound.
    HandshakeTooLarge,
    /// A QUIC Initial whose protection could not be removed (wrong keys, cut, altered).
    QuicDecrypt,
    /// A QUIC Initial with a frame not allowed there or cut short.
    QuicFrame,
    /// A QUIC CRYPTO stream past its reassembly bound.
    CryptoTooLarge,
}

impl Malformed {
    /// Every reason, in report order.
    pub const ALL: [Malformed; 9] = [
        Malformed::BadRecord,
        Malformed::BadClientHello,
        Malformed::BadServerHello,
        Malformed::BadExtension,
        Malformed::BadCertificate,
        Malformed::HandshakeTooLarge,
        Malformed::QuicDecrypt,
        Malformed::QuicFrame,
        Malformed::CryptoTooLarge,
    ];

    /// Snake-case name for reports and the record's `malformed` field.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::BadRecord => "bad_record",
            Malformed::BadClientHello => "bad_client_hello",
            Malformed::BadServerHello => "bad_server_hello",
            Malformed::BadExtension => "bad_extension",
            Malformed::BadCertificate => "bad_certificate",
            Malformed::HandshakeTooLarge => "handshake_too_large",
            Malformed::QuicDecrypt => "quic_decrypt",
            Malformed::QuicFrame => "quic_frame",
            Malformed::CryptoTooLarge => "crypto_too_large",
        }
    }
}

/// Counters of one analyzer (or several merged).
#[derive(Clone, Debug)]
pub struct TlsStats {
    /// TLS-over-TCP connections tracked.
    pub connections: u64,
    /// QUIC connections tracked.
    pub quic_connections: u64,
    /// Records emitted.
    pub records: u64,
    /// ClientHello messages read (TCP and QUIC).
    pub client_hellos: u64,
    /// ServerHello messages read (HelloRetryRequests included).
    pub server_hellos: u64,
    /// Certificates read (TLS 1.2 and below).
    pub certificates: u64,
    /// Handshakes where the server resumed a session.
    pub resumed: u64,
    /// Alerts read in clear.
    pub alerts: u64,
    /// Alert records sent encrypted.
    pub encrypted_alerts: u64,
    /// TCP connections emitted early because the table was full.
    pub evicted: u64,
    /// QUIC connections dropped because their table was full.
    pub quic_evicted: u64,
    /// TCP connections emitted after the idle timeout.
    pub timed_out: u64,
    /// TCP segments whose whole range was seen before.
    pub retransmissions: u64,
    /// Sequence gaps in tracked connections (the direction resynchronises on the next record
    /// header).
    pub gaps: u64,
    /// QUIC Initial packets decrypted.
    pub quic_initials: u64,
    /// Malformed messages by reason.
    pub malformed: BTreeMap<Malformed, u64>,
    /// Connections by SNI (or its token); those without SNI under `-`.
    pub sni: BoundedCounts,
    /// Connections by first ALPN protocol offered.
    pub alpn: BoundedCounts,
    /// Connections by JA4.
    pub ja4: BoundedCounts,
    /// Connections by negotiated version code.
    pub versions: BTreeMap<u16, u64>,
    /// Connections by chosen cipher suite.
    pub ciphers: BTreeMap<u16, u64>,
    /// ClientHello to ServerHello latency.
    pub latency: Latency,
}

impl TlsStats {
    /// Empty counters; the top-N maps hold at most `cap` keys each.
    pub fn new(cap: usize) -> Self {
        TlsStats {
            connections: 0,
            quic_connections: 0,
            records: 0,
            client_hellos: 0,
            server_hellos: 0,
            certificates: 0,
            resumed: 0,
            alerts: 0,
            encrypted_alerts: 0,
            evicted: 0,
            quic_evicted: 0,
            timed_out: 0,
            retransmissions: 0,
            gaps: 0,
            quic_initials: 0,
            malformed: BTreeMap::new(),
            sni: BoundedCounts::new(cap),
            alpn: BoundedCounts::new(cap),
            ja4: BoundedCounts::new(cap),
            versions: BTreeMap::new(),
            ciphers: BTreeMap::new(),
            latency: Latency::default(),
        }
    }

    /// Counts one malformed message.
    pub fn malformed(&mut self, why: Malformed) {
        *self.malformed.entry(why).or_default() += 1;
    }

    /// Malformed messages, all reasons.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }

    /// Adds `o` into `self`.
    pub fn merge(&mut self, o: &TlsStats) {
        self.connections += o.connections;
        self.quic_connections += o.quic_connections;
        self.records += o.records;
        self.client_hellos += o.client_hellos;
        self.server_hellos += o.server_hellos;
        self.certificates += o.certificates;
        self.resumed += o.resumed;
        self.alerts += o.alerts;
        self.encrypted_alerts += o.encrypted_alerts;
        self.evicted += o.evicted;
        self.quic_evicted += o.quic_evicted;
        self.timed_out += o.timed_out;
        self.retransmissions += o.retransmissions;
        self.gaps += o.gaps;
        self.quic_initials += o.quic_initials;
        for (k, v) in &o.malformed {
            *self.malformed.entry(*k).or_default() += v;
        }
        self.sni.merge(&o.sni);
        self.alpn.merge(&o.alpn);
        self.ja4.merge(&o.ja4);
        for (k, v) in &o.versions {
            *self.versions.entry(*k).or_default() += v;
        }
        for (k, v) in &o.ciphers {
            *self.ciphers.entry(*k).or_default() += v;
        }
        self.latency.merge(&o.latency);
    }

    /// The serializable summary with the `top` most frequent SNI, ALPN and JA4 values.
    pub fn report(&self, top: usize) -> TlsSummary {
        TlsSummary {
            connections: self.connections,
            quic_connections: self.quic_connections,
            records: self.records,
            client_hellos: self.client_hellos,
            server_hellos: self.server_hellos,
            certificates: self.certificates,
            resumed: self.resumed,
            alerts: self.alerts,
            encrypted_alerts: self.encrypted_alerts,
            evicted: self.evicted,
            quic_evicted: self.quic_evicted,
            timed_out: self.timed_out,
            retransmissions: self.retransmissions,
            gaps: self.gaps,
            quic_initials: self.quic_initials,
            top_sni: self.sni.top(top),
            top_alpn: self.alpn.top(top),
            top_ja4: self.ja4.top(top),
            versions: self
                .versions
                .iter()
                .map(|(k, v)| {
                    let name = version_name(*k).map_or_else(|| format!("0x{k:04x}"), String::from);
                    (name, *v)
                })
                .collect(),
            ciphers: self
                .ciphers
                .iter()
                .map(|(k, v)| {
                    let name = cipher_name(*k).map_or_else(|| format!("0x{k:04x}"), String::from);
                    (name, *v)
                })
                .collect(),
            latency_us: self.latency.summary(),
            malformed: Malformed::ALL
                .iter()
                .filter_map(|m| self.malformed.get(m).map(|&n| (m.name().to_string(), n)))
                .collect(),
        }
    }
}

/// The end-of-run summary (see [`TlsStats`] for what each count means).
#[derive(Clone, Debug, Serialize)]
#[allow(missing_docs)]
pub struct TlsSummary {
    pub connections: u64,
    pub quic_connections: u64,
    pub records: u64,
    pub client_hellos: u64,
    pub server_hellos: u64,
    pub certificates: u64,
    pub resumed: u64,
    pub alerts: u64,
    pub encrypted_alerts: u64,
    pub evicted: u64,
    pub quic_evicted: u64,
    pub timed_out: u64,
    pub retransmissions: u64,
    pub gaps: u64,
    pub quic_initials: u64,
    /// Most frequent SNI values.
    pub top_sni: Vec<(String, u64)>,
    /// Most frequent first ALPN protocols offered.
    pub top_alpn: Vec<(String, u64)>,
    /// Most frequent JA4 fingerprints.
    pub top_ja4: Vec<(String, u64)>,
    /// Connections by negotiated version.
    pub versions: BTreeMap<String, u64>,
    /// Connections by chosen cipher suite.
    pub ciphers: BTreeMap<String, u64>,
    /// ClientHello to ServerHello latency.
    pub latency_us: LatencySummary,
    /// Malformed messages by reason.
    pub malformed: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_and_report_names() {
        let mut a = TlsStats::new(10);
        a.connections = 2;
        a.versions.insert(0x0304, 2);
        a.sni.add("a.example", 2);
        let mut b = TlsStats::new(10);
        b.connections = 1;
        b.versions.insert(0x0304, 1);
        b.ciphers.insert(0x1301, 1);
        b.sni.add("a.example", 1);
        b.latency.record(100);
        a.merge(&b);
        let r = a.report(5);
        assert_eq!(r.connections, 3);
        assert_eq!(r.versions.get("TLS 1.3"), Some(&3));
        assert_eq!(r.ciphers.get("TLS_AES_128_GCM_SHA256"), Some(&1));
        assert_eq!(r.top_sni, vec![("a.example".to_string(), 3)]);
        assert_eq!(r.latency_us.p50, Some(100));
    }
}
