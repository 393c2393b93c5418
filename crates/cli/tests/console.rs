//! `netspectra console` over the embedded store and over ClickHouse, each filled by `probe`
//! from a generated capture: the API's numbers equal the capture's truth, hostile parameters
//! get 400, the token and address rules hold, and the page in headless Chromium shows the
//! truth with charts drawn (screenshots in target/console-screenshots).

#[path = "support/clickhouse.rs"]
mod clickhouse;
mod common;
#[path = "support/console.rs"]
mod console;

use common::bin;
use console::{check_api, check_hostile, Console};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A capture of ~6000 frames over ~60 s of capture time, and its truth.
fn capture(dir: &Path) -> (PathBuf, netspectra_gen::Truth) {
    let p = dir.join("c.pcap");
    let t = common::generated_capture(
        &p,
        &netspectra_gen::GenConfig {
            packets: Some(6000),
            seed: 11,
            packets_per_sec: 100.0,
            ..Default::default()
        },
    );
    (p, t)
}

fn probe(args: &[&str]) {
    let o = bin().arg("probe").args(args).arg("-q").output().unwrap();
    assert!(
        o.status.success(),
        "probe {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A store filled from the capture.
fn store(dir: &Path) -> (PathBuf, netspectra_gen::Truth) {
    let (cap, truth) = capture(dir);
    let db = dir.join("store.db");
    probe(&[
        "--read",
        cap.to_str().unwrap(),
        "--store",
        db.to_str().unwrap(),
    ]);
    (db, truth)
}

#[test]
fn store_api_equals_the_truth_and_refuses_hostile_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let (db, truth) = store(dir.path());
    let c = Console::start(&["--store", db.to_str().unwrap()]);
    check_api(&c, &truth);
    check_hostile(&c);
    // Headers: JSON and no caching on the API, a CSP on the page, assets embedded.
    let (s, head, _) = c.get("/api/v1/summary");
    assert_eq!(s, 200);
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    let (s, head, body) = c.get("/");
    assert_eq!(s, 200);
    assert!(head.contains("content-security-policy: default-src 'none'; script-src 'self'"));
    assert!(head.contains("x-frame-options: deny"));
    assert!(head.contains("text/html"));
    assert!(
        !body.contains("http://") && !body.contains("https://"),
        "no external assets"
    );
    for a in ["/app.js", "/app.css"] {
        let (s, _, body) = c.get(a);
        assert_eq!(s, 200, "{a}");
        assert!(!body.contains("https://"), "{a}: no external assets");
    }
    let (s, _, body) = c.get("/api/openapi.json");
    assert_eq!(s, 200);
    assert!(body.contains("\"/api/v1/flows/trace\""));
}

#[test]
fn an_open_address_needs_a_token_and_the_token_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = store(dir.path());
    let db = db.to_str().unwrap();
    let o = bin()
        .args(["console", "--store", db, "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "refused before it binds");
    assert!(String::from_utf8_lossy(&o.stderr).contains("access token is required"));
    let tf = dir.path().join("token");
    std::fs::write(&tf, "s3cret-token-0123456789\n").unwrap();
    let c = Console::start(&["--store", db, "--token-file", tf.to_str().unwrap()]);
    let (s, head, body) = c.get("/api/v1/summary");
    assert_eq!(s, 401, "{body}");
    assert!(head.contains("www-authenticate: bearer"));
    let (s, _, _) = c.get_with(
        "/api/v1/summary",
        "Authorization: Bearer wrong-token-0123456789\r\n",
    );
    assert_eq!(s, 401);
    let (s, _, body) = c.get_with(
        "/api/v1/summary",
        "Authorization: Bearer s3cret-token-0123456789\r\n",
    );
    assert_eq!(s, 200, "{body}");
    // The page itself holds no data and loads without the token.
    assert_eq!(c.get("/").0, 200);
}

#[test]
fn clickhouse_api_equals_the_truth_and_refuses_hostile_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let Some(ch) = clickhouse::ClickHouse::start(&dir.path().join("ch")) else {
        return;
    };
    let (cap, truth) = capture(dir.path());
    let url = format!("clickhouse://127.0.0.1:{}/nsp", ch.http);
    probe(&["--read", cap.to_str().unwrap(), "--export", &url]);
    assert_eq!(ch.count("SELECT count() FROM nsp.flows"), truth.flows.total);
    let c = Console::start(&["--clickhouse", &url]);
    check_api(&c, &truth);
    check_hostile(&c);
    // The same questions over a Distributed table in front of the local ones.
    for t in ["flows", "http"] {
        ch.query(&format!("RENAME TABLE nsp.{t} TO nsp.{t}_local"))
            .unwrap();
        ch.query(&format!(
            "CREATE TABLE nsp.{t} AS nsp.{t}_local ENGINE = Distributed(test_shard_localhost, nsp, {t}_local)"
        ))
        .unwrap_or_else(|| panic!("Distributed {t}"));
    }
    drop(c);
    let c = Console::start(&["--clickhouse", &url]);
    check_api(&c, &truth);
}

/// Runs Chromium headless (own HOME and XDG dirs) with `args` on `url`; stdout. Killed after
/// 90 s.
fn chromium(home: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=15000",
        ])
        .args(args)
        .arg(url)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromium");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The text of the element with this id in a dumped DOM.
