//! Flow engine configuration: table bounds, timeouts per protocol, and the views to derive.
//!
//! The YAML form (see `examples/flows.yaml`) maps onto [`FileConfig`]; durations are seconds as
//! numbers or strings with a unit (`90`, `"90s"`, `"5m"`, `"1h"`, `"500ms"`).

use crate::FlowError;
use serde::{Deserialize, Deserializer};
use std::net::IpAddr;

const SEC: i64 = 1_000_000_000;

/// Idle timeouts per protocol class and the active timeout, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP flows that have not closed.
    pub tcp: i64,
    /// TCP flows after a FIN from both sides or a RST (late ACKs and retransmissions still count).
    pub tcp_closed: i64,
    /// UDP flows.
    pub udp: i64,
    /// ICMP and ICMPv6 flows.
    pub icmp: i64,
    /// Any other IP protocol.
    pub other: i64,
    /// Flows older than this are exported and restarted (NetFlow's active timeout).
    pub active: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 300 * SEC,
            tcp_closed: 15 * SEC,
            udp: 60 * SEC,
            icmp: 30 * SEC,
            other: 60 * SEC,
            active: 1800 * SEC,
        }
    }
}

/// Settings of one worker's flow table.
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// Maximum live flows per worker; when full, the least recently seen flow is exported with
    /// end reason `table_full` to make room.
    pub max_flows: usize,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Slots of the direct-mapped first-fragment cache used to attribute later fragments.
    pub frag_slots: usize,
    /// How long a first fragment can attribute later fragments, in nanoseconds.
    pub frag_timeout: i64,
    /// Decode inside tunnels (GRE, VXLAN, GENEVE, IP-in-IP) and key flows on the inner packet.
    pub inner: bool,
    /// Between snapshot intervals, idle flows are expired and their records shipped every
    /// this much packet time (ns), so a record leaves within this of its flow's timeout.
    pub expire_every: i64,
    /// Seed of the table's hash function. Keys are attacker-controlled, so the default is drawn
    /// per process: with a known seed a crafted capture could pile its flows onto one run of
    /// index slots. Output does not depend on it.
    pub seed: u64,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            max_flows: 1 << 20,
            timeouts: Timeouts::default(),
            frag_slots: 1 << 14,
            frag_timeout: 30 * SEC,
            inner: false,
            expire_every: DEFAULT_EXPIRE_EVERY,
            seed: std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                0x5eed_f10e_5eed_f10e_u64,
            ),
        }
    }
}

/// A field of a flow direction that views key on or count distinct values of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// Source address masked to (IPv4 prefix, IPv6 prefix).
    SrcIp(u8, u8),
    /// Destination address masked to (IPv4 prefix, IPv6 prefix).
    DstIp(u8, u8),
    /// Source port (ICMP: the type sent in this direction).
    SrcPort,
    /// Destination port (ICMP: the counterpart type of a paired type, else the code).
    DstPort,
    /// IP protocol number.
    Proto,
    /// Outer VLAN id (absent = no tag).
    Vlan,
}

impl Field {
    /// The full 5-tuple: addresses, ports and protocol.
    pub fn five_tuple() -> Vec<Field> {
        vec![
            Field::SrcIp(32, 128),
            Field::DstIp(32, 128),
            Field::SrcPort,
            Field::DstPort,
            Field::Proto,
        ]
    }

    /// Parses `src_ip`, `dst_ip[/v4[/v6]]`, `src_port`, `dst_port`, `proto`, `vlan`. A single
    /// prefix up to 32 masks IPv4 addresses only, above 32 IPv6 addresses only.
    pub fn parse(s: &str) -> Result<Field, String> {
        let s = s.trim();
        let mut parts = s.split('/');
        let name = parts.next().unwrap_or("");
        let nums: Vec<&str> = parts.collect();
        let ip = |f: fn(u8, u8) -> Field| -> Result<Field, String> {
            let parse = |x: &str, max: u8| -> Result<u8, String> {
                match x.parse::<u8>() {
                    Ok(n) if n <= max => Ok(n),
                    _ => Err(format!("bad prefix length '{x}' in '{s}' (0..={max})")),
                }
            };
            match nums.as_slice() {
                [] => Ok(f(32, 128)),
                [one] => {
                    let n = parse(one, 128)?;
                    Ok(if n <= 32 { f(n, 128) } else { f(32, n) })
                }
                [a, b] => Ok(f(parse(a, 32)?, parse(b, 128)?)),
                _ => Err(format!("too many prefix lengths in '{s}'")),
            }
        };
        let plain = |f: Field| {
            if nums.is_empty() {
                Ok(f)
            } else {
                Err(format!("'{name}' takes no prefix length"))
            }
        };
        match name {
            "src_ip" | "src" | "sa" => ip(Field::SrcIp),
            "dst_ip" | "dst" | "da" => ip(Field::DstIp),
            "src_port" | "sp" => plain(Field::SrcPort),
            "dst_port" | "dp" => plain(Field::DstPort),
            "proto" | "protocol" => plain(Field::Proto),
            "vlan" => plain(Field::Vlan),
            _ => Err(format!(
                "unknown field '{name}' (expected src_ip, dst_ip, src_port, dst_port, proto, vlan; addresses may take /prefix)"
            )),
        }
    }

