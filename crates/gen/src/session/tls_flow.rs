//! The TLS-over-TCP conversation: ClientHello, the server's flight (TLS 1.2 full handshake with
//! a certificate chain, TLS 1.2 resumption, or TLS 1.3 with its encrypted flight), the client's
//! finish (or a fatal alert), application data and the closing alert. The handshake contents
//! come from the session's [`TlsPlan`]; record counts go to the truth.

use super::{Ctx, Session, HOSTS};
use crate::stream::{Src, TPL_LEN};
use crate::tls::{server_key_exchange, TlsPlan};

/// TLS stage after the closing alert.
pub(super) const CLOSED: u32 = u32::MAX / 2;

impl Session {
    /// Decides the handshake of a new TLS session and lists it in the truth.
    pub(super) fn tls_init(&mut self, ctx: &mut Ctx) {
        let mut plan = TlsPlan::new(&mut ctx.rng, HOSTS[self.host], self.tls13, false);
        self.tls13 = plan.tls13;
        let p = &self.path;
        plan.truth.client = p.endpoint(0);
        plan.truth.server = p.endpoint(1);
        plan.truth.vlan = (p.nvlan > 0).then_some(p.vlans[0]);
        crate::tls::list(&mut ctx.truth.tls, ctx.max_listed, &plan.truth);
        self.tls = Some(Box::new(plan));
    }

    /// Appends one TLS record; `body` writes the record body.
    fn tls_record(
        &mut self,
        ctx: &mut Ctx,
        dir: usize,
        ctype: u8,
        body: impl FnOnce(&TlsPlan, &mut Vec<u8>, &mut crate::rng::Rng),
    ) {
        let version: u16 = if ctype == 22 && self.stage == 1 {
            0x0301
        } else {
            0x0303
        };
        let rng = &mut ctx.rng;
        let plan = self.tls.as_deref().expect("TLS session has a plan");
        let s = &mut self.streams[dir];
        let start = s.end();
        s.lit(|v| {
            let at = v.len();
            v.push(ctype);
            v.extend_from_slice(&version.to_be_bytes());
            v.extend_from_slice(&[0, 0]);
            body(plan, v, rng);
            let len = (v.len() - at - 5) as u16;
            v[at + 3..at + 5].copy_from_slice(&len.to_be_bytes());
        });
        let end = s.end();
        self.count_record(ctx, dir, ctype, start, end);
    }

    /// Appends an encrypted record whose body comes from the random template.
    fn tls_opaque(&mut self, ctx: &mut Ctx, dir: usize, ctype: u8, len: u64) {
        let s = &mut self.streams[dir];
        let start = s.end();
        s.bytes(&[ctype, 3, 3, (len >> 8) as u8, len as u8]);
        s.template(Src::Rand, ctx.rng.below(TPL_LEN as u64) as u32, len);
        let end = s.end();
        self.count_record(ctx, dir, ctype, start, end);
    }

    fn count_record(&mut self, ctx: &mut Ctx, dir: usize, ctype: u8, start: u64, end: u64) {
        let t = &mut ctx.truth.tls;
        match ctype {
            20 => t.ccs_records += 1,
            21 => t.alert_records += 1,
            22 => t.handshake_records += 1,
            _ => {
                t.app_data_records += 1;
                t.app_data_bytes += end - start - 5;
            }
        }
        // Flights are segmented at MSS boundaries from the flight start.
        let fs = self.streams[dir].sent;
        let mss = self.seg_size(dir) as u64;
        if (start - fs) / mss != (end - 1 - fs) / mss {
            t.spanning_records += 1;
        }
    }

    /// Payload bytes of a full-sized segment: the MSS less the TCP options every data segment
    /// carries (timestamps), as real stacks do, so IP packets never exceed a 1500-byte MTU.
    pub(super) fn seg_size(&self, dir: usize) -> usize {
        self.mss[dir] as usize - if self.ts_on { 12 } else { 0 }
    }

