//! The probe's YAML configuration (`examples/probe.yaml` shows and explains every key).
//!
//! Unknown keys are errors; every error names the key and, where the YAML parser or a search of
//! the text can tell, the line. Values are checked against documented bounds before anything
//! starts.

use netspectra_flow::config::{parse_duration, Dur, FileConfig};
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;

/// A byte size: a number, or a string with a unit (`64k`, `256M`, `10G`; powers of 1024).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

/// Parses `4096`, `64k`, `256M`, `10G`, `1T` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad size '{s}' (e.g. 4096, 64k, 256M, 10G)"))?;
    let mul: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => return Err(format!("bad size unit '{u}' in '{s}'")),
    };
    n.checked_mul(mul)
        .ok_or_else(|| format!("size '{s}' out of range"))
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size: bytes, or a number with k, M, G or T")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("negative size {v}")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `probe:` — who this probe is.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Name stored with every record (ClickHouse `probe` column, bus subjects).
    #[serde(default = "default_name")]
    pub name: String,
    /// Site name (bus subjects).
    #[serde(default = "default_site")]
    pub site: String,
}

fn default_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "probe".into())
}

fn default_site() -> String {
    "default".into()
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            name: default_name(),
            site: default_site(),
        }
    }
}

/// One interface to capture from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSection {
    /// Interface name.
    pub name: String,
    /// Sockets of its fanout group (worker threads), 1..=64.
    #[serde(default = "one")]
    pub threads: usize,
    /// tcpdump filter expression, applied in the kernel.
    pub filter: Option<String>,
    /// Ring block size per socket.
    pub block_size: Option<Size>,
    /// Ring blocks per socket.
    pub blocks: Option<u32>,
    /// Bytes captured per packet (0: whole packets).
    #[serde(default)]
    pub snaplen: u32,
    /// Promiscuous mode.
    #[serde(default = "yes")]
    pub promisc: bool,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// `capture:` — the interfaces.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSection {
    /// Interfaces (each its own fanout group).
    #[serde(default)]
    pub interfaces: Vec<InterfaceSection>,
    /// Drop to this user once sockets and listeners are open (as tcpdump -Z).
    pub user: Option<String>,
}

/// `analyses.http:` — the `http` command's options.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// One record per transaction.
    #[serde(default)]
    pub paired: bool,
    /// Extra headers recorded in `headers`.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Record every header.
    #[serde(default)]
    pub all_headers: bool,
    /// Headers whose values are replaced by their length.
    #[serde(default = "default_redact")]
    pub redact: Vec<String>,
    /// Cap on header name length.
    pub max_name_len: Option<usize>,
    /// Cap on header value and URI length.
    pub max_value_len: Option<usize>,
    /// Connections tracked per worker.
    pub max_connections: Option<usize>,
    /// Reassembly buffer per direction.
    pub max_header_bytes: Option<usize>,
    /// Pipelined requests waiting per connection.
    pub max_pipeline: Option<usize>,
    /// Idle timeout of a connection.
    pub idle_timeout: Option<Dur>,
    /// Parse User-Agent strings.
    #[serde(default = "yes")]
    pub user_agent: bool,
    /// Look for HTTP inside tunnels.
    #[serde(default = "yes")]
    pub tunnels: bool,
}

fn default_redact() -> Vec<String> {
    vec!["authorization".into(), "cookie".into(), "set-cookie".into()]
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            paired: false,
            headers: Vec::new(),
            all_headers: false,
            redact: default_redact(),
            max_name_len: None,
            max_value_len: None,
            max_connections: None,
            max_header_bytes: None,
            max_pipeline: None,
            idle_timeout: None,
            user_agent: true,
            tunnels: true,
        }
    }
}

/// `analyses.tls:` — the `tls` command's options (unset keys keep their defaults).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// TLS-over-TCP connections tracked per worker.
    pub max_connections: Option<usize>,
    /// Idle timeout of a TLS connection.
    pub idle_timeout: Option<Dur>,
    /// QUIC connections tracked per worker.
    pub max_quic_connections: Option<usize>,
    /// Idle timeout of a QUIC connection.
    pub quic_idle_timeout: Option<Dur>,
    /// Largest handshake message reassembled.
    pub max_handshake_bytes: Option<Size>,
    /// Largest QUIC CRYPTO prefix reassembled.
    pub max_crypto_bytes: Option<Size>,
    /// Certificates kept per record.
    pub max_certs: Option<usize>,
    /// Read QUIC Initial packets (default true).
    pub quic: Option<bool>,
}

