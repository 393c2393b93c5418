//! Record streams and the batches that carry them to sinks.
//!
//! Every analysis emits typed records (flow records, view snapshots, HTTP records, ...) in
//! batches. A [`Batch`] is shared by every sink that takes its stream (behind an `Arc`): it keeps
//! the typed records for sinks that need them (IPFIX, CSV, Parquet) and renders its JSON lines
//! once, on first use, for every sink that sends JSON (files, ClickHouse, the bus, the spool).

use netspectra_dns::DnsRecord;
use netspectra_flow::{EndedFlow, Snapshot};
use netspectra_http::HttpRecord;
use netspectra_tls::TlsRecord;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// What kind of records a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKind {
    /// Ended flows (`flows.jsonl`).
    Flows,
    /// Snapshots of one view (one table per view).
    View,
    /// HTTP request/response/transaction records.
    Http,
    /// TLS and QUIC connection records (handshake metadata).
    Tls,
    /// DNS transaction records.
    Dns,
    /// Alert events (firing, resolved).
    Alerts,
    /// Events of the eBPF guard (deny, log).
    Guard,
}

impl StreamKind {
    /// The name used in configurations, file names, table names and bus subjects.
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Flows => "flows",
            StreamKind::View => "views",
            StreamKind::Http => "http",
            StreamKind::Tls => "tls",
            StreamKind::Dns => "dns",
            StreamKind::Alerts => "alerts",
            StreamKind::Guard => "guard",
        }
    }

    /// Every kind, in a stable order.
    pub const ALL: [StreamKind; 7] = [
        StreamKind::Flows,
        StreamKind::View,
        StreamKind::Http,
        StreamKind::Tls,
        StreamKind::Dns,
        StreamKind::Alerts,
        StreamKind::Guard,
    ];

    /// Parses a stream name as configurations write it.
    pub fn parse(s: &str) -> Option<StreamKind> {
        StreamKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// One record stream: its kind, and for view snapshots the view's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stream {
    /// What records it carries.
    pub kind: StreamKind,
    /// The view, for [`StreamKind::View`].
    pub view: Option<Arc<str>>,
}

impl Stream {
    /// A stream without a sub-name.
    pub const fn of(kind: StreamKind) -> Stream {
        Stream { kind, view: None }
    }

    /// The snapshots of view `name`.
    pub fn view(name: &str) -> Stream {
        Stream {
            kind: StreamKind::View,
            view: Some(Arc::from(name)),
        }
    }