    /// Column name in outputs (`src_ip`, `src_ip_24`, `src_ip_24_64`, ...).
    pub fn column(&self) -> String {
        let ip = |n: &str, a: u8, b: u8| match (a, b) {
            (32, 128) => n.to_string(),
            (a, 128) => format!("{n}_{a}"),
            (32, b) => format!("{n}_{b}"),
            (a, b) => format!("{n}_{a}_{b}"),
        };
        match *self {
            Field::SrcIp(a, b) => ip("src_ip", a, b),
            Field::DstIp(a, b) => ip("dst_ip", a, b),
            Field::SrcPort => "src_port".into(),
            Field::DstPort => "dst_port".into(),
            Field::Proto => "proto".into(),
            Field::Vlan => "vlan".into(),
        }
    }
}

/// Masks an address to a prefix length of its family.
pub fn mask_ip(a: IpAddr, v4: u8, v6: u8) -> IpAddr {
    match a {
        IpAddr::V4(x) if v4 < 32 => {
            let m = if v4 == 0 { 0 } else { u32::MAX << (32 - v4) };
            IpAddr::V4((u32::from(x) & m).into())
        }
        IpAddr::V6(x) if v6 < 128 => {
            let m = if v6 == 0 { 0 } else { u128::MAX << (128 - v6) };
            IpAddr::V6((u128::from(x) & m).into())
        }
        other => other,
    }
}

/// A per-key metric of a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Packets.
    Packets,
    /// Frame bytes (as on the wire).
    Bytes,
    /// Flow records started.
    Flows,
    /// Distinct values of a field (HyperLogLog beyond 64 values).
    Distinct(Field),
}

impl Metric {
    /// Parses `packets`, `bytes`, `flows`, `distinct(<field>)`.
    pub fn parse(s: &str) -> Result<Metric, String> {
        let s = s.trim();
        match s {
            "packets" | "pkts" => Ok(Metric::Packets),
            "bytes" => Ok(Metric::Bytes),
            "flows" => Ok(Metric::Flows),
            _ => {
                if let Some(inner) = s
                    .strip_prefix("distinct(")
                    .and_then(|r| r.strip_suffix(')'))
                {
                    Ok(Metric::Distinct(Field::parse(inner)?))
                } else {
                    Err(format!(
                        "unknown metric '{s}' (expected packets, bytes, flows, distinct(<field>))"
                    ))
                }
            }
        }
    }

    /// Column name in outputs.
    pub fn column(&self) -> String {
        match self {
            Metric::Packets => "packets".into(),
            Metric::Bytes => "bytes".into(),
            Metric::Flows => "flows".into(),
            Metric::Distinct(f) => format!("distinct_{}", f.column()),
        }
    }
}

/// How a view stores its keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ViewMode {
    /// An exact map of at most `max_keys` keys per window; deltas for new keys beyond that are
    /// added to one overflow row (all key columns empty) and counted.
    Exact {
        /// Bound on distinct keys per window.
        max_keys: usize,
    },
    /// Count-Min + top-K on the `rank` metric: the `k` heaviest keys with their estimate and
    /// the over-estimate bound.
    TopK {
        /// Keys reported.
        k: usize,
        /// Error factor: over-estimate at most `eps * N` ...
        eps: f64,
        /// ... with probability `1 - delta`.
        delta: f64,
        /// Metric the keys are ranked by (packets, bytes or flows).
        rank: Metric,
    },
}

