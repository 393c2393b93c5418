//! QUIC Initial packets (versions 1 and 2, any UDP port): a connection is opened by a client
//! Initial in a datagram of at least 1200 bytes (RFC 9000 §14.1); its Initial packets are
//! decrypted with the keys derived from the client's Destination Connection ID, their CRYPTO
//! frames reassembled into the ClientHello and ServerHello, and one record is emitted per
//! connection as soon as both are read (or when it times out, is evicted, or input ends).
//! Nothing after the Initials is read: an emitted connection stays as a tombstone so that its
//! later packets cost one lookup.

pub mod packet;
pub mod stream;
#[cfg(test)]
pub(crate) mod vectors;

use crate::handshake::{msg, Progress, Shared};
use crate::record::TlsRecord;
use crate::summary::Malformed;
use crate::table::LruTable;
use netspectra_packet::{FlowKey, Timestamp};
use packet::{long_header, varint, InitialKeys, LongType, MAX_CID, V1, V2};
use std::hash::BuildHasher;
use stream::{CryptoStream, Overflow};

/// One QUIC connection; direction 0 sends from `key.src`.
struct QConn {
    key: FlowKey,
    /// Which direction is the client's.
    client: usize,
    last_seen: i64,
    /// The Destination Connection ID the Initial keys derive from.
    odcid: [u8; MAX_CID],
    odcid_len: u8,
    /// Initial keys of the client and the server, derived when first needed.
    keys: [Option<InitialKeys>; 2],
    /// Largest packet number opened per side.
    largest: [Option<u64>; 2],
    crypto: [CryptoStream; 2],
    /// The side's hello was read (or cannot be: its CRYPTO stream overflowed).
    done: [bool; 2],
    /// The record being filled (inline: a boxed one would be a >1 KiB allocation per
    /// connection).
    rec: TlsRecord,
    pr: Progress,
    emitted: bool,
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    crate::fingerprint::push_hex(&mut s, b);
    s
}

/// The cheap check every UDP datagram meets: a long header of QUIC version 1 or 2.
#[inline]
pub(crate) fn maybe_quic(p: &[u8]) -> bool {
    p.len() >= 7
        && p[0] & 0x80 != 0
        && matches!(u32::from_be_bytes([p[1], p[2], p[3], p[4]]), V1 | V2)
}

/// Tracked QUIC connections.
pub(crate) struct QuicTls {
    table: LruTable<QConn>,
    hasher: foldhash::fast::RandomState,
    /// Decrypted payload of the packet being read (reused).
    plain: Vec<u8>,
}

impl QuicTls {
    pub fn new() -> Self {
        QuicTls {
            table: LruTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            plain: Vec::new(),
        }
    }

