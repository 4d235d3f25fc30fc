//! Silences (`/api/v1/alerts/silences`): a rule, or one series of it, until a time,
//! with a reason. Transitions are still recorded while silenced; firing notifications
//! are not written (docs/alerts.md). Creating and ending one is audited.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::Row;

use super::{json_body, path_id, refuse_beyond, AlertsApiError, AlertsContext, Answer};
use crate::auth::{audit, Actor};
use crate::read::error::ReadError;
use crate::read::filters::parse_time;
use crate::read::{params_from, QueryPairs};

const MAX_REASON_CHARS: usize = 1_000;
const MAX_SERIES_KEY_CHARS: usize = 1_300;
/// The longest a silence may last.
const MAX_SILENCE_DAYS: i64 = 365;
/// The most silences in force at once (all of them are listed).
pub(super) const MAX_SILENCES_IN_FORCE: i64 = 10_000;

pub(super) async fn list_silences(
    State(context): State<AlertsContext>,
    query: QueryPairs,
) -> Answer<Json<Value>> {
    let params = params_from(query)?;
    params.finish().map_err(ReadError::InvalidQuery)?;
    let rows = sqlx::query(
        "SELECT id, rule_id, series_key, until, reason, created_at FROM alert_silences \
         WHERE until > now() ORDER BY until, id LIMIT $1",
    )
    .bind(MAX_SILENCES_IN_FORCE)
    .fetch_all(&context.writes)
    .await?;
    let silences = rows
        .iter()
        .map(silence_json)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(json!({ "silences": silences })))
}

fn silence_json(row: &sqlx::postgres::PgRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "id": row.try_get::<i64, _>("id")?,
        "rule_id": row.try_get::<i64, _>("rule_id")?,
        "series_key": row.try_get::<Option<String>, _>("series_key")?,
        "until": row.try_get::<DateTime<Utc>, _>("until")?,
        "reason": row.try_get::<String, _>("reason")?,
        "created_at": row.try_get::<DateTime<Utc>, _>("created_at")?,
    }))
}

/// `{"rule_id": 1, "series_key": "service=checkout" (optional), "until": "2h" or
/// RFC 3339, "reason": "..."}`.
pub(super) async fn create_silence(
    State(context): State<AlertsContext>,
    actor: Actor,
    body: Bytes,
) -> Answer<Response> {
    let body = json_body(&body)?;
    let mut problems = Vec::new();
    let now = Utc::now();
    let Some(fields) = body.as_object() else {
        return Err(AlertsApiError::InvalidBody(vec![
            "the silence must be a JSON object".to_owned(),
        ]));
    };
    for key in fields.keys() {
        if !["rule_id", "series_key", "until", "reason"].contains(&key.as_str()) {
            problems.push(format!(
                "{:?}: unknown field",
                crate::ingest::client_text::truncated(key, 64)
            ));
        }
    }
    let rule_id = fields.get("rule_id").and_then(Value::as_i64);
    if rule_id.is_none() {
        problems.push("rule_id: is required: a rule's id".to_owned());
    }
    let series_key = match fields.get("series_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) if key.chars().count() <= MAX_SERIES_KEY_CHARS => {
            Some(key.clone())
        }
        Some(_) => {
            problems.push(format!(
                "series_key: must be a series key of at most {MAX_SERIES_KEY_CHARS} characters"
            ));
            None
        }
    };
    let until = match fields.get("until") {
        Some(Value::String(text)) => {
            // An age reads as "from now": `2h` is two hours from now.
            let parsed = crate::read::filters::parse_age(text)
                .map(|age| now + age)
                .or_else(|| {
                    let mut params = crate::read::filters::Params::new(Vec::new());
                    parse_time("until", text, now, &mut params)
                });
            match parsed {
                Some(until)
                    if until > now && until <= now + chrono::Duration::days(MAX_SILENCE_DAYS) =>
                {
                    Some(until)
                }
                _ => None,
            }
        }
        _ => None,
    };
    if until.is_none() {
        problems.push(format!(
            "until: must be a time in the next {MAX_SILENCE_DAYS} days: RFC 3339, or a duration from now like 2h"
        ));
    }
    let reason = match fields.get("reason") {
        Some(Value::String(reason))
            if !reason.trim().is_empty()
                && reason.chars().count() <= MAX_REASON_CHARS
                && !reason.contains('\0') =>
        {
            Some(reason.clone())
        }
        _ => {
            problems.push(format!(
                "reason: is required: 1 to {MAX_REASON_CHARS} characters"
            ));
            None
        }
    };
    let (Some(rule_id), Some(until), Some(reason), true) =
        (rule_id, until, reason, problems.is_empty())
    else {
        return Err(AlertsApiError::InvalidBody(problems));
    };
    let mut tx = context.writes.begin().await?;
    refuse_beyond(
        &mut tx,
        crate::alerts::SILENCES_CREATE_LOCK,
        "SELECT count(*) FROM alert_silences WHERE until > now()",
        MAX_SILENCES_IN_FORCE,
        "silences in force",
    )
    .await?;
    let row = sqlx::query(
        "INSERT INTO alert_silences (rule_id, series_key, until, reason) \
         SELECT id, $2, $3, $4 FROM alert_rules WHERE id = $1 \
         RETURNING id, rule_id, series_key, until, reason, created_at",
    )
    .bind(rule_id)
    .bind(series_key)
    .bind(until)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AlertsApiError::InvalidBody(vec!["rule_id: no such rule".to_owned()]))?;
    let silence = silence_json(&row)?;
    let id: i64 = row.try_get("id")?;
    audit::record(
        &mut tx,
        &actor,
        "alert_silence.create",
        &target(id),
        silence.clone(),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(silence)).into_response())
}

pub(super) async fn delete_silence(
    State(context): State<AlertsContext>,
    actor: Actor,
    id: Result<Path<i64>, PathRejection>,
) -> Answer<StatusCode> {
    let id = path_id(id)?;
    let mut tx = context.writes.begin().await?;
    let deleted = sqlx::query("DELETE FROM alert_silences WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(AlertsApiError::NotFound("Silence not found"));
    }
    audit::record(
        &mut tx,
        &actor,
        "alert_silence.delete",
        &target(id),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn target(id: i64) -> String {
    format!("alert_silence:{id}")
}
