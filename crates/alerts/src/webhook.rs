//! Alert events to a webhook: `POST` of a JSON array of events (plain HTTP/1.1), from a
//! bounded queue on its own thread, retried with exponential back-off while the receiver fails;
//! when the queue is full the newest events are dropped and counted.

use crate::Event;
use serde::Deserialize;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One webhook of the probe configuration's `alerts.webhooks`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://HOST:PORT/PATH`.
    pub url: String,
    /// Events held while the receiver is down (default 1000).
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_queue() -> usize {
    1000
}

/// Why a webhook URL is refused.
#[derive(Debug, thiserror::Error)]
#[error("webhook {url:?}: {why}")]
pub struct WebhookError {
    /// The URL.
    pub url: String,
    /// What is wrong.
    pub why: String,
}

/// Counters of one webhook.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events acknowledged (2xx).
    pub sent: AtomicU64,
    /// Failed attempts.
    pub errors: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
}

struct Shared {
    queue: Mutex<(VecDeque<Event>, bool)>,
    wake: Condvar,
}

/// A running webhook sender.
pub struct Webhook {
    shared: Arc<Shared>,
    cap: usize,
    stats: Arc<WebhookStats>,
    thread: Option<JoinHandle<()>>,
}

/// Splits `http://HOST:PORT/PATH` into the address, the Host header and the path.
pub fn parse_url(url: &str) -> Result<(SocketAddr, String, String), WebhookError> {
    let bad = |why: &str| WebhookError {
        url: url.to_string(),
        why: why.to_string(),
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http://HOST:PORT/PATH"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad("bad path"));
    }
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| bad(&e.to_string()))?
        .next()
        .ok_or_else(|| bad("no address"))?;
    Ok((addr, host.to_string(), path.to_string()))
}

fn post(addr: SocketAddr, host: &str, path: &str, body: &[u8]) -> Result<(), String> {
    let t = Duration::from_secs(5);
    let mut c = TcpStream::connect_timeout(&addr, t).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
    c.set_write_timeout(Some(t)).map_err(|e| e.to_string())?;
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .and_then(|()| c.write_all(body))
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 32];
    let n = c.read(&mut head).map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    match line.split_whitespace().nth(1) {
        Some(s) if s.starts_with('2') => Ok(()),
        Some(s) => Err(format!("HTTP {s}")),
        None => Err("no HTTP answer".into()),
    }
}

impl Webhook {
    /// Starts the sender thread for `cfg`.
    pub fn start(cfg: &WebhookConfig) -> Result<Webhook, WebhookError> {
        let (addr, host, path) = parse_url(&cfg.url)?;
        if cfg.queue == 0 || cfg.queue > 1_000_000 {
            return Err(WebhookError {
                url: cfg.url.clone(),
                why: "queue must be 1..=1000000".into(),
            });
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new((VecDeque::new(), false)),
            wake: Condvar::new(),
        });
        let stats = Arc::new(WebhookStats::default());
        let (sh, st) = (Arc::clone(&shared), Arc::clone(&stats));
        let thread = std::thread::Builder::new()
            .name("alert-webhook".into())
            .spawn(move || run(&sh, &st, addr, &host, &path))
            .map_err(|e| WebhookError {
                url: cfg.url.clone(),
                why: e.to_string(),
            })?;
        Ok(Webhook {
            shared,
            cap: cfg.queue,
            stats,
            thread: Some(thread),
        })
    }

    /// Queues events (the newest are dropped, counted, when the queue is full).
    pub fn send(&self, events: &[Event]) {
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            if q.0.len() >= self.cap {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                q.0.push_back(e.clone());
            }
        }
        self.shared.wake.notify_one();
    }

    /// The counters.
    pub fn stats(&self) -> Arc<WebhookStats> {
        Arc::clone(&self.stats)
    }

    /// Stops after trying what is queued for at most `drain` more; what is left is counted as
    /// dropped.
    pub fn close(mut self, drain: Duration) {
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.1 = true;
        }
        self.shared.wake.notify_one();
        let deadline = Instant::now() + drain;
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            let left = q.0.len() as u64;
            q.0.clear();
            self.stats.dropped.fetch_add(left, Ordering::Relaxed);
            drop(q);
            self.shared.wake.notify_one();
            let _ = t.join();
        }
    }
}

fn run(sh: &Shared, st: &WebhookStats, addr: SocketAddr, host: &str, path: &str) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let batch: Vec<Event> = {
            let mut q = sh.queue.lock().unwrap_or_else(|p| p.into_inner());
            while q.0.is_empty() && !q.1 {
                q = sh.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.0.is_empty() {
                return;
            }
            q.0.iter().take(100).cloned().collect()
        };
        let body = serde_json::to_vec(&batch).unwrap_or_default();
        match post(addr, host, path, &body) {
            Ok(()) => {
                let mut q = sh.queue.lock().unwrap_or_else(|p| p.into_inner());
                let n = batch.len().min(q.0.len());
                q.0.drain(..n);
                st.sent.fetch_add(n as u64, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
            }
            Err(_) => {
                st.errors.fetch_add(1, Ordering::Relaxed);
                // Back-off, cut short by closing (then the drain deadline decides).
                let q = sh.queue.lock().unwrap_or_else(|p| p.into_inner());
                if q.0.is_empty() {
                    continue;
                }
                let _ = sh.wake.wait_timeout(q, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
