//! `netspectra http`: HTTP/1.x request/response records (httpry / tshark `-Y http` / Zeek
//! http.log style) from capture files or a live interface, with a summary at the end.
//!
//! A thin front-end of the pipeline (`netspectra_pipeline`): workers (one per `--threads`)
//! each own an HTTP analyzer and share nothing; their records reach the file sink in batches.
//! Several files are read as one input (a connection may continue from one to the next).

use crate::exit::BadInput;
use crate::record_cmd::{self, CommandSummary, RecordArgs, RecordCommand, Totals};
use anyhow::Result;
use clap::Args;
use netspectra_http::parse::ExtractOptions;
use netspectra_http::{HeaderSelect, HttpConfig, Stats, FIELDS};
use netspectra_pipeline::analysis::AnalysisReport;
use netspectra_pipeline::AnalysisSet;
use netspectra_sinks::stream::StreamKind;
use std::process::ExitCode;

/// Arguments of `netspectra http`.
#[derive(Args)]
pub struct HttpArgs {
    #[command(flatten)]
    common: RecordArgs,
    /// One record per transaction (request + response, Zeek http.log style).
    #[arg(long)]
    paired: bool,
    /// Extra headers to record in `headers`, comma-separated (case-insensitive).
    #[arg(long, value_delimiter = ',', conflicts_with = "all_headers")]
    headers: Option<Vec<String>>,
    /// Record every header in `headers`.
    #[arg(long)]
    all_headers: bool,
    /// Headers whose values are replaced by their length, comma-separated; empty for none.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "authorization,cookie,set-cookie"
    )]
    redact: Vec<String>,
    /// Cap on header name length in bytes.
    #[arg(long, default_value_t = 256)]
    max_name_len: usize,
    /// Cap on header value (and URI) length in bytes.
    #[arg(long, default_value_t = 2048)]
    max_value_len: usize,
    /// Connections tracked per worker; the least recently active is evicted when full.
    #[arg(long, default_value_t = 65_536)]
    max_connections: usize,
    /// Reassembly buffer per direction for a header block split across segments, in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Pipelined requests waiting for responses per connection.
    #[arg(long, default_value_t = 64)]
    max_pipeline: usize,
    /// Seconds of inactivity after which a connection is flushed.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Do not parse User-Agent strings.
    #[arg(long)]
    no_ua: bool,
    /// Do not look inside tunnels. By default HTTP is also found in packets carried by GRE,
    /// ERSPAN, VXLAN, VXLAN-GPE, GENEVE, MPLS over UDP, PIM register and IP-in-IP tunnels
    /// (nested up to four deep), as tshark, Zeek and Suricata do.
    #[arg(long)]
    no_tunnels: bool,
    /// Look inside tunnels: the default (accepted for older command lines).
    #[arg(long, hide = true, conflicts_with = "no_tunnels")]
    tunnels: bool,
}

/// httpry's field names mapped to ours.
const HTTPRY_NAMES: &[(&str, &str)] = &[
    ("timestamp", "ts"),
    ("source-ip", "src_ip"),
    ("dest-ip", "dst_ip"),
    ("source-port", "src_port"),
    ("dest-port", "dst_port"),
    ("request-uri", "uri"),
    ("http-version", "version"),
    ("status-code", "status"),
    ("reason-phrase", "reason"),
    ("user-agent", "user_agent"),
    ("direction", "type"),
    ("content-type", "content_type"),
    ("content-length", "content_length"),
];

/// A `-F` name as a record field: httpry's names are mapped, `headers.<name>` selects one
/// recorded header.
fn map_field(f: &str) -> Option<String> {
    let name = HTTPRY_NAMES
        .iter()
        .find(|(h, _)| h.eq_ignore_ascii_case(f))
        .map_or(f, |(_, ours)| *ours);
    (FIELDS.contains(&name) || name.starts_with("headers.")).then(|| name.to_string())
}

