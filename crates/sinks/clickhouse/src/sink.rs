//! Record streams into ClickHouse tables, one insert per batch, under the common delivery
//! runner (queue, spool, retries).
//!
//! Two layouts: the `flows --export clickhouse://HOST/DB.TABLE` one (flow records into a named
//! table, exactly the record's columns), and a probe's (`clickhouse://HOST/DB`: every stream in
//! a table named after it, with `probe` and `_batch` columns). With batch identifiers, every
//! row carries its batch's identifier (a hash of the batch's bytes, so the same batch has the
//! same identifier in every run, spooled or not); after an insert whose answer was lost, the
//! sink asks ClickHouse whether that batch is there before inserting it again, so a record
//! never counts twice.

use crate::client::Client;
use crate::schema::{columns_of, create_table, json_keys};
use crate::ClickHouseError;
use netspectra_sinks::sink::{Closed, DeliverError, Routes, Sink};
use netspectra_sinks::stream::{Batch, Payload, Stream, StreamKind};
use std::borrow::Borrow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Most batches of a backlog sent in one INSERT (ClickHouse pays per insert: a part written,
/// then merged).
const GROUP_BATCHES: usize = 64;

/// How a [`ClickHouseSink`] lays out its tables.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    /// Database (created when missing).
    pub database: String,
    /// A table for the flow stream other than `flows` (the `flows --export` layout).
    pub flows_table: Option<String>,
    /// The streams sent.
    pub routes: Routes,
    /// The probe's name, stored in every row's `probe` column; with it rows also carry
    /// `_batch` identifiers (see the module docs).
    pub probe: Option<String>,
}

/// What reached ClickHouse (shared with metrics and summaries).
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Rows inserted (acknowledged).
    pub rows: AtomicU64,
    /// INSERT requests acknowledged.
    pub inserts: AtomicU64,
    /// Bytes of JSON rows sent.
    pub bytes: AtomicU64,
    /// Batches found already stored after a lost answer (not inserted again).
    pub already_there: AtomicU64,
}

/// A ClickHouse destination of record streams.
pub struct ClickHouseSink {
    client: Client,
    opts: SinkOptions,
    /// Tables known to exist.
    made: HashSet<String>,
    stats: Arc<SinkStats>,
    /// The INSERT body of a batch or a group of batches (kept for its allocation).
    body: Vec<u8>,
    /// The database is known to exist.
    database_made: bool,
}

impl ClickHouseSink {
    /// Resolves the server and creates the database and the tables of the streams known now
    /// (flows, HTTP); view tables are made with their first snapshot. Fails (naming the
    /// server) when ClickHouse cannot be reached or refuses.
    pub fn connect(host: &str, opts: SinkOptions) -> Result<ClickHouseSink, ClickHouseError> {
        let client = Client::new(host)?;
        let mut s = ClickHouseSink {
            client,
            opts,
            made: HashSet::new(),
            stats: Arc::new(SinkStats::default()),
            body: Vec::new(),
            database_made: true,
        };
        s.client.exec(
            "CREATE DATABASE",
            &format!("CREATE DATABASE IF NOT EXISTS {}", s.opts.database),
        )?;
        for k in [
            StreamKind::Flows,
            StreamKind::Http,
            StreamKind::Tls,
            StreamKind::Dns,
        ] {
            let st = Stream::of(k);
            if s.opts.routes.accepts(&st) {
                s.ensure_table(&st, None)?;
            }
        }
        Ok(s)
    }

    /// A sink that touches the server only when it delivers (a long-running probe must start,
    /// and spool, while ClickHouse is down): the database and tables are made on the first
    /// insert into each, and a failure there is retried like a failed insert.
    pub fn lazy(host: &str, opts: SinkOptions) -> Result<ClickHouseSink, ClickHouseError> {
        Ok(ClickHouseSink {
            client: Client::new(host)?,
            opts,
            made: HashSet::new(),
            stats: Arc::new(SinkStats::default()),
            body: Vec::new(),
            database_made: false,
        })
    }

    /// The counters, shared.
    pub fn stats(&self) -> Arc<SinkStats> {
        Arc::clone(&self.stats)
    }

    /// The `db.table` of a stream.
    pub fn table_of(&self, s: &Stream) -> String {
        let t = match (&self.opts.flows_table, s.kind) {
            (Some(t), StreamKind::Flows) => t.clone(),
            _ => s.name(),
        };
        format!("{}.{t}", self.opts.database)
    }

    fn ensure_table(
        &mut self,
        s: &Stream,
        view_cols: Option<Vec<String>>,
    ) -> Result<String, ClickHouseError> {
        let full = self.table_of(s);
        if self.made.contains(&full) {
            return Ok(full);
        }
        if !self.database_made {
            self.client.exec(
                "CREATE DATABASE",
                &format!("CREATE DATABASE IF NOT EXISTS {}", self.opts.database),
            )?;
            self.database_made = true;
        }
        let Some(columns) = columns_of(s.kind, view_cols.as_deref()) else {
            return Err(ClickHouseError::Url {
                url: full,
                why: "a view table needs its column names",
            });
        };
        let sql = create_table(s.kind, &full, &columns, self.opts.probe.is_some());
        self.client.exec("CREATE TABLE", &sql)?;
        self.made.insert(full.clone());
        Ok(full)
    }

    /// The identifier of a batch: its stream and a hash of its rows.
    fn batch_id(b: &Batch) -> String {
        format!(
            "{}-{:032x}",
            b.stream.name(),
            xxhash_rust::xxh3::xxh3_128(b.json())
        )
    }

