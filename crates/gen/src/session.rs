//! Conversation state machines: each active session produces its next frame on demand, so that
//! many sessions interleave and memory stays bounded by the number of live sessions.

use crate::stream::{Src, Stream, TPL_LEN};
use crate::truth::{bump, HttpTransaction};
use crate::vocab::*;
use crate::wire::{self, proto, Ip, Path};
use crate::Ctx;
use crate::{dns, tls};
use std::fmt::Write as _;

mod dns_tcp;
mod quic;
mod tls_flow;
use std::io::Write as _;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Kind of conversation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// HTTP/1.1 over TCP.
    #[default]
    Http,
    /// TLS over TCP.
    Tls,
    /// Plain TCP bulk transfer.
    Bulk,
    /// DNS over UDP.
    Dns,
    /// ICMP / ICMPv6 echo.
    Echo,
    /// A UDP probe answered by an ICMP / ICMPv6 error quoting it.
    IcmpErr,
    /// A DNS query over UDP answered with TC=1, then retried over TCP (see `dns_tcp`).
    DnsTcp,
    /// A QUIC v1 handshake: Initial packets with a ClientHello and a ServerHello (see `quic`).
    Quic,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Phase {
    #[default]
    Syn,
    SynAck,
    Ack3,
    Data,
    Fin1,
    Fin2Ack,
    Fin2,
    Fin3,
    Rst,
    Done,
}

/// A request waiting for its response.
#[derive(Clone, Copy, Debug, Default)]
struct Pend {
    method: &'static str,
    status: u16,
    close: bool,
}

/// Summary of one written frame, for the per-frame counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Frame {
    /// Frame length.
    pub len: usize,
    /// IPv6.
    pub v6: bool,
    /// VLAN tags.
    pub nvlan: u8,
    /// IP protocol.
    pub proto: u8,
    /// Padded to the Ethernet minimum.
    pub padded: bool,
}

/// One live conversation.
#[derive(Debug, Default)]
pub struct Session {
    /// What it carries.
    pub kind: Kind,
    /// Addresses and link details.
    pub path: Path,
    phase: Phase,
    seq: [u32; 2],
    ts_on: bool,
    ts_base: [u32; 2],
    last_tsval: [u32; 2],
    win: [u16; 2],
    mss: [u16; 2],
    streams: [Stream; 2],
    turn: usize,
    unacked: u32,
    closer: usize,
    rst: bool,
    fin_ack_separate: bool,
    stage: u32,
    left: u32,
    pipeline: bool,
    pend: [Pend; 3],
    npend: usize,
    ua: usize,
    host: usize,
    tls13: bool,
    // UDP / ICMP state.
    ids: [u16; 2],
    nq: u8,
    qtypes: [u16; 2],
    answered: [bool; 2],
    aux_addr: [u8; 16],
    err_kind: u8,
    probe_ttl: u8,
    probe_id: u16,
    windows: bool,
    /// Truth-list indices of this session's DNS transactions.
    dns_idx: [u32; 2],
    /// Step counter of the DNS-over-TCP and QUIC sessions.
    sub: u32,
    /// The TLS handshake plan (TLS and QUIC sessions).
    tls: Option<Box<tls::TlsPlan>>,
    /// QUIC connection state.
    quic: Option<Box<quic::QuicConn>>,
}

fn pick_weighted<T: Copy>(ctx: &mut Ctx, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|x| x.1).sum();
    let mut x = ctx.rng.below(total as u64) as u32;
    for &(v, w) in items {
        if x < w {
            return v;
        }
        x -= w;
    }
    items[0].0
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        207 => "Multi-Status",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes an RFC 7231 date for a Unix time.
fn http_date(out: &mut Vec<u8>, secs: i64) {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm, written out here).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    let _ = write!(
        out,
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
}

impl Session {
    /// Re-initializes this slot for a new conversation of `kind`, keeping the allocations.
    pub fn reset(&mut self, kind: Kind, path: Path) {
        let streams = std::mem::take(&mut self.streams);
        *self = Session {
            kind,
            path,
            streams,
            ..Default::default()
        };
        for s in &mut self.streams {
            s.reset();
        }
    }

