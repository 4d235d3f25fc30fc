//! What both ingest handlers share: the `Idempotency-Key` header and the last two
//! steps of the path, group commit and acknowledgement. It never answers 2xx before
//! the entries are committed.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use log_ingestion_wire::IDEMPOTENCY_KEY_HEADER;
use serde::Serialize;

use crate::auth::Caller;
use crate::domain::LogEntry;
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::idempotency::{IdempotencyClaim, StoredResponse};
use crate::storage::CommitOutcome;

/// Set on an answer replayed from an earlier request with the same idempotency key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The request's `Idempotency-Key`, if any: 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_IDEMPOTENCY_KEY_CHARS
        && bytes.iter().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(ApiError::InvalidIdempotencyKey);
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// Commits `entries` and answers `status` with `body`, or replays the answer an
/// earlier request with the same idempotency key got.
pub async fn commit_and_acknowledge<B: Serialize>(
    state: &AppState,
    caller: &Caller,
    key: Option<String>,
    entries: Vec<LogEntry>,
    status: StatusCode,
    body: &B,
) -> Result<Response, ApiError> {
    let body = serde_json::to_string(body)
        .map_err(|error| ApiError::Internal(format!("cannot encode an answer: {error}")))?;
    let count = entries.len() as u64;
    let claim = key.map(|key| IdempotencyClaim {
        scope: caller.fingerprint.to_string(),
        key,
        response: StoredResponse {
            status: status.as_u16(),
            body: body.clone(),
        },
    });
    if entries.is_empty() && claim.is_none() {
        return Ok(json_response(status, body, false));
    }
    let outcome = state
        .committer
        .commit(entries, claim)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "entries not committed; answering 503");
            ApiError::StorageUnavailable
        })?;
    match outcome {
        CommitOutcome::Committed => {
            state.metrics.entries_accepted(count);
            Ok(json_response(status, body, false))
        }
        CommitOutcome::Replayed(stored) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            Ok(json_response(status, stored.body, true))
        }
    }
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}
