//! HTTP/1.x request/response metadata extraction from TCP payloads, with User-Agent parsing and
//! pairing.
//!
//! [`HttpAnalyzer`] takes packets (or already-decoded TCP segments), detects HTTP/1.x on any
//! port from the first payload bytes, reassembles header blocks split over in-order segments,
//! skips bodies by their framing, ignores retransmitted and duplicated segments by TCP sequence
//! number, pairs responses with requests in order (pipelining included) and produces
//! [`HttpRecord`]s. Every table is bounded: connections (oldest evicted when full), the header
//! buffer per direction, the pipelining queue, the User-Agent cache and the summary's top-N
//! maps.

pub mod body;
pub mod detect;
pub mod parse;
pub mod record;
pub mod summary;
pub mod ua;

use body::{Chunked, Step};
use detect::{classify, Start};
use hashbrown::HashTable;
use netspectra_packet::{
    community_id_v1, decode, Batch, DecodeOptions, FlowKey, Fragment, Packet, PacketView, TcpFlags,
    Timestamp,
};
use parse::{
    http09_request, parse, parse_partial, ExtractOptions, FramingHint, Interner, Message, Parsed,
};
pub use record::{HttpRecord, Kind, Lenient, Text, FIELDS};
use std::collections::VecDeque;
use std::hash::BuildHasher;
pub use summary::{Malformed, Stats, Summary};
use ua::UaCache;

/// Which headers beyond the standard fields go into [`HttpRecord::headers`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HeaderSelect {
    /// None (the default).
    #[default]
    None,
    /// These names (case-insensitive).
    List(Vec<String>),
    /// Every header.
    All,
}

/// Configuration of an [`HttpAnalyzer`].
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Connections tracked at once; when full the least recently active one is evicted
    /// (its unfinished header blocks are emitted as partial, its waiting requests flushed).
    pub max_connections: usize,
    /// Bytes buffered per direction for a header block split over segments; a longer block is
    /// emitted as partial and counted as `header_too_large`.
    pub max_header_bytes: usize,
    /// Requests waiting for a response per connection (pipelining depth); beyond it the oldest
    /// is flushed as unanswered.
    pub max_pipeline: usize,
    /// A connection idle this long (packet time, nanoseconds) is flushed and forgotten.
    pub idle_timeout_ns: i64,
    /// One record per transaction instead of one per request and one per response.
    pub paired: bool,
    /// Field extraction limits, extra headers and redaction.
    pub extract: ExtractOptions,
    /// Parse the User-Agent into OS/browser/device fields.
    pub parse_user_agent: bool,
    /// Slots of the User-Agent cache.
    pub ua_cache_slots: usize,
    /// Keys kept per summary count map (hosts, User-Agents, methods).
    pub summary_keys: usize,
    /// Find HTTP inside tunnels (GRE, ERSPAN, VXLAN, VXLAN-GPE, GENEVE, MPLS over UDP, PIM
    /// register, IP-in-IP; on by default, as tshark, Zeek and Suricata do): records then
    /// carry the tunnelled connection's addresses.
    pub decode_tunnels: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 65_536,
            max_header_bytes: 16 * 1024,
            max_pipeline: 64,
            idle_timeout_ns: 300_000_000_000,
            paired: false,
            extract: ExtractOptions::default(),
            parse_user_agent: true,
            ua_cache_slots: 4096,
            summary_keys: 10_000,
            decode_tunnels: true,
        }
    }
}

/// A configuration value outside its documented bounds.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{key} must be {min}..={max} (got {got})")]
pub struct ConfigError {
    /// The configuration key (`max_connections`, ...), which front-ends map to their own
    /// spelling (a flag, a YAML key).
    pub key: &'static str,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// The value given.
    pub got: u64,
}

