//! Record streams into ClickHouse through its HTTP interface, one table per stream.
//!
//! Rows are the records' JSON lines (the same bytes as the record files), inserted with
//! `INSERT INTO db.table FORMAT JSONEachRow`, one insert per batch. Databases and MergeTree
//! tables whose columns are the records' fields are created when missing ([`schema`]). The
//! sink ([`sink::ClickHouseSink`]) runs under the common delivery runner, which queues, spools
//! and retries; a refused insert is reported with ClickHouse's message. Only the standard
//! library is used (HTTP/1.1, one connection per request).

pub mod client;
pub mod schema;
pub mod sink;

pub use client::Client;
pub use sink::{add_ids, ClickHouseSink, SinkOptions, SinkStats};

use std::io;

/// Default port of ClickHouse's HTTP interface.
pub const DEFAULT_PORT: u16 = 8123;

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

impl ClickHouseError {
    /// True when trying again later may succeed (the server down or busy), false when the
    /// request itself is wrong (bad data, a bad name).
    pub fn retryable(&self) -> bool {
        match self {
            ClickHouseError::Url { .. } => false,
            ClickHouseError::Io { .. } => true,
            ClickHouseError::Refused {
                status, message, ..
            } => *status >= 500 && !is_data_error(message),
        }
    }
}

/// ClickHouse's codes for rows it cannot parse or store (retrying cannot help): "Code: 26" ...
fn is_data_error(message: &str) -> bool {
    const CODES: [&str; 8] = [
        "Code: 26,",
        "Code: 27,",
        "Code: 38,",
        "Code: 41,",
        "Code: 53,",
        "Code: 62,",
        "Code: 69,",
        "Code: 117,",
    ];
    CODES.iter().any(|c| message.contains(c))
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

/// Parses `clickhouse://HOST[:PORT]/DB` (a database: one table per stream). Names are limited
/// to `[A-Za-z0-9_]`, so they need no quoting in SQL.
pub fn parse_database_url(url: &str) -> Result<(String, String), ClickHouseError> {
    let t = parse_url(&format!("{url}.x")).map_err(|e| match e {
        ClickHouseError::Url { why, .. } => ClickHouseError::Url {
            url: url.to_string(),
            why: if why.starts_with("no table") {
                "no database: expected clickhouse://HOST[:PORT]/DB"
            } else {
                why
            },
        },
        e => e,
    })?;
    if url
        .trim_end_matches('/')
        .rsplit_once('/')
        .is_some_and(|(_, db)| db.contains('.'))
    {
        return Err(ClickHouseError::Url {
            url: url.to_string(),
            why: "expected clickhouse://HOST[:PORT]/DB (tables are named after the streams)",
        });
    }
    Ok((t.host, t.database))
}

/// True when a name needs no quoting in SQL (`[A-Za-z0-9_]`, not empty).
pub fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
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
    if !is_ident(database) || !is_ident(table) {
        return Err(bad("database and table names are letters, digits and _"));
    }
    Ok(Target {
        host,
        database: database.to_string(),
        table: table.to_string(),
    })
}

/// The status code of an HTTP/1.x answer.
pub(crate) fn parse_status(resp: &[u8]) -> Option<u16> {
    let line = resp.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

/// Percent-encodes a query parameter value.
pub(crate) fn url_encode(s: &str) -> String {
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
    fn database_urls_name_host_and_database() {
        assert_eq!(
            parse_database_url("clickhouse://127.0.0.1:9000/netspectra").unwrap(),
            ("127.0.0.1:9000".to_string(), "netspectra".to_string())
        );
        assert_eq!(parse_database_url("clickhouse://h/db").unwrap().0, "h:8123");
        for bad in [
            "clickhouse://h",
            "clickhouse://h/",
            "clickhouse://h/a.b",
            "clickhouse://h/x;y",
        ] {
            assert!(parse_database_url(bad).is_err(), "{bad}");
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
