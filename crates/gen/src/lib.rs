//! Deterministic synthetic traffic generator (TCP/UDP/ICMP/HTTP/TLS/DNS, VLANs, IPv6, duplicates)
//! with a JSON truth file.
//!
//! A seeded generator keeps a fixed number of conversations alive at once (HTTP/1.1, TLS and
//! bulk TCP sessions with handshake and teardown, DNS over UDP, ICMP echo and ICMP errors) and
//! interleaves their frames into one capture. Every frame has correct IPv4/TCP/UDP/ICMP/ICMPv6
//! checksums; a configurable share of frames is followed 1-3 frames later by an exact duplicate.
//! The [`Truth`] returned counts everything exactly, so tests can assert against it.
//!
//! ```
//! use netspectra_gen::{generate_to_vec, GenConfig};
//! let cfg = GenConfig { seed: 7, packets: Some(2_000), ..GenConfig::default() };
//! let (pcap, truth) = generate_to_vec(&cfg).unwrap();
//! assert_eq!(truth.file_bytes, pcap.len() as u64);
//! assert!(truth.http.requests > 0 && truth.packets >= 2_000);
//! ```
//!
//! Memory is bounded by the number of concurrent sessions (each owns two small stream buffers);
//! frames are built in one reusable buffer and bodies come from precomputed templates.

pub mod check;
mod dns;
mod quic;
mod rng;
mod session;
mod stream;
mod tls;
pub mod truth;
mod vocab;
mod wire;

pub use dns::DnsTransaction;
pub use tls::TlsSession;
pub use truth::{
    DnsTruth, Duplicates, Flows, FrameCounts, HttpTransaction, HttpTruth, IcmpTruth, TcpTruth,
    TlsTruth, Truth,
};

use netspectra_packet::{InterfaceInfo, LinkType, Packet, Timestamp};
use netspectra_pcap::{CaptureWriter, OutputFormat, WriteError};
use rng::Rng;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use session::{Frame, Kind, Session};
use std::io::Write;
use stream::Templates;
use wire::Path;

/// Output file format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Classic pcap with nanosecond timestamps.
    #[default]
    Pcap,
    /// Classic pcap with microsecond timestamps.
    PcapUs,
    /// pcapng (nanosecond `if_tsresol`).
    Pcapng,
}

impl Format {
    /// Name as used in the truth file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::PcapUs => "pcap-us",
            Format::Pcapng => "pcapng",
        }
    }

    /// The writer format.
    pub fn output_format(self) -> OutputFormat {
        match self {
            Format::Pcap => OutputFormat::Pcap { nanos: true },
            Format::PcapUs => OutputFormat::Pcap { nanos: false },
            Format::Pcapng => OutputFormat::Pcapng,
        }
    }
}

/// Relative weights of new sessions by kind (each finite and 0 or more, with a positive sum).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    /// HTTP/1.1 connections (several transactions each).
    #[serde(deserialize_with = "check::de::weight")]
    pub http: f64,
    /// TLS sessions (handshake, application data, closing alert).
    #[serde(deserialize_with = "check::de::weight")]
    pub tls: f64,
    /// Plain TCP bulk transfers (the elephants).
    #[serde(deserialize_with = "check::de::weight")]
    pub bulk: f64,
    /// DNS query/response exchanges over UDP.
    #[serde(deserialize_with = "check::de::weight")]
    pub dns: f64,
    /// ICMP / ICMPv6 echo sessions (1-5 request/reply pairs with one identifier).
    #[serde(deserialize_with = "check::de::weight")]
    pub icmp_echo: f64,
    /// UDP probes answered by an ICMP / ICMPv6 error quoting them.
    #[serde(deserialize_with = "check::de::weight")]
    pub icmp_error: f64,
    /// DNS queries answered over UDP with the TC bit, then retried over TCP (default 0).
    #[serde(deserialize_with = "check::de::weight")]
    pub dns_tcp: f64,
    /// QUIC handshakes, version 1 (some version 2): Initial packets with known SNI/ALPN, then
    /// 1-RTT packets (default 0).
    #[serde(deserialize_with = "check::de::weight")]
    pub quic: f64,
}

impl Mix {
    /// The weights in session-kind order.
    fn weights(&self) -> [f64; 8] {
        [
            self.http,
            self.tls,
            self.bulk,
            self.dns,
            self.icmp_echo,
            self.icmp_error,
            self.dns_tcp,
            self.quic,
        ]
    }

