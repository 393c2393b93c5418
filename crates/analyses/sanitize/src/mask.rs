//! Payload masking rules: default deny, with per-flow and per-direction TLS record and HTTP/1.x
//! message tracking by TCP sequence number in a bounded table.
//!
//! The same code runs in two modes: sanitizing (masked bytes are zero-filled) and inspecting
//! (`--verify`: masked bytes of TLS application data, HTTP bodies and secret header values must
//! already be zero).

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

/// Bytes kept and masked for one protocol class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeptMasked {
    /// Payload bytes left as they were.
    pub kept: u64,
    /// Payload bytes zero-filled.
    pub masked: u64,
}

/// Payload byte counts per protocol class (bytes above the transport header, or above the last
/// layer understood).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MaskStats {
    /// TLS over TCP.
    pub tls: KeptMasked,
    /// HTTP/1.x over TCP.
    pub http: KeptMasked,
    /// DNS (UDP/TCP ports 53, 5353, 5355).
    pub dns: KeptMasked,
    /// Other TCP/UDP payloads, ICMP bodies, later fragments.
    pub other: KeptMasked,
    /// Bytes above the last layer understood (unknown link/EtherType/protocol, malformed
    /// headers) and IPv4 options.
    pub unparsed: KeptMasked,
    /// Link-layer padding and trailers after the end of the IP packet.
    pub trailer: KeptMasked,
}

/// Protocol class of a byte range, for [`MaskStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// TLS.
    Tls,
    /// HTTP.
    Http,
    /// DNS.
    Dns,
    /// Other payloads.
    Other,
    /// Not understood.
    Unparsed,
    /// Padding after the IP packet.
    Trailer,
}

/// Content that must never survive sanitizing; `--verify` fails when it finds any non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Critical {
    /// Body of a TLS application-data record.
    TlsAppData,
    /// HTTP message body.
    HttpBody,
    /// Value of a secret HTTP header (Cookie, Authorization, ...).
    HttpSecretHeader,
}

/// A non-zero critical byte found by the inspecting mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// What kind of content.
    pub what: Critical,
    /// Byte offset in the frame.
    pub offset: usize,
}

/// Applies keep/mask decisions and counts them.
#[derive(Debug, Default)]
pub struct Act {
    /// Inspect (verify) instead of zero-filling.
    pub inspect: bool,
    /// Byte counts.
    pub stats: MaskStats,
    /// First violation found in the current frame (inspect mode).
    pub violation: Option<Violation>,
    /// Running one's complement sum of every byte zero-filled, aligned to frame offsets (for
    /// checksum adjustment; grows monotonically).
    pub zeroed: u64,
}

impl Act {
    fn bucket(&mut self, b: Bucket) -> &mut KeptMasked {
        match b {
            Bucket::Tls => &mut self.stats.tls,
            Bucket::Http => &mut self.stats.http,
            Bucket::Dns => &mut self.stats.dns,
            Bucket::Other => &mut self.stats.other,
            Bucket::Unparsed => &mut self.stats.unparsed,
            Bucket::Trailer => &mut self.stats.trailer,
        }
    }

    /// Counts `n` bytes kept.
    #[inline]
    pub fn keep(&mut self, n: usize, b: Bucket) {
        self.bucket(b).kept += n as u64;
    }

    /// Zero-fills `data` (at frame offset `at`), or checks it is zero when inspecting and the
    /// content is critical.
    #[inline]
    pub fn mask(&mut self, data: &mut [u8], at: usize, b: Bucket, crit: Option<Critical>) {
        if data.is_empty() {
            return;
        }
        if self.inspect {
            if let Some(c) = crit {
                if self.violation.is_none() {
                    if let Some(p) = data.iter().position(|&x| x != 0) {
                        self.violation = Some(Violation {
                            what: c,
                            offset: at + p,
                        });
                    }
                }
            }
        } else {
            self.zeroed += crate::checksum::sum(data, at % 2 == 1) as u64;
            data.fill(0);
        }
        self.bucket(b).masked += data.len() as u64;
    }
}