/// One named view: key fields, metrics, mode and cadence.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewSpec {
    /// Name (also the output file name).
    pub name: String,
    /// Key fields (empty = one row with totals).
    pub keys: Vec<Field>,
    /// Metrics per key.
    pub metrics: Vec<Metric>,
    /// Snapshot cadence in nanoseconds (windows aligned to multiples of it since the epoch).
    pub interval: i64,
    /// Storage mode.
    pub mode: ViewMode,
    /// HyperLogLog precision for distinct metrics.
    pub hll_precision: u8,
}

/// Default metrics of a view.
pub fn default_metrics() -> Vec<Metric> {
    vec![Metric::Packets, Metric::Bytes, Metric::Flows]
}

/// Default cadence: 60 s.
pub const DEFAULT_INTERVAL: i64 = 60 * SEC;

/// Default bound on keys per view window.
pub const DEFAULT_MAX_KEYS: usize = 1 << 20;

impl ViewSpec {
    /// An exact view with default metrics and cadence.
    pub fn exact(name: &str, keys: Vec<Field>) -> ViewSpec {
        ViewSpec {
            name: name.to_string(),
            keys,
            metrics: default_metrics(),
            interval: DEFAULT_INTERVAL,
            mode: ViewMode::Exact {
                max_keys: DEFAULT_MAX_KEYS,
            },
            hll_precision: crate::hll::DEFAULT_PRECISION,
        }
    }

    /// Parses an ad-hoc view from a comma-separated key list (`src_ip,dst_port`); its name is
    /// the keys joined by `+`.
    pub fn adhoc(spec: &str, interval: i64) -> Result<ViewSpec, String> {
        let keys = spec
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Field::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("empty view".into());
        }
        let name = keys
            .iter()
            .map(|k| k.column())
            .collect::<Vec<_>>()
            .join("+");
        let mut v = ViewSpec::exact(&name, keys);
        v.interval = interval;
        Ok(v)
    }
}

/// The default views (Go2NetSpectra's aggregations): by each 5-tuple field and the full tuple.
pub fn default_views(interval: i64) -> Vec<ViewSpec> {
    let mut v = vec![
        ViewSpec::exact("src_ip", vec![Field::SrcIp(32, 128)]),
        ViewSpec::exact("dst_ip", vec![Field::DstIp(32, 128)]),
        ViewSpec::exact("src_port", vec![Field::SrcPort]),
        ViewSpec::exact("dst_port", vec![Field::DstPort]),
        ViewSpec::exact("proto", vec![Field::Proto]),
        ViewSpec::exact("five_tuple", Field::five_tuple()),
    ];
    for x in &mut v {
        x.interval = interval;
    }
    v
}

/// Largest `max_flows` (live flows per worker, `--max-flows`): about 196 bytes per live flow
/// all-in, so ~52 GB per worker at the bound; the table addresses flows with 32 bits.
pub const MAX_FLOWS: usize = 1 << 28;
/// Largest `frag_slots`: the first-fragment cache is allocated whole when a worker starts
/// ([`crate::table::FRAG_SLOT_BYTES`] = 96 bytes each: 96 MiB per worker at the bound).
pub const MAX_FRAG_SLOTS: usize = 1 << 20;
/// Largest `max_keys` of an exact view window (~75-90 bytes per key, plus sketches).
pub const MAX_KEYS: usize = 1 << 28;
/// Largest `top` of a top-K view: its candidate map is allocated whole and every eviction
/// scans it.
pub const MAX_TOP: usize = 100_000;
/// Smallest `eps` of a top-K view: Count-Min rows of at most `ceil(e / eps)` = 271 829 cells.
pub const MIN_EPS: f64 = 1e-5;
/// Largest `eps`: an over-estimate bound of the whole total (rows of three cells).
pub const MAX_EPS: f64 = 1.0;
/// Smallest `delta` of a top-K view: at most `ceil(ln(1 / delta))` = 21 rows.
pub const MIN_DELTA: f64 = 1e-9;
/// Largest `delta` (one row).
pub const MAX_DELTA: f64 = 0.5;
/// Shortest snapshot interval (`interval`, `--interval`).
pub const MIN_INTERVAL: i64 = 1_000_000;
/// Default [`TableConfig::expire_every`]: 100 ms.
pub const DEFAULT_EXPIRE_EVERY: i64 = 100_000_000;

/// A duration in the YAML file, as nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub i64);