fn config(a: &HttpArgs) -> HttpConfig {
    HttpConfig {
        max_connections: a.max_connections,
        max_header_bytes: a.max_header_bytes,
        max_pipeline: a.max_pipeline,
        idle_timeout_ns: (a.idle_timeout.min(i64::MAX as u64 / 1_000_000_000) as i64)
            .saturating_mul(1_000_000_000),
        paired: a.paired,
        extract: ExtractOptions {
            extra: if a.all_headers {
                HeaderSelect::All
            } else {
                match &a.headers {
                    Some(h) if !h.is_empty() => HeaderSelect::List(
                        h.iter().map(|s| s.trim().to_ascii_lowercase()).collect(),
                    ),
                    _ => HeaderSelect::None,
                }
            },
            redact: a
                .redact
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            max_name: a.max_name_len,
            max_value: a.max_value_len,
        },
        parse_user_agent: !a.no_ua,
        decode_tunnels: a.tunnels || !a.no_tunnels,
        ..HttpConfig::default()
    }
}

/// Runs `netspectra http`.
pub fn run(a: HttpArgs) -> Result<ExitCode> {
    // `headers` is a map and `lenient` rarely set: `-F` selects them.
    let Some(fields) = record_cmd::start(&a.common, FIELDS, &["headers", "lenient"], &map_field)?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let cfg = config(&a);
    cfg.validate().map_err(|e| {
        // The library names its keys; here they are flags.
        let flag = match e.key {
            "idle_timeout" => "--idle-timeout (seconds)".to_string(),
            k => format!("--{}", k.replace('_', "-")),
        };
        BadInput(format!(
            "{flag} must be {}..={} (got {})",
            e.min, e.max, e.got
        ))
    })?;
    let set = AnalysisSet {
        http: Some(cfg),
        ..AnalysisSet::default()
    };
    record_cmd::run(
        &a.common,
        RecordCommand {
            name: "http",
            kind: StreamKind::Http,
            set,
            fields,
            summary: &HttpSummary,
        },
    )
}

/// The HTTP summary: counts, methods, status codes, latency, top hosts and User-Agents.
struct HttpSummary;

impl CommandSummary for HttpSummary {
    fn json(&self, r: &AnalysisReport, top: usize) -> Result<serde_json::Value> {
        let total = r.http.clone().unwrap_or_else(|| Stats::new(1));
        Ok(serde_json::to_value(total.report(top))?)
    }

    fn text(&self, r: &AnalysisReport, top: usize, t: &Totals<'_>) -> String {
        use std::fmt::Write;
        let total = r.http.clone().unwrap_or_else(|| Stats::new(1));
        let s = total.report(top);
        let mut o = String::new();
        let _ = writeln!(o, "{}", t.headline("HTTP"));
        let _ = writeln!(
            o,
            "  records {}: requests {}, responses {} (paired {}), unanswered requests {}, responses without request {}, partial {}",
            t.records, s.requests, s.responses, s.paired, s.unanswered, s.orphan_responses, s.partial
        );
        let _ = writeln!(
            o,
            "  connections {} (evicted {}, timed out {}, tunnels {}); segments ignored as retransmitted/duplicate {}, sequence gaps {}",
            s.connections, s.evicted, s.timed_out, s.tunnels, s.retransmissions, s.gaps
        );
        let _ = writeln!(o, "  methods: {}", record_cmd::list(&s.methods));
        let _ = writeln!(o, "  status:  {}", record_cmd::list(&s.status));
        record_cmd::latency_line(&mut o, "latency", &s.latency_us, "pairs");
        record_cmd::top_list(&mut o, "top hosts", &s.top_hosts);
        record_cmd::top_list(&mut o, "top user agents", &s.top_user_agents);
        let _ = write!(o, "  malformed: {}", record_cmd::list(&s.malformed));
        if let Some(r) = s.ua_cache_hit_rate {
            let _ = write!(o, "\n  user-agent cache hit rate: {:.1} %", r * 100.0);
        }
        o
    }
}
