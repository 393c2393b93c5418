//! A private ClickHouse server for tests (Debian's clickhouse-server, on free loopback ports,
//! data in a temporary directory), which a test can stop and start again with the same data;
//! killed on drop. `start` fails the test under CI=true when the server is not installed
//! (netspectra_testnet::skip), and returns None with a SKIP line elsewhere.
#![allow(dead_code)] // each test file uses a different subset

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = "/usr/sbin/clickhouse-server";

/// A running (or stopped) private server.
pub struct ClickHouse {
    child: Option<Child>,
    dir: PathBuf,
    /// The network namespace it runs in (None: the test's own).
    ns: Option<String>,
    /// HTTP port.
    pub http: u16,
    tcp: u16,
    inter: u16,
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ClickHouse {
    /// Starts a server with its data under `dir`.
    pub fn start(dir: &Path) -> Option<ClickHouse> {
        Self::start_in(dir, None)
    }

    /// Starts a server inside network namespace `ns` (its loopback brought up), for probes
    /// that capture in that namespace.
    pub fn start_in(dir: &Path, ns: Option<&str>) -> Option<ClickHouse> {
        if !Path::new(EXE).exists() {
            netspectra_testnet::skip(
                "clickhouse",
                "clickhouse-server not installed (scripts/setup.sh installs it)",
            );
            return None;
        }
        if let Some(n) = ns {
            netspectra_testnet::ip(&["-n", n, "link", "set", "lo", "up"]);
        }
        let mut s = ClickHouse {
            child: None,
            dir: dir.to_path_buf(),
            ns: ns.map(str::to_string),
            http: free_port(),
            tcp: free_port(),
            inter: free_port(),
        };
        s.run();
        Some(s)
    }

    fn run(&mut self) {
        let d = |s: &str| format!("{}/{s}/", self.dir.display());
        let mut cmd = match &self.ns {
            Some(n) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", n, EXE]);
                c
            }
            None => Command::new(EXE),
        };
        let child = cmd
            .arg("--config-file=/etc/clickhouse-server/config.xml")
            .arg("--")
            .arg(format!("--path={}", d("data")))
            .arg(format!("--tmp_path={}", d("tmp")))
            .arg(format!("--user_files_path={}", d("user_files")))
            .arg(format!("--format_schema_path={}", d("schemas")))
            .arg(format!("--http_port={}", self.http))
            .arg(format!("--tcp_port={}", self.tcp))
            .arg(format!("--interserver_http_port={}", self.inter))
            .arg("--listen_host=127.0.0.1")
            .arg(format!(
                "--logger.log={}",
                self.dir.join("ch.log").display()
            ))
            .arg(format!(
                "--logger.errorlog={}",
                self.dir.join("ch.err").display()
            ))
            .arg("--logger.console=0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let t0 = Instant::now();
        while self.query("SELECT 1").as_deref() != Some("1\n") {
            assert!(
                self.child.as_mut().unwrap().try_wait().unwrap().is_none(),
                "clickhouse-server exited; see {}",
                self.dir.join("ch.err").display()
            );
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "clickhouse-server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server at once (SIGKILL: inserts in flight may or may not have been stored).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// Runs one query over the HTTP interface (a raw HTTP/1.0 POST; 64-bit integers as JSON
    /// numbers); None when the server does not answer 200.
    pub fn query(&self, sql: &str) -> Option<String> {
        match &self.ns {
            Some(n) => netspectra_testnet::in_ns(n, || query(self.http, sql)),
            None => query(self.http, sql),
        }
    }

    /// A query's single number.
    pub fn count(&self, sql: &str) -> u64 {
        self.query(sql)
            .unwrap_or_else(|| panic!("query failed: {sql}"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// One query to the server on `port` (see [`ClickHouse::query`]).
pub fn query(port: u16, sql: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "POST /?output_format_json_quote_64bit_integers=0 HTTP/1.0\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    );
    c.write_all(req.as_bytes()).ok()?;
    let mut r = String::new();
    c.read_to_string(&mut r).ok()?;
    let (head, body) = r.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_string())
}