/// `analyses.dns:` — the `dns` command's options (unset keys keep their defaults).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    /// Transactions remembered per worker.
    pub max_transactions: Option<usize>,
    /// A query unanswered this long is recorded as unanswered.
    pub query_timeout: Option<Dur>,
    /// DNS-over-TCP connections tracked per worker.
    pub max_tcp_connections: Option<usize>,
    /// Records kept per section of a transaction.
    pub max_records: Option<usize>,
    /// Look for DNS off its usual ports, by content (default true).
    pub detect_off_port: Option<bool>,
}

/// `analyses:` — what runs (a missing section: not run).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysesSection {
    /// Flows, views and sketches (the `flows` configuration file's keys).
    pub flows: Option<FileConfig>,
    /// HTTP records.
    pub http: Option<HttpSection>,
    /// TLS and QUIC handshake records.
    pub tls: Option<TlsSection>,
    /// DNS transaction records.
    pub dns: Option<DnsSection>,
}

/// `anonymize:` — Crypto-PAn addresses in every record stream, as `sanitize` maps them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymizeSection {
    /// The key file `sanitize --key-file` uses (32 bytes or 64 hex digits).
    pub key_file: PathBuf,
    /// Remove the query string of HTTP URIs (`?` and after).
    #[serde(default)]
    pub strip_query: bool,
    /// Keep private addresses unchanged (sanitize's `--keep private`).
    #[serde(default)]
    pub keep_private: bool,
    /// Replace TLS server names (and certificate names) and DNS names by keyed tokens.
    #[serde(default)]
    pub hash_names: bool,
}

/// A queue and spool of one sink.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    /// Batches held in memory.
    pub batches: Option<usize>,
    /// Bytes held in memory.
    pub bytes: Option<Size>,
    /// What happens when memory and spool are full: `drop_newest` (default; never holds up
    /// the capture) or `block`.
    pub when_full: Option<String>,
    /// At shutdown, how long undelivered batches are still retried before they are left in
    /// the spool for the next run (default 10 s live, 120 s with --read).
    pub drain_timeout: Option<Dur>,
}

/// An on-disk spool.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Directory (created).
    pub dir: PathBuf,
    /// Most undelivered bytes kept.
    pub max: Size,
}

/// File rotation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateSection {
    /// New file after this many bytes.
    pub size: Option<Size>,
    /// New file after this long.
    pub every: Option<Dur>,
    /// Keep this many finished files per stream.
    pub keep: Option<usize>,
}

/// One sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "lowercase")]
pub enum SinkSection {
    /// Files under a folder.
    Files {
        /// Folder.
        dir: PathBuf,
        /// `jsonl` (default), `csv`, `tsv` or `parquet`.
        format: Option<String>,
        /// Streams written (default all).
        streams: Option<Vec<String>>,
        /// Rotation and retention.
        rotate: Option<RotateSection>,
        /// Queue.
        queue: Option<QueueSection>,
    },
    /// Standard output (JSON lines).
    Stdout {
        /// Streams written (default flows).
        streams: Option<Vec<String>>,
    },
    /// ClickHouse: `clickhouse://HOST[:PORT]/DB`, one table per stream.
    Clickhouse {
        /// Server and database.
        url: String,
        /// Streams sent (default all).
        streams: Option<Vec<String>>,
        /// Queue.
        queue: Option<QueueSection>,
        /// Spool.
        spool: Option<SpoolSection>,
    },
    /// The embedded store of one host (a SQLite file; no server): what `netspectra console`
    /// reads without `--clickhouse`.
    Store {
        /// The store file (created).
        path: PathBuf,
        /// Streams stored (default all).
        streams: Option<Vec<String>>,
        /// Queue.
        queue: Option<QueueSection>,
    },
    /// The NATS JetStream bus: `nats://HOST:PORT[,HOST:PORT...]`, one subject per stream
    /// (`netspectra.<site>.<probe>.<stream>`, docs/BUS.md).
    Nats {
        /// Servers (any nodes of the cluster).
        url: String,
        /// Streams sent (default all).
        streams: Option<Vec<String>>,
        /// Create the JetStream stream with this many replicas when it is missing (default:
        /// it must exist; a collector makes it).
        stream_replicas: Option<usize>,
        /// Queue.
        queue: Option<QueueSection>,
        /// Spool: what the bus has not acknowledged waits here (strongly advised).
        spool: Option<SpoolSection>,
    },
    /// An IPFIX collector (flow records): `ipfix://HOST:PORT`.
    Ipfix {
        /// Collector.
        url: String,
        /// Observation domain ID.
        #[serde(default)]
        domain: u32,
        /// Datagrams per second at most.
        rate: Option<u32>,
    },
}

