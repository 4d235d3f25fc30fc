//! The steps both ingest handlers share, which each handler calls in order:
//! [`receive`] (the `Idempotency-Key` header, admission under the in-flight budget,
//! reading and decoding the body), [`ReceivedRequest::validate`] (the route's own
//! validation, off the async workers when the body is large, and the body's digest for
//! an idempotency key), and [`acknowledge`] (group commit, then the answer or a
//! replay). It never answers 2xx before the entries are committed, and never parses a
//! body it has not admitted.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use log_ingestion_wire::IDEMPOTENCY_KEY_HEADER;
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::ingest::decode::{Accepts, BodyReader, Payload};
use crate::ingest::inflight::InflightPermit;
use crate::state::AppState;
use crate::storage::copy_text::CopyRows;
use crate::storage::idempotency::{request_digest, IdempotencyClaim, StoredResponse};
use crate::storage::CommitOutcome;

/// What a route's validation makes of a payload: the valid entries as `COPY` rows, how
/// many it refused, and the answer to send once they are committed.
pub struct Validated<B> {
    pub rows: CopyRows,
    pub rejected: u64,
    pub answer: B,
}

/// Bodies larger than this are validated on the blocking pool, so parsing them never
/// stalls other requests.
const INLINE_PARSE_BYTES: usize = 256 * 1024;

/// A request whose body was admitted, read and decoded. It holds the body's share of
/// the in-flight budget until the answer is ready.
pub struct ReceivedRequest {
    caller: Caller,
    idempotency_key: Option<String>,
    payload: Payload,
    permit: InflightPermit,
}

/// A validated request, ready to commit: the idempotency key comes with the body's
/// SHA-256.
pub struct ValidatedRequest<B> {
    caller: Caller,
    idempotency_key: Option<(String, String)>,
    validated: Validated<B>,
    permit: InflightPermit,
}

/// Reads and decodes an ingest request's body, in a format `accepts` allows, within
/// the body cap and the in-flight budget.
pub async fn receive(
    state: &AppState,
    request: Request,
    accepts: Accepts,
) -> Result<ReceivedRequest, ApiError> {
    let (parts, body) = request.into_parts();
    let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
        ApiError::Internal("an ingest route is not behind require_api_key".to_owned())
    })?;
    let headers = &parts.headers;
    let idempotency_key = idempotency_key(headers)?;
    let reader = BodyReader::new(
        headers,
        accepts,
        state.settings.max_body_bytes,
        state.settings.body_read,
    )?;
    // A declared length is charged before a byte is read; a chunked body, and the
    // decompressed one, are charged as their buffers grow.
    let mut permit = state.inflight.empty_permit();
    if let Err(busy) = admit(state, &mut permit, reader.declared_length().unwrap_or(0)).await {
        reader.discard(body).await;
        return Err(busy);
    }
    let raw = reader.read(body, &state.inflight, &mut permit).await?;
    let payload = raw.decode(&state.inflight, &mut permit).await?;
    Ok(ReceivedRequest {
        caller,
        idempotency_key,
        payload,
        permit,
    })
}

impl ReceivedRequest {
    /// Runs `validate` (the route's rules) on the payload, with the body's digest when
    /// the request carries an idempotency key; a body over [`INLINE_PARSE_BYTES`] is
    /// handled on the blocking pool.
    pub async fn validate<B, V>(self, validate: V) -> Result<ValidatedRequest<B>, ApiError>
    where
        B: Send + 'static,
        V: FnOnce(&Payload) -> Result<Validated<B>, ApiError> + Send + 'static,
    {
        let ReceivedRequest {
            caller,
            idempotency_key,
            payload,
            permit,
        } = self;
        let wants_digest = idempotency_key.is_some();
        let validate_and_digest = move |payload: &Payload| {
            let validated = validate(payload)?;
            let digest = wants_digest.then(|| request_digest(&payload.bytes));
            Ok::<_, ApiError>((validated, digest))
        };
        let (validated, digest) = if payload.bytes.len() > INLINE_PARSE_BYTES {
            tokio::task::spawn_blocking(move || validate_and_digest(&payload))
                .await
                .map_err(|error| ApiError::Internal(format!("validation task failed: {error}")))??
        } else {
            validate_and_digest(&payload)?
        };
        Ok(ValidatedRequest {
            caller,
            idempotency_key: idempotency_key.zip(digest),
            validated,
            permit,
        })
    }
}

/// Commits the validated entries and answers `status` with the route's answer, or
/// replays the answer an earlier request with the same idempotency key (and the same
/// body digest) got, or refuses a reused key whose earlier request had another body.
/// The request's share of the in-flight budget is released once the answer is ready.
pub async fn acknowledge<B: Serialize>(
    state: &AppState,
    request: ValidatedRequest<B>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let ValidatedRequest {
        caller,
        idempotency_key,
        validated,
        permit,
    } = request;
    state.metrics.entries_rejected(validated.rejected);
    let answer = commit_and_answer(
        state,
        &caller,
        idempotency_key,
        validated.rows,
        status,
        &validated.answer,
    )
    .await;
    drop(permit);
    answer
}

/// Grows the request's share of the budget to `bytes`, or refuses it with a 503.
async fn admit(
    state: &AppState,
    permit: &mut InflightPermit,
    bytes: usize,
) -> Result<(), ApiError> {
    Ok(state.inflight.grow(permit, bytes).await?)
}

/// Set on an answer replayed from an earlier request with the same idempotency key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The request's `Idempotency-Key`, if any: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
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

/// The commit and the answer of [`acknowledge`]. `key` is the idempotency key with the
/// SHA-256 of the decoded body.
async fn commit_and_answer<B: Serialize>(
    state: &AppState,
    caller: &Caller,
    key: Option<(String, String)>,
    rows: CopyRows,
    status: StatusCode,
    body: &B,
) -> Result<Response, ApiError> {
    let body = serde_json::to_string(body)
        .map_err(|error| ApiError::Internal(format!("cannot encode an answer: {error}")))?;
    let count = rows.len() as u64;
    let claim = key.map(|(key, request_sha256)| IdempotencyClaim {
        scope: caller.fingerprint.to_string(),
        key,
        request_sha256,
        response: StoredResponse {
            status: status.as_u16(),
            body: body.clone(),
        },
    });
    if rows.is_empty() && claim.is_none() {
        return Ok(json_response(status, body, false));
    }
    let outcome = state.committer.commit(rows, claim).await.map_err(|error| {
        tracing::warn!(%error, "entries not committed; answering 503");
        ApiError::StorageUnavailable
    })?;
    match outcome {
        CommitOutcome::Committed => {
            state.metrics.entries_accepted(count);
            Ok(json_response(status, body, false))
        }
        CommitOutcome::KeyReused => Err(ApiError::IdempotencyKeyReused),
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