    pub(super) fn tls_turn(&mut self, ctx: &mut Ctx) -> Option<usize> {
        if self.stage >= CLOSED {
            return None;
        }
        self.stage += 1;
        let sni = HOSTS[self.host];
        let tls13 = self.tls13;
        let (resumed, alert) = {
            let t = &self.tls.as_deref().expect("TLS session has a plan").truth;
            (t.resumed, t.alert)
        };
        match self.stage {
            1 => {
                self.tls_record(ctx, 0, 22, |p, v, r| p.client_hello(v, r, &[]));
                Some(0)
            }
            2 => {
                self.tls_record(ctx, 1, 22, |p, v, r| p.server_hello(v, r));
                if tls13 {
                    self.tls_record(ctx, 1, 20, |_, v, _| v.push(1));
                    let n = if resumed {
                        ctx.rng.range(90, 200)
                    } else {
                        ctx.rng.range(1800, 4200)
                    };
                    self.tls_opaque(ctx, 1, 23, n);
                } else if resumed {
                    // Abbreviated handshake: the server finishes first.
                    self.tls_record(ctx, 1, 20, |_, v, _| v.push(1));
                    self.tls_opaque(ctx, 1, 22, 40);
                } else if ctx.rng.chance(0.5) {
                    // Certificate, ServerKeyExchange and ServerHelloDone in one record.
                    self.tls_record(ctx, 1, 22, |p, v, r| {
                        p.certificate(v, r, sni);
                        server_key_exchange(v, r);
                        v.extend_from_slice(&[14, 0, 0, 0]);
                    });
                } else {
                    self.tls_record(ctx, 1, 22, |p, v, r| p.certificate(v, r, sni));
                    self.tls_record(ctx, 1, 22, |_, v, r| server_key_exchange(v, r));
                    self.tls_record(ctx, 1, 22, |_, v, _| v.extend_from_slice(&[14, 0, 0, 0]));
                }
                Some(1)
            }
            3 => {
                if let Some(desc) = alert {
                    // The client rejects the certificate: a fatal alert in clear, then close.
                    self.tls_record(ctx, 0, 21, |_, v, _| v.extend_from_slice(&[2, desc]));
                    self.stage = CLOSED;
                    self.closer = 0;
                    return Some(0);
                }
                if tls13 {
                    self.tls_record(ctx, 0, 20, |_, v, _| v.push(1));
                    self.tls_opaque(ctx, 0, 23, 53);
                } else if resumed {
                    self.tls_record(ctx, 0, 20, |_, v, _| v.push(1));
                    self.tls_opaque(ctx, 0, 22, 40);
                    // The server already finished: application data follows.
                    self.stage = 4;
                } else {
                    self.tls_record(ctx, 0, 22, |_, v, r| {
                        v.extend_from_slice(&[16, 0, 0, 66, 65, 4]);
                        let at = v.len();
                        v.resize(at + 64, 0);
                        r.fill(&mut v[at..]);
                    });
                    self.tls_record(ctx, 0, 20, |_, v, _| v.push(1));
                    self.tls_opaque(ctx, 0, 22, 40);
                }
                Some(0)
            }
            4 => {
                if tls13 {
                    let n = ctx.rng.range(1, 2);
                    for _ in 0..n {
                        let l = ctx.rng.range(200, 300);
                        self.tls_opaque(ctx, 1, 23, l);
                    }
                } else {
                    self.tls_record(ctx, 1, 20, |_, v, _| v.push(1));
                    self.tls_opaque(ctx, 1, 22, 40);
                }
                Some(1)
            }
            _ => {
                let app = self.stage - 5;
                if app.is_multiple_of(2) {
                    if self.left == 0 || (ctx.draining && app > 0) {
                        return self.tls_close(ctx);
                    }
                    self.left -= 1;
                    let n = ctx.rng.range(1, 2);
                    for _ in 0..n {
                        let l = ctx.rng.range(60, 900) + 24;
                        self.tls_opaque(ctx, 0, 23, l);
                    }
                    Some(0)
                } else {
                    let mut total = ctx.rng.pareto(400.0, 1.0, ctx.max_body as f64);
                    while total > 0 {
                        let rec = if ctx.rng.chance(0.3) {
                            ctx.rng.range(100, 1400)
                        } else {
                            16384
                        }
                        .min(total);
                        self.tls_opaque(ctx, 1, 23, rec + 24);
                        total -= rec;
                    }
                    Some(1)
                }
            }
        }
    }

    fn tls_close(&mut self, ctx: &mut Ctx) -> Option<usize> {
        self.stage = CLOSED;
        if self.tls13 {
            self.tls_opaque(ctx, 0, 23, 19);
        } else {
            self.tls_opaque(ctx, 0, 21, 26);
        }
        self.closer = 0;
        Some(0)
    }
}