    /// Checks every weight and their sum (the message names the weight at fault).
    pub fn check(&self) -> Result<(), String> {
        let names = [
            "http",
            "tls",
            "bulk",
            "dns",
            "icmp_echo",
            "icmp_error",
            "dns_tcp",
            "quic",
        ];
        for (n, w) in names.iter().zip(self.weights()) {
            check::weight(w).map_err(|m| format!("{n}: {m}"))?;
        }
        if self.weights().iter().sum::<f64>() > 0.0 {
            Ok(())
        } else {
            Err("the weights must have a positive sum".into())
        }
    }
}

/// Reads `mix:` and checks the sum of its weights inside the mapping's own visitor, so that a
/// YAML reader reports it at `mix` and its line.
fn de_mix<'de, D: Deserializer<'de>>(d: D) -> Result<Mix, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Mix;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a mapping of session kinds to weights")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Mix, A::Error> {
            let m = Mix::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
            m.check().map_err(serde::de::Error::custom)?;
            Ok(m)
        }
    }
    d.deserialize_map(V)
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            http: 30.0,
            tls: 22.0,
            bulk: 1.2,
            dns: 40.0,
            icmp_echo: 4.0,
            icmp_error: 1.5,
            dns_tcp: 0.0,
            quic: 0.0,
        }
    }
}

impl Mix {
    /// Names accepted by [`Mix::preset`].
    pub const PRESETS: &'static [&'static str] = &["default", "tls-heavy", "dns-heavy", "all"];

    /// A named mix: `default`; `tls-heavy` (mostly TLS over TCP and QUIC handshakes, for the
    /// TLS benchmark); `dns-heavy` (mostly DNS over UDP, with truncated answers retried over
    /// TCP, for the DNS benchmark); `all` (every kind, for tests).
    pub fn preset(name: &str) -> Option<Mix> {
        let zero = Mix {
            http: 0.0,
            tls: 0.0,
            bulk: 0.0,
            dns: 0.0,
            icmp_echo: 0.0,
            icmp_error: 0.0,
            dns_tcp: 0.0,
            quic: 0.0,
        };
        Some(match name {
            "default" => Mix::default(),
            "tls-heavy" => Mix {
                tls: 70.0,
                quic: 15.0,
                http: 5.0,
                dns: 10.0,
                bulk: 0.5,
                ..zero
            },
            "dns-heavy" => Mix {
                dns: 85.0,
                dns_tcp: 4.0,
                tls: 5.0,
                http: 5.0,
                icmp_echo: 1.0,
                ..zero
            },
            "all" => Mix {
                dns_tcp: 4.0,
                quic: 8.0,
                ..Mix::default()
            },
            _ => return None,
        })
    }
}

