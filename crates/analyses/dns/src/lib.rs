//! DNS metadata from packets: one [`DnsRecord`] per query/response transaction over UDP or TCP.
//!
//! [`DnsAnalyzer`] takes packets already decoded by `netspectra_packet::decode`, reads DNS on
//! the DNS ports and, by a strict content rule, on any other port ([`detect`]), reassembles
//! length-prefixed messages over TCP ([`tcp`]), pairs each response with its query by
//! (addresses, ports, protocol, id, query name), emits unanswered queries when they time out,
//! and lists every section's records with their data as text. Names are read with bounded work
//! whatever the compression pointers ([`parse::name`]). Every table is bounded and counts what
//! it drops; per-packet work allocates nothing until a record is produced.

pub mod anon;
pub mod config;
pub mod detect;
pub mod names;
pub mod parse;
pub mod record;
pub mod summary;
mod table;
mod tcp;
mod transactions;

pub use anon::NameKey;
pub use config::{ConfigError, DnsConfig};
pub use record::{DnsRecord, Status, FIELDS};
pub use summary::{DnsStats, DnsSummary, Malformed};

use netspectra_packet::{FlowKey, Fragment, Packet, PacketView, TcpFlags, Timestamp};
use tcp::TcpStreams;
use transactions::Transactions;

/// Extracts DNS transactions from one worker's share of the packets.
pub struct DnsAnalyzer {
    tx: Transactions,
    tcp: TcpStreams,
}

impl DnsAnalyzer {
    /// A new analyzer. The configuration should have passed [`DnsConfig::validate`]; values
    /// out of bounds are clamped to them here so that no setting can make a table unbounded.
    pub fn new(mut cfg: DnsConfig) -> Self {
        cfg.max_transactions = cfg.max_transactions.clamp(1, 1 << 24);
        cfg.max_tcp_connections = cfg.max_tcp_connections.clamp(1, 1 << 20);
        cfg.max_tcp_message = cfg.max_tcp_message.clamp(512, 65_535);
        cfg.max_records = cfg.max_records.clamp(1, 4096);
        cfg.summary_keys = cfg.summary_keys.clamp(1, 1_000_000);
        DnsAnalyzer {
            tx: Transactions::new(cfg),
            tcp: TcpStreams::new(),
        }
    }

    /// One packet already decoded by `netspectra_packet::decode` (the innermost view when
    /// tunnels are decoded): UDP and TCP payloads on a DNS port, or that look like DNS.
    pub fn on_packet(&mut self, p: &Packet<'_>, v: &PacketView) {
        let udp = match v.proto {
            17 => true,
            6 => false,
            _ => return,
        };
        if v.l4_offset == 0 || v.fragment == Fragment::Later {
            return;
        }
        let on_port = detect::dns_port(v.src_port) || detect::dns_port(v.dst_port);
        let payload = v.payload(p.data);
        if udp {
            if payload.is_empty() {
                return;
            }
            if v.fragment == Fragment::First {
                // Only the first part of the datagram is here; it is not reassembled.
                if on_port {
                    self.tx.stats.fragments += 1;
                }
                return;
            }
            if !on_port {
                if !self.tx.cfg.detect_off_port
                    || detect::excluded_port(v.src_port, v.dst_port)
                    || !detect::looks_like_dns(payload, true)
                {
                    return;
                }
                self.tx.stats.detected_off_port += 1;
            }
            let Some(key) = FlowKey::from_view(v) else {
                return;
            };
            self.tx.on_message(p.ts, &key, payload);
        } else {
            let flags = v.tcp_flags;
            if payload.is_empty() && flags.0 & (TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST) == 0
            {
                // A pure ACK changes nothing here.
                return;
            }
            if v.fragment != Fragment::None {
                return;
            }
            if !on_port && detect::excluded_port(v.src_port, v.dst_port) {
                return;
            }
            let Some(key) = FlowKey::from_view(v) else {
                return;
            };
            // Bytes the segment carried on the wire (more than captured when it was snapped).
            let hdrs = v.payload_offset.saturating_sub(v.l3_offset) as usize;
            let wire_len = (v.ip_len as usize).saturating_sub(hdrs).max(payload.len());
            self.tcp.on_segment(
                &mut self.tx,
                p.ts,
                &key,
                v.tcp_seq,
                flags,
                payload,
                wire_len,
                on_port,
            );
        }
    }

    /// Emits queries unanswered for longer than the timeout and drops idle TCP connections
    /// (call at ticks, with packet time).
    pub fn expire(&mut self, now: Timestamp) {
        self.tx.expire(now);
        self.tcp.expire(&mut self.tx, now);
    }

    /// End of input: every pending query is emitted as unanswered, TCP state dropped.
    pub fn finish(&mut self) {
        self.tcp.finish();
        self.tx.finish();
    }

    /// Moves the records produced so far into `into`.
    pub fn take_records(&mut self, into: &mut Vec<DnsRecord>) {
        into.append(&mut self.tx.out);
    }

    /// Records produced so far and not yet taken.
    pub fn records(&self) -> &[DnsRecord] {
        &self.tx.out
    }

    /// Counters so far.
    pub fn stats(&self) -> DnsStats {
        self.tx.stats.clone()
    }

    /// Transactions remembered now (pending or recently answered).
    pub fn transactions(&self) -> usize {
        self.tx.len()
    }

    /// DNS-over-TCP connections tracked now.
    pub fn tcp_connections(&self) -> usize {
        self.tcp.len()
    }
}

#[cfg(test)]
mod tests;
