//! The errors API's changes, behind admin keys like the rest of `/api/v1`:
//! `POST /api/v1/errors/{id}/status` and `POST /api/v1/errors/{id}/merge`. Owns their
//! bodies (each bounded, refused with a 400 naming the problem); the changes run on the
//! writers' pool (`changes`, audited under the request's actor), and a change answers
//! with the group as read back on the same pool.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::api_error::{group_id, Answer, ErrorsApiError, ErrorsContext, DEFAULT_RANGE};
use super::changes::{self, Change};
use super::groups::{self, Group, Range};
use crate::auth::Actor;

/// A status or merge body is a few dozen bytes.
const MAX_BODY_BYTES: usize = 4_096;
const MAX_IGNORE_COUNT: i64 = 1_000_000_000;

/// The change routes.
pub(super) fn routes() -> Router<ErrorsContext> {
    Router::new()
        .route("/api/v1/errors/{id}/status", post(set_status))
        .route("/api/v1/errors/{id}/merge", post(merge))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    status: String,
    #[serde(default)]
    ignore_until: Option<IgnoreBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreBody {
    #[serde(default)]
    count: Option<i64>,
    #[serde(default)]
    time: Option<String>,
}

/// The body as `T`, or a 400 saying why not.
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ErrorsApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        ErrorsApiError::InvalidBody(vec![format!(
            "the body must be JSON of the documented shape: {}",
            crate::ingest::client_text::describe_json_error(&error)
        )])
    })
}

/// The change a status body asks for, or every problem with it.
fn change_of(body: StatusBody, now: DateTime<Utc>) -> Result<Change, Vec<String>> {
    let mut problems = Vec::new();
    let change = match (body.status.as_str(), body.ignore_until) {
        ("resolved", None) => Change::Resolve,
        ("unresolved", None) => Change::Reopen,
        ("ignored", None) => Change::Ignore {
            count: None,
            time: None,
        },
        ("ignored", Some(IgnoreBody { count, time })) => {
            if count.is_some() == time.is_some() {
                problems.push("ignore_until: give either count or time".to_owned());
            }
            if let Some(count) = count {
                if !(1..=MAX_IGNORE_COUNT).contains(&count) {
                    problems.push(format!(
                        "ignore_until.count: must be from 1 to {MAX_IGNORE_COUNT}"
                    ));
                }
            }
            let time = time.and_then(|text| {
                match DateTime::parse_from_rfc3339(&text).map(|t| t.to_utc()) {
                    Ok(time) if time > now && crate::read::time_bounds::contains(time) => {
                        Some(time)
                    }
                    _ => {
                        problems
                            .push("ignore_until.time: must be a future RFC 3339 time".to_owned());
                        None
                    }
                }
            });
            Change::Ignore { count, time }
        }
        ("resolved" | "unresolved", Some(_)) => {
            problems.push("ignore_until: only with status ignored".to_owned());
            Change::Reopen
        }
        _ => {
            problems.push("status: must be unresolved, resolved or ignored".to_owned());
            Change::Reopen
        }
    };
    if problems.is_empty() {
        Ok(change)
    } else {
        Err(problems)
    }
}

/// The group `id` as the writers' pool reads it just after a change.
async fn changed_group(context: &ErrorsContext, id: i64) -> Answer<Group> {
    let now = Utc::now();
    let mut conn = context.writes.acquire().await?;
    let group = groups::one(
        &mut conn,
        id,
        Range {
            since: now - DEFAULT_RANGE,
            until: now,
        },
    )
    .await?
    .ok_or(ErrorsApiError::NotFound)?;
    Ok(Json(group))
}

async fn set_status(
    State(context): State<ErrorsContext>,
    actor: Actor,
    id: Result<Path<i64>, PathRejection>,
    bytes: Bytes,
) -> Answer<Group> {
    let id = group_id(id)?;
    let change = change_of(body(&bytes)?, Utc::now()).map_err(ErrorsApiError::InvalidBody)?;
    let root = changes::set_status(&context.writes, &actor, id, &change).await?;
    changed_group(&context, root).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    into: i64,
}

async fn merge(
    State(context): State<ErrorsContext>,
    actor: Actor,
    id: Result<Path<i64>, PathRejection>,
    bytes: Bytes,
) -> Answer<Group> {
    let id = group_id(id)?;
    let MergeBody { into } = body(&bytes)?;
    let target = changes::merge(&context.writes, &actor, id, into).await?;
    changed_group(&context, target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies_are_checked() {
        let now = Utc::now();
        let parse = |text: &str| change_of(serde_json::from_str(text).unwrap(), now);
        assert_eq!(parse(r#"{"status":"resolved"}"#), Ok(Change::Resolve));
        assert_eq!(
            parse(r#"{"status":"ignored","ignore_until":{"count":10}}"#),
            Ok(Change::Ignore {
                count: Some(10),
                time: None
            })
        );
        assert!(parse(r#"{"status":"ignored","ignore_until":{"count":0}}"#).is_err());
        assert!(parse(r#"{"status":"ignored","ignore_until":{}}"#).is_err());
        assert!(
            parse(r#"{"status":"ignored","ignore_until":{"time":"2000-01-01T00:00:00Z"}}"#)
                .is_err()
        );
        assert!(parse(r#"{"status":"resolved","ignore_until":{"count":3}}"#).is_err());
        assert!(parse(r#"{"status":"gone"}"#).is_err());
    }
}
