//! The shipped Prometheus rules end to end (root): a live probe on a veth whose ring is made too
//! small for a flood, a real Prometheus scraping it with `deploy/prometheus/netspectra-rules.yml`,
//! a real Alertmanager, and a webhook receiver run by the test. The kernel-drops alert must reach
//! the webhook with the probe's interface in its labels, and no other alert may fire. Everything
//! runs inside the test's own network namespace on loopback and is stopped by PID.

mod common;

use common::{have, Netns};
use netspectra_testnet::{ip, require_root};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const METRICS: u16 = 9464;
const PROMETHEUS: u16 = 9090;
const ALERTMANAGER: u16 = 9093;
const HOOK: u16 = 9099;

/// A webhook receiver: every POST body becomes one line of the output file.
const RECEIVER: &str = r#"
import http.server, sys
out = open(sys.argv[2], "ab", buffering=0)
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        out.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
"#;

/// Exits 0 when the URL in argv[1] answers a GET with a 2xx status.
const GET: &str = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)";

/// Prints the answer of Prometheus' query API (argv[1]) to the query in argv[2].
const QUERY: &str = "import sys, urllib.request, urllib.parse; \
    print(urllib.request.urlopen(sys.argv[1] + '?query=' + urllib.parse.quote(sys.argv[2]), \
    timeout=5).read().decode())";

/// A process started in a namespace, killed by PID when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_in(ns: &str, name: &'static str, log: &Path, program: &str, args: &[&str]) -> Server {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    Server(child)
}

/// The shipped rules with every `for` shortened to one second, so the test waits seconds, not
/// the minutes a production rule waits; the expressions are left exactly as shipped.
fn rules_for_test(out: &Path) {
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/prometheus/netspectra-rules.yml"
    );
    let text = std::fs::read_to_string(shipped).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut shortened = 0;
    for group in doc["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            if let Some(m) = rule.as_mapping_mut() {
                if m.contains_key("for") {
                    m.insert("for".into(), "1s".into());
                    shortened += 1;
                }
            }
        }
    }
    assert!(shortened > 0, "no rule with a `for` in {shipped}");
    std::fs::write(out, serde_yaml::to_string(&doc).unwrap()).unwrap();
}

/// Waits until `port` answers HTTP GET `path` inside `ns` (the server is up), or panics with its log.
fn wait_http(ns: &str, port: u16, path: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = format!("http://127.0.0.1:{port}{path}");
    while Instant::now() < deadline {
        let ok = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", GET, &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "{url} never answered; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// How many samples a range query over Prometheus' HTTP API returns (0 when it cannot ask).
fn prom_samples(ns: &str, query: &str) -> usize {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", QUERY])
        .arg(format!("http://127.0.0.1:{PROMETHEUS}/api/v1/query"))
        .arg(query)
        .output()
        .expect("run python3");
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return 0;
    };
    v["data"]["result"].as_array().map_or(0, |r| {
        r.iter()
            .map(|s| s["values"].as_array().map_or(0, |x| x.len()))
            .sum()
    })
}

/// Alert notifications the receiver got: (status, alertname, labels) of every alert in them.
fn notifications(path: &Path) -> Vec<(String, String, serde_json::Value)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let body: serde_json::Value = serde_json::from_str(line).expect("webhook body is JSON");
        for a in body["alerts"].as_array().expect("alerts array") {
            out.push((
                a["status"].as_str().unwrap_or_default().to_string(),
                a["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                a["labels"].clone(),
            ));
        }
    }
    out
}

