//! `netspectra dns`: one record per DNS transaction (query and response paired by ID and
//! addresses, over UDP and TCP, on port 53 and found by content elsewhere; Zeek dns.log /
//! Suricata eve dns style) from capture files or a live interface, with a summary of the top
//! query names, types and response codes at the end.

use crate::record_cmd::{self, CommandSummary, RecordArgs, RecordCommand, Totals};
use crate::tls::flag_error;
use anyhow::Result;
use clap::Args;
use netspectra_dns::{DnsConfig, DnsStats, FIELDS};
use netspectra_pipeline::analysis::AnalysisReport;
use netspectra_pipeline::AnalysisSet;
use netspectra_sinks::stream::StreamKind;
use std::process::ExitCode;

/// Arguments of `netspectra dns`.
#[derive(Args)]
pub struct DnsArgs {
    #[command(flatten)]
    common: RecordArgs,
    /// Transactions remembered per worker, pending or recently answered; when full the
    /// oldest is dropped (a pending one is recorded as unanswered).
    #[arg(long, default_value_t = 65_536)]
    max_transactions: usize,
    /// Milliseconds after which a query without a response is recorded as unanswered.
    #[arg(long, default_value_t = 10_000)]
    query_timeout_ms: u64,
    /// DNS-over-TCP connections tracked per worker.
    #[arg(long, default_value_t = 16_384)]
    max_tcp_connections: usize,
    /// Records kept per message section (the header counts stay exact).
    #[arg(long, default_value_t = 64)]
    max_records: usize,
    /// Only ports 53, 5353 (mDNS) and 5355 (LLMNR): do not look for DNS on other ports.
    #[arg(long)]
    no_detect: bool,
}

fn config(a: &DnsArgs) -> DnsConfig {
    DnsConfig {
        max_transactions: a.max_transactions,
        query_timeout_ns: (a.query_timeout_ms.min(86_400_000 * 365) as i64) * 1_000_000,
        max_tcp_connections: a.max_tcp_connections,
        max_records: a.max_records,
        detect_off_port: !a.no_detect,
        ..DnsConfig::default()
    }
}

/// Runs `netspectra dns`.
pub fn run(a: DnsArgs) -> Result<ExitCode> {
    let Some(fields) =
        record_cmd::start(&a.common, FIELDS, &[], &record_cmd::plain_fields(FIELDS))?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let cfg = config(&a);
    cfg.validate().map_err(|e| match e {
        netspectra_dns::ConfigError::OutOfRange { key, value, range } => {
            if key == "query_timeout_ns" {
                flag_error("query_timeout_ms", &value, "1..=3600000 ms")
            } else {
                flag_error(key, &value, range)
            }
        }
    })?;
    let set = AnalysisSet {
        dns: Some(cfg),
        ..AnalysisSet::default()
    };
    record_cmd::run(
        &a.common,
        RecordCommand {
            name: "dns",
            kind: StreamKind::Dns,
            set,
            fields,
            summary: &DnsSummaryText,
        },
    )
}

/// The DNS summary: transactions, response codes, query types, latency, top query names.
struct DnsSummaryText;

impl CommandSummary for DnsSummaryText {
    fn json(&self, r: &AnalysisReport, top: usize) -> Result<serde_json::Value> {
        let total = r.dns.clone().unwrap_or_else(|| DnsStats::new(1));
        Ok(serde_json::to_value(total.report(top))?)
    }

    fn text(&self, r: &AnalysisReport, top: usize, t: &Totals<'_>) -> String {
        use std::fmt::Write;
        let total = r.dns.clone().unwrap_or_else(|| DnsStats::new(1));
        let s = total.report(top);
        let mut o = String::new();
        let _ = writeln!(o, "{}", t.headline("DNS"));
        let _ = writeln!(
            o,
            "  records {}: answered {}, unanswered {}, responses without query {}; queries {}, responses {} (truncated {}), over TCP {}, found off port {}",
            t.records,
            s.answered,
            s.unanswered,
            s.orphan_responses,
            s.queries,
            s.responses,
            s.truncated_responses,
            s.tcp_messages,
            s.detected_off_port
        );
        let _ = writeln!(
            o,
            "  duplicates: queries {}, responses {}; evicted {}; TCP connections {} (evicted {}, timed out {}, too large {}); records cut {}",
            s.duplicate_queries,
            s.duplicate_responses,
            s.evicted,
            s.tcp_connections,
            s.tcp_evicted,
            s.tcp_timed_out,
            s.tcp_too_large,
            s.records_capped
        );
        let _ = writeln!(o, "  rcodes: {}", record_cmd::list(&s.rcodes));
        let _ = writeln!(o, "  qtypes: {}", record_cmd::list(&s.qtypes));
        record_cmd::latency_line(&mut o, "latency", &s.latency_us, "answered");
        record_cmd::top_list(&mut o, "top query names", &s.top_qnames);
        let _ = write!(o, "  malformed: {}", record_cmd::list(&s.malformed));
        o
    }
}
