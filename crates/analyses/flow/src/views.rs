//! The merger: collects worker deltas per interval, rolls them into every view on its own
//! cadence, and emits snapshots plus the run summary.
//!
//! Workers tag deltas with the number of ticks they have seen (the interval number). Ticks are
//! in-band and reach every worker at the same cut, so interval `e` is complete once every worker
//! sent `Tick(e)`; only then are its deltas applied, in interval order. Each view closes its
//! window at multiples of its own interval, so views with different cadences see every delta
//! exactly once: nothing is counted twice or lost.

mod exact;

use crate::config::{Field, Metric, ViewMode, ViewSpec};
use crate::hll::Distinct;
use crate::table::{EndedFlow, FlowDelta, TableCounters};
use crate::topk::TopK;
use crate::worker::{DecodeCounters, WorkerMsg};
use exact::ExactAggs;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use xxhash_rust::xxh3::xxh3_64;

/// A view key: the projected fields of one flow direction (unused fields are zero). Addresses
/// are kept as integers (IPv4 in the low 32 bits, family in `fam`) so that projecting, hashing
/// and comparing a key touches 40 plain bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VKey {
    src: [u64; 2],
    dst: [u64; 2],
    /// Source port << 16 | destination port.
    ports: u32,
    /// VLAN id, or `NO_VLAN`.
    vlan: u16,
    proto: u8,
    /// Bit 0: source is IPv6; bit 1: destination is IPv6.
    fam: u8,
}

const NO_VLAN: u16 = u16::MAX;

/// An address as two words plus its family (true for IPv6).
#[inline]
fn ip_words(a: IpAddr) -> ([u64; 2], bool) {
    match a {
        IpAddr::V4(x) => ([u32::from(x) as u64, 0], false),
        IpAddr::V6(x) => {
            let v = u128::from(x);
            ([v as u64, (v >> 64) as u64], true)
        }
    }
}

#[inline]
fn words_ip(w: [u64; 2], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6((u128::from(w[0]) | u128::from(w[1]) << 64).into())
    } else {
        IpAddr::V4(Ipv4Addr::from(w[0] as u32))
    }
}

/// Keeps the first `v4` (IPv4) or `v6` (IPv6) bits of an address in word form.
#[inline]
fn mask_words(w: [u64; 2], v6: bool, v4_bits: u8, v6_bits: u8) -> [u64; 2] {
    if v6 {
        if v6_bits >= 128 {
            return w;
        }
        let v = u128::from(w[0]) | u128::from(w[1]) << 64;
        let m = if v6_bits == 0 {
            0
        } else {
            u128::MAX << (128 - v6_bits)
        };
        let v = v & m;
        [v as u64, (v >> 64) as u64]
    } else {
        if v4_bits >= 32 {
            return w;
        }
        let m = if v4_bits == 0 {
            0
        } else {
            u32::MAX << (32 - v4_bits)
        };
        [(w[0] as u32 & m) as u64, 0]
    }
}

impl VKey {
    /// Source address (unspecified IPv4 when not a key field).
    pub fn src(&self) -> IpAddr {
        words_ip(self.src, self.fam & 1 != 0)
    }
    /// Destination address (unspecified IPv4 when not a key field).
    pub fn dst(&self) -> IpAddr {
        words_ip(self.dst, self.fam & 2 != 0)
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        (self.ports >> 16) as u16
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.ports as u16
    }
    /// IP protocol.
    pub fn proto(&self) -> u8 {
        self.proto
    }
    /// VLAN id.
    pub fn vlan(&self) -> Option<u16> {
        (self.vlan != NO_VLAN).then_some(self.vlan)
    }
}

/// One direction of a delta, as views see it.
#[derive(Clone, Copy, Default)]
struct Dir {
    src: [u64; 2],
    dst: [u64; 2],
    src_v6: bool,
    dst_v6: bool,
    sp: u16,
    dp: u16,
    proto: u8,
    vlan: u16,
}

impl Dir {
    fn new(src: IpAddr, dst: IpAddr, sp: u16, dp: u16, proto: u8, vlan: Option<u16>) -> Dir {
        let (src, src_v6) = ip_words(src);
        let (dst, dst_v6) = ip_words(dst);
        Dir {
            src,
            dst,
            src_v6,
            dst_v6,
            sp,
            dp,
            proto,
            vlan: vlan.unwrap_or(NO_VLAN),
        }
    }