/// Generator settings; every field has a default, so a YAML/JSON config may name only a few.
/// Each value is checked against its bound ([`check`]) as it is read, so that a config file's
/// error names the key and the line; [`generate`] checks settings built in code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenConfig {
    /// Seed: the same seed and settings give a byte-identical capture.
    pub seed: u64,
    /// Stop after about this many frames (sessions in progress are finished first); at least 1.
    #[serde(deserialize_with = "check::de::target")]
    pub packets: Option<u64>,
    /// Stop once the capture file reaches about this many bytes; at least 1.
    #[serde(deserialize_with = "check::de::target")]
    pub bytes: Option<u64>,
    /// Output format.
    pub format: Format,
    /// Share of sessions whose frames carry VLAN tags.
    #[serde(deserialize_with = "check::de::share")]
    pub vlan_share: f64,
    /// Share of the VLAN-tagged sessions with two tags (802.1ad + 802.1Q).
    #[serde(deserialize_with = "check::de::share")]
    pub qinq_share: f64,
    /// Share of sessions over IPv6.
    #[serde(deserialize_with = "check::de::share")]
    pub ipv6_share: f64,
    /// Session kinds.
    #[serde(deserialize_with = "de_mix")]
    pub mix: Mix,
    /// Share of HTTP connections on 8080, 8000 or a random high port instead of 80.
    #[serde(deserialize_with = "check::de::share")]
    pub http_nonstandard_port_share: f64,
    /// Share of single HTTP requests whose header block is split across 2-3 TCP segments.
    #[serde(deserialize_with = "check::de::share")]
    pub http_split_share: f64,
    /// Share of frames that are exact duplicates of an earlier frame (below 0.5).
    #[serde(deserialize_with = "check::de::dup_share")]
    pub dup_share: f64,
    /// Sessions alive at once (fewer for small targets: at most one per 40 target packets);
    /// 1 to [`check::MAX_CONCURRENCY`].
    #[serde(deserialize_with = "check::de::concurrency")]
    pub concurrency: usize,
    /// Timestamp of the first frame, nanoseconds since the Unix epoch (0 to
    /// [`check::MAX_START_TIME_NS`]).
    #[serde(deserialize_with = "check::de::start_time_ns")]
    pub start_time_ns: i64,
    /// Mean frame rate (frames per second of capture time, 1 to 1e9).
    #[serde(deserialize_with = "check::de::packets_per_sec")]
    pub packets_per_sec: f64,
    /// Share of TCP sessions closed by RST instead of a FIN exchange.
    #[serde(deserialize_with = "check::de::share")]
    pub rst_share: f64,
    /// Upper bound of a single HTTP body or TLS response flight, in bytes (bulk transfers may be
    /// 8 times larger); lowered to 40 bytes per target packet for small targets. 1 KiB to
    /// 1 GiB.
    #[serde(deserialize_with = "check::de::max_body")]
    pub max_body: u64,
    /// Largest number of HTTP transactions / duplicates listed in the truth file (counts are
    /// always exact; beyond this the lists are dropped and `listed` is false).
    pub max_listed: usize,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            packets: None,
            bytes: None,
            format: Format::Pcap,
            vlan_share: 0.12,
            qinq_share: 0.25,
            ipv6_share: 0.2,
            mix: Mix::default(),
            http_nonstandard_port_share: 0.3,
            http_split_share: 0.08,
            dup_share: 0.05,
            concurrency: 256,
            start_time_ns: 1_700_000_000_000_000_000,
            packets_per_sec: 150_000.0,
            rst_share: 0.08,
            max_body: 2 << 20,
            max_listed: 100_000,
        }
    }
}

/// Frames generated when neither `packets` nor `bytes` is set.
pub const DEFAULT_PACKETS: u64 = 10_000;

/// Generator failures.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The output could not be written.
    #[error("write error: {0}")]
    Io(#[from] std::io::Error),
    /// The capture writer refused a packet.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A setting is out of range.
    #[error("invalid generator setting: {0}")]
    Config(String),
}

/// State shared by all sessions.
pub(crate) struct Ctx {
    pub rng: Rng,
    pub buf: Box<[u8; wire::MAX_FRAME]>,
    pub clock: i64,
    pub tpl: Templates,
    pub truth: Truth,
    pub draining: bool,
    pub rst_share: f64,
    pub split_share: f64,
    pub host_cdf: Vec<f64>,
    pub path_cdf: Vec<f64>,
    pub max_body: u64,
    pub max_listed: usize,
}

/// Client ports are taken from the Linux ephemeral range, skipping ports that tshark binds a
/// dissector to (so that random payloads are never dissected as something else).
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
const RESERVED_CLIENT_PORTS: &[u16] = &[
    34962, 34980, 37008, 41170, 44321, 44322, 44818, 45564, 47000, 47808, 48049, 48898, 49999,
    54328, 56000, 56001, 56500, 56501, 57000, 57001, 57032, 57033, 57500, 57501, 57532, 57533,
    59000, 59001, 59032, 59033, 59500, 59501, 59532, 59533, 60001,
];
/// High ports without a tshark dissector, candidates for HTTP on a random high port.
const HIGH_PORT_AVOID: &[u16] = &[
    20256, 20561, 21064, 22222, 23272, 24576, 24577, 24800, 25826, 26000, 27017, 27036, 27500,
    27910, 27950, 27951, 27952, 27953, 27960, 27961, 27962, 27963, 29418,
];
/// Bulk-transfer server ports without a tshark dissector.
const BULK_PORTS: &[u16] = &[5201, 5001, 9100, 4000, 7777];

const N_CLIENTS: usize = 3000;
const N_SERVERS: usize = 400;

struct Plan {
    kind_cdf: Vec<f64>,
    client_cdf: Vec<f64>,
    server_cdf: Vec<f64>,
    client_ports: Vec<u16>,
    high_ports: [u16; 3],
    started: u64,
    icmp_started: u64,
}

