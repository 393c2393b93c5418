//! Flow records into a ClickHouse table through ClickHouse's HTTP interface.
//!
//! Rows are the flow records' JSON lines (the same bytes as `flows.jsonl`), inserted with
//! `INSERT INTO db.table FORMAT JSONEachRow`, one insert per batch of ended flows (ClickHouse
//! wants few large inserts rather than many small ones). At start the database and a
//! MergeTree table whose columns are the record's fields are created when missing, plus a
//! `start_time DateTime` column materialized from `start` for time-range queries. A failed
//! insert is an error naming the server and quoting ClickHouse's message: rows are never
//! dropped silently. Only the standard library is used (HTTP/1.1, one connection per request).

use netspectra_flow::{record::write_jsonl, EndedFlow};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Default port of ClickHouse's HTTP interface.
pub const DEFAULT_PORT: u16 = 8123;
/// Connect, read and write timeout of each request.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Rows (JSON bytes) gathered before an insert: ClickHouse makes one data part per insert,
/// so a few large inserts cost it less than many small ones.
pub const BATCH_BYTES: usize = 16 << 20;
/// Longest a row waits for its insert (live captures).
pub const BATCH_AGE: Duration = Duration::from_secs(1);
/// Largest response read (ClickHouse's error messages are short).
const MAX_RESPONSE: u64 = 1 << 20;

/// Columns of the flow table, in the order of the JSON record's fields.
pub const COLUMNS: &str = "start String, end String, duration Float64, \
src_ip String, src_port UInt16, dst_ip String, dst_port UInt16, proto UInt8, \
vlan Nullable(UInt16), community_id String, \
fwd_packets UInt64, fwd_bytes UInt64, fwd_ip_bytes UInt64, \
rev_packets UInt64, rev_bytes UInt64, rev_ip_bytes UInt64, \
fwd_tcp_flags String, rev_tcp_flags String, end_reason String, \
start_time DateTime MATERIALIZED parseDateTimeBestEffort(start)";

/// Why talking to ClickHouse failed.
#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    /// The URL is not `clickhouse://HOST[:PORT]/[DB.]TABLE`.
    #[error("bad ClickHouse URL {url:?}: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The server could not be reached or the connection broke.
    #[error("ClickHouse at {addr}: {source}")]
    Io {
        /// Server address.
        addr: String,
        /// The I/O error.
        source: io::Error,
    },
    /// ClickHouse answered with an error status.
    #[error("ClickHouse at {addr} refused {what}: HTTP {status}: {message}")]
    Refused {
        /// Server address.
        addr: String,
        /// The statement (CREATE, INSERT).
        what: &'static str,
        /// HTTP status code.
        status: u16,
        /// ClickHouse's error text.
        message: String,
    },
}

/// Where rows go: server, database and table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `host:port` as given.
    pub host: String,
    /// Database (`default` when the URL names only a table).
    pub database: String,
    /// Table.
    pub table: String,
}

/// Parses `clickhouse://HOST[:PORT]/[DB.]TABLE`; names are limited to `[A-Za-z0-9_]`, so
/// they need no quoting in SQL.
pub fn parse_url(url: &str) -> Result<Target, ClickHouseError> {
    let bad = |why| ClickHouseError::Url {
        url: url.to_string(),
        why,
    };
    let rest = url
        .strip_prefix("clickhouse://")
        .ok_or_else(|| bad("expected clickhouse://HOST[:PORT]/[DB.]TABLE"))?;
    let (host, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("no table: expected clickhouse://HOST[:PORT]/[DB.]TABLE"))?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let host =
        if host.starts_with('[') || host.rsplit_once(':').is_some_and(|(h, _)| !h.contains(':')) {
            host.to_string()
        } else {
            format!("{host}:{DEFAULT_PORT}")
        };
    let (database, table) = match path.split_once('.') {
        Some((d, t)) => (d, t),
        None => ("default", path),
    };
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ident(database) || !ident(table) {
        return Err(bad("database and table names are letters, digits and _"));
    }
    Ok(Target {
        host,
        database: database.to_string(),
        table: table.to_string(),
    })
}

/// Counts of what reached ClickHouse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Rows inserted (acknowledged by the server).
    pub rows: u64,
    /// INSERT requests acknowledged.
    pub inserts: u64,
    /// Bytes of JSON rows sent.
    pub bytes: u64,
}

/// A flow table in ClickHouse, created on connect when missing.
pub struct ClickHouseSink {
    target: Target,
    addr: SocketAddr,
    insert_path: String,
    body: Vec<u8>,
    pending: u64,
    stats: SinkStats,
    /// When the oldest row waiting for an insert was added.
    oldest: Option<Instant>,
}

