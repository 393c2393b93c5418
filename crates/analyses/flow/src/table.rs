//! The per-worker flow table: one hash lookup and a few adds per packet, bounded size, and
//! expiry by per-class LRU lists (never a scan of the whole table).
//!
//! Layout: flows live in a slab (`Vec<Flow>`) with an intrusive free list; a slot index
//! (`crate::slots`: slab index and 32 hash bits in one `u64` per slot) maps the seeded hash of
//! the canonical key to slab indices. A lookup reads one slot (a `hashbrown` table read a
//! control group and a separate bucket), and growing the index re-places slots from their hash
//! bits instead of reading every flow's key from the slab again. Each
//! protocol class (TCP, closed TCP, UDP, ICMP, other) has its own doubly linked list ordered by
//! the time a flow was last moved to its tail. A flow is moved at most once per second of
//! packet time, so busy flows do not pay the list update on every packet; the sweep refreshes
//! entries whose real last-seen time is newer than their list position says.

use crate::config::{TableConfig, Timeouts};
use crate::slots::SlotIndex;
use netspectra_packet::icmp::{icmp_role, IcmpRole};
use netspectra_packet::{decode::ip_proto, DecodeStatus, FlowKey, Fragment, PacketView, TcpFlags};
use std::hash::BuildHasher;
use std::net::IpAddr;

const NIL: u32 = u32::MAX;
const SEC: i64 = 1_000_000_000;
/// Granularity of LRU moves: a flow already moved within this much packet time stays put.
const MOVE_GRANULARITY: i64 = SEC;

/// Why a flow record ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Both sides sent FIN (exported after the closed timeout, or when a new SYN reuses the tuple).
    Fin,
    /// A RST was seen.
    Rst,
    /// No packet for the idle timeout of its protocol.
    Idle,
    /// The flow lived longer than the active timeout and was split.
    Active,
    /// The table was full and this was the least recently seen flow.
    TableFull,
    /// End of input (or stop requested).
    EndOfInput,
    /// A long-running capture (the probe) was shut down while the flow was live.
    Shutdown,
}

impl EndReason {
    /// All reasons, in counter order.
    pub const ALL: [EndReason; 7] = [
        EndReason::Fin,
        EndReason::Rst,
        EndReason::Idle,
        EndReason::Active,
        EndReason::TableFull,
        EndReason::EndOfInput,
        EndReason::Shutdown,
    ];

    /// Snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::Idle => "idle",
            EndReason::Active => "active",
            EndReason::TableFull => "table_full",
            EndReason::EndOfInput => "end_of_input",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// A finished flow, oriented from initiator to responder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndedFlow {
    /// Key oriented initiator → responder.
    pub key: FlowKey,
    /// First packet time (ns).
    pub first: i64,
    /// Last packet time (ns).
    pub last: i64,
    /// Packets initiator → responder, responder → initiator.
    pub packets: [u64; 2],
    /// Frame bytes (wire length) per direction.
    pub bytes: [u64; 2],
    /// IP bytes (IP total length) per direction.
    pub ip_bytes: [u64; 2],
    /// TCP flags seen per direction.
    pub tcp_flags: [u8; 2],
    /// ICMP/ICMPv6 code of each direction's first packet (0 for other protocols, and for a
    /// direction without packets). A paired type's key holds the two types but no code; an
    /// exporter that reports type and code per direction (IPFIX) takes the code from here.
    pub icmp_code: [u8; 2],
    /// Why it ended.
    pub reason: EndReason,
}

/// Unreported growth of one flow since the last snapshot, oriented initiator → responder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowDelta {
    /// Key oriented initiator → responder.
    pub key: FlowKey,
    /// Packets per direction (forward, reverse).
    pub packets: [u64; 2],
    /// Frame bytes per direction.
    pub bytes: [u64; 2],
    /// True when the flow record started since the last snapshot.
    pub new_flow: bool,
    /// First packet time of the flow record (ns).
    pub first: i64,
}

