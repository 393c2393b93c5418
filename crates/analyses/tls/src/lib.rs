//! TLS and QUIC handshake metadata from packets: one [`TlsRecord`] per TLS-over-TCP connection
//! or QUIC connection.
//!
//! [`TlsAnalyzer`] takes packets already decoded by `netspectra_packet::decode`. Over TCP it
//! detects TLS on any port by content (a segment that starts with a ClientHello or ServerHello
//! record), follows the record layer in both directions, reassembles handshake messages across
//! records and segments within a bound, and reads the ClientHello (SNI, ALPN, versions, cipher
//! suites, groups, signature algorithms, JA3, JA4), the ServerHello (version, cipher, ALPN,
//! resumption, latency), TLS 1.2 certificate chains (subject, issuer, validity, serial, SAN) and
//! alerts. Over UDP it reads QUIC v1/v2 Initial packets: decrypted with the keys derived from
//! the client's Destination Connection ID, CRYPTO frames reassembled across packets, the same
//! hello fields plus the QUIC version and connection IDs. Every table is bounded and counts what
//! it drops; a packet of a connection that carries neither costs one cheap content check.

pub mod anon;
mod cert;
pub mod config;
pub mod fingerprint;
mod handshake;
pub mod names;
pub mod parse;
pub mod quic;
pub mod record;
pub mod summary;
mod table;
mod tcp;

pub use anon::NameKey;
pub use config::{ConfigError, TlsConfig};
pub use record::{TlsRecord, FIELDS};
pub use summary::{Malformed, TlsStats, TlsSummary};

use handshake::Shared;
use netspectra_packet::{FlowKey, Fragment, Packet, PacketView, TcpFlags, Timestamp};
use quic::QuicTls;
use tcp::TcpTls;

/// Extracts TLS and QUIC handshake records from one worker's share of the packets.
pub struct TlsAnalyzer {
    sh: Shared,
    tcp: TcpTls,
    quic: QuicTls,
}

impl TlsAnalyzer {
    /// A new analyzer. The configuration should have passed [`TlsConfig::validate`]; values
    /// out of bounds are clamped to them here so that no setting can make a table unbounded.
    pub fn new(cfg: TlsConfig) -> Self {
        let cfg = cfg.clamped();
        TlsAnalyzer {
            sh: Shared {
                stats: TlsStats::new(cfg.summary_keys),
                out: Vec::new(),
                bufs: Vec::new(),
                cfg,
            },
            tcp: TcpTls::new(),
            quic: QuicTls::new(),
        }
    }

    /// One packet already decoded by `netspectra_packet::decode` (the innermost view when
    /// tunnels are decoded).
    pub fn on_packet(&mut self, p: &Packet<'_>, v: &PacketView) {
        if v.l4_offset == 0 || v.fragment != Fragment::None {
            return;
        }
        let payload = v.payload(p.data);
        match v.proto {
            6 => {
                let flags = v.tcp_flags;
                if payload.is_empty()
                    && flags.0 & (TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST) == 0
                {
                    // A pure ACK changes nothing here.
                    return;
                }
                if self.tcp.len() == 0 && tcp::starts_hello(payload).is_none() {
                    return;
                }
                let Some(key) = FlowKey::from_view(v) else {
                    return;
                };
                // Bytes the segment carried on the wire (more than captured when snapped).
                let hdrs = v.payload_offset.saturating_sub(v.l3_offset) as usize;
                let wire_len = (v.ip_len as usize).saturating_sub(hdrs).max(payload.len());
                self.tcp.on_segment(
                    &mut self.sh,
                    p.ts,
                    &key,
                    v.tcp_seq,
                    flags,
                    payload,
                    wire_len,
                );
            }
            17 if self.sh.cfg.quic && quic::maybe_quic(payload) => {
                let Some(key) = FlowKey::from_view(v) else {
                    return;
                };
                let hdrs = v.payload_offset.saturating_sub(v.l3_offset) as usize;
                let wire_len = (v.ip_len as usize).saturating_sub(hdrs).max(payload.len());
                self.quic
                    .on_datagram(&mut self.sh, p.ts, &key, payload, wire_len);
            }
            _ => {}
        }
    }

    /// Emits connections idle for longer than their timeout (call at ticks, packet time).
    pub fn expire(&mut self, now: Timestamp) {
        self.tcp.expire(&mut self.sh, now);
        self.quic.expire(&mut self.sh, now);
    }

    /// End of input: every connection still tracked is emitted.
    pub fn finish(&mut self) {
        self.tcp.finish(&mut self.sh);
        self.quic.finish(&mut self.sh);
    }

    /// Moves the records produced so far into `into`.
    pub fn take_records(&mut self, into: &mut Vec<TlsRecord>) {
        into.append(&mut self.sh.out);
    }

    /// Records produced so far and not yet taken.
    pub fn records(&self) -> &[TlsRecord] {
        &self.sh.out
    }

    /// Counters so far.
    pub fn stats(&self) -> TlsStats {
        self.sh.stats.clone()
    }

    /// TLS-over-TCP connections tracked now (closed ones kept until their timeout included).
    pub fn connections(&self) -> usize {
        self.tcp.len()
    }

    /// QUIC connections tracked now.
    pub fn quic_connections(&self) -> usize {
        self.quic.len()
    }
}

#[cfg(test)]
mod tests;