    #[inline]
    fn project(&self, keys: &[Field]) -> VKey {
        let mut k = VKey {
            src: [0; 2],
            dst: [0; 2],
            ports: 0,
            vlan: NO_VLAN,
            proto: 0,
            fam: 0,
        };
        for f in keys {
            match *f {
                Field::SrcIp(a, b) => {
                    k.src = mask_words(self.src, self.src_v6, a, b);
                    k.fam |= u8::from(self.src_v6);
                }
                Field::DstIp(a, b) => {
                    k.dst = mask_words(self.dst, self.dst_v6, a, b);
                    k.fam |= u8::from(self.dst_v6) << 1;
                }
                Field::SrcPort => k.ports |= u32::from(self.sp) << 16,
                Field::DstPort => k.ports |= u32::from(self.dp),
                Field::Proto => k.proto = self.proto,
                Field::Vlan => k.vlan = self.vlan,
            }
        }
        k
    }

    fn field_hash(&self, f: Field) -> u64 {
        let ip = |w: [u64; 2], v6: bool| {
            if v6 {
                let v = u128::from(w[0]) | u128::from(w[1]) << 64;
                xxh3_64(&v.to_be_bytes())
            } else {
                xxh3_64(&(w[0] as u32).to_be_bytes())
            }
        };
        match f {
            Field::SrcIp(a, b) => ip(mask_words(self.src, self.src_v6, a, b), self.src_v6),
            Field::DstIp(a, b) => ip(mask_words(self.dst, self.dst_v6, a, b), self.dst_v6),
            Field::SrcPort => xxh3_64(&self.sp.to_le_bytes()),
            Field::DstPort => xxh3_64(&self.dp.to_le_bytes()),
            Field::Proto => xxh3_64(&[self.proto]),
            Field::Vlan => xxh3_64(
                &(if self.vlan == NO_VLAN {
                    u32::MAX
                } else {
                    self.vlan as u32
                })
                .to_le_bytes(),
            ),
        }
    }
}

/// The Count-Min hash of a key: xxh3 over its 40 bytes.
fn vkey_hash(k: &VKey) -> u64 {
    let mut b = [0u8; 40];
    b[0..8].copy_from_slice(&k.src[0].to_le_bytes());
    b[8..16].copy_from_slice(&k.src[1].to_le_bytes());
    b[16..24].copy_from_slice(&k.dst[0].to_le_bytes());
    b[24..32].copy_from_slice(&k.dst[1].to_le_bytes());
    b[32..36].copy_from_slice(&k.ports.to_le_bytes());
    b[36..38].copy_from_slice(&k.vlan.to_le_bytes());
    b[38] = k.proto;
    b[39] = k.fam;
    xxh3_64(&b)
}

/// Counters of one key of an exact view.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    packets: u64,
    bytes: u64,
    flows: u64,
}

/// The overflow row of an exact view: its counters and distinct-count sketches.
#[derive(Clone, Debug, Default)]
struct Agg {
    counts: Counts,
    distinct: Vec<Distinct>,
}

struct ViewState {
    spec: ViewSpec,
    distinct_fields: Vec<Field>,
    exact: ExactAggs,
    overflow: Option<Agg>,
    overflow_keys: u64,
    topk: Option<TopK<VKey>>,
    last_end: Option<i64>,
    any: bool,
}

impl ViewState {
    fn new(spec: ViewSpec) -> Self {
        let distinct_fields = spec
            .metrics
            .iter()
            .filter_map(|m| match m {
                Metric::Distinct(f) => Some(*f),
                _ => None,
            })
            .collect();
        let mut v = ViewState {
            spec,
            distinct_fields,
            exact: ExactAggs::with_capacity(0, 0, foldhash::fast::RandomState::default()),
            overflow: None,
            overflow_keys: 0,
            topk: None,
            last_end: None,
            any: false,
        };
        v.reset();
        v
    }

    fn reset(&mut self) {
        // Start the next window at the size of the last one to avoid rehashing while it fills.
        let nd = self.distinct_fields.len();
        self.exact = ExactAggs::with_capacity(self.exact.len(), nd, self.exact.hasher());
        self.overflow = None;
        self.overflow_keys = 0;
        self.any = false;
        if let ViewMode::TopK { k, eps, delta, .. } = self.spec.mode {
            self.topk = Some(TopK::new(k, eps, delta));
        }
    }

