//! The delivery side's API, behind admin keys like the rest of `/api/v1`:
//! - `GET /api/v1/alerts/channels`, `POST` (create), `GET|PATCH|DELETE
//!   /api/v1/alerts/channels/{name}` (channels from the rules file are read-only: 409),
//!   `POST /api/v1/alerts/channels/{name}/test` (sends a test notification now);
//! - `GET /api/v1/alerts/notifications`: the outbox rows and how their delivery went.
//!
//! Bodies are bounded and refused with a 400 naming each problem. A channel's URL and
//! secret are never returned or logged (`channels::ChannelView`). Runs on the writers'
//! pool: the read side's connections are read-only.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use chrono::{DateTime, Utc};
use log_ingestion_wire::ErrorBody;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::PgPool;

use super::channels::{self, Channel, ChannelView};
use super::delivery::idempotency_key;
use super::payload::{Alert, Notification};
use super::sender::Sender;
use crate::read::{self, AdminKeys};

/// A channel body is a name, a kind, a URL and a secret.
const MAX_BODY_BYTES: usize = 8 * 1024;
const DEFAULT_NOTIFICATIONS: i64 = 50;
const MAX_NOTIFICATIONS: i64 = 200;

#[derive(Clone)]
struct Context {
    pool: PgPool,
    sender: Sender,
}

pub fn router<S>(pool: PgPool, sender: Sender, admin_keys: AdminKeys) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/api/v1/alerts/channels", get(list).post(create))
        .route(
            "/api/v1/alerts/channels/{name}",
            get(show).patch(change).delete(remove),
        )
        .route("/api/v1/alerts/channels/{name}/test", post(test))
        .route("/api/v1/alerts/notifications", get(notifications))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(
            std::sync::Arc::new(admin_keys),
            read::auth::require_admin_key,
        ))
        .with_state(Context { pool, sender })
}

#[derive(Debug)]
enum ApiError {
    Invalid(Vec<String>),
    NotFound,
    Conflict(String),
    Database(sqlx::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Database(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, details) = match self {
            ApiError::Invalid(problems) => (
                StatusCode::BAD_REQUEST,
                "Invalid request".to_owned(),
                Some(json!(problems)),
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "Channel not found".to_owned(), None),
            ApiError::Conflict(message) => (StatusCode::CONFLICT, message, None),
            ApiError::Database(error) => {
                tracing::error!(%error, "alerts API: database error");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database unavailable".to_owned(),
                    None,
                )
            }
        };
        (status, Json(ErrorBody { error, details })).into_response()
    }
}

type Answer<T> = Result<T, ApiError>;

fn object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(ApiError::Invalid(vec![
            "body: must be a JSON object".to_owned()
        ])),
    }
}

async fn find(pool: &PgPool, name: &str) -> Answer<Channel> {
    if !channels::valid_name(name) {
        return Err(ApiError::NotFound);
    }
    channels::by_name(pool, name)
        .await?
        .ok_or(ApiError::NotFound)
}

fn read_only(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "Channel {name} comes from the alert rules file and is read-only: change it there"
    ))
}

#[derive(Serialize)]
struct ChannelList {
    channels: Vec<ChannelView>,
}

async fn list(State(context): State<Context>) -> Answer<Json<ChannelList>> {
    let channels = channels::list(&context.pool).await?;
    Ok(Json(ChannelList {
        channels: channels.iter().map(Channel::view).collect(),
    }))
}

async fn show(
    State(context): State<Context>,
    Path(name): Path<String>,
) -> Answer<Json<ChannelView>> {
    Ok(Json(find(&context.pool, &name).await?.view()))
}

async fn create(
    State(context): State<Context>,
    body: Bytes,
) -> Answer<(StatusCode, Json<ChannelView>)> {
    let new = channels::parse_new(&object(&body)?).map_err(ApiError::Invalid)?;
    match channels::create(&context.pool, &new).await? {
        Some(channel) => {
            tracing::info!(channel = %channel.name, kind = channel.kind.as_str(), "alert channel created");
            Ok((StatusCode::CREATED, Json(channel.view())))
        }
        None => Err(ApiError::Conflict(format!(
            "A channel named {} exists",
            new.name
        ))),
    }
}

