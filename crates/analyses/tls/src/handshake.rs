//! From handshake messages to record fields, shared by TLS over TCP and QUIC: the ClientHello
//! (offered parameters, JA3, JA4), the ServerHello (negotiated ones, resumption, latency), the
//! Certificate chain of TLS 1.2 and below, and alerts; and the emission of finished records
//! with their summary counts.

use crate::cert::read_certificates;
use crate::config::TlsConfig;
use crate::fingerprint::{ja3, ja3s, ja4};
use crate::names::{cipher_name, version_name};
use crate::parse::hello::{u16s, ClientHello, ServerHello};
use crate::record::TlsRecord;
use crate::summary::{Malformed, TlsStats};
use netspectra_packet::{community_id_v1, Timestamp};

/// Handshake message types read here.
pub(crate) mod msg {
    /// ClientHello.
    pub const CLIENT_HELLO: u8 = 1;
    /// ServerHello (and HelloRetryRequest).
    pub const SERVER_HELLO: u8 = 2;
    /// Certificate.
    pub const CERTIFICATE: u8 = 11;
}

/// Configuration, counters and finished records of one analyzer.
pub(crate) struct Shared {
    pub cfg: TlsConfig,
    pub stats: TlsStats,
    pub out: Vec<TlsRecord>,
    /// Reassembly buffers of closed connections, reused by new ones: a certificate chain or a
    /// QUIC ClientHello needs a few KiB, and allocating that per connection costs more than
    /// reading it.
    pub bufs: Vec<Vec<u8>>,
}

/// Buffers kept for reuse.
const POOL: usize = 64;

/// What a connection knows of its handshake beyond the record itself.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The client's legacy session id (to recognise TLS 1.2 resumption).
    session_id: [u8; 32],
    session_id_len: u8,
    /// Time of the first ClientHello.
    hello_ts: Option<Timestamp>,
    /// A (non-retry) ServerHello was read.
    pub server_hello: bool,
    /// The server's Certificate was read (or cannot come: TLS 1.3, resumption).
    pub certificate_done: bool,
}

/// Writes bytes as text: printable ASCII as is, other bytes as `\xNN`.
pub(crate) fn printable(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            s.push(c as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            s.push('\\');
            s.push('x');
            s.push(HEX[(c >> 4) as usize] as char);
            s.push(HEX[(c & 15) as usize] as char);
        }
    }
    s
}

impl Shared {
    /// An empty buffer, reused when one is available.
    pub fn take_buf(&mut self) -> Vec<u8> {
        self.bufs.pop().unwrap_or_default()
    }

    /// Returns a buffer for reuse (its memory is kept only if it has some).
    pub fn give_buf(&mut self, mut b: Vec<u8>) {
        if b.capacity() > 0 && self.bufs.len() < POOL {
            b.clear();
            self.bufs.push(b);
        }
    }

    /// A name as it goes into a record: the name, or its token with a name key.
    fn name(&self, b: &[u8]) -> String {
        match &self.cfg.name_key {
            Some(k) => k.token(b),
            None => printable(b),
        }
    }

    /// Reads a ClientHello body into the record.
    pub fn client_hello(
        &mut self,
        rec: &mut TlsRecord,
        pr: &mut Progress,
        body: &[u8],
        ts: Timestamp,
        quic: bool,
    ) {
        let ch = match ClientHello::parse(body) {
            Ok(c) => c,
            Err(why) => {
                self.stats.malformed(why);
                rec.partial = true;
                rec.malformed = Some(why.name());
                return;
            }
        };
        self.stats.client_hellos += 1;
        rec.client_hellos = rec.client_hellos.saturating_add(1);
        if rec.client_hellos > 1 {
            // The second ClientHello after a HelloRetryRequest: only its fingerprint is kept.
            if rec.ja4_retry.is_none() {
                rec.ja4_retry = Some(ja4(&ch, quic));
            }
            return;
        }
        pr.hello_ts = Some(ts);
        rec.ts = ts;
        rec.sni = ch.sni().map(|s| self.name(s));
        rec.alpn_offered = ch.alpn().map(printable).collect();
        rec.client_version = Some(ch.version);
        rec.versions_offered = ch
            .supported_versions()
            .map(|v| u16s(v).collect())
            .unwrap_or_default();
        rec.ciphers_offered = ch.cipher_list().collect();
        rec.extensions = ch.exts().map(|e| e.ty).collect();
        rec.groups = u16s(ch.list16(10)).collect();
        rec.point_formats = ch.point_formats().to_vec();
        rec.sig_algs = u16s(ch.list16(13)).collect();
        let ticket = ch.ext(35).is_some_and(|d| !d.is_empty());
        rec.resumption_offered = !ch.session_id.is_empty() || ticket || ch.ext(41).is_some();
        pr.session_id_len = ch.session_id.len() as u8;
        pr.session_id[..ch.session_id.len()].copy_from_slice(ch.session_id);
        rec.ja3 = Some(ja3(&ch));
        rec.ja4 = Some(ja4(&ch, quic));
    }

