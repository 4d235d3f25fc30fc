//! `GET /health`, `/livez`, `/readyz`: whether the process runs and whether the
//! database answers, with the storage mode. Never touches the logs table.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;
use crate::storage;

/// 200 `{"status":"healthy","storage":...,"instance":...}` when the database answers, else 503.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if storage::ping(&state.pool).await {
        (
            StatusCode::OK,
            Json(json!({
                "status": "healthy",
                "storage": state.storage_mode,
                "instance": state.settings.instance_id.as_str()
            })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unhealthy",
                "storage": state.storage_mode,
                "instance": state.settings.instance_id.as_str(),
                "error": "database unavailable"
            })),
        )
    }
}

/// The process is up.
pub async fn livez() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

/// Ready to take traffic: the database answers.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if storage::ping(&state.pool).await {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "error": "database unavailable"})),
        )
    }
}
