//! `POST /api/v1/logs`: one entry, `{"log": {...}}` -> 201 `{"accepted":1}`.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use log_ingestion_wire::SingleResponse;

use super::decode::{single_entry, Accepts, Payload};
use super::pipeline::{acknowledge, receive, Validated, REPLAYED_HEADER};
use super::rows::Rows;
use crate::config::EntryLimits;
use crate::domain::LogEntry;
use crate::error::ApiError;
use crate::state::AppState;

/// The protocol label of the JSON API's entries in `/metrics`.
const PROTOCOL: &str = "json";

/// Body -> entry -> row -> group commit -> ack (auth and the rate limit ran before).
pub async fn ingest_single(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let limits = state.settings.limits;
    let received = receive(&state, request, Accepts::JsonOnly).await?;
    let validated = received
        .validate(move |payload, rows| validate_single(payload, &limits, rows))
        .await?;
    let stored = validated.entry_count() as u64;
    let response = acknowledge(&state, validated, StatusCode::CREATED).await?;
    if !response.headers().contains_key(REPLAYED_HEADER) {
        state.metrics.entries_by_protocol(PROTOCOL, stored);
    }
    Ok(response)
}

/// The one entry, valid and written to `rows`, or a 400 listing its problems.
fn validate_single(
    payload: &Payload,
    limits: &EntryLimits,
    rows: &mut Rows,
) -> Result<Validated<SingleResponse>, ApiError> {
    let raw = single_entry(payload)?;
    let entry = LogEntry::from_json(raw, limits, Utc::now()).map_err(ApiError::Validation)?;
    rows.push(&entry);
    Ok(Validated {
        rejected: 0,
        answer: SingleResponse { accepted: 1 },
    })
}
