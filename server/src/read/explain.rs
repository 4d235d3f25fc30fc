//! `EXPLAIN` of the statements the read endpoints run, built by the same code: the
//! evidence the query-plan tests read (`tests/read/explain*.rs`). Only in builds with
//! the `test-support` feature (the test support crate turns it on) and in unit tests.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use super::error::ReadError;
use super::filters::{LogFilter, Params};
use super::histogram::HistogramRequest;
use super::search::{push_page_query, PageReads, DEFAULT_LIMIT, MAX_LIMIT};
use crate::storage::StorageMode;

/// `EXPLAIN (...) ` with `ANALYZE` (and buffers) when asked.
fn explain_prefix(analyze: bool) -> &'static str {
    if analyze {
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
    } else {
        "EXPLAIN (FORMAT JSON) "
    }
}

/// `EXPLAIN (FORMAT JSON)` of the statement `GET /api/v1/logs?{pairs}` runs for its
/// first page as one statement over the whole range (the page itself is read in
/// windows: see `search::PageReads` and [`explain_page_windows`]), with
/// `ANALYZE` when asked. Evidence that the indexes serve the
/// endpoint; used by the EXPLAIN test.
pub async fn explain_page_query(
    pool: &sqlx::PgPool,
    pairs: Vec<(String, String)>,
    metadata_indexes: &[String],
    analyze: bool,
) -> Result<serde_json::Value, ReadError> {
    let mut params = Params::new(pairs);
    let filter = LogFilter::parse(&mut params, Utc::now()).with_metadata_indexes(metadata_indexes);
    let limit = params
        .number("limit", 1, MAX_LIMIT)
        .unwrap_or(DEFAULT_LIMIT);
    params.finish().map_err(ReadError::InvalidQuery)?;
    let mut sql = QueryBuilder::<Postgres>::new(explain_prefix(analyze));
    push_page_query(&mut sql, &filter, None, limit + 1);
    let (plan,): (serde_json::Value,) = sql.build_query_as().fetch_one(pool).await?;
    Ok(plan)
}

/// One statement of a page, explained: the time bounds it read (`None`: unbounded on
/// that side) and its `EXPLAIN (ANALYZE, FORMAT JSON)`.
pub struct ExplainedWindow {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub plan: serde_json::Value,
}

/// Every statement `GET /api/v1/logs?{pairs}` runs for its first page (one per window
/// read, in order; `now` stands in for the request's time), explained with `ANALYZE`:
/// evidence for the tests of how many rows a page reads.
pub async fn explain_page_windows(
    pool: &sqlx::PgPool,
    pairs: Vec<(String, String)>,
    metadata_indexes: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<ExplainedWindow>, ReadError> {
    let mut params = Params::new(pairs);
    let filter = LogFilter::parse(&mut params, now).with_metadata_indexes(metadata_indexes);
    let limit = params
        .number("limit", 1, MAX_LIMIT)
        .unwrap_or(DEFAULT_LIMIT);
    params.finish().map_err(ReadError::InvalidQuery)?;
    let mut reads = PageReads::new(&filter, None, limit + 1, now);
    let mut explained = Vec::new();
    let mut found = 0;
    while let Some((window, cursor, wanted)) = reads.next(found) {
        let mut sql = QueryBuilder::<Postgres>::new(explain_prefix(true));
        push_page_query(&mut sql, &window, cursor, wanted);
        let (plan,): (serde_json::Value,) = sql.build_query_as().fetch_one(pool).await?;
        found = plan[0]["Plan"]["Actual Rows"]
            .as_u64()
            .map_or(0, |rows| rows as usize);
        explained.push(ExplainedWindow {
            since: window.since,
            until: window.until,
            plan,
        });
    }
    Ok(explained)
}

/// `EXPLAIN (FORMAT JSON)` of the statement `GET /api/v1/logs/histogram?{pairs}` runs,
/// with `ANALYZE` when asked: evidence for the EXPLAIN tests that it reads the rollups.
pub async fn explain_histogram_query(
    pool: &sqlx::PgPool,
    mode: StorageMode,
    pairs: Vec<(String, String)>,
    analyze: bool,
) -> Result<serde_json::Value, ReadError> {
    let mut params = Params::new(pairs);
    let now = Utc::now();
    let filter = LogFilter::parse(&mut params, now);
    let request = HistogramRequest::parse(filter, params, now)?;
    let mut sql = QueryBuilder::<Postgres>::new(explain_prefix(analyze));
    request.push_query(&mut sql, mode);
    let (plan,): (serde_json::Value,) = sql.build_query_as().fetch_one(pool).await?;
    Ok(plan)
}

/// `EXPLAIN (FORMAT JSON)` of the statement `GET /api/v1/services?{pairs}` runs, with
/// `ANALYZE` when asked: evidence for the EXPLAIN tests that it reads the rollups.
pub async fn explain_services_query(
    pool: &sqlx::PgPool,
    pairs: Vec<(String, String)>,
    analyze: bool,
) -> Result<serde_json::Value, ReadError> {
    let mut params = Params::new(pairs);
    let filter = LogFilter::parse(&mut params, Utc::now());
    params.finish().map_err(ReadError::InvalidQuery)?;
    let mut sql = QueryBuilder::<Postgres>::new(explain_prefix(analyze));
    super::services::push_query(&mut sql, &filter);
    let (plan,): (serde_json::Value,) = sql.build_query_as().fetch_one(pool).await?;
    Ok(plan)
}
