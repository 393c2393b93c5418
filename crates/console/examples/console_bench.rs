//! Console benchmark: fills an embedded store with N generated flow records (and N/10 HTTP
//! records) directly, then times each question through the API (HTTP on loopback) and the
//! same statement run directly on SQLite: p50 and p99 of `--runs` runs.
//!
//! `cargo run --release -p netspectra-console --example console_bench -- STORE [FLOWS] [RUNS]`
//! (a store that already has rows is reused). With `clickhouse://HOST:PORT/DB` instead of a
//! store, the rows are made by ClickHouse (`INSERT ... SELECT FROM numbers(N)`) and "direct" is
//! the same statement sent to ClickHouse's HTTP interface.

use netspectra_console::backend::{Backend, SqliteBackend};
use netspectra_console::params::Params;
use netspectra_console::sql::{register_sqlite_functions, Dialect, Lit, Sql};
use netspectra_console::{queries, ConsoleConfig};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fill(path: &std::path::Path, flows: u64) {
    let mut c = netspectra_store::open_write(path).unwrap();
    // A large page cache for the fill: the (src_ip, dst_ip) index takes rows in random order.
    c.execute_batch("PRAGMA cache_size = -2000000;").unwrap();
    netspectra_store::ensure_base_tables(&c).unwrap();
    let have: u64 = c
        .query_row("SELECT count(*) FROM flows", [], |r| r.get(0))
        .unwrap();
    if have >= flows {
        eprintln!("store has {have} flows already");
        return;
    }
    let t0 = Instant::now();
    let tx = c.transaction().unwrap();
    {
        let mut st = tx
            .prepare(
                "INSERT INTO flows (start, \"end\", duration, src_ip, src_port, dst_ip, dst_port, proto, vlan, \
                 community_id, fwd_packets, fwd_bytes, fwd_ip_bytes, rev_packets, rev_bytes, rev_ip_bytes, \
                 fwd_tcp_flags, rev_tcp_flags, end_reason, start_time, probe) \
                 VALUES (?,?,?,?,?,?,?,?,NULL,?,?,?,?,?,?,?,'SA','SA','fin',?,'p1')",
            )
            .unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..flows {
            // xorshift: deterministic rows with skewed sources (heavy hitters exist).
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let src = if x % 10 < 3 { x % 50 } else { x % 60_000 };
            let dst = (x >> 20) % 20_000;
            let t = 1_700_000_000 + (i * 86_400 / flows) as i64;
            let (sp, dp) = (
                1024 + (x >> 8) % 60_000,
                [80, 443, 53, 22, 8080][(x >> 30) as usize % 5],
            );
            let pk = 1 + (x >> 40) % 100;
            st.execute(rusqlite::params![
                format!("2023-11-14T00:00:{:02}.000000000Z", i % 60),
                format!("2023-11-14T00:00:{:02}.500000000Z", i % 60),
                0.5,
                format!("10.{}.{}.{}", src >> 16, (src >> 8) & 255, src & 255),
                sp as i64,
                format!("172.16.{}.{}", dst >> 8, dst & 255),
                dp,
                if dp == 53 { 17 } else { 6 },
                format!("1:{i:020}"),
                pk as i64,
                (pk * 700) as i64,
                (pk * 680) as i64,
                pk as i64,
                (pk * 300) as i64,
                (pk * 280) as i64,
                t,
            ])
            .unwrap();
        }
        let mut st = tx
            .prepare(
                "INSERT INTO http (type, ts, ip_version, src_ip, src_port, dst_ip, dst_port, community_id, \
                 method, host, uri, status, latency_us, partial, time, probe) \
                 VALUES ('response', ?, 4, ?, 80, ?, ?, ?, 'GET', ?, ?, ?, ?, 0, ?, 'p1')",
            )
            .unwrap();
        for i in 0..flows / 10 {
            let t = 1_700_000_000 + (i * 864_000 / flows) as i64;
            st.execute(rusqlite::params![
                format!("{t}.000000000"),
                format!("172.16.0.{}", i % 250),
                format!("10.0.{}.{}", (i >> 8) % 250, i % 250),
                (1024 + i % 60_000) as i64,
                format!("1:{:020}", i * 10),
                format!("host{}.example.com", i % 500),
                format!("/p/{}", i % 1000),
                [200, 200, 200, 404, 500, 301][i as usize % 6],
                (100 + (i * 7919) % 100_000) as i64,
                t,
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    eprintln!(
        "filled {flows} flows, {} http in {:?}",
        flows / 10,
        t0.elapsed()
    );
}

fn get(addr: &str, path: &str) -> usize {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = Vec::new();
    c.read_to_end(&mut r).unwrap();
    assert!(
        r.starts_with(b"HTTP/1.1 200"),
        "{path}: {}",
        String::from_utf8_lossy(&r)
    );
    r.len()
}

fn direct(c: &rusqlite::Connection, sql: &Sql) -> usize {
    let mut st = c.prepare_cached(&sql.text).unwrap();
    let binds: Vec<rusqlite::types::Value> = sql
        .binds
        .iter()
        .map(|b| match b {
            Lit::Int(i) => rusqlite::types::Value::Integer(*i),
            Lit::Text(t) => rusqlite::types::Value::Text(t.clone()),
        })
        .collect();
    let mut rows = st.query(rusqlite::params_from_iter(binds.iter())).unwrap();
    let mut n = 0;
    while rows.next().unwrap().is_some() {
        n += 1;
    }
    n
}

fn pct(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5).as_secs_f64() * 1e3, at(0.99).as_secs_f64() * 1e3)
}

/// Makes the tables with the probe's layout and fills them server-side.
fn fill_clickhouse(url: &str, flows: u64) -> netspectra_clickhouse::Client {
    let (host, db) = netspectra_clickhouse::parse_database_url(url).unwrap();
    let c = netspectra_clickhouse::Client::new(&host)
        .unwrap()
        .with_timeout(Duration::from_secs(600));
    use netspectra_clickhouse::schema::{create_table, FLOW_COLUMNS, HTTP_COLUMNS};
    use netspectra_sinks::stream::StreamKind;
    c.exec("CREATE", &format!("CREATE DATABASE IF NOT EXISTS {db}"))
        .unwrap();
    c.exec(
        "CREATE",
        &create_table(
            StreamKind::Flows,
            &format!("{db}.flows"),
            FLOW_COLUMNS,
            true,
        ),
    )
    .unwrap();
    c.exec(
        "CREATE",
        &create_table(StreamKind::Http, &format!("{db}.http"), HTTP_COLUMNS, true),
    )
    .unwrap();
    let have: u64 = c
        .query(&format!("SELECT count() FROM {db}.flows"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if have >= flows {
        return c;
    }
    let t0 = Instant::now();
    c.exec(
        "INSERT",
        &format!(
            "INSERT INTO {db}.flows (start, end, duration, src_ip, src_port, dst_ip, dst_port, proto, vlan, \
             community_id, fwd_packets, fwd_bytes, fwd_ip_bytes, rev_packets, rev_bytes, rev_ip_bytes, \
             fwd_tcp_flags, rev_tcp_flags, end_reason, probe) \
             SELECT toString(toDateTime(1700000000 + intDiv(number * 86400, {flows}))), '', 0.5, \
             concat('10.', toString(intDiv(s, 65536)), '.', toString(intDiv(s, 256) % 256), '.', toString(s % 256)), \
             1024 + (h % 60000), concat('172.16.', toString(intDiv(d, 256)), '.', toString(d % 256)), \
             [80, 443, 53, 22, 8080][1 + (h % 5)], 6, NULL, concat('1:', substring('00000000000000000000', 1, 20 - length(toString(number))), toString(number)), \
             1 + h % 100, (1 + h % 100) * 700, (1 + h % 100) * 680, 1 + h % 100, (1 + h % 100) * 300, \
             (1 + h % 100) * 280, 'SA', 'SA', 'fin', 'p1' \
             FROM (SELECT number, cityHash64(number) AS h, if(h % 10 < 3, h % 50, h % 60000) AS s, \
             intDiv(h, 1048576) % 20000 AS d FROM numbers({flows}))"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    c.exec(
        "INSERT",
        &format!(
            "INSERT INTO {db}.http (type, ts, ip_version, src_ip, src_port, dst_ip, dst_port, community_id, \
             method, host, uri, status, latency_us, partial, probe) \
             SELECT 'response', concat(toString(1700000000 + intDiv(number * 864000, {flows})), '.000000000'), 4, \
             '172.16.0.1', 80, '10.0.0.1', 1024 + number % 60000, concat('1:', substring('00000000000000000000', 1, 20 - length(toString(number * 10))), toString(number * 10)), \
             'GET', concat('host', toString(number % 500), '.example.com'), concat('/p/', toString(number % 1000)), \
             [200, 200, 200, 404, 500, 301][1 + number % 6], 100 + (number * 7919) % 100000, 0, 'p1' \
             FROM numbers({})",
            flows / 10
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("filled ClickHouse in {:?}", t0.elapsed());
    c
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args
        .next()
        .expect("STORE path or clickhouse://HOST:PORT/DB");
    let flows: u64 = args.next().map_or(10_000_000, |s| s.parse().unwrap());
    let runs: usize = args.next().map_or(20, |s| s.parse().unwrap());
    if target.starts_with("clickhouse://") {
        return bench_clickhouse(&target, flows, runs);
    }
    let path = PathBuf::from(target);
    fill(&path, flows);
    let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::open(&path).unwrap());
    if std::env::var("SERVE").is_ok() {
        // Only serve (for the page-load measurement), until killed.
        let (_rt, addr, _stop) = serve(backend);
        println!("console: http://{addr}/");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bound = rt
        .block_on(netspectra_console::bind(ConsoleConfig {
            backend,
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
            timeout: Duration::from_secs(600),
            live: Default::default(),
        }))
        .unwrap();
    let addr = bound.addr.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(bound.serve(async {
        let _ = rx.await;
    }));
    let c = netspectra_store::open_read(&path).unwrap();
    register_sqlite_functions(&c).unwrap();
    let d = Dialect::Sqlite;
    let p = |q: &str, names: &[&str]| Params::parse(Some(q), names).unwrap();
    let agg = ["by", "order", "limit"];
    let cases: Vec<(&str, String, Sql)> = vec![
        (
            "aggregate by src_ip (full range, top 100)",
            "/api/v1/flows/aggregate?by=src_ip&limit=100".into(),
            queries::aggregate(&d, &p("by=src_ip&limit=100", &agg), 100)
                .unwrap()
                .0,
        ),
        (
            "top-10 src_ip,dst_port by bytes",
            "/api/v1/flows/aggregate?by=src_ip,dst_port&order=bytes&limit=10".into(),
            queries::aggregate(&d, &p("by=src_ip,dst_port&order=bytes&limit=10", &agg), 10)
                .unwrap()
                .0,
        ),
        (
            "flow trace (Community ID)",
            "/api/v1/flows/trace?community_id=1:00000000000004567890".into(),
            queries::trace_flows(&d, "1:00000000000004567890", 1000),
        ),
        (
            "HTTP host search",
            "/api/v1/http/search?host=host7.example.com&limit=100".into(),
            queries::http_search(
                &d,
                &p("host=host7.example.com&limit=100", &["host", "limit"]),
            )
            .unwrap(),
        ),
    ];
    println!("| question | API p50 ms | API p99 ms | direct p50 ms | direct p99 ms |");
    println!("|---|---|---|---|---|");
    for (name, url, sql) in &cases {
        // Full-range aggregates come from the per-day rollups (crates/console/src/rollup.rs).
        let _ = get(&addr, url);
        let mut api = Vec::new();
        let mut dir = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            get(&addr, url);
            api.push(t.elapsed());
            let t = Instant::now();
            direct(&c, sql);
            dir.push(t.elapsed());
        }
        let (a50, a99) = pct(api);
        let (d50, d99) = pct(dir);
        println!("| {name} | {a50:.1} | {a99:.1} | {d50:.1} | {d99:.1} |");
    }
    // The same full-range aggregate over every flow row, once: what the rollup saves.
    let pr = p("by=src_ip&limit=100", &agg);
    let keys = queries::parse_keys(&pr, "by", "src_ip").unwrap();
    let raw = queries::aggregate_flows(&d, &pr, &keys, "bytes", 100).unwrap();
    let t = Instant::now();
    direct(&c, &raw);
    println!(
        "| aggregate by src_ip over the flow rows, no rollup (1 run) | | | {:.1} | |",
        t.elapsed().as_secs_f64() * 1e3
    );
    let _ = tx.send(());
    let _ = rt.block_on(server);
}

fn serve(
    backend: Arc<dyn Backend>,
) -> (
    tokio::runtime::Runtime,
    String,
    tokio::sync::oneshot::Sender<()>,
) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bound = rt
        .block_on(netspectra_console::bind(ConsoleConfig {
            backend,
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
            timeout: Duration::from_secs(600),
            live: Default::default(),
        }))
        .unwrap();
    let addr = bound.addr.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(bound.serve(async {
        let _ = rx.await;
    }));
    (rt, addr, tx)
}

fn bench_clickhouse(url: &str, flows: u64, runs: usize) {
    let client = fill_clickhouse(url, flows);
    let backend = netspectra_console::backend::ClickHouseBackend::connect(url).unwrap();
    let d = backend.dialect().clone();
    let (_rt, addr, stop) = serve(Arc::new(backend));
    let p = |q: &str, names: &[&str]| Params::parse(Some(q), names).unwrap();
    let agg = ["by", "order", "limit"];
    let cases: Vec<(&str, String, Sql)> = vec![
        (
            "aggregate by src_ip (full range, top 100)",
            "/api/v1/flows/aggregate?by=src_ip&limit=100".into(),
            queries::aggregate(&d, &p("by=src_ip&limit=100", &agg), 100)
                .unwrap()
                .0,
        ),
        (
            "top-10 src_ip,dst_port by bytes",
            "/api/v1/flows/aggregate?by=src_ip,dst_port&order=bytes&limit=10".into(),
            queries::aggregate(&d, &p("by=src_ip,dst_port&order=bytes&limit=10", &agg), 10)
                .unwrap()
                .0,
        ),
        (
            "flow trace (Community ID; API also reads HTTP)",
            "/api/v1/flows/trace?community_id=1:00000000000004567890".into(),
            queries::trace_flows(&d, "1:00000000000004567890", 1000),
        ),
        (
            "HTTP host search",
            "/api/v1/http/search?host=host7.example.com&limit=100".into(),
            queries::http_search(
                &d,
                &p("host=host7.example.com&limit=100", &["host", "limit"]),
            )
            .unwrap(),
        ),
    ];
    println!("| question (ClickHouse) | API p50 ms | API p99 ms | direct p50 ms | direct p99 ms |");
    println!("|---|---|---|---|---|");
    for (name, url, sql) in &cases {
        let _ = get(&addr, url);
        let mut api = Vec::new();
        let mut dir = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            get(&addr, url);
            api.push(t.elapsed());
            let t = Instant::now();
            client
                .query(&format!("{} FORMAT JSONCompact", sql.text))
                .unwrap();
            dir.push(t.elapsed());
        }
        let (a50, a99) = pct(api);
        let (d50, d99) = pct(dir);
        println!("| {name} | {a50:.1} | {a99:.1} | {d50:.1} | {d99:.1} |");
    }
    let _ = stop.send(());
}