impl Plan {
    fn new(cfg: &GenConfig, rng: &mut Rng) -> Self {
        let m = &cfg.mix;
        let client_ports: Vec<u16> = EPHEMERAL
            .filter(|p| !RESERVED_CLIENT_PORTS.contains(p))
            .collect();
        let mut high_ports = [0u16; 3];
        for h in &mut high_ports {
            loop {
                let p = rng.range(20001, 29999) as u16;
                if !HIGH_PORT_AVOID.contains(&p) {
                    *h = p;
                    break;
                }
            }
        }
        Plan {
            kind_cdf: rng::cumulative(&[
                m.http,
                m.tls,
                m.bulk,
                m.dns,
                m.icmp_echo,
                m.icmp_error,
                m.dns_tcp,
                m.quic,
            ]),
            client_cdf: rng::zipf(N_CLIENTS, 0.9),
            server_cdf: rng::zipf(N_SERVERS, 1.1),
            client_ports,
            high_ports,
            started: 0,
            icmp_started: 0,
        }
    }

    /// Fills `slot` with a fresh session and records its flows in the truth.
    fn start(&mut self, cfg: &GenConfig, ctx: &mut Ctx, slot: &mut Session) {
        let kind = [
            Kind::Http,
            Kind::Tls,
            Kind::Bulk,
            Kind::Dns,
            Kind::Echo,
            Kind::IcmpErr,
            Kind::DnsTcp,
            Kind::Quic,
        ][ctx.rng.weighted(&self.kind_cdf)];
        let rng = &mut ctx.rng;
        let v6 = rng.chance(cfg.ipv6_share);
        let mut p = Path {
            v6,
            ..Default::default()
        };
        if rng.chance(cfg.vlan_share) {
            if rng.chance(cfg.qinq_share) {
                p.nvlan = 2;
                p.vlans = [
                    *rng.pick(&[100u16, 200, 300]),
                    *rng.pick(&[10u16, 20, 30, 40]),
                ];
            } else {
                p.nvlan = 1;
                p.vlans[0] = *rng.pick(&[10u16, 20, 30, 100, 200, 1000]);
            }
        }
        let n = self.started;
        self.started += 1;
        let np = self.client_ports.len() as u64;
        let epoch = n / np;
        let client_port = self.client_ports[(n % np) as usize];
        let ch = rng.weighted(&self.client_cdf) as u64;
        let sh = rng.weighted(&self.server_cdf) as u64;
        let icmp = matches!(kind, Kind::Echo | Kind::IcmpErr);
        // Client address: unique per (epoch, host) so that every session has its own 5-tuple.
        let client_id = if icmp {
            self.icmp_started += 1;
            self.icmp_started
        } else {
            ch
        };
        if v6 {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            if icmp {
                a[4..6].copy_from_slice(&[0x1c, 0x1c]);
                a[8..16].copy_from_slice(&client_id.to_be_bytes());
            } else {
                a[4..6].copy_from_slice(&[0x0c, 0x11]);
                a[6..8].copy_from_slice(&(epoch as u16).to_be_bytes());
                a[8..16].copy_from_slice(&(client_id + 1).to_be_bytes());
            }
            p.addr[0] = a;
            let mut s = [0u8; 16];
            s[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x00, 0x05]);
            s[14..16].copy_from_slice(&(sh as u16 + 1).to_be_bytes());
            p.addr[1] = s;
        } else {
            p.addr[0][..4].copy_from_slice(&if icmp {
                let k = client_id;
                [172, 16 + ((k >> 16) & 15) as u8, (k >> 8) as u8, k as u8]
            } else {
                [10, epoch as u8, (ch / 250) as u8, (ch % 250 + 2) as u8]
            });
            p.addr[1][..4].copy_from_slice(&[198, 18, (sh / 250) as u8, (sh % 250 + 1) as u8]);
        }
        p.mac[0] = [
            0x02,
            0x00,
            0x5e,
            (client_id >> 16) as u8,
            (client_id >> 8) as u8,
            client_id as u8,
        ];
        p.mac[1] = [0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x01];
        p.ttl = [
            *rng.pick(&[64u8, 128, 64]),
            *rng.pick(&[64u8, 128, 255, 52, 57, 116]),
        ];
        p.ipid = [rng.u32() as u16, rng.u32() as u16];
        p.flow_label = rng.u32() & 0xf_ffff;
        p.port = match kind {
            Kind::Http => {
                let port = if rng.chance(cfg.http_nonstandard_port_share) {
                    match rng.below(3) {
                        0 => 8080,
                        1 => 8000,
                        _ => *rng.pick(&self.high_ports),
                    }
                } else {
                    80
                };
                [client_port, port]
            }
            Kind::Tls => [client_port, if rng.chance(0.9) { 443 } else { 8443 }],
            Kind::Quic => [client_port, 443],
            Kind::Bulk => [client_port, *rng.pick(BULK_PORTS)],
            Kind::Dns | Kind::DnsTcp => {
                // A resolver, not one of the web servers.
                if v6 {
                    p.addr[1] = [
                        0x20, 0x01, 0x0d, 0xb8, 0, 0x53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
                    ];
                } else {
                    let r: [u8; 4] = if rng.chance(0.5) {
                        [192, 0, 2, 53]
                    } else {
                        [192, 0, 2, 54]
                    };
                    p.addr[1][..4].copy_from_slice(&r);
                }
                [client_port, 53]
            }
            Kind::IcmpErr => [client_port, 33434 + rng.below(60) as u16],
            Kind::Echo => [0, 0],
        };
        slot.reset(kind, p);
        if kind == Kind::IcmpErr {
            let k = self.icmp_started;
            let mut a = [0u8; 16];
            if v6 {
                a[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0x00, 0xff]);
                a[8..16].copy_from_slice(&k.to_be_bytes());
            } else {
                a[..4].copy_from_slice(&[
                    100,
                    64 + ((k >> 16) & 63) as u8,
                    (k >> 8) as u8,
                    k as u8,
                ]);
            }
            slot.set_aux_addr(a);
        }
        slot.init(ctx);
        // Flow accounting (canonical FlowKey semantics, see `Flows`).
        let f = &mut ctx.truth.flows;
        let (tcp, udp, icmp_flows) = match kind {
            Kind::Http | Kind::Tls | Kind::Bulk => (1, 0, 0),
            Kind::Dns | Kind::Quic => (0, 1, 0),
            // DNS over TCP: the UDP query that came back truncated, then the TCP retry.
            Kind::DnsTcp => (1, 1, 0),
            // Every request/reply pair of the session shares one key: one ICMP flow.
            Kind::Echo => (0, 0, 1),
            // The UDP probe, and the ICMP error quoting it (one-way: a flow of its own).
            Kind::IcmpErr => (0, 1, 1),
        };
        let total = tcp + udp + icmp_flows;
        f.total += total;
        f.tcp += tcp;
        f.udp += udp;
        if v6 {
            f.icmpv6 += icmp_flows;
            f.ipv6 += total;
        } else {
            f.icmp += icmp_flows;
        }
        if slot.path.nvlan > 0 {
            f.vlan += total;
        }
    }
}

