//! IPFIX (RFC 7011) export of ended flows to a NetFlow/IPFIX collector over UDP, as softflowd
//! does with `-v 10`.
//!
//! Each bidirectional [`EndedFlow`] becomes one uniflow data record per direction that carried
//! packets: the forward record (initiator → responder) always, the reverse record (key swapped,
//! reverse counters) only when the responder sent packets. Records use two fixed-length
//! templates, [`TEMPLATE_V4`] and [`TEMPLATE_V6`], made of standard IANA information elements
//! (see [`ie`] and [`V4_FIELDS`]/[`V6_FIELDS`]). The [`IpfixEncoder`] packs records into
//! messages no larger than a configured size (default 1400 bytes: one UDP datagram on a
//! 1500-byte MTU) in one reused buffer, and re-sends the templates every N messages and every T
//! seconds of wall time (RFC 7011 §8.4 and §10.3.6: a UDP collector that restarts, or lost the
//! template datagram, learns them again). The [`IpfixExporter`] owns a connected UDP socket and
//! counts what it sent and what failed; a collector that is down never stops the flow run.
//!
//! Nothing here allocates per record: a message is built in place and handed to the caller (or
//! the socket) as a byte slice.

use netspectra_flow::{EndReason, EndedFlow};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// IPFIX version number, the first field of every message header.
pub const VERSION: u16 = 10;
/// Template ID of IPv4 records (IDs below 256 are reserved for sets).
pub const TEMPLATE_V4: u16 = 256;
/// Template ID of IPv6 records (and of flows whose two addresses differ in family).
pub const TEMPLATE_V6: u16 = 257;
/// Set ID of a template set (RFC 7011 §3.3.2).
pub const TEMPLATE_SET_ID: u16 = 2;
/// Default maximum message size: one UDP datagram on a 1500-byte MTU path with room to spare.
pub const DEFAULT_MAX_MESSAGE: usize = 1400;
/// Default template refresh by count: templates go in every 16th message (softflowd's cadence).
pub const DEFAULT_TEMPLATE_EVERY_MESSAGES: u32 = 16;
/// Default template refresh by time: templates go out again after this much wall time.
pub const DEFAULT_TEMPLATE_INTERVAL: Duration = Duration::from_secs(60);

/// IANA IPFIX information element IDs used by the templates (what each field means).
pub mod ie {
    /// octetDeltaCount: IP bytes (IP total length) of the direction.
    pub const OCTET_DELTA_COUNT: u16 = 1;
    /// packetDeltaCount: packets of the direction.
    pub const PACKET_DELTA_COUNT: u16 = 2;
    /// protocolIdentifier: IP protocol number.
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    /// tcpControlBits: TCP flags seen in the direction (0 for other protocols).
    pub const TCP_CONTROL_BITS: u16 = 6;
    /// sourceTransportPort: source port (0 for ICMP and protocols without ports).
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    /// sourceIPv4Address: source address of IPv4 records.
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    /// destinationTransportPort: destination port (0 for ICMP and protocols without ports).
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    /// destinationIPv4Address: destination address of IPv4 records.
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    /// sourceIPv6Address: source address of IPv6 records.
    pub const SOURCE_IPV6_ADDRESS: u16 = 27;
    /// destinationIPv6Address: destination address of IPv6 records.
    pub const DESTINATION_IPV6_ADDRESS: u16 = 28;
    /// icmpTypeCodeIPv4: ICMP type * 256 + code in IPv4 records (0 for other protocols).
    pub const ICMP_TYPE_CODE_IPV4: u16 = 32;
    /// vlanId: outer VLAN id (0 when untagged).
    pub const VLAN_ID: u16 = 58;
    /// flowEndReason: why the flow ended (see [`crate::end_reason_code`]).
    pub const FLOW_END_REASON: u16 = 136;
    /// icmpTypeCodeIPv6: ICMPv6 type * 256 + code in IPv6 records (0 for other protocols).
    pub const ICMP_TYPE_CODE_IPV6: u16 = 139;
    /// flowStartMilliseconds: first packet, milliseconds since the UNIX epoch.
    pub const FLOW_START_MILLISECONDS: u16 = 152;
    /// flowEndMilliseconds: last packet, milliseconds since the UNIX epoch.
    pub const FLOW_END_MILLISECONDS: u16 = 153;
}

