//! `netspectra collect`: bus messages into ClickHouse, exactly once in effect.
//!
//! A collector pulls from a durable JetStream consumer (one durable name per collector group;
//! every collector of the group pulls from the same consumer, so they share the work), inserts
//! each message as **one** INSERT (so one block per shard), and acknowledges the message only
//! after ClickHouse answered 200. A collector that dies between the insert and the
//! acknowledgement leaves the message to be delivered again (to it or to another collector):
//!
//! - On a cluster (replicated local tables behind Distributed ones), the re-inserted block is
//!   byte for byte the same (the message's lines, each with the same `probe` and `_batch`
//!   fields, `_batch` being the message ID) and goes to the same shard (sharding key
//!   `cityHash64(_batch)`), so ReplicatedMergeTree's insert deduplication drops it.
//! - Before inserting, a collector looks messages up by their `_batch` (one
//!   `SELECT DISTINCT _batch ... WHERE _batch IN (...)` per table and pull) and acknowledges
//!   those found without inserting them: on a single server every message (plain MergeTree has
//!   no insert deduplication, and JetStream's delivery count cannot tell every repeat: a server
//!   SIGKILLed right after a delivery, a consumer made again, or a second group, delivers a
//!   stored message with a count of 1), on a cluster the messages delivered more than once (a
//!   redelivery older than the replicated deduplication window).

use crate::{
    connect, stream_config, with_hint, BusError, ENCODING, HDR_ENCODING, HDR_PROBE, HDR_STREAM,
};
use crate::{DUPLICATE_WINDOW, STREAM, SUBJECTS};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures_util::StreamExt;
use netspectra_clickhouse::schema::{columns_of, json_keys, partition_and_order};
use netspectra_clickhouse::{add_ids, is_ident, ClickHouseError, Client};
use netspectra_sinks::stream::StreamKind;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Settings of a collector.
#[derive(Clone, Debug)]
pub struct CollectOptions {
    /// NATS servers (`host:port`).
    pub servers: Vec<String>,
    /// ClickHouse servers (`host:port` of their HTTP interface), tried in turn.
    pub clickhouse: Vec<String>,
    /// Database.
    pub database: String,
    /// The ClickHouse cluster (`<remote_servers>` name): replicated local tables
    /// `<stream>_local` and Distributed tables `<stream>`. None: plain tables on one server.
    pub cluster: Option<String>,
    /// The collector group: the durable consumer's name.
    pub group: String,
    /// Messages pulled at once.
    pub fetch: usize,
    /// How long a pull waits for messages.
    pub fetch_wait: Duration,
    /// Time JetStream waits for an acknowledgement before delivering a message again.
    pub ack_wait: Duration,
    /// Messages delivered to the group and not yet acknowledged, at most.
    pub max_ack_pending: i64,
    /// Inserts in flight at once.
    pub inserters: usize,
    /// Replicas of the JetStream stream when the collector creates it.
    pub stream_replicas: usize,
    /// Bytes the JetStream stream holds at most (oldest dropped beyond; -1: no bound).
    pub stream_max_bytes: i64,
    /// Test hook: once this many inserts were accepted, the process aborts before it
    /// acknowledges them (a crash between insert and acknowledgement, on purpose).
    pub crash_after_inserts: Option<u64>,
}

impl CollectOptions {
    /// Defaults for these servers and database.
    pub fn new(servers: Vec<String>, clickhouse: Vec<String>, database: &str) -> CollectOptions {
        CollectOptions {
            servers,
            clickhouse,
            database: database.to_string(),
            cluster: None,
            group: "netspectra".into(),
            fetch: 256,
            fetch_wait: Duration::from_millis(500),
            ack_wait: Duration::from_secs(60),
            max_ack_pending: 4096,
            inserters: 2,
            stream_replicas: 1,
            stream_max_bytes: 8 << 30,
            crash_after_inserts: None,
        }
    }
}