/// Masking rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaskConfig {
    /// Keep DNS payloads (queries and answers name hosts and addresses).
    pub keep_dns: bool,
    /// Bytes kept after the transport header of payloads no rule understands.
    pub keep_bytes: usize,
    /// HTTP headers whose values are zero-filled (case-insensitive).
    pub secret_headers: Vec<String>,
    /// Keep TLS handshake records (certificates, SNI); when false only record headers are kept.
    pub keep_tls_handshake: bool,
    /// Most flow directions tracked at once; beyond it new TLS/HTTP flows are masked entirely.
    pub max_flows: usize,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            keep_dns: false,
            keep_bytes: 0,
            secret_headers: [
                "cookie",
                "set-cookie",
                "authorization",
                "proxy-authorization",
            ]
            .map(String::from)
            .to_vec(),
            keep_tls_handshake: true,
            max_flows: 65_536,
        }
    }
}

/// Longest header name compared with the secret list.
const NAME_MAX: usize = 32;
/// A header block longer than this loses sync (masked from there on).
const MAX_HEADER_BLOCK: u32 = 64 * 1024;
/// Largest plausible TLS record body (2^14 plus expansion).
const MAX_TLS_RECORD: u16 = 16384 + 2048;
/// Flows idle this long (capture time) are dropped when the table is full.
const IDLE_NS: i64 = 60_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Lost,
    Tls,
    Http,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HttpPhase {
    /// Start line (kept).
    Start,
    /// Header lines.
    Headers,
    /// `body_left` bytes of body.
    Body,
    /// Body of unknown length: masked until a segment starts a new message.
    BodyUnknown,
}

#[derive(Clone, Copy, Debug)]
struct DirState {
    mode: Mode,
    next_seq: u32,
    last_ns: i64,
    // TLS record framing.
    hdr: [u8; 5],
    hdr_len: u8,
    rec_left: u32,
    rec_keep: bool,
    // HTTP message framing.
    phase: HttpPhase,
    line_len: u32,
    block_len: u32,
    start: [u8; 16],
    start_len: u8,
    name: [u8; NAME_MAX],
    name_len: u8,
    in_value: bool,
    value_started: bool,
    secret: bool,
    /// 1: Content-Length, 2: Transfer-Encoding.
    value_kind: u8,
    value: [u8; 24],
    value_len: u8,
    content_length: Option<u64>,
    cl_bad: bool,
    chunked: bool,
    body_left: u64,
}

impl DirState {
    fn new(mode: Mode, seq: u32, ns: i64) -> Self {
        let mut s = DirState {
            mode,
            next_seq: seq,
            last_ns: ns,
            hdr: [0; 5],
            hdr_len: 0,
            rec_left: 0,
            rec_keep: false,
            phase: HttpPhase::Start,
            line_len: 0,
            block_len: 0,
            start: [0; 16],
            start_len: 0,
            name: [0; NAME_MAX],
            name_len: 0,
            in_value: false,
            value_started: false,
            secret: false,
            value_kind: 0,
            value: [0; 24],
            value_len: 0,
            content_length: None,
            cl_bad: false,
            chunked: false,
            body_left: 0,
        };
        s.reset_http();
        s
    }

    fn reset_http(&mut self) {
        self.phase = HttpPhase::Start;
        self.line_len = 0;
        self.block_len = 0;
        self.start_len = 0;
        self.name_len = 0;
        self.in_value = false;
        self.value_started = false;
        self.secret = false;
        self.value_kind = 0;
        self.value_len = 0;
        self.content_length = None;
        self.cl_bad = false;
        self.chunked = false;
        self.body_left = 0;
    }
}

/// Key of one flow direction: source and destination address (IPv4 mapped into IPv6) and ports.
pub type DirKey = [u8; 36];

struct Entry {
    key: DirKey,
    st: DirState,
}

