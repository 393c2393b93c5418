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

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) if n >= 0.0 => Ok(Dur((n * 1e9) as i64)),
            Raw::N(n) => Err(serde::de::Error::custom(format!("negative duration {n}"))),
            Raw::S(s) => parse_duration(&s)
                .map(Dur)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// `timeouts:` section of the YAML file.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    /// TCP idle timeout.
    pub tcp: Option<Dur>,
    /// Timeout after FIN exchange / RST.
    pub tcp_closed: Option<Dur>,
    /// UDP idle timeout.
    pub udp: Option<Dur>,
    /// ICMP idle timeout.
    pub icmp: Option<Dur>,
    /// Other protocols' idle timeout.
    pub other: Option<Dur>,
    /// Active timeout.
    pub active: Option<Dur>,
}

/// One view in the YAML file.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ViewFile {
    /// View name.
    pub name: String,
    /// Key fields.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Metrics (default packets, bytes, flows).
    pub metrics: Option<Vec<String>>,
    /// Cadence (default: top-level `interval`).
    pub interval: Option<Dur>,
    /// `exact` (default) or `topk`.
    pub mode: Option<String>,
    /// Exact mode: bound on keys per window.
    pub max_keys: Option<usize>,
    /// Top-K mode: keys reported.
    pub top: Option<usize>,
    /// Top-K mode: error factor eps.
    pub eps: Option<f64>,
    /// Top-K mode: failure probability delta.
    pub delta: Option<f64>,
    /// Top-K mode: ranking metric.
    pub rank: Option<String>,
    /// HyperLogLog precision (4..=18).
    pub hll_precision: Option<u8>,
}

/// The whole YAML configuration file.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Default snapshot cadence.
    pub interval: Option<Dur>,
    /// Maximum live flows per worker.
    pub max_flows: Option<usize>,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    /// First-fragment cache slots.
    pub frag_slots: Option<usize>,
    /// Key flows on the innermost tunnelled packet.
    pub inner: Option<bool>,
    /// Keep the default views in addition to those listed.
    pub default_views: Option<bool>,
    /// Views.
    #[serde(default)]
    pub views: Vec<ViewFile>,
}

impl FileConfig {
    /// Parses YAML; errors name the key and the line.
    pub fn from_yaml(text: &str, origin: &str) -> Result<FileConfig, FlowError> {
        serde_yaml::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            FlowError::Config(format!("{origin}{at}: {e}"))
        })
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
            t.max_flows = n.max(1);
        }
        if let Some(n) = self.frag_slots {
            t.frag_slots = n.max(1);
        }
        if let Some(b) = self.inner {
            t.inner = b;
        }
    }

    /// Builds the view list (defaults unless views are listed and `default_views` is not true).
    pub fn views(&self, origin: &str, interval: i64) -> Result<Vec<ViewSpec>, FlowError> {
        let interval = self.interval.map(|d| d.0).unwrap_or(interval);
        let mut out = if self.views.is_empty() || self.default_views == Some(true) {
            default_views(interval)
        } else {
            Vec::new()
        };
        for (i, v) in self.views.iter().enumerate() {
            let err =
                |m: String| FlowError::Config(format!("{origin}: views[{i}] ('{}'): {m}", v.name));
            let keys = v
                .keys
                .iter()
                .map(|k| Field::parse(k))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            let metrics = match &v.metrics {
                Some(m) => m
                    .iter()
                    .map(|x| Metric::parse(x))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?,
                None => default_metrics(),
            };
            let mode = match v.mode.as_deref().unwrap_or("exact") {
                "exact" => ViewMode::Exact {
                    max_keys: v.max_keys.unwrap_or(DEFAULT_MAX_KEYS).max(1),
                },
                "topk" => {
                    let rank = Metric::parse(v.rank.as_deref().unwrap_or("bytes")).map_err(err)?;
                    if matches!(rank, Metric::Distinct(_)) {
                        return Err(err("rank must be packets, bytes or flows".into()));
                    }
                    ViewMode::TopK {
                        k: v.top.unwrap_or(100).max(1),
                        eps: v.eps.unwrap_or(0.0005),
                        delta: v.delta.unwrap_or(0.01),
                        rank,
                    }
                }
                m => return Err(err(format!("unknown mode '{m}' (exact or topk)"))),
            };
            let iv = v.interval.map(|d| d.0).unwrap_or(interval);
            if iv < 1_000_000 {
                return Err(err("interval must be at least 1ms".into()));
            }
            if out.iter().any(|o: &ViewSpec| o.name == v.name) {
                return Err(err("duplicate view name".into()));
            }
            if v.name.is_empty() || v.name.contains(['/', '\\']) || v.name.starts_with('.') {
                return Err(err("name must be a plain file name".into()));
            }
            out.push(ViewSpec {
                name: v.name.clone(),
                keys,
                metrics,
                interval: iv,
                mode,
                hll_precision: v
                    .hll_precision
                    .unwrap_or(crate::hll::DEFAULT_PRECISION)
                    .clamp(4, 18),
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

    #[test]
    fn bad_config_names_key_and_line() {
        let y = "interval: 10s\nviews:\n  - name: a\n    keys: [src_ip]\n    colour: red\n";
        let e = FileConfig::from_yaml(y, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("colour") && e.contains("line 5"), "{e}");
        let y = "views:\n  - name: a\n    keys: [src_mac]\n";
        let c = FileConfig::from_yaml(y, "x.yaml").unwrap();
        let e = c.views("x.yaml", SEC).unwrap_err().to_string();
        assert!(e.contains("views[0]") && e.contains("src_mac"), "{e}");
    }
}
