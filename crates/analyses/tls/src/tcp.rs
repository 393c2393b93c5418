//! TLS over TCP: connections opened by a segment that starts with a ClientHello or ServerHello
//! record (any port), the record layer followed in both directions across segments (sequence
//! numbers tracked, retransmissions ignored, gaps resynchronised on the next record header),
//! handshake messages reassembled across records and segments within `max_handshake_bytes`
//! (read in place when a message sits inside one segment), alerts, and one record per
//! connection, emitted when it closes, times out, is evicted, or at the end of input.

use crate::handshake::{msg, Progress, Shared};
use crate::parse::hello::ClientHello;
use crate::record::TlsRecord;
use crate::summary::Malformed;
use crate::table::LruTable;
use netspectra_packet::{FlowKey, TcpFlags, Timestamp};
use std::hash::BuildHasher;

/// Record content types.
mod ct {
    pub const CCS: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APP_DATA: u8 = 23;
    pub const HEARTBEAT: u8 = 24;
}

/// Largest record body a peer may send (TLSCiphertext: 2^14 + 2048).
const MAX_RECORD: usize = 16_384 + 2048;

/// A record header: content type, version 3.x, length within bounds.
#[inline]
fn record_header(h: &[u8]) -> Option<(u8, usize)> {
    let ctype = h[0];
    let len = u16::from_be_bytes([h[3], h[4]]) as usize;
    ((ct::CCS..=ct::HEARTBEAT).contains(&ctype) && h[1] == 3 && h[2] <= 4 && len <= MAX_RECORD)
        .then_some((ctype, len))
}

/// The content check for a segment of an untracked connection: a handshake record holding a
/// ClientHello or a ServerHello.
#[inline]
pub(crate) fn starts_hello(p: &[u8]) -> Option<u8> {
    if p.len() < 9 || p[0] != ct::HANDSHAKE || p[1] != 3 || p[2] > 4 {
        return None;
    }
    let len = u16::from_be_bytes([p[3], p[4]]) as usize;
    ((4..=MAX_RECORD).contains(&len) && matches!(p[5], msg::CLIENT_HELLO | msg::SERVER_HELLO))
        .then_some(p[5])
}

/// One direction of a connection.
#[derive(Default)]
struct Dir {
    next_seq: Option<u32>,
    /// A record header cut by the end of a segment.
    hdr: [u8; 5],
    hdr_len: u8,
    /// Body bytes left of the current record, and its content type.
    left: usize,
    ctype: u8,
    /// The bytes of an alert cut by the end of a segment.
    alert: [u8; 2],
    alert_len: u8,
    /// Bytes of a handshake message that spans records or segments.
    hs: Vec<u8>,
    /// Bytes still to skip of a handshake message that is not read.
    hs_skip: usize,
    /// Handshake records are encrypted from here on (after ChangeCipherSpec or a TLS 1.3
    /// ServerHello).
    encrypted: bool,
    /// Out of step: waiting for a segment that starts with a record header.
    lost: bool,
    fin: bool,
    app_data: bool,
    /// A ChangeCipherSpec came before any ServerHello was seen: a later "ClientHello" may be
    /// encrypted (the ServerHello was not captured), so one that does not parse is not
    /// counted as malformed.
    ccs_before_hello: bool,
}

/// One TLS connection; direction 0 sends from `key.src`.
struct Conn {
    key: FlowKey,
    /// Which direction is the client's.
    client: usize,
    last_seen: i64,
    dirs: [Dir; 2],
    /// The record being filled (inline: a boxed one would be a >1 KiB allocation per
    /// connection).
    rec: TlsRecord,
    pr: Progress,
    /// Emitted: the entry stays so that late duplicates are not a new connection.
    closed: bool,
}

/// `a` is before `b` in sequence space.
#[inline]
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn u24(b: &[u8]) -> usize {
    ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize
}

/// Tracked TLS-over-TCP connections.
pub(crate) struct TcpTls {
    table: LruTable<Conn>,
    hasher: foldhash::fast::RandomState,
}

