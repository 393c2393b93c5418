//! `netspectra console`: a JSON query API and a web page over the stored records, from the
//! embedded store of one host ([`backend::SqliteBackend`]) or from ClickHouse
//! ([`backend::ClickHouseBackend`]), both behind the [`backend::Backend`] trait. Every value of
//! a query is checked ([`params`]) and bound or rendered as a typed literal ([`sql`]); see
//! docs/CONSOLE.md.

pub mod api;
pub mod backend;
pub mod live;
pub mod page;
pub mod params;
pub mod queries;
pub mod rollup;
pub mod server;
pub mod sql;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The API's OpenAPI description (docs/console-openapi.json).
pub const OPENAPI: &str = include_str!("../../../docs/console-openapi.json");

/// How `netspectra console` runs.
pub struct ConsoleConfig {
    /// The store.
    pub backend: Arc<dyn backend::Backend>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Bearer token (required off loopback).
    pub token: Option<String>,
    /// Time-out of one query.
    pub timeout: Duration,
    /// Probes whose metrics the probes page shows live.
    pub live: live::Live,
}

/// Why the console stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The address needs a token.
    #[error(transparent)]
    Listen(#[from] server::ListenError),
    /// Binding or serving failed.
    #[error("console on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// A console bound to its address, not yet serving.
pub struct Bound {
    listener: tokio::net::TcpListener,
    state: Arc<server::AppState>,
    /// The address it listens on (the port chosen when 0 was asked).
    pub addr: SocketAddr,
}

/// Checks the address against the token and binds it (inside a tokio runtime).
pub async fn bind(cfg: ConsoleConfig) -> Result<Bound, ConsoleError> {
    server::check_listen(cfg.listen, cfg.token.as_deref())?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ConsoleError::Io {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ConsoleError::Io {
        addr: cfg.listen,
        source,
    })?;
    let state = Arc::new(server::AppState::new(
        cfg.backend,
        cfg.token,
        cfg.timeout,
        cfg.live,
    ));
    Ok(Bound {
        listener,
        state,
        addr,
    })
}

impl Bound {
    /// Serves until `stop` resolves.
    pub async fn serve(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ConsoleError> {
        let addr = self.addr;
        axum::serve(self.listener, server::router(self.state))
            .with_graceful_shutdown(stop)
            .await
            .map_err(|source| ConsoleError::Io { addr, source })
    }
}
