//! The ingest side: `POST /api/v1/logs` and `POST /api/v1/logs/batch` from the socket to
//! the acknowledgement. A request's hops, in order: the connection caps
//! (`connections`), the key check and the rate limit (`admission`, running `auth` and
//! `rate_limit`, shared between instances by `shared_rate_limits`), the body read within the
//! in-flight budget (`inflight`) and decoded (`decode`), its entries validated
//! (`domain::LogEntry`) and written as rows (`rows`), then group commit and the answer
//! (`pipeline`, which the handlers `logs_single` and `logs_batch` call in order;
//! OpenTelemetry's OTLP/HTTP logs are `otlp`'s). The text of client-facing errors is
//! `client_text`'s. It never reads stored logs back: that is `read`.

mod admission;
pub mod client_text;
pub mod connections;
pub mod decode;
pub mod inflight;
mod logs_batch;
mod logs_single;
pub mod otlp;
mod pipeline;
pub mod rate_limit;
mod rows;
pub mod shared_rate_limits;

use axum::routing::post;
use axum::Router;
use log_ingestion_wire::{BATCH_PATH, SINGLE_PATH};

use crate::state::AppState;

/// The ingest API. Order of a request: auth -> rate limit -> handler (body -> entries
/// -> rows -> group commit -> ack). Layers run outermost-last-added, so the rate limit
/// is added before auth to run after it.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(SINGLE_PATH, post(logs_single::ingest_single))
        .route(BATCH_PATH, post(logs_batch::ingest_batch))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admission::enforce_rate_limit,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            admission::require_api_key,
        ))
}

/// OpenTelemetry's OTLP/HTTP logs (`otlp`): the same key check and rate limit, with
/// every refusal put in OTLP's contract by the outermost layer.
pub fn otlp_router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(otlp::LOGS_PATH, post(otlp::export_logs))
        .route(otlp::PREFIXED_LOGS_PATH, post(otlp::export_logs))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admission::enforce_rate_limit,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            admission::require_api_key,
        ))
        .route_layer(axum::middleware::from_fn(otlp::otlp_refusals))
}
