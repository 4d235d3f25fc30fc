//! `GET /api/v1/logs` (filtered, newest first, cursor-paginated by (timestamp, id)) and
//! `GET /api/v1/logs/{id}/context` (the entries just before and after one entry).
//! Owns the ordering and the page/cursor contract; the disjoint, doubling windows a
//! page is read over are `windows`'s, the context endpoint `context`'s, and filters
//! come from `filters`.

mod context;
mod windows;

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use serde::Serialize;

use super::cursor::{cursor_param, next_page, Cursor, NOT_ISSUED};
use super::error::ReadError;
use super::rows::LogRow;
use super::{params_from, QueryPairs, ReadContext};

pub use context::context;
pub(crate) use windows::{newest_first, newest_values};
#[cfg(feature = "test-support")]
pub(super) use windows::{push_page_query, PageReads};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1_000;

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
    let cursor = cursor_param(&mut params, Cursor::decode, NOT_ISSUED);
    params.finish().map_err(ReadError::InvalidQuery)?;

    let mut connection = context.reads.acquire().await?;
    let mut logs = newest_first(
        &mut connection,
        context.mode,
        &filter,
        cursor,
        limit + 1,
        Utc::now(),
    )
    .await?;
    drop(connection);

    let next_cursor = next_page(&mut logs, limit, |last| last.position().encode());
    Ok(Json(Page { logs, next_cursor }))
}
