//! The embedded store of one host: every record stream into one SQLite file, no server.
//!
//! Tables are named after the streams (`flows`, `http`, `view_<name>`, `alerts`, `guard`) and
//! have the ClickHouse sink's column names ([`schema`]), so `netspectra console` asks both the
//! same questions. The sink ([`StoreSink`]) runs under the common delivery runner; one insert
//! transaction per batch. The file is in WAL mode, so the console reads while the probe writes.
//! Chosen by measurement over DuckDB: see docs/CONSOLE.md.

pub mod schema;

use netspectra_sinks::sink::{Closed, DeliverError, Routes, Sink};
use netspectra_sinks::stream::{Batch, Payload, StreamKind};
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why the store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused (the message names the file).
    #[error("store {path}: {source}")]
    Sqlite {
        /// The store file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A name that cannot be a table or column name.
    #[error("store: bad name {0:?} (letters, digits and _ only)")]
    BadName(String),
}

/// True when a name needs no quoting in SQL (`[A-Za-z0-9_]`, not empty, at most 64 bytes).
pub fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Opens (creating) a store for writing: WAL mode, normal sync.
pub fn open_write(path: &Path) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    };
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(d);
    }
    let c = Connection::open(path).map_err(err)?;
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; \
         PRAGMA cache_size=-65536;",
    )
    .map_err(err)?;
    Ok(c)
}

/// Opens an existing store read-only (the console's connection).
pub fn open_read(path: &Path) -> Result<Connection, StoreError> {
    let err = |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    };
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    c.execute_batch("PRAGMA busy_timeout=5000; PRAGMA query_only=1; PRAGMA cache_size=-65536;")
        .map_err(err)?;
    Ok(c)
}

/// Makes the flow and HTTP tables (so a console over a store the probe has not written to yet
/// finds them).
pub fn ensure_base_tables(c: &Connection) -> Result<(), rusqlite::Error> {
    for (k, name) in [(StreamKind::Flows, "flows"), (StreamKind::Http, "http")] {
        c.execute_batch(&schema::create_table(
            k,
            name,
            &schema::record_columns(k, None),
        ))?;
    }
    ensure_rollups(c)
}

/// Makes the per-day flow rollups and their triggers; a store that has flows but no rollup
/// yet (written by an older version) gets its rollups filled once, in one transaction.
pub fn ensure_rollups(c: &Connection) -> Result<(), rusqlite::Error> {
    let missing: Vec<(&str, &str)> = schema::ROLLUPS
        .iter()
        .copied()
        .filter(|(t, _)| {
            c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                [t],
                |r| r.get::<_, i64>(0),
            )
            .map_or(true, |n| n == 0)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    c.execute_batch("BEGIN IMMEDIATE")?;
    let done = (|| {
        c.execute_batch(&schema::create_rollups())?;
        for (t, ip) in &missing {
            c.execute_batch(&schema::backfill_rollup(t, ip))?;
        }
        Ok(())
    })();
    match done {
        Ok(()) => c.execute_batch("COMMIT"),
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Rows written to the store (shared with metrics and summaries).
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Rows inserted (committed).
    pub rows: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
}

/// A SQLite destination of record streams.
pub struct StoreSink {
    conn: Connection,
    path: PathBuf,
    probe: String,
    routes: Routes,
    /// Tables known to exist, with their record columns.
    tables: HashMap<String, Vec<String>>,
    stats: Arc<StoreStats>,
}

impl StoreSink {
    /// Opens (creating) the store at `path`; rows carry `probe` in their `probe` column.
    pub fn open(path: &Path, probe: &str, routes: Routes) -> Result<StoreSink, StoreError> {
        let conn = open_write(path)?;
        ensure_base_tables(&conn).map_err(|source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        })?;
        Ok(StoreSink {
            conn,
            path: path.to_path_buf(),
            probe: probe.to_string(),
            routes,
            tables: HashMap::new(),
            stats: Arc::new(StoreStats::default()),
        })
    }

    /// The counters, shared.
    pub fn stats(&self) -> Arc<StoreStats> {
        Arc::clone(&self.stats)
    }

    fn err(&self, e: rusqlite::Error) -> DeliverError {
        err_of(&self.name(), e)
    }

    /// Makes the table (adding columns a changed view has gained) and returns its columns.
    fn ensure(
        &mut self,
        kind: StreamKind,
        table: &str,
        view_cols: Option<&[String]>,
    ) -> Result<Vec<String>, DeliverError> {
        if let Some(c) = self.tables.get(table) {
            if view_cols.is_none_or(|v| v.iter().all(|n| c.contains(n))) {
                return Ok(c.clone());
            }
        }
        let cols = schema::record_columns(kind, view_cols);
        if let Some((bad, _)) = cols.iter().find(|(n, _)| !is_ident(n)) {
            return Err(DeliverError::fatal(
                self.name(),
                StoreError::BadName(bad.clone()).to_string(),
            ));
        }
        self.conn
            .execute_batch(&schema::create_table(kind, table, &cols))
            .map_err(|e| self.err(e))?;
        // A view whose columns changed (a reload): add what is missing.
        let have: Vec<String> = {
            let mut st = self
                .conn
                .prepare(&format!("PRAGMA table_info(\"{table}\")"))
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(1))
                .map_err(|e| self.err(e))?;
            rows.filter_map(Result::ok).collect()
        };
        for (n, t) in &cols {
            if !have.contains(n) {
                self.conn
                    .execute_batch(&format!("ALTER TABLE \"{table}\" ADD COLUMN \"{n}\" {t}"))
                    .map_err(|e| self.err(e))?;
            }
        }
        let names: Vec<String> = cols.into_iter().map(|(n, _)| n).collect();
        self.tables.insert(table.to_string(), names.clone());
        Ok(names)
    }
}