/// Fields of the IPv4 template as (element ID, length), in record order (8-byte fields first).
pub const V4_FIELDS: [(u16, u16); 13] = [
    (ie::FLOW_START_MILLISECONDS, 8),
    (ie::FLOW_END_MILLISECONDS, 8),
    (ie::OCTET_DELTA_COUNT, 8),
    (ie::PACKET_DELTA_COUNT, 8),
    (ie::SOURCE_IPV4_ADDRESS, 4),
    (ie::DESTINATION_IPV4_ADDRESS, 4),
    (ie::SOURCE_TRANSPORT_PORT, 2),
    (ie::DESTINATION_TRANSPORT_PORT, 2),
    (ie::ICMP_TYPE_CODE_IPV4, 2),
    (ie::VLAN_ID, 2),
    (ie::TCP_CONTROL_BITS, 2),
    (ie::PROTOCOL_IDENTIFIER, 1),
    (ie::FLOW_END_REASON, 1),
];

/// Fields of the IPv6 template as (element ID, length), in record order.
pub const V6_FIELDS: [(u16, u16); 13] = [
    (ie::FLOW_START_MILLISECONDS, 8),
    (ie::FLOW_END_MILLISECONDS, 8),
    (ie::OCTET_DELTA_COUNT, 8),
    (ie::PACKET_DELTA_COUNT, 8),
    (ie::SOURCE_IPV6_ADDRESS, 16),
    (ie::DESTINATION_IPV6_ADDRESS, 16),
    (ie::SOURCE_TRANSPORT_PORT, 2),
    (ie::DESTINATION_TRANSPORT_PORT, 2),
    (ie::ICMP_TYPE_CODE_IPV6, 2),
    (ie::VLAN_ID, 2),
    (ie::TCP_CONTROL_BITS, 2),
    (ie::PROTOCOL_IDENTIFIER, 1),
    (ie::FLOW_END_REASON, 1),
];

const fn record_len(fields: &[(u16, u16)]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < fields.len() {
        n += fields[i].1 as usize;
        i += 1;
    }
    n
}

/// Bytes of one IPv4 data record.
pub const V4_RECORD_LEN: usize = record_len(&V4_FIELDS);
/// Bytes of one IPv6 data record.
pub const V6_RECORD_LEN: usize = record_len(&V6_FIELDS);
/// Bytes of the message header.
pub const HEADER_LEN: usize = 16;
const SET_HEADER_LEN: usize = 4;
/// Bytes of the template set that carries both templates.
pub const TEMPLATE_SET_LEN: usize =
    SET_HEADER_LEN + 2 * 4 + 4 * V4_FIELDS.len() + 4 * V6_FIELDS.len();
/// Smallest allowed maximum message size: header, both templates and one IPv6 record.
pub const MIN_MESSAGE: usize = HEADER_LEN + TEMPLATE_SET_LEN + SET_HEADER_LEN + V6_RECORD_LEN;
/// Largest allowed maximum message size (the header's 16-bit length field).
pub const MAX_MESSAGE: usize = u16::MAX as usize;

/// The IPFIX flowEndReason (IE 136) code of an end reason: idle → 1 (idle timeout), active →
/// 2 (active timeout), FIN or RST → 3 (end of flow detected), end of input or stop → 4 (forced
/// end), table full eviction → 5 (lack of resources).
pub fn end_reason_code(r: EndReason) -> u8 {
    match r {
        EndReason::Idle => 1,
        EndReason::Active => 2,
        EndReason::Fin | EndReason::Rst => 3,
        EndReason::EndOfInput | EndReason::Shutdown => 4,
        EndReason::TableFull => 5,
    }
}

