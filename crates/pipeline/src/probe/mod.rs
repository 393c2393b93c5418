//! The probe: one process that watches a network continuously (`netspectra probe`). This
//! module turns its configuration into the pipeline's analyses and sinks; the command line
//! front-end (crates/cli/src/probe.rs) adds the capture, signals, reloads and the endpoint.

pub mod config;

use crate::analysis::{AnalysisSet, AnonymizeSetup, FlowsSetup};
use config::{ConfigError, ProbeConfig, QueueSection, SinkSection};
use netspectra_clickhouse::{ClickHouseSink, SinkOptions};
use netspectra_dns::DnsConfig;
use netspectra_flow::config::{default_views, DEFAULT_INTERVAL};
use netspectra_flow::TableConfig;
use netspectra_http::parse::ExtractOptions;
use netspectra_http::{HeaderSelect, HttpConfig};
use netspectra_ipfix::sink::IpfixSink;
use netspectra_ipfix::{EncoderConfig, ExporterConfig, IpfixExporter};
use netspectra_sinks::delivery::{DeliveryConfig, SinkRunner, WhenFull};
use netspectra_sinks::file_sink::{FileSink, FileSinkConfig, Rotation, StdoutSink};
use netspectra_sinks::sink::{Routes, Sink};
use netspectra_sinks::stream::StreamKind;
use netspectra_sinks::RecordFormat;
use netspectra_tls::TlsConfig;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The analyses a configuration asks for. Without an `analyses` section: flows (default
/// views) and HTTP, the probe's default pipeline.
pub fn analyses(cfg: &ProbeConfig, text: &str, origin: &str) -> Result<AnalysisSet, ConfigError> {
    let err = |needle: &str, message: String| ConfigError {
        origin: origin.to_string(),
        line: config::line_of(text, needle),
        message,
    };
    let a = &cfg.analyses;
    let none = a.flows.is_none() && a.http.is_none() && a.tls.is_none() && a.dns.is_none();
    let (flows_file, http_section) = if none {
        (None, Some(config::HttpSection::default()))
    } else {
        (a.flows.as_ref(), a.http.clone())
    };
    let default_flows = none;
    let flows = if default_flows {
        Some(FlowsSetup {
            table: TableConfig::default(),
            views: default_views(DEFAULT_INTERVAL),
            top: 10,
        })
    } else {
        match flows_file {
            Some(f) => {
                let mut table = TableConfig::default();
                f.apply_table(&mut table);
                let views = f
                    .views(origin, DEFAULT_INTERVAL)
                    .map_err(|e| err("views:", format!("analyses.flows: {e}")))?;
                Some(FlowsSetup {
                    table,
                    views,
                    top: 10,
                })
            }
            None => None,
        }
    };
    let http = match http_section {
        Some(h) => Some(http_config(&h).map_err(|e| {
            err(
                &format!("{}:", e.key),
                format!(
                    "analyses.http.{}: must be {}..={} (got {})",
                    e.key, e.min, e.max, e.got
                ),
            )
        })?),
        None => None,
    };
    let tls = match &a.tls {
        Some(t) => Some(tls_config(t).map_err(|e| {
            let key = match &e {
                netspectra_tls::ConfigError::OutOfRange { key, .. } => *key,
            };
            err(
                &format!("{}:", key.trim_end_matches("_ns")),
                format!("analyses.{e}"),
            )
        })?),
        None => None,
    };
    let dns = match &a.dns {
        Some(d) => Some(dns_config(d).map_err(|e| {
            let key = match &e {
                netspectra_dns::ConfigError::OutOfRange { key, .. } => *key,
            };
            err(
                &format!("{}:", key.trim_end_matches("_ns")),
                format!("analyses.{e}"),
            )
        })?),
        None => None,
    };
    let anonymize = match &cfg.anonymize {
        Some(a) => Some(AnonymizeSetup {
            key: read_key(&a.key_file)
                .map_err(|m| err("key_file:", format!("anonymize.key_file: {m}")))?,
            policy: netspectra_sanitize::AnonPolicy {
                keep_private: a.keep_private,
                ..netspectra_sanitize::AnonPolicy::default()
            },
            strip_query: a.strip_query,
            hash_names: a.hash_names,
        }),
        None => None,
    };
    let ring = cfg.ring.as_ref().map(|r| crate::analysis::RingSetup {
        dir: r.dir.clone(),
        file_size: r.file_size.0,
        max_total: r.max_total.map(|s| s.0),
        max_age: r
            .max_age
            .map(|d| std::time::Duration::from_nanos(d.0.max(1) as u64)),
    });
    Ok(AnalysisSet {
        flows,
        http,
        tls,
        dns,
        anonymize,
        ring,
    })
}

/// The HTTP analysis settings of a section, checked against their bounds.
pub fn http_config(h: &config::HttpSection) -> Result<HttpConfig, netspectra_http::ConfigError> {
    let d = HttpConfig::default();
    let dx = ExtractOptions::default();
    let c = HttpConfig {
        paired: h.paired,
        max_connections: h.max_connections.unwrap_or(d.max_connections),
        max_header_bytes: h.max_header_bytes.unwrap_or(d.max_header_bytes),
        max_pipeline: h.max_pipeline.unwrap_or(d.max_pipeline),
        idle_timeout_ns: h.idle_timeout.map_or(d.idle_timeout_ns, |x| x.0),
        extract: ExtractOptions {
            extra: if h.all_headers {
                HeaderSelect::All
            } else if h.headers.is_empty() {
                HeaderSelect::None
            } else {
                HeaderSelect::List(h.headers.iter().map(|s| s.to_ascii_lowercase()).collect())
            },
            redact: h.redact.iter().map(|s| s.to_ascii_lowercase()).collect(),
            max_name: h.max_name_len.unwrap_or(dx.max_name),
            max_value: h.max_value_len.unwrap_or(dx.max_value),
        },
        parse_user_agent: h.user_agent,
        decode_tunnels: h.tunnels,
        ..d
    };
    c.validate()?;
    Ok(c)
}

/// The TLS analysis settings of a section, checked against their bounds.
pub fn tls_config(t: &config::TlsSection) -> Result<TlsConfig, netspectra_tls::ConfigError> {
    let d = TlsConfig::default();
    let c = TlsConfig {
        max_connections: t.max_connections.unwrap_or(d.max_connections),
        idle_timeout_ns: t.idle_timeout.map_or(d.idle_timeout_ns, |x| x.0),
        max_quic_connections: t.max_quic_connections.unwrap_or(d.max_quic_connections),
        quic_idle_timeout_ns: t.quic_idle_timeout.map_or(d.quic_idle_timeout_ns, |x| x.0),
        max_handshake_bytes: t
            .max_handshake_bytes
            .map_or(d.max_handshake_bytes, |s| s.0 as usize),
        max_crypto_bytes: t
            .max_crypto_bytes
            .map_or(d.max_crypto_bytes, |s| s.0 as usize),
        max_certs: t.max_certs.unwrap_or(d.max_certs),
        quic: t.quic.unwrap_or(d.quic),
        ..d
    };
    c.validate()?;
    Ok(c)
}

/// The DNS analysis settings of a section, checked against their bounds.
pub fn dns_config(s: &config::DnsSection) -> Result<DnsConfig, netspectra_dns::ConfigError> {
    let d = DnsConfig::default();
    let c = DnsConfig {
        max_transactions: s.max_transactions.unwrap_or(d.max_transactions),
        query_timeout_ns: s.query_timeout.map_or(d.query_timeout_ns, |x| x.0),
        max_tcp_connections: s.max_tcp_connections.unwrap_or(d.max_tcp_connections),
        max_records: s.max_records.unwrap_or(d.max_records),
        detect_off_port: s.detect_off_port.unwrap_or(d.detect_off_port),
        ..d
    };
    c.validate()?;
    Ok(c)
}

/// Reads a Crypto-PAn key file (32 raw bytes or 64 hex digits; at most 4 KiB read).
pub fn read_key(p: &Path) -> Result<[u8; netspectra_sanitize::KEY_LEN], String> {
    let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut buf = Vec::new();
    f.take(4097)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    if buf.len() > 4096 {
        return Err(format!("{}: larger than 4096 bytes", p.display()));
    }
    netspectra_sanitize::parse_key(&buf).map_err(|e| format!("{}: {e}", p.display()))
}

/// The routes of a sink's `streams` list (`None`: every stream).
pub fn routes(streams: Option<&Vec<String>>, default: &[StreamKind]) -> Routes {
    let Some(list) = streams else {
        return Routes::kinds(default);
    };
    let mut kinds = Vec::new();
    let mut views: Option<Vec<String>> = None;
    let mut all_views = false;
    for s in list {
        if let Some((k, v)) = config::parse_stream(s) {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
            match v {
                Some(v) => views.get_or_insert_with(Vec::new).push(v),
                None if k == StreamKind::View => all_views = true,
                None => {}
            }
        }
    }
    let r = Routes::kinds(&kinds);
    match views {
        Some(v) if !all_views => r.with_views(v),
        _ => r,
    }
}

/// How sinks behave in this run.
pub struct SinkContext<'a> {
    /// The probe's name (ClickHouse `probe` column, bus subjects).
    pub probe: &'a str,
    /// The probe's site (bus subjects).
    pub site: &'a str,
    /// A run over files: nothing live waits, so full queues block instead of dropping, and
    /// a write error fails the run.
    pub offline: bool,
    /// Inputs no file may replace.
    pub inputs: &'a [PathBuf],
    /// Raised when a sink that must not fail fails (offline files).
    pub stop: Arc<AtomicBool>,
}

