//! The server's own routes (probes, ingest, unknown `/api` paths), one handler per
//! file; the middleware that needs `AppState` (`middleware`); and the routers that
//! group them, which `startup` merges with the read side's (`read::router`). Routers
//! never start background work.

mod health;
mod metrics;
mod middleware;
mod unknown_api;

use axum::routing::{any, get, post};
use axum::Router;
use log_ingestion_wire::{BATCH_PATH, HEALTH_PATH, SINGLE_PATH};

use crate::ingest::{logs_batch, logs_single};
use crate::state::AppState;

pub use middleware::record_request_metrics;

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
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::enforce_rate_limit,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            middleware::require_api_key,
        ))
}

/// Every `/api` path no other router serves: 401 without a valid key, 404 with one.
/// More specific routes take precedence over its wildcard.
pub fn unknown_api_router() -> Router<AppState> {
    Router::new()
        .route("/api", any(unknown_api::unknown_api_path))
        .route("/api/", any(unknown_api::unknown_api_path))
        .route("/api/{*rest}", any(unknown_api::unknown_api_path))
}