/// Live counters of a collector.
#[derive(Debug, Default)]
pub struct CollectStats {
    /// Messages received (also redeliveries).
    pub messages: AtomicU64,
    /// Messages received more than once.
    pub redelivered: AtomicU64,
    /// Rows inserted (acknowledged by ClickHouse).
    pub rows: AtomicU64,
    /// INSERT requests acknowledged.
    pub inserts: AtomicU64,
    /// Bytes of rows sent.
    pub bytes: AtomicU64,
    /// Messages found already stored (not inserted again): redeliveries, or repeats JetStream
    /// sent as first deliveries (looked up on a single server).
    pub already_there: AtomicU64,
    /// Messages acknowledged to JetStream.
    pub acked: AtomicU64,
    /// Messages refused for good (unknown encoding, rows ClickHouse cannot parse): terminated.
    pub refused: AtomicU64,
    /// Failed inserts, pulls or acknowledgements (retried).
    pub errors: AtomicU64,
    /// True while connected and the last insert succeeded.
    pub healthy: AtomicBool,
}

impl CollectStats {
    /// Every counter with its Prometheus name and help, for a metrics endpoint.
    pub fn counters(&self) -> [(&'static str, &'static str, u64); 9] {
        let l = |x: &AtomicU64| x.load(Ordering::Relaxed);
        [
            (
                "netspectra_collect_messages_total",
                "Bus messages received (also redeliveries).",
                l(&self.messages),
            ),
            (
                "netspectra_collect_redelivered_total",
                "Bus messages received more than once.",
                l(&self.redelivered),
            ),
            (
                "netspectra_collect_rows_total",
                "Rows inserted into ClickHouse.",
                l(&self.rows),
            ),
            (
                "netspectra_collect_inserts_total",
                "INSERT requests ClickHouse accepted.",
                l(&self.inserts),
            ),
            (
                "netspectra_collect_bytes_total",
                "Bytes of rows sent to ClickHouse.",
                l(&self.bytes),
            ),
            (
                "netspectra_collect_already_stored_total",
                "Messages found stored already (not inserted again).",
                l(&self.already_there),
            ),
            (
                "netspectra_collect_acked_total",
                "Messages acknowledged to JetStream.",
                l(&self.acked),
            ),
            (
                "netspectra_collect_refused_total",
                "Messages refused for good (terminated).",
                l(&self.refused),
            ),
            (
                "netspectra_collect_errors_total",
                "Failed pulls, inserts and acknowledgements (retried).",
                l(&self.errors),
            ),
        ]
    }
}

/// A message made ready for its insert.
struct Work {
    table: String,
    rows: Vec<u8>,
    records: u64,
    batch: String,
    redelivered: bool,
}

/// What became of one message.
#[derive(Clone)]
enum Done {
    Stored,
    Retry(String),
    Refuse(String),
}

/// Creates the database and the tables of the probe's fixed streams (flows, http, alerts,
/// guard) and the per-minute flow rollup; idempotent (`IF NOT EXISTS`). On a cluster: each as a
/// ReplicatedMergeTree `<name>_local` on every node and a Distributed `<name>` over them.
pub fn init_schema(c: &Client, db: &str, cluster: Option<&str>) -> Result<(), ClickHouseError> {
    let on = on_cluster(cluster);
    c.exec(
        "CREATE DATABASE",
        &format!("CREATE DATABASE IF NOT EXISTS {db}{on}"),
    )?;
    for k in [
        StreamKind::Flows,
        StreamKind::Http,
        StreamKind::Alerts,
        StreamKind::Guard,
    ] {
        for sql in table_ddl(
            k,
            db,
            k.name(),
            &columns_of(k, None).unwrap_or_default(),
            cluster,
        ) {
            c.exec("CREATE TABLE", &sql)?;
        }
    }
    for sql in rollup_ddl(db, cluster) {
        c.exec("CREATE TABLE", &sql)?;
    }
    Ok(())
}

