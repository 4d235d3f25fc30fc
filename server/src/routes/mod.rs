//! The server's own routes besides the two sides (probes, unknown `/api` paths), one
//! handler per file; the app-wide request metrics (`middleware`); and the routers that
//! group them, which `startup` merges with the ingest side's (`ingest::router`) and the
//! read side's (`read::router`). Routers never start background work.

mod health;
mod metrics;
mod middleware;
mod unknown_api;

use axum::routing::{any, get};
use axum::Router;
use log_ingestion_wire::HEALTH_PATH;

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

/// Every `/api` path no other router serves: 401 without a valid key, 404 with one.
/// More specific routes take precedence over its wildcard.
pub fn unknown_api_router() -> Router<AppState> {
    Router::new()
        .route("/api", any(unknown_api::unknown_api_path))
        .route("/api/", any(unknown_api::unknown_api_path))
        .route("/api/{*rest}", any(unknown_api::unknown_api_path))
}