/// Per-direction stream state for TCP payload masking.
///
/// The states live in a dense vector (reserved for `max_flows`, pages touched only as flows
/// arrive; removal swaps the last entry in) and a hash index maps a key to its position, 4 bytes
/// per bucket. A hash table of whole entries would hold up to twice `max_flows` buckets of
/// ~190 bytes each (25 MB at the default) once it grows past 7/8 load; this holds 190 bytes per
/// tracked direction plus the index (about 13 MB at the default bound).
pub struct Masker {
    cfg: MaskConfig,
    secrets: Vec<Vec<u8>>,
    flows: Vec<Entry>,
    index: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
    /// Flow directions that could not be tracked because the table was full.
    pub untracked: u64,
    /// Times a tracked direction lost its framing (gap, bad record header, oversized headers).
    pub resyncs: u64,
    sweep_backoff: u32,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("flows", &self.flows.len())
            .finish()
    }
}

#[inline]
fn hash_key(hasher: &foldhash::fast::FixedState, k: &DirKey) -> u64 {
    use std::hash::BuildHasher;
    hasher.hash_one(k)
}

/// Key equality without a `memcmp` call (keys are compared on every TCP segment).
#[inline]
fn key_eq(a: &DirKey, b: &DirKey) -> bool {
    let w = |k: &DirKey, i: usize| u64::from_ne_bytes(k[i..i + 8].try_into().expect("8 bytes"));
    let t = |k: &DirKey| u32::from_ne_bytes(k[32..36].try_into().expect("4 bytes"));
    (w(a, 0) ^ w(b, 0)) | (w(a, 8) ^ w(b, 8)) | (w(a, 16) ^ w(b, 16)) | (w(a, 24) ^ w(b, 24)) == 0
        && t(a) == t(b)
}

/// True when `p` starts like a TLS record header (as far as it goes).
fn plausible_tls(p: &[u8]) -> bool {
    let ok0 = p.first().is_none_or(|&t| (20..=24).contains(&t));
    let ok1 = p.get(1).is_none_or(|&v| v == 3);
    let ok2 = p.get(2).is_none_or(|&v| v <= 4);
    let ok34 = if p.len() >= 5 {
        let l = u16::from_be_bytes([p[3], p[4]]);
        l > 0 && l <= MAX_TLS_RECORD
    } else {
        true
    };
    ok0 && ok1 && ok2 && ok34
}

const METHODS: [&[u8]; 10] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"HTTP/1.",
];

/// True when `p` starts an HTTP/1.x request or response.
pub fn looks_http(p: &[u8]) -> bool {
    METHODS.iter().any(|m| p.starts_with(m))
}

/// True for ports on which payloads are DNS.
pub fn is_dns_port(p: u16) -> bool {
    matches!(p, 53 | 5353 | 5355)
}

impl Masker {
    /// Builds an empty tracker.
    pub fn new(cfg: MaskConfig) -> Self {
        // Reserved (address space only) so that the vector never moves up to the bound; beyond
        // 2^20 directions it grows by doubling.
        let reserve = cfg.max_flows.min(1 << 20);
        let secrets = cfg
            .secret_headers
            .iter()
            .map(|s| s.to_ascii_lowercase().into_bytes())
            .filter(|s| s.len() <= NAME_MAX)
            .collect();
        Masker {
            cfg,
            secrets,
            flows: Vec::with_capacity(reserve),
            index: HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(0x5a17),
            untracked: 0,
            resyncs: 0,
            sweep_backoff: 0,
        }
    }

    /// The rules in force.
    pub fn config(&self) -> &MaskConfig {
        &self.cfg
    }

    /// Flow directions currently tracked.
    pub fn tracked(&self) -> usize {
        self.flows.len()
    }

    fn hash(&self, k: &DirKey) -> u64 {
        hash_key(&self.hasher, k)
    }

    /// Masks a payload no stream rule covers: keeps `keep_bytes`, zero-fills the rest.
    pub fn other(&self, act: &mut Act, data: &mut [u8], at: usize) {
        let k = self.cfg.keep_bytes.min(data.len());
        act.keep(k, Bucket::Other);
        act.mask(&mut data[k..], at + k, Bucket::Other, None);
    }

    /// True when DNS payloads are kept (so their addresses must be anonymized).
    pub fn keeps_dns(&self) -> bool {
        self.cfg.keep_dns
    }

    /// DNS payload (kept or masked by configuration).
    pub fn dns(&self, act: &mut Act, data: &mut [u8], at: usize) {
        if self.cfg.keep_dns {
            act.keep(data.len(), Bucket::Dns);
        } else {
            act.mask(data, at, Bucket::Dns, None);
        }
    }

