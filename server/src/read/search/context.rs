//! `GET /api/v1/logs/{id}/context`: one entry and its neighbours in (timestamp, id)
//! order, within an hour either side, under the usual content filters.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};

use crate::read::error::ReadError;
use crate::read::filters::LogFilter;
use crate::read::rows::{LogRow, COLUMNS};
use crate::read::time_bounds;
use crate::read::{params_from, QueryPairs, ReadConnection, ReadContext};

const DEFAULT_CONTEXT: i64 = 10;
const MAX_CONTEXT: i64 = 200;
/// Surrounding entries are looked for at most this far from the entry, which keeps the
/// lookup on the time index instead of walking the whole table.
const CONTEXT_WINDOW: Duration = Duration::hours(1);

#[derive(Serialize)]
pub struct Surroundings {
    entry: LogRow,
    /// Up to `before` entries older than `entry`, newest first.
    before: Vec<LogRow>,
    /// Up to `after` entries newer than `entry`, oldest first.
    after: Vec<LogRow>,
}

/// The entry `id` and its neighbours in (timestamp, id) order within an hour either
/// side, restricted by the usual content filters (service, level, q, meta.*).
/// `timestamp` (the entry's own, as returned by the API) makes the lookup cheap on a
/// large table; `before`/`after` say how many neighbours (default 10, max 200).
pub async fn context(
    State(context): State<ReadContext>,
    id: Result<Path<i64>, PathRejection>,
    query: QueryPairs,
) -> Result<Json<Surroundings>, ReadError> {
    let Path(id) = id.map_err(|_| ReadError::invalid("id: must be a whole number"))?;
    let mut params = params_from(query)?;
    let filter = context.filter(&mut params, Utc::now());
    let before = params
        .number("before", 0, MAX_CONTEXT)
        .unwrap_or(DEFAULT_CONTEXT);
    let after = params
        .number("after", 0, MAX_CONTEXT)
        .unwrap_or(DEFAULT_CONTEXT);
    let at = params.one("timestamp").and_then(|text| {
        let at = DateTime::parse_from_rfc3339(&text).ok();
        if at.is_none() {
            params.problem(format!(
                "timestamp: must be the entry's RFC 3339 timestamp (got {text:?})"
            ));
        }
        at.map(|at| at.with_timezone(&Utc))
    });
    params.finish().map_err(ReadError::InvalidQuery)?;

    let mut connection = context.reads.acquire().await?;
    let entry = find_entry(&mut connection, id, at).await?;
    let before = neighbours(&mut connection, &filter, &entry, Side::Older, before).await?;
    let after = neighbours(&mut connection, &filter, &entry, Side::Newer, after).await?;
    drop(connection);
    Ok(Json(Surroundings {
        entry,
        before,
        after,
    }))
}

/// The entry `id`, or 404. The btree `logs_id` (migration ...000003) finds the row by
/// id; the entry's timestamp, when given, also narrows the lookup (in TimescaleDB mode,
/// to one chunk).
async fn find_entry(
    connection: &mut ReadConnection,
    id: i64,
    at: Option<DateTime<Utc>>,
) -> Result<LogRow, ReadError> {
    let mut lookup =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM logs WHERE id = "));
    lookup.push_bind(id);
    if let Some(at) = at {
        lookup.push(" AND timestamp = ").push_bind(at);
    }
    let entry: Option<LogRow> = connection
        .run(|conn| lookup.build_query_as().fetch_optional(conn))
        .await?;
    entry.ok_or(ReadError::NotFound)
}

/// Which neighbours of an entry: older (returned newest first) or newer (oldest first).
#[derive(Clone, Copy)]
enum Side {
    Older,
    Newer,
}

/// Up to `count` entries matching `filter`'s content conditions on `side` of `entry`
/// in (timestamp, id) order, within CONTEXT_WINDOW of it, nearest first.
async fn neighbours(
    connection: &mut ReadConnection,
    filter: &LogFilter,
    entry: &LogRow,
    side: Side,
    count: i64,
) -> Result<Vec<LogRow>, ReadError> {
    let (bound, limit, beyond, order) = match side {
        Side::Older => (
            ">=",
            time_bounds::earlier_by(entry.timestamp, CONTEXT_WINDOW),
            "<",
            "DESC",
        ),
        Side::Newer => (
            "<=",
            time_bounds::later_by(entry.timestamp, CONTEXT_WINDOW),
            ">",
            "ASC",
        ),
    };
    let mut sql = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM logs WHERE "));
    sql.push(format!("timestamp {bound} "))
        .push_bind(limit)
        .push(format!(" AND (timestamp, id) {beyond} ("))
        .push_bind(entry.timestamp)
        .push(", ")
        .push_bind(entry.id)
        .push(")");
    filter.push_content_conditions(&mut sql);
    sql.push(format!(" ORDER BY timestamp {order}, id {order} LIMIT "))
        .push_bind(count);
    connection
        .run(|conn| sql.build_query_as().fetch_all(conn))
        .await
}