/// Packets that did not go into a flow, by reason, and table events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableCounters {
    /// Packets offered.
    pub packets: u64,
    /// Packets counted in a flow.
    pub flow_packets: u64,
    /// Not flow-able: no IP layer (ARP, other EtherTypes, undecoded link types, or decoding
    /// stopped before the IP addresses).
    pub no_ip: u64,
    /// Not flow-able: TCP/UDP (or other port protocol) packet whose transport header is missing
    /// or truncated (not a later fragment).
    pub l4_missing: u64,
    /// Not flow-able: later IP fragment whose first fragment was not seen (or expired).
    pub orphan_fragments: u64,
    /// Later fragments attributed to their flow through the first-fragment cache.
    pub fragments_attributed: u64,
    /// First-fragment cache entries overwritten by a newer one in the same slot.
    pub frag_cache_overwrites: u64,
    /// Flow records started.
    pub flows_started: u64,
    /// Flow records ended, by reason (order of [`EndReason::ALL`]).
    pub ended: [u64; 7],
    /// Most flows live at once.
    pub peak_live: u64,
}

impl TableCounters {
    /// Adds another worker's counters (peaks add: workers hold disjoint flows).
    pub fn merge(&mut self, o: &TableCounters) {
        self.packets += o.packets;
        self.flow_packets += o.flow_packets;
        self.no_ip += o.no_ip;
        self.l4_missing += o.l4_missing;
        self.orphan_fragments += o.orphan_fragments;
        self.fragments_attributed += o.fragments_attributed;
        self.frag_cache_overwrites += o.frag_cache_overwrites;
        self.flows_started += o.flows_started;
        for i in 0..6 {
            self.ended[i] += o.ended[i];
        }
        self.peak_live += o.peak_live;
    }

    /// Packets not in any flow.
    pub fn not_flowable(&self) -> u64 {
        self.no_ip + self.l4_missing + self.orphan_fragments
    }
}

const CLASS_TCP: u8 = 0;
const CLASS_CLOSED: u8 = 1;
const CLASS_UDP: u8 = 2;
const CLASS_ICMP: u8 = 3;
const CLASS_OTHER: u8 = 4;
const CLASSES: usize = 5;

// Flow state bits.
const ST_FIN0: u8 = 1;
const ST_FIN1: u8 = 2;
const ST_RST: u8 = 4;
const ST_SYN: u8 = 8; // a pure SYN decided the initiator (TCP)
const ST_DIRTY: u8 = 16;
const ST_NEW: u8 = 32;
const ST_INIT1: u8 = 64; // initiator is the canonical key's dst side

/// `account`'s flags for an ICMP packet with its header (above the TCP flag bits).
const ICMP_PACKET: u16 = 0x100;

/// One live flow (canonical key; index 0 = canonical src → dst).
#[derive(Clone, Debug)]
struct Flow {
    key: FlowKey,
    first: i64,
    last: i64,
    moved: i64,
    packets: [u64; 2],
    bytes: [u64; 2],
    ip_bytes: [u64; 2],
    snap_packets: [u64; 2],
    snap_bytes: [u64; 2],
    prev: u32,
    next: u32,
    /// TCP flags per direction; for ICMP flows (which have none) the code of each
    /// direction's first packet, so that the entry stays 160 bytes.
    flags: [u8; 2],
    class: u8,
    state: u8,
}

#[derive(Clone, Copy, Default)]
struct List {
    head: u32,
    tail: u32,
}

/// One slot of the direct-mapped first-fragment cache.
#[derive(Clone, Copy)]
struct FragSlot {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
    vlan: Option<u16>,
    ts: i64,
    /// The directional key of the first fragment (with ports).
    key: FlowKey,
}

/// The flow table of one worker.
pub struct FlowTable {
    cfg: TableConfig,
    hasher: foldhash::quality::FixedState,
    index: SlotIndex,
    slab: Vec<Flow>,
    free: u32,
    live: usize,
    lists: [List; CLASSES],
    idle: [i64; CLASSES],
    frags: Vec<Option<FragSlot>>,
    now: i64,
    next_sweep: i64,
    dirty: Vec<u32>,
    /// Deltas of flows that ended since the last snapshot collection.
    pending: Vec<FlowDelta>,
    /// Flows that ended since the last drain.
    ended: Vec<EndedFlow>,
    counters: TableCounters,
    track_deltas: bool,
}

fn class_of(proto: u8) -> u8 {
    match proto {
        ip_proto::TCP => CLASS_TCP,
        ip_proto::UDP => CLASS_UDP,
        ip_proto::ICMP | ip_proto::ICMPV6 => CLASS_ICMP,
        _ => CLASS_OTHER,
    }
}

fn idle_of(t: &Timeouts) -> [i64; CLASSES] {
    [t.tcp, t.tcp_closed, t.udp, t.icmp, t.other]
}

