//! `netspectra tls`: one record per TLS-over-TCP or QUIC connection (SNI, ALPN, versions,
//! cipher suites, JA3/JA4, certificates, handshake latency; Zeek ssl.log / Suricata eve tls
//! style) from capture files or a live interface, with a summary of the top server names,
//! ALPN protocols and JA4 fingerprints at the end.

use crate::exit::BadInput;
use crate::record_cmd::{self, CommandSummary, RecordArgs, RecordCommand, Totals};
use anyhow::Result;
use clap::Args;
use netspectra_pipeline::analysis::AnalysisReport;
use netspectra_pipeline::AnalysisSet;
use netspectra_sinks::stream::StreamKind;
use netspectra_tls::{TlsConfig, TlsStats, FIELDS};
use std::process::ExitCode;

/// Arguments of `netspectra tls`.
#[derive(Args)]
pub struct TlsArgs {
    #[command(flatten)]
    common: RecordArgs,
    /// TLS-over-TCP connections tracked per worker; the least recently active is emitted and
    /// dropped when full.
    #[arg(long, default_value_t = 65_536)]
    max_connections: usize,
    /// Seconds of inactivity after which a TLS connection is emitted.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// QUIC connections tracked per worker.
    #[arg(long, default_value_t = 16_384)]
    max_quic_connections: usize,
    /// Largest handshake message (ClientHello, Certificate, ...) reassembled across records
    /// and segments, in bytes; longer ones are skipped and counted.
    #[arg(long, default_value_t = 65_536)]
    max_handshake_bytes: usize,
    /// Certificates of a chain kept in a record.
    #[arg(long, default_value_t = 8)]
    max_certs: usize,
    /// Do not read QUIC Initial packets.
    #[arg(long)]
    no_quic: bool,
}

fn config(a: &TlsArgs) -> TlsConfig {
    TlsConfig {
        max_connections: a.max_connections,
        idle_timeout_ns: (a.idle_timeout.min(86_400 * 365) as i64) * 1_000_000_000,
        max_quic_connections: a.max_quic_connections,
        max_handshake_bytes: a.max_handshake_bytes,
        max_certs: a.max_certs,
        quic: !a.no_quic,
        ..TlsConfig::default()
    }
}

/// A library bound error as the flag it came from.
pub(crate) fn flag_error(key: &str, value: &str, range: &str) -> BadInput {
    let (flag, unit) = match key.strip_suffix("_ns") {
        Some(k) => (k, " (in nanoseconds; the flag takes seconds)"),
        None => (key, ""),
    };
    BadInput(format!(
        "--{} must be {range}{unit} (got {value})",
        flag.replace('_', "-")
    ))
}

/// Runs `netspectra tls`.
pub fn run(a: TlsArgs) -> Result<ExitCode> {
    let Some(fields) =
        record_cmd::start(&a.common, FIELDS, &[], &record_cmd::plain_fields(FIELDS))?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let cfg = config(&a);
    cfg.validate().map_err(|e| match e {
        netspectra_tls::ConfigError::OutOfRange { key, value, range } => {
            flag_error(key, &value, range)
        }
    })?;
    let set = AnalysisSet {
        tls: Some(cfg),
        ..AnalysisSet::default()
    };
    record_cmd::run(
        &a.common,
        RecordCommand {
            name: "tls",
            kind: StreamKind::Tls,
            set,
            fields,
            summary: &TlsSummaryText,
        },
    )
}

/// The TLS summary: connections, versions, ciphers, latency, top SNI, ALPN and JA4.
struct TlsSummaryText;

impl CommandSummary for TlsSummaryText {
    fn json(&self, r: &AnalysisReport, top: usize) -> Result<serde_json::Value> {
        let total = r.tls.clone().unwrap_or_else(|| TlsStats::new(1));
        Ok(serde_json::to_value(total.report(top))?)
    }

    fn text(&self, r: &AnalysisReport, top: usize, t: &Totals<'_>) -> String {
        use std::fmt::Write;
        let total = r.tls.clone().unwrap_or_else(|| TlsStats::new(1));
        let s = total.report(top);
        let mut o = String::new();
        let _ = writeln!(o, "{}", t.headline("TLS"));
        let _ = writeln!(
            o,
            "  records {}: TLS connections {}, QUIC connections {} (Initial packets {}); ClientHellos {}, ServerHellos {}, certificates {}, resumed {}",
            t.records,
            s.connections,
            s.quic_connections,
            s.quic_initials,
            s.client_hellos,
            s.server_hellos,
            s.certificates,
            s.resumed
        );
        let _ = writeln!(
            o,
            "  alerts {} (encrypted {}); evicted {} (QUIC {}), timed out {}; segments ignored as retransmitted {}, sequence gaps {}",
            s.alerts, s.encrypted_alerts, s.evicted, s.quic_evicted, s.timed_out, s.retransmissions, s.gaps
        );
        let _ = writeln!(o, "  versions: {}", record_cmd::list(&s.versions));
        let _ = writeln!(o, "  ciphers:  {}", record_cmd::list(&s.ciphers));
        record_cmd::latency_line(&mut o, "handshake latency", &s.latency_us, "handshakes");
        record_cmd::top_list(&mut o, "top server names (SNI)", &s.top_sni);
        record_cmd::top_list(&mut o, "top ALPN", &s.top_alpn);
        record_cmd::top_list(&mut o, "top JA4", &s.top_ja4);
        let _ = write!(o, "  malformed: {}", record_cmd::list(&s.malformed));
        o
    }
}
