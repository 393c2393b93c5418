//! Private servers of the scale-out tests, all on free loopback ports with their data in a
//! temporary directory, each started and stopped by PID (killed on drop): a NATS JetStream
//! cluster (Debian's nats-server), ZooKeeper (run directly with java, no admin server), and a
//! ClickHouse cluster of shards × replicas (each server with its own config.xml).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NATS: &str = "/usr/sbin/nats-server";
pub const CLICKHOUSE: &str = "/usr/sbin/clickhouse-server";
const ZK_JARS: [&str; 4] = [
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/zookeeper-jute.jar",
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];

/// A loopback port for a server of these tests: below Linux's ephemeral range (32768-60999),
/// so that neither an outgoing connection of any process nor another program's `bind(0)` can
/// take it between now and the server's own bind; chosen at random, never handed out twice
/// by this process, and free right now (bind checked).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static USED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut used = USED.lock().unwrap_or_else(|p| p.into_inner());
    if STATE.load(Ordering::Relaxed) == 0 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        STATE.store(
            t ^ ((std::process::id() as u64) << 32) | 1,
            Ordering::Relaxed,
        );
    }
    for _ in 0..10_000 {
        // xorshift64
        let mut x = STATE.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        STATE.store(x, Ordering::Relaxed);
        let port = 20_000 + (x % 12_000) as u16;
        if used.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            used.push(port);
            return port;
        }
    }
    panic!("no free loopback port in 20000-31999");
}

/// The last `n` bytes of a log file (for a failure message: the test's folder is deleted).
pub fn log_tail(p: &Path, n: usize) -> String {
    let text = std::fs::read(p).unwrap_or_default();
    let from = text.len().saturating_sub(n);
    format!(
        "--- {} (last {} bytes) ---\n{}",
        p.display(),
        text.len() - from,
        String::from_utf8_lossy(&text[from..])
    )
}