    /// Adds one direction's weight to a top-K view's sketch and candidates.
    fn add_topk(&mut self, d: &Dir, rank: Metric, packets: u64, bytes: u64, flows: u64) {
        self.any = true;
        let w = match rank {
            Metric::Packets => packets,
            Metric::Flows => flows,
            _ => bytes,
        };
        if w > 0 {
            if let Some(t) = &mut self.topk {
                let key = d.project(&self.spec.keys);
                t.add(&key, vkey_hash(&key), w);
            }
        }
    }

    /// Adds one direction's counts to its key of an exact view.
    #[inline]
    fn add_exact(&mut self, p: &Pending, max_keys: usize) {
        self.any = true;
        // Below the bound one probe finds or inserts the key (most keys of a per-flow view are
        // new); at the bound only known keys count.
        let insert = self.exact.len() < max_keys;
        let (counts, distinct) = match self.exact.get_or_insert(p.key, p.h32, insert) {
            Some(a) => a,
            None => {
                self.overflow_keys += 1;
                let nd = self.distinct_fields.len();
                let a = self.overflow.get_or_insert_with(|| Agg {
                    counts: Counts::default(),
                    distinct: vec![Distinct::default(); nd],
                });
                (&mut a.counts, &mut a.distinct[..])
            }
        };
        counts.packets += p.packets;
        counts.bytes += p.bytes;
        counts.flows += p.flows;
        for (sketch, f) in distinct.iter_mut().zip(&self.distinct_fields) {
            sketch.add_hash(p.dir.field_hash(*f), self.spec.hll_precision);
        }
    }

    /// Adds a batch of deltas in order, each direction that carries something. An exact view
    /// looks `AHEAD` directions ahead: it projects and hashes each key early and prefetches its
    /// index slot, then, halfway, the entry that slot points to, so that by the time a key is
    /// added both are usually in cache (a large flush otherwise waits on two misses per key).
    fn add_deltas(&mut self, ds: &[FlowDelta]) {
        const AHEAD: usize = 16;
        let max_keys = match self.spec.mode {
            ViewMode::Exact { max_keys } => max_keys,
            ViewMode::TopK { rank, .. } => {
                for d in ds {
                    for (dir, packets, bytes, flows) in directions(d).into_iter().flatten() {
                        self.add_topk(&dir, rank, packets, bytes, flows);
                    }
                }
                return;
            }
        };
        let mut ring = [Pending::default(); AHEAD];
        let mut queued = 0usize;
        for d in ds {
            for (dir, packets, bytes, flows) in directions(d).into_iter().flatten() {
                let key = dir.project(&self.spec.keys);
                let h32 = self.exact.hash32(&key);
                self.exact.prefetch_slot(h32);
                let slot = queued % AHEAD;
                if queued >= AHEAD {
                    let due = ring[slot];
                    self.add_exact(&due, max_keys);
                }
                ring[slot] = Pending {
                    dir,
                    key,
                    h32,
                    packets,
                    bytes,
                    flows,
                };
                queued += 1;
                if queued > AHEAD / 2 {
                    self.exact
                        .prefetch_entry(ring[(queued - 1 - AHEAD / 2) % AHEAD].h32);
                }
            }
        }
        for i in queued.saturating_sub(AHEAD)..queued {
            let due = ring[i % AHEAD];
            self.add_exact(&due, max_keys);
        }
    }

    fn columns(&self) -> Vec<String> {
        let mut c = vec!["interval_start".to_string(), "interval_end".to_string()];
        c.extend(self.spec.keys.iter().map(|k| k.column()));
        match self.spec.mode {
            ViewMode::Exact { .. } => c.extend(self.spec.metrics.iter().map(|m| m.column())),
            ViewMode::TopK { rank, .. } => {
                c.push(rank.column());
                c.push("max_overestimate".into());
            }
        }
        c
    }

    /// Appends one row's metric values, in column order.
    fn push_values(&self, c: &Counts, distinct: &[Distinct], out: &mut Vec<u64>) {
        let mut di = 0;
        out.extend(self.spec.metrics.iter().map(|metric| match metric {
            Metric::Packets => c.packets,
            Metric::Bytes => c.bytes,
            Metric::Flows => c.flows,
            Metric::Distinct(_) => {
                di += 1;
                distinct.get(di - 1).map_or(0, Distinct::count)
            }
        }));
    }