/// Errors of the IPFIX exporter: bad settings or collector address, or a socket that cannot
/// be opened.
#[derive(Debug, thiserror::Error)]
pub enum IpfixError {
    /// The collector URL has a scheme other than `ipfix` or `ipfix+udp`.
    #[error("unsupported scheme {0:?} (use ipfix://HOST:PORT or ipfix+udp://HOST:PORT)")]
    Scheme(String),
    /// The collector URL is not `SCHEME://HOST:PORT`.
    #[error("{0:?} is not a collector URL of the form ipfix://HOST:PORT")]
    Url(String),
    /// The collector host name did not resolve.
    #[error("cannot resolve collector {addr}: {source}")]
    Resolve {
        /// The `HOST:PORT` that failed.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The maximum message size is outside [`MIN_MESSAGE`]..=[`MAX_MESSAGE`].
    #[error("maximum IPFIX message size {0} is outside {MIN_MESSAGE}..={MAX_MESSAGE} bytes")]
    MessageSize(usize),
    /// The template refresh count is 0.
    #[error("template refresh must be every 1 or more messages")]
    TemplateEvery,
    /// Opening or connecting the UDP socket failed.
    #[error("opening the export socket to {addr}: {source}")]
    Socket {
        /// The collector.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// Parses a collector URL, `ipfix://HOST:PORT` or `ipfix+udp://HOST:PORT` (IPv6 hosts in
/// brackets), into the `HOST:PORT` part to resolve.
pub fn parse_collector_url(url: &str) -> Result<&str, IpfixError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(IpfixError::Url(url.to_string()));
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "ipfix" | "ipfix+udp") {
        return Err(IpfixError::Scheme(scheme.to_string()));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let ok = match rest.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains('/')
                && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
                && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    };
    if ok {
        Ok(rest)
    } else {
        Err(IpfixError::Url(url.to_string()))
    }
}

/// Resolves a collector URL (see [`parse_collector_url`]) to its first socket address.
pub fn resolve_collector(url: &str) -> Result<SocketAddr, IpfixError> {
    let addr = parse_collector_url(url)?;
    let resolve_err = |source| IpfixError::Resolve {
        addr: addr.to_string(),
        source,
    };
    addr.to_socket_addrs()
        .map_err(resolve_err)?
        .next()
        .ok_or_else(|| resolve_err(io::Error::new(io::ErrorKind::NotFound, "no address")))
}

/// Encoder settings: observation domain, message size bound and template refresh cadence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Observation domain ID written in every message header.
    pub observation_domain: u32,
    /// Largest message in bytes, headers included ([`MIN_MESSAGE`]..=[`MAX_MESSAGE`]).
    pub max_message: usize,
    /// Templates are re-sent in every message whose index is a multiple of this (≥ 1).
    pub template_every_messages: u32,
    /// Templates are also re-sent in the first message started this long after the last ones.
    pub template_interval: Duration,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            observation_domain: 0,
            max_message: DEFAULT_MAX_MESSAGE,
            template_every_messages: DEFAULT_TEMPLATE_EVERY_MESSAGES,
            template_interval: DEFAULT_TEMPLATE_INTERVAL,
        }
    }
}

/// One finished IPFIX message as handed to the caller of the encoder.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The whole message: header, sets and records.
    pub bytes: &'a [u8],
    /// Data records in it.
    pub records: u32,
    /// True when it carries the template set.
    pub with_templates: bool,
}

/// Builds IPFIX messages from ended flows in one reused buffer; finished messages go to a
/// callback, so the encoder knows nothing of sockets and is testable byte for byte.
#[derive(Debug)]
pub struct IpfixEncoder {
    cfg: EncoderConfig,
    buf: Vec<u8>,
    /// A message (its header) is under construction in `buf`.
    open: bool,
    /// Offset and template ID of the data set being filled.
    set: Option<(usize, u16)>,
    msg_records: u32,
    msg_templates: bool,
    /// Data records in all finished messages, modulo 2^32: the next message's sequence number.
    sequence: u32,
    messages: u64,
    records: u64,
    /// Messages finished since the last one that carried templates (`None`: never sent).
    since_templates: Option<u32>,
    templates_at: SystemTime,
    now: SystemTime,
}