/// Parses `90`, `90s`, `5m`, `1h`, `500ms`, `2d` into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration '{s}' (e.g. 90, 90s, 5m, 1h, 500ms)"))?;
    let mul = match unit.trim() {
        "" | "s" => 1e9,
        "ms" => 1e6,
        "us" => 1e3,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "d" => 86400e9,
        u => return Err(format!("bad duration unit '{u}' in '{s}'")),
    };
    let ns = n * mul;
    if !(0.0..9.2e18).contains(&ns) {
        return Err(format!("duration '{s}' out of range"));
    }
    Ok(ns as i64)
}

/// Seconds as nanoseconds, for `0 <= secs < 9.2e9` (the `i64` range).
fn seconds_to_ns(secs: f64) -> Result<i64, String> {
    let ns = secs * 1e9;
    if (0.0..9.2e18).contains(&ns) {
        Ok(ns as i64)
    } else {
        Err(format!("duration {secs} s out of range (0 to 292 years)"))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(yaml::Duration { min: 0, what: "" })
            .map(Dur)
    }
}

/// Validating visitors for the YAML file. Each checks its value while the deserializer still
/// points at it, so that serde_yaml's error names the key path (`views[1].max_keys`) and the
/// line; a check made after deserializing would be reported at the enclosing mapping.
mod yaml {
    use super::{parse_duration, seconds_to_ns};
    use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
    use std::fmt;
    use std::marker::PhantomData;

    /// An integer from `min` to `max`.
    pub struct Count {
        pub min: u64,
        pub max: u64,
    }

    impl Count {
        fn check<E: de::Error>(&self, v: i128) -> Result<u64, E> {
            if (self.min as i128..=self.max as i128).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::custom(format!(
                    "{v} is out of range: must be from {} to {}",
                    self.min, self.max
                )))
            }
        }
    }

    impl Visitor<'_> for Count {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "an integer from {} to {}", self.min, self.max)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            self.check(v.into())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            self.check(v.into())
        }
    }

    /// A number from `min` to `max`.
    pub struct Real {
        pub min: f64,
        pub max: f64,
    }

    impl Visitor<'_> for Real {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a number from {} to {}", self.min, self.max)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            if (self.min..=self.max).contains(&v) {
                Ok(v)
            } else {
                Err(E::custom(format!(
                    "{v} is out of range: must be from {} to {}",
                    self.min, self.max
                )))
            }
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            self.visit_f64(v as f64)
        }
    }

    /// A duration, seconds as a number or a string with a unit, of at least `min` ns (`what`
    /// says what it is in the error).
    pub struct Duration {
        pub min: i64,
        pub what: &'static str,
    }

    impl Duration {
        fn check<E: de::Error>(&self, ns: Result<i64, String>, shown: &str) -> Result<i64, E> {
            let ns = ns.map_err(E::custom)?;
            if ns >= self.min {
                Ok(ns)
            } else if self.min == 1 {
                Err(E::custom(format!(
                    "{} must be longer than 0, got {shown}",
                    self.what
                )))
            } else {
                Err(E::custom(format!(
                    "{} must be at least {} ms, got {shown}",
                    self.what,
                    self.min / 1_000_000
                )))
            }
        }
    }

    impl Visitor<'_> for Duration {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration: seconds as a number, or a string such as 90s, 5m, 500ms")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            if v < 0.0 {
                return Err(E::custom(format!("negative duration {v}")));
            }
            self.check(seconds_to_ns(v), &v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            self.check(parse_duration(v), v)
        }
    }

    /// A string turned into a `T` by a parser whose error is the message.
    pub struct Parsed<T> {
        pub parse: fn(&str) -> Result<T, String>,
        pub what: &'static str,
    }

    impl<T> Clone for Parsed<T> {
        fn clone(&self) -> Self {
            Parsed {
                parse: self.parse,
                what: self.what,
            }
        }
    }

    impl<T> Visitor<'_> for Parsed<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.what)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }

    impl<'de, T> DeserializeSeed<'de> for Parsed<T> {
        type Value = T;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
            d.deserialize_str(self)
        }
    }

    /// A list of strings each turned into a `T` (an error names the item: `keys[2]`).
    pub struct ParsedList<T>(pub Parsed<T>, pub PhantomData<T>);

    impl<'de, T> Visitor<'de> for ParsedList<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a list of {}", self.0.what)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(x) = seq.next_element_seed(self.0.clone())? {
                out.push(x);
            }
            Ok(out)
        }
    }
}

