//! One worker's flow analysis: decodes packets into its table and ships ended flows and
//! per-interval deltas to the merger through a callback (a channel in the CLI).

use crate::table::{EndReason, EndedFlow, FlowDelta, FlowTable, TableCounters};
use crate::TableConfig;
use netspectra_packet::{
    decode, Batch, DecodeOptions, DecodeStatus, Every, Packet, PacketView, Timestamp,
};

/// Ended flows buffered before they are shipped.
const ENDED_BATCH: usize = 4096;
/// Deltas of ended flows buffered before they are shipped inside an interval.
const PENDING_BATCH: usize = 16384;

/// Decode outcomes counted by a worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeCounters {
    /// Frames whose bytes end inside a header.
    pub truncated: u64,
    /// Frames with an inconsistent header.
    pub malformed: u64,
    /// Frames of a link type the decoder does not know.
    pub undecoded: u64,
}

impl DecodeCounters {
    /// Adds another worker's counts.
    pub fn merge(&mut self, o: &DecodeCounters) {
        self.truncated += o.truncated;
        self.malformed += o.malformed;
        self.undecoded += o.undecoded;
    }
}

/// What a worker sends to the merger.
#[derive(Debug)]
pub enum WorkerMsg {
    /// Deltas belonging to interval number `epoch` (counted in ticks seen by the worker).
    Deltas {
        /// Worker index.
        worker: usize,
        /// Interval number.
        epoch: u64,
        /// The deltas.
        deltas: Vec<FlowDelta>,
    },
    /// The worker has delivered everything of interval `epoch`, which ends at `at` (ns).
    Tick {
        /// Worker index.
        worker: usize,
        /// Interval number that ended.
        epoch: u64,
        /// Boundary time.
        at: i64,
    },
    /// Finished flow records.
    Ended(Vec<EndedFlow>),
    /// The worker flushed everything and stopped.
    Done {
        /// Worker index.
        worker: usize,
        /// Its table counters.
        counters: TableCounters,
        /// Its decode counters.
        decode: DecodeCounters,
        /// Bytes its table held at the end (slab, index, caches).
        table_bytes: usize,
    },
}

/// A flow worker: a table plus the callback that ships its output.
pub struct FlowWorker {
    id: usize,
    table: FlowTable,
    opts: DecodeOptions,
    epoch: u64,
    decode: DecodeCounters,
    ended: Vec<EndedFlow>,
    /// When idle flows are next expired between ticks.
    expire: Every,
    out: Box<dyn FnMut(WorkerMsg) + Send>,
}

impl FlowWorker {
    /// A worker with index `id`; `out` receives its messages in order.
    pub fn new(id: usize, cfg: TableConfig, out: Box<dyn FnMut(WorkerMsg) + Send>) -> Self {
        let opts = DecodeOptions { inner: cfg.inner };
        let expire = Every::new(cfg.expire_every);
        FlowWorker {
            id,
            table: FlowTable::new(cfg, true),
            opts,
            epoch: 0,
            decode: DecodeCounters::default(),
            ended: Vec::with_capacity(ENDED_BATCH),
            expire,
            out,
        }
    }

    /// Processes one batch.
    pub fn on_batch(&mut self, batch: &Batch<'_>) {
        for p in batch.iter() {
            self.on_packet(&p);
        }
        self.end_batch();
    }

    /// Processes one packet (call [`FlowWorker::end_batch`] after a run of packets).
    #[inline]
    pub fn on_packet(&mut self, p: &Packet<'_>) {
        let v = decode(p.data, p.link, p.vlan_tci, &self.opts);
        self.on_view(p.ts, p.orig_len, &v);
    }

    /// Processes one packet decoded by the caller (once for every analysis): `v` must be the
    /// view [`FlowWorker::inner`] asks for.
    #[inline]
    pub fn on_view(&mut self, ts: Timestamp, orig_len: u32, v: &PacketView) {
        match v.status {
            DecodeStatus::Complete => {}
            DecodeStatus::Truncated(_) => self.decode.truncated += 1,
            DecodeStatus::Malformed(_) => self.decode.malformed += 1,
            DecodeStatus::Undecoded => self.decode.undecoded += 1,
        }
        self.expire.see(ts.as_nanos());
        self.table.update(ts.as_nanos(), orig_len, v);
    }

    /// True when flows are keyed on the innermost packet of tunnels (the view to hand to
    /// [`FlowWorker::on_view`]).
    pub fn inner(&self) -> bool {
        self.opts.inner
    }

    /// Ships buffered output when enough has accumulated; every `expire_every` of packet time
    /// ([`TableConfig::expire_every`]), expires idle flows and ships their records at once.
    pub fn end_batch(&mut self) {
        if self.expire.due() {
            self.table.sweep(self.expire.now());
            self.ship(true);
        } else {
            self.ship(false);
        }
    }

