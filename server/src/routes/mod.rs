//! The HTTP routes, one handler per file, and the routers that group them. Each
//! router is composable: `startup` merges `probes_router` and `ingest_router`, and a
//! later read side adds its own router the same way. Routers never start background
//! work.

mod health;
mod ingest;
mod logs_batch;
mod logs_single;
mod metrics;
mod unknown_api;

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use log_ingestion_wire::{BATCH_PATH, HEALTH_PATH, SINGLE_PATH};

use crate::auth::require_api_key;
use crate::error::RejectionReason;
use crate::rate_limit::enforce_rate_limit;
use crate::state::AppState;

/// `/health`, `/livez`, `/readyz`, `/metrics`: no authentication.
pub fn probes_router() -> Router<AppState> {
    Router::new()
        .route(HEALTH_PATH, get(health::health))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
}

/// The ingest API. Order of a request: auth -> rate limit -> handler (decode ->
/// validate -> group commit -> ack). Layers run outermost-last-added, so the rate
/// limit is added before auth to run after it.
pub fn ingest_router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(SINGLE_PATH, post(logs_single::ingest_single))
        .route(BATCH_PATH, post(logs_batch::ingest_batch))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            enforce_rate_limit,
        ))
        .route_layer(middleware::from_fn_with_state(state, require_api_key))
}

/// Every `/api` path no other router serves: 401 without a valid key, 404 with one.
/// More specific routes take precedence over its wildcard.
pub fn unknown_api_router() -> Router<AppState> {
    Router::new()
        .route("/api", any(unknown_api::unknown_api_path))
        .route("/api/", any(unknown_api::unknown_api_path))
        .route("/api/{*rest}", any(unknown_api::unknown_api_path))
}

/// Middleware for the whole app: latency by method and route, and refusals by reason.
pub async fn record_request_metrics(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // A method axum knows is one of a few fixed names; anything else is one label.
    let method: &'static str = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request_finished(method, &route, started.elapsed());
    if let Some(RejectionReason(reason)) = response.extensions().get::<RejectionReason>() {
        state.metrics.request_rejected(reason);
    }
    response
}
