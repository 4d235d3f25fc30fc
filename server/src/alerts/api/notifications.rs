//! The outbox through the API (`GET /api/v1/alerts/notifications`): each notification
//! and how its delivery went, newest first, filtered by status, channel and rule.

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{AlertsApiError, AlertsContext, Answer};
use crate::alerts::channels;

const DEFAULT_NOTIFICATIONS: i64 = 50;
const MAX_NOTIFICATIONS: i64 = 200;

#[derive(Deserialize)]
pub(super) struct NotificationQuery {
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
pub(super) async fn notifications(
    State(context): State<AlertsContext>,
    query: Result<Query<NotificationQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<Json<Value>> {
    let Ok(Query(query)) = query else {
        return Err(AlertsApiError::InvalidBody(vec![
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
        return Err(AlertsApiError::InvalidBody(problems));
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
    .fetch_all(&context.writes)
    .await?;
    let next_before_id = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|row| row.id))
        .flatten();
    Ok(Json(
        json!({"notifications": rows, "next_before_id": next_before_id}),
    ))
}
