//! A minimal ClickHouse HTTP client: statements and inserts as POST bodies, answers read
//! whole (bounded), errors naming the server and quoting ClickHouse's message.

use crate::{parse_status, url_encode, ClickHouseError};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Connect, read and write timeout of each request.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response read (answers to our statements and ClickHouse's errors are short).
const MAX_RESPONSE: u64 = 16 << 20;

/// One ClickHouse server.
#[derive(Clone, Debug)]
pub struct Client {
    host: String,
    addr: SocketAddr,
    timeout: Duration,
}

impl Client {
    /// Resolves `host:port`.
    pub fn new(host: &str) -> Result<Client, ClickHouseError> {
        let io_err = |source| ClickHouseError::Io {
            addr: host.to_string(),
            source,
        };
        let addr = host
            .to_socket_addrs()
            .map_err(io_err)?
            .next()
            .ok_or_else(|| io_err(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
        Ok(Client {
            host: host.to_string(),
            addr,
            timeout: TIMEOUT,
        })
    }

    /// The server as given (`host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Uses a shorter (or longer) timeout per request.
    pub fn with_timeout(mut self, t: Duration) -> Client {
        self.timeout = t;
        self
    }

    /// Runs a statement that returns nothing we need (CREATE ...).
    pub fn exec(&self, what: &'static str, sql: &str) -> Result<(), ClickHouseError> {
        self.post("/", what, sql.as_bytes()).map(|_| ())
    }

    /// Runs a query and returns its answer body (e.g. `SELECT count() ...` in TSV).
    pub fn query(&self, sql: &str) -> Result<String, ClickHouseError> {
        self.post("/", "SELECT", sql.as_bytes())
    }

    /// Inserts JSON lines into `table` (`db.table`); unknown fields are skipped.
    pub fn insert_json(&self, table: &str, rows: &[u8]) -> Result<(), ClickHouseError> {
        self.insert_json_with(table, rows, "")
    }

    /// [`Client::insert_json`] with more settings (`name=value&...`, e.g.
    /// `insert_distributed_sync=1`).
    pub fn insert_json_with(
        &self,
        table: &str,
        rows: &[u8],
        settings: &str,
    ) -> Result<(), ClickHouseError> {
        let path = format!(
            "/?input_format_skip_unknown_fields=1{}{settings}&query={}",
            if settings.is_empty() { "" } else { "&" },
            url_encode(&format!("INSERT INTO {table} FORMAT JSONEachRow"))
        );
        self.post(&path, "INSERT", rows).map(|_| ())
    }

    /// Sends one POST and returns the body of a 200 answer.
    pub fn post(
        &self,
        path: &str,
        what: &'static str,
        body: &[u8],
    ) -> Result<String, ClickHouseError> {
        let io_err = |source| ClickHouseError::Io {
            addr: self.host.clone(),
            source,
        };
        let mut c = TcpStream::connect_timeout(&self.addr, self.timeout).map_err(io_err)?;
        c.set_read_timeout(Some(self.timeout)).map_err(io_err)?;
        c.set_write_timeout(Some(self.timeout)).map_err(io_err)?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.host,
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
        let text = String::from_utf8_lossy(&resp);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let body = dechunk(&text, body);
        if status != 200 {
            return Err(ClickHouseError::Refused {
                addr: self.host.clone(),
                what,
                status,
                message: body.trim().chars().take(500).collect(),
            });
        }
        Ok(body)
    }
}

/// The body of an answer sent with `Transfer-Encoding: chunked` (ClickHouse's way for query
/// results), joined; other bodies as they are.
fn dechunk(all: &str, body: &str) -> String {
    let head = all.split_once("\r\n\r\n").map_or("", |(h, _)| h);
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_answers_are_joined() {
        let all = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n12\n\r\n2\r\n3\n\r\n0\r\n\r\n";
        let body = all.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(dechunk(all, body), "12\n3\n");
        let plain = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n1\n";
        assert_eq!(dechunk(plain, "1\n"), "1\n");
    }
}