    /// Interval boundary: expire idle flows as of `at`, then hand over the interval's deltas.
    pub fn on_tick(&mut self, at: Timestamp) {
        self.table.sweep(at.as_nanos());
        self.expire.done_at(at.as_nanos());
        let mut d = Vec::new();
        self.table.take_deltas(&mut d);
        (self.out)(WorkerMsg::Deltas {
            worker: self.id,
            epoch: self.epoch,
            deltas: d,
        });
        (self.out)(WorkerMsg::Tick {
            worker: self.id,
            epoch: self.epoch,
            at: at.as_nanos(),
        });
        self.epoch += 1;
        self.ship(true);
    }

    fn ship(&mut self, force: bool) {
        if self.table.ended_len() >= ENDED_BATCH || (force && self.table.ended_len() > 0) {
            self.table.take_ended(&mut self.ended);
            let v = std::mem::replace(&mut self.ended, Vec::with_capacity(ENDED_BATCH));
            (self.out)(WorkerMsg::Ended(v));
        }
        if self.table.pending_len() >= PENDING_BATCH {
            let mut d = Vec::with_capacity(PENDING_BATCH);
            self.table.take_pending(&mut d);
            (self.out)(WorkerMsg::Deltas {
                worker: self.id,
                epoch: self.epoch,
                deltas: d,
            });
        }
    }

    /// End of input: exports every live flow, ships the rest and says goodbye.
    pub fn finish(self) {
        self.finish_with(EndReason::EndOfInput);
    }

    /// [`FlowWorker::finish`], ending live flows with `reason` (a probe's shutdown ends them
    /// with [`EndReason::Shutdown`]).
    pub fn finish_with(mut self, reason: EndReason) {
        // Ship in bounded batches so that memory does not spike with the table size.
        while self.table.flush_some(ENDED_BATCH, reason) {
            self.ship(true);
        }
        let mut d = Vec::new();
        self.table.take_deltas(&mut d);
        (self.out)(WorkerMsg::Deltas {
            worker: self.id,
            epoch: self.epoch,
            deltas: d,
        });
        self.ship(true);
        (self.out)(WorkerMsg::Done {
            worker: self.id,
            counters: *self.table.counters(),
            decode: self.decode,
            table_bytes: self.table.memory_bytes(),
        });
    }

    /// The table (for tests and statistics).
    pub fn table(&self) -> &FlowTable {
        &self.table
    }

    /// Packets that did not decode completely so far, by reason.
    pub fn decode_counters(&self) -> &DecodeCounters {
        &self.decode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_EXPIRE_EVERY;
    use netspectra_packet::{IpPair, L3Proto, TcpFlags};
    use std::sync::{Arc, Mutex};

    const SEC: i64 = 1_000_000_000;

    fn udp(sp: u16) -> PacketView {
        PacketView {
            l3: L3Proto::Ipv4,
            ip: Some(IpPair {
                src: [10, 0, 0, 1].into(),
                dst: [10, 0, 0, 2].into(),
            }),
            proto: 17,
            ip_len: 100,
            l4_offset: 34,
            src_port: sp,
            dst_port: 53,
            tcp_flags: TcpFlags(0),
            ..Default::default()
        }
    }

    /// Ended flows shipped so far, by source port.
    fn worker() -> (FlowWorker, Arc<Mutex<Vec<u16>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = Arc::clone(&got);
        let mut cfg = TableConfig::default();
        cfg.timeouts.udp = SEC;
        let w = FlowWorker::new(
            0,
            cfg,
            Box::new(move |m| {
                if let WorkerMsg::Ended(v) = m {
                    g.lock().unwrap().extend(v.iter().map(|f| f.key.src_port));
                }
            }),
        );
        (w, got)
    }

    #[test]
    fn an_idle_flow_is_shipped_within_a_sweep_step_of_its_timeout_without_a_tick() {
        let (mut w, got) = worker();
        let t0 = 1_000 * SEC;
        w.on_view(Timestamp(t0), 100, &udp(1000));
        w.end_batch();
        // Traffic of another flow goes on; the first one idles out after 1 s.
        let mut t = t0;
        while t < t0 + SEC + DEFAULT_EXPIRE_EVERY {
            t += DEFAULT_EXPIRE_EVERY / 4;
            w.on_view(Timestamp(t), 100, &udp(2000));
            w.end_batch();
            if t < t0 + SEC {
                assert!(got.lock().unwrap().is_empty(), "shipped before its timeout");
            }
        }
        assert_eq!(*got.lock().unwrap(), vec![1000]);
    }

    #[test]
    fn without_packet_time_passing_nothing_is_swept_early() {
        let (mut w, got) = worker();
        let t0 = 1_000 * SEC;
        for _ in 0..10 {
            w.on_view(Timestamp(t0), 100, &udp(1000));
            w.end_batch();
        }
        assert!(got.lock().unwrap().is_empty());
        w.on_tick(Timestamp(t0 + 2 * SEC));
        assert_eq!(*got.lock().unwrap(), vec![1000]);
    }
}
