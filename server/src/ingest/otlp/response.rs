//! The OTLP/HTTP response contract: every answer in the request's content type
//! (protobuf or JSON). Success is 200 with an `ExportLogsServiceResponse`, empty when
//! every record was stored and with `partial_success` when some were refused; a
//! refusal is its HTTP status with a `google.rpc.Status` body, keeping `Retry-After`
//! (429, 503) and the rejection reason the request metrics count. A transient failure
//! is never a 500: storage and budget refusals are already 503s (`ApiError`), which
//! OTLP clients retry. It never decides what is refused.

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use prost::Message;
use serde::Serialize;
use serde_json::json;

use crate::error::ApiError;

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    Protobuf,
    Json,
}

pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";
pub const JSON_CONTENT_TYPE: &str = "application/json";

impl OtlpEncoding {
    /// The encoding a request's `Content-Type` names; anything else is answered in
    /// protobuf, OTLP/HTTP's default (and refused by the body reader with a 415).
    pub fn of_content_type(value: Option<&HeaderValue>) -> Self {
        let essence = value
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default();
        let essence = essence.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case(JSON_CONTENT_TYPE) {
            OtlpEncoding::Json
        } else {
            OtlpEncoding::Protobuf
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            OtlpEncoding::Protobuf => PROTOBUF_CONTENT_TYPE,
            OtlpEncoding::Json => JSON_CONTENT_TYPE,
        })
    }
}

/// What the export achieved: how many records were refused, and why.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportOutcome {
    pub rejected: u64,
    pub error_message: String,
}

/// Marks a response already in the OTLP contract, so [`into_otlp`] leaves it alone.
#[derive(Debug, Clone, Copy)]
struct OtlpAnswer;

/// 200 with the `ExportLogsServiceResponse` for `outcome`.
pub fn success(encoding: OtlpEncoding, outcome: &ExportOutcome) -> Response {
    let partial = (outcome.rejected > 0 || !outcome.error_message.is_empty()).then(|| {
        ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(outcome.rejected).unwrap_or(i64::MAX),
            error_message: outcome.error_message.clone(),
        }
    });
    let body = match encoding {
        OtlpEncoding::Protobuf => ExportLogsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        // proto3 JSON: int64 as a string.
        OtlpEncoding::Json => match partial {
            None => b"{}".to_vec(),
            Some(partial) => json!({
                "partialSuccess": {
                    "rejectedLogRecords": partial.rejected_log_records.to_string(),
                    "errorMessage": partial.error_message,
                }
            })
            .to_string()
            .into_bytes(),
        },
    };
    answer(StatusCode::OK, encoding, body)
}

/// `error`'s answer in the OTLP contract. A request with more records than the cap
/// is a 413 here (too large, in OTLP's terms; the JSON API says 400).
pub async fn refusal(encoding: OtlpEncoding, error: ApiError) -> Response {
    let too_many = matches!(error, ApiError::BatchTooLarge { .. });
    let mut response = error.into_response();
    if too_many {
        *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    }
    into_otlp(response, encoding).await
}

/// The `google.rpc.Status` message (`google/rpc/status.proto`), without details.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The gRPC code OTLP pairs with an HTTP status.
fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 415 => 3,  // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 => 5,        // NOT_FOUND
        408 => 4,        // DEADLINE_EXCEEDED
        413 | 429 => 8,  // RESOURCE_EXHAUSTED
        502..=504 => 14, // UNAVAILABLE
        _ => 13,         // INTERNAL
    }
}

/// Replaces `response`'s body with a `google.rpc.Status` holding `message`.
fn rewrite(response: &mut Response, encoding: OtlpEncoding, message: String) {
    let status = RpcStatus {
        code: grpc_code(response.status()),
        message,
    };
    let body = match encoding {
        OtlpEncoding::Protobuf => status.encode_to_vec(),
        OtlpEncoding::Json => json!({"code": status.code, "message": status.message})
            .to_string()
            .into_bytes(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, encoding.content_type());
    headers.remove(header::CONTENT_LENGTH);
    response.extensions_mut().insert(OtlpAnswer);
    *response.body_mut() = Body::from(body);
}

/// The largest error body of the JSON API this reads back to re-encode: its own.
const MAX_ERROR_BODY_BYTES: usize = 16 * 1024;

/// An error answer of the shared middleware (401, 429, 503 for an evicted connection)
/// put in the OTLP contract: the same status and headers, a `google.rpc.Status` body
/// in `encoding` whose message is the JSON API's error text.
pub async fn into_otlp(response: Response, encoding: OtlpEncoding) -> Response {
    if response.status().is_success() || response.extensions().get::<OtlpAnswer>().is_some() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let message = match to_bytes(body, MAX_ERROR_BODY_BYTES).await {
        Ok(bytes) => error_text(&bytes),
        Err(_) => String::new(),
    };
    let mut response = Response::from_parts(parts, Body::empty());
    rewrite(&mut response, encoding, message);
    response
}

/// `"error: details"` from the JSON API's `{"error": ..., "details": ...}`.
fn error_text(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let error = value["error"].as_str().unwrap_or_default();
    match &value["details"] {
        serde_json::Value::Null => error.to_owned(),
        serde_json::Value::String(details) => format!("{error}: {details}"),
        details => format!("{error}: {details}"),
    }
}

fn answer(status: StatusCode, encoding: OtlpEncoding, body: Vec<u8>) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response();
    response.extensions_mut().insert(OtlpAnswer);
    response
}
