//! The one error type of the HTTP API and its mapping to a status code and the JSON
//! body `{"error": ..., "details": ...}`. Internal causes are logged here and never
//! leaked to clients; nothing here ever answers 2xx.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use log_ingestion_wire::ErrorBody;
use serde_json::{json, Value};

use crate::ingest::client_text;

/// Put on every error response so the request metrics can count it by reason.
#[derive(Debug, Clone, Copy)]
pub struct RejectionReason(pub &'static str);

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("API key is required")]
    MissingApiKey,
    #[error("Invalid API key")]
    InvalidApiKey,
    /// A read made with a key that may only ingest.
    #[error("This API key may only ingest")]
    IngestOnlyKey,
    /// An actor whose role is below what the change needs.
    #[error("Forbidden")]
    Forbidden { needed: crate::auth::Role },
    /// A session cookie that names no live session (signed out, expired or unknown).
    #[error("Not signed in")]
    NotSignedIn,
    /// A change made with a session without its `X-CSRF-Token`.
    #[error("CSRF token missing or invalid")]
    CsrfRejected,
    /// A sign-in with an unknown e-mail address or a wrong password (never saying which).
    #[error("Invalid email or password")]
    SignInFailed,
    #[error("Rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    #[error("Unsupported content type")]
    UnsupportedContentType { got: String, expected: &'static str },
    #[error("Unsupported content encoding")]
    UnsupportedContentEncoding { got: String },
    #[error("Payload too large")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("Malformed request body encoding")]
    CorruptEncoding { encoding: &'static str },
    #[error("Could not read the request body")]
    IncompleteBody,
    #[error("Request body timed out")]
    BodyTimeout,
    #[error("Malformed JSON")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("Invalid request body")]
    InvalidBody {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("Validation failed")]
    Validation(Vec<String>),
    #[error("Batch is empty")]
    EmptyBatch,
    #[error("Batch too large")]
    /// `got` is known for NDJSON (lines are counted); JSON parsing stops at `max + 1`.
    BatchTooLarge { max: usize, got: Option<usize> },
    #[error("Invalid Idempotency-Key header")]
    InvalidIdempotencyKey,
    #[error("Idempotency-Key reused with a different request")]
    IdempotencyKeyReused,
    #[error("Not found")]
    UnknownRoute,
    #[error("Storage unavailable")]
    StorageUnavailable,
    #[error("Server busy")]
    ServerBusy,
    /// Every password-hashing thread stayed taken for as long as a sign-in waits.
    #[error("Server busy")]
    SignInBusy,
    /// The connection was closed for a newer one before its request showed a key.
    #[error("Connection evicted")]
    ConnectionEvicted,
    #[error("Internal server error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingApiKey
            | ApiError::InvalidApiKey
            | ApiError::NotSignedIn
            | ApiError::SignInFailed => StatusCode::UNAUTHORIZED,
            ApiError::IngestOnlyKey | ApiError::Forbidden { .. } | ApiError::CsrfRejected => {
                StatusCode::FORBIDDEN
            }
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedContentType { .. }
            | ApiError::UnsupportedContentEncoding { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::CorruptEncoding { .. }
            | ApiError::IncompleteBody
            | ApiError::MalformedJson { .. }
            | ApiError::InvalidBody { .. }
            | ApiError::Validation(_)
            | ApiError::EmptyBatch
            | ApiError::BatchTooLarge { .. }
            | ApiError::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnknownRoute => StatusCode::NOT_FOUND,
            ApiError::StorageUnavailable
            | ApiError::ServerBusy
            | ApiError::SignInBusy
            | ApiError::ConnectionEvicted => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The short reason label used by the rejection metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::MissingApiKey => "missing_api_key",
            ApiError::InvalidApiKey => "invalid_api_key",
            ApiError::IngestOnlyKey => "ingest_only_key",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotSignedIn => "not_signed_in",
            ApiError::CsrfRejected => "csrf_rejected",
            ApiError::SignInFailed => "sign_in_failed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::UnsupportedContentType { .. } => "unsupported_content_type",
            ApiError::UnsupportedContentEncoding { .. } => "unsupported_content_encoding",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::CorruptEncoding { .. } => "corrupt_encoding",
            ApiError::IncompleteBody => "incomplete_body",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::MalformedJson { .. } => "malformed_json",
            ApiError::InvalidBody { .. } => "invalid_body",
            ApiError::Validation(_) => "validation",
            ApiError::EmptyBatch => "empty_batch",
            ApiError::BatchTooLarge { .. } => "batch_too_large",
            ApiError::InvalidIdempotencyKey => "invalid_idempotency_key",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::UnknownRoute => "unknown_route",
            ApiError::StorageUnavailable => "storage_unavailable",
            ApiError::ServerBusy | ApiError::SignInBusy => "server_busy",
            ApiError::ConnectionEvicted => "connection_evicted",
            ApiError::Internal(_) => "internal",
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApiError::UnsupportedContentType { got, expected } => Some(json!(format!(
                "got {}, expected {expected}",
                client_text::quoted(got)
            ))),
            ApiError::UnsupportedContentEncoding { got } => Some(json!(format!(
                "got {}, expected gzip, zstd or identity",
                client_text::quoted(got)
            ))),
            ApiError::PayloadTooLarge { limit_bytes } => Some(json!(format!(
                "the (decompressed) body must be at most {limit_bytes} bytes"
            ))),
            ApiError::CorruptEncoding { encoding } => {
                Some(json!(format!("the body is not valid {encoding} data")))
            }
            ApiError::MalformedJson {
                line,
                column,
                message,
            }
            | ApiError::InvalidBody {
                line,
                column,
                message,
            } => Some(json!({"line": line, "column": column, "message": message})),
            ApiError::Validation(problems) => {
                Some(json!(client_text::capped_problems(problems.clone())))
            }
            ApiError::BatchTooLarge { max, got } => Some(json!(match got {
                Some(got) => format!("a batch may hold at most {max} entries (got {got})"),
                None => format!("a batch may hold at most {max} entries (got more)"),
            })),
            ApiError::BodyTimeout => Some(json!(
                "the body did not arrive within the server's body read timeouts; nothing was stored"
            )),
            ApiError::InvalidIdempotencyKey => Some(json!(
                "Idempotency-Key must be 1 to 255 visible ASCII characters"
            )),
            ApiError::IngestOnlyKey => Some(json!(
                "reading needs a key from LOG_INGESTION_ADMIN_API_KEYS"
            )),
            ApiError::Forbidden { needed } => {
                Some(json!(format!("this needs the {needed} role or higher")))
            }
            ApiError::NotSignedIn => Some(json!(
                "the session ended (signed out, idle or too old); sign in again"
            )),
            ApiError::CsrfRejected => Some(json!(
                "a change made with a session needs the X-CSRF-Token header that GET /api/v1/session answers"
            )),
            ApiError::StorageUnavailable => Some(json!("nothing was stored; retry later")),
            ApiError::ServerBusy => Some(json!(
                "too many request bytes are in flight; nothing was stored; retry later"
            )),
            ApiError::SignInBusy => Some(json!(
                "every password-hashing thread is taken; nothing was checked; retry in a moment"
            )),
            ApiError::ConnectionEvicted => Some(json!(
                "too many connections without a valid key: this one was closed before its request was read; nothing was stored; retry on a new connection"
            )),
            _ => None,
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::StorageUnavailable
            | ApiError::ServerBusy
            | ApiError::SignInBusy
            | ApiError::ConnectionEvicted => Some(1),
            _ => None,
        }
    }

    /// Turns a serde_json error into the matching 400.
    pub fn from_json(error: &serde_json::Error) -> Self {
        ApiError::from_json_at(error, error.line())
    }

    /// Like [`ApiError::from_json`] for text that is line `line` of the body (an
    /// NDJSON line): details and message both name that line.
    pub fn from_json_at(error: &serde_json::Error, line: usize) -> Self {
        let column = error.column();
        let message = format!(
            "{} at line {line} column {column}",
            client_text::describe_json_error(error)
        );
        if error.is_data() {
            ApiError::InvalidBody {
                line,
                column,
                message,
            }
        } else {
            ApiError::MalformedJson {
                line,
                column,
                message,
            }
        }
    }
}

impl From<crate::ingest::inflight::BudgetExhausted> for ApiError {
    fn from(_: crate::ingest::inflight::BudgetExhausted) -> Self {
        ApiError::ServerBusy
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error while handling a request");
        }
        let body = ErrorBody {
            error: self.to_string(),
            details: self.details(),
        };
        let mut response = (self.status(), Json(body)).into_response();
        response
            .extensions_mut()
            .insert(RejectionReason(self.reason()));
        if matches!(self, ApiError::BodyTimeout | ApiError::ConnectionEvicted) {
            // The rest of the body may still come (or the connection is being closed
            // for a newer one): this connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_at_a_given_line_names_that_line_in_its_message() {
        let error = serde_json::from_str::<serde_json::Value>("{oops").unwrap_err();
        match ApiError::from_json_at(&error, 4) {
            ApiError::MalformedJson { line, message, .. } => {
                assert_eq!(line, 4);
                assert!(message.ends_with("at line 4 column 2"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
