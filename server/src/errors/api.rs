//! The errors API, behind admin keys like the rest of `/api/v1`:
//! `GET /api/v1/errors` (groups, filtered and sorted, cursor-paginated),
//! `GET /api/v1/errors/{id}` (one group, its latest backtrace, buckets and who it
//! affected), `GET /api/v1/errors/{id}/occurrences` (its entries, as `/api/v1/logs`
//! pages them), and the changes of `change_api` (`POST /api/v1/errors/{id}/status` and
//! `/merge`). Owns the read parameters (each bounded, refused with a 400 naming the
//! problem) and the JSON shapes; reads run on the read side's connections, changes on
//! the writers' pool (read connections are read-only).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{middleware, Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::api_error::{group_id, Answer, DEFAULT_RANGE};
pub use super::api_error::{ErrorsApiError, ErrorsContext};
use super::change_api;
use super::fingerprint::{backtrace_of, exception_message_of};
use super::groups::{self, Bucket, Group, ListFilter, Range, Sort};
use crate::read::cursor::{cursor_param, next_page, Cursor, NOT_ISSUED};
use crate::read::error::ReadError;
use crate::read::filters::{parse_services, parse_time, Params};
use crate::read::rows::LogRow;
use crate::read::search::{newest_first, DEFAULT_LIMIT, MAX_LIMIT};
use crate::read::{self, params_from, AdminKeys, QueryPairs, ReadContext};
use crate::storage::error_fold;

const DEFAULT_GROUPS: i64 = 50;
const MAX_GROUPS: i64 = 200;
const TREND_BUCKETS: i64 = 24;
const DEFAULT_BUCKETS: i64 = 60;
const MAX_BUCKETS: i64 = 200;
const MAX_TEXT_CHARS: usize = 1_000;
const STATUSES: [&str; 3] = ["unresolved", "resolved", "ignored"];

/// The errors API's routes, behind `admin_keys`.
pub fn router<S>(read: ReadContext, writes: PgPool, admin_keys: AdminKeys) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let limits = read.query_limits();
    let changes = change_api::routes();
    Router::new()
        .route("/api/v1/errors", get(list))
        .route("/api/v1/errors/{id}", get(show))
        .route("/api/v1/errors/{id}/occurrences", get(occurrences))
        .merge(changes)
        .route_layer(middleware::from_fn_with_state(
            limits,
            read::bound_query_shape,
        ))
        .route_layer(middleware::from_fn_with_state(
            std::sync::Arc::new(admin_keys),
            read::auth::require_admin_key,
        ))
        .with_state(ErrorsContext { read, writes })
}

/// `since`/`until` (as `/api/v1/logs` reads them), by default the last 24 hours.
fn range(params: &mut Params, now: DateTime<Utc>) -> Range {
    let since = params
        .one("since")
        .and_then(|text| parse_time("since", &text, now, params));
    let until = params
        .one("until")
        .and_then(|text| parse_time("until", &text, now, params))
        .unwrap_or(now);
    let since = since.unwrap_or(until - DEFAULT_RANGE);
    if since >= until {
        params.problem("since: must be earlier than until");
    }
    Range { since, until }
}

/// The list's cursor: the sort's code, then the last row's sort key and id in hex.
fn encode_cursor(sort: Sort, (key, id): (i64, i64)) -> String {
    format!("{}{:016x}{:016x}", sort.code(), key as u64, id as u64)
}

fn decode_cursor(sort: Sort, text: &str) -> Option<(i64, i64)> {
    let rest = text.strip_prefix(sort.code())?;
    if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let key = u64::from_str_radix(&rest[..16], 16).ok()? as i64;
    let id = u64::from_str_radix(&rest[16..], 16).ok()? as i64;
    Some((key, id))
}

/// `%text%` for ILIKE, with its wildcards matching themselves.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[derive(Serialize)]
struct GroupPage {
    groups: Vec<Group>,
    next_cursor: Option<String>,
}

async fn list(State(context): State<ErrorsContext>, query: QueryPairs) -> Answer<GroupPage> {
    let mut params = params_from(query)?;
    let now = Utc::now();
    let services = parse_services(&mut params);
    let range = range(&mut params, now);
    let mut statuses = params.many("status");
    statuses.sort();
    statuses.dedup();
    if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(&s.as_str())) {
        params.problem(format!(
            "status: must be unresolved, resolved or ignored (got {:?})",
            crate::ingest::client_text::truncated(
                bad,
                crate::ingest::client_text::MAX_QUOTED_CHARS
            )
        ));
    }
    let text = params.one("q").and_then(|text| {
        if text.chars().count() > MAX_TEXT_CHARS {
            params.problem(format!("q: at most {MAX_TEXT_CHARS} characters"));
            None
        } else {
            Some((contains_pattern(&text), text))
        }
    });
    let sort = match params.one("sort") {
        None => Sort::LastSeen,
        Some(text) => Sort::parse(&text).unwrap_or_else(|| {
            params.problem("sort: must be last_seen, count or first_seen");
            Sort::LastSeen
        }),
    };
    let limit = params
        .number("limit", 1, MAX_GROUPS)
        .unwrap_or(DEFAULT_GROUPS);
    let after = cursor_param(
        &mut params,
        |text| decode_cursor(sort, text),
        "cursor: not a cursor this server issued for this sort (pass next_cursor as is)",
    );
    params.finish().map_err(ReadError::InvalidQuery)?;
    let filter = ListFilter {
        services,
        statuses,
        text,
        sort,
        after,
        limit: limit + 1,
    };

    // The occurrences committed so far into their groups: counts read are exact.
    error_fold::fold(&context.writes).await?;
    let mut connection = context.read.reads().acquire().await?;
    let mut found = connection
        .run(|conn| groups::list(conn, &filter, range))
        .await?;
    let next_cursor = next_page(&mut found, limit, |last| {
        encode_cursor(sort, last.position())
    });
    let shown: Vec<&Group> = found.iter().collect();
    let trends = connection
        .run(|conn| groups::buckets(conn, &shown, range, TREND_BUCKETS))
        .await?;
    drop(connection);
    for (group, trend) in found.iter_mut().zip(trends) {
        group.trend = Some(trend);
    }
    Ok(Json(GroupPage {
        groups: found,
        next_cursor,
    }))
}