    /// Emits the window `[start, end)` and resets.
    fn take(&mut self, start: i64, end: i64) -> Option<Snapshot> {
        if !self.any {
            self.reset();
            return None;
        }
        let (mut rows, mut values) = (Vec::new(), Vec::new());
        match self.spec.mode {
            ViewMode::Exact { .. } => {
                // Rows in first-seen order (the same on every run): sorting cost more than
                // deriving the view.
                rows.reserve(self.exact.len() + 1);
                values.reserve((self.exact.len() + 1) * self.spec.metrics.len());
                for (k, c, distinct) in self.exact.iter() {
                    rows.push(Some(*k));
                    self.push_values(c, distinct, &mut values);
                }
                if let Some(a) = &self.overflow {
                    rows.push(None);
                    self.push_values(&a.counts, &a.distinct, &mut values);
                }
            }
            ViewMode::TopK { .. } => {
                if let Some(t) = &self.topk {
                    let bound = t.error_bound();
                    for (k, est) in t.top() {
                        rows.push(Some(k));
                        values.extend([est, bound]);
                    }
                }
            }
        }
        let snap = Snapshot {
            view: self.spec.name.clone(),
            start,
            end,
            keys: self.spec.keys.clone(),
            columns: self.columns(),
            rows,
            values,
            overflow_keys: self.overflow_keys,
            start_text: crate::record::rfc3339(start),
            end_text: crate::record::rfc3339(end),
        };
        self.reset();
        Some(snap)
    }
}

/// One view's window, ready to write.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// View name.
    pub view: String,
    /// Window start (ns).
    pub start: i64,
    /// Window end (ns, exclusive).
    pub end: i64,
    /// Key fields of the view.
    pub keys: Vec<Field>,
    /// Column names in order: interval_start, interval_end, key columns, metric columns.
    pub columns: Vec<String>,
    /// The key of each row (`None` for the overflow row of an exact view whose key bound was
    /// hit).
    pub rows: Vec<Option<VKey>>,
    /// The metric values of every row, row after row, each in column order (one flat vector
    /// rather than a vector per row: views have about one row per key).
    pub values: Vec<u64>,
    /// Deltas that went to the overflow row because the key bound was reached.
    pub overflow_keys: u64,
    /// `start` as RFC 3339.
    pub start_text: String,
    /// `end` as RFC 3339.
    pub end_text: String,
}

impl Snapshot {
    /// Number of metric columns, i.e. values per row.
    pub fn width(&self) -> usize {
        self.columns.len() - 2 - self.keys.len()
    }

    /// The metric values of row `i`, in column order.
    pub fn row_values(&self, i: usize) -> &[u64] {
        let w = self.width();
        &self.values[i * w..i * w + w]
    }

    /// Row `i` as a JSON object with every column (for record writers).
    pub fn row_map(&self, i: usize) -> Map<String, Value> {
        let (key, vals) = (&self.rows[i], self.row_values(i));
        let mut m = Map::new();
        m.insert(
            "interval_start".into(),
            crate::record::rfc3339(self.start).into(),
        );
        m.insert(
            "interval_end".into(),
            crate::record::rfc3339(self.end).into(),
        );
        for f in &self.keys {
            let v = match key_value(key.as_ref(), *f) {
                KeyValue::Ip(a) => Value::String(a.to_string()),
                KeyValue::Num(n) => n.into(),
                KeyValue::Null => Value::Null,
            };
            m.insert(f.column(), v);
        }
        let first_metric = 2 + self.keys.len();
        for (c, v) in self.columns[first_metric..].iter().zip(vals) {
            m.insert(c.clone(), (*v).into());
        }
        m
    }