    /// Sets up TCP parameters and the application plan.
    pub fn init(&mut self, ctx: &mut Ctx) {
        match self.kind {
            Kind::Http | Kind::Tls | Kind::Bulk | Kind::DnsTcp => {
                self.seq = [ctx.rng.u32(), ctx.rng.u32()];
                self.ts_on = ctx.rng.chance(0.7);
                self.ts_base = [ctx.rng.u32(), ctx.rng.u32()];
                self.win = [
                    *ctx.rng.pick(&[502u16, 501, 2052, 1026, 8212]),
                    *ctx.rng.pick(&[501u16, 235, 509, 4096]),
                ];
                let base = if self.path.v6 { 1440 } else { 1460 };
                self.mss = [base, base];
                self.closer = if ctx.rng.chance(0.75) { 0 } else { 1 };
                self.rst = ctx.rng.chance(ctx.rst_share);
                self.fin_ack_separate = ctx.rng.chance(0.4);
                self.ua = ctx.rng.below(USER_AGENTS.len() as u64) as usize;
                self.host = ctx.rng.weighted(&ctx.host_cdf);
                ctx.truth.tcp.sessions += 1;
                match self.kind {
                    Kind::Http => {
                        ctx.truth.tcp.http += 1;
                        ctx.truth.http.connections += 1;
                        self.left = ctx.rng.pareto(1.0, 1.3, 40.0) as u32;
                        self.pipeline = ctx.rng.chance(0.1);
                    }
                    Kind::Tls => {
                        ctx.truth.tcp.tls += 1;
                        ctx.truth.tls.sessions += 1;
                        self.tls13 = ctx.rng.chance(0.3);
                        // The client profile may not offer TLS 1.3: the plan decides.
                        self.tls_init(ctx);
                        if self.tls13 {
                            ctx.truth.tls.tls13 += 1;
                        } else {
                            ctx.truth.tls.tls12 += 1;
                        }
                        self.left = ctx.rng.pareto(1.0, 1.2, 60.0) as u32;
                    }
                    Kind::DnsTcp => {
                        ctx.truth.tcp.dns += 1;
                        self.ids = [ctx.rng.u32() as u16, 0];
                        self.qtypes = [*ctx.rng.pick(&[1u16, 1, 28]), 0];
                    }
                    _ => {
                        ctx.truth.tcp.bulk += 1;
                    }
                }
            }
            Kind::Quic => self.quic_init(ctx),
            Kind::Dns => {
                self.nq = if ctx.rng.chance(0.4) { 2 } else { 1 };
                self.ids = [ctx.rng.u32() as u16, ctx.rng.u32() as u16];
                self.qtypes = [1, 28];
                if self.nq == 1 {
                    self.qtypes[0] = pick_weighted(ctx, &[(1u16, 6), (28, 2), (65, 1), (16, 1)]);
                }
                self.host = ctx.rng.weighted(&ctx.host_cdf);
                self.answered = [!ctx.rng.chance(0.02), !ctx.rng.chance(0.02)];
            }
            Kind::Echo => {
                self.left = ctx.rng.range(1, 5) as u32;
                self.ids = [ctx.rng.u32() as u16, 1];
                self.windows = ctx.rng.chance(0.4);
                ctx.truth.icmp.echo_sessions += 1;
            }
            Kind::IcmpErr => {
                self.err_kind = ctx.rng.below(2) as u8;
                self.probe_ttl = if self.err_kind == 1 { 1 } else { 64 };
                self.probe_id = ctx.rng.u32() as u16;
            }
        }
    }

    /// Writes this session's next frame into `ctx.buf`; `None` when the session is over.
    pub fn step(&mut self, ctx: &mut Ctx) -> Option<Frame> {
        match self.kind {
            Kind::Http | Kind::Tls | Kind::Bulk => self.tcp_step(ctx),
            Kind::Dns => self.dns_step(ctx),
            Kind::DnsTcp => self.dns_tcp_step(ctx),
            Kind::Quic => self.quic_step(ctx),
            Kind::Echo => self.echo_step(ctx),
            Kind::IcmpErr => self.err_step(ctx),
        }
    }

    // ----------------------------------------------------------------------------------------
    // TCP

    fn tcp_frame(&mut self, ctx: &mut Ctx, dir: usize, flags: u8, payload: usize) -> Frame {
        let p = &mut self.path;
        let buf = &mut ctx.buf[..];
        let l3 = wire::eth(buf, p, dir);
        let optlen = match (flags & SYN != 0, self.ts_on) {
            (true, true) => 20,
            (true, false) => 12,
            (false, true) => 12,
            (false, false) => 0,
        };
        let thl = 20 + optlen;
        let id = p.ipid[dir];
        p.ipid[dir] = id.wrapping_add(1);
        let l4 = l3
            + wire::ip(
                buf,
                l3,
                &Ip {
                    v6: p.v6,
                    src: &p.addr[dir],
                    dst: &p.addr[1 - dir],
                    proto: proto::TCP,
                    payload_len: thl + payload,
                    ttl: p.ttl[dir],
                    id,
                    flow_label: p.flow_label,
                },
            );
        let ack = if flags & ACK != 0 {
            self.seq[1 - dir]
        } else {
            0
        };
        let tsval = self.ts_base[dir].wrapping_add((ctx.clock / 1_000_000) as u32);
        let tsecr = if flags == SYN {
            0
        } else {
            self.last_tsval[1 - dir]
        };
        self.last_tsval[dir] = tsval;
        let win = if flags & SYN != 0 {
            if dir == 0 {
                64240
            } else {
                65160
            }
        } else {
            self.win[dir]
        };
        {
            let t = &mut buf[l4..l4 + thl];
            t[0..2].copy_from_slice(&p.port[dir].to_be_bytes());
            t[2..4].copy_from_slice(&p.port[1 - dir].to_be_bytes());
            t[4..8].copy_from_slice(&self.seq[dir].to_be_bytes());
            t[8..12].copy_from_slice(&ack.to_be_bytes());
            t[12] = ((thl / 4) as u8) << 4;
            t[13] = flags;
            t[14..16].copy_from_slice(&win.to_be_bytes());
            t[16..20].fill(0);
            let o = &mut t[20..];
            let mss = self.mss[dir].to_be_bytes();
            let (tv, te) = (tsval.to_be_bytes(), tsecr.to_be_bytes());
            if flags & SYN != 0 {
                if self.ts_on {
                    o.copy_from_slice(&[
                        2, 4, mss[0], mss[1], 4, 2, 8, 10, tv[0], tv[1], tv[2], tv[3], te[0],
                        te[1], te[2], te[3], 1, 3, 3, 7,
                    ]);
                } else {
                    o.copy_from_slice(&[2, 4, mss[0], mss[1], 1, 3, 3, 8, 1, 1, 4, 2]);
                }
            } else if self.ts_on {
                o.copy_from_slice(&[
                    1, 1, 8, 10, tv[0], tv[1], tv[2], tv[3], te[0], te[1], te[2], te[3],
                ]);
            }
        }
        let pl = l4 + thl;
        if payload > 0 {
            self.streams[dir].take(&mut buf[pl..pl + payload], &ctx.tpl);
            ctx.truth.tcp.payload_bytes += payload as u64;
        }
        self.seq[dir] = self.seq[dir]
            .wrapping_add(payload as u32)
            .wrapping_add((flags & (SYN | FIN) != 0) as u32);
        wire::l4_csum(buf, l3, p.v6, l4, thl + payload, 16);
        let end = pl + payload;
        let len = wire::pad(buf, end);
        Frame {
            len,
            v6: p.v6,
            nvlan: p.nvlan,
            proto: proto::TCP,
            padded: len != end,
        }
    }