/// A duplicate waiting to be written.
struct PendingDup {
    due: u64,
    orig: u64,
    frame: Frame,
    data: Box<[u8; wire::MAX_FRAME]>,
}

/// Writes frames, inserts duplicates and keeps the per-frame counters.
struct Emitter<'s, F> {
    sink: &'s mut F,
    dup_p: f64,
    mean_gap: f64,
    record_overhead: fn(usize) -> u64,
    dups: Vec<PendingDup>,
    /// Frame copies are recycled between `dups` and here without copying the bytes again.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<[u8; wire::MAX_FRAME]>>,
    index: u64,
}

fn pcap_overhead(len: usize) -> u64 {
    16 + len as u64
}

fn pcapng_overhead(len: usize) -> u64 {
    (32 + len + (4 - len % 4) % 4) as u64
}

impl<F: FnMut(Timestamp, &[u8]) -> Result<(), GenError>> Emitter<'_, F> {
    fn write(&mut self, t: &mut Truth, clock: i64, data: &[u8], f: Frame) -> Result<(), GenError> {
        if t.packets == 0 {
            t.first_ts_ns = clock;
        }
        t.last_ts_ns = clock;
        (self.sink)(Timestamp(clock), data)?;
        t.packets += 1;
        t.bytes += data.len() as u64;
        t.file_bytes += (self.record_overhead)(data.len());
        let c = &mut t.frames;
        c.vlan += (f.nvlan > 0) as u64;
        c.qinq += (f.nvlan > 1) as u64;
        c.ipv6 += f.v6 as u64;
        c.ipv4 += !f.v6 as u64;
        match f.proto {
            wire::proto::TCP => c.tcp += 1,
            wire::proto::UDP => c.udp += 1,
            wire::proto::ICMP => c.icmp += 1,
            _ => c.icmpv6 += 1,
        }
        c.padded += f.padded as u64;
        self.index += 1;
        Ok(())
    }

    /// Writes the frame in `ctx.buf`, then any duplicate that is due.
    fn emit(&mut self, ctx: &mut Ctx, f: Frame) -> Result<(), GenError> {
        ctx.clock += ctx.rng.exp(self.mean_gap).max(50.0) as i64;
        self.write(&mut ctx.truth, ctx.clock, &ctx.buf[..f.len], f)?;
        let orig = self.index - 1;
        if self.dups.len() < 2 && ctx.rng.chance(self.dup_p) {
            let mut data = self
                .spare
                .pop()
                .unwrap_or_else(|| Box::new([0; wire::MAX_FRAME]));
            data[..f.len].copy_from_slice(&ctx.buf[..f.len]);
            self.dups.push(PendingDup {
                due: orig + 1 + ctx.rng.below(3),
                orig,
                frame: f,
                data,
            });
        }
        self.flush_due(ctx, false)
    }

    fn flush_due(&mut self, ctx: &mut Ctx, all: bool) -> Result<(), GenError> {
        while !self.dups.is_empty() && (all || self.dups[0].due <= self.index) {
            let d = self.dups.remove(0);
            ctx.clock += ctx.rng.range(300, 3000) as i64;
            let dup_index = self.index;
            self.write(&mut ctx.truth, ctx.clock, &d.data[..d.frame.len], d.frame)?;
            let t = &mut ctx.truth.duplicates;
            t.frames += 1;
            t.bytes += d.frame.len as u64;
            if t.listed {
                if t.list.len() < ctx.max_listed {
                    t.list.push([d.orig, dup_index]);
                } else {
                    t.listed = false;
                    t.list = Vec::new();
                }
            }
            self.spare.push(d.data);
        }
        Ok(())
    }
}