/// `ring:` — the forensic ring buffer: the last minutes / gigabytes of raw packets as rotating
/// pcapng files, from the same capture.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingSection {
    /// Folder of the ring's files.
    pub dir: PathBuf,
    /// Size of one file.
    #[serde(default = "default_ring_file")]
    pub file_size: Size,
    /// Most bytes kept in all (oldest files deleted).
    pub max_total: Option<Size>,
    /// Oldest data kept.
    pub max_age: Option<Dur>,
}

fn default_ring_file() -> Size {
    Size(256 << 20)
}

/// `metrics:` — the Prometheus and health endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address (default 127.0.0.1:9464).
    #[serde(default = "default_metrics")]
    pub listen: String,
    /// Bearer token, required when the address is not loopback.
    pub token: Option<String>,
}

fn default_metrics() -> String {
    "127.0.0.1:9464".into()
}

/// `alerts:` — rules evaluated at each snapshot, and where their events go besides the sinks
/// that take the `alerts` stream.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSection {
    /// The rules.
    #[serde(default)]
    pub rules: Vec<netspectra_alerts::Rule>,
    /// Webhooks (JSON arrays of events, retried with back-off from a bounded queue).
    #[serde(default)]
    pub webhooks: Vec<netspectra_alerts::webhook::WebhookConfig>,
}

/// The whole probe configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Identity.
    #[serde(default)]
    pub probe: Identity,
    /// Interfaces.
    #[serde(default)]
    pub capture: CaptureSection,
    /// Analyses.
    #[serde(default)]
    pub analyses: AnalysesSection,
    /// Record anonymization.
    pub anonymize: Option<AnonymizeSection>,
    /// Sinks.
    #[serde(default)]
    pub sinks: Vec<SinkSection>,
    /// Forensic ring buffer.
    pub ring: Option<RingSection>,
    /// Metrics and health endpoint.
    pub metrics: Option<MetricsSection>,
    /// Alert rules.
    pub alerts: Option<AlertsSection>,
    /// The eBPF guard, run by the probe (the keys of `netspectra guard run`'s flags).
    pub guard: Option<netspectra_guard::RunConfig>,
}

/// A configuration error: what is wrong, with the key and (when known) the line.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{line}: {message}", line = .line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file (or `<command line>`).
    pub origin: String,
    /// The line, when known.
    pub line: Option<usize>,
    /// The key and what is wrong with it.
    pub message: String,
}

impl ProbeConfig {
    /// Parses a YAML text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<ProbeConfig, ConfigError> {
        let cfg: ProbeConfig = serde_yaml::from_str(text).map_err(|e| ConfigError {
            origin: origin.to_string(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })?;
        cfg.check(text, origin)?;
        Ok(cfg)
    }

