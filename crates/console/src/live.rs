//! Live state of the probes, read from their Prometheus endpoints when the probes page asks:
//! what stored records cannot say (kernel drops now, sink backlog, spool fill, sinks down).

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Most bytes read from one endpoint (a probe's exposition is a few kB).
const MAX_BODY: u64 = 4 << 20;

/// A probe's metrics endpoint, `http://HOST:PORT[/PATH]` (path `/metrics` by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeEndpoint {
    host: String,
    port: u16,
    path: String,
    /// As given (shown on the page).
    pub url: String,
}

impl ProbeEndpoint {
    /// Parses an endpoint URL; only plain `http://` (probes serve metrics without TLS).
    pub fn parse(s: &str) -> Result<ProbeEndpoint, String> {
        let bad = |why: &str| format!("probe metrics URL {s:?}: {why}");
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| bad("must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("port must be 1..65535"))?,
            ),
            _ => return Err(bad("needs HOST:PORT")),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
        {
            return Err(bad("bad host"));
        }
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("bad path"));
        }
        Ok(ProbeEndpoint {
            host: host.to_string(),
            port,
            path: path.to_string(),
            url: s.to_string(),
        })
    }

    /// One GET of the exposition text (status 200 required), bounded in time and size.
    fn fetch(&self, token: Option<&str>, timeout: Duration) -> Result<String, String> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("resolve {}: no address", self.host))?;
        let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        // One write: the request leaves as one segment, not a piece per formatted argument.
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {}:{}\r\n{auth}Connection: close\r\n\r\n",
            self.path, self.host, self.port
        );
        s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.take(MAX_BODY)
            .read_to_end(&mut raw)
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or("no HTTP response header")?;
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            return Err(format!("HTTP {}", head.lines().next().unwrap_or("").trim()));
        }
        Ok(body.to_string())
    }
}

/// The probes' endpoints and the token they require (the same for all; None: none).
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// Endpoints, in the order given.
    pub endpoints: Vec<ProbeEndpoint>,
    /// Bearer token sent to every endpoint.
    pub token: Option<String>,
}

impl Live {
    /// Reads every endpoint (each within `timeout`) and sums what the probes page shows.
    pub fn read(&self, timeout: Duration) -> Vec<Value> {
        self.endpoints
            .iter()
            .map(|ep| match ep.fetch(self.token.as_deref(), timeout) {
                Ok(text) => summary(&ep.url, &text),
                Err(e) => json!({"url": ep.url, "up": false, "error": e}),
            })
            .collect()
    }
}

/// Sums of each metric's samples (labels ignored), and how many `netspectra_sink_up` samples
/// are 0, from Prometheus' text exposition format.
pub fn sums(text: &str) -> (HashMap<&str, f64>, u64) {
    let mut out: HashMap<&str, f64> = HashMap::new();
    let mut down = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let rest = match line[name_end..].rfind('}') {
            Some(i) if line[name_end..].starts_with('{') => &line[name_end + i + 1..],
            _ => &line[name_end..],
        };
        let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        if !v.is_finite() {
            continue;
        }
        if name == "netspectra_sink_up" && v == 0.0 {
            down += 1;
        }
        *out.entry(name).or_default() += v;
    }
    (out, down)
}

