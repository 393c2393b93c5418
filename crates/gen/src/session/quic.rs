//! A QUIC handshake (version 1, or 2 for some connections) as seen on the wire: the client's Initial packets carrying its ClientHello
//! in CRYPTO frames (one frame, several frames out of order, or two packets when the hello is
//! large), the server's Initial with an ACK and the ServerHello coalesced with a Handshake
//! packet, the client's acknowledging Initial, then short-header packets both ways. Initial
//! packets are protected with the RFC 9001 keys; everything else is opaque random bytes, as
//! it is to an observer.

use super::{Ctx, Frame, Session, HOSTS};
use crate::quic::{long_packet, put_varint, InitialKeys, LongType, V1, V2};
use crate::stream::TPL_LEN;
use crate::tls::TlsPlan;

/// State of one QUIC connection.
#[derive(Debug, Default)]
pub(crate) struct QuicConn {
    version: u32,
    /// The client's first Destination Connection ID (Initial keys derive from it).
    dcid: [u8; 8],
    /// The client's Source Connection ID (empty for some clients).
    scid: Vec<u8>,
    /// The server's connection ID.
    server_cid: [u8; 8],
    /// The ClientHello handshake message.
    hello: Vec<u8>,
    /// Split point of the hello across two Initial packets (0: one packet).
    cut: usize,
    /// Several CRYPTO frames in one packet, sent out of order.
    scatter: bool,
    /// Next packet number per side.
    pn: [u64; 2],
    /// Short-header packets still to send per side.
    short_left: [u32; 2],
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Appends a CRYPTO frame.
fn crypto(v: &mut Vec<u8>, offset: usize, data: &[u8]) {
    v.push(0x06);
    put_varint(v, offset as u64);
    put_varint(v, data.len() as u64);
    v.extend_from_slice(data);
}

/// Appends an ACK frame acknowledging packet `largest` only.
fn ack(v: &mut Vec<u8>, largest: u64) {
    v.push(0x02);
    put_varint(v, largest);
    v.extend_from_slice(&[0x00, 0x00, 0x00]);
}

/// Plaintext payload that makes a client datagram 1200 bytes (RFC 9000 §14.1) given the
/// packet's header size.
fn min_payload_for(header: usize) -> usize {
    1200 - header - 16
}

impl Session {
    /// Decides the connection and its handshake and lists it in the truth.
    pub(super) fn quic_init(&mut self, ctx: &mut Ctx) {
        let r = &mut ctx.rng;
        // Most connections use version 1, some version 2 (RFC 9369).
        let version = if r.chance(0.15) { V2 } else { V1 };
        let mut q = QuicConn {
            version,
            ..Default::default()
        };
        r.fill(&mut q.dcid);
        if r.chance(0.5) {
            q.scid = vec![0; 8];
            r.fill(&mut q.scid);
        }
        r.fill(&mut q.server_cid);
        let mut plan = TlsPlan::new(r, HOSTS[self.host], true, true);
        plan.client_hello(&mut q.hello, r, &q.scid);
        q.cut = if q.hello.len() > 1000 {
            q.hello.len() / 2 + r.below(200) as usize
        } else if r.chance(0.2) {
            q.hello.len() / 2
        } else {
            0
        };
        q.scatter = q.cut == 0 && r.chance(0.4);
        q.short_left = [r.range(1, 6) as u32, r.range(2, 10) as u32];
        let p = &self.path;
        let t = &mut plan.truth;
        t.client = p.endpoint(0);
        t.server = p.endpoint(1);
        t.vlan = (p.nvlan > 0).then_some(p.vlans[0]);
        t.quic_version = Some(q.version);
        t.quic_dcid = Some(hex(&q.dcid));
        t.quic_scid = Some(hex(&q.scid));
        ctx.truth.tls.quic_sessions += 1;
        crate::tls::list(&mut ctx.truth.tls, ctx.max_listed, &plan.truth);
        self.tls = Some(Box::new(plan));
        self.quic = Some(Box::new(q));
    }

    /// Sends the datagram in `dgram` from side `dir`.
    fn quic_send(&mut self, ctx: &mut Ctx, dir: usize, dgram: &[u8]) -> Frame {
        let (ttl, ipid) = (self.path.ttl[dir], self.path.ipid[dir]);
        self.path.ipid[dir] = ipid.wrapping_add(1);
        self.udp_frame(ctx, dir, ttl, ipid, |b| {
            b[..dgram.len()].copy_from_slice(dgram);
            dgram.len()
        })
    }

