//! The `nats://` sink: each batch of a record stream becomes one message (or several, at line
//! boundaries, when larger than [`crate::MAX_PAYLOAD`]) on `netspectra.<site>.<probe>.<stream>`,
//! published to JetStream and acknowledged by it before the batch counts as delivered. A failed
//! or unanswered publish is retried by the delivery runner with the same `Nats-Msg-Id`, so
//! JetStream stores it once; while the bus is down batches wait in the runner's spool.

use crate::{
    connect, msg_id, split_lines, stream_config, subject, with_hint, BusError, DUPLICATE_WINDOW,
    ENCODING, HDR_ENCODING, HDR_PROBE, HDR_RECORDS, HDR_SEQ, HDR_SITE, HDR_STREAM, MAX_PAYLOAD,
};
use async_nats::jetstream;
use netspectra_sinks::sink::{DeliverError, Routes, Sink};
use netspectra_sinks::stream::Batch;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Settings of a [`NatsSink`].
#[derive(Clone, Debug)]
pub struct BusOptions {
    /// `host:port` of the servers (any node of the cluster).
    pub servers: Vec<String>,
    /// Site name (second subject token).
    pub site: String,
    /// Probe name (third subject token).
    pub probe: String,
    /// The streams sent.
    pub routes: Routes,
    /// Create the JetStream stream with this many replicas when it does not exist (None: it
    /// must exist; publishes fail, and batches wait in the spool, until a collector or an
    /// operator made it).
    pub create_stream: Option<usize>,
    /// How long a publish may wait for its acknowledgement.
    pub ack_timeout: Duration,
}

impl BusOptions {
    /// Options for these servers with the defaults (no stream creation, 10 s acks).
    pub fn new(servers: Vec<String>, site: &str, probe: &str, routes: Routes) -> BusOptions {
        BusOptions {
            servers,
            site: site.to_string(),
            probe: probe.to_string(),
            routes,
            create_stream: None,
            ack_timeout: Duration::from_secs(10),
        }
    }
}

/// What reached the bus (shared with metrics and summaries).
#[derive(Debug, Default)]
pub struct BusStats {
    /// Messages acknowledged by JetStream.
    pub messages: AtomicU64,
    /// Records in them.
    pub records: AtomicU64,
    /// Payload bytes in them (headers not counted).
    pub bytes: AtomicU64,
    /// Messages JetStream reported as duplicates (a retry of a message it already held).
    pub duplicates: AtomicU64,
}

/// A JetStream destination of record streams.
pub struct NatsSink {
    opts: BusOptions,
    rt: tokio::runtime::Runtime,
    js: Option<jetstream::Context>,
    stats: Arc<BusStats>,
}

impl NatsSink {
    /// A sink that connects on its first delivery (a probe starts, and spools, while the bus
    /// is down).
    pub fn lazy(opts: BusOptions) -> Result<NatsSink, BusError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("nats-sink")
            .enable_all()
            .build()
            .map_err(|e| BusError::Local(format!("NATS sink runtime: {e}")))?;
        Ok(NatsSink {
            opts,
            rt,
            js: None,
            stats: Arc::new(BusStats::default()),
        })
    }

    /// The counters, shared.
    pub fn stats(&self) -> Arc<BusStats> {
        Arc::clone(&self.stats)
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> DeliverError {
        DeliverError::retry(self.name(), format!("{what}: {}", with_hint(e.to_string())))
    }

    fn context(&mut self) -> Result<jetstream::Context, DeliverError> {
        if let Some(js) = &self.js {
            return Ok(js.clone());
        }
        let timeout = self.opts.ack_timeout;
        let servers = self.opts.servers.clone();
        let create = self.opts.create_stream;
        let js = self.rt.block_on(async move {
            let client = connect(&servers, timeout.min(Duration::from_secs(5))).await?;
            let mut js = jetstream::new(client);
            js.set_timeout(timeout);
            if let Some(r) = create {
                js.get_or_create_stream(stream_config(r, -1, DUPLICATE_WINDOW))
                    .await
                    .map_err(|e| BusError::Nats {
                        servers: servers.join(","),
                        what: "create stream",
                        message: with_hint(e.to_string()),
                    })?;
            }
            Ok::<_, BusError>(js)
        });
        let js = js.map_err(|e| DeliverError::retry(self.name(), e.to_string()))?;
        self.js = Some(js.clone());
        Ok(js)
    }
}

impl Sink for NatsSink {
    fn name(&self) -> String {
        format!("nats://{}", self.opts.servers.join(","))
    }

    fn routes(&self) -> Routes {
        self.opts.routes.clone()
    }

    fn deliver(&mut self, b: &Batch) -> Result<(), DeliverError> {
        if b.records() == 0 {
            return Ok(());
        }
        let js = self.context()?;
        let stream = b.stream.name();
        let subj = subject(&self.opts.site, &self.opts.probe, &stream);
        let json = b.json();
        let parts = split_lines(json, MAX_PAYLOAD);
        let n = parts.len();
        let mut msgs = Vec::with_capacity(n);
        for (i, (p, records)) in parts.iter().enumerate() {
            let mut h = async_nats::HeaderMap::new();
            let id = msg_id(&self.opts.site, &self.opts.probe, &stream, b.seq, json, i);
            h.insert("Nats-Msg-Id", id.as_str());
            h.insert(HDR_ENCODING, ENCODING);
            h.insert(HDR_SITE, self.opts.site.as_str());
            h.insert(HDR_PROBE, self.opts.probe.as_str());
            h.insert(HDR_STREAM, stream.as_str());
            h.insert(HDR_RECORDS, records.to_string().as_str());
            h.insert(HDR_SEQ, format!("{} {}/{n}", b.seq, i + 1).as_str());
            msgs.push((h, bytes::Bytes::copy_from_slice(p), *records));
        }
        let subj2 = subj.clone();
        let timeout = self.opts.ack_timeout;
        let r = self.rt.block_on(async move {
            // Every part is sent before the first acknowledgement is awaited (one round trip
            // per batch, not per part); JetStream stores them in this order.
            let mut acks = Vec::with_capacity(msgs.len());
            for (h, payload, records) in msgs {
                let len = payload.len() as u64;
                let f = js
                    .publish_with_headers(subj2.clone(), h, payload)
                    .await
                    .map_err(|e| ("publish", e.to_string()))?;
                acks.push((f, records, len));
            }
            let mut out = Vec::with_capacity(acks.len());
            for (f, records, len) in acks {
                let ack = tokio::time::timeout(timeout, std::future::IntoFuture::into_future(f))
                    .await
                    .map_err(|_| ("acknowledgement", "timed out".to_string()))?
                    .map_err(|e| ("acknowledgement", e.to_string()))?;
                out.push((ack.duplicate, records, len));
            }
            Ok::<_, (&'static str, String)>(out)
        });
        match r {
            Ok(acks) => {
                for (dup, records, len) in acks {
                    self.stats.messages.fetch_add(1, Ordering::Relaxed);
                    self.stats.records.fetch_add(records, Ordering::Relaxed);
                    self.stats.bytes.fetch_add(len, Ordering::Relaxed);
                    if dup {
                        self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
            // The same message IDs go out again on the retry: what JetStream already stored
            // is dropped as a duplicate, so an unanswered publish needs no question first.
            Err((what, e)) => Err(self.err(&format!("{what} on {subj}"), e)),
        }
    }
}
