//! `GET /health`, `/livez`, `/readyz`: whether the process runs and whether the
//! database answers, with the storage mode and (TimescaleDB) the policy jobs' status
//! as last checked by `storage::policy_jobs`. Never touches the logs table.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;
use crate::storage;

/// 200 `{"status":"healthy","storage":...,"instance":...}` when the database answers,
/// else 503. A failing policy job makes it 200 `"degraded"` (ingest and reads still
/// work), with the jobs in `policy_jobs`.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if storage::ping(&state.pool).await {
        let jobs = state.policy_jobs.snapshot();
        let status = if jobs.iter().any(|job| job.failing()) {
            "degraded"
        } else {
            "healthy"
        };
        let mut body = json!({
            "status": status,
            "storage": state.storage_mode,
            "instance": state.settings.instance_id.as_str()
        });
        if !jobs.is_empty() {
            body["policy_jobs"] = json!(jobs);
        }
        (StatusCode::OK, Json(body))
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