/// A started sink: its runner, and what the summary reports about it.
pub struct StartedSink {
    /// The sink on its thread.
    pub runner: SinkRunner,
    /// Its ClickHouse counters, for a ClickHouse sink.
    pub clickhouse: Option<Arc<netspectra_clickhouse::SinkStats>>,
    /// Its bus counters, for a NATS sink.
    pub bus: Option<Arc<netspectra_nats::sink::BusStats>>,
}

fn delivery(
    q: Option<&QueueSection>,
    spool: Option<(PathBuf, u64)>,
    ctx: &SinkContext<'_>,
    network: bool,
) -> DeliveryConfig {
    let d = DeliveryConfig::default();
    let when_full = match q.and_then(|q| q.when_full.as_deref()) {
        Some("block") => WhenFull::Block,
        Some(_) => WhenFull::DropNewest,
        None if ctx.offline => WhenFull::Block,
        None => WhenFull::DropNewest,
    };
    DeliveryConfig {
        memory_batches: q.and_then(|q| q.batches).unwrap_or(d.memory_batches),
        memory_bytes: q
            .and_then(|q| q.bytes)
            .map_or(d.memory_bytes, |b| b.0 as usize),
        spool,
        when_full,
        fail_fast: ctx.offline && !network,
        on_failure: (ctx.offline && !network).then(|| Arc::clone(&ctx.stop)),
        // A run over files delivers everything before it ends (a server down for longer than
        // this is an error of the run); live, what is left waits in the spool.
        drain_timeout: match q.and_then(|q| q.drain_timeout) {
            Some(t) => std::time::Duration::from_nanos(t.0.max(0) as u64),
            None if ctx.offline => std::time::Duration::from_secs(120),
            None => d.drain_timeout,
        },
        ..d
    }
}

