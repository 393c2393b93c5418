//! The NATS JetStream bus (docs/BUS.md): [`sink::NatsSink`] publishes a probe's record streams
//! to subjects `netspectra.<site>.<probe>.<stream>` with publish acknowledgements and a
//! deterministic `Nats-Msg-Id` per message, under the common delivery runner (queue, spool,
//! retries); [`collect`] moves the messages into ClickHouse with durable pull consumers,
//! acknowledging a message only once ClickHouse holds its rows, and exactly once in effect.

pub mod collect;
pub mod sink;

use std::time::Duration;

/// Name of the JetStream stream that holds every subject of the bus.
pub const STREAM: &str = "NETSPECTRA";
/// First token of every subject.
pub const SUBJECT_PREFIX: &str = "netspectra";
/// The subjects of [`STREAM`].
pub const SUBJECTS: &str = "netspectra.>";
/// Header naming the payload's encoding and its version.
pub const HDR_ENCODING: &str = "Netspectra-Encoding";
/// The only encoding written so far: JSON lines, the record files' bytes (docs/BUS.md).
pub const ENCODING: &str = "jsonl/1";
/// Header: the probe's name as configured (subject tokens are sanitized, this is not).
pub const HDR_PROBE: &str = "Netspectra-Probe";
/// Header: the site's name as configured.
pub const HDR_SITE: &str = "Netspectra-Site";
/// Header: the stream (`flows`, `http`, `view_<name>`, ...).
pub const HDR_STREAM: &str = "Netspectra-Stream";
/// Header: number of records (lines) in the message.
pub const HDR_RECORDS: &str = "Netspectra-Records";
/// Header: the batch's sequence number in its stream, and `part/parts` of a split batch.
pub const HDR_SEQ: &str = "Netspectra-Seq";
/// Largest payload of one message: NATS servers refuse more than 1 MiB by default, so a
/// larger batch is split at line boundaries into several messages.
pub const MAX_PAYLOAD: usize = 960 * 1024;
/// Default client port of NATS.
pub const DEFAULT_PORT: u16 = 4222;
/// Default duplicate window of the stream (a retried publish within it is dropped).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// Bus failures.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The URL is not `nats://HOST[:PORT][,HOST[:PORT]...]`.
    #[error("bad NATS URL {url:?}: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The servers could not be reached, or refused a request.
    #[error("NATS {servers}: {what}: {message}")]
    Nats {
        /// The servers (comma-separated).
        servers: String,
        /// What was being done.
        what: &'static str,
        /// The client's error.
        message: String,
    },
    /// ClickHouse failed (collector).
    #[error(transparent)]
    ClickHouse(#[from] netspectra_clickhouse::ClickHouseError),
    /// A local resource (a thread, the runtime) could not be had.
    #[error("{0}")]
    Local(String),
}

/// Parses `nats://HOST[:PORT][,HOST[:PORT]...]` into `host:port` strings (port 4222 when
/// missing).
pub fn parse_url(url: &str) -> Result<Vec<String>, BusError> {
    let bad = |why| BusError::Url {
        url: url.to_string(),
        why,
    };
    let rest = url
        .strip_prefix("nats://")
        .ok_or_else(|| bad("expected nats://HOST[:PORT][,HOST[:PORT]...]"))?;
    let rest = rest.trim_end_matches('/');
    let mut out = Vec::new();
    for h in rest.split(',') {
        if h.is_empty() || h.contains('/') || h.contains('@') || h.contains(' ') {
            return Err(bad("each server is HOST[:PORT] (no path, no credentials)"));
        }
        let with_port = if h.starts_with('[') {
            if h.ends_with(']') {
                format!("{h}:{DEFAULT_PORT}")
            } else {
                h.to_string()
            }
        } else {
            match h.rsplit_once(':') {
                Some((host, port)) => {
                    if host.is_empty() || port.parse::<u16>().is_err() {
                        return Err(bad("bad HOST:PORT"));
                    }
                    h.to_string()
                }
                None => format!("{h}:{DEFAULT_PORT}"),
            }
        };
        out.push(with_port);
    }
    Ok(out)
}

/// A name as a subject token: characters other than `[A-Za-z0-9_-]` become `_` (NATS splits
/// subjects at `.`, and `*`, `>` and white space are not allowed in tokens).
pub fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

/// The subject of a stream: `netspectra.<site>.<probe>.<stream>`.
pub fn subject(site: &str, probe: &str, stream: &str) -> String {
    format!(
        "{SUBJECT_PREFIX}.{}.{}.{}",
        token(site),
        token(probe),
        token(stream)
    )
}

/// The message ID of part `part` of a batch: site, probe, stream, the batch's sequence number,
/// and a hash of its bytes. The same batch has the same ID when published again (a retry, or
/// the next run reading it back from the spool, which keeps sequence and bytes), so JetStream's
/// duplicate window drops it; two different batches never share an ID (the sequence restarts
/// at 0 in each run, the hash tells them apart).
pub fn msg_id(site: &str, probe: &str, stream: &str, seq: u64, json: &[u8], part: usize) -> String {
    format!(
        "{}.{}.{}.{seq}.{:016x}.{part}",
        token(site),
        token(probe),
        token(stream),
        xxhash_rust::xxh3::xxh3_64(json)
    )
}

