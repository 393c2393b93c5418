//! Prometheus metrics for long-running commands (`flows -i`, `guard run`): a writer of the text
//! exposition format (version 0.0.4) and a small HTTP endpoint that renders it on every
//! `GET /metrics`.
//!
//! The endpoint is pull-based, like every Prometheus exporter: nothing is computed between
//! scrapes, and the render callback reads whatever the command already keeps (atomic counters,
//! BPF maps). One thread serves one connection at a time with short timeouts, so a slow or
//! hostile client can delay a scrape but never the command's own work; requests are bounded in
//! size and anything but `GET`/`HEAD` of `/metrics` (or `/`) gets a plain error status.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Largest request head read (bytes); longer requests get 431.
const MAX_REQUEST: usize = 8192;
/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a closing connection waits for the client's unread bytes.
const LINGER: Duration = Duration::from_millis(200);
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Kinds of metric families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A monotonically increasing count (name ends in `_total` by convention).
    Counter,
    /// A value that goes up and down.
    Gauge,
}

/// Builds one exposition: families of samples, each family announced once by `# HELP` and
/// `# TYPE` lines before its first sample.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
    /// Name of the family whose header was written last.
    open: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample of family `name` (kind `kind`, described by `help`) with `labels`.
    /// Samples of one family must be added one after the other.
    pub fn sample(&mut self, name: &str, kind: Kind, help: &str, labels: &[(&str, &str)], v: f64) {
        debug_assert!(valid_name(name), "bad metric name {name:?}");
        if self.open != name {
            self.open.clear();
            self.open.push_str(name);
            let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
            let t = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(self.text, "# TYPE {name} {t}");
        }
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                debug_assert!(valid_name(k) && !k.contains(':'), "bad label name {k:?}");
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(k);
                self.text.push_str("=\"");
                escape_label(&mut self.text, val);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        push_value(&mut self.text, v);
        self.text.push('\n');
    }

    /// Adds an unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str, v: u64) {
        self.sample(name, Kind::Counter, help, &[], v as f64);
    }

    /// Adds an unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.sample(name, Kind::Gauge, help, &[], v);
    }

    /// The exposition text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Empties the exposition for reuse.
    pub fn clear(&mut self) {
        self.text.clear();
        self.open.clear();
    }
}

/// True for a valid metric or label name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn valid_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// The answer of `/readyz`: ready or not, and why (JSON-encoded into the body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Ready to serve (capture open, every sink delivering).
    pub ready: bool,
    /// What is not ready (empty when ready).
    pub reasons: Vec<String>,
}

/// Options of an endpoint beyond `/metrics`.
#[derive(Default)]
pub struct EndpointOptions {
    /// A bearer token every request must carry (`Authorization: Bearer TOKEN`); required
    /// when the endpoint listens on a non-loopback address.
    pub token: Option<String>,
    /// Answers `/readyz`; `/healthz` (alive) is served whenever this is set.
    pub readiness: Option<Box<dyn Fn() -> Readiness + Send>>,
}