impl HttpConfig {
    /// Checks every size-like setting against its bounds, so that a typo is an error naming
    /// the key instead of a table that never fills or an allocation that fails. Zero is never
    /// taken to mean one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |key, got: u64, min, max| {
            if (min..=max).contains(&got) {
                Ok(())
            } else {
                Err(ConfigError { key, min, max, got })
            }
        };
        check("max_connections", self.max_connections as u64, 1, 1 << 24)?;
        check(
            "max_header_bytes",
            self.max_header_bytes as u64,
            64,
            1 << 20,
        )?;
        check("max_pipeline", self.max_pipeline as u64, 1, 4096)?;
        check(
            "idle_timeout",
            (self.idle_timeout_ns / 1_000_000_000).max(0) as u64,
            1,
            7 * 86_400,
        )?;
        check("max_name_len", self.extract.max_name as u64, 1, 1 << 16)?;
        check("max_value_len", self.extract.max_value as u64, 1, 1 << 20)?;
        check("ua_cache_slots", self.ua_cache_slots as u64, 1, 1 << 20)?;
        check("summary_keys", self.summary_keys as u64, 1, 1 << 20)?;
        Ok(())
    }
}

/// What a direction's parser expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The start of a message.
    Idle,
    /// Inside a header block (bytes so far in `Dir::buf`).
    Header(Start),
    /// Skipping this many body bytes.
    Body(u64),
    /// Skipping a chunked body.
    Chunked(Chunked),
    /// A response body that ends when the connection closes.
    UntilClose,
    /// Out of sync: waiting for a segment that starts a message.
    Lost,
    /// Skipping the rest of an oversized header block up to its blank line (the last two
    /// bytes seen are kept to find a line end split across segments).
    SkipHeader([u8; 2]),
}

/// One direction of a connection.
struct Dir {
    next_seq: Option<u32>,
    state: State,
    buf: Vec<u8>,
    msg_ts: Timestamp,
    fin: bool,
}

impl Dir {
    fn new() -> Self {
        Dir {
            next_seq: None,
            state: State::Idle,
            buf: Vec::new(),
            msg_ts: Timestamp(0),
            fin: false,
        }
    }
}

/// A request waiting for its response.
struct Pending {
    dir: u8,
    ts: Timestamp,
    method: Option<Text>,
    host: Option<Text>,
    uri: Option<Text>,
    /// The request record itself in paired mode.
    rec: Option<Box<HttpRecord>>,
}

/// One tracked connection (key in canonical orientation; direction 0 = canonical src to dst).
struct Conn {
    key: FlowKey,
    hash: u64,
    last_seen: i64,
    closed: bool,
    tunnel: bool,
    /// A CONNECT was answered 2xx and nothing has gone through the tunnel yet: its first
    /// bytes tell whether it carries plain HTTP (parsed on) or something else (TLS: the
    /// connection becomes a tunnel, no more parsing).
    connect_probe: bool,
    dirs: [Dir; 2],
    pending: VecDeque<Pending>,
    cid: Option<Text>,
}

impl Conn {
    fn new(key: FlowKey, hash: u64, now: i64) -> Self {
        Conn {
            key,
            hash,
            last_seen: now,
            closed: false,
            tunnel: false,
            connect_probe: false,
            dirs: [Dir::new(), Dir::new()],
            pending: VecDeque::new(),
            cid: None,
        }
    }
}

const NIL: u32 = u32::MAX;

/// A slab slot: a connection plus its links in the recency list.
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

/// Extracts HTTP records from packets of one worker's share of the traffic.
pub struct HttpAnalyzer {
    cfg: HttpConfig,
    table: HashTable<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Most recently active connection.
    head: u32,
    /// Least recently active connection.
    tail: u32,
    live: usize,
    hasher: foldhash::fast::RandomState,
    ua: UaCache,
    intern: Interner,
    decode_opts: DecodeOptions,
    stats: Stats,
    out: Vec<HttpRecord>,
}

impl HttpAnalyzer {
    /// A new analyzer.
    pub fn new(cfg: HttpConfig) -> Self {
        HttpAnalyzer {
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            live: 0,
            hasher: foldhash::fast::RandomState::default(),
            ua: UaCache::new(cfg.ua_cache_slots),
            intern: Interner::new(4096),
            decode_opts: DecodeOptions {
                inner: cfg.decode_tunnels,
            },
            stats: Stats::new(cfg.summary_keys),
            out: Vec::new(),
            cfg,
        }
    }