    /// The stream's name: `flows`, `http`, ..., or `view_<name>` for a view (usable as a table
    /// name, a file name and a bus subject token).
    pub fn name(&self) -> String {
        match &self.view {
            Some(v) => format!("view_{v}"),
            None => self.kind.name().to_string(),
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The records of a batch.
#[derive(Debug)]
pub enum Payload {
    /// Ended flows.
    Flows(Vec<EndedFlow>),
    /// One view window.
    Snapshot(Snapshot),
    /// HTTP records.
    Http(Vec<HttpRecord>),
    /// TLS records.
    Tls(Vec<TlsRecord>),
    /// DNS records.
    Dns(Vec<DnsRecord>),
    /// Records that exist only as JSON lines: read back from a spool, or made by a stream
    /// without a typed form (alerts, guard events). `records` counts the lines.
    Encoded {
        /// Number of records (lines).
        records: u64,
    },
}

/// A batch of records of one stream, in the order they were produced.
#[derive(Debug)]
pub struct Batch {
    /// The stream.
    pub stream: Stream,
    /// Position of the batch in its stream (0, 1, 2, ... per run), for ordering and for the
    /// message IDs that let a receiver drop a batch delivered twice.
    pub seq: u64,
    /// The records.
    pub payload: Payload,
    json: OnceLock<Vec<u8>>,
}

impl Batch {
    /// A batch of typed records.
    pub fn new(stream: Stream, seq: u64, payload: Payload) -> Batch {
        Batch {
            stream,
            seq,
            payload,
            json: OnceLock::new(),
        }
    }

    /// A batch that exists only as JSON lines (`records` of them).
    pub fn encoded(stream: Stream, seq: u64, records: u64, json: Vec<u8>) -> Batch {
        let b = Batch::new(stream, seq, Payload::Encoded { records });
        let _ = b.json.set(json);
        b
    }

    /// Number of records.
    pub fn records(&self) -> u64 {
        match &self.payload {
            Payload::Flows(v) => v.len() as u64,
            Payload::Snapshot(s) => s.rows.len() as u64,
            Payload::Http(v) => v.len() as u64,
            Payload::Tls(v) => v.len() as u64,
            Payload::Dns(v) => v.len() as u64,
            Payload::Encoded { records } => *records,
        }
    }

    /// True when the typed records are at hand (not only their JSON).
    pub fn is_typed(&self) -> bool {
        !matches!(self.payload, Payload::Encoded { .. })
    }

    /// The records as JSON lines (one object per line, `\n` after each), rendered on first
    /// use: byte for byte what the record files hold.
    pub fn json(&self) -> &[u8] {
        self.json.get_or_init(|| {
            let mut out = Vec::new();
            match &self.payload {
                Payload::Flows(v) => {
                    for f in v {
                        netspectra_flow::record::write_jsonl(f, &mut out);
                    }
                }
                Payload::Snapshot(s) => {
                    // Writing to a Vec cannot fail.
                    let _ = s.write_jsonl(&mut out);
                }
                Payload::Http(v) => json_lines(&mut out, v),
                Payload::Tls(v) => json_lines(&mut out, v),
                Payload::Dns(v) => json_lines(&mut out, v),
                Payload::Encoded { .. } => {}
            }
            out
        })
    }

    /// Bytes of the rendered JSON (rendering it if not done yet).
    pub fn json_len(&self) -> usize {
        self.json().len()
    }

    /// The batch's size for queue bounds, without rendering it: the JSON length once
    /// rendered, otherwise an estimate from the record count (rendering stays on the sink's
    /// thread, where it is needed).
    pub fn approx_bytes(&self) -> usize {
        if let Some(j) = self.json.get() {
            return j.len();
        }
        let per = match &self.payload {
            Payload::Flows(_) => 420,
            Payload::Snapshot(_) => 160,
            Payload::Http(_) => 700,
            Payload::Tls(_) => 1200,
            Payload::Dns(_) => 600,
            Payload::Encoded { .. } => 100,
        };
        self.records() as usize * per
    }
}

/// Appends one JSON line per record (HTTP, TLS and DNS records always serialize: no maps
/// with non-string keys).
fn json_lines<T: serde::Serialize>(out: &mut Vec<u8>, v: &[T]) {
    for r in v {
        if crate::json::to_vec(out, r).is_ok() {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netspectra_flow::EndReason;
    use netspectra_packet::FlowKey;

    fn flow(i: u16) -> EndedFlow {
        EndedFlow {
            key: FlowKey {
                src: [10, 0, 0, 1].into(),
                dst: [10, 0, 0, 2].into(),
                src_port: 1000 + i,
                dst_port: 80,
                proto: 6,
                vlan: None,
            },
            first: 1_700_000_000_000_000_000,
            last: 1_700_000_001_000_000_000,
            packets: [3, 2],
            bytes: [300, 200],
            ip_bytes: [258, 172],
            tcp_flags: [0x1b, 0x1a],
            icmp_code: [0, 0],
            reason: EndReason::Fin,
        }
    }

    #[test]
    fn json_lines_are_the_record_files_bytes_and_rendered_once() {
        let flows: Vec<EndedFlow> = (0..3).map(flow).collect();
        let mut want = Vec::new();
        for f in &flows {
            netspectra_flow::record::write_jsonl(f, &mut want);
        }
        let b = Batch::new(Stream::of(StreamKind::Flows), 7, Payload::Flows(flows));
        assert_eq!(b.records(), 3);
        assert_eq!(b.json(), &want[..]);
        assert_eq!(b.json().as_ptr(), b.json().as_ptr(), "rendered once");
        assert_eq!(b.json().iter().filter(|&&c| c == b'\n').count(), 3);
        let e = Batch::encoded(Stream::view("src_ip"), 1, 2, b"{}\n{}\n".to_vec());
        assert!(!e.is_typed());
        assert_eq!(e.records(), 2);
        assert_eq!(e.stream.name(), "view_src_ip");
    }
}