    fn room(&mut self, now: i64) -> bool {
        if self.flows.len() < self.cfg.max_flows {
            return true;
        }
        if self.sweep_backoff > 0 {
            self.sweep_backoff -= 1;
            return false;
        }
        self.flows
            .retain(|e| now.saturating_sub(e.st.last_ns) <= IDLE_NS);
        // Rebuild the index over the new positions.
        self.index.clear();
        let hasher = self.hasher.clone();
        for (i, e) in self.flows.iter().enumerate() {
            let h = hash_key(&hasher, &e.key);
            let flows = &self.flows;
            self.index
                .insert_unique(h, i as u32, |&j| hash_key(&hasher, &flows[j as usize].key));
        }
        if self.flows.len() < self.cfg.max_flows {
            return true;
        }
        // Nothing idle: do not rescan the whole table for every new flow.
        self.sweep_backoff = 4096;
        false
    }

    /// Forgets the direction at position `i` (index entry already removed): the last entry
    /// moves into its place and its index entry is pointed there.
    fn remove_at(&mut self, i: usize) {
        let last = self.flows.len() - 1;
        self.flows.swap_remove(i);
        if i != last {
            let h = hash_key(&self.hasher, &self.flows[i].key);
            if let Some(p) = self.index.find_mut(h, |&j| j as usize == last) {
                *p = i as u32;
            }
        }
    }