    /// Reads a ServerHello body into the record.
    pub fn server_hello(
        &mut self,
        rec: &mut TlsRecord,
        pr: &mut Progress,
        body: &[u8],
        ts: Timestamp,
    ) {
        let sh = match ServerHello::parse(body) {
            Ok(s) => s,
            Err(why) => {
                self.stats.malformed(why);
                rec.partial = true;
                rec.malformed = Some(why.name());
                return;
            }
        };
        self.stats.server_hellos += 1;
        if sh.is_retry_request() {
            rec.hello_retry = true;
            return;
        }
        if pr.server_hello {
            return;
        }
        pr.server_hello = true;
        if rec.ts == Timestamp(0) {
            rec.ts = ts;
        }
        let v = sh.negotiated_version();
        rec.version_code = Some(v);
        rec.version = Some(version_name(v).map_or_else(|| format!("0x{v:04x}"), String::from));
        rec.cipher = Some(sh.cipher);
        rec.cipher_name = cipher_name(sh.cipher);
        rec.alpn = sh.alpn().map(printable);
        rec.ja3s = Some(ja3s(&sh));
        rec.resumed = if v >= 0x0304 {
            sh.ext(41).is_some()
        } else {
            let sid = &pr.session_id[..pr.session_id_len as usize];
            !sid.is_empty() && sh.session_id == sid
        };
        if rec.resumed {
            self.stats.resumed += 1;
        }
        // TLS 1.3 encrypts the certificate; a resumed session sends none.
        pr.certificate_done = v >= 0x0304 || rec.resumed;
        if let Some(t0) = pr.hello_ts {
            let us = (ts.as_nanos() - t0.as_nanos()).max(0) as u64 / 1000;
            rec.handshake_latency_us = Some(us);
            self.stats.latency.record(us);
        }
    }

    /// Reads a Certificate body (TLS 1.2 and below) into the record.
    pub fn certificate(&mut self, rec: &mut TlsRecord, pr: &mut Progress, body: &[u8]) {
        pr.certificate_done = true;
        let key = self.cfg.name_key.clone();
        match read_certificates(body, rec, self.cfg.max_certs, key.as_ref()) {
            Ok(n) => self.stats.certificates += n as u64,
            Err(why) => {
                self.stats.malformed(why);
                rec.malformed = Some(why.name());
            }
        }
    }

    /// An alert read in clear.
    pub fn alert(&mut self, rec: &mut TlsRecord, from_client: bool, level: u8, desc: u8) {
        self.stats.alerts += 1;
        if rec.alert_levels.len() < self.cfg.max_alerts {
            rec.alert_senders
                .push(if from_client { "client" } else { "server" });
            rec.alert_levels.push(level);
            rec.alert_descriptions.push(desc);
        }
    }

    /// Counts a malformed message and marks the record partial.
    pub fn bad(&mut self, rec: &mut TlsRecord, why: Malformed) {
        self.stats.malformed(why);
        rec.partial = true;
        if rec.malformed.is_none() {
            rec.malformed = Some(why.name());
        }
    }

    /// Finishes a record: Community ID, summary counts, out.
    pub fn emit(&mut self, mut rec: TlsRecord) {
        rec.community_id = community_id_v1(&rec.key(), 0);
        let s = &mut self.stats;
        s.records += 1;
        s.sni.add(rec.sni.as_deref().unwrap_or("-"), 1);
        s.alpn
            .add(rec.alpn_offered.first().map_or("-", String::as_str), 1);
        if let Some(j) = &rec.ja4 {
            s.ja4.add(j, 1);
        }
        if let Some(v) = rec.version_code {
            *s.versions.entry(v).or_default() += 1;
        }
        if let Some(c) = rec.cipher {
            *s.ciphers.entry(c).or_default() += 1;
        }
        s.encrypted_alerts += rec.encrypted_alerts as u64;
        self.out.push(rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes() {
        assert_eq!(printable(b"h2"), "h2");
        assert_eq!(printable(&[0xab, b'a', b'\\']), "\\xaba\\x5c");
    }
}
