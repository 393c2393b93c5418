//! The HTTP server: the API routes, the page and its assets (embedded), the bearer token, the
//! security headers, and a bounded number of queries at once.

use crate::api::{answer, ApiError, API_ROUTES};
use crate::backend::Backend;
use crate::live::Live;
use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The page's Content-Security-Policy: nothing but this origin, no inline scripts.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Queries run at once; more are refused with 503 (counted).
pub const MAX_CONCURRENT: usize = 8;

/// What the server shares between requests.
pub struct AppState {
    /// The store.
    pub backend: Arc<dyn Backend>,
    /// Bearer token required on the API (None: none required; only on loopback).
    pub token: Option<String>,
    /// Time-out of one query.
    pub timeout: Duration,
    /// Room for queries running at once.
    pub slots: Semaphore,
    /// Requests refused because every slot was taken.
    pub refused_busy: AtomicU64,
    /// Probes read live for the probes page.
    pub live: Live,
}

impl AppState {
    /// State for a backend.
    pub fn new(
        backend: Arc<dyn Backend>,
        token: Option<String>,
        timeout: Duration,
        live: Live,
    ) -> AppState {
        AppState {
            backend,
            token,
            timeout,
            live,
            slots: Semaphore::new(MAX_CONCURRENT),
            refused_busy: AtomicU64::new(0),
        }
    }
}

/// Why the console will not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Not loopback and no token.
    #[error("--listen {0}: not a loopback address, so an access token is required (--token-file)")]
    NeedsToken(SocketAddr),
}

/// Refuses a non-loopback address without a token.
pub fn check_listen(addr: SocketAddr, token: Option<&str>) -> Result<(), ListenError> {
    if !addr.ip().is_loopback() && token.is_none_or(str::is_empty) {
        return Err(ListenError::NeedsToken(addr));
    }
    Ok(())
}

fn json_response(status: u16, v: &serde_json::Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(e: ApiError) -> Response {
    json_response(e.status, &serde_json::json!({"error": e.message}))
}

/// Constant-time comparison of the presented token.
fn token_ok(headers: &HeaderMap, want: &str) -> bool {
    let Some(got) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (got.as_bytes(), want.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn api(
    State(s): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Some(t) = &s.token {
        if !token_ok(&headers, t) {
            let mut r = error(ApiError {
                status: 401,
                message: "a bearer token is required (Authorization: Bearer ...)".into(),
            });
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let Ok(permit) = s.slots.try_acquire() else {
        s.refused_busy.fetch_add(1, Ordering::Relaxed);
        return error(ApiError {
            status: 503,
            message: format!("busy: {MAX_CONCURRENT} queries already running"),
        });
    };
    let route = uri.path().to_string();
    let st = Arc::clone(&s);
    let job = tokio::task::spawn_blocking(move || {
        answer(&st.backend, &st.live, &route, raw.as_deref(), st.timeout)
    });
    let out = tokio::time::timeout(s.timeout + Duration::from_secs(5), job).await;
    drop(permit);
    match out {
        Ok(Ok(Ok(v))) => json_response(200, &v),
        Ok(Ok(Err(e))) => error(e),
        Ok(Err(_)) => error(ApiError {
            status: 500,
            message: "the query failed".into(),
        }),
        Err(_) => error(ApiError {
            status: 504,
            message: "query timed out".into(),
        }),
    }
}

async fn not_found(uri: Uri) -> Response {
    error(ApiError {
        status: 404,
        message: format!(
            "no such route {:?}",
            uri.path().chars().take(100).collect::<String>()
        ),
    })
}

fn asset(body: &'static str, ctype: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

async fn index() -> Response {
    asset(crate::page::INDEX, "text/html; charset=utf-8")
}
async fn app_js() -> Response {
    asset(crate::page::APP_JS, "text/javascript; charset=utf-8")
}
async fn app_css() -> Response {
    asset(crate::page::APP_CSS, "text/css; charset=utf-8")
}
async fn openapi() -> Response {
    asset(crate::OPENAPI, "application/json")
}

/// Adds the security headers: no caching and no sniffing for everything, the CSP and frame
/// denial for the page.
async fn headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    r
}

/// The router: API routes, the page, the OpenAPI file.
pub fn router(state: Arc<AppState>) -> Router {
    let mut r = Router::new();
    for route in API_ROUTES {
        r = r.route(route, get(api));
    }
    r.route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .route("/api/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(headers))
        .with_state(state)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self)
    }
}