impl FlowTable {
    /// An empty table. With `track_deltas`, flows touched since the last
    /// [`FlowTable::take_deltas`] are remembered for view snapshots.
    pub fn new(cfg: TableConfig, track_deltas: bool) -> Self {
        // Checked configurations are within the bound; an unchecked one is held to it here, so
        // that no setting can make this allocation fail.
        let frag_slots = cfg
            .frag_slots
            .clamp(1, crate::config::MAX_FRAG_SLOTS)
            .next_power_of_two();
        FlowTable {
            hasher: foldhash::quality::FixedState::with_seed(cfg.seed),
            index: SlotIndex::default(),
            slab: Vec::new(),
            free: NIL,
            live: 0,
            lists: [List {
                head: NIL,
                tail: NIL,
            }; CLASSES],
            idle: idle_of(&cfg.timeouts),
            frags: vec![None; frag_slots],
            now: i64::MIN,
            next_sweep: i64::MIN,
            dirty: Vec::new(),
            pending: Vec::new(),
            ended: Vec::new(),
            counters: TableCounters::default(),
            track_deltas,
            cfg,
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> &TableCounters {
        &self.counters
    }

    /// Flows currently live.
    pub fn live(&self) -> usize {
        self.live
    }

    /// The configuration.
    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }

    /// Flows ended since the last call (drains).
    pub fn take_ended(&mut self, out: &mut Vec<EndedFlow>) {
        out.append(&mut self.ended);
    }

    /// Number of ended flows waiting to be drained.
    pub fn ended_len(&self) -> usize {
        self.ended.len()
    }

    /// Number of pending deltas of ended flows.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Deltas of ended flows only (drains), to bound memory between snapshots.
    pub fn take_pending(&mut self, out: &mut Vec<FlowDelta>) {
        out.append(&mut self.pending);
    }

    /// Every unreported delta: ended flows plus live flows touched since the last call.
    pub fn take_deltas(&mut self, out: &mut Vec<FlowDelta>) {
        out.append(&mut self.pending);
        let dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            let f = &mut self.slab[i as usize];
            if f.state & ST_DIRTY != 0 {
                let d = delta_of(f);
                f.state &= !(ST_DIRTY | ST_NEW);
                f.snap_packets = f.packets;
                f.snap_bytes = f.bytes;
                out.push(d);
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
    }

    /// The table hash of a key: the key packed into three integers, then one seeded foldhash
    /// (about 3x cheaper than the derived `Hash`, which feeds every enum tag and byte); the
    /// index keeps its top 32 bits.
    #[inline]
    fn hash(&self, k: &FlowKey) -> u32 {
        (self.hasher.hash_one(k.packed()) >> 32) as u32
    }

    /// Accounts one decoded packet seen at `ts` with wire length `orig_len`.
    #[inline]
    pub fn update(&mut self, ts: i64, orig_len: u32, v: &PacketView) {
        self.counters.packets += 1;
        if ts > self.now {
            self.now = ts;
            if ts >= self.next_sweep {
                self.sweep(ts);
                self.next_sweep = ts.saturating_add(SEC);
            }
        }
        let Some(mut key) = FlowKey::from_view(v) else {
            self.counters.no_ip += 1;
            return;
        };
        let frag_slot = if v.fragment != Fragment::None {
            Some(self.frag_index(&key, v.frag_id))
        } else {
            None
        };
        if v.fragment == Fragment::Later {
            let slot = frag_slot.unwrap_or(0);
            match self.frags[slot] {
                Some(s)
                    if s.id == v.frag_id
                        && s.proto == key.proto
                        && s.src == key.src
                        && s.dst == key.dst
                        && s.vlan == key.vlan
                        && ts.saturating_sub(s.ts) <= self.cfg.frag_timeout =>
                {
                    key = s.key;
                    let (ck, swapped) = key.canonical();
                    let h = self.hash(&ck);
                    let slab = &self.slab;
                    if let Some(i) = self.index.find(h, |i| slab[i as usize].key == ck) {
                        self.counters.fragments_attributed += 1;
                        self.account(i, swapped as usize, ts, orig_len, v, 0);
                        return;
                    }
                    self.counters.orphan_fragments += 1;
                    return;
                }
                _ => {
                    self.counters.orphan_fragments += 1;
                    return;
                }
            }
        }
        if v.l4_offset == 0 && netspectra_packet::flow_key::has_ports(key.proto) {
            self.counters.l4_missing += 1;
            return;
        }
        if v.status != DecodeStatus::Complete
            && v.l4_offset == 0
            && matches!(key.proto, ip_proto::ICMP | ip_proto::ICMPV6)
        {
            // ICMP without its type/code: the "ports" are unknown.
            self.counters.l4_missing += 1;
            return;
        }
        if let Some(slot) = frag_slot {
            // First fragment: remember its full key for the later ones.
            if let Some(old) = &self.frags[slot] {
                if ts.saturating_sub(old.ts) <= self.cfg.frag_timeout
                    && !(old.id == v.frag_id && old.src == key.src && old.dst == key.dst)
                {
                    self.counters.frag_cache_overwrites += 1;
                }
            }
            self.frags[slot] = Some(FragSlot {
                src: key.src,
                dst: key.dst,
                id: v.frag_id,
                proto: key.proto,
                vlan: key.vlan,
                ts,
                key,
            });
        }
        // TCP is tested first, so that its packets pay nothing for the ICMP case.
        let flags = match key.proto {
            ip_proto::TCP => u16::from(v.tcp_flags.0),
            ip_proto::ICMP | ip_proto::ICMPV6 => ICMP_PACKET,
            _ => 0,
        };
        let (ck, swapped) = key.canonical();
        let dir = swapped as usize;
        let h = self.hash(&ck);
        let slab = &self.slab;
        let found = self.index.find(h, |i| slab[i as usize].key == ck);
        let idx = match found {
            Some(i) => {
                let f = &self.slab[i as usize];
                let pure_syn =
                    flags & u16::from(TcpFlags::SYN | TcpFlags::ACK) == u16::from(TcpFlags::SYN);
                if f.class == CLASS_CLOSED && pure_syn {
                    // A new connection reuses the tuple: the closed one ends now.
                    let reason = if f.state & ST_RST != 0 {
                        EndReason::Rst
                    } else {
                        EndReason::Fin
                    };
                    self.export(i, reason);
                    self.restart(i, ck, ts);
                } else if ts.saturating_sub(f.first) >= self.cfg.timeouts.active {
                    self.export(i, EndReason::Active);
                    self.restart(i, ck, ts);
                }
                i
            }
            None => self.insert(h, ck, ts),
        };
        self.account(idx, dir, ts, orig_len, v, flags);
    }

    /// Adds a packet to flow `i` in direction `dir`. `flags` holds the TCP flags of a TCP
    /// packet, or [`ICMP_PACKET`] for an ICMP packet with its header (so that the common
    /// "no flags" case of UDP and others stays one test).
    #[inline]
    fn account(&mut self, i: u32, dir: usize, ts: i64, orig_len: u32, v: &PacketView, flags: u16) {
        self.counters.flow_packets += 1;
        let f = &mut self.slab[i as usize];
        f.packets[dir] += 1;
        f.bytes[dir] += orig_len as u64;
        if f.packets[0] + f.packets[1] == 1 {
            // The first packet's sender is the initiator until a pure SYN says otherwise.
            if dir == 1 {
                f.state |= ST_INIT1;
            } else {
                f.state &= !ST_INIT1;
            }
        }
        f.ip_bytes[dir] += v.ip_len as u64;
        if ts > f.last {
            f.last = ts;
        }
        let mut reclass = false;
        if flags & ICMP_PACKET != 0 {
            // ICMP: the request's sender is the initiator of a paired flow (echo,
            // solicitation, ...) even when the reply was seen first; until a request is seen
            // the first packet's sender is. All requests of a flow come from one side (a
            // request from the other side has the mirror key). The entry's flag bytes, unused
            // by ICMP, keep the code of each direction's first packet.
            if f.packets[dir] == 1 {
                f.flags[dir] = v.icmp_code;
            }
            if let IcmpRole::Request { .. } = icmp_role(v.proto, v.icmp_type) {
                if dir == 1 {
                    f.state |= ST_INIT1;
                } else {
                    f.state &= !ST_INIT1;
                }
            }
        } else if flags != 0 {
            let flags = flags as u8;
            f.flags[dir] |= flags;
            if flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN && f.state & ST_SYN == 0 {
                f.state |= ST_SYN;
                if dir == 1 {
                    f.state |= ST_INIT1;
                } else {
                    f.state &= !ST_INIT1;
                }
            }
            if flags & TcpFlags::FIN != 0 {
                f.state |= if dir == 0 { ST_FIN0 } else { ST_FIN1 };
            }
            if flags & TcpFlags::RST != 0 {
                f.state |= ST_RST;
            }
            if f.class == CLASS_TCP
                && (f.state & ST_RST != 0 || f.state & (ST_FIN0 | ST_FIN1) == ST_FIN0 | ST_FIN1)
            {
                reclass = true;
            }
        }
        if self.track_deltas && f.state & ST_DIRTY == 0 {
            f.state |= ST_DIRTY;
            self.dirty.push(i);
        }
        if reclass {
            self.unlink(i);
            self.slab[i as usize].class = CLASS_CLOSED;
            self.slab[i as usize].moved = ts;
            self.push_tail(i);
        } else if ts - self.slab[i as usize].moved >= MOVE_GRANULARITY {
            self.unlink(i);
            self.slab[i as usize].moved = ts;
            self.push_tail(i);
        }
    }

    fn frag_index(&self, key: &FlowKey, id: u32) -> usize {
        let h = self.hasher.hash_one((key.src, key.dst, key.proto, id));
        (h as usize) & (self.frags.len() - 1)
    }

    fn insert(&mut self, h: u32, ck: FlowKey, ts: i64) -> u32 {
        if self.live >= self.cfg.max_flows {
            self.evict_oldest();
        }
        let flow = Flow {
            key: ck,
            first: ts,
            last: ts,
            moved: ts,
            packets: [0; 2],
            bytes: [0; 2],
            ip_bytes: [0; 2],
            snap_packets: [0; 2],
            snap_bytes: [0; 2],
            prev: NIL,
            next: NIL,
            flags: [0; 2],
            class: class_of(ck.proto),
            state: ST_NEW,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.slab[i as usize].next;
            self.slab[i as usize] = flow;
            i
        } else {
            self.slab.push(flow);
            (self.slab.len() - 1) as u32
        };
        self.index.insert(h, i);
        self.push_tail(i);
        self.live += 1;
        self.counters.flows_started += 1;
        self.counters.peak_live = self.counters.peak_live.max(self.live as u64);
        i
    }

    /// Resets a flow in place for a new record with the same key.
    fn restart(&mut self, i: u32, ck: FlowKey, ts: i64) {
        self.unlink(i);
        let f = &mut self.slab[i as usize];
        f.key = ck;
        f.first = ts;
        f.last = ts;
        f.moved = ts;
        f.packets = [0; 2];
        f.bytes = [0; 2];
        f.ip_bytes = [0; 2];
        f.snap_packets = [0; 2];
        f.snap_bytes = [0; 2];
        f.flags = [0; 2];
        f.class = class_of(ck.proto);
        // Keep the dirty mark: the index may still sit in the dirty list.
        f.state = (f.state & ST_DIRTY) | ST_NEW;
        self.push_tail(i);
        self.counters.flows_started += 1;
    }

    /// Writes the flow's record and its unreported delta; the slot stays allocated.
    fn export(&mut self, i: u32, reason: EndReason) {
        let f = &mut self.slab[i as usize];
        let init1 = f.state & ST_INIT1 != 0;
        let o = |a: [u64; 2]| if init1 { [a[1], a[0]] } else { a };
        let key = if init1 { f.key.reversed() } else { f.key };
        if self.track_deltas {
            let d = delta_of(f);
            if d.packets != [0, 0] || d.new_flow {
                self.pending.push(d);
            }
            f.state &= !(ST_DIRTY | ST_NEW);
        }
        let flags = if init1 {
            [f.flags[1], f.flags[0]]
        } else {
            f.flags
        };
        let (tcp_flags, icmp_code) = if f.class == CLASS_ICMP {
            ([0; 2], flags)
        } else {
            (flags, [0; 2])
        };
        self.ended.push(EndedFlow {
            key,
            first: f.first,
            last: f.last,
            packets: o(f.packets),
            bytes: o(f.bytes),
            ip_bytes: o(f.ip_bytes),
            tcp_flags,
            icmp_code,
            reason,
        });
        let ri = EndReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.counters.ended[ri] += 1;
    }

    /// Exports and frees a flow.
    fn remove(&mut self, i: u32, reason: EndReason) {
        self.export(i, reason);
        self.unlink(i);
        let h = self.hash(&self.slab[i as usize].key);
        self.index.remove(h, i);
        let f = &mut self.slab[i as usize];
        f.state = 0;
        f.next = self.free;
        self.free = i;
        self.live -= 1;
    }

    fn evict_oldest(&mut self) {
        let mut best: Option<(i64, u32)> = None;
        for l in &self.lists {
            if l.head != NIL {
                let m = self.slab[l.head as usize].moved;
                if best.is_none_or(|(b, _)| m < b) {
                    best = Some((m, l.head));
                }
            }
        }
        if let Some((_, i)) = best {
            self.remove(i, EndReason::TableFull);
        }
    }

    /// Expires idle flows as of `now` (packet time or wall clock).
    pub fn sweep(&mut self, now: i64) {
        for c in 0..CLASSES {
            let idle = self.idle[c];
            loop {
                let h = self.lists[c].head;
                if h == NIL {
                    break;
                }
                let f = &self.slab[h as usize];
                if f.moved.saturating_add(idle) > now {
                    break;
                }
                if f.last.saturating_add(idle) > now {
                    // Seen more recently than its list position says: refresh and go on.
                    let last = f.last;
                    self.unlink(h);
                    self.slab[h as usize].moved = last;
                    self.push_tail(h);
                    continue;
                }
                let reason = if c as u8 == CLASS_CLOSED {
                    if f.state & ST_RST != 0 {
                        EndReason::Rst
                    } else {
                        EndReason::Fin
                    }
                } else {
                    EndReason::Idle
                };
                self.remove(h, reason);
            }
        }
    }

    /// Exports every live flow with `reason` (end of input) and empties the table.
    pub fn flush_all(&mut self, reason: EndReason) {
        while self.flush_some(usize::MAX, reason) {}
    }

    /// Exports up to `n` live flows with `reason` (closed TCP flows keep fin/rst); returns
    /// true while flows remain. Lets callers ship records in bounded batches at the end.
    pub fn flush_some(&mut self, n: usize, reason: EndReason) -> bool {
        let mut done = 0;
        for c in 0..CLASSES {
            while self.lists[c].head != NIL {
                if done >= n {
                    return true;
                }
                let h = self.lists[c].head;
                let r = if c as u8 == CLASS_CLOSED {
                    if self.slab[h as usize].state & ST_RST != 0 {
                        EndReason::Rst
                    } else {
                        EndReason::Fin
                    }
                } else {
                    reason
                };
                self.remove(h, r);
                done += 1;
            }
        }
        false
    }

    fn unlink(&mut self, i: u32) {
        let (p, n, c) = {
            let f = &self.slab[i as usize];
            (f.prev, f.next, f.class as usize)
        };
        if p != NIL {
            self.slab[p as usize].next = n;
        } else {
            self.lists[c].head = n;
        }
        if n != NIL {
            self.slab[n as usize].prev = p;
        } else {
            self.lists[c].tail = p;
        }
        let f = &mut self.slab[i as usize];
        f.prev = NIL;
        f.next = NIL;
    }

    fn push_tail(&mut self, i: u32) {
        let c = self.slab[i as usize].class as usize;
        let t = self.lists[c].tail;
        {
            let f = &mut self.slab[i as usize];
            f.prev = t;
            f.next = NIL;
        }
        if t != NIL {
            self.slab[t as usize].next = i;
        } else {
            self.lists[c].head = i;
        }
        self.lists[c].tail = i;
    }

    /// Bytes of memory held by the table's allocations (slab, index, caches, buffers).
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Flow>()
            + self.index.memory_bytes()
            + self.frags.len() * std::mem::size_of::<Option<FragSlot>>()
            + self.dirty.capacity() * 4
            + self.pending.capacity() * std::mem::size_of::<FlowDelta>()
            + self.ended.capacity() * std::mem::size_of::<EndedFlow>()
    }
}

fn delta_of(f: &Flow) -> FlowDelta {
    let p = [
        f.packets[0] - f.snap_packets[0],
        f.packets[1] - f.snap_packets[1],
    ];
    let b = [f.bytes[0] - f.snap_bytes[0], f.bytes[1] - f.snap_bytes[1]];
    let init1 = f.state & ST_INIT1 != 0;
    FlowDelta {
        key: if init1 { f.key.reversed() } else { f.key },
        packets: if init1 { [p[1], p[0]] } else { p },
        bytes: if init1 { [b[1], b[0]] } else { b },
        new_flow: f.state & ST_NEW != 0,
        first: f.first,
    }
}

/// Size of one live flow's slab entry, for the memory budget.
pub const FLOW_ENTRY_BYTES: usize = std::mem::size_of::<Flow>();

/// Size of one slot of the first-fragment cache (allocated whole, `frag_slots` rounded up to a
/// power of two, per worker).
pub const FRAG_SLOT_BYTES: usize = std::mem::size_of::<Option<FragSlot>>();

#[cfg(test)]
mod tests;
