//! `GET /api/v1/logs` (filtered, newest first, cursor-paginated by (timestamp, id)) and
//! `GET /api/v1/logs/{id}/context` (the entries just before and after one entry).
//! Owns the ordering, the page/cursor contract and the growing windows a page is read
//! over; filters come from `filters`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};

use super::cursor::Cursor;
use super::error::ReadError;
use super::filters::LogFilter;
use super::rows::{LogRow, COLUMNS};
use super::{params_from, QueryPairs, ReadConnection, ReadContext};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1_000;
const DEFAULT_CONTEXT: i64 = 10;
const MAX_CONTEXT: i64 = 200;
/// Surrounding entries are looked for at most this far from the entry, which keeps the
/// lookup on the time index instead of walking the whole table.
const CONTEXT_WINDOW: Duration = Duration::hours(1);

#[derive(Serialize)]
pub struct Page {
    logs: Vec<LogRow>,
    /// Pass as `cursor` to get the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

pub async fn list(
    State(context): State<ReadContext>,
    query: QueryPairs,
) -> Result<Json<Page>, ReadError> {
    let mut params = params_from(query)?;
    let filter = context.filter(&mut params, Utc::now());
    let limit = params
        .number("limit", 1, MAX_LIMIT)
        .unwrap_or(DEFAULT_LIMIT);
    let cursor = params.one("cursor").and_then(|text| {
        let cursor = Cursor::decode(&text);
        if cursor.is_none() {
            params.problem("cursor: not a cursor this server issued (pass next_cursor as is)");
        }
        cursor
    });
    params.finish().map_err(ReadError::InvalidQuery)?;

    let mut connection = context.reads.acquire().await?;
    let mut logs = newest_first(&mut connection, &filter, cursor, limit + 1, Utc::now()).await?;
    drop(connection);

    let next_cursor = if logs.len() as i64 > limit {
        logs.truncate(limit as usize);
        logs.last().map(|last| {
            Cursor {
                timestamp: last.timestamp,
                id: last.id,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(Json(Page { logs, next_cursor }))
}

/// How far back a page looks first, then next, before it reads its whole range. Rows
/// arrive in time order, so the newest page of a wide range is almost always within
/// the last hour; the BRIN index (plain mode) and chunk exclusion (TimescaleDB) make
/// a narrow window cheap, where the whole range would be sorted (2 s over 10M rows
/// across 30 days). A filter that matches little reads each window again before the
/// whole range: at most about 1.3 times the cost of the range alone.
const WINDOWS: [Duration; 4] = [
    Duration::hours(1),
    Duration::hours(6),
    Duration::days(1),
    Duration::days(7),
];

/// Up to `limit` rows matching `filter`, older than `cursor`, newest first: read over
/// growing windows ending at the cursor (or `until`, or `now`) until one holds `limit`
/// rows -- every row outside a window is older than every row inside it, so those are
/// the page -- and over the whole range otherwise.
async fn newest_first(
    connection: &mut ReadConnection,
    filter: &LogFilter,
    cursor: Option<Cursor>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Vec<LogRow>, ReadError> {
    let end = cursor.map(|c| c.timestamp).or(filter.until).unwrap_or(now);
    for window in WINDOWS {
        let since = end - window;
        if filter.since.is_some_and(|whole| whole >= since) {
            break;
        }
        let narrowed = LogFilter {
            since: Some(since),
            ..filter.clone()
        };
        let rows = page(connection, &narrowed, cursor, limit).await?;
        if rows.len() as i64 >= limit {
            return Ok(rows);
        }
    }
    page(connection, filter, cursor, limit).await
}

async fn page(
    connection: &mut ReadConnection,
    filter: &LogFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<LogRow>, ReadError> {
    let mut sql = QueryBuilder::<Postgres>::new("");
    push_page_query(&mut sql, filter, cursor, limit);
    connection
        .run(|conn| sql.build_query_as().fetch_all(conn))
        .await
}

/// Appends the statement behind one page: `limit` rows matching `filter`, older than
/// `cursor`, newest first.
fn push_page_query(
    sql: &mut QueryBuilder<'_, Postgres>,
    filter: &LogFilter,
    cursor: Option<Cursor>,
    limit: i64,
) {
    sql.push(format!("SELECT {COLUMNS} FROM logs WHERE TRUE"));
    filter.push_conditions(sql);
    if let Some(cursor) = cursor {
        sql.push(" AND (timestamp, id) < (")
            .push_bind(cursor.timestamp)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    sql.push(" ORDER BY timestamp DESC, id DESC LIMIT ")
        .push_bind(limit);
}

/// `EXPLAIN (FORMAT JSON)` of the statement `GET /api/v1/logs?{pairs}` runs for its
/// first page over the whole range (the last of its windows: see [`WINDOWS`]), with
/// `ANALYZE` when asked. Evidence that the indexes serve the
/// endpoint; used by the EXPLAIN test.
pub async fn explain_page_query(
    pool: &sqlx::PgPool,
    pairs: Vec<(String, String)>,
    metadata_indexes: &[String],
    analyze: bool,
) -> Result<serde_json::Value, ReadError> {
    let mut params = super::filters::Params::new(pairs);
    let filter = LogFilter::parse(&mut params, Utc::now()).with_metadata_indexes(metadata_indexes);
    let limit = params
        .number("limit", 1, MAX_LIMIT)
        .unwrap_or(DEFAULT_LIMIT);
    params.finish().map_err(ReadError::InvalidQuery)?;
    let mut sql = QueryBuilder::<Postgres>::new(super::explain_prefix(analyze));
    push_page_query(&mut sql, &filter, None, limit + 1);
    let (plan,): (serde_json::Value,) = sql.build_query_as().fetch_one(pool).await?;
    Ok(plan)
}

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
        Side::Older => (">=", entry.timestamp - CONTEXT_WINDOW, "<", "DESC"),
        Side::Newer => ("<=", entry.timestamp + CONTEXT_WINDOW, ">", "ASC"),
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