    /// Checks values against their bounds and names (what serde cannot check).
    fn check(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let err = |needle: &str, message: String| ConfigError {
            origin: origin.to_string(),
            line: line_of(text, needle),
            message,
        };
        if !valid_token(&self.probe.name) {
            return Err(err(
                "name:",
                format!(
                    "probe.name {:?}: letters, digits, '-' and '_' only (it names bus subjects)",
                    self.probe.name
                ),
            ));
        }
        if !valid_token(&self.probe.site) {
            return Err(err(
                "site:",
                format!(
                    "probe.site {:?}: letters, digits, '-' and '_' only",
                    self.probe.site
                ),
            ));
        }
        let max = netspectra_engine::MAX_THREADS;
        for (i, f) in self.capture.interfaces.iter().enumerate() {
            if f.threads == 0 || f.threads > max {
                return Err(err(
                    "threads:",
                    format!(
                        "capture.interfaces[{i}].threads must be 1..={max} (got {})",
                        f.threads
                    ),
                ));
            }
            if let Some(b) = f.blocks {
                if !(2..=65_536).contains(&b) {
                    return Err(err(
                        "blocks:",
                        format!("capture.interfaces[{i}].blocks must be 2..=65536"),
                    ));
                }
            }
            if let Some(Size(b)) = f.block_size {
                if !(4096..=(64 << 20)).contains(&b) || !b.is_power_of_two() {
                    return Err(err(
                        "block_size:",
                        format!(
                            "capture.interfaces[{i}].block_size must be a power of two, 4k..=64M"
                        ),
                    ));
                }
            }
        }
        let total: usize = self.capture.interfaces.iter().map(|f| f.threads).sum();
        if total > max {
            return Err(err(
                "interfaces:",
                format!("capture.interfaces: {total} threads in all; at most {max}"),
            ));
        }
        for (i, s) in self.sinks.iter().enumerate() {
            let streams = match s {
                SinkSection::Files {
                    streams,
                    format,
                    queue,
                    ..
                } => {
                    if let Some(f) = format {
                        if netspectra_sinks::RecordFormat::parse(f).is_none() {
                            return Err(err(
                                "format:",
                                format!("sinks[{i}].format {f:?}: jsonl, csv, tsv or parquet"),
                            ));
                        }
                    }
                    check_queue(queue.as_ref(), i).map_err(|m| err("queue:", m))?;
                    streams
                }
                SinkSection::Stdout { streams } => streams,
                SinkSection::Store {
                    path,
                    streams,
                    queue,
                } => {
                    if path.as_os_str().is_empty() || path.is_dir() {
                        return Err(err(
                            "path:",
                            format!("sinks[{i}].path {}: not a file name", path.display()),
                        ));
                    }
                    check_queue(queue.as_ref(), i).map_err(|m| err("queue:", m))?;
                    streams
                }
                SinkSection::Clickhouse {
                    url,
                    streams,
                    queue,
                    spool,
                } => {
                    netspectra_clickhouse::parse_database_url(url)
                        .map_err(|e| err(url, format!("sinks[{i}].url: {e}")))?;
                    check_queue(queue.as_ref(), i).map_err(|m| err("queue:", m))?;
                    if let Some(sp) = spool {
                        if sp.max.0 < (1 << 20) {
                            return Err(err(
                                "max:",
                                format!("sinks[{i}].spool.max must be at least 1M"),
                            ));
                        }
                    }
                    streams
                }
                SinkSection::Nats {
                    url,
                    streams,
                    queue,
                    spool,
                    stream_replicas,
                } => {
                    netspectra_nats::parse_url(url)
                        .map_err(|e| err(url, format!("sinks[{i}].url: {e}")))?;
                    check_queue(queue.as_ref(), i).map_err(|m| err("queue:", m))?;
                    if spool.as_ref().is_some_and(|sp| sp.max.0 < (1 << 20)) {
                        return Err(err(
                            "max:",
                            format!("sinks[{i}].spool.max must be at least 1M"),
                        ));
                    }
                    if stream_replicas.is_some_and(|r| !(1..=5).contains(&r)) {
                        return Err(err(
                            "stream_replicas:",
                            format!("sinks[{i}].stream_replicas: 1 to 5"),
                        ));
                    }
                    streams
                }
                SinkSection::Ipfix { url, rate, .. } => {
                    netspectra_ipfix::parse_collector_url(url)
                        .map_err(|e| err(url, format!("sinks[{i}].url: {e}")))?;
                    if *rate == Some(0) {
                        return Err(err("rate:", format!("sinks[{i}].rate must be at least 1")));
                    }
                    &None
                }
            };
            for name in streams.iter().flatten() {
                if parse_stream(name).is_none() {
                    return Err(err(
                        name,
                        format!(
                            "sinks[{i}].streams: unknown stream {name:?} (flows, views, view_<name>, http, alerts, guard)"
                        ),
                    ));
                }
            }
        }
        if let Some(m) = &self.metrics {
            let addr: std::net::SocketAddr = m.listen.parse().map_err(|_| {
                err(
                    "listen:",
                    format!(
                        "metrics.listen {:?}: not an address (e.g. 127.0.0.1:9464)",
                        m.listen
                    ),
                )
            })?;
            if !addr.ip().is_loopback() && m.token.as_deref().is_none_or(str::is_empty) {
                return Err(err(
                    "listen:",
                    format!(
                        "metrics.listen {}: not a loopback address, so metrics.token is required",
                        m.listen
                    ),
                ));
            }
        }
        if let Some(a) = &self.alerts {
            for (i, w) in a.webhooks.iter().enumerate() {
                if !w.url.starts_with("http://") || !(1..=1_000_000).contains(&w.queue) {
                    return Err(err(
                        "webhooks:",
                        format!(
                            "alerts.webhooks[{i}]: url http://HOST:PORT/PATH, queue 1..=1000000"
                        ),
                    ));
                }
            }
        }
        if let Some(g) = &self.guard {
            if let Err(e) = g.check() {
                let msg = e.to_string();
                // A policy file's own errors carry its name (and line): point at `policy:`.
                let file = matches!(g.policy, netspectra_guard::PolicySource::File(_))
                    && !matches!(e, netspectra_guard::GuardError::Config(_));
                return Err(ConfigError {
                    origin: origin.to_string(),
                    line: guard_line(text, if file { "x: policy: " } else { &msg }),
                    message: format!("guard: {msg}"),
                });
            }
        }
        if let Some(r) = &self.ring {
            if r.file_size.0 < (1 << 20) {
                return Err(err(
                    "file_size:",
                    "ring.file_size must be at least 1M".into(),
                ));
            }
            if r.max_total.is_none() && r.max_age.is_none() {
                return Err(err(
                    "ring:",
                    "ring: give max_total or max_age (or both): a ring must end somewhere".into(),
                ));
            }
        }
        Ok(())
    }
}