fn text_of(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap() + start;
    rest[start..end].to_string()
}

/// The number of data points of the chart in the element with this id.
fn chart_points(dom: &str, id: &str) -> u64 {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &dom[at..];
    let p = rest.find("data-points=\"").expect("an svg chart") + 13;
    rest[p..p + rest[p..].find('"').unwrap()].parse().unwrap()
}

#[test]
fn the_page_in_chromium_shows_the_truth_and_draws_its_charts() {
    if Command::new("chromium").arg("--version").output().is_err() {
        netspectra_testnet::skip("console page", "chromium not installed (scripts/setup.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (db, truth) = store(dir.path());
    let c = Console::start(&["--store", db.to_str().unwrap()]);
    let (cid, packets) = check_api(&c, &truth);
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let home = dir.path().join("chromium-home");
    std::fs::create_dir_all(&home).unwrap();
    let dom = chromium(&home, &["--dump-dom"], &c.url);
    assert!(
        dom.contains("data-loaded=\"overview\""),
        "the overview loaded: {}",
        &dom[..dom.len().min(3000)]
    );
    assert_eq!(text_of(&dom, "total-flows"), truth.flows.total.to_string());
    assert_eq!(text_of(&dom, "total-packets"), truth.packets.to_string());
    assert_eq!(text_of(&dom, "total-bytes"), truth.bytes.to_string());
    assert_eq!(
        text_of(&dom, "http-requests"),
        truth.http.requests.to_string()
    );
    assert!(
        chart_points(&dom, "chart-traffic") >= 5,
        "traffic over ~60 s in 1 s steps"
    );
    assert!(chart_points(&dom, "chart-talkers") >= 1);
    assert!(chart_points(&dom, "chart-protocols") >= 3);
    let trace_url = format!("{}#flows?trace={cid}", c.url);
    let dom = chromium(&home, &["--dump-dom"], &trace_url);
    assert!(dom.contains("data-loaded=\"flows\""));
    let fwd: u64 = text_of(&dom, "trace-fwd-packets").parse().unwrap();
    let rev: u64 = text_of(&dom, "trace-rev-packets").parse().unwrap();
    assert_eq!(fwd + rev, packets, "the trace shows the flow's packets");
    assert!(chart_points(&dom, "chart-agg") >= 1);
    let dom = chromium(&home, &["--dump-dom"], &format!("{}#http", c.url));
    assert!(dom.contains("data-loaded=\"http\""));
    assert!(chart_points(&dom, "chart-hosts") >= 1);
    assert!(chart_points(&dom, "chart-status") >= 3);
    for v in ["overview", "flows", "http", "alerts", "probes"] {
        let png = shots.join(format!("{v}.png"));
        let _ = std::fs::remove_file(&png);
        let url = if v == "flows" {
            trace_url.clone()
        } else {
            format!("{}#{v}", c.url)
        };
        chromium(
            &home,
            &[
                &format!("--screenshot={}", png.display()),
                "--window-size=1280,1400",
            ],
            &url,
        );
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{v}: screenshot of {size} bytes");
    }
}
