//! OpenTelemetry's OTLP/HTTP logs ingest: `POST /v1/logs` (and `/otlp/v1/logs`) with
//! an `ExportLogsServiceRequest` in protobuf or JSON. A request goes the way of every
//! ingest request (the same key check, rate limit, body reader with its caps and
//! in-flight budget, validation off the async workers for large bodies, group commit
//! before any 2xx) with its own decoding (protobuf read in place: `wire`, `protobuf`,
//! `view`, `records`; OTLP/JSON: `json`), its mapping into the entry model
//! (`mapping`, `metadata`) and its answers in OTLP's contract (`response`). OTLP has
//! no idempotency key: an `Idempotency-Key` header is ignored here.

#[cfg(test)]
mod cpu_tests;
#[cfg(test)]
mod decoding_tests;
mod json;
mod mapping;
mod metadata;
mod protobuf;
mod records;
mod response;
mod sensitive_keys;
mod view;
mod wire;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use log_ingestion_wire::IDEMPOTENCY_KEY_HEADER;

use self::mapping::{Mapped, Mapper};
use self::protobuf::Reading;
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
    let mapper = Mapper::new(limits, Utc::now());
    let mut tally = Tally::default();
    let mut each = |entry: Mapped<'_>| tally.add(entry, rows);
    let mapped = match payload.format {
        BodyFormat::Protobuf => match protobuf::check(&payload.bytes, max) {
            Ok(Reading::OnWire) => records::for_each_on_wire(&payload.bytes, mapper, &mut each),
            Ok(Reading::Merged) => {
                let request = protobuf::decode(&payload.bytes).map_err(protobuf_refusal)?;
                records::for_each_decoded(&request, mapper, &mut each)
            }
            Err(error) => return Err(protobuf_refusal(error)),
        },
        _ => {
            let request = json::decode(&payload.bytes, max).map_err(|error| match error {
                json::JsonRequestError::TooManyRecords { max } => {
                    ApiError::BatchTooLarge { max, got: None }
                }
                too_many @ json::JsonRequestError::TooManyElements { .. } => {
                    ApiError::Validation(vec![too_many.to_string()])
                }
                json::JsonRequestError::Malformed(message) => ApiError::Validation(vec![format!(
                    "not a valid OTLP/JSON ExportLogsServiceRequest: {}",
                    client_text::truncated(&message, client_text::MAX_MESSAGE_BYTES)
                )]),
            })?;
            records::for_each_decoded(&request, mapper, &mut each)
        }
    };
    mapped.map_err(|error| protobuf_refusal(error.into()))?;
    Ok(tally.validated())
}

fn protobuf_refusal(error: protobuf::ProtobufRequestError) -> ApiError {
    match error {
        protobuf::ProtobufRequestError::TooManyRecords { max, got } => ApiError::BatchTooLarge {
            max,
            got: Some(got),
        },
        malformed => ApiError::Validation(vec![malformed.to_string()]),
    }
}

/// The records refused so far, and the first one's problems.
#[derive(Default)]
struct Tally {
    index: usize,
    rejected: u64,
    first_problem: Option<String>,
}

impl Tally {
    fn add(&mut self, entry: Mapped<'_>, rows: &mut Rows) {
        match entry {
            Ok(entry) => rows.push(&entry),
            Err(problems) => {
                self.rejected += 1;
                let index = self.index;
                self.first_problem
                    .get_or_insert_with(|| format!("log record {index}: {}", problems.join("; ")));
            }
        }
        self.index += 1;
    }

    fn validated(self) -> Validated<ExportOutcome> {
        let rejected = self.rejected;
        let error_message = self
            .first_problem
            .map(|problem| {
                client_text::truncated(
                    &format!("{rejected} log record(s) refused; the first: {problem}"),
                    client_text::MAX_MESSAGE_BYTES,
                )
            })
            .unwrap_or_default();
        Validated {
            rejected,
            answer: ExportOutcome {
                rejected,
                error_message,
            },
        }
    }
}
