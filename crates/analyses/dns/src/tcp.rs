//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message is preceded by a 2-byte length.
//! Messages are read in place when a segment holds them whole and copied into a per-direction
//! buffer (at most `max_tcp_message` + 2 bytes) when they span segments. Sequence numbers are
//! tracked per direction: retransmitted bytes are ignored, a gap drops the message in progress
//! and the direction waits for a segment that starts with a plausible message.

use crate::detect::looks_like_dns;
use crate::parse::Header;
use crate::summary::Malformed;
use crate::transactions::Transactions;
use hashbrown::HashTable;
use netspectra_packet::{FlowKey, TcpFlags, Timestamp};
use std::hash::BuildHasher;

/// One direction of a connection.
#[derive(Default)]
struct Dir {
    next_seq: Option<u32>,
    /// Bytes of a message (length prefix included) that spans segments.
    buf: Vec<u8>,
    /// Bytes still to skip of a message longer than the bound.
    skip: usize,
    /// Out of step after a gap: waiting for a segment that starts a message.
    lost: bool,
    fin: bool,
}

struct Conn {
    /// Canonical key; direction 0 sends from `key.src`.
    key: FlowKey,
    /// Opened by the content rule on a port that is not a DNS port.
    off_port: bool,
    hash: u64,
    last_seen: i64,
    dirs: [Dir; 2],
}

const NIL: u32 = u32::MAX;

struct Slot {
    conn: Option<Conn>,
    prev: u32,
    next: u32,
}

/// `a` is before `b` in sequence space.
#[inline]
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Tracked DNS-over-TCP connections, least recently active last.
pub(crate) struct TcpStreams {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    live: usize,
    /// Connections in the table that are not on a DNS port: while there are none, a segment
    /// off the DNS ports costs only the content check, no table lookup.
    off_port: usize,
    hasher: foldhash::fast::RandomState,
}

/// The content rule for the first segment of a connection off the DNS ports.
fn opens_off_port(payload: &[u8]) -> bool {
    if payload.len() < 14 {
        return false;
    }
    let len = u16::from_be_bytes([payload[0], payload[1]]) as usize;
    let complete = payload.len() >= 2 + len;
    len >= 12 && looks_like_dns(&payload[2..(2 + len).min(payload.len())], complete)
}

/// A plausible start of a length-prefixed message after a gap.
fn starts_message(p: &[u8]) -> bool {
    if p.len() < 2 + 12 {
        return false;
    }
    let len = u16::from_be_bytes([p[0], p[1]]) as usize;
    let Some(h) = Header::parse(&p[2..]) else {
        return false;
    };
    len >= 12 && h.qdcount <= 1 && h.opcode() <= 6
}