    /// Row `i` as a serializable record (streams straight into the writer, no intermediate map).
    pub fn row(&self, i: usize) -> SnapRow<'_> {
        SnapRow { snap: self, i }
    }

    /// Writes every row as JSON lines, byte for byte what a JSON serializer makes of
    /// [`Snapshot::row`] (tested against `serde_json`), but without going through serde per
    /// row: the constant part of each line (window bounds and column names) is rendered once,
    /// and addresses skip `Display`. View files hold about one row per key, and those per-row
    /// serde calls were most of the user-space time of writing them.
    pub fn write_jsonl(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let quoted = |s: &str| serde_json::to_string(s).expect("a string always serializes");
        let head = format!(
            "{{{}:{},{}:{}",
            quoted(&self.columns[0]),
            quoted(&self.start_text),
            quoted(&self.columns[1]),
            quoted(&self.end_text)
        );
        let names: Vec<String> = self.columns[2..]
            .iter()
            .map(|c| format!(",{}:", quoted(c)))
            .collect();
        let (key_names, metric_names) = names.split_at(self.keys.len());
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut num = itoa::Buffer::new();
        for (i, key) in self.rows.iter().enumerate() {
            let vals = self.row_values(i);
            buf.extend_from_slice(head.as_bytes());
            for (f, name) in self.keys.iter().zip(key_names) {
                buf.extend_from_slice(name.as_bytes());
                match key_value(key.as_ref(), *f) {
                    KeyValue::Ip(a) => {
                        buf.push(b'"');
                        netspectra_packet::text::push_ip(&mut buf, a);
                        buf.push(b'"');
                    }
                    KeyValue::Num(n) => buf.extend_from_slice(num.format(n).as_bytes()),
                    KeyValue::Null => buf.extend_from_slice(b"null"),
                }
            }
            for (name, v) in metric_names.iter().zip(vals) {
                buf.extend_from_slice(name.as_bytes());
                buf.extend_from_slice(num.format(*v).as_bytes());
            }
            buf.extend_from_slice(b"}\n");
            if buf.len() >= 1 << 16 {
                w.write_all(&buf)?;
                buf.clear();
            }
        }
        w.write_all(&buf)
    }

    /// The value of metric column `col` in row `i`, if the view has that column.
    pub fn value(&self, i: usize, col: &str) -> Option<u64> {
        let first_metric = 2 + self.keys.len();
        let j = self.columns[first_metric..].iter().position(|c| c == col)?;
        self.row_values(i).get(j).copied()
    }
}

/// The value of one key column of a row: an address, a number, or null (the overflow row, or
/// an untagged flow in a `vlan` column).
enum KeyValue {
    Ip(IpAddr),
    Num(u64),
    Null,
}

/// Key column `f` of a row whose key is `key` (`None`: the overflow row), for every writer.
fn key_value(key: Option<&VKey>, f: Field) -> KeyValue {
    let Some(k) = key else {
        return KeyValue::Null;
    };
    match f {
        Field::SrcIp(..) => KeyValue::Ip(k.src()),
        Field::DstIp(..) => KeyValue::Ip(k.dst()),
        Field::SrcPort => KeyValue::Num(k.src_port().into()),
        Field::DstPort => KeyValue::Num(k.dst_port().into()),
        Field::Proto => KeyValue::Num(k.proto().into()),
        Field::Vlan => k.vlan().map_or(KeyValue::Null, |v| KeyValue::Num(v.into())),
    }
}

/// One row of a [`Snapshot`], serialized as a map in column order.
pub struct SnapRow<'a> {
    snap: &'a Snapshot,
    i: usize,
}

impl serde::Serialize for SnapRow<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let s = self.snap;
        let (key, vals) = (&s.rows[self.i], s.row_values(self.i));
        let mut m = ser.serialize_map(Some(s.columns.len()))?;
        m.serialize_entry(&s.columns[0], &s.start_text)?;
        m.serialize_entry(&s.columns[1], &s.end_text)?;
        for (f, col) in s.keys.iter().zip(&s.columns[2..]) {
            match key_value(key.as_ref(), *f) {
                KeyValue::Ip(a) => m.serialize_entry(col, &a)?,
                KeyValue::Num(n) => m.serialize_entry(col, &n)?,
                KeyValue::Null => m.serialize_entry(col, &Option::<u8>::None)?,
            }
        }
        for (col, v) in s.columns[2 + s.keys.len()..].iter().zip(vals) {
            m.serialize_entry(col, v)?;
        }
        m.end()
    }
}

/// What the merger produces.
#[derive(Debug)]
pub enum Output {
    /// A view window.
    Snapshot(Snapshot),
    /// Finished flow records.
    Ended(Vec<EndedFlow>),
}

/// Totals of a whole run, for the terminal and `--json` summaries.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    /// Packets in flows.
    pub packets: u64,
    /// Frame bytes in flows.
    pub bytes: u64,
    /// Flow records.
    pub flows: u64,
    /// Per IP protocol: (flows, packets, bytes).
    pub by_proto: BTreeMap<u8, [u64; 3]>,
    /// Table counters summed over workers.
    pub table: TableCounters,
    /// Decode counters summed over workers.
    pub decode: DecodeCounters,
    /// Top talkers by bytes sent + received: (address, estimated bytes).
    pub top_talkers: Vec<(IpAddr, u64)>,
    /// Top conversations (address pairs, lower first) by bytes: (a, b, estimated bytes).
    pub top_conversations: Vec<(IpAddr, IpAddr, u64)>,
    /// Over-estimate bound of the top lists (bytes; with probability 99 %).
    pub top_max_overestimate: u64,
    /// Bytes held by the workers' tables at the end.
    pub table_bytes: usize,
    /// Snapshots emitted.
    pub snapshots: u64,
}