fn count<'de, D: Deserializer<'de>>(d: D, min: usize, max: usize) -> Result<usize, D::Error> {
    d.deserialize_u64(yaml::Count {
        min: min as u64,
        max: max as u64,
    })
    .map(|n| n as usize)
}

fn de_max_flows<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 1, MAX_FLOWS).map(Some)
}

fn de_frag_slots<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 1, MAX_FRAG_SLOTS).map(Some)
}

fn de_max_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 1, MAX_KEYS).map(Some)
}

fn de_top<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    count(d, 1, MAX_TOP).map(Some)
}

fn de_hll_precision<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let (lo, hi) = (crate::hll::MIN_PRECISION, crate::hll::MAX_PRECISION);
    count(d, lo.into(), hi.into()).map(|n| Some(n as u8))
}

fn de_eps<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_f64(yaml::Real {
        min: MIN_EPS,
        max: MAX_EPS,
    })
    .map(Some)
}

fn de_delta<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_f64(yaml::Real {
        min: MIN_DELTA,
        max: MAX_DELTA,
    })
    .map(Some)
}

fn de_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dur>, D::Error> {
    d.deserialize_any(yaml::Duration {
        min: MIN_INTERVAL,
        what: "an interval",
    })
    .map(|n| Some(Dur(n)))
}

fn de_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dur>, D::Error> {
    d.deserialize_any(yaml::Duration {
        min: 1,
        what: "a timeout",
    })
    .map(|n| Some(Dur(n)))
}

fn de_fields<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Field>, D::Error> {
    d.deserialize_seq(yaml::ParsedList(
        yaml::Parsed {
            parse: Field::parse,
            what: "a field (src_ip, dst_ip, src_port, dst_port, proto, vlan)",
        },
        std::marker::PhantomData,
    ))
}

fn de_metrics<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Metric>>, D::Error> {
    d.deserialize_seq(yaml::ParsedList(
        yaml::Parsed {
            parse: Metric::parse,
            what: "a metric (packets, bytes, flows, distinct(<field>))",
        },
        std::marker::PhantomData,
    ))
    .map(Some)
}

fn de_rank<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Metric>, D::Error> {
    d.deserialize_str(yaml::Parsed {
        parse: |s| match Metric::parse(s)? {
            Metric::Distinct(_) => Err("rank must be packets, bytes or flows".into()),
            m => Ok(m),
        },
        what: "packets, bytes or flows",
    })
    .map(Some)
}

fn de_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_str(yaml::Parsed {
        parse: |s| match s {
            "exact" | "topk" => Ok(s.to_string()),
            m => Err(format!("unknown mode '{m}' (exact or topk)")),
        },
        what: "exact or topk",
    })
    .map(Some)
}

fn de_view_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(yaml::Parsed {
        parse: |s| {
            if s.is_empty() || s.contains(['/', '\\']) || s.starts_with('.') {
                Err(format!(
                    "view name '{s}' must be a plain file name (no '/', '\\', leading '.')"
                ))
            } else {
                Ok(s.to_string())
            }
        },
        what: "a view name",
    })
}

/// `timeouts:` section of the YAML file (each longer than 0).
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    /// TCP idle timeout.
    #[serde(default, deserialize_with = "de_timeout")]
    pub tcp: Option<Dur>,
    /// Timeout after FIN exchange / RST.
    #[serde(default, deserialize_with = "de_timeout")]
    pub tcp_closed: Option<Dur>,
    /// UDP idle timeout.
    #[serde(default, deserialize_with = "de_timeout")]
    pub udp: Option<Dur>,
    /// ICMP idle timeout.
    #[serde(default, deserialize_with = "de_timeout")]
    pub icmp: Option<Dur>,
    /// Other protocols' idle timeout.
    #[serde(default, deserialize_with = "de_timeout")]
    pub other: Option<Dur>,
    /// Active timeout.
    #[serde(default, deserialize_with = "de_timeout")]
    pub active: Option<Dur>,
}

