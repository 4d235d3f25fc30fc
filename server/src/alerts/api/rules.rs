//! Rules through the API (`/api/v1/alerts/rules`: list, create, show, replace,
//! delete; rules from the rules file are read-only: 409) and the preview of a rule body
//! over the last 24 hours (`POST /api/v1/alerts/rules/preview`, see `alerts::preview`).
//! A change is audited in its own transaction; deleting, disabling or re-kinding a rule
//! resolves its firing series there too.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};

use super::{
    json_body, path_id, refuse_beyond, saved_search, AlertsApiError, AlertsContext, Answer,
};
use crate::alerts::rules::{Rule, MAX_NAME_CHARS, MAX_RULES};
use crate::alerts::transitions::{self, Context};
use crate::auth::{audit, Actor};
use crate::read::error::ReadError;
use crate::read::{params_from, QueryPairs};

const RULE_COLUMNS: &str = "r.id, r.source, r.definition, r.enabled, r.next_eval_at, \
    r.last_eval_at, r.last_error, r.last_warning, r.created_at, r.updated_at, \
    (SELECT count(*) FROM alert_series s WHERE s.rule_id = r.id AND s.state = 'pending') AS pending, \
    (SELECT count(*) FROM alert_series s WHERE s.rule_id = r.id AND s.state = 'firing') AS firing";

/// A rule as the API shows it: its definition, id and source, and its evaluation.
fn rule_json(row: &sqlx::postgres::PgRow) -> Result<Value, sqlx::Error> {
    let mut rule: Value = row.try_get("definition")?;
    let evaluation = json!({
        "next_eval_at": row.try_get::<DateTime<Utc>, _>("next_eval_at")?,
        "last_eval_at": row.try_get::<Option<DateTime<Utc>>, _>("last_eval_at")?,
        "last_error": row.try_get::<Option<String>, _>("last_error")?,
        "last_warning": row.try_get::<Option<String>, _>("last_warning")?,
        "pending": row.try_get::<i64, _>("pending")?,
        "firing": row.try_get::<i64, _>("firing")?,
    });
    if let Some(fields) = rule.as_object_mut() {
        fields.insert("id".into(), json!(row.try_get::<i64, _>("id")?));
        fields.insert("source".into(), json!(row.try_get::<String, _>("source")?));
        fields.insert("evaluation".into(), evaluation);
        fields.insert(
            "created_at".into(),
            json!(row.try_get::<DateTime<Utc>, _>("created_at")?),
        );
        fields.insert(
            "updated_at".into(),
            json!(row.try_get::<DateTime<Utc>, _>("updated_at")?),
        );
    }
    Ok(rule)
}

async fn one_rule(conn: &mut PgConnection, id: i64) -> Answer<Value> {
    let row = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules r WHERE r.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(AlertsApiError::NotFound("Alert rule not found"))?;
    Ok(rule_json(&row)?)
}

pub(super) async fn list_rules(
    State(context): State<AlertsContext>,
    query: QueryPairs,
) -> Answer<Json<Value>> {
    let params = params_from(query)?;
    params.finish().map_err(ReadError::InvalidQuery)?;
    let rows = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM alert_rules r ORDER BY r.name"
    ))
    .fetch_all(&context.writes)
    .await?;
    let rules = rows.iter().map(rule_json).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "rules": rules })))
}

/// When the rule in the body would have fired over the last 24 hours.
pub(super) async fn preview_rule(
    State(context): State<AlertsContext>,
    actor: Actor,
    body: Bytes,
) -> Answer<Json<Value>> {
    let body = json_body(&body)?;
    let body = {
        let mut conn = context.writes.acquire().await?;
        saved_search::resolve(&mut conn, &actor, body).await?
    };
    let declared = context.read.declared_keys();
    let rule = Rule::parse(&body, Some(&declared)).map_err(AlertsApiError::InvalidBody)?;
    match crate::alerts::preview::preview(&context.read, &rule, Utc::now()).await {
        Ok(answer) => Ok(Json(answer)),
        Err(crate::alerts::preview::PreviewError::NotPreviewable(problem)) => {
            Err(AlertsApiError::InvalidBody(vec![problem]))
        }
        Err(crate::alerts::preview::PreviewError::Read(error)) => Err(error.into()),
    }
}

pub(super) async fn show_rule(
    State(context): State<AlertsContext>,
    id: Result<Path<i64>, PathRejection>,
) -> Answer<Json<Value>> {
    let id = path_id(id)?;
    let mut conn = context.writes.acquire().await?;
    Ok(Json(one_rule(&mut conn, id).await?))
}