impl TcpTls {
    pub fn new() -> Self {
        TcpTls {
            table: LruTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Connections tracked (closed ones waiting for their timeout included).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// One TCP segment of flow `key` (as seen); `wire_len` is the payload length on the wire.
    #[allow(clippy::too_many_arguments)]
    pub fn on_segment(
        &mut self,
        sh: &mut Shared,
        ts: Timestamp,
        key: &FlowKey,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
        wire_len: usize,
    ) {
        let hello = starts_hello(payload);
        if hello.is_none() && self.table.len() == 0 {
            return;
        }
        let (canon, swapped) = key.canonical();
        let d = swapped as usize;
        let hash = self.hasher.hash_one(canon.packed());
        let idx = match self.table.find(hash, |c| c.key == canon) {
            Some(i) => i,
            None => {
                let Some(first) = hello else {
                    return;
                };
                let client = if first == msg::CLIENT_HELLO { d } else { 1 - d };
                let i = self.open(sh, canon, hash, client, ts);
                if first == msg::SERVER_HELLO {
                    // The client's hello was missed: its direction waits for a record header.
                    self.table.get_mut(i).dirs[client].lost = true;
                }
                i
            }
        };
        self.table.touch(idx, ts.as_nanos());
        let conn = self.table.get_mut(idx);
        conn.last_seen = conn.last_seen.max(ts.as_nanos());
        if conn.closed {
            if flags.has(TcpFlags::SYN) && !flags.has(TcpFlags::ACK) {
                // The 5-tuple is reused: a later hello opens a new connection.
                self.table.remove(idx);
            }
            return;
        }
        let dir = &mut conn.dirs[d];
        if flags.has(TcpFlags::SYN) && dir.next_seq.is_none() {
            dir.next_seq = Some(seq.wrapping_add(1));
        }
        if wire_len > 0 {
            let end = seq.wrapping_add(wire_len as u32);
            let mut skip = 0usize;
            let mut gap = false;
            match dir.next_seq {
                Some(n) if !seq_lt(n, end) => {
                    sh.stats.retransmissions += 1;
                    return self.after(sh, idx, d, flags);
                }
                Some(n) if seq_lt(seq, n) => skip = n.wrapping_sub(seq) as usize,
                Some(n) if seq != n => gap = true,
                _ => {}
            }
            dir.next_seq = Some(end);
            if gap {
                sh.stats.gaps += 1;
                lose(dir);
            }
            let data = payload.get(skip..).unwrap_or(&[]);
            if dir.lost {
                // Resynchronise only on a segment that starts with a record header.
                if data.len() >= 5 && record_header(data).is_some() {
                    dir.lost = false;
                } else {
                    return self.after(sh, idx, d, flags);
                }
            }
            feed(sh, conn, d, ts, data);
            if wire_len > skip.max(payload.len()) {
                // The frame was snapped: the rest of the segment is missing.
                sh.stats.gaps += 1;
                let c = self.table.get_mut(idx);
                lose(&mut c.dirs[d]);
                c.rec.partial = true;
            }
        }
        self.after(sh, idx, d, flags);
    }

    fn open(
        &mut self,
        sh: &mut Shared,
        key: FlowKey,
        hash: u64,
        client: usize,
        ts: Timestamp,
    ) -> u32 {
        if self.table.len() >= sh.cfg.max_connections {
            if let Some(old) = self.table.oldest() {
                if !self.table.get(old).closed {
                    sh.stats.evicted += 1;
                }
                self.drop_conn(sh, old);
            }
        }
        sh.stats.connections += 1;
        let k = if client == 0 { key } else { key.reversed() };
        let rec = TlsRecord {
            ts,
            ip_version: if k.src.is_ipv4() { 4 } else { 6 },
            src_ip: k.src,
            src_port: k.src_port,
            dst_ip: k.dst,
            dst_port: k.dst_port,
            vlan: k.vlan,
            transport: "tcp",
            ..TlsRecord::default()
        };
        self.table.insert(
            hash,
            ts.as_nanos(),
            Conn {
                key,
                client,
                last_seen: ts.as_nanos(),
                dirs: Default::default(),
                rec,
                pr: Progress::default(),
                closed: false,
            },
        )
    }

    /// FIN/RST after a segment's data: the record is emitted when the connection closes.
    fn after(&mut self, sh: &mut Shared, idx: u32, d: usize, flags: TcpFlags) {
        let c = self.table.get_mut(idx);
        if flags.has(TcpFlags::FIN) {
            c.dirs[d].fin = true;
        }
        if flags.has(TcpFlags::RST) || (c.dirs[0].fin && c.dirs[1].fin) {
            close(sh, c);
        }
    }

    /// Emits (if not yet) and forgets a connection.
    fn drop_conn(&mut self, sh: &mut Shared, idx: u32) {
        let mut c = self.table.remove(idx);
        close(sh, &mut c);
    }

    /// Emits connections idle since before `now - idle_timeout` and forgets them.
    pub fn expire(&mut self, sh: &mut Shared, now: Timestamp) {
        let limit = now.as_nanos().saturating_sub(sh.cfg.idle_timeout_ns);
        while let Some(i) = self.table.oldest() {
            let c = self.table.get(i);
            if c.last_seen >= limit {
                break;
            }
            if !c.closed {
                sh.stats.timed_out += 1;
            }
            self.drop_conn(sh, i);
        }
    }

    /// Emits every connection (end of input).
    pub fn finish(&mut self, sh: &mut Shared) {
        while let Some(i) = self.table.oldest() {
            self.drop_conn(sh, i);
        }
    }
}

/// A gap: what was being reassembled in this direction is lost.
fn lose(dir: &mut Dir) {
    dir.lost = true;
    dir.hdr_len = 0;
    dir.left = 0;
    dir.alert_len = 0;
    dir.hs.clear();
    dir.hs_skip = 0;
}

/// Emits the connection's record once; the entry stays as a closed tombstone.
fn close(sh: &mut Shared, c: &mut Conn) {
    if c.closed {
        return;
    }
    c.closed = true;
    let mut rec = std::mem::take(&mut c.rec);
    rec.established = c.dirs[0].app_data && c.dirs[1].app_data;
    if rec.client_hellos == 0 || !c.pr.server_hello {
        rec.partial = true;
    }
    sh.emit(rec);
    for d in &mut c.dirs {
        sh.give_buf(std::mem::take(&mut d.hs));
    }
}

/// Follows the record layer over `p`, new in-order bytes of direction `d`.
fn feed(sh: &mut Shared, c: &mut Conn, d: usize, ts: Timestamp, mut p: &[u8]) {
    let from_client = d == c.client;
    while !p.is_empty() {
        let dir = &mut c.dirs[d];
        if dir.left == 0 {
            // A record header, possibly cut by the previous segment's end.
            let h: [u8; 5] = if dir.hdr_len > 0 || p.len() < 5 {
                let n = (5 - dir.hdr_len as usize).min(p.len());
                dir.hdr[dir.hdr_len as usize..dir.hdr_len as usize + n].copy_from_slice(&p[..n]);
                dir.hdr_len += n as u8;
                p = &p[n..];
                if dir.hdr_len < 5 {
                    return;
                }
                dir.hdr_len = 0;
                dir.hdr
            } else {
                let h = [p[0], p[1], p[2], p[3], p[4]];
                p = &p[5..];
                h
            };
            let Some((ctype, len)) = record_header(&h) else {
                lose(dir);
                sh.bad(&mut c.rec, Malformed::BadRecord);
                return;
            };
            dir.ctype = ctype;
            dir.left = len;
            if ctype == ct::ALERT && dir.encrypted {
                c.rec.encrypted_alerts += 1;
            }
            if ctype == ct::APP_DATA {
                dir.app_data = true;
            }
            continue;
        }
        let n = dir.left.min(p.len());
        let chunk = &p[..n];
        p = &p[n..];
        dir.left -= n;
        match dir.ctype {
            ct::HANDSHAKE if !dir.encrypted => handshake(sh, c, d, ts, chunk),
            // ChangeCipherSpec ends the plaintext handshake of TLS 1.2 and below, where it
            // always follows the ServerHello. TLS 1.3 peers may send one after a
            // HelloRetryRequest or before their second ClientHello (compatibility mode),
            // before any ServerHello: the hellos after it are still in clear then.
            ct::CCS if c.pr.server_hello => dir.encrypted = true,
            ct::CCS => dir.ccs_before_hello = true,
            ct::ALERT if !dir.encrypted => {
                for &b in chunk {
                    let dir = &mut c.dirs[d];
                    dir.alert[dir.alert_len as usize] = b;
                    dir.alert_len += 1;
                    if dir.alert_len == 2 {
                        dir.alert_len = 0;
                        let (level, desc) = (dir.alert[0], dir.alert[1]);
                        sh.alert(&mut c.rec, from_client, level, desc);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Reads handshake messages from `p`, plaintext handshake record bytes of direction `d`.
fn handshake(sh: &mut Shared, c: &mut Conn, d: usize, ts: Timestamp, mut p: &[u8]) {
    let max = sh.cfg.max_handshake_bytes;
    let from_client = d == c.client;
    while !p.is_empty() {
        let Conn { dirs, rec, pr, .. } = &mut *c;
        let dir = &mut dirs[d];
        if dir.hs_skip > 0 {
            let n = dir.hs_skip.min(p.len());
            dir.hs_skip -= n;
            p = &p[n..];
            continue;
        }
        // Whether a message of this type from this side is read at all.
        let wanted = |ty: u8| match ty {
            msg::CLIENT_HELLO => from_client && rec.client_hellos < 2 && !pr.server_hello,
            msg::SERVER_HELLO => !from_client && !pr.server_hello,
            msg::CERTIFICATE => !from_client && pr.server_hello && !pr.certificate_done,
            _ => false,
        };
        if dir.hs.is_empty() && p.len() >= 4 {
            let (ty, len) = (p[0], u24(&p[1..4]));
            let want = wanted(ty);
            if p.len() >= 4 + len {
                // The whole message is here: read it in place.
                let body = &p[4..4 + len];
                p = &p[4 + len..];
                if want {
                    message(sh, c, ts, ty, body);
                }
                continue;
            }
            if !want || len > max {
                if want {
                    sh.bad(rec, Malformed::HandshakeTooLarge);
                }
                dir.hs_skip = 4 + len - p.len();
                return;
            }
            // A pooled buffer with room for the whole message, not a doubling growth.
            if dir.hs.capacity() == 0 {
                dir.hs = sh.take_buf();
            }
            dir.hs.reserve(4 + len);
            dir.hs.extend_from_slice(p);
            return;
        }
        // Complete the header, then the message, in the buffer.
        if dir.hs.capacity() == 0 {
            dir.hs = sh.take_buf();
        }
        if dir.hs.len() < 4 {
            let n = (4 - dir.hs.len()).min(p.len());
            dir.hs.extend_from_slice(&p[..n]);
            p = &p[n..];
            if dir.hs.len() < 4 {
                return;
            }
            let (ty, len) = (dir.hs[0], u24(&dir.hs[1..4]));
            let want = wanted(ty);
            if !want || len > max {
                if want {
                    sh.bad(rec, Malformed::HandshakeTooLarge);
                }
                dir.hs.clear();
                dir.hs_skip = len;
                continue;
            }
        }
        let len = u24(&dir.hs[1..4]);
        dir.hs.reserve(4 + len - dir.hs.len());
        let n = (4 + len - dir.hs.len()).min(p.len());
        dir.hs.extend_from_slice(&p[..n]);
        p = &p[n..];
        if dir.hs.len() == 4 + len {
            let buf = std::mem::take(&mut c.dirs[d].hs);
            message(sh, c, ts, buf[0], &buf[4..]);
            // Keep the allocation for the next message.
            let mut buf = buf;
            buf.clear();
            c.dirs[d].hs = buf;
        }
    }
}

/// One whole handshake message that is read.
fn message(sh: &mut Shared, c: &mut Conn, ts: Timestamp, ty: u8, body: &[u8]) {
    match ty {
        // Maybe an encrypted message: read only when it parses, never counted as malformed.
        msg::CLIENT_HELLO
            if c.rec.client_hellos > 0
                && c.dirs[c.client].ccs_before_hello
                && ClientHello::parse(body).is_err() => {}
        msg::CLIENT_HELLO => sh.client_hello(&mut c.rec, &mut c.pr, body, ts, false),
        msg::SERVER_HELLO => {
            sh.server_hello(&mut c.rec, &mut c.pr, body, ts);
            if c.rec.version_code.is_some_and(|v| v >= 0x0304) {
                // TLS 1.3: everything after the ServerHello is encrypted, both ways.
                for dir in &mut c.dirs {
                    dir.encrypted = true;
                }
            }
        }
        msg::CERTIFICATE => sh.certificate(&mut c.rec, &mut c.pr, body),
        _ => {}
    }
}
