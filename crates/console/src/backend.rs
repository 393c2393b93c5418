//! Where the records are: the embedded store (SQLite) or ClickHouse (plain or Distributed
//! tables: the console only reads, by table name). Both answer the same [`Sql`] with a
//! [`Table`] of JSON values, within a row limit and a time-out.

use crate::sql::{register_sqlite_functions, Dialect, Lit, Sql};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// It ran longer than the time-out.
    #[error("query timed out after {0:?}")]
    Timeout(Duration),
    /// It returned more rows than allowed.
    #[error("more than {0} rows")]
    TooManyRows(usize),
    /// The backend failed (unreachable, refused the statement).
    #[error("{0}")]
    Backend(String),
}

/// The answer of a query: column names and rows.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Table {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, one value per column.
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// The rows as JSON objects.
    pub fn objects(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|r| {
                Value::Object(
                    self.columns
                        .iter()
                        .cloned()
                        .zip(r.iter().cloned())
                        .collect(),
                )
            })
            .collect()
    }
}

/// A store the console can query.
pub trait Backend: Send + Sync {
    /// The SQL it speaks.
    fn dialect(&self) -> &Dialect;
    /// What it is (a path or URL), for messages.
    fn describe(&self) -> String;
    /// Runs one statement: at most `max_rows` rows, within `timeout`.
    fn run(&self, sql: &Sql, max_rows: usize, timeout: Duration) -> Result<Table, QueryError>;
    /// True when the table exists (optional streams such as `alerts`).
    fn has_table(&self, name: &str) -> bool;
}

/// The embedded store, read-only, with a few pooled connections.
pub struct SqliteBackend {
    path: PathBuf,
    pool: Mutex<Vec<rusqlite::Connection>>,
    dialect: Dialect,
}

impl SqliteBackend {
    /// Opens the store at `path` (it must exist: the probe makes it).
    pub fn open(path: &Path) -> Result<SqliteBackend, QueryError> {
        if !path.is_file() {
            return Err(QueryError::Backend(format!(
                "store {}: no such file (run `netspectra probe --store {}` first)",
                path.display(),
                path.display()
            )));
        }
        // The first connection makes the base tables if the probe has not yet.
        let w =
            netspectra_store::open_write(path).map_err(|e| QueryError::Backend(e.to_string()))?;
        netspectra_store::ensure_base_tables(&w).map_err(|e| QueryError::Backend(e.to_string()))?;
        drop(w);
        let b = SqliteBackend {
            path: path.to_path_buf(),
            pool: Mutex::new(Vec::new()),
            dialect: Dialect::Sqlite,
        };
        let c = b.conn()?;
        b.give_back(c);
        Ok(b)
    }

    fn conn(&self) -> Result<rusqlite::Connection, QueryError> {
        if let Some(c) = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(c);
        }
        let c = netspectra_store::open_read(&self.path)
            .map_err(|e| QueryError::Backend(e.to_string()))?;
        register_sqlite_functions(&c).map_err(|e| QueryError::Backend(e.to_string()))?;
        Ok(c)
    }

    fn give_back(&self, c: rusqlite::Connection) {
        let mut p = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if p.len() < 8 {
            p.push(c);
        }
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => Value::Null,
        V::Integer(i) => Value::from(i),
        V::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        V::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        V::Blob(_) => Value::Null,
    }
}

impl Backend for SqliteBackend {
    fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    fn describe(&self) -> String {
        format!("store {}", self.path.display())
    }

    fn run(&self, sql: &Sql, max_rows: usize, timeout: Duration) -> Result<Table, QueryError> {
        let c = self.conn()?;
        let t0 = Instant::now();
        // Interrupts a statement that runs past the time-out.
        c.progress_handler(10_000, Some(move || t0.elapsed() > timeout));
        let out = (|| {
            let mut st = c
                .prepare_cached(&sql.text)
                .map_err(|e| QueryError::Backend(e.to_string()))?;
            let columns: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
            let binds: Vec<rusqlite::types::Value> = sql
                .binds
                .iter()
                .map(|b| match b {
                    Lit::Int(i) => rusqlite::types::Value::Integer(*i),
                    Lit::Text(t) => rusqlite::types::Value::Text(t.clone()),
                })
                .collect();
            let mut rows = st
                .query(rusqlite::params_from_iter(binds.iter()))
                .map_err(|e| QueryError::Backend(e.to_string()))?;
            let mut out = Vec::new();
            loop {
                let r = match rows.next() {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) if t0.elapsed() > timeout => {
                        let _ = e;
                        return Err(QueryError::Timeout(timeout));
                    }
                    Err(e) => return Err(QueryError::Backend(e.to_string())),
                };
                if out.len() >= max_rows {
                    return Err(QueryError::TooManyRows(max_rows));
                }
                let row: Vec<Value> = (0..columns.len())
                    .map(|i| r.get_ref(i).map_or(Value::Null, sqlite_value))
                    .collect();
                out.push(row);
            }
            Ok(Table { columns, rows: out })
        })();
        c.progress_handler(0, None::<fn() -> bool>);
        self.give_back(c);
        out
    }

    fn has_table(&self, name: &str) -> bool {
        let Ok(c) = self.conn() else { return false };
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                [name],
                |r| r.get(0),
            )
            .unwrap_or(0);
        self.give_back(c);
        n > 0
    }
}

