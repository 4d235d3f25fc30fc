//! The read side's failures. Authentication, storage and internal failures are the
//! server's own [`ApiError`] (same bodies as the ingest side); this type adds only what
//! reading needs: `400 {"error":"Invalid query","details":[...]}` and `404`. It never
//! leaks a database error's text to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use log_ingestion_wire::ErrorBody;
use serde_json::json;

use crate::client_text;
use crate::error::{ApiError, RejectionReason};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Parameters that do not make a query; one line per problem.
    #[error("Invalid query")]
    InvalidQuery(Vec<String>),
    #[error("Log entry not found")]
    NotFound,
    #[error("Too many live tails")]
    TooManyTails,
    #[error("Server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ReadError {
    pub fn invalid(problem: impl Into<String>) -> Self {
        ReadError::InvalidQuery(vec![problem.into()])
    }
}

impl From<sqlx::Error> for ReadError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(%error, "database unavailable while reading logs");
                ReadError::Api(ApiError::StorageUnavailable)
            }
            other => ReadError::Api(ApiError::Internal(format!("read query failed: {other}"))),
        }
    }
}

impl IntoResponse for ReadError {
    fn into_response(self) -> Response {
        match self {
            ReadError::InvalidQuery(problems) => {
                // Problems may quote parameters; they are capped in count and length.
                let mut response = (
                    StatusCode::BAD_REQUEST,
                    Json(ErrorBody {
                        error: "Invalid query".to_owned(),
                        details: Some(json!(client_text::capped_problems(problems))),
                    }),
                )
                    .into_response();
                response
                    .extensions_mut()
                    .insert(RejectionReason("invalid_query"));
                response
            }
            ReadError::NotFound => (
                StatusCode::NOT_FOUND,
                Json(ErrorBody {
                    error: "Log entry not found".to_owned(),
                    details: None,
                }),
            )
                .into_response(),
            ReadError::TooManyTails => {
                unavailable("Too many live tails", "close another tail or retry later")
            }
            ReadError::ShuttingDown => {
                unavailable("Server is shutting down", "retry against a running server")
            }
            ReadError::Api(error) => error.into_response(),
        }
    }
}

fn unavailable(error: &str, details: &str) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(ErrorBody {
            error: error.to_owned(),
            details: Some(json!(details)),
        }),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(5u64));
    response
}