/// Starts the sinks a configuration lists.
pub fn start_sinks(
    sinks: &[SinkSection],
    ctx: &SinkContext<'_>,
) -> Result<Vec<StartedSink>, String> {
    let all = StreamKind::ALL;
    let mut out = Vec::new();
    for (i, s) in sinks.iter().enumerate() {
        let mut bus = None;
        let (sink, cfg, ch): (Box<dyn Sink>, DeliveryConfig, _) = match s {
            SinkSection::Files {
                dir,
                format,
                streams,
                rotate,
                queue,
            } => {
                let format = format
                    .as_deref()
                    .and_then(RecordFormat::parse)
                    .unwrap_or_default();
                if format == RecordFormat::Parquet && !netspectra_sinks::parquet_enabled() {
                    return Err(format!(
                        "sinks[{i}]: {}",
                        netspectra_sinks::SinkError::ParquetDisabled
                    ));
                }
                let r = rotate.clone().unwrap_or_default();
                let fc = FileSinkConfig {
                    dir: Some(dir.clone()),
                    paths: Vec::new(),
                    format,
                    fields: Vec::new(),
                    rotation: Rotation {
                        max_bytes: r.size.map(|s| s.0),
                        max_age: r
                            .every
                            .map(|d| std::time::Duration::from_nanos(d.0.max(0) as u64)),
                        keep: r.keep,
                    },
                    routes: routes(streams.as_ref(), &all),
                    keep_going: !ctx.offline,
                };
                (
                    Box::new(FileSink::new(fc, ctx.inputs)),
                    delivery(queue.as_ref(), None, ctx, false),
                    None,
                )
            }
            SinkSection::Stdout { streams } => (
                Box::new(StdoutSink::new(routes(
                    streams.as_ref(),
                    &[StreamKind::Flows],
                ))),
                delivery(None, None, ctx, false),
                None,
            ),
            SinkSection::Clickhouse {
                url,
                streams,
                queue,
                spool,
            } => {
                let (host, database) = netspectra_clickhouse::parse_database_url(url)
                    .map_err(|e| format!("sinks[{i}]: {e}"))?;
                let opts = SinkOptions {
                    database,
                    flows_table: None,
                    routes: routes(streams.as_ref(), &all),
                    probe: Some(ctx.probe.to_string()),
                };
                let sink =
                    ClickHouseSink::lazy(&host, opts).map_err(|e| format!("sinks[{i}]: {e}"))?;
                let stats = sink.stats();
                let sp = spool.as_ref().map(|s| (s.dir.clone(), s.max.0));
                (
                    Box::new(sink),
                    delivery(queue.as_ref(), sp, ctx, true),
                    Some(stats),
                )
            }
            SinkSection::Store {
                path,
                streams,
                queue,
            } => {
                let sink = netspectra_store::StoreSink::open(
                    path,
                    ctx.probe,
                    routes(streams.as_ref(), &all),
                )
                .map_err(|e| format!("sinks[{i}]: {e}"))?;
                // A local file: like a files sink, it fails a run over files when it cannot write.
                (
                    Box::new(sink),
                    delivery(queue.as_ref(), None, ctx, false),
                    None,
                )
            }
            SinkSection::Nats {
                url,
                streams,
                stream_replicas,
                queue,
                spool,
            } => {
                let servers =
                    netspectra_nats::parse_url(url).map_err(|e| format!("sinks[{i}]: {e}"))?;
                let mut opts = netspectra_nats::sink::BusOptions::new(
                    servers,
                    ctx.site,
                    ctx.probe,
                    routes(streams.as_ref(), &all),
                );
                opts.create_stream = *stream_replicas;
                let sink = netspectra_nats::sink::NatsSink::lazy(opts)
                    .map_err(|e| format!("sinks[{i}]: {e}"))?;
                bus = Some(sink.stats());
                let sp = spool.as_ref().map(|s| (s.dir.clone(), s.max.0));
                (
                    Box::new(sink),
                    delivery(queue.as_ref(), sp, ctx, true),
                    None,
                )
            }
            SinkSection::Ipfix { url, domain, rate } => {
                let peer = netspectra_ipfix::resolve_collector(url)
                    .map_err(|e| format!("sinks[{i}]: {e}"))?;
                let cfg = ExporterConfig {
                    encoder: EncoderConfig {
                        observation_domain: *domain,
                        ..EncoderConfig::default()
                    },
                    max_rate: *rate,
                };
                let x =
                    IpfixExporter::connect(peer, cfg).map_err(|e| format!("sinks[{i}]: {e}"))?;
                let (sink, _) = IpfixSink::new(url, x);
                (Box::new(sink), delivery(None, None, ctx, true), None)
            }
        };
        let runner =
            SinkRunner::start(sink, &Routes::all(), cfg).map_err(|e| format!("sinks[{i}]: {e}"))?;
        out.push(StartedSink {
            runner,
            clickhouse: ch,
            bus,
        });
    }
    Ok(out)
}