#[test]
fn kernel_drops_reach_a_webhook_through_prometheus_and_alertmanager() {
    require_root!();
    if !have("prometheus", "--version")
        || !have("prometheus-alertmanager", "--version")
        || !have("python3", "--version")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("gen.pcap");
    let truth = common::generated_capture(
        &file,
        &netspectra_gen::GenConfig {
            seed: 5,
            packets: Some(60_000),
            ..Default::default()
        },
    );
    let n = Netns::new();
    ip(&["-n", &n.b, "link", "set", "lo", "up"]);
    for (ns, dev) in [(&n.a, &n.a_if), (&n.b, &n.b_if)] {
        ip(&["-n", ns, "link", "set", dev, "mtu", "9000"]);
    }

    // The probe: one socket with the smallest ring there is (2 blocks of 4 KiB), so a flood at
    // full speed overflows it and the kernel counts drops.
    let config = d.join("probe.yaml");
    std::fs::write(
        &config,
        format!(
            "capture:\n  interfaces:\n    - {{name: {}, threads: 1, block_size: 4k, blocks: 2}}\n\
             metrics:\n  listen: 127.0.0.1:{METRICS}\n",
            n.b_if
        ),
    )
    .unwrap();
    let out = d.join("out");
    let mut probe = n.spawn_b(&[
        "probe",
        "--json",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);

    // Receiver, Alertmanager (no gossip cluster), Prometheus with the shipped rules.
    let hook_out = d.join("hook.jsonl");
    let hook_log = d.join("hook.log");
    let _hook = start_in(
        &n.b,
        "webhook receiver",
        &hook_log,
        "python3",
        &[
            "-c",
            RECEIVER,
            &HOOK.to_string(),
            hook_out.to_str().unwrap(),
        ],
    );
    std::fs::write(
        d.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    \
             webhook_configs:\n      - url: http://127.0.0.1:{HOOK}/\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let am_log = d.join("alertmanager.log");
    let _am = start_in(
        &n.b,
        "alertmanager",
        &am_log,
        "prometheus-alertmanager",
        &[
            &format!("--config.file={}", d.join("alertmanager.yml").display()),
            &format!("--storage.path={}", d.join("am-data").display()),
            &format!("--web.listen-address=127.0.0.1:{ALERTMANAGER}"),
            "--cluster.listen-address=",
        ],
    );
    rules_for_test(&d.join("rules.yml"));
    std::fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: \
             ['127.0.0.1:{ALERTMANAGER}']\nscrape_configs:\n  - job_name: netspectra\n    \
             static_configs:\n      - targets: ['127.0.0.1:{METRICS}']\n",
            d.join("rules.yml").display()
        ),
    )
    .unwrap();
    let prom_log = d.join("prometheus.log");
    let _prom = start_in(
        &n.b,
        "prometheus",
        &prom_log,
        "prometheus",
        &[
            &format!("--config.file={}", d.join("prometheus.yml").display()),
            &format!("--storage.tsdb.path={}", d.join("prom-data").display()),
            &format!("--web.listen-address=127.0.0.1:{PROMETHEUS}"),
        ],
    );
    wait_http(&n.b, ALERTMANAGER, "/-/ready", &am_log);
    wait_http(&n.b, PROMETHEUS, "/-/ready", &prom_log);
    // Prometheus must hold samples of the counters from before the flood, so that their rates
    // see it (its first scrape comes seconds after it is ready).
    let deadline = Instant::now() + Duration::from_secs(60);
    while prom_samples(&n.b, "netspectra_capture_kernel_drops_total[1m]") < 2 {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the probe; log:\n{}",
            std::fs::read_to_string(&prom_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let sent = n.replay(&file, &["--topspeed"]);
    assert_eq!(sent, truth.packets);

    // The alert reaches the webhook.
    let deadline = Instant::now() + Duration::from_secs(90);
    let fired = loop {
        let got = notifications(&hook_out);
        if got
            .iter()
            .any(|(s, name, _)| s == "firing" && name == "NetSpectraKernelDrops")
        {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "no NetSpectraKernelDrops notification in 90 s; received: {got:?}\n\
             prometheus log:\n{}\nalertmanager log:\n{}",
            std::fs::read_to_string(&prom_log).unwrap_or_default(),
            std::fs::read_to_string(&am_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };

    let _ = Command::new("kill")
        .args(["-TERM", &probe.id().to_string()])
        .status();
    let summary = common::finish(&mut probe);
    let drops = summary["kernel_drops"].as_u64().expect("kernel_drops");
    assert!(
        drops > 0,
        "the flood was meant to overflow the ring: {summary}"
    );

    let (_, _, labels) = fired
        .iter()
        .find(|(s, name, _)| s == "firing" && name == "NetSpectraKernelDrops")
        .unwrap();
    assert_eq!(labels["interface"], n.b_if.as_str(), "{labels}");
    assert_eq!(labels["severity"], "warning", "{labels}");
    assert_eq!(labels["job"], "netspectra", "{labels}");
    // Nothing else was wrong with the probe: no other alert fired.
    let others: Vec<_> = fired
        .iter()
        .filter(|(_, name, _)| name != "NetSpectraKernelDrops")
        .collect();
    assert!(others.is_empty(), "unexpected alerts: {others:?}");
}
