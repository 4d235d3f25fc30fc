//! OpenTelemetry's OTLP/HTTP logs ingest: `POST /v1/logs` (and `/otlp/v1/logs`) with
//! an `ExportLogsServiceRequest` in protobuf or JSON. A request goes the way of every
//! ingest request (the same key check, rate limit, body reader with its caps and
//! in-flight budget, validation off the async workers for large bodies, group commit
//! before any 2xx) with its own decoding (`protobuf`, `json`), its mapping into the
//! entry model (`mapping`) and its answers in OTLP's contract (`response`). OTLP has
//! no idempotency key: an `Idempotency-Key` header is ignored here.

mod json;
mod mapping;
mod protobuf;
mod response;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use log_ingestion_wire::IDEMPOTENCY_KEY_HEADER;

use self::response::{ExportOutcome, OtlpEncoding};
use super::client_text;
use super::decode::{Accepts, BodyFormat, Payload};
use super::pipeline::{acknowledge, receive, Validated};
use super::rows::Rows;
use crate::config::EntryLimits;
use crate::error::ApiError;
use crate::state::AppState;

pub use self::mapping::UNKNOWN_SERVICE;
pub use self::response::{RpcStatus, JSON_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE};

/// OTLP/HTTP's default path for logs, and the same under an `/otlp` prefix.
pub const LOGS_PATH: &str = "/v1/logs";
pub const PREFIXED_LOGS_PATH: &str = "/otlp/v1/logs";

/// The protocol label of OTLP entries in `/metrics`.
pub const PROTOCOL: &str = "otlp";

/// `POST /v1/logs`: stores the request's valid records and answers 200 (with
/// `partial_success` when some were refused), or refuses the request.
pub async fn export_logs(State(state): State<AppState>, mut request: Request) -> Response {
    let encoding = OtlpEncoding::of_content_type(request.headers().get(header::CONTENT_TYPE));
    request.headers_mut().remove(IDEMPOTENCY_KEY_HEADER);
    match export(&state, request).await {
        Ok(outcome) => response::success(encoding, &outcome),
        Err(error) => response::refusal(encoding, error).await,
    }
}

/// (Outermost on the OTLP routes.) Puts the refusals of the shared middleware (the key
/// check, the rate limit) in the OTLP contract.
pub async fn otlp_refusals(request: Request, next: Next) -> Response {
    let encoding = OtlpEncoding::of_content_type(request.headers().get(header::CONTENT_TYPE));
    let response = next.run(request).await;
    response::into_otlp(response, encoding).await
}

async fn export(state: &AppState, request: Request) -> Result<ExportOutcome, ApiError> {
    let limits = state.settings.limits;
    let max = state.settings.max_batch_entries;
    let received = receive(state, request, Accepts::Otlp).await?;
    let validated = received
        .validate(move |payload, rows| validate_export(payload, &limits, max, rows))
        .await?;
    let outcome = validated.answer().clone();
    let stored = validated.entry_count() as u64;
    acknowledge(state, validated, StatusCode::OK).await?;
    state.metrics.entries_by_protocol(PROTOCOL, stored);
    Ok(outcome)
}

/// Decodes the request and maps every record: the valid ones become rows, the others
/// are counted and the first one's problems named in the answer.
fn validate_export(
    payload: &Payload,
    limits: &EntryLimits,
    max: usize,
    rows: &mut Rows,
) -> Result<Validated<ExportOutcome>, ApiError> {
    let request = match payload.format {
        BodyFormat::Protobuf => {
            protobuf::decode(&payload.bytes, max).map_err(|error| match error {
                protobuf::ProtobufRequestError::TooManyRecords { max, got } => {
                    ApiError::BatchTooLarge {
                        max,
                        got: Some(got),
                    }
                }
                malformed => ApiError::Validation(vec![malformed.to_string()]),
            })?
        }
        _ => json::decode(&payload.bytes, max).map_err(|error| match error {
            json::JsonRequestError::TooManyRecords { max } => {
                ApiError::BatchTooLarge { max, got: None }
            }
            json::JsonRequestError::Malformed(message) => ApiError::Validation(vec![format!(
                "not a valid OTLP/JSON ExportLogsServiceRequest: {}",
                client_text::truncated(&message, client_text::MAX_MESSAGE_BYTES)
            )]),
        })?,
    };
    let now = Utc::now();
    let mut rejected = 0u64;
    let mut first_problem = None;
    let mut index = 0usize;
    mapping::for_each_entry(&request, limits, now, |entry| {
        match entry {
            Ok(entry) => rows.push(&entry),
            Err(problems) => {
                rejected += 1;
                first_problem
                    .get_or_insert_with(|| format!("log record {index}: {}", problems.join("; ")));
            }
        }
        index += 1;
    });
    let error_message = first_problem
        .map(|problem| {
            client_text::truncated(
                &format!("{rejected} log record(s) refused; the first: {problem}"),
                client_text::MAX_MESSAGE_BYTES,
            )
        })
        .unwrap_or_default();
    Ok(Validated {
        rejected,
        answer: ExportOutcome {
            rejected,
            error_message,
        },
    })
}
