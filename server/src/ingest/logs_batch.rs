//! `POST /api/v1/logs/batch`: `{"logs": [...]}` or NDJSON -> 200
//! `{"accepted":N,"rejected":M,"errors":[{"index":i,"error":"..."}]}`. Valid entries
//! are stored, invalid ones reported by index; an empty or oversized batch is a 400.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use log_ingestion_wire::{BatchResponse, EntryError};

use super::decode::{batch_entries, Accepts, Payload};
use super::pipeline::{acknowledge, receive, Validated, REPLAYED_HEADER};
use super::rows::Rows;
use crate::config::EntryLimits;
use crate::domain::LogEntry;
use crate::error::ApiError;
use crate::state::AppState;

/// The protocol label of the JSON API's entries in `/metrics`.
const PROTOCOL: &str = "json";

/// Body -> entries -> rows -> group commit -> ack (auth and the rate limit ran before).
pub async fn ingest_batch(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let limits = state.settings.limits;
    let max = state.settings.max_batch_entries;
    let received = receive(&state, request, Accepts::JsonOrNdjson).await?;
    let validated = received
        .validate(move |payload, rows| validate_batch(payload, &limits, max, rows))
        .await?;
    let stored = validated.entry_count() as u64;
    let response = acknowledge(&state, validated, StatusCode::OK).await?;
    if !response.headers().contains_key(REPLAYED_HEADER) {
        state.metrics.entries_by_protocol(PROTOCOL, stored);
    }
    Ok(response)
}

/// Splits the batch and validates every entry: each valid one is written to `rows`
/// while its text is still borrowed from the body, the others are reported by index.
fn validate_batch(
    payload: &Payload,
    limits: &EntryLimits,
    max: usize,
    rows: &mut Rows,
) -> Result<Validated<BatchResponse>, ApiError> {
    let raws = batch_entries(payload, max)?;
    if raws.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    let now = Utc::now();
    let mut errors = Vec::new();
    for (index, raw) in raws.iter().enumerate() {
        match LogEntry::from_json(raw, limits, now) {
            Ok(entry) => rows.push(&entry),
            Err(problems) => errors.push(EntryError {
                index,
                error: problems.join("; "),
            }),
        }
    }
    let rejected = errors.len() as u64;
    Ok(Validated {
        rejected,
        answer: BatchResponse {
            accepted: rows.len() as u64,
            rejected,
            errors,
        },
    })
}