impl ClickHouseSink {
    /// Resolves the server, then creates the database and the table if they do not exist.
    pub fn connect(url: &str) -> Result<Self, ClickHouseError> {
        let target = parse_url(url)?;
        let io_err = |source| ClickHouseError::Io {
            addr: target.host.clone(),
            source,
        };
        let addr = target
            .host
            .to_socket_addrs()
            .map_err(io_err)?
            .next()
            .ok_or_else(|| io_err(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
        let full = format!("{}.{}", target.database, target.table);
        let insert_path = format!(
            "/?input_format_skip_unknown_fields=1&query={}",
            url_encode(&format!("INSERT INTO {full} FORMAT JSONEachRow"))
        );
        let sink = ClickHouseSink {
            target,
            addr,
            insert_path,
            body: Vec::new(),
            pending: 0,
            stats: SinkStats::default(),
            oldest: None,
        };
        let db = format!("CREATE DATABASE IF NOT EXISTS {}", sink.target.database);
        sink.post("/", "CREATE DATABASE", db.as_bytes())?;
        let table = format!(
            "CREATE TABLE IF NOT EXISTS {full} ({COLUMNS}) ENGINE = MergeTree() \
             PARTITION BY toYYYYMMDD(start_time) ORDER BY (start_time, src_ip, dst_ip)"
        );
        sink.post("/", "CREATE TABLE", table.as_bytes())?;
        Ok(sink)
    }

    /// The server, database and table.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Adds the records of `flows` to the next insert.
    pub fn add(&mut self, flows: &[EndedFlow]) {
        if self.pending == 0 && !flows.is_empty() {
            self.oldest = Some(Instant::now());
        }
        for f in flows {
            write_jsonl(f, &mut self.body);
        }
        self.pending += flows.len() as u64;
    }

    /// Inserts the rows added so far once they are worth an insert: at least
    /// [`BATCH_BYTES`] of them, or the oldest waiting for [`BATCH_AGE`]. Call it at least that
    /// often while rows wait (a quiet live capture), and [`ClickHouseSink::flush`] at the end.
    pub fn maybe_flush(&mut self) -> Result<(), ClickHouseError> {
        let old = self.oldest.is_some_and(|t| t.elapsed() >= BATCH_AGE);
        if self.body.len() >= BATCH_BYTES || old {
            self.flush()?;
        }
        Ok(())
    }

    /// Inserts the rows added since the last call (nothing when there are none).
    pub fn flush(&mut self) -> Result<(), ClickHouseError> {
        self.oldest = None;
        if self.pending == 0 {
            return Ok(());
        }
        let r = self.post(&self.insert_path, "INSERT", &self.body);
        let (rows, bytes) = (std::mem::take(&mut self.pending), self.body.len() as u64);
        // The buffer is reused whatever happened; failed rows are reported, not retried.
        self.body.clear();
        r?;
        self.stats.rows += rows;
        self.stats.inserts += 1;
        self.stats.bytes += bytes;
        Ok(())
    }

    /// What reached the server so far.
    pub fn stats(&self) -> SinkStats {
        self.stats
    }

    /// Sends one POST and checks for status 200.
    fn post(&self, path: &str, what: &'static str, body: &[u8]) -> Result<(), ClickHouseError> {
        let io_err = |source| ClickHouseError::Io {
            addr: self.target.host.clone(),
            source,
        };
        let mut c = TcpStream::connect_timeout(&self.addr, TIMEOUT).map_err(io_err)?;
        c.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
        c.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.target.host,
            body.len()
        );
        c.write_all(head.as_bytes()).map_err(io_err)?;
        c.write_all(body).map_err(io_err)?;
        let mut resp = Vec::new();
        c.take(MAX_RESPONSE)
            .read_to_end(&mut resp)
            .map_err(io_err)?;
        let status = parse_status(&resp).ok_or_else(|| {
            io_err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no HTTP status line in the answer",
            ))
        })?;
        if status != 200 {
            let text = String::from_utf8_lossy(&resp);
            let message = text
                .split_once("\r\n\r\n")
                .map_or("", |(_, b)| b)
                .trim()
                .chars()
                .take(500)
                .collect();
            return Err(ClickHouseError::Refused {
                addr: self.target.host.clone(),
                what,
                status,
                message,
            });
        }
        Ok(())
    }
}

/// The status code of an HTTP/1.x answer.
fn parse_status(resp: &[u8]) -> Option<u16> {
    let line = resp.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

/// Percent-encodes a query parameter value.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_database_and_table() {
        let t = parse_url("clickhouse://127.0.0.1:18123/netspectra.flows").unwrap();
        assert_eq!(
            t,
            Target {
                host: "127.0.0.1:18123".into(),
                database: "netspectra".into(),
                table: "flows".into()
            }
        );
        let t = parse_url("clickhouse://db.example/flows").unwrap();
        assert_eq!(
            (t.host.as_str(), t.database.as_str()),
            ("db.example:8123", "default")
        );
        assert_eq!(parse_url("clickhouse://[::1]:9/x").unwrap().host, "[::1]:9");
        for bad in [
            "http://h/t",
            "clickhouse://h",
            "clickhouse:///t",
            "clickhouse://h/",
            "clickhouse://h/a.b.c",
            "clickhouse://h/t;drop",
            "clickhouse://h/t x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_lines_and_encoding() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 500 Internal\r\n"), Some(500));
        assert_eq!(parse_status(b"garbage"), None);
        assert_eq!(parse_status(b""), None);
        assert_eq!(
            url_encode("INSERT INTO a.b FORMAT X"),
            "INSERT%20INTO%20a.b%20FORMAT%20X"
        );
    }
}