    /// Processes the payload of one TCP segment (at frame offset `at`) of direction `key`.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        &mut self,
        act: &mut Act,
        key: &DirKey,
        seq: u32,
        fin_or_rst: bool,
        ts_ns: i64,
        data: &mut [u8],
        at: usize,
    ) {
        let h = self.hash(key);
        let flows = &self.flows;
        let pos = self
            .index
            .find(h, |&j| key_eq(&flows[j as usize].key, key))
            .map(|&j| j as usize);
        if let Some(i) = pos {
            // The state is updated where it lies. The vector is moved out while the segment
            // is processed (a few words, no allocation) so that it and `self` can be borrowed.
            let mut flows = std::mem::take(&mut self.flows);
            let tracked = self.segment(act, &mut flows[i].st, seq, ts_ns, data, at);
            self.flows = flows;
            if !tracked || fin_or_rst {
                if let Ok(e) = self.index.find_entry(h, |&j| j as usize == i) {
                    e.remove();
                }
                self.remove_at(i);
            }
            return;
        }
        if data.is_empty() {
            return;
        }
        let mut st = DirState::new(Mode::Lost, seq, ts_ns);
        if !self.segment(act, &mut st, seq, ts_ns, data, at) || fin_or_rst {
            return;
        }
        if self.room(ts_ns) {
            let i = self.flows.len() as u32;
            self.flows.push(Entry { key: *key, st });
            let (hasher, flows) = (&self.hasher, &self.flows);
            self.index
                .insert_unique(h, i, |&j| hash_key(hasher, &flows[j as usize].key));
        } else {
            self.untracked += 1;
        }
    }

    /// Applies one segment to a direction's state; false when the direction has no framing
    /// (it is then not kept in the table).
    fn segment(
        &mut self,
        act: &mut Act,
        st: &mut DirState,
        seq: u32,
        ts_ns: i64,
        data: &mut [u8],
        at: usize,
    ) -> bool {
        st.last_ns = ts_ns;
        let mut from = 0usize;
        if st.mode != Mode::Lost {
            let d = st.next_seq.wrapping_sub(seq) as i32;
            if d > 0 {
                // Retransmitted bytes: their framing was decided when first seen; mask them.
                let n = (d as usize).min(data.len());
                let b = if st.mode == Mode::Tls {
                    Bucket::Tls
                } else {
                    Bucket::Http
                };
                act.mask(&mut data[..n], at, b, None);
                from = n;
            } else if d < 0 {
                // A gap: bytes are missing, the framing is lost.
                self.resyncs += 1;
                st.mode = Mode::Lost;
            }
        }
        if from < data.len() {
            if st.mode == Mode::Lost
                || (st.mode == Mode::Http
                    && st.phase == HttpPhase::BodyUnknown
                    && from == 0
                    && looks_http(data))
            {
                self.detect(st, &data[from..]);
            }
            match st.mode {
                Mode::Lost => self.other(act, &mut data[from..], at + from),
                Mode::Tls => self.tls(act, st, &mut data[from..], at + from),
                Mode::Http => self.http(act, st, &mut data[from..], at + from),
            }
            let end = seq.wrapping_add(data.len() as u32);
            if st.mode == Mode::Lost || (end.wrapping_sub(st.next_seq) as i32) > 0 {
                st.next_seq = end;
            }
        }
        st.mode != Mode::Lost
    }

    fn detect(&mut self, st: &mut DirState, p: &[u8]) {
        if p.len() >= 5 && plausible_tls(p) {
            st.mode = Mode::Tls;
            st.hdr_len = 0;
            st.rec_left = 0;
        } else if looks_http(p) {
            st.mode = Mode::Http;
            st.reset_http();
        } else {
            st.mode = Mode::Lost;
        }
    }

    fn tls(&mut self, act: &mut Act, st: &mut DirState, data: &mut [u8], at: usize) {
        let mut i = 0usize;
        while i < data.len() {
            if st.rec_left == 0 {
                // Inside a record header.
                let need = 5 - st.hdr_len as usize;
                let n = need.min(data.len() - i);
                let hl = st.hdr_len as usize;
                st.hdr[hl..hl + n].copy_from_slice(&data[i..i + n]);
                st.hdr_len += n as u8;
                if !plausible_tls(&st.hdr[..st.hdr_len as usize]) {
                    self.resyncs += 1;
                    st.mode = Mode::Lost;
                    act.mask(&mut data[i..], at + i, Bucket::Tls, None);
                    return;
                }
                act.keep(n, Bucket::Tls);
                i += n;
                if st.hdr_len == 5 {
                    st.rec_left = u16::from_be_bytes([st.hdr[3], st.hdr[4]]) as u32;
                    st.rec_keep =
                        st.hdr[0] != 23 && (self.cfg.keep_tls_handshake || st.hdr[0] != 22);
                    st.hdr_len = 0;
                }
            } else {
                let n = (st.rec_left as usize).min(data.len() - i);
                if st.rec_keep {
                    act.keep(n, Bucket::Tls);
                } else {
                    let crit = (st.hdr[0] == 23).then_some(Critical::TlsAppData);
                    act.mask(&mut data[i..i + n], at + i, Bucket::Tls, crit);
                }
                st.rec_left -= n as u32;
                i += n;
            }
        }
    }

    fn is_secret(&self, name: &[u8]) -> bool {
        self.secrets.iter().any(|s| s.as_slice() == name)
    }

    fn end_of_headers(st: &mut DirState) {
        let is_response = st.start[..st.start_len as usize].starts_with(b"HTTP/");
        let status = if is_response && st.start_len >= 12 {
            let s = &st.start[9..12];
            if s.iter().all(u8::is_ascii_digit) {
                (s[0] - b'0') as u16 * 100 + (s[1] - b'0') as u16 * 10 + (s[2] - b'0') as u16
            } else {
                0
            }
        } else {
            0
        };
        let no_body =
            is_response && ((100..200).contains(&status) || status == 204 || status == 304);
        if no_body {
            st.reset_http();
        } else if st.chunked || st.cl_bad {
            st.phase = HttpPhase::BodyUnknown;
        } else if let Some(n) = st.content_length {
            if n == 0 {
                st.reset_http();
            } else {
                st.phase = HttpPhase::Body;
                st.body_left = n;
            }
        } else if is_response {
            st.phase = HttpPhase::BodyUnknown;
        } else {
            st.reset_http();
        }
    }

    fn end_of_value(st: &mut DirState) {
        let v = &st.value[..st.value_len as usize];
        match st.value_kind {
            1 => {
                let t = v.trim_ascii();
                let n = if !t.is_empty() && t.iter().all(u8::is_ascii_digit) && t.len() <= 18 {
                    std::str::from_utf8(t)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                } else {
                    None
                };
                match (n, st.content_length) {
                    (Some(n), None) => st.content_length = Some(n),
                    (Some(n), Some(m)) if n == m => {}
                    _ => st.cl_bad = true,
                }
            }
            2 => {
                if v.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked")) {
                    st.chunked = true;
                } else {
                    st.cl_bad = true;
                }
            }
            _ => {}
        }
    }

    fn http(&mut self, act: &mut Act, st: &mut DirState, data: &mut [u8], at: usize) {
        let mut i = 0usize;
        while i < data.len() {
            match st.phase {
                HttpPhase::Body => {
                    let n = (st.body_left.min((data.len() - i) as u64)) as usize;
                    act.mask(
                        &mut data[i..i + n],
                        at + i,
                        Bucket::Http,
                        Some(Critical::HttpBody),
                    );
                    st.body_left -= n as u64;
                    i += n;
                    if st.body_left == 0 {
                        st.reset_http();
                    }
                }
                HttpPhase::BodyUnknown => {
                    act.mask(
                        &mut data[i..],
                        at + i,
                        Bucket::Http,
                        Some(Critical::HttpBody),
                    );
                    return;
                }
                HttpPhase::Start | HttpPhase::Headers => {
                    // Runs of kept bytes up to the end of the line at once: the start line, and
                    // values that are neither secret nor parsed. Same result as byte by byte.
                    let start = st.phase == HttpPhase::Start;
                    if start
                        || (st.in_value && st.value_started && !st.secret && st.value_kind == 0)
                    {
                        let end = data[i..]
                            .iter()
                            .position(|&b| b == b'\n' || (!start && b == b'\r'))
                            .map_or(data.len(), |p| i + p);
                        let n = end - i;
                        if n > 0 && st.block_len as usize + n <= MAX_HEADER_BLOCK as usize {
                            if start {
                                let sl = st.start_len as usize;
                                let m = (st.start.len() - sl).min(n);
                                st.start[sl..sl + m].copy_from_slice(&data[i..i + m]);
                                st.start_len += m as u8;
                            } else {
                                st.line_len += n as u32;
                            }
                            st.block_len += n as u32;
                            act.keep(n, Bucket::Http);
                            i = end;
                            continue;
                        }
                    }
                    // Header names likewise, up to ':' or the end of the line.
                    if !start && !st.in_value {
                        let end = data[i..]
                            .iter()
                            .position(|&b| b == b':' || b == b'\n' || b == b'\r')
                            .map_or(data.len(), |p| i + p);
                        let n = end - i;
                        if n > 0 && st.block_len as usize + n <= MAX_HEADER_BLOCK as usize {
                            let nl = st.name_len as usize;
                            let m = (NAME_MAX - nl).min(n);
                            st.name[nl..nl + m].copy_from_slice(&data[i..i + m]);
                            st.name_len += m as u8;
                            st.line_len += n as u32;
                            st.block_len += n as u32;
                            act.keep(n, Bucket::Http);
                            i = end;
                            continue;
                        }
                    }
                    let c = data[i];
                    st.block_len += 1;
                    if st.block_len > MAX_HEADER_BLOCK {
                        self.resyncs += 1;
                        st.mode = Mode::Lost;
                        act.mask(
                            &mut data[i..],
                            at + i,
                            Bucket::Http,
                            Some(Critical::HttpBody),
                        );
                        return;
                    }
                    if st.phase == HttpPhase::Start {
                        if c == b'\n' {
                            st.phase = HttpPhase::Headers;
                            st.line_len = 0;
                        } else if (st.start_len as usize) < st.start.len() {
                            st.start[st.start_len as usize] = c;
                            st.start_len += 1;
                        }
                        act.keep(1, Bucket::Http);
                        i += 1;
                        continue;
                    }
                    if c == b'\n' {
                        if st.in_value {
                            Self::end_of_value(st);
                        }
                        let empty = st.line_len == 0;
                        st.line_len = 0;
                        st.name_len = 0;
                        st.in_value = false;
                        st.value_started = false;
                        st.secret = false;
                        st.value_kind = 0;
                        st.value_len = 0;
                        act.keep(1, Bucket::Http);
                        i += 1;
                        if empty {
                            Self::end_of_headers(st);
                        }
                        continue;
                    }
                    if c == b'\r' {
                        act.keep(1, Bucket::Http);
                        i += 1;
                        continue;
                    }
                    st.line_len += 1;
                    if !st.in_value {
                        if c == b':' {
                            st.in_value = true;
                            let n = st.name_len as usize;
                            let mut lower = [0u8; NAME_MAX];
                            let name = &mut lower[..n];
                            name.copy_from_slice(&st.name[..n]);
                            name.make_ascii_lowercase();
                            let name = &*name;
                            st.secret = n < NAME_MAX && self.is_secret(name);
                            st.value_kind = if name == b"content-length" {
                                1
                            } else if name == b"transfer-encoding" {
                                2
                            } else {
                                0
                            };
                        } else if (st.name_len as usize) < NAME_MAX {
                            st.name[st.name_len as usize] = c;
                            st.name_len += 1;
                        } else {
                            // Longer than any name compared: remember only that it is long.
                            st.name_len = NAME_MAX as u8;
                        }
                        act.keep(1, Bucket::Http);
                        i += 1;
                        continue;
                    }
                    if !st.value_started && (c == b' ' || c == b'\t') {
                        act.keep(1, Bucket::Http);
                        i += 1;
                        continue;
                    }
                    st.value_started = true;
                    if st.value_kind != 0 && (st.value_len as usize) < st.value.len() {
                        st.value[st.value_len as usize] = c;
                        st.value_len += 1;
                    } else if st.value_kind != 0 {
                        st.cl_bad = true;
                    }
                    if st.secret {
                        // Zero the value up to the end of the line (or of this segment).
                        let end = data[i..]
                            .iter()
                            .position(|&b| b == b'\r' || b == b'\n')
                            .map_or(data.len(), |p| i + p);
                        st.line_len += (end - i) as u32;
                        st.block_len += (end - i - 1) as u32;
                        act.mask(
                            &mut data[i..end],
                            at + i,
                            Bucket::Http,
                            Some(Critical::HttpSecretHeader),
                        );
                        i = end;
                    } else {
                        act.keep(1, Bucket::Http);
                        i += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> DirKey {
        let mut k = [0u8; 36];
        k[0] = n;
        k
    }

    fn run(m: &mut Masker, k: &DirKey, seq: u32, data: &[u8]) -> Vec<u8> {
        let mut act = Act::default();
        let mut d = data.to_vec();
        m.tcp(&mut act, k, seq, false, 0, &mut d, 0);
        d
    }

    fn rec(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t, 3, 3];
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn tls_records_across_segments() {
        let mut m = Masker::new(MaskConfig::default());
        let k = key(1);
        let mut stream = rec(22, b"hello-handshake");
        stream.extend(rec(23, b"secret-application-data"));
        stream.extend(rec(21, b"al"));
        let mut out = Vec::new();
        let mut seq = 1000u32;
        for chunk in stream.chunks(7) {
            out.extend(run(&mut m, &k, seq, chunk));
            seq += chunk.len() as u32;
        }
        let mut want = rec(22, b"hello-handshake");
        want.extend(rec(23, &[0u8; 23]));
        want.extend(rec(21, b"al"));
        assert_eq!(out, want);
    }

    #[test]
    fn tls_gap_masks_until_header() {
        let mut m = Masker::new(MaskConfig::default());
        let k = key(2);
        let a = rec(23, &[9u8; 100]);
        // First 50 bytes arrive, then a gap, then the middle of the record, then a new record.
        run(&mut m, &k, 0, &a[..50]);
        let mid = run(&mut m, &k, 60, &a[60..]);
        assert!(mid.iter().all(|&b| b == 0));
        let next = rec(23, b"zz");
        let out = run(&mut m, &k, a.len() as u32, &next);
        assert_eq!(out, rec(23, &[0, 0]));
    }

    #[test]
    fn tls_retransmission_is_masked() {
        let mut m = Masker::new(MaskConfig::default());
        let k = key(3);
        let a = rec(22, b"handshake");
        run(&mut m, &k, 0, &a);
        let again = run(&mut m, &k, 0, &a);
        assert!(again.iter().all(|&b| b == 0));
        let b = rec(22, b"more");
        assert_eq!(run(&mut m, &k, a.len() as u32, &b), b);
    }

    #[test]
    fn http_headers_kept_secrets_and_body_masked() {
        let mut m = Masker::new(MaskConfig::default());
        let k = key(4);
        let msg = b"POST /x HTTP/1.1\r\nHost: a\r\nCookie: id=42\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nAuthorization: Basic zz\r\n\r\n";
        let mut out = Vec::new();
        let mut seq = 0u32;
        for c in msg.chunks(5) {
            out.extend(run(&mut m, &k, seq, c));
            seq += c.len() as u32;
        }
        let want = b"POST /x HTTP/1.1\r\nHost: a\r\nCookie: \0\0\0\0\0\r\nContent-Length: 5\r\n\r\n\0\0\0\0\0GET / HTTP/1.1\r\nAuthorization: \0\0\0\0\0\0\0\0\r\n\r\n";
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
    }

    #[test]
    fn http_response_without_length_masks_to_next_message() {
        let mut m = Masker::new(MaskConfig::default());
        let k = key(5);
        let a = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
        let out = run(&mut m, &k, 0, a);
        let hdr = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".len();
        assert_eq!(&out[..hdr], &a[..hdr]);
        assert!(out[hdr..].iter().all(|&b| b == 0));
        let b = b"HTTP/1.1 304 Not Modified\r\n\r\n";
        assert_eq!(run(&mut m, &k, a.len() as u32, b), b.to_vec());
    }

    #[test]
    fn verify_mode_finds_leftover_body() {
        let mut m = Masker::new(MaskConfig::default());
        let k = key(6);
        let mut act = Act {
            inspect: true,
            ..Default::default()
        };
        let mut d = rec(23, b"leak");
        m.tcp(&mut act, &k, 0, false, 0, &mut d, 100);
        assert_eq!(
            act.violation,
            Some(Violation {
                what: Critical::TlsAppData,
                offset: 105
            })
        );
    }

    /// Directions removed from the middle of the table (FIN, lost framing) leave every other
    /// direction's state reachable (the last entry moves into the hole).
    #[test]
    fn removals_keep_other_directions_tracked() {
        let mut m = Masker::new(MaskConfig::default());
        let hs = rec(22, &[7u8; 40]);
        let keyn = |i: u32| {
            let mut k = [0u8; 36];
            k[..4].copy_from_slice(&i.to_be_bytes());
            k
        };
        for i in 0..300 {
            assert_eq!(run(&mut m, &keyn(i), 0, &hs[..20]), &hs[..20]);
        }
        assert_eq!(m.tracked(), 300);
        let mut act = Act::default();
        for i in (0..300).filter(|i| i % 3 == 0) {
            m.tcp(&mut act, &keyn(i), 20, true, 0, &mut [], 0);
        }
        // A gap loses the framing of every fifth remaining direction (removed too).
        for i in (0..300).filter(|i| i % 3 != 0 && i % 5 == 0) {
            assert_eq!(run(&mut m, &keyn(i), 1000, b"xyz"), [0, 0, 0]);
        }
        assert_eq!(m.tracked(), 300 - 100 - 40);
        for i in 0..300 {
            let out = run(&mut m, &keyn(i), 20, &hs[20..]);
            if i % 3 == 0 || i % 5 == 0 {
                assert_eq!(out, vec![0u8; hs.len() - 20], "direction {i} was forgotten");
            } else {
                assert_eq!(out, &hs[20..], "direction {i} lost its state");
            }
        }
    }

    #[test]
    fn table_is_bounded() {
        let mut m = Masker::new(MaskConfig {
            max_flows: 2,
            ..Default::default()
        });
        for i in 0..5 {
            run(&mut m, &key(i), 0, &rec(22, b"x"));
        }
        assert_eq!(m.tracked(), 2);
        assert_eq!(m.untracked, 3);
        // An untracked flow is still detected segment by segment when a record starts it.
        assert_eq!(run(&mut m, &key(4), 6, &rec(23, b"ab")), rec(23, &[0, 0]));
    }
}
