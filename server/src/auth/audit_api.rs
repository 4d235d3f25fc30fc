//! `GET /api/v1/audit`, for admins: the audit log newest first, `limit` rows a page
//! (default 50, at most 200), the next page by `before=<id>` (keyset, so a page costs
//! the same however deep), with `next_before` when there is more.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::admission::SignIn;
use crate::error::ApiError;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[derive(Deserialize)]
pub struct Page {
    limit: Option<i64>,
    before: Option<i64>,
}

#[derive(Serialize, sqlx::FromRow)]
struct Entry {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    target: String,
    details: Value,
}

/// `GET /api/v1/audit`.
pub async fn list(
    State(sign_in): State<Arc<SignIn>>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(page) = page.map_err(|rejection| {
        ApiError::Validation(vec![format!(
            "limit and before must be whole numbers ({})",
            crate::ingest::client_text::truncated(&rejection.body_text(), 200)
        )])
    })?;
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Validation(vec![format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )]));
    }
    let mut entries: Vec<Entry> = sqlx::query_as(
        "SELECT id, at, actor, action, target, details FROM audit_log \
         WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(page.before)
    .bind(limit + 1)
    .fetch_all(&sign_in.pool)
    .await
    .map_err(|error| ApiError::Internal(format!("reading the audit log: {error}")))?;
    let more = entries.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    entries.truncate(usize::try_from(limit).unwrap_or(0));
    let next_before = more.then(|| entries.last().map(|entry| entry.id)).flatten();
    Ok(Json(json!({ "entries": entries, "next_before": next_before })).into_response())
}