    /// Next frame of the connection; `None` when it is over.
    pub(super) fn quic_step(&mut self, ctx: &mut Ctx) -> Option<Frame> {
        let q = self.quic.as_deref_mut().expect("QUIC session state");
        let off = ctx.rng.below(TPL_LEN as u64) as usize;
        let filler = &ctx.tpl.random[off.min(TPL_LEN - 1400)..][..1400];
        let mut d = Vec::with_capacity(1300);
        // Client Initial header: type, version, DCID, SCID, token length, 2-byte length, 2-byte
        // packet number.
        let hdr = 6 + q.dcid.len() + 1 + q.scid.len() + 1 + 2 + 2;
        let step = self.sub;
        self.sub += 1;
        let dir = match step {
            // Client Initial(s) with the ClientHello.
            0 | 1 => {
                if step == 1 && q.cut == 0 {
                    return self.quic_step(ctx);
                }
                let keys = InitialKeys::new(q.version, &q.dcid, false);
                let mut frames = Vec::with_capacity(1200);
                let (from, to) = match (step, q.cut) {
                    (0, 0) => (0, q.hello.len()),
                    (0, c) => (0, c),
                    (_, c) => (c, q.hello.len()),
                };
                if q.scatter {
                    // Three frames: last part first, then the first, then the middle.
                    let (a, b) = (to / 3, 2 * to / 3);
                    crypto(&mut frames, b, &q.hello[b..to]);
                    crypto(&mut frames, 0, &q.hello[..a]);
                    crypto(&mut frames, a, &q.hello[a..b]);
                } else {
                    crypto(&mut frames, from, &q.hello[from..to]);
                }
                let pn = q.pn[0];
                q.pn[0] += 1;
                long_packet(
                    &mut d,
                    q.version,
                    LongType::Initial,
                    &q.dcid,
                    &q.scid,
                    pn,
                    &frames,
                    min_payload_for(hdr),
                    Some(&keys),
                    filler,
                );
                0
            }
            // Server Initial (ACK + ServerHello) coalesced with a Handshake packet.
            2 => {
                let keys = InitialKeys::new(q.version, &q.dcid, true);
                let plan = self.tls.as_deref().expect("QUIC session has a plan");
                let mut sh = Vec::with_capacity(128);
                plan.server_hello(&mut sh, &mut ctx.rng);
                let mut frames = Vec::with_capacity(160);
                ack(&mut frames, q.pn[0] - 1);
                crypto(&mut frames, 0, &sh);
                let pn = q.pn[1];
                q.pn[1] += 1;
                long_packet(
                    &mut d,
                    q.version,
                    LongType::Initial,
                    &q.scid,
                    &q.server_cid,
                    pn,
                    &frames,
                    0,
                    Some(&keys),
                    filler,
                );
                let rest = 1200usize.saturating_sub(d.len() + 40).max(200);
                long_packet(
                    &mut d,
                    q.version,
                    LongType::Handshake,
                    &q.scid,
                    &q.server_cid,
                    0,
                    &[],
                    rest,
                    None,
                    filler,
                );
                1
            }
            // Client Initial acknowledging the server's, plus a Handshake packet, 1200 bytes.
            3 => {
                let mut hs = Vec::with_capacity(128);
                long_packet(
                    &mut hs,
                    q.version,
                    LongType::Handshake,
                    &q.server_cid,
                    &q.scid,
                    0,
                    &[],
                    40,
                    None,
                    filler,
                );
                let keys = InitialKeys::new(q.version, &q.dcid, false);
                let mut frames = Vec::new();
                ack(&mut frames, q.pn[1] - 1);
                let pn = q.pn[0];
                q.pn[0] += 1;
                let ihdr = 6 + q.server_cid.len() + 1 + q.scid.len() + 1 + 2 + 2;
                long_packet(
                    &mut d,
                    q.version,
                    LongType::Initial,
                    &q.server_cid,
                    &q.scid,
                    pn,
                    &frames,
                    min_payload_for(ihdr) - hs.len(),
                    Some(&keys),
                    filler,
                );
                d.extend_from_slice(&hs);
                0
            }
            // Short-header (1-RTT) packets, alternating while both sides have some left.
            _ => {
                let dir = if q.short_left[0] > 0 && (q.short_left[1] == 0 || step.is_multiple_of(2))
                {
                    0
                } else if q.short_left[1] > 0 {
                    1
                } else {
                    return None;
                };
                q.short_left[dir] -= 1;
                d.push(0x40 | (filler[0] & 0x3f));
                if dir == 0 {
                    d.extend_from_slice(&q.server_cid);
                } else {
                    d.extend_from_slice(&q.scid);
                }
                let n = 24 + ctx.rng.below(if dir == 1 { 1150 } else { 300 }) as usize;
                d.extend_from_slice(&filler[1..1 + n]);
                dir
            }
        };
        Some(self.quic_send(ctx, dir, &d))
    }
}