/// One view in the YAML file; every value is checked as it is read (bounds: the `MAX_*` and
/// `MIN_*` constants of this module).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ViewFile {
    /// View name (a plain file name).
    #[serde(deserialize_with = "de_view_name")]
    pub name: String,
    /// Key fields.
    #[serde(default, deserialize_with = "de_fields")]
    pub keys: Vec<Field>,
    /// Metrics (default packets, bytes, flows).
    #[serde(default, deserialize_with = "de_metrics")]
    pub metrics: Option<Vec<Metric>>,
    /// Cadence (default: top-level `interval`), at least [`MIN_INTERVAL`].
    #[serde(default, deserialize_with = "de_interval")]
    pub interval: Option<Dur>,
    /// `exact` (default) or `topk`.
    #[serde(default, deserialize_with = "de_mode")]
    pub mode: Option<String>,
    /// Exact mode: bound on keys per window, 1..=[`MAX_KEYS`].
    #[serde(default, deserialize_with = "de_max_keys")]
    pub max_keys: Option<usize>,
    /// Top-K mode: keys reported, 1..=[`MAX_TOP`].
    #[serde(default, deserialize_with = "de_top")]
    pub top: Option<usize>,
    /// Top-K mode: error factor eps, [`MIN_EPS`]..=[`MAX_EPS`].
    #[serde(default, deserialize_with = "de_eps")]
    pub eps: Option<f64>,
    /// Top-K mode: failure probability delta, [`MIN_DELTA`]..=[`MAX_DELTA`].
    #[serde(default, deserialize_with = "de_delta")]
    pub delta: Option<f64>,
    /// Top-K mode: ranking metric (packets, bytes or flows).
    #[serde(default, deserialize_with = "de_rank")]
    pub rank: Option<Metric>,
    /// HyperLogLog precision (4..=18).
    #[serde(default, deserialize_with = "de_hll_precision")]
    pub hll_precision: Option<u8>,
}

/// The whole YAML configuration file.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Default snapshot cadence, at least [`MIN_INTERVAL`].
    #[serde(default, deserialize_with = "de_interval")]
    pub interval: Option<Dur>,
    /// Maximum live flows per worker, 1..=[`MAX_FLOWS`].
    #[serde(default, deserialize_with = "de_max_flows")]
    pub max_flows: Option<usize>,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    /// First-fragment cache slots, 1..=[`MAX_FRAG_SLOTS`].
    #[serde(default, deserialize_with = "de_frag_slots")]
    pub frag_slots: Option<usize>,
    /// Key flows on the innermost tunnelled packet.
    pub inner: Option<bool>,
    /// How often, between snapshots, idle flows are expired and their records sent on; at
    /// least [`MIN_INTERVAL`].
    #[serde(default, deserialize_with = "de_interval")]
    pub expire_every: Option<Dur>,
    /// Keep the default views in addition to those listed.
    pub default_views: Option<bool>,
    /// Views.
    #[serde(default)]
    pub views: Vec<ViewFile>,
}

impl FileConfig {
    /// Parses YAML and checks every value against its bound; errors name the key path and
    /// the line (serde_yaml's message carries both).
    pub fn from_yaml(text: &str, origin: &str) -> Result<FileConfig, FlowError> {
        serde_yaml::from_str(text).map_err(|e| FlowError::Config(format!("{origin}: {e}")))
    }

    /// Applies the file's table settings onto `t`.
    pub fn apply_table(&self, t: &mut TableConfig) {
        let to = &self.timeouts;
        let set = |dst: &mut i64, v: Option<Dur>| {
            if let Some(Dur(n)) = v {
                *dst = n;
            }
        };
        set(&mut t.timeouts.tcp, to.tcp);
        set(&mut t.timeouts.tcp_closed, to.tcp_closed);
        set(&mut t.timeouts.udp, to.udp);
        set(&mut t.timeouts.icmp, to.icmp);
        set(&mut t.timeouts.other, to.other);
        set(&mut t.timeouts.active, to.active);
        if let Some(n) = self.max_flows {
            t.max_flows = n;
        }
        if let Some(n) = self.frag_slots {
            t.frag_slots = n;
        }
        if let Some(b) = self.inner {
            t.inner = b;
        }
        if let Some(Dur(n)) = self.expire_every {
            t.expire_every = n;
        }
    }

