//! `netspectra collect`: record streams from the NATS JetStream bus into ClickHouse (docs/BUS.md,
//! docs/DEPLOY.md). The work is the `netspectra-nats` crate's; this module parses arguments
//! and the configuration file, serves metrics and health, and stops on SIGTERM/SIGINT after the
//! messages in hand are stored and acknowledged.

use crate::exit::BadInput;
use anyhow::{Context, Result};
use clap::Args;
use netspectra_metrics::{EndpointOptions, MetricsServer, Readiness};
use netspectra_nats::collect::{self, CollectOptions, CollectStats};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `netspectra collect`.
#[derive(Args)]
pub struct CollectArgs {
    /// NATS servers: nats://HOST:PORT[,HOST:PORT...]
    #[arg(long, value_name = "URL")]
    from: String,
    /// ClickHouse: clickhouse://HOST:PORT[,HOST:PORT...]/DB (HTTP interface), tried in turn.
    #[arg(long, value_name = "URL")]
    to: String,
    /// YAML configuration (cluster, group, batch sizes; see examples/collect.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Create the database, tables, Distributed tables and rollups first (idempotent).
    #[arg(long)]
    init_schema: bool,
    /// Metrics and health endpoint address (e.g. 127.0.0.1:9465).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Collector group (durable consumer name; overrides the configuration's).
    #[arg(long)]
    group: Option<String>,
}

/// The configuration file of `collect`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectFile {
    /// ClickHouse cluster name (`<remote_servers>`): replicated + Distributed tables.
    cluster: Option<String>,
    /// Collector group.
    group: Option<String>,
    /// Messages pulled at once.
    fetch: Option<usize>,
    /// Inserts in flight at once.
    inserters: Option<usize>,
    /// Seconds JetStream waits for an acknowledgement before redelivering.
    ack_wait_secs: Option<u64>,
    /// Replicas of the JetStream stream when the collector creates it.
    stream_replicas: Option<usize>,
    /// Bytes the JetStream stream holds at most.
    stream_max_bytes: Option<i64>,
    /// Seconds `--init-schema` keeps retrying while ClickHouse cannot be reached or answers
    /// with a transient error (a server still starting, ZooKeeper not ready yet).
    init_wait_secs: Option<u64>,
}

