//! `GET /health`, `/livez`, `/readyz`: whether the process runs, whether the database
//! answers, and whether writes work (`storage::write_health`: the last group commit's
//! outcome, or a rolled-back test write when none is recent), with the storage mode and
//! (TimescaleDB) the policy jobs' status as last checked by `storage::policy_jobs`.
//! A failure answers 503 with the database's error as `write_health` may show it, so a
//! load balancer takes the instance out. It never commits a row.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;
use crate::storage;

/// `Ok` when the database answers and writes work; else the error to show.
async fn writes_work(state: &AppState) -> Result<(), String> {
    if !storage::ping(&state.pool).await {
        return Err("database unavailable".to_owned());
    }
    state.write_health.check(&state.pool).await
}

/// 200 `{"status":"healthy","storage":...,"instance":...}` when writes work, else 503
/// `"unhealthy"` with the `error`. A failing policy job makes it 200 `"degraded"`
/// (ingest and reads still work), with the jobs in `policy_jobs`; so do alert
/// notifications failed recently or pending too long (`alerts::delivery_status`), with
/// the backlog in `alert_delivery`.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match writes_work(&state).await {
        Ok(()) => {
            let jobs = state.policy_jobs.snapshot();
            let delivery = state
                .alert_delivery
                .degraded(&state.settings.alert_delivery);
            let status = if jobs.iter().any(|job| job.failing()) || delivery.is_some() {
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
            if let Some(delivery) = delivery {
                body["alert_delivery"] = delivery;
            }
            (StatusCode::OK, Json(body))
        }
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unhealthy",
                "storage": state.storage_mode,
                "instance": state.settings.instance_id.as_str(),
                "error": error
            })),
        ),
    }
}

/// The process is up.
pub async fn livez() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

/// Ready to take traffic: the database answers and writes work.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match writes_work(&state).await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "error": error})),
        ),
    }
}