/// ClickHouse over its HTTP interface, every query with `readonly=1`, a time-out and a
/// result-row limit set by the server.
pub struct ClickHouseBackend {
    client: netspectra_clickhouse::Client,
    dialect: Dialect,
    db: String,
}

impl ClickHouseBackend {
    /// For `clickhouse://HOST[:PORT]/DB`.
    pub fn connect(url: &str) -> Result<ClickHouseBackend, QueryError> {
        let (host, db) = netspectra_clickhouse::parse_database_url(url)
            .map_err(|e| QueryError::Backend(e.to_string()))?;
        let client = netspectra_clickhouse::Client::new(&host)
            .map_err(|e| QueryError::Backend(e.to_string()))?;
        let b = ClickHouseBackend {
            client,
            dialect: Dialect::ClickHouse { db: db.clone() },
            db,
        };
        b.client
            .query("SELECT 1")
            .map_err(|e| QueryError::Backend(e.to_string()))?;
        Ok(b)
    }
}

impl Backend for ClickHouseBackend {
    fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    fn describe(&self) -> String {
        format!("clickhouse://{}/{}", self.client.host(), self.db)
    }

    fn run(&self, sql: &Sql, max_rows: usize, timeout: Duration) -> Result<Table, QueryError> {
        let secs = timeout.as_secs().max(1);
        let path = format!(
            "/?readonly=1&max_execution_time={secs}&max_result_rows={}&result_overflow_mode=throw\
             &output_format_json_quote_64bit_integers=0&database={}",
            max_rows + 1,
            self.db
        );
        let client = self
            .client
            .clone()
            .with_timeout(timeout + Duration::from_secs(2));
        let body = format!("{} FORMAT JSONCompact", sql.text);
        let text = client.post(&path, "SELECT", body.as_bytes()).map_err(|e| {
            let m = e.to_string();
            if m.contains("Code: 159,") || m.contains("TIMEOUT_EXCEEDED") {
                QueryError::Timeout(timeout)
            } else if m.contains("Code: 396,") {
                QueryError::TooManyRows(max_rows)
            } else {
                QueryError::Backend(m)
            }
        })?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| QueryError::Backend(format!("ClickHouse answer: {e}")))?;
        let meta = v["meta"].as_array().cloned().unwrap_or_default();
        let columns: Vec<String> = meta
            .iter()
            .map(|m| m["name"].as_str().unwrap_or("").to_string())
            .collect();
        let numeric: Vec<bool> = meta
            .iter()
            .map(|m| {
                let t = m["type"].as_str().unwrap_or("");
                t.contains("Int") || t.contains("Float")
            })
            .collect();
        let mut rows = Vec::new();
        for r in v["data"].as_array().cloned().unwrap_or_default() {
            let Value::Array(vals) = r else { continue };
            if rows.len() >= max_rows {
                return Err(QueryError::TooManyRows(max_rows));
            }
            // 64-bit integers may come quoted (ClickHouse 18): numbers again.
            let vals = vals
                .into_iter()
                .zip(&numeric)
                .map(|(x, &num)| match (x, num) {
                    (Value::String(s), true) => s
                        .parse::<i64>()
                        .map(Value::from)
                        .or_else(|_| s.parse::<f64>().map(Value::from))
                        .unwrap_or(Value::String(s)),
                    (x, _) => x,
                })
                .collect();
            rows.push(vals);
        }
        Ok(Table { columns, rows })
    }

    fn has_table(&self, name: &str) -> bool {
        let sql = format!(
            "SELECT count() FROM system.tables WHERE database = '{}' AND name = '{}'",
            self.db,
            name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "")
        );
        self.client
            .query(&sql)
            .map(|s| s.trim() != "0")
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteBackend) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        drop(netspectra_store::open_write(&p).unwrap());
        let b = SqliteBackend::open(&p).unwrap();
        (dir, b)
    }

    fn sql(text: &str) -> Sql {
        Sql {
            text: text.into(),
            binds: vec![],
        }
    }

    #[test]
    fn a_statement_past_its_time_out_is_interrupted() {
        let (_d, b) = store();
        let long = sql("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000000) SELECT count(*) FROM c");
        let e = b.run(&long, 10, Duration::ZERO).unwrap_err();
        assert!(matches!(e, QueryError::Timeout(_)), "{e}");
        // The connection goes back to the pool usable.
        let t = b
            .run(
                &sql("SELECT count(*) FROM flows"),
                10,
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(t.rows, vec![vec![Value::from(0)]]);
    }

    #[test]
    fn more_rows_than_allowed_is_an_error_and_writes_are_refused() {
        let (_d, b) = store();
        let three = sql("SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3");
        assert!(matches!(
            b.run(&three, 2, Duration::from_secs(60)),
            Err(QueryError::TooManyRows(2))
        ));
        assert_eq!(
            b.run(&three, 3, Duration::from_secs(60))
                .unwrap()
                .rows
                .len(),
            3
        );
        let e = b
            .run(&sql("DELETE FROM flows"), 10, Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(e, QueryError::Backend(_)), "read-only: {e}");
        assert!(b.has_table("flows") && !b.has_table("alerts"));
    }
}