    /// Appends the rows of `b` as sent to `out`: with `probe` and `_batch` fields added to each
    /// line when the layout has them.
    fn append_rows(&self, b: &Batch, out: &mut Vec<u8>) {
        match &self.opts.probe {
            Some(probe) => add_ids(b.json(), probe, &Self::batch_id(b), out),
            None => out.extend_from_slice(b.json()),
        }
    }

    /// One INSERT of the rows of `batches` (one stream) into `table`: all or nothing.
    fn insert_batches<B: Borrow<Batch>>(
        &mut self,
        table: &str,
        batches: &[B],
    ) -> Result<(), DeliverError> {
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        for b in batches {
            self.append_rows(b.borrow(), &mut body);
        }
        let records = batches.iter().map(|b| b.borrow().records()).sum();
        let r = self.insert(table, &body, records);
        self.body = body;
        r
    }

    fn err(&self, e: ClickHouseError, sent: bool) -> DeliverError {
        let msg = e.to_string();
        let r = if e.retryable() {
            DeliverError::retry(self.name(), msg)
        } else {
            DeliverError::fatal(self.name(), msg)
        };
        // A failure after the request went out (a timeout, a reset) leaves the outcome open.
        if sent && matches!(e, ClickHouseError::Io { .. }) && self.opts.probe.is_some() {
            r.ambiguous()
        } else {
            r
        }
    }

    /// One INSERT of JSON lines `rows` (`records` of them) into `table`: all or nothing.
    fn insert(&mut self, table: &str, rows: &[u8], records: u64) -> Result<(), DeliverError> {
        if rows.is_empty() {
            return Ok(());
        }
        match self.client.insert_json(table, rows) {
            Ok(()) => {
                self.stats.rows.fetch_add(records, Ordering::Relaxed);
                self.stats.inserts.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // A table dropped behind our back is made again on the next attempt.
                if matches!(&e, ClickHouseError::Refused { message, .. } if message.contains("Code: 60,"))
                {
                    self.made.remove(table);
                }
                let connect_failed = matches!(&e, ClickHouseError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::ConnectionRefused);
                Err(self.err(e, !connect_failed))
            }
        }
    }
}

impl Sink for ClickHouseSink {
    fn name(&self) -> String {
        format!("clickhouse://{}/{}", self.client.host(), self.opts.database)
    }

    fn routes(&self) -> Routes {
        self.opts.routes.clone()
    }

    fn deliver(&mut self, b: &Batch) -> Result<(), DeliverError> {
        if b.records() == 0 {
            return Ok(());
        }
        let cols = match &b.payload {
            Payload::Snapshot(s) => Some(s.columns.clone()),
            Payload::Encoded { .. } if b.stream.kind == StreamKind::View => {
                let first = b.json().split(|&c| c == b'\n').next().unwrap_or(&[]);
                json_keys(first)
            }
            _ => None,
        };
        let table = self
            .ensure_table(&b.stream, cols)
            .map_err(|e| self.err(e, false))?;
        self.insert_batches(&table, &[b])
    }

    /// Record streams (not views, whose columns come with each batch) go in groups: one insert
    /// for a backlog of batches, each row still tagged with its own batch's `_batch`.
    fn group_limit(&self, stream: &Stream) -> usize {
        if stream.kind == StreamKind::View {
            1
        } else {
            GROUP_BATCHES
        }
    }

    fn deliver_group(&mut self, group: &[Arc<Batch>]) -> Result<(), DeliverError> {
        let Some(first) = group.first() else {
            return Ok(());
        };
        let table = self
            .ensure_table(&first.stream, None)
            .map_err(|e| self.err(e, false))?;
        self.insert_batches(&table, group)
    }

    fn already_delivered(&mut self, b: &Batch) -> Result<bool, DeliverError> {
        if self.opts.probe.is_none() {
            return Ok(false);
        }
        let table = self.table_of(&b.stream);
        let sql = format!(
            "SELECT count() FROM {table} WHERE _batch = '{}'",
            Self::batch_id(b)
        );
        let n = self.client.query(&sql).map_err(|e| self.err(e, false))?;
        let found = n.trim().parse::<u64>().unwrap_or(0) > 0;
        if found {
            self.stats.already_there.fetch_add(1, Ordering::Relaxed);
            self.stats.rows.fetch_add(b.records(), Ordering::Relaxed);
        }
        Ok(found)
    }

    fn close(&mut self, _complete: bool) -> Result<Closed, DeliverError> {
        Ok(Closed::default())
    }
}

/// Appends JSON lines to `out` with `probe` and `_batch` fields added to each object (the
/// layout of a probe's tables); empty or non-object lines are left out.
pub fn add_ids(json: &[u8], probe: &str, batch: &str, out: &mut Vec<u8>) {
    let extra = format!(
        ",\"probe\":{},\"_batch\":{}}}",
        serde_json::to_string(probe).unwrap_or_else(|_| "\"\"".into()),
        serde_json::to_string(batch).unwrap_or_else(|_| "\"\"".into()),
    );
    for line in json.split_inclusive(|&c| c == b'\n') {
        let l = line.strip_suffix(b"\n").unwrap_or(line);
        match l.strip_suffix(b"}") {
            Some(head) if !head.is_empty() => {
                out.extend_from_slice(head);
                out.extend_from_slice(extra.as_bytes());
                out.push(b'\n');
            }
            _ => {}
        }
    }
}