fn check_queue(q: Option<&QueueSection>, i: usize) -> Result<(), String> {
    let Some(q) = q else { return Ok(()) };
    if let Some(b) = q.batches {
        if !(1..=100_000).contains(&b) {
            return Err(format!("sinks[{i}].queue.batches must be 1..=100000"));
        }
    }
    if let Some(w) = &q.when_full {
        if !matches!(w.as_str(), "drop_newest" | "block") {
            return Err(format!(
                "sinks[{i}].queue.when_full {w:?}: drop_newest or block"
            ));
        }
    }
    Ok(())
}

/// A stream name as configurations write it: `flows`, `http`, `views` (every view),
/// `view_<name>` (one view), `alerts`, `guard`.
pub fn parse_stream(s: &str) -> Option<(netspectra_sinks::stream::StreamKind, Option<String>)> {
    use netspectra_sinks::stream::StreamKind;
    if let Some(v) = s.strip_prefix("view_") {
        return valid_token(v).then(|| (StreamKind::View, Some(v.to_string())));
    }
    StreamKind::parse(s).map(|k| (k, None))
}

/// Letters, digits, `-` and `_`, not empty.
fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The line of a `guard:` section error: the key it names (`interface: ...`,
/// `rules[1] (name 'x').dst: ...`, ``unknown field `defualt` ``) searched from the section's
/// start (and from the named rule's line).
fn guard_line(text: &str, msg: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == "guard:" || l.starts_with("guard:"))?;
    let find = |from: usize, needle: &str| {
        lines[from..]
            .iter()
            .position(|l| l.contains(needle))
            .map(|i| from + i)
    };
    // "invalid policy: rules[2] (name 'x').port: ..." or "invalid guard setting: xdp: ..."
    let body = msg.split_once(": ").map_or(msg, |(_, b)| b);
    let mut from = start;
    if let Some(n) = body
        .split_once("(name '")
        .and_then(|(_, r)| r.split_once('\''))
        .map(|(n, _)| n)
    {
        if let Some(i) = find(start, &format!("name: {n}")).or_else(|| find(start, n)) {
            from = i;
        }
    }
    let key = if let Some((_, r)) = body
        .split_once("unknown field `")
        .or_else(|| body.split_once("missing field `"))
    {
        r.split('`').next().unwrap_or("").to_string()
    } else {
        let head = body.split(": ").next().unwrap_or("");
        head.rsplit(['.', ' ']).next().unwrap_or("").to_string()
    };
    let key = key.trim_end_matches(':');
    let at = if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        None
    } else {
        find(from, &format!("{key}:")).or_else(|| find(from, key))
    };
    Some(at.unwrap_or(from) + 1)
}

/// The 1-based line of the first occurrence of `needle` in `text`.
pub fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// Parses a duration given on the command line.
pub fn duration(s: &str) -> Result<i64, String> {
    parse_duration(s)
}

#[cfg(test)]
mod tests;
