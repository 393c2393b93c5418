//! A DNS exchange that does not fit UDP: the query over UDP gets a response with the TC bit and
//! no answers, and the client asks again over TCP (RFC 7766), where the answer (20-100
//! addresses, often more than one segment) arrives length-prefixed; then the connection closes.

use super::{Ctx, Frame, Session, HOSTS};
use crate::dns;

impl Session {
    /// Next frame: the UDP query and truncated response, then the TCP connection.
    pub(super) fn dns_tcp_step(&mut self, ctx: &mut Ctx) -> Option<Frame> {
        let name = HOSTS[self.host];
        let (id, qt) = (self.ids[0], self.qtypes[0]);
        match self.sub {
            0 => {
                self.sub = 1;
                ctx.truth.dns.queries += 1;
                self.dns_idx[0] = self.list_dns(ctx, "udp", id, qt, true);
                let (ttl, ipid) = (self.path.ttl[0], self.path.ipid[0]);
                self.path.ipid[0] = ipid.wrapping_add(1);
                Some(self.udp_frame(ctx, 0, ttl, ipid, |b| dns::query(b, id, name, qt, true)))
            }
            1 => {
                self.sub = 2;
                ctx.truth.dns.responses += 1;
                ctx.truth.dns.truncated += 1;
                let a = self.tcp_answer(0);
                let a = dns::Answer { tc: true, ..a };
                self.list_answer(ctx, self.dns_idx[0], &a);
                let (ttl, ipid) = (self.path.ttl[1], self.path.ipid[1]);
                self.path.ipid[1] = ipid.wrapping_add(1);
                Some(self.udp_frame(ctx, 1, ttl, ipid, |b| dns::response(b, &a, None)))
            }
            _ => self.tcp_step(ctx),
        }
    }

    /// The full answer; `count` 0 means "the session's count" (decided by its id).
    fn tcp_answer(&self, count: usize) -> dns::Answer<'static> {
        let id = self.ids[0];
        dns::Answer {
            id,
            name: HOSTS[self.host],
            qtype: self.qtypes[0],
            edns: true,
            nx: false,
            cname: id.is_multiple_of(2),
            ttl: 300,
            seed: (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            count: if count > 0 {
                count
            } else {
                20 + id as usize % 81
            },
            tc: false,
        }
    }

    /// Queues the TCP query, then the response; `None` closes the connection.
    pub(super) fn dns_tcp_turn(&mut self, ctx: &mut Ctx) -> Option<usize> {
        self.stage += 1;
        let (id, qt) = (self.ids[0], self.qtypes[0]);
        let mut scratch = [0u8; 4096];
        match self.stage {
            1 => {
                ctx.truth.dns.queries += 1;
                ctx.truth.dns.tcp_queries += 1;
                self.dns_idx[1] = self.list_dns(ctx, "tcp", id, qt, true);
                let n = dns::query(&mut scratch, id, HOSTS[self.host], qt, true);
                self.streams[0].lit(|v| {
                    v.extend_from_slice(&(n as u16).to_be_bytes());
                    v.extend_from_slice(&scratch[..n]);
                });
                Some(0)
            }
            2 => {
                ctx.truth.dns.responses += 1;
                ctx.truth.dns.tcp_responses += 1;
                let a = self.tcp_answer(0);
                self.list_answer(ctx, self.dns_idx[1], &a);
                let n = dns::response(&mut scratch, &a, None);
                self.streams[1].lit(|v| {
                    v.extend_from_slice(&(n as u16).to_be_bytes());
                    v.extend_from_slice(&scratch[..n]);
                });
                Some(1)
            }
            _ => None,
        }
    }
}
