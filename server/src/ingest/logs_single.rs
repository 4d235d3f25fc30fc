//! `POST /api/v1/logs`: one entry, `{"log": {...}}` -> 201 `{"accepted":1}`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use log_ingestion_wire::SingleResponse;

use super::pipeline::{acknowledge, receive, Validated, REPLAYED_HEADER};
use crate::config::EntryLimits;
use crate::domain::LogEntry;
use crate::error::ApiError;
use crate::ingest::decode::{single_entry, Accepts, Payload};
use crate::state::AppState;
use crate::storage::copy_text::CopyRows;
use crate::storage::declared_indexes::DeclaredKeys;

/// The protocol label of the JSON API's entries in `/metrics`.
const PROTOCOL: &str = "json";

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
    let stored = validated.entry_count() as u64;
    let response = acknowledge(&state, validated, StatusCode::CREATED).await?;
    if !response.headers().contains_key(REPLAYED_HEADER) {
        state.metrics.entries_by_protocol(PROTOCOL, stored);
    }
    Ok(response)
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