/// `--init-schema`: creates the schema, retrying transient failures (a connection refused or
/// closed without an answer, HTTP 5xx other than a data error) with a back-off of 0.5 s doubled
/// up to 5 s, each attempt on the next server given, for at most `wait`. The statements are
/// idempotent (`IF NOT EXISTS`), so an attempt that failed half-way is simply made again.
fn init_schema_retrying(opts: &CollectOptions, wait: Duration, stop: &AtomicBool) -> Result<()> {
    let clients = opts
        .clickhouse
        .iter()
        .map(|h| {
            netspectra_clickhouse::Client::new(h).map(|c| c.with_timeout(Duration::from_secs(200)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let t0 = std::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0usize;
    loop {
        let c = &clients[attempt % clients.len()];
        attempt += 1;
        match collect::init_schema(c, &opts.database, opts.cluster.as_deref()) {
            Ok(()) => return Ok(()),
            Err(e)
                if e.retryable()
                    && t0.elapsed() + delay < wait
                    && !stop.load(Ordering::Relaxed) =>
            {
                eprintln!(
                    "collect: creating the schema on {} failed (attempt {attempt}, trying again in {:.1} s): {e}",
                    c.host(),
                    delay.as_secs_f64()
                );
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "creating the schema (--init-schema; {attempt} attempt(s) in {:.0} s)",
                        t0.elapsed().as_secs_f64()
                    )
                })
            }
        }
    }
}

/// Runs the collector until SIGTERM/SIGINT.
pub fn run(a: CollectArgs) -> Result<std::process::ExitCode> {
    let servers =
        netspectra_nats::parse_url(&a.from).map_err(|e| BadInput(format!("--from: {e}")))?;
    let (hosts, db) =
        a.to.strip_prefix("clickhouse://")
            .and_then(|r| r.rsplit_once('/'))
            .ok_or_else(|| {
                BadInput(format!(
                    "--to {:?}: expected clickhouse://HOST:PORT[,HOST:PORT]/DB",
                    a.to
                ))
            })?;
    let mut clickhouse = Vec::new();
    for h in hosts.split(',') {
        let (host, _) =
            netspectra_clickhouse::parse_database_url(&format!("clickhouse://{h}/{db}"))
                .map_err(|e| BadInput(format!("--to: {e}")))?;
        clickhouse.push(host);
    }
    let file: CollectFile = match &a.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_yaml::from_str(&text).map_err(|e| BadInput(format!("{}: {e}", p.display())))?
        }
        None => CollectFile::default(),
    };
    let mut opts = CollectOptions::new(servers, clickhouse, db);
    if let Some(c) = &file.cluster {
        if !netspectra_clickhouse::is_ident(c) {
            return Err(BadInput(format!("cluster {c:?}: letters, digits and _")).into());
        }
    }
    opts.cluster = file.cluster.clone();
    if let Some(g) = a.group.clone().or(file.group.clone()) {
        if !netspectra_clickhouse::is_ident(&g) {
            return Err(BadInput(format!("group {g:?}: letters, digits and _")).into());
        }
        opts.group = g;
    }
    if let Some(n) = file.fetch {
        opts.fetch = n.clamp(1, 10_000);
    }
    if let Some(n) = file.inserters {
        opts.inserters = n.clamp(1, 16);
    }
    if let Some(s) = file.ack_wait_secs {
        opts.ack_wait = Duration::from_secs(s.max(1));
    }
    if let Some(r) = file.stream_replicas {
        opts.stream_replicas = r.clamp(1, 5);
    }
    if let Some(b) = file.stream_max_bytes {
        opts.stream_max_bytes = b;
    }

    // Test hook of the exactly-once test: abort between an insert and its acknowledgement.
    opts.crash_after_inserts = std::env::var("NETSPECTRA_TEST_CRASH_AFTER_INSERTS")
        .ok()
        .and_then(|v| v.parse().ok());
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    if a.init_schema {
        let wait = Duration::from_secs(file.init_wait_secs.unwrap_or(120));
        init_schema_retrying(&opts, wait, &stop)?;
        eprintln!("collect: schema of {} ready", opts.database);
    }
    let stats = Arc::new(CollectStats::default());
    let _metrics = match &a.metrics {
        Some(addr) => {
            let s = Arc::clone(&stats);
            let r = Arc::clone(&stats);
            let server = MetricsServer::start_with(
                addr.as_str(),
                move |e| {
                    for (name, help, value) in s.counters() {
                        e.counter(name, help, value);
                    }
                },
                EndpointOptions {
                    token: None,
                    readiness: Some(Box::new(move || {
                        let ok = r.healthy.load(Ordering::Relaxed);
                        Readiness {
                            ready: ok,
                            reasons: if ok {
                                vec![]
                            } else {
                                vec!["bus or ClickHouse failing".into()]
                            },
                        }
                    })),
                },
            )
            .with_context(|| format!("metrics endpoint {addr}"))?;
            eprintln!("collect: metrics on http://{}/metrics", server.local_addr());
            Some(server)
        }
        None => None,
    };
    eprintln!("collect: {} -> {} (group {})", a.from, a.to, opts.group);
    collect::run(&opts, &stats, &stop)?;
    let l = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
    eprintln!(
        "collect: stopped: {} messages, {} rows in {} inserts, {} redelivered ({} already stored), {} refused, {} errors",
        l(&stats.messages),
        l(&stats.rows),
        l(&stats.inserts),
        l(&stats.redelivered),
        l(&stats.already_there),
        l(&stats.refused),
        l(&stats.errors)
    );
    Ok(std::process::ExitCode::SUCCESS)
}