struct Epoch {
    deltas: Vec<Vec<FlowDelta>>,
    ticks: usize,
    at: i64,
}

/// Collects worker messages and turns them into snapshots and a summary.
pub struct Merger {
    workers: usize,
    views: Vec<ViewState>,
    pending: BTreeMap<u64, Epoch>,
    /// Deltas of the open interval not yet applied, in arrival order (fewer than
    /// `STAGE_DELTAS` plus one worker message): applied together so that a large flush is
    /// shared out between two threads in a few long runs rather than one short run per worker
    /// message.
    stage: Vec<Vec<FlowDelta>>,
    /// Staged deltas that trigger applying them: `STAGE_DELTAS`, or 0 (every message applied
    /// on arrival) with fewer than two views and in tests that want that.
    stage_limit: usize,
    next_epoch: u64,
    done: usize,
    min_ts: Option<i64>,
    talkers: TopK<IpAddr>,
    convs: TopK<(IpAddr, IpAddr)>,
    summary: Summary,
    /// Views to switch to at the next interval boundary (a configuration reload).
    pending_views: Option<Vec<ViewSpec>>,
}

impl Merger {
    /// A merger for `workers` workers and these views.
    pub fn new(workers: usize, views: Vec<ViewSpec>) -> Self {
        // Staging only pays where a batch can be shared out, over two views or more.
        let stage_limit = if views.len() >= 2 { STAGE_DELTAS } else { 0 };
        Merger {
            workers: workers.max(1),
            views: views.into_iter().map(ViewState::new).collect(),
            pending: BTreeMap::new(),
            stage: Vec::new(),
            stage_limit,
            next_epoch: 0,
            done: 0,
            min_ts: None,
            talkers: TopK::new(SUMMARY_TOP, 0.0005, 0.01),
            convs: TopK::new(SUMMARY_TOP, 0.0005, 0.01),
            summary: Summary::default(),
            pending_views: None,
        }
    }

    /// Switches to `views` at the next interval boundary (a configuration reload): a view whose
    /// spec is unchanged keeps counting, a removed one emits what it holds since its last
    /// window, a new one starts at the boundary. Every delta before the boundary is folded
    /// into the old set and every one after into the new, so nothing is lost or counted twice.
    pub fn reconfigure(&mut self, views: Vec<ViewSpec>) {
        self.pending_views = Some(views);
    }

    /// True while a reconfiguration waits for its boundary.
    pub fn reconfiguring(&self) -> bool {
        self.pending_views.is_some()
    }