#[derive(Serialize)]
struct Frame {
    frame: String,
    in_app: bool,
}

#[derive(Serialize)]
struct Affected {
    request_ids: i64,
    user_ids: i64,
}

#[derive(Serialize)]
struct GroupDetail {
    #[serde(flatten)]
    group: Group,
    backtrace: Vec<Frame>,
    latest_log_id: Option<i64>,
    exception_message: Option<String>,
    buckets: Vec<Bucket>,
    affected: Affected,
}

async fn show(
    State(context): State<ErrorsContext>,
    id: Result<Path<i64>, PathRejection>,
    query: QueryPairs,
) -> Answer<GroupDetail> {
    let id = group_id(id)?;
    let mut params = params_from(query)?;
    let range = range(&mut params, Utc::now());
    let slots = params
        .number("buckets", 1, MAX_BUCKETS)
        .unwrap_or(DEFAULT_BUCKETS);
    params.finish().map_err(ReadError::InvalidQuery)?;

    error_fold::fold(&context.writes).await?;
    let mut connection = context.read.reads().acquire().await?;
    let group = connection
        .run(|conn| groups::one(conn, id, range))
        .await?
        .ok_or(ErrorsApiError::NotFound)?;
    let latest = connection
        .run(|conn| groups::latest_occurrence(conn, &group))
        .await?;
    let this = [&group];
    let buckets = connection
        .run(|conn| groups::buckets(conn, &this, range, slots))
        .await?
        .pop()
        .unwrap_or_default();
    let (request_ids, user_ids) = connection
        .run(|conn| groups::affected(conn, &group, range))
        .await?;
    drop(connection);
    let metadata = latest
        .as_ref()
        .and_then(|(_, metadata)| metadata.as_deref());
    Ok(Json(GroupDetail {
        backtrace: metadata
            .map(backtrace_of)
            .unwrap_or_default()
            .into_iter()
            .map(|(frame, in_app)| Frame { frame, in_app })
            .collect(),
        exception_message: metadata.and_then(exception_message_of),
        latest_log_id: latest.map(|(id, _)| id),
        buckets,
        affected: Affected {
            request_ids,
            user_ids,
        },
        group,
    }))
}

#[derive(Serialize)]
struct OccurrencePage {
    logs: Vec<LogRow>,
    next_cursor: Option<String>,
}

async fn occurrences(
    State(context): State<ErrorsContext>,
    id: Result<Path<i64>, PathRejection>,
    query: QueryPairs,
) -> Answer<OccurrencePage> {
    let id = group_id(id)?;
    let mut params = params_from(query)?;
    for owned in ["service", "fingerprint"] {
        if !params.many(owned).is_empty() {
            params.problem(format!("{owned}: the group decides it here"));
        }
    }
    let now = Utc::now();
    let mut filter = context.read.filter(&mut params, now);
    let limit = params
        .number("limit", 1, MAX_LIMIT)
        .unwrap_or(DEFAULT_LIMIT);
    let cursor = cursor_param(&mut params, Cursor::decode, NOT_ISSUED);
    params.finish().map_err(ReadError::InvalidQuery)?;

    let mut connection = context.read.reads().acquire().await?;
    let all_time = Range {
        since: now - DEFAULT_RANGE,
        until: now,
    };
    let group = connection
        .run(|conn| groups::one(conn, id, all_time))
        .await?
        .ok_or(ErrorsApiError::NotFound)?;
    let mut services = group.member_services.clone();
    services.sort();
    services.dedup();
    let mut fingerprints = group.member_fingerprints.clone();
    fingerprints.sort();
    fingerprints.dedup();
    filter.services = services;
    filter.fingerprints = fingerprints;
    let mut logs = newest_first(
        &mut connection,
        context.read.mode(),
        &filter,
        cursor,
        limit + 1,
        now,
    )
    .await?;
    drop(connection);
    let next_cursor = next_page(&mut logs, limit, |last| last.position().encode());
    Ok(Json(OccurrencePage { logs, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_their_sort() {
        let cursor = encode_cursor(Sort::Count, (-5, 42));
        assert_eq!(decode_cursor(Sort::Count, &cursor), Some((-5, 42)));
        assert_eq!(decode_cursor(Sort::LastSeen, &cursor), None);
        assert_eq!(decode_cursor(Sort::Count, "c123"), None);
    }
}