/// What the probes page shows of one probe.
fn summary(url: &str, text: &str) -> Value {
    let (m, sinks_down) = sums(text);
    let g = |k: &str| m.get(k).copied().unwrap_or(0.0);
    let received = g("netspectra_capture_kernel_received_total");
    let drops = g("netspectra_capture_kernel_drops_total");
    json!({
        "url": url,
        "up": true,
        "error": null,
        // Packets read: the pipeline's counter (named after flows when flows are on).
        "packets": (g("netspectra_flows_packets_total") + g("netspectra_packets_total")) as u64,
        "kernel_received": received as u64,
        "kernel_drops": drops as u64,
        "drop_ratio": if received > 0.0 { drops / received } else { 0.0 },
        "sink_backlog_records": g("netspectra_sink_backlog_records") as u64,
        "sink_dropped_records": g("netspectra_sink_dropped_records_total") as u64,
        "sink_spool_bytes": g("netspectra_sink_spool_bytes") as u64,
        "sinks_down": sinks_down,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const TEXT: &str = "# HELP netspectra_capture_kernel_drops_total Packets the kernel dropped.\n\
        # TYPE netspectra_capture_kernel_drops_total counter\n\
        netspectra_capture_kernel_drops_total{interface=\"eth0\"} 30\n\
        netspectra_capture_kernel_drops_total{interface=\"eth1\"} 10\n\
        netspectra_capture_kernel_received_total{interface=\"eth0\"} 700\n\
        netspectra_capture_kernel_received_total{interface=\"eth1\"} 300\n\
        netspectra_flows_packets_total{interface=\"eth0\",weird=\"a}b c\"} 960\n\
        netspectra_sink_backlog_records{sink=\"clickhouse\"} 5000\n\
        netspectra_sink_backlog_records{sink=\"files\"} 0\n\
        netspectra_sink_up{sink=\"clickhouse\"} 0\n\
        netspectra_sink_up{sink=\"files\"} 1\n\
        netspectra_sink_spool_bytes{sink=\"clickhouse\"} 1.5e6\n\
        broken_line_without_value\n\
        nan_value NaN\n";

    #[test]
    fn sums_add_samples_across_labels_and_count_sinks_down() {
        let (m, down) = sums(TEXT);
        assert_eq!(m["netspectra_capture_kernel_drops_total"], 40.0);
        assert_eq!(m["netspectra_capture_kernel_received_total"], 1000.0);
        assert_eq!(m["netspectra_flows_packets_total"], 960.0);
        assert_eq!(m["netspectra_sink_backlog_records"], 5000.0);
        assert_eq!(m["netspectra_sink_spool_bytes"], 1.5e6);
        assert!(!m.contains_key("broken_line_without_value"));
        assert!(!m.contains_key("nan_value"));
        assert_eq!(down, 1);
        let s = summary("u", TEXT);
        assert_eq!(s["drop_ratio"], 0.04);
        assert_eq!(s["sinks_down"], 1);
        assert_eq!(s["packets"], 960);
    }

    #[test]
    fn endpoints_parse_or_say_why_not() {
        let e = ProbeEndpoint::parse("http://127.0.0.1:9464").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 9464, "/metrics")
        );
        let e = ProbeEndpoint::parse("http://[::1]:9464/m").unwrap();
        assert_eq!((e.host.as_str(), e.path.as_str()), ("::1", "/m"));
        for bad in [
            "https://h:1",
            "http://h",
            "http://h:0",
            "http://h:99999",
            "http://:80",
            "http://h h:80",
            "http://h:80/a b",
        ] {
            assert!(ProbeEndpoint::parse(bad).is_err(), "{bad}");
        }
    }

    /// Serves one canned HTTP response on loopback; returns the URL and the request it got.
    fn serve_once(response: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/metrics", l.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            // The whole request head, however TCP splits it.
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(response.as_bytes()).unwrap();
            String::from_utf8_lossy(&req).into_owned()
        });
        (url, h)
    }

    #[test]
    fn a_probe_is_read_over_http_with_its_token() {
        let (url, h) = serve_once(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n\
             netspectra_capture_kernel_drops_total{interface=\"x\"} 7\n\
             netspectra_capture_kernel_received_total{interface=\"x\"} 70\n",
        );
        let live = Live {
            endpoints: vec![ProbeEndpoint::parse(&url).unwrap()],
            token: Some("sixteen-chars-token".into()),
        };
        let got = live.read(Duration::from_secs(5));
        let req = h.join().unwrap();
        assert!(
            req.contains("Authorization: Bearer sixteen-chars-token"),
            "{req}"
        );
        assert_eq!(got[0]["up"], true);
        assert_eq!(got[0]["kernel_drops"], 7);
        assert_eq!(got[0]["drop_ratio"], 0.1);
    }

    #[test]
    fn an_unreachable_or_refusing_probe_is_down_with_the_reason() {
        let (url, h) = serve_once("HTTP/1.0 401 Unauthorized\r\n\r\nneeds a token\n");
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let live = Live {
            endpoints: vec![
                ProbeEndpoint::parse(&url).unwrap(),
                ProbeEndpoint::parse(&closed).unwrap(),
            ],
            token: None,
        };
        let got = live.read(Duration::from_secs(5));
        h.join().unwrap();
        assert_eq!(got[0]["up"], false);
        assert!(
            got[0]["error"].as_str().unwrap().contains("401"),
            "{}",
            got[0]
        );
        assert_eq!(got[1]["up"], false);
        assert!(!got[1]["error"].as_str().unwrap().is_empty());
    }
}