    fn tcp_step(&mut self, ctx: &mut Ctx) -> Option<Frame> {
        loop {
            match self.phase {
                Phase::Syn => {
                    self.phase = Phase::SynAck;
                    return Some(self.tcp_frame(ctx, 0, SYN, 0));
                }
                Phase::SynAck => {
                    self.phase = Phase::Ack3;
                    return Some(self.tcp_frame(ctx, 1, SYN | ACK, 0));
                }
                Phase::Ack3 => {
                    self.phase = Phase::Data;
                    self.turn = 0;
                    return Some(self.tcp_frame(ctx, 0, ACK, 0));
                }
                Phase::Data => {
                    let s = self.turn;
                    let r = 1 - s;
                    if ctx.draining && self.kind == Kind::Bulk {
                        self.streams[s].cut_tail(4 * self.seg_size(s) as u64);
                    }
                    if self.streams[s].pending > 0 {
                        if self.unacked >= 2 && ctx.rng.chance(0.85) {
                            self.unacked = 0;
                            return Some(self.tcp_frame(ctx, r, ACK, 0));
                        }
                        let n = self.streams[s].next_len(self.seg_size(s));
                        let last = n as u64 == self.streams[s].pending;
                        let f = self.tcp_frame(ctx, s, ACK | if last { PSH } else { 0 }, n);
                        self.unacked += 1;
                        return Some(f);
                    }
                    match self.next_turn(ctx) {
                        Some(d) => {
                            let ack_first = self.unacked > 0 && (d == s || ctx.rng.chance(0.35));
                            self.turn = d;
                            if ack_first {
                                self.unacked = 0;
                                return Some(self.tcp_frame(ctx, r, ACK, 0));
                            }
                            if d != s {
                                self.unacked = 0;
                            }
                        }
                        None => {
                            if self.rst {
                                self.phase = Phase::Rst;
                                ctx.truth.tcp.rst_closed += 1;
                            } else {
                                self.phase = Phase::Fin1;
                                ctx.truth.tcp.fin_closed += 1;
                            }
                        }
                    }
                }
                Phase::Rst => {
                    self.phase = Phase::Done;
                    return Some(self.tcp_frame(ctx, self.closer, RST | ACK, 0));
                }
                Phase::Fin1 => {
                    self.phase = if self.fin_ack_separate {
                        Phase::Fin2Ack
                    } else {
                        Phase::Fin2
                    };
                    return Some(self.tcp_frame(ctx, self.closer, FIN | ACK, 0));
                }
                Phase::Fin2Ack => {
                    self.phase = Phase::Fin2;
                    return Some(self.tcp_frame(ctx, 1 - self.closer, ACK, 0));
                }
                Phase::Fin2 => {
                    self.phase = Phase::Fin3;
                    return Some(self.tcp_frame(ctx, 1 - self.closer, FIN | ACK, 0));
                }
                Phase::Fin3 => {
                    self.phase = Phase::Done;
                    return Some(self.tcp_frame(ctx, self.closer, ACK, 0));
                }
                Phase::Done => return None,
            }
        }
    }

