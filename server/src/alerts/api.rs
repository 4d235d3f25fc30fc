//! The alerts API behind admin keys: rules (`/api/v1/alerts/rules`: list, create,
//! show, replace, delete; rules from the rules file are read-only), the preview of a
//! rule over the last 24 hours (`POST /api/v1/alerts/rules/preview`, see `preview`),
//! silences (`/api/v1/alerts/silences`), the series pending or firing now
//! (`/api/v1/alerts`) and the history of transitions (`/api/v1/alerts/history`). Owns
//! the bodies (bounded, refused with a 400 naming each bad field) and the JSON shapes.
//! It runs on the writers' pool (these tables are small, and an answer shows what was
//! just written); the preview reads through the read side.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{middleware, Json, Router};
use chrono::{DateTime, Utc};
use log_ingestion_wire::ErrorBody;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool, Row};

use super::rules::{Rule, MAX_NAME_CHARS, MAX_RULES};
use super::transitions::{self, Context};
use crate::read::error::ReadError;
use crate::read::filters::parse_time;
use crate::read::{self, params_from, AdminKeys, QueryPairs, ReadContext};

/// A rule is a few KiB at most (its strings are bounded).
const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_REASON_CHARS: usize = 1_000;
const MAX_SERIES_KEY_CHARS: usize = 1_300;
const DEFAULT_HISTORY: i64 = 100;
const MAX_HISTORY: i64 = 1_000;
/// The longest a silence may last.
const MAX_SILENCE_DAYS: i64 = 365;

/// What the alerts handlers need.
#[derive(Clone)]
pub struct AlertsContext {
    pub read: ReadContext,
    pub writes: PgPool,
    /// The explorer's base URL in alerts (for the resolves a deletion writes).
    pub external_url: String,
}

/// The alerts API's routes, behind `admin_keys`.
pub fn router<S>(context: AlertsContext, admin_keys: AdminKeys) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let limits = context.read.query_limits();
    Router::new()
        .route("/api/v1/alerts", get(firing))
        .route("/api/v1/alerts/history", get(history))
        .route("/api/v1/alerts/rules", get(list_rules).post(create_rule))
        .route("/api/v1/alerts/rules/preview", post(preview_rule))
        .route(
            "/api/v1/alerts/rules/{id}",
            get(show_rule).put(replace_rule).delete(delete_rule),
        )
        .route(
            "/api/v1/alerts/silences",
            get(list_silences).post(create_silence),
        )
        .route("/api/v1/alerts/silences/{id}", delete(delete_silence))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(
            limits,
            read::bound_query_shape,
        ))
        .route_layer(middleware::from_fn_with_state(
            std::sync::Arc::new(admin_keys),
            read::auth::require_admin_key,
        ))
        .with_state(context)
}