/// Checks settings built in code (a config file's are checked as it is read); the error names
/// the field.
fn validate(cfg: &GenConfig) -> Result<(), GenError> {
    let field =
        |name: &str, r: Result<(), String>| r.map_err(|m| GenError::Config(format!("{name}: {m}")));
    for (name, v) in [
        ("vlan_share", cfg.vlan_share),
        ("qinq_share", cfg.qinq_share),
        ("ipv6_share", cfg.ipv6_share),
        (
            "http_nonstandard_port_share",
            cfg.http_nonstandard_port_share,
        ),
        ("http_split_share", cfg.http_split_share),
        ("rst_share", cfg.rst_share),
    ] {
        field(name, check::share(v).map(drop))?;
    }
    field("dup_share", check::dup_share(cfg.dup_share).map(drop))?;
    field(
        "concurrency",
        check::concurrency(cfg.concurrency as u64).map(drop),
    )?;
    field(
        "packets_per_sec",
        check::packets_per_sec(cfg.packets_per_sec).map(drop),
    )?;
    field("max_body", check::max_body(cfg.max_body).map(drop))?;
    field(
        "start_time_ns",
        check::start_time_ns(cfg.start_time_ns).map(drop),
    )?;
    for (name, v) in [("packets", cfg.packets), ("bytes", cfg.bytes)] {
        if let Some(v) = v {
            field(name, check::target(v).map(drop))?;
        }
    }
    field("mix", cfg.mix.check())
}