async fn change(
    State(context): State<Context>,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer<Json<ChannelView>> {
    let existing = find(&context.pool, &name).await?;
    if existing.source == "file" {
        return Err(read_only(&name));
    }
    let change = channels::parse_change(&object(&body)?).map_err(ApiError::Invalid)?;
    let changed = channels::update(&context.pool, &name, &change)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(channel = %changed.name, "alert channel changed");
    Ok(Json(changed.view()))
}

async fn remove(State(context): State<Context>, Path(name): Path<String>) -> Answer<StatusCode> {
    let existing = find(&context.pool, &name).await?;
    if existing.source == "file" {
        return Err(read_only(&name));
    }
    if channels::delete(&context.pool, &name).await? {
        tracing::info!(channel = %name, "alert channel deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// Sends a test notification to the channel now (not through the outbox) and answers
/// whether the receiver took it.
async fn test(State(context): State<Context>, Path(name): Path<String>) -> Answer<Json<Value>> {
    let channel = find(&context.pool, &name).await?;
    let now = Utc::now();
    let alert = json!({
        "status": "firing",
        "labels": {"alertname": "LogIngestionTestNotification", "channel": channel.name},
        "annotations": {
            "summary": "A test notification from log_ingestion",
            "description": "Sent from the channels API to check that this channel receives alerts."
        },
        "startsAt": now.to_rfc3339(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "0000000000000000",
    });
    let alert = Alert::parse(&alert).map_err(|error| ApiError::Invalid(vec![error.to_string()]))?;
    let notification = Notification {
        id: 0,
        rule_id: 0,
        rule_name: "LogIngestionTestNotification".to_owned(),
        series_key: String::new(),
        alert,
    };
    let key = format!(
        "{}-test-{}",
        idempotency_key(0),
        uuid::Uuid::new_v4().simple()
    );
    Ok(Json(
        match context.sender.send(&channel, &notification, &key).await {
            Ok(status) => json!({"delivered": true, "status": status}),
            Err(error) => json!({"delivered": false, "error": error}),
        },
    ))
}

#[derive(Deserialize)]
struct NotificationQuery {
    status: Option<String>,
    channel: Option<String>,
    rule_id: Option<i64>,
    /// Rows with a smaller id than this (the previous page's `next_before_id`).
    before_id: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize, sqlx::FromRow)]
struct NotificationView {
    id: i64,
    rule_id: i64,
    rule_name: String,
    series_key: String,
    transition: String,
    channel: String,
    status: String,
    attempts: i32,
    created_at: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    alert: Value,
}

/// Newest first, filtered by `status`, `channel` and `rule_id`, `limit` rows a page.
async fn notifications(
    State(context): State<Context>,
    query: Result<Query<NotificationQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<Json<Value>> {
    let Ok(Query(query)) = query else {
        return Err(ApiError::Invalid(vec![
            "query: status, channel, rule_id, before_id (whole numbers) and limit only".to_owned(),
        ]));
    };
    let mut problems = Vec::new();
    if let Some(status) = &query.status {
        if !matches!(status.as_str(), "pending" | "delivered" | "failed") {
            problems.push("status: pending, delivered or failed".to_owned());
        }
    }
    if query
        .channel
        .as_deref()
        .is_some_and(|name| !channels::valid_name(name))
    {
        problems.push("channel: not a channel name".to_owned());
    }
    let limit = query.limit.unwrap_or(DEFAULT_NOTIFICATIONS);
    if !(1..=MAX_NOTIFICATIONS).contains(&limit) {
        problems.push(format!("limit: 1 to {MAX_NOTIFICATIONS}"));
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let rows: Vec<NotificationView> = sqlx::query_as(
        "SELECT id, rule_id, rule_name, series_key, transition, channel, status, attempts, \
             created_at, next_attempt_at, delivered_at, failed_at, last_error, alert \
         FROM alert_notifications \
         WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR channel = $2) \
           AND ($3::bigint IS NULL OR rule_id = $3) AND ($4::bigint IS NULL OR id < $4) \
         ORDER BY id DESC LIMIT $5",
    )
    .bind(&query.status)
    .bind(&query.channel)
    .bind(query.rule_id)
    .bind(query.before_id)
    .bind(limit)
    .fetch_all(&context.pool)
    .await?;
    let next_before_id = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|row| row.id))
        .flatten();
    Ok(Json(
        json!({"notifications": rows, "next_before_id": next_before_id}),
    ))
}