/// A refusal of the alerts API.
#[derive(Debug)]
pub enum AlertsApiError {
    Read(ReadError),
    NotFound(&'static str),
    /// A body that does not make a rule or silence; one line per problem.
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
                Some(json!(problems)),
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

async fn list_rules(
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
async fn preview_rule(State(context): State<AlertsContext>, body: Bytes) -> Answer<Json<Value>> {
    let body = json_body(&body)?;
    let declared = context.read.declared_keys();
    let rule = Rule::parse(&body, Some(&declared)).map_err(AlertsApiError::InvalidBody)?;
    match super::preview::preview(&context.read, &rule, Utc::now()).await {
        Ok(answer) => Ok(Json(answer)),
        Err(super::preview::PreviewError::NotPreviewable(problem)) => {
            Err(AlertsApiError::InvalidBody(vec![problem]))
        }
        Err(super::preview::PreviewError::Read(error)) => Err(error.into()),
    }
}

async fn show_rule(
    State(context): State<AlertsContext>,
    id: Result<Path<i64>, PathRejection>,
) -> Answer<Json<Value>> {
    let id = path_id(id)?;
    let mut conn = context.writes.acquire().await?;
    Ok(Json(one_rule(&mut conn, id).await?))
}

/// The rule in `body`, with its channels checked against `alert_channels`.
async fn valid_rule(
    context: &AlertsContext,
    conn: &mut PgConnection,
    body: &Bytes,
) -> Answer<Rule> {
    let body = json_body(body)?;
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

async fn create_rule(State(context): State<AlertsContext>, body: Bytes) -> Answer<Response> {
    let mut tx = context.writes.begin().await?;
    let rule = valid_rule(&context, &mut tx, &body).await?;
    // One rule is created at a time, so the bound holds under concurrent requests.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(super::RULES_CREATE_LOCK)
        .execute(&mut *tx)
        .await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_rules")
        .fetch_one(&mut *tx)
        .await?;
    if count >= MAX_RULES {
        return Err(AlertsApiError::Conflict(format!(
            "at most {MAX_RULES} rules; delete one first"
        )));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alert_rules (name, source, definition, enabled, interval_seconds) \
         VALUES ($1, 'api', $2, $3, $4) RETURNING id",
    )
    .bind(&rule.name)
    .bind(rule.to_json())
    .bind(rule.enabled)
    .bind(interval_seconds(&rule))
    .fetch_one(&mut *tx)
    .await
    .map_err(|error| name_conflict(error, &rule.name))?;
    let shown = one_rule(&mut tx, id).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

pub(crate) fn interval_seconds(rule: &Rule) -> i32 {
    i32::try_from(rule.interval.num_seconds()).unwrap_or(i32::MAX)
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

async fn replace_rule(
    State(context): State<AlertsContext>,
    id: Result<Path<i64>, PathRejection>,
    body: Bytes,
) -> Answer<Json<Value>> {
    let id = path_id(id)?;
    let mut tx = context.writes.begin().await?;
    let rule = valid_rule(&context, &mut tx, &body).await?;
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
    .bind(interval_seconds(&rule))
    .execute(&mut *tx)
    .await
    .map_err(|error| name_conflict(error, &rule.name))?;
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

async fn delete_rule(
    State(context): State<AlertsContext>,
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
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The series pending or firing now, firing first.
async fn firing(State(context): State<AlertsContext>, query: QueryPairs) -> Answer<Json<Value>> {
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
                "fingerprint": super::alert::fingerprint(rule_id, &key),
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
async fn history(State(context): State<AlertsContext>, query: QueryPairs) -> Answer<Json<Value>> {
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

async fn list_silences(
    State(context): State<AlertsContext>,
    query: QueryPairs,
) -> Answer<Json<Value>> {
    let params = params_from(query)?;
    params.finish().map_err(ReadError::InvalidQuery)?;
    let rows = sqlx::query(
        "SELECT id, rule_id, series_key, until, reason, created_at FROM alert_silences \
         WHERE until > now() ORDER BY until, id LIMIT 10000",
    )
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
async fn create_silence(State(context): State<AlertsContext>, body: Bytes) -> Answer<Response> {
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
    let row = sqlx::query(
        "INSERT INTO alert_silences (rule_id, series_key, until, reason) \
         SELECT id, $2, $3, $4 FROM alert_rules WHERE id = $1 \
         RETURNING id, rule_id, series_key, until, reason, created_at",
    )
    .bind(rule_id)
    .bind(series_key)
    .bind(until)
    .bind(reason)
    .fetch_optional(&context.writes)
    .await?
    .ok_or_else(|| AlertsApiError::InvalidBody(vec!["rule_id: no such rule".to_owned()]))?;
    Ok((StatusCode::CREATED, Json(silence_json(&row)?)).into_response())
}

async fn delete_silence(
    State(context): State<AlertsContext>,
    id: Result<Path<i64>, PathRejection>,
) -> Answer<StatusCode> {
    let id = path_id(id)?;
    let deleted = sqlx::query("DELETE FROM alert_silences WHERE id = $1")
        .bind(id)
        .execute(&context.writes)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(AlertsApiError::NotFound("Silence not found"));
    }
    Ok(StatusCode::NO_CONTENT)
}