/// Waits until `port` accepts connections; Err (with the reason) when the process exited or
/// 60 s passed.
fn wait_port(port: u16, child: &mut Child) -> Result<(), String> {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.try_wait().unwrap() {
            return Err(format!("exited at start ({st})"));
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err("no listening port after 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Starts a server with `spawn` and waits with `ready` (Ok when ready, Err(reason) when it
/// failed), up to `attempts` times (1 s apart, a failed process killed). Every failure is
/// printed with the tail of the server's logs (the test's folder is deleted afterwards); Err
/// carries the last one.
fn start_retrying(
    what: &str,
    logs: &[PathBuf],
    attempts: usize,
    mut spawn: impl FnMut() -> Child,
    mut ready: impl FnMut(&mut Child) -> Result<(), String>,
) -> Result<Child, String> {
    let mut last = String::new();
    for attempt in 1..=attempts {
        let mut c = spawn();
        match ready(&mut c) {
            Ok(()) => return Ok(c),
            Err(why) => {
                let _ = c.kill();
                let _ = c.wait();
                let tails: Vec<String> = logs.iter().map(|l| log_tail(l, 3000)).collect();
                last = format!(
                    "{what}: {why} (attempt {attempt} of {attempts})\n{}",
                    tails.join("\n")
                );
                eprintln!("{last}");
                if attempt < attempts {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
    Err(last)
}

/// A token that tells this test's servers from any other's on the same machine (each server
/// is asked for it once it answers: a port taken by another program's server is noticed).
fn run_token() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{}x{}", std::process::id(), t % 1_000_000_000_000)
}

/// Runs `start` (a whole set of servers on fresh ports) up to 3 times: a failed round is
/// torn down (its value dropped, which kills its processes) and made again on new ports.
fn fresh_start<T>(what: &str, mut start: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::new();
    for round in 1..=3 {
        match start() {
            Ok(v) => return v,
            Err(e) => {
                eprintln!("{what}: round {round} of 3 failed, starting again on new ports: {e}");
                last = e;
            }
        }
    }
    panic!("{what} did not start in 3 rounds: {last}");
}

/// True when every server binary the tests need is installed; otherwise reports the skip
/// (a failure under CI=true).
pub fn servers_installed(what: &str) -> bool {
    let java = Command::new("java").arg("-version").output().is_ok();
    for (p, ok) in [
        (NATS, Path::new(NATS).exists()),
        (CLICKHOUSE, Path::new(CLICKHOUSE).exists()),
        (ZK_JARS[0], Path::new(ZK_JARS[0]).exists()),
        ("java", java),
    ] {
        if !ok {
            netspectra_testnet::skip(
                what,
                &format!("{p} not installed (scripts/setup.sh installs it)"),
            );
            return false;
        }
    }
    true
}

/// One process, killed on drop.
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A NATS cluster (or a single server when `n` is 1) with JetStream.
pub struct Nats {
    dir: PathBuf,
    token: String,
    pub ports: Vec<u16>,
    routes: Vec<u16>,
    /// Monitoring ports (0: none).
    pub monitor: Vec<u16>,
    /// Each server's JetStream storage (`max_file_store`).
    store: &'static str,
    procs: Vec<Proc>,
}

/// The JetStream storage the test servers declare. Set, because unset a server takes 75% of the
/// disk free when it starts, and a machine with less than ~11 GB free then refuses to place the
/// collector's stream (8 GiB by default); the tests store a few hundred MB at most.
const TEST_STORE: &str = "16G";

impl Nats {
    pub fn start(dir: &Path, n: usize) -> Nats {
        Self::start_with(dir, n, false, TEST_STORE)
    }

    /// [`Nats::start`] with `store` of JetStream storage per server (`1G`, ...).
    pub fn start_with_store(dir: &Path, n: usize, store: &'static str) -> Nats {
        Self::start_with(dir, n, false, store)
    }

    /// [`Nats::start`] with monitoring endpoints (`/jsz`, `/varz`) on loopback.
    pub fn start_monitored(dir: &Path, n: usize) -> Nats {
        Self::start_with(dir, n, true, TEST_STORE)
    }

    fn start_with(dir: &Path, n: usize, monitored: bool, store: &'static str) -> Nats {
        std::fs::create_dir_all(dir).unwrap();
        fresh_start("nats cluster", || {
            let mut s = Nats {
                dir: dir.to_path_buf(),
                token: run_token(),
                ports: (0..n).map(|_| free_port()).collect(),
                routes: (0..n).map(|_| free_port()).collect(),
                monitor: (0..n)
                    .map(|_| if monitored { free_port() } else { 0 })
                    .collect(),
                store,
                procs: (0..n).map(|_| Proc(None)).collect(),
            };
            for i in 0..n {
                let _ = std::fs::remove_dir_all(dir.join(format!("store{i}")));
                s.run(i, 1)?;
            }
            Ok(s)
        })
    }

    /// `nats://127.0.0.1:P,...`
    pub fn url(&self) -> String {
        let v: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("nats://{}", v.join(","))
    }

    fn run(&mut self, i: usize, attempts: usize) -> Result<(), String> {
        let cfg = self.dir.join(format!("n{i}.conf"));
        let name = format!("n{i}-{}", self.token);
        let mut text = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{}\n\
             jetstream {{ store_dir: \"{}\", max_file_store: {} }}\n",
            self.ports[i],
            self.dir.join(format!("store{i}")).display(),
            self.store
        );
        if self.monitor[i] != 0 {
            text.push_str(&format!("http: 127.0.0.1:{}\n", self.monitor[i]));
        }
        if self.ports.len() > 1 {
            let routes: Vec<String> = self
                .routes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            text.push_str(&format!(
                "cluster {{ name: nsbus, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                self.routes[i],
                routes.join(", ")
            ));
        }
        std::fs::write(&cfg, text).unwrap();
        let log = self.dir.join(format!("n{i}.log"));
        let port = self.ports[i];
        let c = start_retrying(
            &format!("nats-server n{i} on port {port}"),
            std::slice::from_ref(&log),
            attempts,
            || {
                Command::new(NATS)
                    .args(["-c", cfg.to_str().unwrap(), "-l", log.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start nats-server")
            },
            |c| {
                wait_port(port, c)?;
                // Ours, not another program's on that port: the INFO line names the server.
                let info = nats_info(port).unwrap_or_default();
                if !info.contains(&format!("\"server_name\":\"{name}\"")) {
                    return Err(format!("port {port} answers as another server: {info}"));
                }
                Ok(())
            },
        )?;
        self.procs[i] = Proc(Some(c));
        Ok(())
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        self.procs[i].kill();
    }

    /// Starts node `i` again with its store (same ports; up to 3 attempts).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        if let Err(e) = self.run(i, 3) {
            panic!("{e}");
        }
    }
}

/// The INFO line a NATS server sends first.
fn nats_info(port: u16) -> Option<String> {
    use std::io::BufRead;
    let c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(c).read_line(&mut line).ok()?;
    Some(line)
}

/// A standalone ZooKeeper.
pub struct ZooKeeper {
    pub port: u16,
    _proc: Proc,
}

impl ZooKeeper {
    pub fn start(dir: &Path) -> ZooKeeper {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(
            dir.join("log4j.properties"),
            "log4j.rootLogger=WARN, F\nlog4j.appender.F=org.apache.log4j.FileAppender\n\
             log4j.appender.F.File=zk.log\nlog4j.appender.F.layout=org.apache.log4j.PatternLayout\n",
        )
        .unwrap();
        let data = dir.join("data").display().to_string();
        fresh_start("zookeeper", || {
            let port = free_port();
            std::fs::write(
                dir.join("zoo.cfg"),
                format!(
                    "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={data}\nclientPort={port}\n\
                     clientPortAddress=127.0.0.1\nadmin.enableServer=false\n\
                     4lw.commands.whitelist=ruok,conf\n",
                ),
            )
            .unwrap();
            let cp = format!("{}:{}", dir.display(), ZK_JARS.join(":"));
            let log = dir.join("zk.out");
            let c = start_retrying(
                &format!("zookeeper on port {port}"),
                &[log.clone(), dir.join("zk.log")],
                1,
                || {
                    Command::new("java")
                        .current_dir(dir)
                        .args([
                            "-Xmx256m",
                            "-cp",
                            &cp,
                            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                            dir.join("zoo.cfg").to_str().unwrap(),
                        ])
                        .stdout(std::fs::File::create(&log).unwrap())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("start zookeeper")
                },
                |c| {
                    wait_port(port, c)?;
                    // Serving, not only listening: `conf` answers with the configuration
                    // (`ruok` says `imok` before the server serves requests), and it is ours,
                    // not another program's on that port: its data folder is ours.
                    let t0 = Instant::now();
                    loop {
                        let conf = four_letter(port, "conf").unwrap_or_default();
                        if conf.contains(&format!("dataDir={data}")) {
                            return Ok(());
                        }
                        if conf.contains("dataDir=") {
                            return Err(format!(
                                "port {port} answers as another ZooKeeper: {conf}"
                            ));
                        }
                        if c.try_wait().unwrap().is_some() {
                            return Err("exited at start".into());
                        }
                        if t0.elapsed() > Duration::from_secs(60) {
                            return Err(format!("not serving after 60 s: {conf}"));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                },
            )?;
            Ok(ZooKeeper {
                port,
                _proc: Proc(Some(c)),
            })
        })
    }
}

/// A ZooKeeper four-letter command's answer.
fn four_letter(port: u16, cmd: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    c.write_all(cmd.as_bytes()).ok()?;
    let mut r = String::new();
    c.read_to_string(&mut r).ok()?;
    Some(r.trim().to_string())
}

/// One server of a ClickHouse cluster.
pub struct ChNode {
    dir: PathBuf,
    pub http: u16,
    pub tcp: u16,
    inter: u16,
    /// The `run` macro that tells this server from any other on the machine.
    token: String,
    proc: Proc,
}

/// A ClickHouse cluster named `ns` of `shards` × `replicas` servers.
pub struct ChCluster {
    pub nodes: Vec<ChNode>,
}

impl ChCluster {
    pub fn start(dir: &Path, shards: usize, replicas: usize, zk: u16) -> ChCluster {
        fresh_start("clickhouse cluster", || {
            let _ = std::fs::remove_dir_all(dir);
            let mut c = ChCluster::configure(dir, shards, replicas, zk);
            c.run_all()?;
            Ok(c)
        })
    }

    /// Ports, folders and a config.xml for every server (not started: [`ChCluster::run_all`]).
    pub fn configure(dir: &Path, shards: usize, replicas: usize, zk: u16) -> ChCluster {
        let token = run_token();
        let mut nodes: Vec<ChNode> = (0..shards * replicas)
            .map(|i| ChNode {
                dir: dir.join(format!("ch{i}")),
                http: free_port(),
                tcp: free_port(),
                inter: free_port(),
                token: format!("{token}n{i}"),
                proc: Proc(None),
            })
            .collect();
        let mut remote = String::new();
        for s in 0..shards {
            remote.push_str("<shard><internal_replication>true</internal_replication>");
            for r in 0..replicas {
                remote.push_str(&format!(
                    "<replica><host>127.0.0.1</host><port>{}</port></replica>",
                    nodes[s * replicas + r].tcp
                ));
            }
            remote.push_str("</shard>");
        }
        for (i, n) in nodes.iter_mut().enumerate() {
            std::fs::create_dir_all(&n.dir).unwrap();
            let d = |s: &str| format!("{}/{s}/", n.dir.display());
            let cfg = format!(
                "<?xml version=\"1.0\"?>\n<yandex>\
                 <logger><level>warning</level><log>{log}</log><errorlog>{err}</errorlog><console>0</console></logger>\
                 <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port>\
                 <interserver_http_port>{inter}</interserver_http_port>\
                 <interserver_http_host>127.0.0.1</interserver_http_host>\
                 <listen_host>127.0.0.1</listen_host>\
                 <path>{data}</path><tmp_path>{tmp}</tmp_path><user_files_path>{uf}</user_files_path>\
                 <format_schema_path>{fs}</format_schema_path>\
                 <users_config>/etc/clickhouse-server/users.xml</users_config>\
                 <default_profile>default</default_profile><default_database>default</default_database>\
                 <mark_cache_size>268435456</mark_cache_size>\
                 <remote_servers><ns>{remote}</ns></remote_servers>\
                 <zookeeper><node><host>127.0.0.1</host><port>{zk}</port></node></zookeeper>\
                 <macros><shard>{shard}</shard><replica>r{rep}</replica><run>{token}</run></macros>\
                 <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>\
                 </yandex>\n",
                log = n.dir.join("ch.log").display(),
                err = n.dir.join("ch.err").display(),
                http = n.http,
                tcp = n.tcp,
                inter = n.inter,
                data = d("data"),
                tmp = d("tmp"),
                uf = d("user_files"),
                fs = d("schemas"),
                shard = i / replicas + 1,
                rep = i % replicas + 1,
                token = n.token,
            );
            std::fs::write(n.dir.join("config.xml"), cfg).unwrap();
        }
        ChCluster { nodes }
    }

    /// Starts every server, then waits until each answers `SELECT 1` and reaches ZooKeeper
    /// (`system.zookeeper`): ON CLUSTER statements need every node.
    pub fn run_all(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            self.run(i, 1)?;
        }
        for i in 0..self.nodes.len() {
            self.wait_zookeeper(i)?;
        }
        Ok(())
    }

    fn wait_zookeeper(&mut self, i: usize) -> Result<(), String> {
        let n = &mut self.nodes[i];
        let t0 = Instant::now();
        while query(
            n.http,
            "SELECT count() > 0 FROM system.zookeeper WHERE path = '/'",
        )
        .as_deref()
            != Some("1\n")
        {
            let c = n.proc.0.as_mut().unwrap();
            if c.try_wait().unwrap().is_some() {
                return Err(format!(
                    "clickhouse-server {i} exited\n{}",
                    log_tail(&n.dir.join("ch.err"), 3000)
                ));
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "clickhouse-server {i} did not reach ZooKeeper in 60 s\n{}",
                    log_tail(&n.dir.join("ch.err"), 3000)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn run(&mut self, i: usize, attempts: usize) -> Result<(), String> {
        let n = &mut self.nodes[i];
        let cfg = n.dir.join("config.xml");
        let http = n.http;
        let token = n.token.clone();
        let logs = [n.dir.join("ch.err"), n.dir.join("ch.log")];
        let child = start_retrying(
            &format!(
                "clickhouse-server {i} (http {http}, tcp {}, interserver {})",
                n.tcp, n.inter
            ),
            &logs,
            attempts,
            || {
                Command::new(CLICKHOUSE)
                    .arg(format!("--config-file={}", cfg.display()))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start clickhouse-server")
            },
            |c| {
                let t0 = Instant::now();
                while query(http, "SELECT 1").as_deref() != Some("1\n") {
                    if let Some(st) = c.try_wait().unwrap() {
                        return Err(format!("exited at start ({st})"));
                    }
                    if t0.elapsed() > Duration::from_secs(60) {
                        return Err("no answer to SELECT 1 after 60 s".into());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                // Ours, not another program's server on that port: it knows our token.
                let got = query(
                    http,
                    "SELECT substitution FROM system.macros WHERE macro = 'run'",
                );
                if got.as_deref().map(str::trim) != Some(token.as_str()) {
                    return Err(format!(
                        "port {http} answers as another server (run macro {got:?})"
                    ));
                }
                // Still running a moment later (a server that lost a port race exits soon).
                std::thread::sleep(Duration::from_millis(300));
                if let Some(st) = c.try_wait().unwrap() {
                    return Err(format!("exited right after start ({st})"));
                }
                Ok(())
            },
        )?;
        n.proc = Proc(Some(child));
        Ok(())
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].proc.kill();
    }

    /// Starts server `i` again with its data, same ports (up to 3 attempts), and waits until
    /// it reaches ZooKeeper.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        if let Err(e) = self.run(i, 3).and_then(|()| self.wait_zookeeper(i)) {
            panic!("{e}");
        }
    }

    /// `clickhouse://127.0.0.1:H1,127.0.0.1:H2,.../DB`
    pub fn url(&self, db: &str) -> String {
        let v: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.http))
            .collect();
        format!("clickhouse://{}/{db}", v.join(","))
    }

    /// A query's single number on server `i` (shards that do not answer skipped).
    pub fn count(&self, i: usize, sql: &str) -> u64 {
        query(self.nodes[i].http, sql)
            .unwrap_or_else(|| panic!("query failed: {sql}"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// One query over HTTP (64-bit integers as numbers, unavailable shards skipped); None when the
/// server does not answer 200.
pub fn query(port: u16, sql: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "POST /?output_format_json_quote_64bit_integers=0&skip_unavailable_shards=1 HTTP/1.0\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    );
    c.write_all(req.as_bytes()).ok()?;
    let mut r = String::new();
    c.read_to_string(&mut r).ok()?;
    let (head, body) = r.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_string())
}

/// The body of a GET (HTTP/1.0), None unless 200.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    c.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut r = String::new();
    c.read_to_string(&mut r).ok()?;
    let (head, body) = r.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_string())
}

/// One POST of `body` to `path` (e.g. an INSERT with settings in the query string); true on 200.
pub fn post(port: u16, path: &str, body: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let req = format!(
        "POST {path} HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if c.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut r = String::new();
    let _ = c.read_to_string(&mut r);
    r.starts_with("HTTP/1.0 200")
}

/// A `netspectra collect` process, killed on drop (SIGTERM by [`Collector::stop`]).
pub struct Collector {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Collector {
    pub fn start(bin: &str, args: &[&str], log: PathBuf) -> Collector {
        Self::start_env(bin, args, log, &[])
    }

    /// [`Collector::start`] with environment variables.
    pub fn start_env(bin: &str, args: &[&str], log: PathBuf, env: &[(&str, &str)]) -> Collector {
        let child = Command::new(bin)
            .envs(env.iter().copied())
            .arg("collect")
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start collect");
        Collector {
            child: Some(child),
            log,
        }
    }

    /// Waits until the log holds `what` (at most `secs`), and returns the log.
    pub fn wait_log(&self, what: &str, secs: u64) -> String {
        let t0 = Instant::now();
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains(what) {
                return log;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "no {what:?} in the collector's log: {log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and the exit status must be success (a graceful stop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t0 = Instant::now();
            loop {
                if let Some(st) = c.try_wait().unwrap() {
                    assert!(
                        st.success(),
                        "collect exited with {st}: {}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                    return;
                }
                if t0.elapsed() > Duration::from_secs(30) {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("collect did not stop on SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// SIGKILL (a crash: what it inserted but did not acknowledge is delivered again).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until it exited by itself (at most `secs`); true if it did.
    pub fn wait_exit(&mut self, secs: u64) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().unwrap().is_some() {
                    self.child = None;
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}