    /// The base tick for the engine: the greatest common divisor of the view cadences.
    pub fn base_tick(views: &[ViewSpec]) -> Option<i64> {
        fn gcd(a: i64, b: i64) -> i64 {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        views
            .iter()
            .map(|v| v.interval)
            .filter(|&i| i > 0)
            .reduce(gcd)
    }

    /// True when every worker has said `Done`.
    pub fn finished(&self) -> bool {
        self.done >= self.workers
    }

    /// Handles one worker message; outputs go to `out`.
    pub fn handle(&mut self, msg: WorkerMsg, out: &mut dyn FnMut(Output)) {
        match msg {
            WorkerMsg::Deltas { epoch, deltas, .. } => {
                if epoch == self.next_epoch {
                    // Every earlier interval is closed: stage them to apply soon, rather than
                    // hold them until the interval closes.
                    self.stage.push(deltas);
                    if self.stage.iter().map(Vec::len).sum::<usize>() >= self.stage_limit {
                        self.apply_stage();
                    }
                } else if !deltas.is_empty() {
                    self.epoch(epoch).deltas.push(deltas);
                }
            }
            WorkerMsg::Tick { epoch, at, .. } => {
                // Staged deltas belong to the open interval: in before it can close.
                self.apply_stage();
                let e = self.epoch(epoch);
                e.ticks += 1;
                e.at = at;
                self.drain(false, out);
            }
            WorkerMsg::Ended(v) => out(Output::Ended(v)),
            WorkerMsg::Done {
                counters,
                decode,
                table_bytes,
                ..
            } => {
                self.summary.table.merge(&counters);
                self.summary.decode.merge(&decode);
                self.summary.table_bytes += table_bytes;
                self.done += 1;
                self.apply_stage();
                if self.finished() {
                    self.drain(true, out);
                    self.final_snapshots(out);
                }
            }
        }
    }

    fn epoch(&mut self, e: u64) -> &mut Epoch {
        self.pending.entry(e).or_insert_with(|| Epoch {
            deltas: Vec::new(),
            ticks: 0,
            at: i64::MIN,
        })
    }

    fn drain(&mut self, all: bool, out: &mut dyn FnMut(Output)) {
        while let Some(mut entry) = self.pending.first_entry() {
            let complete = entry.get().ticks >= self.workers;
            if !complete && !all {
                break;
            }
            if *entry.key() != self.next_epoch && !all {
                break;
            }
            let ep = std::mem::replace(
                entry.get_mut(),
                Epoch {
                    deltas: Vec::new(),
                    ticks: 0,
                    at: 0,
                },
            );
            entry.remove();
            self.next_epoch += 1;
            self.apply_all(&ep.deltas);
            if complete {
                self.tick(ep.at, out);
            }
        }
    }

    /// Applies the staged deltas of the open interval.
    fn apply_stage(&mut self) {
        if self.stage.is_empty() {
            return;
        }
        let stage = std::mem::take(&mut self.stage);
        self.apply_all(&stage);
    }

    /// Applies runs of deltas, in order. Views are independent, so a large amount (the final
    /// flush of every live flow, or a busy interval) is shared out: this thread and one helper
    /// each take the next unclaimed task (the summary, or one view over all the runs) until
    /// none is left, so a thread that drew a cheap view takes more of them and neither waits
    /// long for the other; a small amount, this thread alone. Each view still sees the deltas
    /// in order.
    fn apply_all(&mut self, runs: &[Vec<FlowDelta>]) {
        let total: usize = runs.iter().map(Vec::len).sum();
        let share = total >= PARALLEL_BATCH && self.views.len() >= 2;
        // The summary (three Count-Min updates per delta) is the largest task: first, so that
        // the views balance around it.
        let mut tasks: Vec<Mutex<Task<'_>>> = Vec::with_capacity(self.views.len() + 1);
        tasks.push(Mutex::new(Task::Summary(Summarizer {
            min_ts: &mut self.min_ts,
            summary: &mut self.summary,
            talkers: &mut self.talkers,
            convs: &mut self.convs,
        })));
        tasks.extend(self.views.iter_mut().map(|v| Mutex::new(Task::View(v))));
        let next = AtomicUsize::new(0);
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(task) = tasks.get(i) else { break };
            // Each task is claimed by exactly one thread: the lock is never contended.
            let mut task = task.lock().unwrap_or_else(|e| e.into_inner());
            match &mut *task {
                Task::Summary(s) => runs.iter().flatten().for_each(|d| s.add(d)),
                Task::View(v) => runs.iter().for_each(|ds| v.add_deltas(ds)),
            }
        };
        if !share {
            work();
            return;
        }
        std::thread::scope(|s| {
            s.spawn(work);
            work();
        });
    }

    fn tick(&mut self, at: i64, out: &mut dyn FnMut(Output)) {
        for v in &mut self.views {
            let iv = v.spec.interval;
            if at.rem_euclid(iv) == 0 {
                // A view that started inside this window (a reload) reports from its start.
                let start = v.last_end.map_or(at - iv, |l| l.max(at - iv));
                if let Some(s) = v.take(start, at) {
                    self.summary.snapshots += 1;
                    out(Output::Snapshot(s));
                }
                v.last_end = Some(at);
            }
        }
        if let Some(specs) = self.pending_views.take() {
            self.switch_views(specs, at, out);
        }
    }

    fn switch_views(&mut self, specs: Vec<ViewSpec>, at: i64, out: &mut dyn FnMut(Output)) {
        let mut old = std::mem::take(&mut self.views);
        for spec in specs {
            match old.iter().position(|v| v.spec == spec) {
                Some(i) => self.views.push(old.remove(i)),
                None => {
                    let mut v = ViewState::new(spec);
                    v.last_end = Some(at);
                    self.views.push(v);
                }
            }
        }
        for mut v in old {
            let iv = v.spec.interval;
            let start = v.last_end.unwrap_or_else(|| at.div_euclid(iv) * iv);
            if start < at {
                if let Some(s) = v.take(start, at) {
                    self.summary.snapshots += 1;
                    out(Output::Snapshot(s));
                }
            }
        }
        self.stage_limit = if self.views.len() >= 2 {
            STAGE_DELTAS
        } else {
            0
        };
    }