impl TcpStreams {
    pub fn new() -> Self {
        TcpStreams {
            index: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            live: 0,
            off_port: 0,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Connections tracked.
    pub fn len(&self) -> usize {
        self.live
    }

    /// One TCP segment of flow `key` (as seen); `on_port` says a DNS port is involved, else a
    /// connection is only opened by a segment whose content looks like DNS.
    #[allow(clippy::too_many_arguments)]
    pub fn on_segment(
        &mut self,
        tx: &mut Transactions,
        ts: Timestamp,
        key: &FlowKey,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
        wire_len: usize,
        on_port: bool,
    ) {
        let detect = tx.cfg.detect_off_port;
        if !on_port && self.off_port == 0 && !(detect && opens_off_port(payload)) {
            return;
        }
        let (canon, swapped) = key.canonical();
        let d = swapped as usize;
        let hash = self.hasher.hash_one(canon.packed());
        let slots = &self.slots;
        let found = self
            .index
            .find(hash, |&i| {
                slots[i as usize]
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.key == canon)
            })
            .copied();
        let idx = match found {
            Some(i) => i,
            None => {
                if payload.is_empty() {
                    return;
                }
                if !on_port {
                    if !(detect && opens_off_port(payload)) {
                        return;
                    }
                    tx.stats.detected_off_port += 1;
                }
                self.insert(tx, canon, hash, ts.as_nanos(), !on_port)
            }
        };
        self.touch(idx, ts.as_nanos());
        let max = tx.cfg.max_tcp_message;
        let conn = self.slots[idx as usize].conn.as_mut().expect("live slot");
        let dir = &mut conn.dirs[d];
        if flags.has(TcpFlags::SYN) && dir.next_seq.is_none() {
            dir.next_seq = Some(seq.wrapping_add(1));
        }
        if wire_len > 0 {
            let end = seq.wrapping_add(wire_len as u32);
            let mut skip = 0usize;
            match dir.next_seq {
                Some(n) if !seq_lt(n, end) => {
                    tx.stats.tcp_retransmissions += 1;
                    return self.after_data(idx, d, flags);
                }
                Some(n) if seq_lt(seq, n) => skip = n.wrapping_sub(seq) as usize,
                Some(n) if seq != n => {
                    tx.stats.tcp_gaps += 1;
                    dir.buf.clear();
                    dir.skip = 0;
                    dir.lost = true;
                }
                _ => {}
            }
            dir.next_seq = Some(end);
            let data = payload.get(skip..).unwrap_or(&[]);
            if dir.lost {
                if starts_message(data) {
                    dir.lost = false;
                } else {
                    return self.after_data(idx, d, flags);
                }
            }
            feed(tx, dir, ts, &conn.key, d, data, max);
            if wire_len > skip.max(payload.len()) {
                // The frame was snapped: the rest of the segment is missing.
                tx.stats.tcp_gaps += 1;
                dir.buf.clear();
                dir.skip = 0;
                dir.lost = true;
            }
        }
        self.after_data(idx, d, flags);
    }

    /// FIN and RST handling after a segment's data.
    fn after_data(&mut self, idx: u32, d: usize, flags: TcpFlags) {
        let conn = self.slots[idx as usize].conn.as_mut().expect("live slot");
        if flags.has(TcpFlags::FIN) {
            conn.dirs[d].fin = true;
        }
        if flags.has(TcpFlags::RST) || (conn.dirs[0].fin && conn.dirs[1].fin) {
            self.remove(idx);
        }
    }

    /// Drops connections idle since before `now - timeout`.
    pub fn expire(&mut self, tx: &mut Transactions, now: Timestamp) {
        let limit = now.as_nanos().saturating_sub(tx.cfg.tcp_idle_timeout_ns);
        while self.tail != NIL {
            let t = self.tail;
            if self.slots[t as usize]
                .conn
                .as_ref()
                .expect("live slot")
                .last_seen
                >= limit
            {
                break;
            }
            tx.stats.tcp_timed_out += 1;
            self.remove(t);
        }
    }

    /// Drops every connection (a message cut by the end of input is lost).
    pub fn finish(&mut self) {
        while self.tail != NIL {
            self.remove(self.tail);
        }
    }

    fn insert(
        &mut self,
        tx: &mut Transactions,
        key: FlowKey,
        hash: u64,
        now: i64,
        off_port: bool,
    ) -> u32 {
        if self.live >= tx.cfg.max_tcp_connections && self.tail != NIL {
            tx.stats.tcp_evicted += 1;
            self.remove(self.tail);
        }
        tx.stats.tcp_connections += 1;
        self.off_port += off_port as usize;
        let conn = Conn {
            key,
            off_port,
            hash,
            last_seen: now,
            dirs: Default::default(),
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].conn = Some(conn);
                i
            }
            None => {
                self.slots.push(Slot {
                    conn: Some(conn),
                    prev: NIL,
                    next: NIL,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.index.insert_unique(hash, i, |&j| {
            slots[j as usize].conn.as_ref().map_or(0, |c| c.hash)
        });
        self.link_front(i);
        self.live += 1;
        i
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = (self.slots[i as usize].prev, self.slots[i as usize].next);
        if p != NIL {
            self.slots[p as usize].next = n;
        } else {
            self.head = n;
        }
        if n != NIL {
            self.slots[n as usize].prev = p;
        } else {
            self.tail = p;
        }
    }

    fn link_front(&mut self, i: u32) {
        let h = self.head;
        self.slots[i as usize].prev = NIL;
        self.slots[i as usize].next = h;
        if h != NIL {
            self.slots[h as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }

    fn touch(&mut self, i: u32, now: i64) {
        let c = self.slots[i as usize].conn.as_mut().expect("live slot");
        c.last_seen = c.last_seen.max(now);
        if self.head != i {
            self.unlink(i);
            self.link_front(i);
        }
    }

    fn remove(&mut self, i: u32) {
        self.unlink(i);
        let c = self.slots[i as usize].conn.take().expect("live slot");
        self.off_port -= c.off_port as usize;
        if let Ok(e) = self.index.find_entry(c.hash, |&j| j == i) {
            e.remove();
        }
        self.free.push(i);
        self.live -= 1;
    }
}

/// Reads the messages in `p` (new in-order bytes of direction `d` of the connection `canon`).
fn feed(
    tx: &mut Transactions,
    dir: &mut Dir,
    ts: Timestamp,
    canon: &FlowKey,
    d: usize,
    mut p: &[u8],
    max: usize,
) {
    let key = if d == 0 { *canon } else { canon.reversed() };
    while !p.is_empty() {
        if dir.skip > 0 {
            let n = dir.skip.min(p.len());
            dir.skip -= n;
            p = &p[n..];
            continue;
        }
        if dir.buf.is_empty() {
            if p.len() < 2 {
                dir.buf.extend_from_slice(p);
                return;
            }
            let len = u16::from_be_bytes([p[0], p[1]]) as usize;
            if len < 12 {
                tx.stats.malformed(Malformed::BadTcpLength);
                dir.lost = true;
                return;
            }
            if p.len() >= 2 + len {
                // The whole message is in this segment: read it in place.
                tx.on_message(ts, &key, &p[2..2 + len]);
                p = &p[2 + len..];
                continue;
            }
            if len > max {
                tx.stats.tcp_too_large += 1;
                dir.skip = 2 + len - p.len();
                return;
            }
            dir.buf.extend_from_slice(p);
            return;
        }
        // Complete the length prefix, then the message.
        if dir.buf.len() < 2 {
            dir.buf.push(p[0]);
            p = &p[1..];
            if dir.buf.len() < 2 {
                continue;
            }
            let len = u16::from_be_bytes([dir.buf[0], dir.buf[1]]) as usize;
            if len < 12 {
                tx.stats.malformed(Malformed::BadTcpLength);
                dir.buf.clear();
                dir.lost = true;
                return;
            }
            if len > max {
                tx.stats.tcp_too_large += 1;
                dir.buf.clear();
                dir.skip = len;
                continue;
            }
        }
        let len = u16::from_be_bytes([dir.buf[0], dir.buf[1]]) as usize;
        let want = 2 + len - dir.buf.len();
        let n = want.min(p.len());
        dir.buf.extend_from_slice(&p[..n]);
        p = &p[n..];
        if dir.buf.len() == 2 + len {
            tx.on_message(ts, &key, &dir.buf[2..]);
            dir.buf.clear();
        }
    }
}