/// `message` (a NATS client's error) with what to do about the JetStream refusals a new
/// deployment meets: a stream bound larger than the servers' storage, a subject no stream takes.
pub fn with_hint(message: String) -> String {
    if message.contains("insufficient storage") || message.contains("insufficient resources") {
        format!(
            "{message} (the stream's bound is larger than the JetStream storage of enough servers, \
             which is max_file_store or, unset, 75% of the disk free when a server started: \
             lower stream_max_bytes or give the servers more)"
        )
    } else if message.contains("no stream found for given subject") {
        format!(
            "{message} (no stream takes netspectra.> yet: `netspectra collect` creates it, \
             or set stream_replicas on the nats sink)"
        )
    } else {
        message
    }
}

/// Splits JSON lines into pieces of at most `max` bytes at line ends (a single longer line is
/// a piece of its own), with each piece's line count.
pub fn split_lines(json: &[u8], max: usize) -> Vec<(&[u8], u64)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut end = 0;
    let mut lines = 0u64;
    for line in json.split_inclusive(|&c| c == b'\n') {
        if end > start && end - start + line.len() > max {
            out.push((&json[start..end], lines));
            start = end;
            lines = 0;
        }
        end += line.len();
        lines += 1;
    }
    if end > start {
        out.push((&json[start..end], lines));
    }
    out
}

/// Connects to the first server of `servers` that answers (the client then knows the whole
/// cluster and reconnects to another node when its server goes away).
pub async fn connect(
    servers: &[String],
    timeout: Duration,
) -> Result<async_nats::Client, BusError> {
    let opts = async_nats::ConnectOptions::new()
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        .name("netspectra");
    let addrs: Vec<async_nats::ServerAddr> = servers
        .iter()
        .filter_map(|s| format!("nats://{s}").parse().ok())
        .collect();
    match tokio::time::timeout(timeout * 2, opts.connect(addrs)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(BusError::Nats {
            servers: servers.join(","),
            what: "connect",
            message: e.to_string(),
        }),
        Err(_) => Err(BusError::Nats {
            servers: servers.join(","),
            what: "connect",
            message: "timed out".into(),
        }),
    }
}

/// The configuration of [`STREAM`]: every `netspectra.>` subject, file storage, `replicas`
/// copies, at most `max_bytes` (oldest messages dropped beyond it), and the duplicate window.
pub fn stream_config(
    replicas: usize,
    max_bytes: i64,
    window: Duration,
) -> async_nats::jetstream::stream::Config {
    async_nats::jetstream::stream::Config {
        name: STREAM.to_string(),
        subjects: vec![SUBJECTS.to_string()],
        num_replicas: replicas.max(1),
        max_bytes,
        duplicate_window: window,
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_a_new_deployment_say_what_to_change() {
        let full = with_hint(
            "jetstream error: no suitable peers for placement, insufficient storage (code 400, error code 10005)".into(),
        );
        assert!(full.contains("lower stream_max_bytes"), "{full}");
        let none = with_hint("no stream found for given subject".into());
        assert!(none.contains("netspectra collect` creates it"), "{none}");
        assert_eq!(with_hint("timed out".into()), "timed out");
    }

    #[test]
    fn urls_list_servers_with_default_ports() {
        assert_eq!(
            parse_url("nats://127.0.0.1:4222,h2,h3:5").unwrap(),
            vec!["127.0.0.1:4222", "h2:4222", "h3:5"]
        );
        assert_eq!(parse_url("nats://[::1]").unwrap(), vec!["[::1]:4222"]);
        for bad in [
            "http://h",
            "nats://",
            "nats://h:x",
            "nats://u@h",
            "nats://h,,k",
            "nats://:4",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subjects_are_made_of_safe_tokens() {
        assert_eq!(
            subject("paris dc", "probe.1", "view_src_ip"),
            "netspectra.paris_dc.probe_1.view_src_ip"
        );
        assert_eq!(token(""), "_");
        assert_eq!(token("a*>b"), "a__b");
    }

    #[test]
    fn message_ids_follow_sequence_and_bytes() {
        let a = msg_id("s", "p", "flows", 3, b"{}\n", 0);
        assert_eq!(a, msg_id("s", "p", "flows", 3, b"{}\n", 0));
        assert_ne!(a, msg_id("s", "p", "flows", 3, b"{}\n", 1));
        assert_ne!(a, msg_id("s", "p", "flows", 4, b"{}\n", 0));
        assert_ne!(a, msg_id("s", "p", "flows", 3, b"{\"a\":1}\n", 0));
        assert_ne!(a, msg_id("s", "q", "flows", 3, b"{}\n", 0));
    }

    #[test]
    fn splitting_keeps_whole_lines_within_the_bound() {
        let json = b"aaaa\nbb\ncccccc\nd\n";
        let parts = split_lines(json, 8);
        let joined: Vec<u8> = parts.iter().flat_map(|(p, _)| p.to_vec()).collect();
        assert_eq!(joined, json);
        assert_eq!(parts.iter().map(|p| p.1).sum::<u64>(), 4);
        for (p, n) in &parts {
            assert!(p.len() <= 8 || *n == 1, "{p:?}");
            assert!(p.ends_with(b"\n"));
        }
        assert_eq!(split_lines(b"", 8).len(), 0);
        assert_eq!(split_lines(json, 1 << 20).len(), 1);
    }
}
