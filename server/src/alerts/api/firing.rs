//! What fires now (`GET /api/v1/alerts`: the series pending or firing) and the history
//! of transitions (`GET /api/v1/alerts/history`), each with its notifications' delivery:
//! status, attempts and last error, never a channel's URL or secret.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::Row;

use super::{AlertsContext, Answer};
use crate::read::error::ReadError;
use crate::read::{params_from, QueryPairs};

const DEFAULT_HISTORY: i64 = 100;
const MAX_HISTORY: i64 = 1_000;

/// The series pending or firing now, firing first.
pub(super) async fn firing(
    State(context): State<AlertsContext>,
    query: QueryPairs,
) -> Answer<Json<Value>> {
    let params = params_from(query)?;
    params.finish().map_err(ReadError::InvalidQuery)?;
    let rows = sqlx::query(
        "SELECT s.rule_id, r.name, s.series_key, s.labels, s.state, s.active_since, s.fired_at, \
         s.value, s.last_notified_at, \
         EXISTS (SELECT 1 FROM alert_silences x WHERE x.rule_id = s.rule_id AND x.until > now() \
                 AND (x.series_key IS NULL OR x.series_key = s.series_key)) AS silenced \
         FROM alert_series s JOIN alert_rules r ON r.id = s.rule_id \
         ORDER BY s.state DESC, s.fired_at DESC NULLS LAST, r.name, s.series_key LIMIT 10000",
    )
    .fetch_all(&context.writes)
    .await?;
    let alerts = rows
        .iter()
        .map(|row| {
            let rule_id: i64 = row.try_get("rule_id")?;
            let key: String = row.try_get("series_key")?;
            Ok(json!({
                "rule_id": rule_id,
                "rule_name": row.try_get::<String, _>("name")?,
                "series_key": key,
                "fingerprint": crate::alerts::alert::fingerprint(rule_id, &key),
                "labels": row.try_get::<Value, _>("labels")?,
                "state": row.try_get::<String, _>("state")?,
                "active_since": row.try_get::<DateTime<Utc>, _>("active_since")?,
                "fired_at": row.try_get::<Option<DateTime<Utc>>, _>("fired_at")?,
                "value": row.try_get::<Option<f64>, _>("value")?,
                "notified": row.try_get::<Option<DateTime<Utc>>, _>("last_notified_at")?.is_some(),
                "silenced": row.try_get::<bool, _>("silenced")?,
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(json!({ "alerts": alerts })))
}

/// Transitions, newest first; `rule_id` narrows to one rule, `before` (an id) pages.
pub(super) async fn history(
    State(context): State<AlertsContext>,
    query: QueryPairs,
) -> Answer<Json<Value>> {
    let mut params = params_from(query)?;
    let rule_id = params.number("rule_id", 1, i64::MAX);
    let before = params.number("before", 1, i64::MAX);
    let limit = params
        .number("limit", 1, MAX_HISTORY)
        .unwrap_or(DEFAULT_HISTORY);
    params.finish().map_err(ReadError::InvalidQuery)?;
    let rows = sqlx::query(
        "SELECT t.id, t.rule_id, t.rule_name, t.series_key, t.transition, t.value, t.at, \
         t.notified, t.silenced, \
         (SELECT coalesce(jsonb_agg(jsonb_build_object('id', n.id, 'channel', n.channel, \
                 'status', n.status, 'attempts', n.attempts, 'delivered_at', n.delivered_at, \
                 'failed_at', n.failed_at, 'next_attempt_at', CASE WHEN n.status = 'pending' \
                 THEN n.next_attempt_at END, 'last_error', n.last_error) ORDER BY n.id), '[]') \
          FROM alert_notifications n WHERE n.transition_id = t.id) AS deliveries \
         FROM alert_transitions t \
         WHERE ($1::int8 IS NULL OR t.rule_id = $1) AND ($2::int8 IS NULL OR t.id < $2) \
         ORDER BY t.id DESC LIMIT $3",
    )
    .bind(rule_id)
    .bind(before)
    .bind(limit)
    .fetch_all(&context.writes)
    .await?;
    let transitions = rows
        .iter()
        .map(|row| {
            Ok(json!({
                "id": row.try_get::<i64, _>("id")?,
                "rule_id": row.try_get::<i64, _>("rule_id")?,
                "rule_name": row.try_get::<String, _>("rule_name")?,
                "series_key": row.try_get::<String, _>("series_key")?,
                "transition": row.try_get::<String, _>("transition")?,
                "value": row.try_get::<Option<f64>, _>("value")?,
                "at": row.try_get::<DateTime<Utc>, _>("at")?,
                "notified": row.try_get::<bool, _>("notified")?,
                "silenced": row.try_get::<bool, _>("silenced")?,
                "deliveries": row.try_get::<Value, _>("deliveries")?,
            }))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(json!({ "transitions": transitions })))
}