    /// Counters so far (User-Agent cache figures included).
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.ua_cache_hits = self.ua.hits;
        s.ua_cache_misses = self.ua.misses;
        s
    }

    /// Records produced so far and not yet taken.
    pub fn records(&self) -> &[HttpRecord] {
        &self.out
    }

    /// Moves the records produced so far into `into`.
    pub fn take_records(&mut self, into: &mut Vec<HttpRecord>) {
        into.append(&mut self.out);
    }

    /// Connections currently tracked.
    pub fn connections(&self) -> usize {
        self.live
    }

    /// Processes every packet of a batch.
    pub fn on_batch(&mut self, batch: &Batch<'_>) {
        for p in batch.iter() {
            self.on_packet(&p);
        }
    }

    /// Decodes one packet and processes it when it is a TCP segment.
    pub fn on_packet(&mut self, p: &Packet<'_>) {
        let v = decode(p.data, p.link, p.vlan_tci, &self.decode_opts);
        self.on_view(p, &v);
    }

    /// True when HTTP is looked for inside tunnels (the view to hand to
    /// [`HttpAnalyzer::on_view`] is then the innermost one).
    pub fn decodes_tunnels(&self) -> bool {
        self.decode_opts.inner
    }

    /// Processes one packet decoded by the caller (once for every analysis): `v` must be the
    /// view [`HttpAnalyzer::decodes_tunnels`] asks for, decoded from `p.data`.
    pub fn on_view(&mut self, p: &Packet<'_>, v: &PacketView) {
        if v.proto != 6 || v.l4_offset == 0 || v.fragment != Fragment::None {
            return;
        }
        let Some(key) = FlowKey::from_view(v) else {
            return;
        };
        let payload = v.payload(p.data);
        // Bytes the segment carried on the wire (more than captured when the frame was snapped).
        let hdrs = v.payload_offset.saturating_sub(v.l3_offset) as usize;
        let wire_len = (v.ip_len as usize).saturating_sub(hdrs).max(payload.len());
        self.on_segment(p.ts, &key, v.tcp_seq, v.tcp_flags, payload, wire_len);
    }

    /// Processes one TCP segment of flow `key` (as seen on the wire): `payload` are the
    /// captured payload bytes, `wire_len` (>= payload length) the payload length on the wire.
    pub fn on_segment(
        &mut self,
        ts: Timestamp,
        key: &FlowKey,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
        wire_len: usize,
    ) {
        if wire_len == 0 && flags.0 & (TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST) == 0 {
            // A pure ACK changes nothing we track.
            return;
        }
        let (canon, swapped) = key.canonical();
        let d = swapped as usize;
        let hash = self.hasher.hash_one(canon.packed());
        let slots = &self.slots;
        let found = self.table.find(hash, |&i| {
            slots[i as usize]
                .conn
                .as_ref()
                .is_some_and(|c| c.key == canon)
        });
        let idx = match found {
            Some(&i) => i,
            None => {
                // Only a segment that starts an HTTP message opens a connection entry.
                if payload.is_empty() || classify(payload) == Start::None {
                    return;
                }
                self.insert(canon, hash, ts.as_nanos())
            }
        };
        self.touch(idx, ts.as_nanos());

        let syn_only = flags.has(TcpFlags::SYN) && !flags.has(TcpFlags::ACK);
        if syn_only && self.conn(idx).closed {
            // The 5-tuple is reused by a new connection.
            let c = self.conn_mut(idx);
            c.closed = false;
            c.tunnel = false;
            c.connect_probe = false;
            c.dirs = [Dir::new(), Dir::new()];
        }
        // The SYN takes one sequence number; data it carries (TCP Fast Open, on the SYN or the
        // SYN-ACK) starts after it and is stream data like any other.
        let syn = flags.has(TcpFlags::SYN);
        let seq = if syn {
            let dir = &mut self.conn_mut(idx).dirs[d];
            if dir.next_seq.is_none() {
                dir.next_seq = Some(seq.wrapping_add(1));
            }
            seq.wrapping_add(1)
        } else {
            seq
        };

        if wire_len > 0 && !self.conn(idx).closed {
            let dir = &mut self.conn_mut(idx).dirs[d];
            let len = wire_len as u32;
            let end = seq.wrapping_add(len);
            let mut skip = 0usize;
            let mut gap = 0u32;
            let mut retrans = false;
            if let Some(n) = dir.next_seq {
                if !seq_lt(n, end) {
                    retrans = true;
                } else if seq_lt(seq, n) {
                    skip = n.wrapping_sub(seq) as usize;
                } else if seq != n {
                    gap = seq.wrapping_sub(n);
                }
            }
            if retrans {
                self.stats.retransmissions += 1;
            } else {
                dir.next_seq = Some(end);
                if gap > 0 {
                    self.stats.gaps += 1;
                    self.on_gap(idx, d, gap as u64);
                }
                let data = payload.get(skip..).unwrap_or(&[]);
                if self.conn(idx).connect_probe && !data.is_empty() {
                    let c = self.conn_mut(idx);
                    c.connect_probe = false;
                    c.tunnel = classify(data) == Start::None;
                }
                if !self.conn(idx).tunnel {
                    self.consume(idx, d, ts, data);
                    let missing = wire_len.saturating_sub(skip.max(payload.len()));
                    if missing > 0 {
                        // The frame was snapped: the rest of the segment is a gap.
                        self.on_gap(idx, d, missing as u64);
                    }
                }
            }
        }

        if flags.has(TcpFlags::RST) {
            self.close(idx);
        } else if flags.has(TcpFlags::FIN) && !self.conn(idx).closed {
            self.on_fin(idx, d);
        }
    }

    /// Flushes connections idle since before `now - idle_timeout` (call on interval ticks).
    pub fn expire(&mut self, now: Timestamp) {
        let limit = now.as_nanos().saturating_sub(self.cfg.idle_timeout_ns);
        while self.tail != NIL {
            let t = self.tail;
            let c = self.conn(t);
            if c.last_seen >= limit {
                break;
            }
            if !c.closed {
                self.stats.timed_out += 1;
            }
            self.remove(t);
        }
    }

    /// Flushes every connection (end of input): unfinished header blocks become partial
    /// records and waiting requests are flushed as unanswered.
    pub fn finish(&mut self) {
        while self.tail != NIL {
            self.remove(self.tail);
        }
    }

    fn conn(&self, idx: u32) -> &Conn {
        self.slots[idx as usize].conn.as_ref().expect("live slot")
    }

    fn conn_mut(&mut self, idx: u32) -> &mut Conn {
        self.slots[idx as usize].conn.as_mut().expect("live slot")
    }

    fn insert(&mut self, key: FlowKey, hash: u64, now: i64) -> u32 {
        if self.live >= self.cfg.max_connections.max(1) && self.tail != NIL {
            if !self.conn(self.tail).closed {
                self.stats.evicted += 1;
            }
            self.remove(self.tail);
        }
        let conn = Conn::new(key, hash, now);
        let idx = match self.free.pop() {
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
        self.table.insert_unique(hash, idx, |&i| {
            slots[i as usize].conn.as_ref().map_or(0, |c| c.hash)
        });
        self.link_front(idx);
        self.live += 1;
        self.stats.connections += 1;
        idx
    }

    fn unlink(&mut self, idx: u32) {
        let (p, n) = {
            let s = &self.slots[idx as usize];
            (s.prev, s.next)
        };
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

    fn link_front(&mut self, idx: u32) {
        let h = self.head;
        {
            let s = &mut self.slots[idx as usize];
            s.prev = NIL;
            s.next = h;
        }
        if h != NIL {
            self.slots[h as usize].prev = idx;
        } else {
            self.tail = idx;
        }
        self.head = idx;
    }

    fn touch(&mut self, idx: u32, now: i64) {
        let c = self.conn_mut(idx);
        c.last_seen = c.last_seen.max(now);
        if self.head != idx {
            self.unlink(idx);
            self.link_front(idx);
        }
    }

    /// Flushes and forgets a connection.
    fn remove(&mut self, idx: u32) {
        self.close(idx);
        self.unlink(idx);
        let hash = self.conn(idx).hash;
        if let Ok(e) = self.table.find_entry(hash, |&i| i == idx) {
            e.remove();
        }
        self.slots[idx as usize].conn = None;
        self.free.push(idx);
        self.live -= 1;
    }

    /// Ends a connection: unfinished header blocks become partial records, waiting requests
    /// are flushed. The entry stays (so late duplicates of its segments are still recognised)
    /// until it ages out.
    fn close(&mut self, idx: u32) {
        if self.conn(idx).closed {
            return;
        }
        for d in 0..2 {
            self.abandon_header(idx, d);
        }
        while let Some(p) = self.conn_mut(idx).pending.pop_front() {
            self.flush_unanswered(idx, p);
        }
        let c = self.conn_mut(idx);
        c.closed = true;
        for dir in &mut c.dirs {
            dir.buf = Vec::new();
            dir.state = State::Lost;
        }
    }

    fn on_fin(&mut self, idx: u32, d: usize) {
        self.abandon_header(idx, d);
        let c = self.conn_mut(idx);
        let dir = &mut c.dirs[d];
        dir.fin = true;
        if dir.state == State::UntilClose {
            dir.state = State::Idle;
        }
        if c.dirs[0].fin && c.dirs[1].fin {
            self.close(idx);
        }
    }

    /// Bytes of direction `d` were never seen (loss, reordering, snapping).
    fn on_gap(&mut self, idx: u32, d: usize, gap: u64) {
        self.abandon_header(idx, d);
        let dir = &mut self.conn_mut(idx).dirs[d];
        dir.state = match dir.state {
            State::Body(left) if gap < left => State::Body(left - gap),
            State::Chunked(Chunked::Data { left }) if gap < left => {
                State::Chunked(Chunked::Data { left: left - gap })
            }
            State::UntilClose => State::UntilClose,
            _ => State::Lost,
        };
    }

    /// Emits a header block in progress as a partial record.
    fn abandon_header(&mut self, idx: u32, d: usize) {
        let dir = &mut self.conn_mut(idx).dirs[d];
        let State::Header(kind) = dir.state else {
            return;
        };
        dir.state = State::Lost;
        let buf = std::mem::take(&mut dir.buf);
        let ts = dir.msg_ts;
        if kind == Start::Request {
            // A request line without a version and nothing after it is a whole HTTP/0.9
            // request, not a cut one.
            if let Some(m) = http09_request(&buf, &self.cfg.extract) {
                self.emit(idx, d, ts, Box::new(m), false);
                let dir = &mut self.conn_mut(idx).dirs[d];
                dir.buf = buf;
                dir.buf.clear();
                return;
            }
        }
        let m = match kind {
            // Confirmed once its request line is complete and ends in `HTTP/1.x`.
            Start::MaybeRequest if classify(&buf) != Start::Request => None,
            Start::MaybeRequest => parse_partial(&buf, true, &self.cfg.extract),
            _ => parse_partial(&buf, kind == Start::Request, &self.cfg.extract),
        };
        if let Some(m) = m {
            self.emit(idx, d, ts, Box::new(m), true);
        }
        let dir = &mut self.conn_mut(idx).dirs[d];
        dir.buf = buf;
        dir.buf.clear();
    }

    /// When direction `d` answers while the other direction holds an HTTP/0.9 request line
    /// (no version, nothing after it), that request is complete and this is its response:
    /// a body without a status line, running to the close. Returns whether it was so.
    fn answer_http09(&mut self, idx: u32, d: usize) -> bool {
        let req = &self.conn(idx).dirs[1 - d];
        if req.state != State::Header(Start::Request)
            || http09_request(&req.buf, &self.cfg.extract).is_none()
        {
            return false;
        }
        self.abandon_header(idx, 1 - d);
        self.conn_mut(idx).dirs[d].state = State::UntilClose;
        true
    }

    /// Runs the parser of direction `d` over in-order bytes.
    fn consume(&mut self, idx: u32, d: usize, ts: Timestamp, mut p: &[u8]) {
        while !p.is_empty() {
            let state = self.conn(idx).dirs[d].state;
            match state {
                State::Idle | State::Lost => match classify(p) {
                    Start::None if self.answer_http09(idx, d) => {}
                    Start::None => {
                        if state == State::Idle {
                            self.stats.malformed(Malformed::UnexpectedData);
                        }
                        self.conn_mut(idx).dirs[d].state = State::Lost;
                        return;
                    }
                    kind => {
                        let dir = &mut self.conn_mut(idx).dirs[d];
                        dir.msg_ts = ts;
                        dir.buf.clear();
                        dir.state = State::Header(kind);
                    }
                },
                State::Header(kind) => {
                    let request = kind != Start::Response;
                    let max = self.cfg.max_header_bytes.max(64);
                    let extract = &self.cfg.extract;
                    let intern = &mut self.intern;
                    let dir = &mut self.slots[idx as usize]
                        .conn
                        .as_mut()
                        .expect("live slot")
                        .dirs[d];
                    let (parsed, used) = if dir.buf.is_empty() {
                        // Fast path: the whole block is in this segment; parse in place.
                        let r = parse(&p[..p.len().min(max)], request, extract, intern);
                        match r {
                            Parsed::Complete(n, m) => (Parsed::Complete(n, m), n),
                            other => {
                                let take = p.len().min(max);
                                dir.buf.extend_from_slice(&p[..take]);
                                (other, take)
                            }
                        }
                    } else {
                        let old = dir.buf.len();
                        let take = (max - old.min(max)).min(p.len());
                        dir.buf.extend_from_slice(&p[..take]);
                        match parse(&dir.buf, request, extract, intern) {
                            Parsed::Complete(n, m) => {
                                dir.buf.clear();
                                (Parsed::Complete(n, m), n.saturating_sub(old))
                            }
                            other => (other, take),
                        }
                    };
                    match parsed {
                        Parsed::Complete(_, m) => {
                            p = &p[used..];
                            let msg_ts = self.conn(idx).dirs[d].msg_ts;
                            self.emit(idx, d, msg_ts, m, false);
                        }
                        Parsed::Partial => {
                            p = &p[used..];
                            let dir = &self.conn(idx).dirs[d];
                            if dir.buf.len() >= max {
                                let n = dir.buf.len();
                                let tail = [dir.buf[n - 2], dir.buf[n - 1]];
                                self.stats.malformed(Malformed::HeaderTooLarge);
                                self.abandon_header(idx, d);
                                // Skip the rest of the block, then carry on after it.
                                self.conn_mut(idx).dirs[d].state = State::SkipHeader(tail);
                            }
                        }
                        Parsed::Invalid(why) => {
                            if kind != Start::MaybeRequest {
                                self.stats.malformed(why);
                            }
                            let dir = &mut self.conn_mut(idx).dirs[d];
                            dir.buf.clear();
                            dir.state = State::Lost;
                            return;
                        }
                    }
                }
                State::Body(left) => {
                    let take = (p.len() as u64).min(left);
                    p = &p[take as usize..];
                    let left = left - take;
                    self.conn_mut(idx).dirs[d].state = if left == 0 {
                        State::Idle
                    } else {
                        State::Body(left)
                    };
                }
                State::Chunked(mut c) => {
                    let step = c.feed(p);
                    let dir = &mut self.conn_mut(idx).dirs[d];
                    match step {
                        Step::More => {
                            dir.state = State::Chunked(c);
                            return;
                        }
                        Step::Done(n) => {
                            dir.state = State::Idle;
                            p = &p[n..];
                        }
                        Step::Bad => {
                            dir.state = State::Lost;
                            self.stats.malformed(Malformed::BadChunk);
                            return;
                        }
                    }
                }
                State::SkipHeader(mut prev) => {
                    let mut end = None;
                    for (i, &b) in p.iter().enumerate() {
                        if b == b'\n' && (prev[1] == b'\n' || prev == *b"\n\r") {
                            end = Some(i + 1);
                            break;
                        }
                        prev = [prev[1], b];
                    }
                    let dir = &mut self.conn_mut(idx).dirs[d];
                    match end {
                        Some(n) => {
                            dir.state = State::Idle;
                            p = &p[n..];
                        }
                        None => {
                            dir.state = State::SkipHeader(prev);
                            return;
                        }
                    }
                }
                State::UntilClose => return,
            }
        }
    }

    fn community_id(&mut self, idx: u32) -> Text {
        let c = self.conn_mut(idx);
        c.cid
            .get_or_insert_with(|| Text::from(community_id_v1(&c.key, 0)))
            .clone()
    }

    /// A record with the addressing of direction `d` of the connection and no HTTP fields.
    fn base_record(&mut self, idx: u32, d: usize, kind: Kind, ts: Timestamp) -> HttpRecord {
        let cid = self.community_id(idx);
        let key = self.conn(idx).key;
        let k = if d == 0 { key } else { key.reversed() };
        HttpRecord {
            kind,
            ts,
            ip_version: if k.src.is_ipv4() { 4 } else { 6 },
            src_ip: k.src,
            src_port: k.src_port,
            dst_ip: k.dst,
            dst_port: k.dst_port,
            vlan: k.vlan,
            community_id: cid,
            method: None,
            host: None,
            uri: None,
            version: None,
            user_agent: None,
            referer: None,
            pragma: None,
            connection: None,
            content_type: None,
            content_length: None,
            transfer_encoding: None,
            ua_os: None,
            ua_os_version: None,
            ua_browser: None,
            ua_browser_version: None,
            ua_device: None,
            status: None,
            reason: None,
            resp_version: None,
            server: None,
            resp_content_type: None,
            content_encoding: None,
            cache_control: None,
            resp_content_length: None,
            latency_us: None,
            partial: false,
            headers: None,
            lenient: None,
        }
    }

    /// Handles one parsed message of direction `d`: records, pairing, body framing.
    /// Takes the message boxed: fields move out one by one instead of copying the whole block.
    fn emit(&mut self, idx: u32, d: usize, ts: Timestamp, m: Box<Message>, partial: bool) {
        if let Some(why) = m.bad_line {
            self.stats.malformed(why);
        }
        if partial {
            self.stats.partial += 1;
        }
        if m.is_request {
            self.emit_request(idx, d, ts, m, partial);
        } else {
            self.emit_response(idx, d, ts, m, partial);
        }
    }

    fn emit_request(&mut self, idx: u32, d: usize, ts: Timestamp, m: Box<Message>, partial: bool) {
        let st = &mut self.stats;
        st.requests += 1;
        st.methods.add(m.method.as_deref().unwrap_or("-"), 1);
        if let Some(h) = &m.host {
            st.hosts.add(h, 1);
        }
        if let Some(u) = &m.user_agent {
            st.user_agents.add(u, 1);
        }
        if !partial {
            let dir = &mut self.conn_mut(idx).dirs[d];
            dir.state = match m.framing {
                Some(FramingHint::Chunked) => State::Chunked(Chunked::START),
                Some(FramingHint::Length(n)) if n > 0 => State::Body(n),
                _ => State::Idle,
            };
        }
        let mut rec = self.base_record(idx, d, Kind::Request, ts);
        if self.cfg.parse_user_agent {
            if let Some(u) = &m.user_agent {
                let info = self.ua.get(u);
                rec.ua_os = info.os;
                rec.ua_os_version = info.os_version;
                rec.ua_browser = info.browser;
                rec.ua_browser_version = info.browser_version;
                rec.ua_device = Some(Text::Static(info.device));
                rec.user_agent = info.ua;
            }
        }
        rec.partial = partial;
        rec.method = m.method;
        rec.host = m.host;
        rec.uri = m.uri;
        rec.version = m.version;
        if rec.user_agent.is_none() {
            rec.user_agent = m.user_agent;
        }
        rec.referer = m.referer;
        rec.pragma = m.pragma;
        rec.connection = m.connection;
        rec.content_type = m.content_type;
        rec.content_length = m.content_length;
        rec.transfer_encoding = m.transfer_encoding;
        rec.headers = m.headers;
        rec.lenient = m.lenient;
        let pending = Pending {
            dir: d as u8,
            ts,
            method: rec.method.clone(),
            host: if self.cfg.paired {
                None
            } else {
                rec.host.clone()
            },
            uri: if self.cfg.paired {
                None
            } else {
                rec.uri.clone()
            },
            rec: None,
        };
        let pending = if self.cfg.paired {
            rec.kind = Kind::Transaction;
            Pending {
                rec: Some(Box::new(rec)),
                ..pending
            }
        } else {
            self.out.push(rec);
            pending
        };
        if self.conn(idx).pending.len() >= self.cfg.max_pipeline.max(1) {
            self.stats.pipeline_overflow += 1;
            if let Some(old) = self.conn_mut(idx).pending.pop_front() {
                self.flush_unanswered(idx, old);
            }
        }
        self.conn_mut(idx).pending.push_back(pending);
    }

    fn emit_response(&mut self, idx: u32, d: usize, ts: Timestamp, m: Box<Message>, partial: bool) {
        self.stats.responses += 1;
        let status = m.status.unwrap_or(0);
        *self.stats.status.entry(status).or_default() += 1;
        let interim = (100..200).contains(&status) && status != 101;
        // The request this answers: the oldest waiting one from the other direction. An
        // interim (1xx) response leaves it waiting for the final one.
        let c = self.conn_mut(idx);
        let req = match c.pending.front() {
            Some(p) if p.dir as usize != d => {
                if interim {
                    None
                } else {
                    c.pending.pop_front()
                }
            }
            _ => None,
        };
        // An interim response names the request it precedes without consuming it.
        let peek = match c.pending.front() {
            Some(p) if interim && p.dir as usize != d => {
                Some((p.method.clone(), p.host.clone(), p.uri.clone()))
            }
            _ => None,
        };
        let req_method = match (&req, &peek) {
            (Some(r), _) => r.method.clone(),
            (None, Some(p)) => p.0.clone(),
            _ => None,
        };
        if !partial {
            let head = req_method.as_deref() == Some("HEAD");
            let connect_ok =
                req_method.as_deref() == Some("CONNECT") && (200..300).contains(&status);
            let tunnel = status == 101 || connect_ok;
            if connect_ok {
                // The tunnel's first bytes decide whether parsing goes on (plain HTTP through
                // the proxy) or stops (TLS and anything else); both directions start afresh.
                c.connect_probe = true;
                c.dirs[1 - d].state = State::Lost;
            }
            let dir = &mut c.dirs[d];
            dir.state = if connect_ok {
                State::Lost
            } else if tunnel {
                // The connection now carries another protocol.
                c.tunnel = true;
                State::Lost
            } else if head || interim || status == 204 || status == 304 {
                State::Idle
            } else {
                match m.framing {
                    Some(FramingHint::Chunked) => State::Chunked(Chunked::START),
                    Some(FramingHint::Length(0)) => State::Idle,
                    Some(FramingHint::Length(n)) => State::Body(n),
                    None => State::UntilClose,
                }
            };
            if tunnel {
                self.stats.tunnels += 1;
            }
        }
        if req.is_none() && !interim {
            self.stats.orphan_responses += 1;
        }
        if self.cfg.paired && interim {
            return;
        }
        let latency = req
            .as_ref()
            .map(|r| ((ts.as_nanos() - r.ts.as_nanos()).max(0) / 1000) as u64);
        if let Some(l) = latency {
            self.stats.paired += 1;
            self.stats.latency.record(l);
        }
        let mut rec = match req {
            Some(Pending { rec: Some(r), .. }) => *r,
            Some(p) => {
                let mut r = self.base_record(idx, d, Kind::Response, ts);
                r.method = p.method;
                r.host = p.host;
                r.uri = p.uri;
                r
            }
            None if self.cfg.paired => self.base_record(idx, 1 - d, Kind::Transaction, ts),
            None => {
                let mut r = self.base_record(idx, d, Kind::Response, ts);
                if let Some((m, h, u)) = peek {
                    (r.method, r.host, r.uri) = (m, h, u);
                }
                r
            }
        };
        rec.partial |= partial;
        rec.status = m.status;
        rec.reason = m.reason;
        if self.cfg.paired {
            rec.resp_version = m.version;
        } else {
            rec.version = m.version;
            rec.connection = m.connection;
            rec.transfer_encoding = m.transfer_encoding;
            rec.headers = m.headers;
        }
        rec.server = m.server;
        rec.resp_content_type = m.content_type;
        rec.content_encoding = m.content_encoding;
        rec.cache_control = m.cache_control;
        rec.resp_content_length = m.content_length;
        rec.latency_us = latency;
        self.out.push(rec);
    }

    fn flush_unanswered(&mut self, _idx: u32, p: Pending) {
        self.stats.unanswered += 1;
        if let Some(r) = p.rec {
            self.out.push(*r);
        }
    }
}

#[cfg(test)]
mod tests;
