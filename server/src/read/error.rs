//! The read side's failures. Authentication, storage and internal failures are the
//! server's own [`ApiError`] (same bodies as the ingest side); this type adds only what
//! reading needs: `400 {"error":"Invalid query","details":[...]}`, `404`, and the read
//! side's own 503s (too many reads at once, a query past its timeout, too many tails),
//! each labelled for `/metrics`. It never leaks a database error's text to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use log_ingestion_wire::ErrorBody;
use serde_json::json;

use crate::error::{ApiError, RejectionReason};
use crate::ingest::client_text;

/// PostgreSQL's `query_canceled`: a `statement_timeout` (or a cancel) ended the query.
const QUERY_CANCELED: &str = "57014";
/// `serialization_failure` (on a replica: "canceling statement due to conflict with
/// recovery") and `deadlock_detected`: the same query may well succeed when retried.
const RETRYABLE: [&str; 2] = ["40001", "40P01"];

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Parameters that do not make a query; one line per problem.
    #[error("Invalid query")]
    InvalidQuery(Vec<String>),
    #[error("Log entry not found")]
    NotFound,
    #[error("Too many live tails")]
    TooManyTails,
    #[error("Too many exports")]
    TooManyExports,
    #[error("Server is shutting down")]
    ShuttingDown,
    /// Every read connection stayed busy for the whole queue wait.
    #[error("Server busy")]
    Busy,
    /// The query ran past `LOG_INGESTION_READ_STATEMENT_TIMEOUT`.
    #[error("Query timed out")]
    QueryTimedOut,
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
            sqlx::Error::Database(database)
                if database.code().as_deref() == Some(QUERY_CANCELED) =>
            {
                ReadError::QueryTimedOut
            }
            sqlx::Error::Database(database)
                if database
                    .code()
                    .is_some_and(|code| RETRYABLE.contains(&code.as_ref())) =>
            {
                tracing::warn!(error = %database, "read query conflicted; the client may retry");
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
            ReadError::TooManyTails => unavailable(
                "Too many live tails",
                "close another tail or retry later",
                "too_many_tails",
                5,
            ),
            ReadError::TooManyExports => unavailable(
                "Too many exports",
                "other exports are running on this server; retry when one has finished",
                "too_many_exports",
                5,
            ),
            ReadError::ShuttingDown => unavailable(
                "Server is shutting down",
                "retry against a running server",
                "shutting_down",
                5,
            ),
            ReadError::Busy => unavailable(
                "Server busy",
                "every read connection is in use (LOG_INGESTION_READ_MAX_CONNECTIONS); retry shortly",
                "read_busy",
                1,
            ),
            ReadError::QueryTimedOut => unavailable(
                "Query timed out",
                "the query ran longer than LOG_INGESTION_READ_STATEMENT_TIMEOUT; narrow the time range or the filters",
                "read_timeout",
                5,
            ),
            ReadError::Api(error) => error.into_response(),
        }
    }
}

/// A 503 with `Retry-After`, labelled `reason` in `log_ingestion_requests_rejected_total`.
fn unavailable(
    error: &str,
    details: &str,
    reason: &'static str,
    retry_after_secs: u64,
) -> Response {
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
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response.extensions_mut().insert(RejectionReason(reason));
    response
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A database error carrying only a SQLSTATE, as PostgreSQL's would: `PgDatabaseError`
    /// cannot be built outside sqlx, and 40001 (a replica's recovery conflict) cannot be
    /// provoked reliably on one cluster (40P01 is, in `tests/read/api.rs`).
    #[derive(Debug, thiserror::Error)]
    #[error("code {0}")]
    struct Coded(&'static str);

    impl DatabaseError for Coded {
        fn message(&self) -> &str {
            "canceling statement due to conflict with recovery"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn answer_to(code: &'static str) -> Response {
        ReadError::from(sqlx::Error::Database(Box::new(Coded(code)))).into_response()
    }

    #[test]
    fn conflicts_the_client_may_retry_are_503_with_retry_after() {
        for code in ["40001", "40P01"] {
            let response = answer_to(code);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{code}");
            assert!(
                response.headers().contains_key(header::RETRY_AFTER),
                "{code}"
            );
        }
    }

    #[test]
    fn a_cancelled_query_is_a_timeout_and_other_codes_are_500() {
        let timed_out = answer_to(QUERY_CANCELED);
        assert_eq!(timed_out.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            timed_out.extensions().get::<RejectionReason>().map(|r| r.0),
            Some("read_timeout")
        );
        assert_eq!(
            answer_to("42P01").status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
