//! The alerts API, behind admin keys like the rest of `/api/v1`: rules and their preview
//! (`rules`), the series firing now and the history of transitions with their deliveries
//! (`firing`), silences (`silences`), channels (`channels`) and the outbox
//! (`notifications`). Owns the router, its state and the one error every handler answers
//! with; bodies are bounded and refused with a 400 naming each bad field. Changes are
//! written to the audit log in their own transaction. It runs on the writers' pool
//! (these tables are small, and an answer shows what was just written); the preview
//! reads through the read side.

mod channels;
mod firing;
mod notifications;
mod rules;
mod saved_search;
mod silences;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRef, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{middleware, Json, Router};
use log_ingestion_wire::ErrorBody;
use serde_json::{json, Value};
use sqlx::PgPool;

use super::sender::Sender;
use crate::read::error::ReadError;
use crate::read::{self, AdminKeys, ReadContext};

/// A rule is a few KiB at most (its strings are bounded).
const MAX_RULE_BODY_BYTES: usize = 64 * 1024;
/// A channel body is a name, a kind, a URL and a secret.
const MAX_CHANNEL_BODY_BYTES: usize = 8 * 1024;

/// What the alerts handlers need.
#[derive(Clone)]
pub struct AlertsContext {
    pub read: ReadContext,
    pub writes: PgPool,
    /// The explorer's base URL in alerts (for the resolves a deletion writes).
    pub external_url: String,
}

/// The router's state: the context, and the sender of channels' test notifications.
#[derive(Clone)]
struct ApiState {
    context: AlertsContext,
    sender: Sender,
}

impl FromRef<ApiState> for AlertsContext {
    fn from_ref(state: &ApiState) -> Self {
        state.context.clone()
    }
}

impl FromRef<ApiState> for Sender {
    fn from_ref(state: &ApiState) -> Self {
        state.sender.clone()
    }
}

/// The alerts API's routes, behind `admin_keys`.
pub fn router<S>(context: AlertsContext, sender: Sender, admin_keys: AdminKeys) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let limits = context.read.query_limits();
    let rules = Router::new()
        .route("/api/v1/alerts", get(firing::firing))
        .route("/api/v1/alerts/history", get(firing::history))
        .route(
            "/api/v1/alerts/rules",
            get(rules::list_rules).post(rules::create_rule),
        )
        .route("/api/v1/alerts/rules/preview", post(rules::preview_rule))
        .route(
            "/api/v1/alerts/rules/{id}",
            get(rules::show_rule)
                .put(rules::replace_rule)
                .delete(rules::delete_rule),
        )
        .route(
            "/api/v1/alerts/silences",
            get(silences::list_silences).post(silences::create_silence),
        )
        .route(
            "/api/v1/alerts/silences/{id}",
            delete(silences::delete_silence),
        )
        .layer(DefaultBodyLimit::max(MAX_RULE_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(
            limits,
            read::bound_query_shape,
        ));
    let channels = Router::new()
        .route(
            "/api/v1/alerts/channels",
            get(channels::list).post(channels::create),
        )
        .route(
            "/api/v1/alerts/channels/{name}",
            get(channels::show)
                .patch(channels::change)
                .delete(channels::remove),
        )
        .route("/api/v1/alerts/channels/{name}/test", post(channels::test))
        .route(
            "/api/v1/alerts/notifications",
            get(notifications::notifications),
        )
        .layer(DefaultBodyLimit::max(MAX_CHANNEL_BODY_BYTES));
    rules
        .merge(channels)
        .route_layer(middleware::from_fn_with_state(
            std::sync::Arc::new(admin_keys),
            read::auth::require_admin_key,
        ))
        .with_state(ApiState { context, sender })
}

/// A refusal of the alerts API.
#[derive(Debug)]
pub enum AlertsApiError {
    Read(ReadError),
    NotFound(&'static str),
    /// A body that does not make a rule, silence or channel; one line per problem.
    InvalidBody(Vec<String>),
    /// The change conflicts with what is stored (a name in use, a file rule).
    Conflict(String),
}

impl From<ReadError> for AlertsApiError {
    fn from(error: ReadError) -> Self {
        AlertsApiError::Read(error)
    }
}

impl From<sqlx::Error> for AlertsApiError {
    fn from(error: sqlx::Error) -> Self {
        AlertsApiError::Read(ReadError::from(error))
    }
}

impl IntoResponse for AlertsApiError {
    fn into_response(self) -> Response {
        let (status, error, details) = match self {
            AlertsApiError::Read(error) => return error.into_response(),
            AlertsApiError::NotFound(what) => (StatusCode::NOT_FOUND, what.to_owned(), None),
            AlertsApiError::InvalidBody(problems) => (
                StatusCode::BAD_REQUEST,
                "Invalid request".to_owned(),
                Some(json!(crate::ingest::client_text::capped_problems(problems))),
            ),
            AlertsApiError::Conflict(problem) => (StatusCode::CONFLICT, problem, None),
        };
        (status, Json(ErrorBody { error, details })).into_response()
    }
}

type Answer<T> = Result<T, AlertsApiError>;

fn path_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, AlertsApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ReadError::invalid("id: must be a whole number").into())
}

fn json_body(body: &Bytes) -> Result<Value, AlertsApiError> {
    serde_json::from_slice(body).map_err(|error| {
        AlertsApiError::InvalidBody(vec![format!("the body is not JSON: {error}")])
    })
}

/// Refuses (409) a new row once `count_sql` counts `max` of them, under the advisory
/// lock `lock` held to the end of `tx`, so that the bound holds under concurrent
/// requests. `what` names the rows in the answer ("rules").
async fn refuse_beyond(
    tx: &mut sqlx::PgConnection,
    lock: i64,
    count_sql: &'static str,
    max: i64,
    what: &str,
) -> Answer<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock)
        .execute(&mut *tx)
        .await?;
    let count: i64 = sqlx::query_scalar(count_sql).fetch_one(&mut *tx).await?;
    if count >= max {
        return Err(AlertsApiError::Conflict(format!(
            "at most {max} {what}; delete one first"
        )));
    }
    Ok(())
}