    /// Queues the next application flight; returns the sending side, or `None` to close.
    fn next_turn(&mut self, ctx: &mut Ctx) -> Option<usize> {
        match self.kind {
            Kind::Http => self.http_turn(ctx),
            Kind::Tls => self.tls_turn(ctx),
            Kind::DnsTcp => self.dns_tcp_turn(ctx),
            _ => self.bulk_turn(ctx),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Bulk

    fn bulk_turn(&mut self, ctx: &mut Ctx) -> Option<usize> {
        self.stage += 1;
        match self.stage {
            1 => {
                let n = ctx.rng.range(16, 300);
                let off = ctx.rng.below(TPL_LEN as u64) as u32;
                self.streams[0].template(Src::Rand, off, n);
                Some(0)
            }
            2 if !ctx.draining => {
                let d = if ctx.rng.chance(0.75) { 1 } else { 0 };
                let n = ctx.rng.pareto(8_000.0, 0.9, ctx.max_body as f64 * 8.0);
                let off = ctx.rng.below(TPL_LEN as u64) as u32;
                self.streams[d].template(Src::Rand, off, n);
                Some(d)
            }
            _ => None,
        }
    }

    // ----------------------------------------------------------------------------------------
    // HTTP

    fn http_turn(&mut self, ctx: &mut Ctx) -> Option<usize> {
        if self.npend > 0 {
            for i in 0..self.npend {
                let p = self.pend[i];
                self.http_response(ctx, p);
                if p.close {
                    self.closer = 1;
                    self.left = 0;
                }
            }
            self.npend = 0;
            return Some(1);
        }
        // When the generator drains, a connection still carries at least one transaction.
        if self.left == 0 || (ctx.draining && self.stage > 0) {
            return None;
        }
        self.stage += 1;
        let k = if self.pipeline {
            (ctx.rng.range(2, 3) as u32).min(self.left)
        } else {
            1
        };
        for i in 0..k {
            self.left -= 1;
            let last = self.left == 0;
            let p = self.http_request(ctx, i > 0, k == 1, last);
            debug_assert!(k == 1 || p.method != "HEAD");
            self.pend[i as usize] = p;
        }
        self.npend = k as usize;
        Some(0)
    }

    fn http_request(&mut self, ctx: &mut Ctx, pipelined: bool, single: bool, last: bool) -> Pend {
        // tshark cannot tell a pipelined HEAD response has no body, so HEAD is never pipelined.
        let mut method = "HEAD";
        while method == "HEAD" {
            method = pick_weighted(
                ctx,
                &[
                    ("GET", 60u32),
                    ("POST", 14),
                    ("HEAD", 5),
                    ("PUT", 5),
                    ("DELETE", 4),
                    ("OPTIONS", 4),
                    ("PATCH", 4),
                    ("PROPFIND", 3),
                ],
            );
            if single {
                break;
            }
        }
        let status = match method {
            "GET" => pick_weighted(
                ctx,
                &[
                    (200u16, 60u32),
                    (304, 12),
                    (404, 8),
                    (301, 4),
                    (302, 4),
                    (500, 3),
                    (403, 2),
                    (401, 2),
                    (204, 2),
                    (503, 1),
                ],
            ),
            "HEAD" => pick_weighted(ctx, &[(200, 8), (404, 2), (301, 1)]),
            "POST" => pick_weighted(
                ctx,
                &[
                    (200, 10),
                    (201, 5),
                    (204, 2),
                    (400, 2),
                    (401, 1),
                    (500, 1),
                    (302, 2),
                ],
            ),
            "PUT" => pick_weighted(ctx, &[(201, 5), (204, 4), (200, 3), (403, 1)]),
            "DELETE" => pick_weighted(ctx, &[(204, 5), (200, 3), (404, 2)]),
            "OPTIONS" => pick_weighted(ctx, &[(204, 3), (200, 3)]),
            "PATCH" => pick_weighted(ctx, &[(200, 5), (204, 3), (422, 1)]),
            _ => pick_weighted(ctx, &[(207, 5), (404, 1)]),
        };
        let close = last && ctx.rng.chance(0.4);
        // Host header.
        let host_name = HOSTS[self.host];
        let port = self.path.port[1];
        let mut host = String::with_capacity(40);
        host.push_str(host_name);
        if port != 80 {
            let _ = write!(host, ":{port}");
        }
        // URI.
        let mut uri = String::with_capacity(64);
        if method == "OPTIONS" && ctx.rng.chance(0.3) {
            uri.push('*');
        } else {
            uri.push_str(PATHS[ctx.rng.weighted(&ctx.path_cdf)]);
            if ctx.rng.chance(0.35) {
                let _ = write!(
                    uri,
                    "?id={}&q={}",
                    ctx.rng.below(100_000),
                    WORDS[ctx.rng.below(WORDS.len() as u64) as usize]
                );
            }
        }
        let ua = USER_AGENTS[self.ua];
        // Body for methods that carry one.
        let body_kind = match method {
            "POST" => pick_weighted(ctx, &[(1u8, 3u32), (2, 2), (0, 1)]),
            "PUT" => 3,
            "PATCH" => 1,
            "PROPFIND" => 4,
            _ => 0,
        };
        let body_len: u64 = match body_kind {
            1 => ctx.rng.range(30, 2000),
            2 => ctx.rng.range(10, 400),
            3 => ctx.rng.pareto(500.0, 1.1, ctx.max_body as f64 / 4.0),
            4 => PROPFIND_BODY.len() as u64,
            _ => 0,
        };
        let want_split = single && !pipelined && ctx.rng.chance(ctx.split_share);
        let mut cuts = [0u64; 2];
        let rng = &mut ctx.rng;
        let s = &mut self.streams[0];
        let start = s.end();
        // Drawn here, in the order the header is written, so the truth knows what was sent.
        let mut with_ua = false;
        s.lit(|v| {
            let at = v.len();
            let _ = write!(v, "{method} {uri} HTTP/1.1\r\nHost: {host}\r\n");
            with_ua = rng.chance(0.97);
            if with_ua {
                let _ = write!(v, "User-Agent: {ua}\r\n");
            }
            let _ = write!(v, "Accept: {}\r\n", rng.pick(ACCEPTS));
            if rng.chance(0.7) {
                let _ = write!(v, "Accept-Language: {}\r\n", rng.pick(LANGS));
                v.extend_from_slice(b"Accept-Encoding: gzip, deflate, br\r\n");
            }
            if rng.chance(0.4) {
                let _ = write!(v, "Referer: {}\r\n", rng.pick(REFERERS));
            }
            if rng.chance(0.3) {
                let _ = write!(
                    v,
                    "Cookie: session={:016x}; theme=dark; _ga=GA1.2.{}.{}\r\n",
                    rng.u64(),
                    rng.below(1 << 31),
                    1_700_000_000 + rng.below(1_000_000)
                );
            }
            if rng.chance(0.08) {
                if rng.chance(0.5) {
                    v.extend_from_slice(b"Authorization: Basic dXNlcjpwYXNzd29yZA==\r\n");
                } else {
                    let _ = write!(
                        v,
                        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.{:032x}\r\n",
                        rng.u64()
                    );
                }
            }
            if method == "PROPFIND" {
                v.extend_from_slice(b"Depth: 1\r\n");
            }
            if rng.chance(0.1) {
                v.extend_from_slice(b"Pragma: no-cache\r\nCache-Control: no-cache\r\n");
            }
            match body_kind {
                1 => v.extend_from_slice(b"Content-Type: application/json\r\n"),
                2 => v.extend_from_slice(b"Content-Type: application/x-www-form-urlencoded\r\n"),
                3 => v.extend_from_slice(b"Content-Type: application/octet-stream\r\n"),
                4 => v.extend_from_slice(b"Content-Type: application/xml; charset=utf-8\r\n"),
                _ => {}
            }
            if body_kind != 0 {
                let _ = write!(v, "Content-Length: {body_len}\r\n");
            }
            v.extend_from_slice(if close {
                b"Connection: close\r\n\r\n"
            } else {
                b"Connection: keep-alive\r\n\r\n"
            });
            if want_split {
                // Cut points at header-line boundaries (tshark flags segments that end inside a
                // header line, or just before its CRLF, as malformed).
                let h = &v[at..];
                let ok = |i: usize| i > 1 && i + 2 < h.len() && h[i - 1] == b'\n';
                for (k, cut) in cuts.iter_mut().enumerate() {
                    if k == 1 && rng.chance(0.5) {
                        break;
                    }
                    for _ in 0..64 {
                        let i = rng.range(1, h.len() as u64 - 2) as usize;
                        if ok(i) {
                            *cut = i as u64;
                            break;
                        }
                    }
                }
            }
        });
        let header_end = s.end();
        match body_kind {
            1 => {
                s.bytes(b"{\"data\":\"");
                let off = rng.below(TPL_LEN as u64) as u32;
                s.template(Src::Text, off, body_len - 11);
                s.bytes(b"\"}");
            }
            2 => {
                // `key=value&...` cut to exactly `body_len` bytes, never ending in `&`.
                let n = body_len as usize;
                s.lit(|v| {
                    const PAT: &[u8] = b"item=1234&user=alice&token=abcdef&";
                    let at = v.len();
                    v.extend(PAT.iter().cycle().take(n));
                    if v.last() == Some(&b'&') {
                        *v.last_mut().unwrap() = b'x';
                    }
                    debug_assert_eq!(v.len() - at, n);
                });
            }
            3 => {
                let off = rng.below(TPL_LEN as u64) as u32;
                s.template(Src::Rand, off, body_len);
            }
            4 => s.bytes(PROPFIND_BODY),
            _ => {}
        }
        let split = cuts[0] != 0 || cuts[1] != 0;
        if split {
            cuts.sort_unstable();
            for c in cuts {
                if c != 0 {
                    s.split_at(start + c);
                }
            }
            s.split_at(header_end);
        }
        // Truth.
        let t = &mut ctx.truth.http;
        t.requests += 1;
        bump(&mut t.by_method, method);
        bump(&mut t.by_host, &host);
        if with_ua {
            bump(&mut t.by_user_agent, ua);
        }
        bump(
            &mut t.by_ip_version,
            if self.path.v6 { "ipv6" } else { "ipv4" },
        );
        bump(&mut t.by_port, &port.to_string());
        if self.path.nvlan > 0 {
            t.vlan_requests += 1;
        }
        if split {
            t.split_requests += 1;
        }
        if pipelined {
            t.pipelined_requests += 1;
        }
        if t.listed {
            if t.transactions.len() < ctx.max_listed {
                t.transactions.push(HttpTransaction {
                    client: self.path.endpoint(0),
                    server: self.path.endpoint(1),
                    ip_version: if self.path.v6 { 6 } else { 4 },
                    vlan: (self.path.nvlan > 0).then_some(self.path.vlans[0]),
                    method: method.to_string(),
                    host,
                    uri,
                    status: Some(status),
                    user_agent: with_ua.then(|| ua.to_string()),
                });
            } else {
                t.listed = false;
                t.transactions = Vec::new();
            }
        }
        Pend {
            method,
            status,
            close,
        }
    }

    fn http_response(&mut self, ctx: &mut Ctx, p: Pend) {
        let head = p.method == "HEAD";
        let no_body = matches!(p.status, 204 | 304);
        let chunked = !head && !no_body && p.status == 200 && ctx.rng.chance(0.15);
        let json = !chunked && ctx.rng.chance(0.25);
        let ctype = if p.status == 207 {
            "application/xml; charset=utf-8"
        } else if json {
            "application/json"
        } else {
            ctx.rng.pick(TEXT_TYPES)
        };
        let body_len: u64 = if no_body {
            0
        } else if p.status == 207 {
            MULTISTATUS_BODY.len() as u64
        } else if p.status >= 300 {
            ctx.rng.range(100, 600)
        } else {
            ctx.rng.pareto(300.0, 1.05, ctx.max_body as f64).max(12)
        };
        let server = SERVERS[self.host % SERVERS.len()];
        let secs = ctx.clock / 1_000_000_000;
        let rng = &mut ctx.rng;
        let s = &mut self.streams[1];
        s.lit(|v| {
            let _ = write!(v, "HTTP/1.1 {} {}\r\nDate: ", p.status, reason(p.status));
            http_date(v, secs);
            let _ = write!(v, "\r\nServer: {server}\r\n");
            if !no_body {
                let _ = write!(v, "Content-Type: {ctype}\r\n");
            }
            if chunked {
                v.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            } else if !no_body {
                let _ = write!(v, "Content-Length: {body_len}\r\n");
            }
            if matches!(p.status, 301 | 302) {
                let _ = write!(
                    v,
                    "Location: https://{}/\r\n",
                    HOSTS[rng.below(HOSTS.len() as u64) as usize]
                );
            }
            if rng.chance(0.5) {
                v.extend_from_slice(
                    [
                        "Cache-Control: max-age=3600\r\n",
                        "Cache-Control: no-cache, no-store\r\n",
                        "Cache-Control: private\r\n",
                    ][rng.below(3) as usize]
                        .as_bytes(),
                );
            }
            if rng.chance(0.3) {
                let _ = write!(v, "ETag: \"{:x}\"\r\n", rng.u64());
            }
            if rng.chance(0.15) {
                let _ = write!(
                    v,
                    "Set-Cookie: sid={:016x}; Path=/; HttpOnly\r\n",
                    rng.u64()
                );
            }
            if p.method == "OPTIONS" {
                v.extend_from_slice(b"Allow: OPTIONS, GET, HEAD, POST, PUT, DELETE, PATCH\r\n");
            }
            v.extend_from_slice(if p.close {
                b"Connection: close\r\n\r\n"
            } else {
                b"Connection: keep-alive\r\n\r\n"
            });
        });
        if !head && !no_body {
            if p.status == 207 {
                s.bytes(MULTISTATUS_BODY);
            } else if chunked {
                let mut left = body_len;
                let mut n = 0;
                while left > 0 {
                    let c = if n < 6 {
                        left.min(rng.range(256, 8192))
                    } else {
                        left
                    };
                    s.lit(|v| {
                        let _ = write!(v, "{c:x}\r\n");
                    });
                    s.template(Src::Text, rng.below(TPL_LEN as u64) as u32, c);
                    s.bytes(b"\r\n");
                    left -= c;
                    n += 1;
                }
                s.bytes(b"0\r\n\r\n");
            } else if json {
                s.bytes(b"{\"data\":\"");
                s.template(Src::Text, rng.below(TPL_LEN as u64) as u32, body_len - 11);
                s.bytes(b"\"}");
            } else {
                s.template(Src::Text, rng.below(TPL_LEN as u64) as u32, body_len);
            }
        }
        let t = &mut ctx.truth.http;
        t.responses += 1;
        bump(&mut t.by_status, &p.status.to_string());
        if chunked {
            t.chunked_responses += 1;
        }
    }

    // ----------------------------------------------------------------------------------------
    // UDP / ICMP

    fn udp_frame(
        &mut self,
        ctx: &mut Ctx,
        dir: usize,
        ttl: u8,
        id: u16,
        payload: impl FnOnce(&mut [u8]) -> usize,
    ) -> Frame {
        let p = &mut self.path;
        let buf = &mut ctx.buf[..];
        let l3 = wire::eth(buf, p, dir);
        let hl = if p.v6 { 40 } else { 20 };
        let l4 = l3 + hl;
        let n = payload(&mut buf[l4 + 8..wire::MAX_FRAME]);
        wire::ip(
            buf,
            l3,
            &Ip {
                v6: p.v6,
                src: &p.addr[dir],
                dst: &p.addr[1 - dir],
                proto: proto::UDP,
                payload_len: 8 + n,
                ttl,
                id,
                flow_label: p.flow_label,
            },
        );
        udp_header(buf, l4, p.port[dir], p.port[1 - dir], n);
        wire::l4_csum(buf, l3, p.v6, l4, 8 + n, 6);
        let end = l4 + 8 + n;
        let len = wire::pad(buf, end);
        Frame {
            len,
            v6: p.v6,
            nvlan: p.nvlan,
            proto: proto::UDP,
            padded: len != end,
        }
    }

    fn dns_step(&mut self, ctx: &mut Ctx) -> Option<Frame> {
        let nq = self.nq as u32;
        let st = self.stage;
        self.stage += 1;
        let name = HOSTS[self.host];
        if st < nq {
            let (id, qt) = (self.ids[st as usize], self.qtypes[st as usize]);
            let edns = self.ids[0] & 1 == 0;
            let ipid = self.path.ipid[0];
            self.path.ipid[0] = ipid.wrapping_add(1);
            ctx.truth.dns.queries += 1;
            self.dns_idx[st as usize] = self.list_dns(ctx, "udp", id, qt, edns);
            let ttl = self.path.ttl[0];
            return Some(self.udp_frame(ctx, 0, ttl, ipid, |b| dns::query(b, id, name, qt, edns)));
        }
        let mut r = st - nq;
        while r < nq && !self.answered[r as usize] {
            r += 1;
            self.stage += 1;
        }
        if r >= nq {
            return None;
        }
        let (id, qt) = (self.ids[r as usize], self.qtypes[r as usize]);
        let edns = self.ids[0] & 1 == 0;
        let nx = self.host == HOSTS.len() - 1 || self.ids[1].is_multiple_of(23);
        let cname = self.ids[1].is_multiple_of(3);
        let ttl_s = ctx.rng.range(30, 3600) as u32;
        let addr_seed = ctx.rng.u64();
        let ipid = self.path.ipid[1];
        self.path.ipid[1] = ipid.wrapping_add(1);
        ctx.truth.dns.responses += 1;
        if nx {
            ctx.truth.dns.nxdomain += 1;
        }
        let a = dns::Answer {
            id,
            name,
            qtype: qt,
            edns,
            nx,
            cname,
            ttl: ttl_s,
            seed: addr_seed,
            count: 0,
            tc: false,
        };
        self.list_answer(ctx, self.dns_idx[r as usize], &a);
        let ttl = self.path.ttl[1];
        Some(self.udp_frame(ctx, 1, ttl, ipid, |b| dns::response(b, &a, None)))
    }

    /// Lists a query of this session in the truth; returns its index.
    fn list_dns(&self, ctx: &mut Ctx, transport: &str, id: u16, qtype: u16, edns: bool) -> u32 {
        let p = &self.path;
        let name = HOSTS[self.host];
        dns::list(&mut ctx.truth.dns, ctx.max_listed, || dns::DnsTransaction {
            client: p.endpoint(0),
            server: p.endpoint(1),
            transport: transport.to_string(),
            vlan: (p.nvlan > 0).then_some(p.vlans[0]),
            id,
            qname: name.to_string(),
            qtype,
            edns,
            ..Default::default()
        })
    }

    /// Records the response `a` in the listed transaction `idx`.
    fn list_answer(&self, ctx: &mut Ctx, idx: u32, a: &dns::Answer<'_>) {
        if let Some(t) = dns::listed(&mut ctx.truth.dns, idx) {
            let mut scratch = [0u8; 4096];
            t.rcode = Some(if a.nx { 3 } else { 0 });
            t.tc = a.tc;
            dns::response(
                &mut scratch,
                a,
                Some((&mut t.answer_types, &mut t.answer_data)),
            );
        }
    }

    fn icmp_frame(
        &mut self,
        ctx: &mut Ctx,
        dir: usize,
        src: Option<[u8; 16]>,
        body: impl FnOnce(&mut [u8], usize) -> usize,
    ) -> Frame {
        let p = &mut self.path;
        let buf = &mut ctx.buf[..];
        let l3 = wire::eth(buf, p, dir);
        let hl = if p.v6 { 40 } else { 20 };
        let l4 = l3 + hl;
        let n = body(buf, l4);
        let id = p.ipid[dir];
        p.ipid[dir] = id.wrapping_add(1);
        let src = src.unwrap_or(p.addr[dir]);
        let pr = if p.v6 { proto::ICMPV6 } else { proto::ICMP };
        wire::ip(
            buf,
            l3,
            &Ip {
                v6: p.v6,
                src: &src,
                dst: &p.addr[1 - dir],
                proto: pr,
                payload_len: n,
                ttl: p.ttl[dir],
                id,
                flow_label: p.flow_label,
            },
        );
        wire::l4_csum(buf, l3, p.v6, l4, n, 2);
        let end = l4 + n;
        let len = wire::pad(buf, end);
        Frame {
            len,
            v6: p.v6,
            nvlan: p.nvlan,
            proto: pr,
            padded: len != end,
        }
    }

    fn echo_step(&mut self, ctx: &mut Ctx) -> Option<Frame> {
        if self.left == 0 {
            return None;
        }
        let reply = self.stage % 2 == 1;
        self.stage += 1;
        let seq = self.ids[1];
        if reply {
            self.left -= 1;
            self.ids[1] += 1;
        }
        let v6 = self.path.v6;
        let ty = match (v6, reply) {
            (false, false) => 8,
            (false, true) => 0,
            (true, false) => 128,
            (true, true) => 129,
        };
        let t = &mut ctx.truth.icmp;
        match (v6, reply) {
            (false, false) => t.echo_requests += 1,
            (false, true) => t.echo_replies += 1,
            (true, false) => t.v6_echo_requests += 1,
            (true, true) => t.v6_echo_replies += 1,
        }
        let id = self.ids[0];
        let windows = self.windows;
        // The request's send time is stamped in Linux-style payloads.
        let sent = ctx.clock;
        let dir = reply as usize;
        Some(self.icmp_frame(ctx, dir, None, |b, at| {
            let h = &mut b[at..at + 8];
            h[0] = ty;
            h[1] = 0;
            h[2..4].fill(0);
            h[4..6].copy_from_slice(&id.to_be_bytes());
            h[6..8].copy_from_slice(&seq.to_be_bytes());
            let d = &mut b[at + 8..];
            if windows {
                d[..32].copy_from_slice(b"abcdefghijklmnopqrstuvwabcdefghi");
                40
            } else {
                let secs = (sent / 1_000_000_000) as u64;
                let usec = ((sent / 1000) % 1_000_000) as u64;
                d[0..8].copy_from_slice(&secs.to_le_bytes());
                d[8..16].copy_from_slice(&usec.to_le_bytes());
                for (i, x) in d[16..56].iter_mut().enumerate() {
                    *x = 0x10 + i as u8;
                }
                64
            }
        }))
    }

    fn err_step(&mut self, ctx: &mut Ctx) -> Option<Frame> {
        let st = self.stage;
        self.stage += 1;
        let ttl = self.probe_ttl;
        let id = self.probe_id;
        match st {
            0 => Some(self.udp_frame(ctx, 0, ttl, id, probe_payload)),
            1 => {
                let v6 = self.path.v6;
                let (ty, code) = match (v6, self.err_kind) {
                    (false, 0) => (3u8, 3u8),
                    (false, _) => (11, 0),
                    (true, 0) => (1, 4),
                    (true, _) => (3, 0),
                };
                if v6 {
                    ctx.truth.icmp.v6_errors += 1;
                } else {
                    ctx.truth.icmp.errors += 1;
                }
                let src = (self.err_kind == 1).then_some(self.aux_addr);
                let path = self.path.clone();
                Some(self.icmp_frame(ctx, 1, src, |b, at| {
                    b[at] = ty;
                    b[at + 1] = code;
                    b[at + 2..at + 8].fill(0);
                    let q = at + 8;
                    let hl = wire::ip(
                        b,
                        q,
                        &Ip {
                            v6,
                            src: &path.addr[0],
                            dst: &path.addr[1],
                            proto: proto::UDP,
                            payload_len: 8 + PROBE_LEN,
                            ttl,
                            id,
                            flow_label: path.flow_label,
                        },
                    );
                    let u = q + hl;
                    let n = probe_payload(&mut b[u + 8..]);
                    udp_header(b, u, path.port[0], path.port[1], n);
                    wire::l4_csum(b, q, v6, u, 8 + n, 6);
                    8 + hl + 8 + n
                }))
            }
            _ => None,
        }
    }

    /// Sets the router address used by time-exceeded errors.
    pub fn set_aux_addr(&mut self, a: [u8; 16]) {
        self.aux_addr = a;
    }
}

const PROBE_LEN: usize = 32;

fn probe_payload(b: &mut [u8]) -> usize {
    for (i, x) in b[..PROBE_LEN].iter_mut().enumerate() {
        *x = 0x40 + i as u8;
    }
    PROBE_LEN
}

fn udp_header(buf: &mut [u8], at: usize, sport: u16, dport: u16, n: usize) {
    buf[at..at + 2].copy_from_slice(&sport.to_be_bytes());
    buf[at + 2..at + 4].copy_from_slice(&dport.to_be_bytes());
    buf[at + 4..at + 6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
    buf[at + 6..at + 8].fill(0);
}

const PROPFIND_BODY: &[u8] = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:propfind xmlns:D=\"DAV:\"><D:prop><D:displayname/><D:getcontentlength/><D:getlastmodified/><D:resourcetype/></D:prop></D:propfind>\n";

const MULTISTATUS_BODY: &[u8] = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/dav/documents/</D:href><D:propstat><D:prop><D:displayname>documents</D:displayname><D:resourcetype><D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response><D:response><D:href>/dav/documents/report.txt</D:href><D:propstat><D:prop><D:displayname>report.txt</D:displayname><D:getcontentlength>4096</D:getcontentlength><D:resourcetype/></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>\n";