/// A running `/metrics` endpoint; stops (and joins its thread) when dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` (e.g. `127.0.0.1:9464`; port 0 picks one) and serves the exposition
    /// that `render` fills, freshly for every scrape.
    pub fn start<A, F>(addr: A, render: F) -> io::Result<MetricsServer>
    where
        A: ToSocketAddrs,
        F: FnMut(&mut Exposition) + Send + 'static,
    {
        Self::start_with(addr, render, EndpointOptions::default())
    }

    /// [`MetricsServer::start`] with health routes and a token. A non-loopback address
    /// without a token is refused (an endpoint open to the network must authenticate).
    pub fn start_with<A, F>(
        addr: A,
        mut render: F,
        opts: EndpointOptions,
    ) -> io::Result<MetricsServer>
    where
        A: ToSocketAddrs,
        F: FnMut(&mut Exposition) + Send + 'static,
    {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && opts.token.as_deref().is_none_or(str::is_empty) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{addr} is not a loopback address: a token is required"),
            ));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let mut page = Exposition::new();
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            // A client that misbehaves only ends its own connection.
                            let _ = serve(conn, &mut page, &mut render, &opts);
                        }
                        // Nothing waiting (or a failed accept): look again shortly.
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request on `conn`.
fn serve(
    mut conn: TcpStream,
    page: &mut Exposition,
    render: &mut dyn FnMut(&mut Exposition),
    opts: &EndpointOptions,
) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    conn.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    // A client trickling bytes is cut off at the deadline, not at every read's timeout.
    let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if std::time::Instant::now() > deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if head.len() > MAX_REQUEST {
            return respond(&mut conn, "431 Request Header Fields Too Large", "", b"");
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    if let Some(t) = &opts.token {
        if !authorized(&head, t) {
            return respond(&mut conn, "401 Unauthorized", "", b"");
        }
    }
    match route(&head) {
        Route::NotAllowed => respond(&mut conn, "405 Method Not Allowed", "", b""),
        Route::NotFound => respond(&mut conn, "404 Not Found", "", b""),
        Route::Health if opts.readiness.is_some() => {
            respond(&mut conn, "200 OK", "text/plain", b"ok\n")
        }
        Route::Ready => match &opts.readiness {
            Some(f) => {
                let r = f();
                let body = format!(
                    "{{\"ready\":{},\"reasons\":[{}]}}\n",
                    r.ready,
                    r.reasons
                        .iter()
                        .map(|x| json_string(x))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                let status = if r.ready {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                respond(&mut conn, status, "application/json", body.as_bytes())
            }
            None => respond(&mut conn, "404 Not Found", "", b""),
        },
        Route::Health => respond(&mut conn, "404 Not Found", "", b""),
        Route::Metrics { head_only } => {
            page.clear();
            render(page);
            let body = if head_only {
                &b""[..]
            } else {
                page.as_str().as_bytes()
            };
            respond(&mut conn, "200 OK", CONTENT_TYPE, body)
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// The exposition (`GET`), or only its headers (`HEAD`).
    Metrics { head_only: bool },
    /// `/healthz`: alive.
    Health,
    /// `/readyz`: capture open and every sink delivering.
    Ready,
    /// Another path.
    NotFound,
    /// Another method.
    NotAllowed,
}

/// Routes a request by its first line (`METHOD TARGET VERSION`); any bytes are accepted.
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        Route::NotAllowed
    } else if path == "/healthz" {
        Route::Health
    } else if path == "/readyz" {
        Route::Ready
    } else if path != "/metrics" && path != "/" {
        Route::NotFound
    } else {
        Route::Metrics {
            head_only: method == "HEAD",
        }
    }
}

/// True when the request carries `Authorization: Bearer TOKEN` (compared in constant time).
fn authorized(head: &[u8], token: &str) -> bool {
    let text = String::from_utf8_lossy(head);
    text.lines().skip(1).any(|l| {
        let Some((name, value)) = l.split_once(':') else {
            return false;
        };
        if !name.trim().eq_ignore_ascii_case("authorization") {
            return false;
        }
        let v = value.trim();
        let Some(given) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        else {
            return false;
        };
        let (a, b) = (given.trim().as_bytes(), token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
    })
}

/// A string as a JSON literal.
fn json_string(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn respond(conn: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    if !ctype.is_empty() {
        let _ = write!(head, "Content-Type: {ctype}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()?;
    // Closing with unread request bytes would reset the connection and could destroy the
    // answer before the client reads it: half-close, then drain briefly.
    conn.shutdown(std::net::Shutdown::Write)?;
    conn.set_read_timeout(Some(LINGER))?;
    let mut sink = [0u8; 4096];
    let mut left = MAX_REQUEST * 8;
    while left > 0 {
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, req: &str) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn exposition_has_one_header_per_family_and_escapes_labels() {
        let mut e = Exposition::new();
        e.counter("x_packets_total", "Packets seen.", 42);
        e.sample(
            "x_map_entries",
            Kind::Gauge,
            "Entries.\nSecond line",
            &[("map", "a\"b\\c\nd")],
            7.0,
        );
        e.sample(
            "x_map_entries",
            Kind::Gauge,
            "Entries.",
            &[("map", "s")],
            1.5,
        );
        e.gauge("x_ratio", "Ratio.", f64::NAN);
        let want = "# HELP x_packets_total Packets seen.\n# TYPE x_packets_total counter\nx_packets_total 42\n\
# HELP x_map_entries Entries.\\nSecond line\n# TYPE x_map_entries gauge\nx_map_entries{map=\"a\\\"b\\\\c\\nd\"} 7\n\
x_map_entries{map=\"s\"} 1.5\n# HELP x_ratio Ratio.\n# TYPE x_ratio gauge\nx_ratio NaN\n";
        assert_eq!(e.as_str(), want);
    }

    #[test]
    fn requests_are_routed_by_method_and_path() {
        let m = |h: bool| Route::Metrics { head_only: h };
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n\r\n"), m(false));
        assert_eq!(route(b"GET /?a=b HTTP/1.0\n\n"), m(false));
        assert_eq!(route(b"HEAD /metrics HTTP/1.1\r\n"), m(true));
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n"), Route::NotFound);
        assert_eq!(route(b"PUT /metrics HTTP/1.1\r\n"), Route::NotAllowed);
        assert_eq!(route(b""), Route::NotAllowed);
        assert_eq!(route(b"\xff\xfe GET"), Route::NotAllowed);
    }

    proptest::proptest! {
        /// Any request bytes route somewhere without panicking, and only a GET or HEAD line
        /// reaches the exposition.
        #[test]
        fn any_bytes_route_without_panic(head in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Route::Metrics { .. } = route(&head) {
                let line = head.split(|&b| b == b'\n').next().unwrap();
                let l = String::from_utf8_lossy(line);
                proptest::prop_assert!(l.trim_start().starts_with("GET") || l.trim_start().starts_with("HEAD"));
            }
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("netspectra_guard_packets_total"));
        assert!(valid_name("a:b_1"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn serves_fresh_values_and_rejects_other_requests() {
        let mut n = 0u64;
        let srv = MetricsServer::start("127.0.0.1:0", move |e| {
            n += 1;
            e.counter("scrapes_total", "Scrapes.", n);
        })
        .unwrap();
        let a = srv.local_addr();
        let r1 = get(a, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let r2 = get(a, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(r1.starts_with("HTTP/1.1 200 OK\r\n"), "{r1}");
        assert!(r1.contains(CONTENT_TYPE));
        assert!(r1.ends_with("\nscrapes_total 1\n"), "{r1}");
        assert!(r2.ends_with("\nscrapes_total 2\n"), "{r2}");
        let body = r1.split("\r\n\r\n").nth(1).unwrap();
        assert!(r1.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(get(a, "GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(a, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        let head = get(a, "HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        assert!(get(a, &huge).starts_with("HTTP/1.1 431"));
    }

    #[test]
    fn a_silent_client_does_not_block_the_next_scrape_forever() {
        let srv = MetricsServer::start("127.0.0.1:0", |e| e.counter("up_total", "Up.", 1)).unwrap();
        let a = srv.local_addr();
        let _silent = TcpStream::connect(a).unwrap();
        let t = std::time::Instant::now();
        let r = get(a, "GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.ends_with("up_total 1\n"));
        // Bounded by the client timeout, not by the silent client.
        assert!(t.elapsed() < CLIENT_TIMEOUT * 3, "{:?}", t.elapsed());
    }

    #[test]
    fn dropping_the_server_frees_the_port() {
        let srv = MetricsServer::start("127.0.0.1:0", |_| {}).unwrap();
        let a = srv.local_addr();
        drop(srv);
        TcpListener::bind(a).expect("port free again after drop");
    }
}
