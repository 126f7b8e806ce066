//! `medlink serve`: the HTTP API and the web page. The only async part of the crate.
//!
//! ```text
//! request -> [CORS] -> observe (request id, metrics, log line) -> body limit
//!         -> /v1 guard (API key, readiness, concurrency 429, timeout 503) -> handler
//! handler -> validate -> admit to the encoder queue (503 when full) -> working slot
//!         -> spawn_blocking(linker) -> linker -> QueuedEncoder -> encoder workers (each
//!         merges the concurrent requests waiting)
//! ```
//! Design after text-embeddings-inference: one axum router with thin handlers ([`routes`]),
//! request/response types in [`dto`], one error type mapped to statuses in one place
//! ([`error`]), a bounded batching queue in front of blocking encoder workers ([`queue`]),
//! a Prometheus registry ([`metrics`]) and graceful shutdown on SIGTERM / SIGINT that lets
//! requests in flight finish. The web page is one HTML file embedded in the binary.
//!
//! Logs carry method, route, status, latency and request id — never bodies, query strings or
//! mention text.

pub mod dto;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod queue;
pub mod routes;
pub mod state;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use error::ApiError;
pub use state::{AppState, IndexSpec, Limits, ServerConfig};

use crate::error::Error;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The application: every route, middleware and the fallback, over `state`.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/link", post(routes::link))
        .route("/v1/annotate", post(routes::annotate))
        .route("/v1/search", get(routes::search))
        .route("/v1/concepts/{id}", get(routes::concept))
        .route("/v1/indexes", get(routes::list_indexes))
        .route_layer(middleware::from_fn_with_state(state.clone(), v1_guard));
    let mut app = Router::new()
        .route("/", get(routes::page))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(routes::openapi))
        .merge(v1)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), observe));
    if let Some(cors) = cors_layer(&state.config.cors_origins) {
        app = app.layer(cors);
    }
    app.with_state(state)
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([REQUEST_ID.clone()]),
    )
}

/// A caller's request id if it is short and plain (so it is safe to log), else a new one.
fn request_id(state: &AppState, request: &Request) -> HeaderValue {
    if let Some(given) = request.headers().get(&REQUEST_ID) {
        let ok = given.len() <= 64
            && given
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
        if ok && !given.is_empty() {
            return given.clone();
        }
    }
    let n = state.next_request_id.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("req-{n:08x}")).unwrap_or(HeaderValue::from_static("req"))
}

/// Outermost middleware: request id in and out, one metrics observation and one log line per
/// request. Routes are labelled by their template (`/v1/concepts/{id}`), never the raw path.
async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&state, &request);
    request.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().clone();
    state.metrics.in_flight_add(1);
    let mut response = next.run(request).await;
    state.metrics.in_flight_add(-1);
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    state.metrics.observe_request(&route, status, seconds);
    tracing::info!(
        request_id = id.to_str().unwrap_or_default(),
        %method,
        route,
        status,
        ms = seconds * 1e3,
        "request"
    );
    response.headers_mut().insert(REQUEST_ID.clone(), id);
    response
}

/// Constant-time equality: the time taken does not depend on where the strings differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length is not secret-dependent enough to matter, but fold it in anyway so the loop
    // always runs over the expected key's length.
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, &x) in b.iter().enumerate() {
        diff |= x ^ a.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// `/v1` routes: API key, readiness, the concurrency limit and the request timeout.
async fn v1_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    if let Some(key) = &state.config.api_key {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), key.as_bytes()) {
            state.metrics.reject("unauthorized");
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong API key: send `Authorization: Bearer KEY`",
            )
            .into_response();
        }
    }
    if let Err(e) = routes::indexes(&state) {
        return e.into_response();
    }
    let Ok(_permit) = state.concurrency.clone().try_acquire_owned() else {
        state.metrics.reject("too_many_requests");
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!(
                "more than {} requests at once; retry shortly",
                state.config.limits.max_concurrent
            ),
        )
        .into_response();
    };
    let timeout = state.config.limits.request_timeout;
    let started = std::time::Instant::now();
    // The timer fires on a millisecond tick: work that ends past the limit but before the
    // tick is a timeout too, so the limit means the same whatever the timer's granularity.
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) if started.elapsed() <= timeout => response,
        _ => {
            state.metrics.reject("timeout");
            ApiError::unavailable(
                "timeout",
                format!("the request took longer than {:.1}s", timeout.as_secs_f64()),
                1,
            )
            .into_response()
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; axum then stops accepting connections and lets
/// requests in flight finish (TEI's `shutdown.rs`).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::warn!("shutdown signal received: finishing requests in flight");
}

/// Any error, boxed: loading indexes goes through the CLI's code path, which has its own.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What [`serve`] calls on a blocking thread to open the indexes, after it has started
/// listening (so `/healthz` answers while a first-use index is being built).
pub type Loader = Box<dyn FnOnce() -> std::result::Result<Vec<IndexSpec>, BoxError> + Send>;

/// Binds `addr`, serves until SIGINT / SIGTERM, and returns once requests in flight are done.
/// A failure to load the indexes stops the server and is returned.
pub fn serve(
    addr: SocketAddr,
    config: ServerConfig,
    load: Loader,
) -> std::result::Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("medlink-http")
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let state = AppState::new(config)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("bind {addr}"), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io("listener", e))?;
        eprintln!("medlink serve: listening on http://{local}/ (loading indexes)");
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<BoxError>();
        let loading = state.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = load().and_then(|specs| loading.load(specs).map_err(BoxError::from));
            match result {
                Ok(()) => eprintln!(
                    "medlink serve: ready in {:.1}s: http://{local}/",
                    started.elapsed().as_secs_f64()
                ),
                Err(error) => {
                    let _ = failed_tx.send(error);
                }
            }
        });
        let failure = std::sync::Arc::new(std::sync::Mutex::new(None::<BoxError>));
        let failure_slot = std::sync::Arc::clone(&failure);
        let stop = async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                message = failed_rx => {
                    if let Ok(message) = message {
                        if let Ok(mut slot) = failure_slot.lock() {
                            *slot = Some(message);
                        }
                    } else {
                        // Loaded fine (the sender was dropped): wait for a signal.
                        shutdown_signal().await;
                    }
                }
            }
        };
        axum::serve(listener, router(state))
            .with_graceful_shutdown(stop)
            .await
            .map_err(|e| Error::io(format!("serving {local}"), e))?;
        let failed = failure.lock().ok().and_then(|mut f| f.take());
        match failed {
            Some(error) => Err(error),
            None => Ok(()),
        }
    })
}
