//! `netspectra`: one binary that turns packets into answers. Each subcommand lives in its own
//! module; this file only parses arguments, dispatches and maps errors to exit codes
//! (0 ok, 1 runtime failure, 2 bad input or usage).

mod capture;
mod collect;
mod console;
mod dns;
mod exit;
mod flows;
mod gen;
mod guard;
mod http;
mod info;
mod live;
mod metrics;
mod probe;
mod probe_guard;
mod record_cmd;
mod record_format;
mod replay;
mod sanitize;
mod stdout;
mod stop;
mod tls;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Command-line interface of NetSpectra.
#[derive(Parser)]
#[command(
    name = "netspectra",
    version,
    about = "Fast, bounded-memory network traffic engine",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarize capture files: format, link types, counts, rates and a protocol breakdown (like capinfos).
    Info(info::InfoArgs),
    /// Generate deterministic synthetic traffic (HTTP, TLS, DNS, ICMP, VLANs, IPv6, duplicates) as pcap/pcapng plus a JSON truth file.
    Gen(gen::GenArgs),
    /// Capture live packets to pcap/pcapng files with AF_PACKET rings, rotating like tcpdump (-C/-G/-W).
    Capture(capture::CaptureArgs),
    /// Send a capture file out of an interface (AF_PACKET sendmmsg), like tcpreplay.
    Replay(replay::ReplayArgs),
    /// Sanitize captures for sharing in one streaming pass: remove duplicates, anonymize addresses (Crypto-PAn), mask payloads; or --verify a sanitized capture.
    Sanitize(sanitize::SanitizeArgs),
    /// eBPF micro-segmentation guard: enforce an allow/deny/log policy per flow on an interface (run, status, events, sessions, check, reload).
    Guard(guard::GuardArgs),
    /// HTTP/1.x request/response records on any port (method, host, URI, status, User-Agent, latency), like httpry / Zeek http.log.
    Http(http::HttpArgs),
    /// TLS and QUIC connection records (SNI, ALPN, versions, ciphers, JA3/JA4, certificates, handshake latency) on any port, like Zeek ssl.log / Suricata eve tls.
    Tls(tls::TlsArgs),
    /// DNS transaction records over UDP and TCP (query, rcode, answers of every section, EDNS client subnet, latency, unanswered queries), like Zeek dns.log.
    Dns(dns::DnsArgs),
    /// Flow records (bidirectional, Community ID), config-driven views with snapshots, sketches and top talkers/conversations (like softflowd, argus, tshark -z conv).
    Flows(flows::FlowsArgs),
    /// Watch a network continuously: one capture, one decode, every analysis (flows, HTTP, TLS, DNS), every record stream to every sink (files, ClickHouse, IPFIX) with queues and spools; SIGHUP reloads, SIGTERM drains.
    Probe(probe::ProbeArgs),
    /// Query API and web page over stored records: the embedded store (--store FILE) or ClickHouse (--clickhouse URL); 127.0.0.1 unless a token is given.
    Console(console::ConsoleArgs),
    /// Move record streams from the NATS JetStream bus into ClickHouse (durable consumers shared by a group, exactly-once effect, --init-schema for a sharded and replicated cluster).
    Collect(collect::CollectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => info::run(a),
        Command::Gen(a) => gen::run(a),
        Command::Guard(a) => guard::run(a),
        Command::Capture(a) => capture::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Sanitize(a) => sanitize::run(a),
        Command::Http(a) => http::run(a),
        Command::Tls(a) => tls::run(a),
        Command::Dns(a) => dns::run(a),
        Command::Flows(a) => flows::run(a),
        Command::Probe(a) => probe::run(a),
        Command::Console(a) => console::run(a),
        Command::Collect(a) => collect::run(a),
    };
    exit::report(result)
}
