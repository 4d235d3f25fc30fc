//! What the errors API's handlers share: their context (the read side, and the
//! writers' pool for changes) and their refusals (`ErrorsApiError`, answered as the rest
//! of `/api/v1` answers them). Never reads or writes anything itself.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Duration;
use log_ingestion_wire::ErrorBody;
use serde_json::json;
use sqlx::PgPool;

use super::changes::ChangeError;
use crate::read::error::ReadError;
use crate::read::ReadContext;

/// The range counts are taken over when `since` is not given.
pub(super) const DEFAULT_RANGE: Duration = Duration::hours(24);

/// What the errors handlers need.
#[derive(Clone)]
pub struct ErrorsContext {
    pub(super) read: ReadContext,
    /// The writers' pool: status changes and merges, and the answers to them.
    pub(super) writes: PgPool,
}

/// A refusal of the errors API.
#[derive(Debug)]
pub enum ErrorsApiError {
    Read(ReadError),
    NotFound,
    /// A body that does not make a change; one line per problem.
    InvalidBody(Vec<String>),
}

impl From<ReadError> for ErrorsApiError {
    fn from(error: ReadError) -> Self {
        ErrorsApiError::Read(error)
    }
}

impl From<sqlx::Error> for ErrorsApiError {
    fn from(error: sqlx::Error) -> Self {
        ErrorsApiError::Read(ReadError::from(error))
    }
}

impl From<ChangeError> for ErrorsApiError {
    fn from(error: ChangeError) -> Self {
        match error {
            ChangeError::NotFound => ErrorsApiError::NotFound,
            ChangeError::Refused(problem) => ErrorsApiError::InvalidBody(vec![problem]),
            ChangeError::Database(error) => error.into(),
        }
    }
}

impl IntoResponse for ErrorsApiError {
    fn into_response(self) -> Response {
        match self {
            ErrorsApiError::Read(error) => error.into_response(),
            ErrorsApiError::NotFound => (
                StatusCode::NOT_FOUND,
                Json(ErrorBody {
                    error: "Error group not found".to_owned(),
                    details: None,
                }),
            )
                .into_response(),
            ErrorsApiError::InvalidBody(problems) => (
                StatusCode::BAD_REQUEST,
                Json(ErrorBody {
                    error: "Invalid request".to_owned(),
                    details: Some(json!(problems)),
                }),
            )
                .into_response(),
        }
    }
}

pub(super) type Answer<T> = Result<Json<T>, ErrorsApiError>;

pub(super) fn group_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, ErrorsApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ReadError::invalid("id: must be a whole number").into())
}
