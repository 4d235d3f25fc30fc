//! `POST /api/v1/logs`: one entry, `{"log": {...}}` -> 201 `{"accepted":1}`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chrono::Utc;
use log_ingestion_wire::SingleResponse;

use super::ingest::{commit_and_acknowledge, idempotency_key};
use crate::auth::Caller;
use crate::decode::{read_payload, single_entry, Accepts};
use crate::domain::LogEntry;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn ingest_single(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let payload = read_payload(
        &headers,
        body,
        Accepts::JsonOnly,
        state.settings.max_body_bytes,
    )
    .await?;
    let raw = single_entry(&payload)?;
    let entry = LogEntry::from_json(&raw, &state.settings.limits, Utc::now())
        .map_err(ApiError::Validation)?;
    let answer = SingleResponse { accepted: 1 };
    commit_and_acknowledge(
        &state,
        &caller,
        key,
        vec![entry],
        StatusCode::CREATED,
        &answer,
    )
    .await
}
