//! `POST /api/v1/logs/batch`: `{"logs": [...]}` or NDJSON -> 200
//! `{"accepted":N,"rejected":M,"errors":[{"index":i,"error":"..."}]}`. Valid entries
//! are stored, invalid ones reported by index; an empty or oversized batch is a 400.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chrono::Utc;
use log_ingestion_wire::{BatchResponse, EntryError};

use super::ingest::{commit_and_acknowledge, idempotency_key};
use crate::auth::Caller;
use crate::config::EntryLimits;
use crate::decode::{batch_entries, read_payload, Accepts, Payload};
use crate::domain::LogEntry;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn ingest_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let payload = read_payload(
        &headers,
        body,
        Accepts::JsonOrNdjson,
        state.settings.max_body_bytes,
    )
    .await?;
    let limits = state.settings.limits;
    let max = state.settings.max_batch_entries;
    // Big bodies are parsed off the async workers so they never stall other requests.
    let (entries, answer) = if payload.bytes.len() > INLINE_PARSE_BYTES {
        tokio::task::spawn_blocking(move || validate_batch(&payload, &limits, max))
            .await
            .map_err(|error| ApiError::Internal(format!("batch parsing task failed: {error}")))??
    } else {
        validate_batch(&payload, &limits, max)?
    };
    state.metrics.entries_rejected(answer.rejected);
    commit_and_acknowledge(&state, &caller, key, entries, StatusCode::OK, &answer).await
}

/// Bodies larger than this are parsed on the blocking pool.
const INLINE_PARSE_BYTES: usize = 256 * 1024;

/// Decodes and validates every entry: the valid ones, and the answer to send once
/// they are committed.
fn validate_batch(
    payload: &Payload,
    limits: &EntryLimits,
    max: usize,
) -> Result<(Vec<LogEntry>, BatchResponse), ApiError> {
    let raws = batch_entries(payload)?;
    if raws.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    if raws.len() > max {
        return Err(ApiError::BatchTooLarge {
            max,
            got: raws.len(),
        });
    }
    let now = Utc::now();
    let mut entries = Vec::with_capacity(raws.len());
    let mut errors = Vec::new();
    for (index, raw) in raws.iter().enumerate() {
        match LogEntry::from_json(raw, limits, now) {
            Ok(entry) => entries.push(entry),
            Err(problems) => errors.push(EntryError {
                index,
                error: problems.join("; "),
            }),
        }
    }
    let answer = BatchResponse {
        accepted: entries.len() as u64,
        rejected: errors.len() as u64,
        errors,
    };
    Ok((entries, answer))
}