    /// Builds the view list (defaults unless views are listed and `default_views` is not true).
    /// `interval` is the cadence of views that set none (checked by the caller); a file's own
    /// top-level `interval` wins over it.
    pub fn views(&self, origin: &str, interval: i64) -> Result<Vec<ViewSpec>, FlowError> {
        let interval = self.interval.map(|d| d.0).unwrap_or(interval);
        let mut out = if self.views.is_empty() || self.default_views == Some(true) {
            default_views(interval)
        } else {
            Vec::new()
        };
        for (i, v) in self.views.iter().enumerate() {
            // The one check across entries; every value was checked when it was read.
            if let Some(j) = out.iter().position(|o: &ViewSpec| o.name == v.name) {
                let other = match j.checked_sub(out.len() - i) {
                    Some(k) => format!("views[{k}]"),
                    None => "a default view".into(),
                };
                return Err(FlowError::Config(format!(
                    "{origin}: views[{i}].name: duplicate view name '{}' (as {other})",
                    v.name
                )));
            }
            let mode = match v.mode.as_deref().unwrap_or("exact") {
                "topk" => ViewMode::TopK {
                    k: v.top.unwrap_or(100),
                    eps: v.eps.unwrap_or(0.0005),
                    delta: v.delta.unwrap_or(0.01),
                    rank: v.rank.unwrap_or(Metric::Bytes),
                },
                _ => ViewMode::Exact {
                    max_keys: v.max_keys.unwrap_or(DEFAULT_MAX_KEYS),
                },
            };
            out.push(ViewSpec {
                name: v.name.clone(),
                keys: v.keys.clone(),
                metrics: v.metrics.clone().unwrap_or_else(default_metrics),
                interval: v.interval.map(|d| d.0).unwrap_or(interval),
                mode,
                hll_precision: v.hll_precision.unwrap_or(crate::hll::DEFAULT_PRECISION),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_metrics_parse() {
        assert_eq!(Field::parse("src_ip/24").unwrap(), Field::SrcIp(24, 128));
        assert_eq!(Field::parse("dst_ip/64").unwrap(), Field::DstIp(32, 64));
        assert_eq!(Field::parse("dst_ip/16/48").unwrap(), Field::DstIp(16, 48));
        assert!(Field::parse("dst_port/3").is_err());
        assert!(Field::parse("mac").is_err());
        assert_eq!(
            Metric::parse("distinct(dst_port)").unwrap(),
            Metric::Distinct(Field::DstPort)
        );
        assert_eq!(
            mask_ip("10.1.2.3".parse().unwrap(), 24, 128),
            "10.1.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            mask_ip("2001:db8:1:2::5".parse().unwrap(), 32, 48),
            "2001:db8:1::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(parse_duration("5m").unwrap(), 300 * SEC);
        assert_eq!(parse_duration("500ms").unwrap(), SEC / 2);
    }

    /// The error of a YAML text, which must fail.
    fn yaml_err(y: &str) -> String {
        match FileConfig::from_yaml(y, "x.yaml") {
            Ok(c) => c
                .views("x.yaml", SEC)
                .map(|v| panic!("accepted {y:?}: {v:?}"))
                .unwrap_err()
                .to_string(),
            Err(e) => e.to_string(),
        }
    }

    /// Asserts that the error of `y` names `key` (its path) and `line`, and none of serde's
    /// internal names.
    fn names(y: &str, key: &str, line: u32) {
        let e = yaml_err(y);
        assert!(
            e.contains(&format!("x.yaml: {key}: ")) && e.contains(&format!("line {line} ")),
            "{y:?}: {e}"
        );
        for internal in ["untagged", "Raw", "variant", "--"] {
            assert!(!e.contains(internal), "{y:?}: {e}");
        }
    }

    #[test]
    fn bad_config_names_key_and_line() {
        let y = "interval: 10s\nviews:\n  - name: a\n    keys: [src_ip]\n    colour: red\n";
        let e = yaml_err(y);
        assert!(e.contains("colour") && e.contains("line 5"), "{e}");
        names(
            "views:\n  - name: a\n    keys: [src_ip, src_mac]\n",
            "views[0].keys[1]",
            3,
        );
        names(
            "views:\n  - name: a\n    metrics: [packets, bits]\n",
            "views[0].metrics[1]",
            3,
        );
        names("views:\n  - name: a/b\n", "views[0].name", 2);
        names("views:\n  - name: a\n    mode: fast\n", "views[0].mode", 3);
        names(
            "views:\n  - name: a\n    mode: topk\n    rank: distinct(src_ip)\n",
            "views[0].rank",
            4,
        );
        // The one check across entries names both.
        let e = yaml_err("views:\n  - name: a\n  - name: b\n  - name: a\n");
        assert!(
            e.contains("views[2].name: duplicate view name 'a' (as views[0])"),
            "{e}"
        );
    }

    #[test]
    fn zero_sizes_are_refused_not_taken_as_one() {
        // Before, each of these silently became 1.
        names("max_flows: 0\n", "max_flows", 1);
        names("frag_slots: 0\n", "frag_slots", 1);
        names(
            "views:\n  - name: a\n    max_keys: 0\n",
            "views[0].max_keys",
            3,
        );
        names(
            "views:\n  - name: a\n    mode: topk\n    top: 0\n",
            "views[0].top",
            4,
        );
        // A timeout of 0 was taken as is from the file (and as 1 ns from a flag).
        names("timeouts:\n  udp: 0\n", "timeouts.udp", 2);
    }

    #[test]
    fn huge_sizes_are_refused_naming_key_and_line() {
        // frag_slots is allocated whole: 4294967295 aborted the run on allocation.
        names("frag_slots: 4294967295\n", "frag_slots", 1);
        names("max_flows: 1000000000000\n", "max_flows", 1);
        names(
            "views:\n  - name: a\n    max_keys: 99999999999\n",
            "views[0].max_keys",
            3,
        );
        names(
            "views:\n  - name: a\n    mode: topk\n    top: 4294967295\n",
            "views[0].top",
            4,
        );
        names(
            "views:\n  - name: a\n    mode: topk\n    eps: 0.0000001\n",
            "views[0].eps",
            4,
        );
        names(
            "views:\n  - name: a\n    mode: topk\n    delta: 0\n",
            "views[0].delta",
            4,
        );
        names(
            "views:\n  - name: a\n    mode: topk\n    delta: 0.9\n",
            "views[0].delta",
            4,
        );
        names(
            "views:\n  - name: a\n    hll_precision: 30\n",
            "views[0].hll_precision",
            3,
        );
        names(
            "views:\n  - name: a\n    hll_precision: 3\n",
            "views[0].hll_precision",
            3,
        );
        names("max_flows: -1\n", "max_flows", 1);
        names("expire_every: 0s\n", "expire_every", 1);
        let c = FileConfig::from_yaml("expire_every: 250ms\n", "x.yaml").unwrap();
        let mut t = TableConfig::default();
        assert_eq!(t.expire_every, DEFAULT_EXPIRE_EVERY);
        c.apply_table(&mut t);
        assert_eq!(t.expire_every, SEC / 4);
        // At the bounds they are accepted.
        let y = format!(
            "max_flows: {MAX_FLOWS}\nfrag_slots: {MAX_FRAG_SLOTS}\nviews:\n  - name: a\n    \
             max_keys: {MAX_KEYS}\n    hll_precision: 18\n  - name: b\n    mode: topk\n    \
             top: {MAX_TOP}\n    eps: 0.00001\n    delta: 0.000000001\n"
        );
        let c = FileConfig::from_yaml(&y, "x.yaml").unwrap();
        let mut t = TableConfig::default();
        c.apply_table(&mut t);
        assert_eq!((t.max_flows, t.frag_slots), (MAX_FLOWS, MAX_FRAG_SLOTS));
        let v = c.views("x.yaml", SEC).unwrap();
        assert_eq!(v[0].mode, ViewMode::Exact { max_keys: MAX_KEYS });
        assert!(matches!(v[1].mode, ViewMode::TopK { k: MAX_TOP, .. }));
    }

    #[test]
    fn intervals_and_durations_are_named_as_yaml_keys() {
        // `interval: 0` from a file was reported as `--interval`.
        names("interval: 0\n", "interval", 1);
        names("interval: 500us\n", "interval", 1);
        names(
            "views:\n  - name: a\n    interval: 0.0001\n",
            "views[0].interval",
            3,
        );
        // A value of the wrong type said "data did not match any variant of untagged enum Raw".
        names("interval: [1, 2]\n", "interval", 1);
        names("timeouts:\n  tcp: true\n", "timeouts.tcp", 2);
        names("timeouts:\n  tcp: 5 fortnights\n", "timeouts.tcp", 2);
        names("timeouts:\n  tcp: -5\n", "timeouts.tcp", 2);
        let e = yaml_err("interval: [1, 2]\n");
        assert!(e.contains("a duration"), "{e}");
        let c =
            FileConfig::from_yaml("interval: 1ms\ntimeouts: {udp: 0.5, tcp: 2m}\n", "x").unwrap();
        let mut t = TableConfig::default();
        c.apply_table(&mut t);
        assert_eq!(
            (c.interval, t.timeouts.udp, t.timeouts.tcp),
            (Some(Dur(MIN_INTERVAL)), SEC / 2, 120 * SEC)
        );
    }
}