impl IpfixEncoder {
    /// An encoder with these settings (rejects a message size or refresh count out of range).
    pub fn new(cfg: EncoderConfig) -> Result<Self, IpfixError> {
        if !(MIN_MESSAGE..=MAX_MESSAGE).contains(&cfg.max_message) {
            return Err(IpfixError::MessageSize(cfg.max_message));
        }
        if cfg.template_every_messages == 0 {
            return Err(IpfixError::TemplateEvery);
        }
        Ok(IpfixEncoder {
            buf: Vec::with_capacity(cfg.max_message),
            cfg,
            open: false,
            set: None,
            msg_records: 0,
            msg_templates: false,
            sequence: 0,
            messages: 0,
            records: 0,
            since_templates: None,
            templates_at: UNIX_EPOCH,
            now: UNIX_EPOCH,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// Messages finished so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Data records in finished messages so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Data records waiting in the open (partial) message.
    pub fn pending_records(&self) -> u32 {
        self.msg_records
    }

    /// Encodes a batch of flows at wall time `now` (the export time of the messages it
    /// finishes, and the clock of the time-based template refresh). Full messages go to
    /// `emit`; the last, partial one stays open for the next batch or [`IpfixEncoder::flush`].
    /// IPv4 flows of the batch are encoded before IPv6 flows, so data sets stay long.
    pub fn encode(
        &mut self,
        flows: &[EndedFlow],
        now: SystemTime,
        emit: &mut impl FnMut(Message<'_>),
    ) {
        self.now = now;
        for v6 in [false, true] {
            for f in flows.iter().filter(|f| is_v6(f) == v6) {
                self.put(f, 0, v6, emit);
                if f.packets[1] > 0 {
                    self.put(f, 1, v6, emit);
                }
            }
        }
    }

    /// Finishes the open message, if any, at wall time `now` and hands it to `emit`.
    pub fn flush(&mut self, now: SystemTime, emit: &mut impl FnMut(Message<'_>)) {
        self.now = now;
        if self.open {
            self.finish(emit);
        }
    }

    /// Adds the record of direction `dir` (0 forward, 1 reverse) of `f`.
    fn put(&mut self, f: &EndedFlow, dir: usize, v6: bool, emit: &mut impl FnMut(Message<'_>)) {
        let (tid, len) = if v6 {
            (TEMPLATE_V6, V6_RECORD_LEN)
        } else {
            (TEMPLATE_V4, V4_RECORD_LEN)
        };
        let same_set = self.set.is_some_and(|(_, t)| t == tid);
        let need = len + if same_set { 0 } else { SET_HEADER_LEN };
        if self.open && self.buf.len() + need > self.cfg.max_message {
            self.finish(emit);
        }
        if !self.open {
            self.start();
        }
        if self.set.is_none_or(|(_, t)| t != tid) {
            self.close_set();
            self.set = Some((self.buf.len(), tid));
            self.buf.extend_from_slice(&tid.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
        }
        write_record(&mut self.buf, f, dir, v6);
        self.msg_records += 1;
    }

    /// Writes the header (length, export time filled in at the end) and, when due, the
    /// template set.
    fn start(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&VERSION.to_be_bytes());
        self.buf.extend_from_slice(&[0; 6]); // length, export time: set by finish()
        self.buf.extend_from_slice(&self.sequence.to_be_bytes());
        self.buf
            .extend_from_slice(&self.cfg.observation_domain.to_be_bytes());
        let due = match self.since_templates {
            None => true,
            Some(n) => {
                n >= self.cfg.template_every_messages
                    // A clock stepped back counts as due, so templates are never held back.
                    || self
                        .now
                        .duration_since(self.templates_at)
                        .map_or(true, |d| d >= self.cfg.template_interval)
            }
        };
        self.msg_templates = due;
        if due {
            self.since_templates = Some(0);
            self.templates_at = self.now;
            self.buf.extend_from_slice(&TEMPLATE_SET_ID.to_be_bytes());
            self.buf
                .extend_from_slice(&(TEMPLATE_SET_LEN as u16).to_be_bytes());
            for (tid, fields) in [(TEMPLATE_V4, &V4_FIELDS), (TEMPLATE_V6, &V6_FIELDS)] {
                self.buf.extend_from_slice(&tid.to_be_bytes());
                self.buf
                    .extend_from_slice(&(fields.len() as u16).to_be_bytes());
                for (id, len) in fields {
                    self.buf.extend_from_slice(&id.to_be_bytes());
                    self.buf.extend_from_slice(&len.to_be_bytes());
                }
            }
        }
        self.open = true;
    }

    /// Writes the length of the data set being filled.
    fn close_set(&mut self) {
        if let Some((at, _)) = self.set.take() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    fn finish(&mut self, emit: &mut impl FnMut(Message<'_>)) {
        self.close_set();
        let len = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        let secs = self
            .now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs().min(u32::MAX as u64) as u32);
        self.buf[4..8].copy_from_slice(&secs.to_be_bytes());
        emit(Message {
            bytes: &self.buf,
            records: self.msg_records,
            with_templates: self.msg_templates,
        });
        self.sequence = self.sequence.wrapping_add(self.msg_records);
        self.records += u64::from(self.msg_records);
        self.messages += 1;
        self.since_templates = self.since_templates.map(|n| n.saturating_add(1));
        self.msg_records = 0;
        self.open = false;
        self.buf.clear();
    }
}

/// True when the flow goes in an IPv6 record: either address is IPv6 (an IPv4 address beside
/// an IPv6 one is written v4-mapped).
fn is_v6(f: &EndedFlow) -> bool {
    f.key.src.is_ipv6() || f.key.dst.is_ipv6()
}

/// Milliseconds since the epoch of a nanosecond time (floored; times before 1970 become 0).
fn millis(ns: i64) -> u64 {
    ns.div_euclid(1_000_000).max(0) as u64
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(x) => x.to_ipv6_mapped().octets(),
        IpAddr::V6(x) => x.octets(),
    }
}

fn v4_octets(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(x) => x.octets(),
        // Not reached: IPv4 records have two IPv4 addresses.
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED.octets(),
    }
}

/// Appends one record in the field order of [`V4_FIELDS`] or [`V6_FIELDS`]. The reverse
/// direction swaps addresses and ports. ICMP/ICMPv6 go in the ICMP field (both ports 0) with
/// the type and code that direction's packets carried, as softflowd reports them: a paired
/// flow's key holds the request type (forward) and the reply type (reverse), its codes are in
/// [`EndedFlow::icmp_code`]; a one-way key holds the type and code.
fn write_record(buf: &mut Vec<u8>, f: &EndedFlow, dir: usize, v6: bool) {
    let k = &f.key;
    let (src, dst, sp, dp) = if dir == 0 {
        (k.src, k.dst, k.src_port, k.dst_port)
    } else {
        (k.dst, k.src, k.dst_port, k.src_port)
    };
    let (sp, dp, icmp) = if matches!(k.proto, 1 | 58) {
        let (ty, code) = if k.is_one_way_icmp() {
            (k.src_port, k.dst_port)
        } else {
            (sp, u16::from(f.icmp_code[dir]))
        };
        // ICMP type and code are octets.
        (0u16, 0u16, u16::from(ty as u8) << 8 | u16::from(code as u8))
    } else {
        (sp, dp, 0)
    };
    buf.extend_from_slice(&millis(f.first).to_be_bytes());
    buf.extend_from_slice(&millis(f.last).to_be_bytes());
    buf.extend_from_slice(&f.ip_bytes[dir].to_be_bytes());
    buf.extend_from_slice(&f.packets[dir].to_be_bytes());
    if v6 {
        buf.extend_from_slice(&v6_octets(src));
        buf.extend_from_slice(&v6_octets(dst));
    } else {
        buf.extend_from_slice(&v4_octets(src));
        buf.extend_from_slice(&v4_octets(dst));
    }
    buf.extend_from_slice(&sp.to_be_bytes());
    buf.extend_from_slice(&dp.to_be_bytes());
    buf.extend_from_slice(&icmp.to_be_bytes());
    buf.extend_from_slice(&k.vlan.unwrap_or(0).to_be_bytes());
    buf.extend_from_slice(&u16::from(f.tcp_flags[dir]).to_be_bytes());
    buf.push(k.proto);
    buf.push(end_reason_code(f.reason));
}

/// What an exporter sent and what failed, for the run's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Datagrams (messages) the kernel accepted for sending.
    pub messages: u64,
    /// Data records in those datagrams.
    pub records: u64,
    /// Bytes of those datagrams (IPFIX messages, without UDP/IP headers).
    pub bytes: u64,
    /// Datagrams whose send failed (e.g. connection refused: nothing listens at the collector).
    pub send_errors: u64,
    /// Data records in the datagrams that failed.
    pub records_lost: u64,
    /// Kind of the last send error.
    pub last_error: Option<io::ErrorKind>,
}

/// Exporter settings: the encoder's, plus optional pacing of datagrams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExporterConfig {
    /// Message encoding and template refresh.
    pub encoder: EncoderConfig,
    /// At most this many datagrams per second (`None`: as fast as the flows come). Pacing
    /// keeps a burst (the final flush of a large capture) from overflowing the socket buffer
    /// of a collector on the same host, which drops what does not fit.
    pub max_rate: Option<u32>,
}

/// Sends IPFIX messages of ended flows to one collector over a connected UDP socket; send
/// errors are counted, never returned, so a collector that is down does not stop a flow run.
#[derive(Debug)]
pub struct IpfixExporter {
    peer: SocketAddr,
    encoder: IpfixEncoder,
    sender: Sender,
}

impl IpfixExporter {
    /// Opens a UDP socket connected to the collector at `peer`.
    pub fn connect(peer: SocketAddr, cfg: ExporterConfig) -> Result<Self, IpfixError> {
        let encoder = IpfixEncoder::new(cfg.encoder)?;
        let socket_err = |source| IpfixError::Socket { addr: peer, source };
        let local: SocketAddr = match peer {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).map_err(socket_err)?;
        socket.connect(peer).map_err(socket_err)?;
        Ok(IpfixExporter {
            peer,
            encoder,
            sender: Sender {
                socket,
                stats: ExportStats::default(),
                gap: cfg
                    .max_rate
                    .filter(|&r| r > 0)
                    .map(|r| Duration::from_secs(1) / r),
                next_send: Instant::now(),
            },
        })
    }

    /// The collector's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The local address of the export socket (the source of the datagrams).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sender.socket.local_addr()
    }

    /// Encodes a batch of ended flows and sends every message it fills; the last, partial
    /// message waits for the next batch or [`IpfixExporter::flush`].
    pub fn export(&mut self, flows: &[EndedFlow]) {
        let sender = &mut self.sender;
        self.encoder
            .encode(flows, SystemTime::now(), &mut |m| sender.send(m));
    }

    /// Sends the partial message, if any.
    pub fn flush(&mut self) {
        let sender = &mut self.sender;
        self.encoder
            .flush(SystemTime::now(), &mut |m| sender.send(m));
    }

    /// What was sent and what failed so far.
    pub fn stats(&self) -> ExportStats {
        self.sender.stats
    }
}

/// The exporter's socket side: paces datagrams and counts what was sent and what failed.
#[derive(Debug)]
struct Sender {
    socket: UdpSocket,
    stats: ExportStats,
    /// Time between datagrams when `--export-rate` paces them.
    gap: Option<Duration>,
    next_send: Instant,
}

impl Sender {
    /// Sends one datagram (after waiting for its slot when paced) and counts the outcome.
    fn send(&mut self, m: Message<'_>) {
        if let Some(gap) = self.gap {
            let now = Instant::now();
            if self.next_send > now {
                std::thread::sleep(self.next_send - now);
            } else if now.duration_since(self.next_send) > 10 * gap {
                // Idle for a while: start a new schedule instead of bursting to catch up.
                self.next_send = now;
            }
            self.next_send += gap;
        }
        let stats = &mut self.stats;
        match self.socket.send(m.bytes) {
            Ok(_) => {
                stats.messages += 1;
                stats.records += u64::from(m.records);
                stats.bytes += m.bytes.len() as u64;
            }
            Err(e) => {
                stats.send_errors += 1;
                stats.records_lost += u64::from(m.records);
                stats.last_error = Some(e.kind());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_urls() {
        assert_eq!(
            parse_collector_url("ipfix://127.0.0.1:4739").unwrap(),
            "127.0.0.1:4739"
        );
        assert_eq!(
            parse_collector_url("ipfix+udp://[::1]:2055/").unwrap(),
            "[::1]:2055"
        );
        assert_eq!(
            parse_collector_url("IPFIX://collector.example:9995").unwrap(),
            "collector.example:9995"
        );
        assert!(matches!(
            parse_collector_url("netflow://127.0.0.1:2055"),
            Err(IpfixError::Scheme(s)) if s == "netflow"
        ));
        assert!(matches!(
            parse_collector_url("ipfix+tcp://127.0.0.1:2055"),
            Err(IpfixError::Scheme(_))
        ));
        for bad in [
            "127.0.0.1:2055",
            "ipfix://127.0.0.1",
            "ipfix://:2055",
            "ipfix://127.0.0.1:0",
            "ipfix://127.0.0.1:70000",
            "ipfix://::1:2055",
            "ipfix://host/path:1",
        ] {
            assert!(
                matches!(parse_collector_url(bad), Err(IpfixError::Url(_))),
                "{bad}"
            );
        }
        assert_eq!(
            resolve_collector("ipfix://127.0.0.1:4739").unwrap(),
            "127.0.0.1:4739".parse().unwrap()
        );
    }

    #[test]
    fn sizes_add_up() {
        assert_eq!(V4_RECORD_LEN, 52);
        assert_eq!(V6_RECORD_LEN, 76);
        assert_eq!(TEMPLATE_SET_LEN, 4 + 2 * (4 + 13 * 4));
        assert!(IpfixEncoder::new(EncoderConfig {
            max_message: MIN_MESSAGE - 1,
            ..Default::default()
        })
        .is_err());
        assert!(IpfixEncoder::new(EncoderConfig {
            template_every_messages: 0,
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn reason_codes() {
        let codes: Vec<u8> = EndReason::ALL.iter().map(|&r| end_reason_code(r)).collect();
        // Fin, Rst, Idle, Active, TableFull, EndOfInput, Shutdown (RFC 5102 flowEndReason:
        // 4 is "forced end")
        assert_eq!(codes, [3, 3, 1, 2, 5, 4, 4]);
    }
}

/// The exporter as a sink of the flow stream, under the common delivery runner.
pub mod sink {
    use super::{ExportStats, IpfixExporter};
    use netspectra_sinks::sink::{Closed, DeliverError, Routes, Sink};
    use netspectra_sinks::stream::{Batch, Payload, StreamKind};
    use std::sync::{Arc, Mutex};

    /// Sends every batch of ended flows to the collector (one uniflow record per direction);
    /// send failures are counted in the shared [`ExportStats`], never stop the run.
    pub struct IpfixSink {
        url: String,
        exporter: IpfixExporter,
        stats: Arc<Mutex<ExportStats>>,
    }

    impl IpfixSink {
        /// A sink named `url` around an open exporter; the stats are shared with the caller.
        pub fn new(url: &str, exporter: IpfixExporter) -> (IpfixSink, Arc<Mutex<ExportStats>>) {
            let stats = Arc::new(Mutex::new(exporter.stats()));
            (
                IpfixSink {
                    url: url.to_string(),
                    exporter,
                    stats: Arc::clone(&stats),
                },
                stats,
            )
        }

        fn publish(&self) {
            if let Ok(mut s) = self.stats.lock() {
                *s = self.exporter.stats();
            }
        }
    }

    impl Sink for IpfixSink {
        fn name(&self) -> String {
            self.url.clone()
        }

        fn routes(&self) -> Routes {
            Routes::kinds(&[StreamKind::Flows])
        }

        fn takes_json(&self) -> bool {
            false
        }

        fn deliver(&mut self, b: &Batch) -> Result<(), DeliverError> {
            if let Payload::Flows(flows) = &b.payload {
                // A batch's records are sent whole (the last partial message included): in a
                // live capture no record waits for the next batch.
                self.exporter.export(flows);
                self.exporter.flush();
                self.publish();
            }
            Ok(())
        }

        fn close(&mut self, _complete: bool) -> Result<Closed, DeliverError> {
            self.exporter.flush();
            self.publish();
            Ok(Closed::default())
        }
    }
}