/// The sinks of the command line's shortcuts: `--out DIR` (files of every stream), `--store
/// FILE` (the embedded store) and each `--export URL` (`clickhouse://HOST:PORT/DB`,
/// `nats://HOST:PORT[,...]`, `ipfix://HOST:PORT`).
pub fn shortcut_sinks(
    out: Option<&Path>,
    store: Option<&Path>,
    exports: &[String],
) -> Result<Vec<SinkSection>, String> {
    let mut v = Vec::new();
    if let Some(p) = store {
        v.push(SinkSection::Store {
            path: p.to_path_buf(),
            streams: None,
            queue: None,
        });
    }
    if let Some(d) = out {
        v.push(SinkSection::Files {
            dir: d.to_path_buf(),
            format: None,
            streams: None,
            rotate: None,
            queue: None,
        });
    }
    for u in exports {
        if u.starts_with("clickhouse://") {
            netspectra_clickhouse::parse_database_url(u).map_err(|e| format!("--export: {e}"))?;
            v.push(SinkSection::Clickhouse {
                url: u.clone(),
                streams: None,
                queue: None,
                spool: out.map(|d| config::SpoolSection {
                    dir: d.join(".spool").join("clickhouse"),
                    max: config::Size(1 << 30),
                }),
            });
        } else if u.starts_with("nats://") {
            netspectra_nats::parse_url(u).map_err(|e| format!("--export: {e}"))?;
            v.push(SinkSection::Nats {
                url: u.clone(),
                streams: None,
                stream_replicas: None,
                queue: None,
                spool: out.map(|d| config::SpoolSection {
                    dir: d.join(".spool").join("nats"),
                    max: config::Size(1 << 30),
                }),
            });
        } else if u.starts_with("ipfix://") || u.starts_with("ipfix+udp://") {
            netspectra_ipfix::parse_collector_url(u).map_err(|e| format!("--export: {e}"))?;
            v.push(SinkSection::Ipfix {
                url: u.clone(),
                domain: 0,
                rate: None,
            });
        } else {
            return Err(format!(
                "--export {u:?}: unsupported scheme (clickhouse://HOST:PORT/DB, nats://HOST:PORT[,HOST:PORT], ipfix://HOST:PORT)"
            ));
        }
    }
    Ok(v)
}