    /// Connections tracked (emitted ones waiting for their timeout included).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// One UDP datagram of flow `key` (as seen) that passed [`maybe_quic`]; `wire_len` is its
    /// length on the wire (more than `d` holds when the frame was snapped).
    pub fn on_datagram(
        &mut self,
        sh: &mut Shared,
        ts: Timestamp,
        key: &FlowKey,
        d: &[u8],
        wire_len: usize,
    ) {
        let (canon, swapped) = key.canonical();
        let dir = swapped as usize;
        let hash = self.hasher.hash_one(canon.packed());
        let idx = match self.table.find(hash, |c| c.key == canon) {
            Some(i) => i,
            None => {
                // Only a client's first flight opens a connection: an Initial in a datagram
                // padded to 1200 bytes. A snapped one still opens it (its header is enough
                // for the server's keys), though it cannot be decrypted itself.
                let Some((version, dcid)) = initial_dcid(d) else {
                    return;
                };
                if wire_len < 1200 || dcid.len() < 8 {
                    return;
                }
                self.open(sh, canon, hash, dir, ts, version, dcid)
            }
        };
        self.table.touch(idx, ts.as_nanos());
        let c = self.table.get_mut(idx);
        c.last_seen = c.last_seen.max(ts.as_nanos());
        if c.emitted {
            return;
        }
        let side = if dir == c.client { 0 } else { 1 };
        let mut rest = d;
        while let Some(h) = long_header(rest) {
            let pkt = &rest[..h.len];
            rest = &rest[h.len..];
            match h.ty {
                LongType::Retry if side == 1 => {
                    // The client's next Initial uses the server's new connection ID and keys
                    // derived from it.
                    c.keys = [None, None];
                    c.largest = [None, None];
                    set_odcid(c, h.scid);
                }
                LongType::Initial if !c.done[side] => {
                    let scid = if side == 0 {
                        &mut c.rec.quic_scid
                    } else {
                        &mut c.rec.quic_server_scid
                    };
                    if scid.is_none() {
                        *scid = Some(hex(h.scid));
                    }
                    if open_initial(sh, c, side, &h, pkt, &mut self.plain) {
                        frames(sh, c, side, ts, &self.plain);
                    }
                }
                _ => {}
            }
            if h.ty == LongType::Retry {
                break;
            }
        }
        if c.done == [true, true] {
            emit(sh, c);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        sh: &mut Shared,
        key: FlowKey,
        hash: u64,
        client: usize,
        ts: Timestamp,
        version: u32,
        dcid: &[u8],
    ) -> u32 {
        if self.table.len() >= sh.cfg.max_quic_connections {
            if let Some(old) = self.table.oldest() {
                let mut c = self.table.remove(old);
                if !c.emitted {
                    sh.stats.quic_evicted += 1;
                    emit(sh, &mut c);
                }
            }
        }
        sh.stats.quic_connections += 1;
        let k = if client == 0 { key } else { key.reversed() };
        let rec = TlsRecord {
            ts,
            ip_version: if k.src.is_ipv4() { 4 } else { 6 },
            src_ip: k.src,
            src_port: k.src_port,
            dst_ip: k.dst,
            dst_port: k.dst_port,
            vlan: k.vlan,
            transport: "quic",
            quic_version: Some(version),
            quic_dcid: Some(hex(dcid)),
            ..TlsRecord::default()
        };
        let mut c = QConn {
            key,
            client,
            last_seen: ts.as_nanos(),
            odcid: [0; MAX_CID],
            odcid_len: 0,
            keys: [None, None],
            largest: [None, None],
            crypto: [
                CryptoStream::with_buf(sh.take_buf()),
                CryptoStream::with_buf(sh.take_buf()),
            ],
            done: [false, false],
            rec,
            pr: Progress::default(),
            emitted: false,
        };
        set_odcid(&mut c, dcid);
        self.table.insert(hash, ts.as_nanos(), c)
    }

    /// Emits incomplete connections idle since before `now - quic_idle_timeout` and forgets
    /// every such connection.
    pub fn expire(&mut self, sh: &mut Shared, now: Timestamp) {
        let limit = now.as_nanos().saturating_sub(sh.cfg.quic_idle_timeout_ns);
        while let Some(i) = self.table.oldest() {
            if self.table.get(i).last_seen >= limit {
                break;
            }
            let mut c = self.table.remove(i);
            emit(sh, &mut c);
        }
    }

    /// Emits every connection not yet emitted (end of input).
    pub fn finish(&mut self, sh: &mut Shared) {
        while let Some(i) = self.table.oldest() {
            let mut c = self.table.remove(i);
            emit(sh, &mut c);
        }
    }
}

/// The version and Destination Connection ID of an Initial at the start of `d`, read from
/// the header alone (the packet may be cut).
fn initial_dcid(d: &[u8]) -> Option<(u32, &[u8])> {
    let version = u32::from_be_bytes(d.get(1..5)?.try_into().ok()?);
    let bits = (d[0] >> 4) & 3;
    let initial = match version {
        V1 => bits == 0,
        V2 => bits == 1,
        _ => false,
    };
    let n = *d.get(5)? as usize;
    if !initial || d[0] & 0x80 == 0 || n > MAX_CID {
        return None;
    }
    Some((version, d.get(6..6 + n)?))
}

fn set_odcid(c: &mut QConn, dcid: &[u8]) {
    let n = dcid.len().min(MAX_CID);
    c.odcid[..n].copy_from_slice(&dcid[..n]);
    c.odcid_len = n as u8;
}

/// Emits the record once.
fn emit(sh: &mut Shared, c: &mut QConn) {
    if c.emitted {
        return;
    }
    c.emitted = true;
    let mut rec = std::mem::take(&mut c.rec);
    rec.established = c.pr.server_hello;
    if rec.client_hellos == 0 || !c.pr.server_hello {
        rec.partial = true;
    }
    sh.emit(rec);
    for s in &mut c.crypto {
        let b = s.take_buf();
        sh.give_buf(b);
    }
}

/// Removes the protection of one Initial packet into `plain`; false when it does not open.
fn open_initial(
    sh: &mut Shared,
    c: &mut QConn,
    side: usize,
    h: &packet::LongHeader<'_>,
    pkt: &[u8],
    plain: &mut Vec<u8>,
) -> bool {
    let version = c.rec.quic_version.unwrap_or(V1);
    let odcid = &c.odcid[..c.odcid_len as usize];
    let keys = *c.keys[side].get_or_insert_with(|| InitialKeys::new(version, odcid, side == 1));
    if let Some(pn) = keys.open(pkt, h.pn_at, c.largest[side], plain) {
        c.largest[side] = Some(c.largest[side].map_or(pn, |l| l.max(pn)));
        sh.stats.quic_initials += 1;
        return true;
    }
    // A client Initial sent to a new connection ID (after a Retry this analyzer missed):
    // keys from its own Destination Connection ID.
    if side == 0 && h.dcid != odcid {
        let k = InitialKeys::new(version, h.dcid, false);
        if let Some(pn) = k.open(pkt, h.pn_at, None, plain) {
            set_odcid(c, h.dcid);
            c.keys = [Some(k), None];
            c.largest = [Some(pn), None];
            sh.stats.quic_initials += 1;
            return true;
        }
    }
    sh.bad(&mut c.rec, Malformed::QuicDecrypt);
    false
}

/// Reads one variable-length integer at `*at`, moving past it.
fn take(p: &[u8], at: &mut usize) -> Option<u64> {
    let (v, n) = varint(p.get(*at..)?)?;
    *at += n;
    Some(v)
}

/// The length of the ACK frame at the start of `p` (RFC 9000 §19.3).
fn ack_len(p: &[u8], ecn: bool) -> Option<usize> {
    let mut at = 1;
    take(p, &mut at)?; // largest acknowledged
    take(p, &mut at)?; // delay
    let ranges = take(p, &mut at)?;
    take(p, &mut at)?; // first range
    for _ in 0..ranges {
        take(p, &mut at)?; // gap
        take(p, &mut at)?; // range
    }
    if ecn {
        for _ in 0..3 {
            take(p, &mut at)?;
        }
    }
    Some(at)
}

/// Reads the frames of a decrypted Initial: CRYPTO data into the side's stream (then its hello
/// when complete), CONNECTION_CLOSE as an alert; ACK, PING and PADDING skipped.
fn frames(sh: &mut Shared, c: &mut QConn, side: usize, ts: Timestamp, mut p: &[u8]) {
    let bad = Malformed::QuicFrame;
    while let Some(&ty) = p.first() {
        match ty {
            0x00 | 0x01 => p = &p[1..],
            0x02 | 0x03 => match ack_len(p, ty == 0x03) {
                Some(n) => p = &p[n..],
                None => return sh.bad(&mut c.rec, bad),
            },
            0x06 => {
                let Some((off, n1)) = varint(&p[1..]) else {
                    return sh.bad(&mut c.rec, bad);
                };
                let Some((len, n2)) = varint(&p[1 + n1..]) else {
                    return sh.bad(&mut c.rec, bad);
                };
                let start = 1 + n1 + n2;
                let Some(data) = usize::try_from(len)
                    .ok()
                    .and_then(|l| p.get(start..start + l))
                else {
                    return sh.bad(&mut c.rec, bad);
                };
                p = &p[start + data.len()..];
                match c.crypto[side].insert(off, data, sh.cfg.max_crypto_bytes) {
                    Ok(()) => {}
                    Err(Overflow::TooLarge) => {
                        sh.bad(&mut c.rec, Malformed::CryptoTooLarge);
                        c.done[side] = true;
                    }
                    Err(Overflow::TooFragmented) => {
                        sh.bad(&mut c.rec, bad);
                        c.done[side] = true;
                    }
                }
            }
            0x1c | 0x1d => {
                let Some((code, _)) = varint(&p[1..]) else {
                    return sh.bad(&mut c.rec, bad);
                };
                // A TLS alert travels as the error code 0x0100 + description (RFC 9001 §4.8).
                if (0x100..0x200).contains(&code) {
                    sh.alert(&mut c.rec, side == 0, 2, (code & 0xff) as u8);
                }
                // Nothing useful follows a close in this packet.
                break;
            }
            _ => return sh.bad(&mut c.rec, bad),
        }
    }
    hello(sh, c, side, ts);
}

/// Reads the side's hello once the CRYPTO stream holds it whole.
fn hello(sh: &mut Shared, c: &mut QConn, side: usize, ts: Timestamp) {
    if c.done[side] {
        return;
    }
    let s = c.crypto[side].contiguous();
    if s.len() < 4 {
        return;
    }
    let len = ((s[1] as usize) << 16) | ((s[2] as usize) << 8) | s[3] as usize;
    if s.len() < 4 + len {
        if 4 + len > sh.cfg.max_crypto_bytes {
            sh.bad(&mut c.rec, Malformed::CryptoTooLarge);
            c.done[side] = true;
        }
        return;
    }
    c.done[side] = true;
    let body = &s[4..4 + len];
    // (The stream's buffer goes back to the pool when the connection is emitted.)
    match (side, s[0]) {
        (0, msg::CLIENT_HELLO) => sh.client_hello(&mut c.rec, &mut c.pr, body, ts, true),
        (1, msg::SERVER_HELLO) => sh.server_hello(&mut c.rec, &mut c.pr, body, ts),
        (0, _) => sh.bad(&mut c.rec, Malformed::BadClientHello),
        _ => sh.bad(&mut c.rec, Malformed::BadServerHello),
    }
}
