//! `POST /api/v1/logs/batch`: `{"logs": [...]}` or NDJSON -> 200
//! `{"accepted":N,"rejected":M,"errors":[{"index":i,"error":"..."}]}`. Valid entries
//! are stored, invalid ones reported by index; an empty or oversized batch is a 400.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use log_ingestion_wire::{BatchResponse, EntryError};

use super::pipeline::{acknowledge, receive, Validated};
use crate::config::EntryLimits;
use crate::domain::LogEntry;
use crate::error::ApiError;
use crate::ingest::decode::{batch_entries, Accepts, Payload};
use crate::state::AppState;
use crate::storage::copy_text::CopyRows;
use crate::storage::declared_indexes::DeclaredKeys;

pub async fn ingest_batch(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let limits = state.settings.limits;
    let max = state.settings.max_batch_entries;
    let declared = state.declared.current();
    let received = receive(&state, request, Accepts::JsonOrNdjson).await?;
    let validated = received
        .validate(move |payload| validate_batch(payload, &limits, max, declared))
        .await?;
    acknowledge(&state, validated, StatusCode::OK).await
}

/// Splits the batch and validates every entry: the valid ones are stored, the others
/// reported by index.
fn validate_batch(
    payload: &Payload,
    limits: &EntryLimits,
    max: usize,
    declared: Arc<DeclaredKeys>,
) -> Result<Validated<BatchResponse>, ApiError> {
    let raws = batch_entries(payload, max)?;
    if raws.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    let now = Utc::now();
    // Each entry is written as its COPY row once valid, while its text is still
    // borrowed from the body.
    let mut rows = CopyRows::with_capacity(payload.bytes.len(), declared);
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
    let answer = BatchResponse {
        accepted: rows.len() as u64,
        rejected,
        errors,
    };
    Ok(Validated {
        rows,
        rejected,
        answer,
    })
}