/// A JSON value as an SQLite value (numbers beyond i64 are clamped; objects as JSON text).
fn sql_value(v: Option<&serde_json::Value>) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    use serde_json::Value as J;
    match v {
        None | Some(J::Null) => S::Null,
        Some(J::Bool(b)) => S::Integer(i64::from(*b)),
        Some(J::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => S::Integer(i),
            (None, Some(_), _) => S::Integer(i64::MAX),
            (_, _, Some(f)) => S::Real(f),
            _ => S::Null,
        },
        Some(J::String(s)) => S::Text(s.clone()),
        Some(other) => S::Text(other.to_string()),
    }
}

impl Sink for StoreSink {
    fn name(&self) -> String {
        format!("store:{}", self.path.display())
    }

    fn routes(&self) -> Routes {
        self.routes.clone()
    }

    fn deliver(&mut self, b: &Batch) -> Result<(), DeliverError> {
        if b.records() == 0 {
            return Ok(());
        }
        let kind = b.stream.kind;
        let table = b.stream.name();
        if !is_ident(&table) {
            return Err(DeliverError::fatal(
                self.name(),
                StoreError::BadName(table).to_string(),
            ));
        }
        let json = b.json();
        let view_cols: Option<Vec<String>> = match (&b.payload, kind) {
            (Payload::Snapshot(s), _) => Some(s.columns.clone()),
            (_, StreamKind::View) => {
                let first = json.split(|&c| c == b'\n').next().unwrap_or(&[]);
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(first)
                    .ok()
                    .map(|m| m.keys().cloned().collect())
            }
            _ => None,
        };
        let cols = self.ensure(kind, &table, view_cols.as_deref())?;
        let time_col = schema::time_column(kind);
        let time_src = match kind {
            StreamKind::Flows => "start",
            StreamKind::Http | StreamKind::Tls | StreamKind::Dns => "ts",
            StreamKind::View => "interval_start",
            // guard events: seconds since the epoch, with a fraction
            StreamKind::Guard => "ts",
            _ => "time",
        };
        // Streams kept whole as JSON text (queried with SQLite's json_extract): events, and
        // the TLS and DNS records, whose lists have no column form in SQLite.
        let event = matches!(
            kind,
            StreamKind::Alerts | StreamKind::Guard | StreamKind::Tls | StreamKind::Dns
        );
        let quoted: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
        let sql = format!(
            "INSERT INTO \"{table}\" ({}, \"{time_col}\", probe) VALUES ({})",
            quoted.join(", "),
            vec!["?"; cols.len() + 2].join(", ")
        );
        let name = self.name();
        let probe = self.probe.clone();
        let tx = self.conn.transaction().map_err(|e| err_of(&name, e))?;
        let mut n = 0u64;
        {
            let mut st = tx.prepare_cached(&sql).map_err(|e| err_of(&name, e))?;
            let mut vals: Vec<rusqlite::types::Value> = Vec::with_capacity(cols.len() + 2);
            for line in json.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let Ok(m) =
                    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line)
                else {
                    continue;
                };
                vals.clear();
                if event {
                    vals.push(rusqlite::types::Value::Text(
                        String::from_utf8_lossy(line).into_owned(),
                    ));
                } else {
                    vals.extend(cols.iter().map(|c| sql_value(m.get(c))));
                }
                let t = match m.get(time_src) {
                    Some(serde_json::Value::String(s)) => schema::parse_time(s).unwrap_or(0),
                    Some(serde_json::Value::Number(x)) => x
                        .as_i64()
                        .or_else(|| x.as_f64().map(|f| f as i64))
                        .unwrap_or(0),
                    _ => 0,
                };
                vals.push(rusqlite::types::Value::Integer(t));
                vals.push(rusqlite::types::Value::Text(probe.clone()));
                st.execute(rusqlite::params_from_iter(vals.iter()))
                    .map_err(|e| err_of(&name, e))?;
                n += 1;
            }
        }
        tx.commit().map_err(|e| err_of(&name, e))?;
        self.stats.rows.fetch_add(n, Ordering::Relaxed);
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn close(&mut self, _complete: bool) -> Result<Closed, DeliverError> {
        // Folds the WAL back into the file so a copy of it alone is complete.
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        Ok(Closed {
            files: vec![self.path.clone()],
        })
    }
}

fn err_of(name: &str, e: rusqlite::Error) -> DeliverError {
    use rusqlite::ErrorCode as C;
    let retry = matches!(
        e.sqlite_error_code(),
        Some(C::DatabaseBusy | C::DatabaseLocked | C::DiskFull | C::SystemIoFailure)
    );
    if retry {
        DeliverError::retry(name, e.to_string())
    } else {
        DeliverError::fatal(name, e.to_string())
    }
}

#[cfg(test)]
mod tests;