fn on_cluster(cluster: Option<&str>) -> String {
    cluster.map_or(String::new(), |c| format!(" ON CLUSTER {c}"))
}

/// The statements creating a stream's table `db.table` (local + Distributed on a cluster).
pub fn table_ddl(
    kind: StreamKind,
    db: &str,
    table: &str,
    columns: &str,
    cluster: Option<&str>,
) -> Vec<String> {
    let (part, order) = partition_and_order(kind);
    let cols = format!("{columns}, probe String DEFAULT '', _batch String DEFAULT ''");
    match cluster {
        None => vec![format!(
            "CREATE TABLE IF NOT EXISTS {db}.{table} ({cols}) ENGINE = MergeTree() \
             PARTITION BY {part} ORDER BY {order}"
        )],
        Some(c) => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{table}_local ON CLUSTER {c} ({cols}) \
                 ENGINE = ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{db}.{table}_local', \
                 '{{replica}}') PARTITION BY {part} ORDER BY {order} \
                 SETTINGS replicated_deduplication_window = 1000"
            ),
            // Materialized columns are aliases in the Distributed table: ClickHouse 18.16
            // sends every physical column of a Distributed table to the shards, and a local
            // table refuses values for its materialized ones.
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {c} ({}) \
                 ENGINE = Distributed({c}, {db}, {table}_local, cityHash64(_batch))",
                cols.replace(" MATERIALIZED ", " ALIAS ")
            ),
        ],
    }
}

/// The per-minute flow rollup: `flows_1m` (flows, packets, bytes by minute, probe and
/// protocol), a SummingMergeTree fed by a materialized view on every insert into the flow
/// table. Query it with `sum()` and `GROUP BY` (rows of a minute are summed at merges).
pub fn rollup_ddl(db: &str, cluster: Option<&str>) -> Vec<String> {
    let on = on_cluster(cluster);
    let cols =
        "minute DateTime, probe String, proto UInt8, flows UInt64, packets UInt64, bytes UInt64";
    let select = format!(
        "SELECT toStartOfMinute(parseDateTimeBestEffort(start)) AS minute, probe, proto, \
         count() AS flows, sum(fwd_packets + rev_packets) AS packets, \
         sum(fwd_bytes + rev_bytes) AS bytes FROM {db}.{src} GROUP BY minute, probe, proto",
        src = if cluster.is_some() {
            "flows_local"
        } else {
            "flows"
        }
    );
    match cluster {
        None => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.flows_1m ({cols}) ENGINE = SummingMergeTree() \
                 PARTITION BY toYYYYMM(minute) ORDER BY (minute, probe, proto)"
            ),
            format!("CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.flows_1m_mv TO {db}.flows_1m AS {select}"),
        ],
        Some(c) => vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.flows_1m_local{on} ({cols}) \
                 ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{{shard}}/{db}.flows_1m_local', \
                 '{{replica}}') PARTITION BY toYYYYMM(minute) ORDER BY (minute, probe, proto)"
            ),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.flows_1m_mv{on} TO {db}.flows_1m_local AS {select}"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.flows_1m{on} AS {db}.flows_1m_local \
                 ENGINE = Distributed({c}, {db}, flows_1m_local, rand())"
            ),
        ],
    }
}

/// ClickHouse servers tried in turn: a server that cannot be reached passes the turn on.
struct Servers {
    clients: Vec<Client>,
    current: AtomicUsize,
}