/// The rule in `body` (its `saved_search` resolved for `actor`), with its channels
/// checked against `alert_channels`.
async fn valid_rule(
    context: &AlertsContext,
    conn: &mut PgConnection,
    actor: &Actor,
    body: &Bytes,
) -> Answer<Rule> {
    let body = json_body(body)?;
    let body = saved_search::resolve(&mut *conn, actor, body).await?;
    let declared = context.read.declared_keys();
    let rule = Rule::parse(&body, Some(&declared)).map_err(AlertsApiError::InvalidBody)?;
    let known: Vec<String> =
        sqlx::query_scalar("SELECT name FROM alert_channels WHERE name = ANY($1)")
            .bind(&rule.channels)
            .fetch_all(conn)
            .await?;
    let unknown: Vec<String> = rule
        .channels
        .iter()
        .filter(|name| !known.contains(name))
        .map(|name| format!("channels: unknown channel {name:?} (create it first)"))
        .collect();
    if !unknown.is_empty() {
        return Err(AlertsApiError::InvalidBody(unknown));
    }
    Ok(rule)
}

fn name_conflict(error: sqlx::Error, name: &str) -> AlertsApiError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => AlertsApiError::Conflict(format!(
            "a rule named {:?} exists already",
            crate::ingest::client_text::truncated(name, MAX_NAME_CHARS)
        )),
        _ => error.into(),
    }
}

pub(super) async fn create_rule(
    State(context): State<AlertsContext>,
    actor: Actor,
    body: Bytes,
) -> Answer<Response> {
    let mut tx = context.writes.begin().await?;
    let rule = valid_rule(&context, &mut tx, &actor, &body).await?;
    refuse_beyond(
        &mut tx,
        crate::alerts::RULES_CREATE_LOCK,
        "SELECT count(*) FROM alert_rules",
        MAX_RULES,
        "rules",
    )
    .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alert_rules (name, source, definition, enabled, interval_seconds) \
         VALUES ($1, 'api', $2, $3, $4) RETURNING id",
    )
    .bind(&rule.name)
    .bind(rule.to_json())
    .bind(rule.enabled)
    .bind(rule.interval_seconds())
    .fetch_one(&mut *tx)
    .await
    .map_err(|error| name_conflict(error, &rule.name))?;
    audit::record(
        &mut tx,
        &actor,
        "alert_rule.create",
        &target(id),
        rule.to_json(),
    )
    .await?;
    let shown = one_rule(&mut tx, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// Locks the rule `id` for a change; refuses file rules.
async fn lock_api_rule(conn: &mut PgConnection, id: i64) -> Answer<Rule> {
    let row = sqlx::query("SELECT source, definition FROM alert_rules WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(AlertsApiError::NotFound("Alert rule not found"))?;
    let source: String = row.try_get("source")?;
    if source == "file" {
        return Err(AlertsApiError::Conflict(
            "this rule comes from the rules file (LOG_INGESTION_ALERT_RULES_FILE): change it there"
                .to_owned(),
        ));
    }
    let definition: Value = row.try_get("definition")?;
    Rule::parse(&definition, None).map_err(|problems| {
        AlertsApiError::Read(ReadError::Api(crate::error::ApiError::Internal(format!(
            "a stored rule is invalid: {}",
            problems.join("; ")
        ))))
    })
}

pub(super) async fn replace_rule(
    State(context): State<AlertsContext>,
    actor: Actor,
    id: Result<Path<i64>, PathRejection>,
    body: Bytes,
) -> Answer<Json<Value>> {
    let id = path_id(id)?;
    let mut tx = context.writes.begin().await?;
    let rule = valid_rule(&context, &mut tx, &actor, &body).await?;
    let old = lock_api_rule(&mut tx, id).await?;
    if !rule.enabled || old.kind != rule.kind || old.group_by != rule.group_by {
        // Its series end: a disabled rule is not evaluated, and other series replace these.
        resolve_all(&context, &mut tx, id, &old).await?;
    }
    sqlx::query(
        "UPDATE alert_rules SET name = $2, definition = $3, enabled = $4, interval_seconds = $5, \
         next_eval_at = now(), last_error = NULL, last_warning = NULL, updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(&rule.name)
    .bind(rule.to_json())
    .bind(rule.enabled)
    .bind(rule.interval_seconds())
    .execute(&mut *tx)
    .await
    .map_err(|error| name_conflict(error, &rule.name))?;
    audit::record(
        &mut tx,
        &actor,
        "alert_rule.update",
        &target(id),
        rule.to_json(),
    )
    .await?;
    let shown = one_rule(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(shown))
}

async fn resolve_all(
    context: &AlertsContext,
    conn: &mut PgConnection,
    id: i64,
    rule: &Rule,
) -> Result<(), sqlx::Error> {
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await?;
    transitions::resolve_all(
        conn,
        &Context {
            rule_id: id,
            rule,
            now,
            window_end: now,
            external_url: &context.external_url,
        },
    )
    .await
}

pub(super) async fn delete_rule(
    State(context): State<AlertsContext>,
    actor: Actor,
    id: Result<Path<i64>, PathRejection>,
) -> Answer<StatusCode> {
    let id = path_id(id)?;
    let mut tx = context.writes.begin().await?;
    let rule = lock_api_rule(&mut tx, id).await?;
    resolve_all(&context, &mut tx, id, &rule).await?;
    sqlx::query("DELETE FROM alert_rules WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &actor,
        "alert_rule.delete",
        &target(id),
        json!({"name": rule.name}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn target(id: i64) -> String {
    format!("alert_rule:{id}")
}