/// Generates raw Ethernet frames, handing each to `sink` with its timestamp, and returns the
/// truth. `file_bytes` in the truth assumes the capture format of `cfg.format`.
pub fn generate_frames<F>(cfg: &GenConfig, mut sink: F) -> Result<Truth, GenError>
where
    F: FnMut(Timestamp, &[u8]) -> Result<(), GenError>,
{
    validate(cfg)?;
    let mut rng = Rng::new(cfg.seed);
    let tpl = Templates::new(&mut rng);
    let mut truth = Truth {
        seed: cfg.seed,
        format: cfg.format.name().to_string(),
        ..Default::default()
    };
    truth.http.listed = true;
    truth.duplicates.listed = true;
    truth.tls.listed = true;
    truth.dns.listed = true;
    let (overhead, header): (fn(usize) -> u64, u64) = match cfg.format {
        Format::Pcapng => (pcapng_overhead, 48 + 32),
        _ => (pcap_overhead, 24),
    };
    truth.file_bytes = header;
    let mut ctx = Ctx {
        rng,
        buf: Box::new([0; wire::MAX_FRAME]),
        clock: cfg.start_time_ns,
        tpl,
        truth,
        draining: false,
        rst_share: cfg.rst_share,
        split_share: cfg.http_split_share,
        host_cdf: rng::zipf(vocab::HOSTS.len(), 1.0),
        path_cdf: rng::zipf(vocab::PATHS.len(), 0.8),
        max_body: cfg.max_body,
        max_listed: cfg.max_listed,
    };
    let mut plan = Plan::new(cfg, &mut ctx.rng);
    let target_packets = match (cfg.packets, cfg.bytes) {
        (None, None) => DEFAULT_PACKETS,
        (p, _) => p.unwrap_or(u64::MAX),
    };
    let target_bytes = cfg.bytes.unwrap_or(u64::MAX);
    // Small targets get fewer concurrent sessions and smaller bodies, so that finishing the
    // sessions in progress does not overshoot the target by much.
    let scale = target_packets.min(target_bytes / 600).max(1);
    let concurrency = cfg.concurrency.min((scale / 40).max(4) as usize);
    ctx.max_body = cfg.max_body.min((scale * 40).max(16 << 10));
    let mut em = Emitter {
        sink: &mut sink,
        dup_p: cfg.dup_share / (1.0 - cfg.dup_share),
        mean_gap: 1e9 / cfg.packets_per_sec,
        record_overhead: overhead,
        dups: Vec::with_capacity(2),
        spare: Vec::new(),
        index: 0,
    };
    let mut sessions: Vec<Session> = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let mut s = Session::default();
        plan.start(cfg, &mut ctx, &mut s);
        sessions.push(s);
    }
    while !sessions.is_empty() {
        if !ctx.draining
            && (ctx.truth.packets >= target_packets || ctx.truth.file_bytes >= target_bytes)
        {
            ctx.draining = true;
        }
        let i = ctx.rng.below(sessions.len() as u64) as usize;
        match sessions[i].step(&mut ctx) {
            Some(f) => em.emit(&mut ctx, f)?,
            None if ctx.draining => {
                sessions.swap_remove(i);
            }
            None => plan.start(cfg, &mut ctx, &mut sessions[i]),
        }
    }
    em.flush_due(&mut ctx, true)?;
    Ok(ctx.truth)
}

/// The interface description written for generated captures (Ethernet, 256 KiB snaplen).
pub fn interface() -> InterfaceInfo {
    InterfaceInfo {
        link: LinkType::ETHERNET,
        snaplen: 262_144,
        name: None,
        description: None,
        filter: None,
        ts_precision: 9,
    }
}

/// Generates into an open capture writer (its format is the caller's choice; `file_bytes` in
/// the truth assumes `cfg.format`).
pub fn generate_into<W: Write>(
    cfg: &GenConfig,
    writer: &mut CaptureWriter<W>,
) -> Result<Truth, GenError> {
    let ifaces = [interface()];
    let truth = generate_frames(cfg, |ts, data| {
        writer.write_packet(&Packet::whole(ts, LinkType::ETHERNET, data), &ifaces)?;
        Ok(())
    })?;
    writer.flush()?;
    Ok(truth)
}

/// Generates a capture in `cfg.format` into any byte sink (file, stdout, `Vec`) and returns the
/// truth; `truth.file_bytes` is the exact number of bytes written.
pub fn generate<W: Write>(cfg: &GenConfig, out: W) -> Result<Truth, GenError> {
    let info = interface();
    let mut w = CaptureWriter::new(out, cfg.format.output_format(), &[info])?;
    let truth = generate_into(cfg, &mut w)?;
    w.finish()?;
    Ok(truth)
}

/// Generates a whole capture in memory: `(file bytes, truth)`.
pub fn generate_to_vec(cfg: &GenConfig) -> Result<(Vec<u8>, Truth), GenError> {
    let mut v = Vec::new();
    let truth = generate(cfg, &mut v)?;
    Ok((v, truth))
}