impl Servers {
    fn run<T>(
        &self,
        f: impl Fn(&Client) -> Result<T, ClickHouseError>,
    ) -> Result<T, ClickHouseError> {
        let n = self.clients.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let idx = (start + i) % n;
            match f(&self.clients[idx]) {
                Ok(v) => {
                    self.current.store(idx, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e @ ClickHouseError::Io { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one server"))
    }
}

/// Runs a collector until `stop` is raised: pulls, inserts, acknowledges. What was pulled when
/// `stop` rose is inserted and acknowledged first (a graceful stop leaves nothing half done).
/// A bus that cannot be reached (or has no leader yet) is retried every second, so a
/// collector can start before the bus; fails only when its runtime or clients cannot be made.
pub fn run(opts: &CollectOptions, stats: &CollectStats, stop: &AtomicBool) -> Result<(), BusError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("collect-nats")
        .enable_all()
        .build()
        .map_err(|e| BusError::Local(format!("collector runtime: {e}")))?;
    let servers = Servers {
        clients: opts
            .clickhouse
            .iter()
            .map(|h| Client::new(h))
            .collect::<Result<_, _>>()?,
        current: AtomicUsize::new(0),
    };
    let nats_err = |what: &'static str, e: String| BusError::Nats {
        servers: opts.servers.join(","),
        what,
        message: with_hint(e),
    };
    // The bus may be down or electing leaders (a node restarting): keep trying.
    let consumer = loop {
        let r = rt.block_on(async {
            let client = connect(&opts.servers, Duration::from_secs(5)).await?;
            let js = jetstream::new(client);
            let stream = js
                .get_or_create_stream(stream_config(
                    opts.stream_replicas,
                    opts.stream_max_bytes,
                    DUPLICATE_WINDOW,
                ))
                .await
                .map_err(|e| nats_err("stream", e.to_string()))?;
            stream
                .get_or_create_consumer(
                    &opts.group,
                    pull::Config {
                        durable_name: Some(opts.group.clone()),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: opts.ack_wait,
                        max_ack_pending: opts.max_ack_pending,
                        filter_subject: SUBJECTS.to_string(),
                        max_deliver: -1,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| nats_err("consumer", e.to_string()))
        });
        match r {
            Ok(c) => break c,
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("collect: {e} (trying again)");
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    stats.healthy.store(true, Ordering::Relaxed);
    eprintln!("collect: consuming {STREAM} as {}", opts.group);
    let made: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    while !stop.load(Ordering::Relaxed) {
        let msgs = rt.block_on(async {
            // What is there now, without waiting; when nothing is, wait (at most
            // `fetch_wait`) for one message, then take what else arrived meanwhile. A pull
            // never waits for a full batch, so a quiet stream is not delayed.
            let mut out = pull_now(&consumer, opts.fetch).await?;
            if out.is_empty() {
                let batch = consumer
                    .batch()
                    .max_messages(1)
                    .expires(opts.fetch_wait)
                    .messages()
                    .await
                    .map_err(|e| e.to_string())?;
                let mut batch = std::pin::pin!(batch);
                // A local deadline too: async-nats 0.51 can miss the end of a pull (an idle
                // heartbeat returns Pending without a wake-up).
                let deadline = tokio::time::Instant::now() + opts.fetch_wait + PULL_SLACK;
                while let Ok(Some(m)) = tokio::time::timeout_at(deadline, batch.next()).await {
                    match m {
                        Ok(m) => out.push(m),
                        Err(e) if out.is_empty() => return Err(e.to_string()),
                        Err(_) => break,
                    }
                }
                if !out.is_empty() && opts.fetch > 1 {
                    out.extend(pull_now(&consumer, opts.fetch - 1).await?);
                }
            }
            Ok::<_, String>(out)
        });
        let msgs = match msgs {
            Ok(m) => m,
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                stats.healthy.store(false, Ordering::Relaxed);
                eprintln!("collect: pull from {STREAM}: {e}");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        if msgs.is_empty() {
            continue;
        }
        stats
            .messages
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
        let done = store(opts, &servers, &made, stats, &msgs);
        if opts
            .crash_after_inserts
            .is_some_and(|n| stats.inserts.load(Ordering::Relaxed) >= n)
        {
            eprintln!("collect: crashing on purpose between insert and acknowledgement");
            std::process::abort();
        }
        let ok = done.iter().all(|d| matches!(d, Done::Stored));
        stats.healthy.store(ok, Ordering::Relaxed);
        rt.block_on(async {
            let acks = msgs.iter().zip(&done).map(|(m, d)| async move {
                let r = match d {
                    // Confirmed by the server: a lost acknowledgement only means one more
                    // delivery, which deduplication absorbs.
                    Done::Stored => m.double_ack().await,
                    Done::Retry(_) => m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await,
                    Done::Refuse(_) => m.ack_with(AckKind::Term).await,
                };
                (r.is_ok(), matches!(d, Done::Stored))
            });
            for (ok, stored) in futures_util::future::join_all(acks).await {
                if !ok {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                } else if stored {
                    stats.acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        for d in &done {
            match d {
                Done::Retry(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("collect: insert failed (retried): {e}");
                }
                Done::Refuse(e) => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    eprintln!("collect: message refused for good: {e}");
                }
                Done::Stored => {}
            }
        }
        if !ok {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// The messages available now (at most `n`), without waiting for more.
async fn pull_now(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    n: usize,
) -> Result<Vec<jetstream::Message>, String> {
    let mut out = Vec::new();
    let batch = consumer
        .fetch()
        .max_messages(n)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut batch = std::pin::pin!(batch);
    let deadline = tokio::time::Instant::now() + PULL_SLACK;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, batch.next()).await {
        match m {
            Ok(m) => out.push(m),
            Err(e) if out.is_empty() => return Err(e.to_string()),
            Err(_) => break,
        }
    }
    Ok(out)
}

/// How long a pull may outlast its own expiry before it is given up locally (a message that
/// arrives for a given-up pull is delivered again after `ack_wait`).
const PULL_SLACK: Duration = Duration::from_secs(2);

/// Decodes, looks up what may be stored already, and inserts the rest (`inserters` at a
/// time). A message whose ID occurs twice in one pull is inserted once; its copy shares the
/// outcome.
fn store(
    opts: &CollectOptions,
    servers: &Servers,
    made: &Mutex<HashSet<String>>,
    stats: &CollectStats,
    msgs: &[jetstream::Message],
) -> Vec<Done> {
    let mut work: Vec<Result<Work, Done>> = msgs
        .iter()
        .map(|m| prepare(opts, servers, made, m))
        .collect();
    // The same message twice in one pull (a late answer to a given-up pull and its
    // redelivery): the later copy waits for the first one's outcome.
    let mut first: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut copy_of: Vec<Option<usize>> = vec![None; work.len()];
    for (i, w) in work.iter().enumerate() {
        if let Ok(w) = w {
            match first.get(&w.batch) {
                Some(&j) => copy_of[i] = Some(j),
                None => {
                    first.insert(w.batch.clone(), i);
                }
            }
        }
    }
    for w in work.iter().flatten() {
        if w.redelivered {
            stats.redelivered.fetch_add(1, Ordering::Relaxed);
        }
    }
    lookup(opts, servers, stats, &mut work, &copy_of);
    let out: Vec<Mutex<Option<Done>>> = (0..work.len()).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let todo: Vec<usize> = (0..work.len()).filter(|&i| copy_of[i].is_none()).collect();
    std::thread::scope(|s| {
        for _ in 0..opts.inserters.clamp(1, 16).min(todo.len()) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = todo.get(k) else { break };
                let d = match &work[i] {
                    Err(d) => d.clone(),
                    Ok(w) => insert(opts, servers, stats, w),
                };
                *out[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
            });
        }
    });
    let mut done: Vec<Done> = out
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or(Done::Retry("not processed".into()))
        })
        .collect();
    for (i, c) in copy_of.iter().enumerate() {
        if let Some(j) = c {
            done[i] = done[*j].clone();
        }
    }
    done
}

/// Which messages must be looked up before they are inserted: on one server (plain MergeTree,
/// no insert deduplication) every message, because a message that reached ClickHouse may come
/// again *looking new*: a JetStream server SIGKILLed right after a delivery may deliver it again
/// with a delivery count of 1 (seen with nats-server 2.9.10; issue 19), and so does a consumer
/// made again or a second group; on a cluster only redeliveries, since a repeated message is
/// the same block to the same shard, dropped by ReplicatedMergeTree.
fn needs_lookup(opts: &CollectOptions, w: &Work) -> bool {
    opts.cluster.is_none() || w.redelivered
}

/// Looks up, one query per table, the messages that may be stored already (`_batch` = the
/// message ID); those found become [`Done::Stored`] without an insert. A failed lookup makes
/// them [`Done::Retry`] (never an insert on a guess).
fn lookup(
    opts: &CollectOptions,
    servers: &Servers,
    stats: &CollectStats,
    work: &mut [Result<Work, Done>],
    copy_of: &[Option<usize>],
) {
    let mut by_table: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, w) in work.iter().enumerate() {
        if let Ok(w) = w {
            if copy_of[i].is_none() && needs_lookup(opts, w) {
                by_table.entry(w.table.clone()).or_default().push(i);
            }
        }
    }
    // At most 500 IDs per query (ClickHouse's max_query_size is 256 KiB by default).
    for (table, all) in by_table {
        for idx in all.chunks(500) {
            let ids: Vec<String> = idx
                .iter()
                .filter_map(|&i| work[i].as_ref().ok())
                .map(|w| format!("'{}'", w.batch.replace('\\', "\\\\").replace('\'', "\\'")))
                .collect();
            let sql = format!(
                "SELECT DISTINCT _batch FROM {table} WHERE _batch IN ({})",
                ids.join(",")
            );
            let found: Result<HashSet<String>, String> = servers
                .run(|c| c.post("/?skip_unavailable_shards=1", "SELECT", sql.as_bytes()))
                .map(|text| text.lines().map(str::to_string).collect())
                .map_err(|e| e.to_string());
            for &i in idx {
                let r = match (&found, &work[i]) {
                    (Ok(set), Ok(w)) if set.contains(&w.batch) => {
                        stats.already_there.fetch_add(1, Ordering::Relaxed);
                        if !w.redelivered {
                            // Not a redelivery by JetStream's count, yet stored: worth a line.
                            eprintln!(
                                "collect: message {} (a first delivery) is stored already: not inserted again",
                                w.batch
                            );
                        }
                        Done::Stored
                    }
                    (Ok(_), _) => continue,
                    (Err(e), _) => Done::Retry(format!("looking up stored messages: {e}")),
                };
                work[i] = Err(r);
            }
        }
    }
}

fn header<'a>(m: &'a jetstream::Message, name: &str) -> Option<&'a str> {
    m.headers.as_ref()?.get(name).map(|v| v.as_str())
}

/// A message's table, rows and identity; its table made when missing.
fn prepare(
    opts: &CollectOptions,
    servers: &Servers,
    made: &Mutex<HashSet<String>>,
    m: &jetstream::Message,
) -> Result<Work, Done> {
    let enc = header(m, HDR_ENCODING).unwrap_or("");
    if enc != ENCODING {
        return Err(Done::Refuse(format!(
            "{}: encoding {enc:?} (this collector reads {ENCODING})",
            m.subject
        )));
    }
    let info = m.info().map_err(|e| Done::Refuse(e.to_string()))?;
    let stream = header(m, HDR_STREAM)
        .map(str::to_string)
        .or_else(|| m.subject.rsplit('.').next().map(str::to_string))
        .unwrap_or_default();
    let kind = if stream.starts_with("view_") {
        StreamKind::View
    } else {
        StreamKind::parse(&stream).unwrap_or(StreamKind::Alerts)
    };
    if !is_ident(&stream) || (kind != StreamKind::View && StreamKind::parse(&stream).is_none()) {
        return Err(Done::Refuse(format!(
            "{}: unknown stream {stream:?}",
            m.subject
        )));
    }
    let probe = header(m, HDR_PROBE).unwrap_or("");
    let batch = header(m, "Nats-Msg-Id")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{STREAM}-{}", info.stream_sequence));
    let table = format!("{}.{stream}", opts.database);
    let known = made
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&table);
    if !known {
        let cols = if kind == StreamKind::View {
            let first = m.payload.split(|&c| c == b'\n').next().unwrap_or(&[]);
            json_keys(first)
        } else {
            None
        };
        let Some(columns) = columns_of(kind, cols.as_deref()) else {
            return Err(Done::Refuse(format!("{}: bad view columns", m.subject)));
        };
        let on = on_cluster(opts.cluster.as_deref());
        let mut ddl = vec![format!(
            "CREATE DATABASE IF NOT EXISTS {}{on}",
            opts.database
        )];
        ddl.extend(table_ddl(
            kind,
            &opts.database,
            &stream,
            &columns,
            opts.cluster.as_deref(),
        ));
        for sql in ddl {
            servers
                .run(|c| c.exec("CREATE TABLE", &sql))
                .map_err(|e| Done::Retry(e.to_string()))?;
        }
        made.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(table.clone());
    }
    let mut rows = Vec::with_capacity(m.payload.len() + 64 * 16);
    add_ids(&m.payload, probe, &batch, &mut rows);
    let records = rows.iter().filter(|&&c| c == b'\n').count() as u64;
    Ok(Work {
        table,
        rows,
        records,
        batch,
        redelivered: info.delivered > 1,
    })
}

fn insert(opts: &CollectOptions, servers: &Servers, stats: &CollectStats, w: &Work) -> Done {
    let settings = if opts.cluster.is_some() {
        "insert_distributed_sync=1"
    } else {
        ""
    };
    match servers.run(|c| c.insert_json_with(&w.table, &w.rows, settings)) {
        Ok(()) => {
            stats.rows.fetch_add(w.records, Ordering::Relaxed);
            stats.inserts.fetch_add(1, Ordering::Relaxed);
            stats
                .bytes
                .fetch_add(w.rows.len() as u64, Ordering::Relaxed);
            Done::Stored
        }
        Err(e) if e.retryable() => Done::Retry(e.to_string()),
        Err(e) => Done::Refuse(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_its_own_metric() {
        let s = CollectStats::default();
        s.acked.store(7, Ordering::Relaxed);
        s.errors.store(2, Ordering::Relaxed);
        let c = s.counters();
        let names: HashSet<&str> = c.iter().map(|x| x.0).collect();
        assert_eq!(names.len(), c.len(), "names repeat");
        assert!(c.iter().all(|x| x.0.ends_with("_total") && !x.1.is_empty()));
        let get = |n: &str| c.iter().find(|x| x.0 == n).unwrap().2;
        assert_eq!(get("netspectra_collect_acked_total"), 7);
        assert_eq!(get("netspectra_collect_errors_total"), 2);
        assert_eq!(c.iter().map(|x| x.2).sum::<u64>(), 9);
    }

    #[test]
    fn cluster_tables_are_replicated_and_sharded_by_message() {
        let v = table_ddl(StreamKind::Flows, "ns", "flows", "a UInt8", Some("c"));
        assert_eq!(v.len(), 2);
        assert!(v[0].contains("ns.flows_local ON CLUSTER c"), "{}", v[0]);
        assert!(v[0].contains(
            "ReplicatedMergeTree('/clickhouse/tables/{shard}/ns.flows_local', '{replica}')"
        ));
        assert!(v[0].contains("_batch String"));
        assert!(v[1].contains("Distributed(c, ns, flows_local, cityHash64(_batch))"));
        let one = table_ddl(StreamKind::Http, "ns", "http", "a UInt8", None);
        assert_eq!(one.len(), 1);
        assert!(one[0].contains("MergeTree()") && !one[0].contains("ON CLUSTER"));
        assert!(rollup_ddl("ns", Some("c"))[1].contains("FROM ns.flows_local"));
        assert!(rollup_ddl("ns", None)[1].contains("FROM ns.flows GROUP BY"));
    }
}
