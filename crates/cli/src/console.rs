//! `netspectra console`: the query API and the web page over stored records, from the embedded
//! store (`--store FILE`, the default) or ClickHouse (`--clickhouse URL`).

use crate::exit::BadInput;
use crate::stdout::outln;
use anyhow::{Context, Result};
use clap::Args;
use netspectra_console::backend::{Backend, ClickHouseBackend, SqliteBackend};
use netspectra_console::live::{Live, ProbeEndpoint};
use netspectra_console::ConsoleConfig;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `netspectra console`.
#[derive(Args)]
pub struct ConsoleArgs {
    /// The embedded store the probe writes (`probe --store FILE`).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "netspectra.db",
        conflicts_with = "clickhouse"
    )]
    store: PathBuf,
    /// Query ClickHouse instead: clickhouse://HOST[:PORT]/DB (plain or Distributed tables).
    #[arg(long, value_name = "URL")]
    clickhouse: Option<String>,
    /// Address to listen on; any but loopback needs --token-file.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9470")]
    listen: String,
    /// File holding the bearer token the API requires (Authorization: Bearer TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A probe's metrics endpoint (http://HOST:PORT[/metrics]) read live by the probes page:
    /// kernel drops, sink backlog, spool, sinks down. Repeatable.
    #[arg(long = "probe-metrics", value_name = "URL")]
    probe_metrics: Vec<String>,
    /// File holding the bearer token the probes' metrics endpoints require.
    #[arg(long, value_name = "FILE")]
    probe_token_file: Option<PathBuf>,
    /// Time-out of one query, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
}

fn read_token(flag: &str, p: &PathBuf) -> Result<String> {
    let mut s = String::new();
    std::fs::File::open(p)
        .and_then(|f| f.take(4097).read_to_string(&mut s))
        .map_err(|e| BadInput(format!("{flag} {}: {e}", p.display())))?;
    let t = s.trim().to_string();
    if t.len() < 16 || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BadInput(format!(
            "{flag} {}: the token must be 16..4096 printable characters",
            p.display()
        ))
        .into());
    }
    Ok(t)
}

/// Runs `netspectra console` until SIGINT/SIGTERM.
pub fn run(a: ConsoleArgs) -> Result<ExitCode> {
    let listen: SocketAddr = a.listen.parse().map_err(|_| {
        BadInput(format!(
            "--listen {:?}: not an address (e.g. 127.0.0.1:9470)",
            a.listen
        ))
    })?;
    let token = a
        .token_file
        .as_ref()
        .map(|p| read_token("--token-file", p))
        .transpose()?;
    netspectra_console::server::check_listen(listen, token.as_deref())
        .map_err(|e| BadInput(e.to_string()))?;
    let backend: Arc<dyn Backend> = match &a.clickhouse {
        Some(u) => Arc::new(ClickHouseBackend::connect(u).map_err(|e| BadInput(e.to_string()))?),
        None => Arc::new(SqliteBackend::open(&a.store).map_err(|e| BadInput(e.to_string()))?),
    };
    let live = Live {
        endpoints: a
            .probe_metrics
            .iter()
            .map(|u| ProbeEndpoint::parse(u).map_err(BadInput))
            .collect::<Result<_, _>>()?,
        token: a
            .probe_token_file
            .as_ref()
            .map(|p| read_token("--probe-token-file", p))
            .transpose()?,
    };
    let what = backend.describe();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let bound = netspectra_console::bind(ConsoleConfig {
            backend,
            listen,
            token,
            timeout: Duration::from_secs(a.timeout),
            live,
        })
        .await?;
        outln!("console: http://{}/ ({what})", bound.addr);
        bound
            .serve(async {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(_) => return std::future::pending().await,
                    };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            })
            .await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