/// Checks the alert rules against the configured views (names and metric columns).
pub fn check_alerts(cfg: &ProbeConfig, set: &AnalysisSet) -> Result<(), String> {
    let Some(a) = &cfg.alerts else {
        return Ok(());
    };
    let views: Vec<(String, Vec<String>)> = set
        .flows
        .iter()
        .flat_map(|f| f.views.iter())
        .map(|v| {
            (
                v.name.clone(),
                v.metrics.iter().map(|m| m.column()).collect(),
            )
        })
        .collect();
    netspectra_alerts::check_rules(&a.rules, &views).map_err(|e| e.to_string())
}

/// The alert rules' sink, when the configuration has rules: evaluates them at each snapshot
/// and sends the events to a second instance of every configured sink that takes the `alerts`
/// stream, to the webhooks and to `metrics`. `capture` reads the capture counters (live runs).
pub fn start_alerts(
    cfg: &ProbeConfig,
    set: &AnalysisSet,
    sinks: &[SinkSection],
    ctx: &SinkContext<'_>,
    metrics: Arc<netspectra_alerts::AlertMetrics>,
    capture: Option<netspectra_alerts::sink::CaptureCounters>,
) -> Result<Option<SinkRunner>, String> {
    let Some(a) = cfg.alerts.as_ref().filter(|a| !a.rules.is_empty()) else {
        return Ok(None);
    };
    let views: Vec<(String, Vec<String>)> = set
        .flows
        .iter()
        .flat_map(|f| f.views.iter())
        .map(|v| {
            (
                v.name.clone(),
                v.metrics.iter().map(|m| m.column()).collect(),
            )
        })
        .collect();
    netspectra_alerts::check_rules(&a.rules, &views).map_err(|e| e.to_string())?;
    // Each sink that takes the alerts stream gets its own instance for the events (the same
    // destination: a store file, a folder, a ClickHouse database).
    let takes_alerts =
        |s: &Option<Vec<String>>| s.as_ref().is_none_or(|l| l.iter().any(|x| x == "alerts"));
    let only = Some(vec!["alerts".to_string()]);
    let mut second = Vec::new();
    for s in sinks {
        match s {
            SinkSection::Files { streams, .. } | SinkSection::Store { streams, .. }
                if takes_alerts(streams) =>
            {
                let mut c = s.clone();
                match &mut c {
                    SinkSection::Files { streams, .. } | SinkSection::Store { streams, .. } => {
                        *streams = only.clone()
                    }
                    _ => {}
                }
                second.push(c);
            }
            SinkSection::Clickhouse {
                url,
                streams,
                queue,
                spool,
            } if takes_alerts(streams) => second.push(SinkSection::Clickhouse {
                url: url.clone(),
                streams: only.clone(),
                queue: queue.clone(),
                spool: spool.as_ref().map(|sp| config::SpoolSection {
                    dir: sp.dir.join("alerts"),
                    max: sp.max,
                }),
            }),
            SinkSection::Stdout { streams }
                if streams
                    .as_ref()
                    .is_some_and(|l| l.iter().any(|x| x == "alerts")) =>
            {
                second.push(SinkSection::Stdout {
                    streams: only.clone(),
                })
            }
            _ => {}
        }
    }
    let outputs = start_sinks(&second, ctx)?
        .into_iter()
        .map(|s| s.runner)
        .collect();
    let webhooks = a
        .webhooks
        .iter()
        .map(netspectra_alerts::webhook::Webhook::start)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("alerts: {e}"))?;
    let sink = netspectra_alerts::sink::AlertSink::new(
        netspectra_alerts::Engine::new(a.rules.clone()),
        outputs,
        webhooks,
        metrics,
        capture,
    );
    let runner = SinkRunner::start(
        Box::new(sink),
        &Routes::all(),
        delivery(None, None, ctx, true),
    )
    .map_err(|e| format!("alerts: {e}"))?;
    Ok(Some(runner))
}
