//! `POST /api/v1/logs`: one entry, `{"log": {...}}` -> 201 `{"accepted":1}`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use log_ingestion_wire::SingleResponse;

use super::pipeline::{acknowledge, receive, Validated};
use crate::config::EntryLimits;
use crate::domain::LogEntry;
use crate::error::ApiError;
use crate::ingest::decode::{single_entry, Accepts, Payload};
use crate::state::AppState;
use crate::storage::copy_text::CopyRows;
use crate::storage::declared_indexes::DeclaredKeys;

pub async fn ingest_single(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let limits = state.settings.limits;
    let declared = state.declared.current();
    let received = receive(&state, request, Accepts::JsonOnly).await?;
    let validated = received
        .validate(move |payload| validate_single(payload, &limits, declared))
        .await?;
    acknowledge(&state, validated, StatusCode::CREATED).await
}

/// The one entry, valid, or a 400 listing its problems.
fn validate_single(
    payload: &Payload,
    limits: &EntryLimits,
    declared: Arc<DeclaredKeys>,
) -> Result<Validated<SingleResponse>, ApiError> {
    let raw = single_entry(payload)?;
    let entry = LogEntry::from_json(raw, limits, Utc::now()).map_err(ApiError::Validation)?;
    let mut rows = CopyRows::with_capacity(payload.bytes.len(), declared);
    rows.push(&entry);
    Ok(Validated {
        rows,
        rejected: 0,
        answer: SingleResponse { accepted: 1 },
    })
}