    fn final_snapshots(&mut self, out: &mut dyn FnMut(Output)) {
        for v in &mut self.views {
            let iv = v.spec.interval;
            let start = v
                .last_end
                .or_else(|| self.min_ts.map(|m| m.div_euclid(iv) * iv))
                .unwrap_or(0);
            if let Some(s) = v.take(start, start.saturating_add(iv)) {
                self.summary.snapshots += 1;
                out(Output::Snapshot(s));
            }
        }
    }

    /// The run summary (complete once [`Merger::finished`]).
    pub fn summary(&self, top: usize) -> Summary {
        let mut s = self.summary.clone();
        s.top_talkers = self.talkers.top().into_iter().take(top).collect();
        s.top_conversations = self
            .convs
            .top()
            .into_iter()
            .take(top)
            .map(|((a, b), n)| (a, b, n))
            .collect();
        s.top_max_overestimate = self.talkers.error_bound().max(self.convs.error_bound());
        s
    }
}

/// Rows the summary's top talkers and top conversations can list (`--top` up to this; the
/// sketches keep this many candidates).
pub const SUMMARY_TOP: usize = 64;

/// Deltas in a batch from which the merger splits the views over two threads.
const PARALLEL_BATCH: usize = 8192;

/// Staged deltas of the open interval that trigger applying them (about 3 MB of deltas; the
/// final flush of g1's 142k flows is applied in five runs instead of nine, which is most of
/// the gain of applying it in one).
const STAGE_DELTAS: usize = 32_768;

/// One share of a large batch: the summary, or one view.
enum Task<'a> {
    Summary(Summarizer<'a>),
    View(&'a mut ViewState),
}

/// The directions of a delta that carry something, with their packets, bytes and new flows:
/// packets sent by A count under `src = A`, so forward when it has packets or starts the flow
/// (a record counts once, in its initiator orientation) and reverse when it has packets.
#[inline]
fn directions(d: &FlowDelta) -> [Option<(Dir, u64, u64, u64)>; 2] {
    let k = &d.key;
    let fwd = Dir::new(k.src, k.dst, k.src_port, k.dst_port, k.proto, k.vlan);
    let nf = u64::from(d.new_flow);
    let rev = Dir {
        src: fwd.dst,
        dst: fwd.src,
        src_v6: fwd.dst_v6,
        dst_v6: fwd.src_v6,
        sp: fwd.dp,
        dp: fwd.sp,
        ..fwd
    };
    [
        (d.packets[0] > 0 || nf > 0).then_some((fwd, d.packets[0], d.bytes[0], nf)),
        (d.packets[1] > 0).then_some((rev, d.packets[1], d.bytes[1], 0)),
    ]
}

/// One direction waiting in an exact view's look-ahead: its key, the key's hash, what it adds.
#[derive(Clone, Copy, Default)]
struct Pending {
    dir: Dir,
    key: VKey,
    h32: u32,
    packets: u64,
    bytes: u64,
    flows: u64,
}

/// The merger's run totals and top lists, borrowed so that they can be updated beside the views.
struct Summarizer<'a> {
    min_ts: &'a mut Option<i64>,
    summary: &'a mut Summary,
    talkers: &'a mut TopK<IpAddr>,
    convs: &'a mut TopK<(IpAddr, IpAddr)>,
}

impl Summarizer<'_> {
    fn add(&mut self, d: &FlowDelta) {
        *self.min_ts = Some(self.min_ts.map_or(d.first, |m| m.min(d.first)));
        let k = &d.key;
        let nf = u64::from(d.new_flow);
        let s = &mut *self.summary;
        let pk = d.packets[0] + d.packets[1];
        let by = d.bytes[0] + d.bytes[1];
        s.packets += pk;
        s.bytes += by;
        s.flows += nf;
        let p = s.by_proto.entry(k.proto).or_default();
        p[0] += nf;
        p[1] += pk;
        p[2] += by;
        if by > 0 {
            let (hs, hd) = (ip_hash(k.src), ip_hash(k.dst));
            self.talkers.add(&k.src, hs, by);
            self.talkers.add(&k.dst, hd, by);
            let (pair, h) = if k.src <= k.dst {
                ((k.src, k.dst), hs ^ hd.rotate_left(17))
            } else {
                ((k.dst, k.src), hd ^ hs.rotate_left(17))
            };
            self.convs.add(&pair, h, by);
        }
    }
}

fn ip_hash(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(x) => xxh3_64(&x.octets()),
        IpAddr::V6(x) => xxh3_64(&x.octets()),
    }
}

#[cfg(test)]
mod tests;
