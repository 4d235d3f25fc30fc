//! The disjoint, doubling windows a page of `search` is read over, newest first, and
//! the statements that read them (shared with the EXPLAIN evidence and the field
//! listings, so all read exactly the same windows).

use chrono::{DateTime, Duration, Utc};
use sqlx::{Connection, Postgres, QueryBuilder};

use crate::read::cursor::Cursor;
use crate::read::error::ReadError;
use crate::read::filters::LogFilter;
use crate::read::rows::{LogRow, COLUMNS};
use crate::read::sparse::{self, Guide};
use crate::read::time_bounds;
use crate::read::ReadConnection;
use crate::storage::StorageMode;

/// The first window a page reads: rows arrive in time order, so the newest page of a
/// wide range is almost always within the last hour; the BRIN index (plain mode) and
/// chunk exclusion (TimescaleDB) make a narrow window cheap, where the whole range would
/// be sorted (2 s over 10M rows across 30 days).
const FIRST_WINDOW: Duration = Duration::hours(1);
/// How many times a window doubles (1h, 2h, 4h, ... 256h: the newest ~21 days) before
/// the rest of the range is read at once. Bounds the statements of a page (10 at most)
/// when the range has no start.
const DOUBLINGS: u32 = 8;

/// One window of a page's range, half-open on timestamp: `[from, to)`. `from: None`
/// is the range's own start (`since`, or none); `to: None` is the page's own upper
/// bound (the cursor, `until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// The windows a page over `[since, end)` is read in, newest first: disjoint, each
/// twice as wide as the one before and ending where it starts, the last one reaching
/// `since` (or, past [`DOUBLINGS`], the range's start). Every row of a window sorts
/// before every row of the next, so a page is the windows' rows concatenated; a page
/// reads at most about twice the span it needs, and a filter that matches nothing
/// reads the range once. Ties at an edge belong to the newer window (`from` is
/// inclusive, the older window's `to` exclusive), so none is lost or read twice.
fn windows(end: DateTime<Utc>, since: Option<DateTime<Utc>>) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut to = None;
    let mut width = FIRST_WINDOW;
    for _ in 0..=DOUBLINGS {
        let from = time_bounds::earlier_by(to.unwrap_or(end), width);
        if since.is_some_and(|since| since >= from) {
            windows.push(Window { from: since, to });
            return windows;
        }
        // At PostgreSQL's earliest time: the rest of the range is the last window (a
        // bound below it would be refused as out of range).
        if from <= time_bounds::earliest() {
            break;
        }
        windows.push(Window {
            from: Some(from),
            to,
        });
        to = Some(from);
        width = width * 2;
    }
    windows.push(Window { from: since, to });
    windows
}

/// The statements of one page, in order: which window each reads and how many rows it
/// may still add. Shared by the handler and the EXPLAIN evidence, so both read exactly
/// the same windows.
pub(in crate::read) struct PageReads {
    filter: LogFilter,
    cursor: Option<Cursor>,
    windows: std::vec::IntoIter<Window>,
    first: bool,
    wanted: i64,
}

impl PageReads {
    pub(in crate::read) fn new(
        filter: &LogFilter,
        cursor: Option<Cursor>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Self {
        let end = match (cursor.map(|c| c.timestamp), filter.until) {
            (Some(at), Some(until)) => at.min(until),
            (at, until) => at.or(until).unwrap_or(now),
        };
        PageReads {
            filter: filter.clone(),
            cursor,
            windows: windows(end, filter.since).into_iter(),
            first: true,
            wanted: limit,
        }
    }

    /// The next statement's filter, cursor and limit; `None` once the page is full or
    /// the range read. `found` is how many rows the previous statement returned.
    pub(in crate::read) fn next(
        &mut self,
        found: usize,
    ) -> Option<(LogFilter, Option<Cursor>, i64)> {
        self.wanted -= found as i64;
        if self.wanted <= 0 {
            return None;
        }
        let window = self.windows.next()?;
        // The page's own bounds hold for the first window; each later one ends where
        // the one before it started, below the cursor and `until` already.
        let cursor = if std::mem::take(&mut self.first) {
            self.cursor
        } else {
            None
        };
        let filter = LogFilter {
            since: window.from.or(self.filter.since),
            until: window.to.or(self.filter.until),
            ..self.filter.clone()
        };
        Some((filter, cursor, self.wanted))
    }
}

/// Up to `limit` rows matching `filter`, older than `cursor`, newest first. A
/// service/level search reads only the stretch the hour rollup points at (`sparse`,
/// which also reads what TimescaleDB's aggregates do not count yet); any other over the
/// doubling windows ending at the cursor (or `until`, or `now`).
pub(crate) async fn newest_first(
    connection: &mut ReadConnection,
    mode: StorageMode,
    filter: &LogFilter,
    cursor: Option<Cursor>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Vec<LogRow>, ReadError> {
    if !sparse::applies(filter) {
        return in_windows(connection, filter, cursor, limit, now).await;
    }
    let end = match (cursor.map(|c| c.timestamp), filter.until) {
        (Some(at), Some(until)) => Some(at.min(until)),
        (at, until) => at.or(until),
    };
    let (guide, ranges) = sparse::guide(connection, mode, filter, end, limit).await?;
    let (from, to, rest_empty) = match guide {
        Guide::Nothing => return Ok(Vec::new()),
        Guide::Window {
            from,
            to,
            rest_empty,
        } => (from, to, rest_empty),
    };
    // The stretch the rollup points at, with the page's own bound (and cursor) when it
    // reaches it; then, if its hours counted entries outside the range, the plain
    // windows below it.
    let window = LogFilter {
        since: from.or(filter.since),
        until: to.or(filter.until),
        ..filter.clone()
    };
    let window_cursor = if to.is_none() { cursor } else { None };
    let mut logs = match ranges {
        Some(ranges) => page_in_ranges(connection, &window, &ranges, window_cursor, limit).await?,
        None => page(connection, &window, window_cursor, limit).await?,
    };
    let missing = limit - logs.len() as i64;
    if let (false, Some(from), true) = (rest_empty, from, missing > 0) {
        let below = LogFilter {
            until: Some(from),
            ..filter.clone()
        };
        logs.extend(in_windows(connection, &below, None, missing, now).await?);
    }
    Ok(logs)
}

/// [`newest_first`] over the doubling windows of [`windows`] alone.
async fn in_windows(
    connection: &mut ReadConnection,
    filter: &LogFilter,
    cursor: Option<Cursor>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Vec<LogRow>, ReadError> {
    let mut reads = PageReads::new(filter, cursor, limit, now);
    let mut logs = Vec::new();
    let mut found = 0;
    while let Some((window, cursor, wanted)) = reads.next(found) {
        let rows = page(connection, &window, cursor, wanted).await?;
        found = rows.len();
        logs.extend(rows);
    }
    Ok(logs)
}

/// The value `push_value` selects (a text expression over `logs`) of up to `limit`
/// rows matching `filter`, newest first, read over the same windows as a page.
pub(crate) async fn newest_values(
    connection: &mut ReadConnection,
    filter: &LogFilter,
    push_value: &(dyn Fn(&mut QueryBuilder<'_, Postgres>) + Sync),
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Option<String>>, ReadError> {
    let mut reads = PageReads::new(filter, None, limit, now);
    let mut values = Vec::new();
    let mut found = 0;
    while let Some((window, _, wanted)) = reads.next(found) {
        let mut sql = QueryBuilder::<Postgres>::new("SELECT ");
        push_value(&mut sql);
        sql.push(" FROM logs WHERE TRUE");
        window.push_conditions(&mut sql);
        sql.push(" ORDER BY timestamp DESC, id DESC LIMIT ")
            .push_bind(wanted);
        let rows: Vec<(Option<String>,)> = connection
            .run(|conn| sql.build_query_as().fetch_all(conn))
            .await?;
        found = rows.len();
        values.extend(rows.into_iter().map(|(value,)| value));
    }
    Ok(values)
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

/// Like [`page`], reading only within `ranges` (newest first): each range is one
/// bounded index read, so matches spread over a month cost their minutes, not the month.
/// Planned for its own values (never a cached generic plan) and without JIT: the planner
/// prices each range as a read of every chunk of the hypertable (TimescaleDB excludes
/// them at run time), so a hundred ranges pass `jit_above_cost`, and compiling the plan
/// took 160–250 ms of a 180–260 ms page where reading it took 15.
async fn page_in_ranges(
    connection: &mut ReadConnection,
    filter: &LogFilter,
    ranges: &[sparse::Range],
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<LogRow>, ReadError> {
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let (starts, ends): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = ranges.iter().copied().unzip();
    let mut sql = QueryBuilder::<Postgres>::new("SELECT l.* FROM unnest(");
    sql.push_bind(starts)
        .push("::timestamptz[], ")
        .push_bind(ends)
        .push("::timestamptz[]) AS w(range_from, range_to) CROSS JOIN LATERAL (");
    sql.push(format!(
        "SELECT {COLUMNS} FROM logs WHERE timestamp >= w.range_from AND timestamp < w.range_to"
    ));
    filter.push_conditions(&mut sql);
    if let Some(cursor) = cursor {
        sql.push(" AND (timestamp, id) < (")
            .push_bind(cursor.timestamp)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    sql.push(" ORDER BY timestamp DESC, id DESC LIMIT ")
        .push_bind(limit)
        .push(") AS l ORDER BY l.timestamp DESC, l.id DESC LIMIT ")
        .push_bind(limit);
    connection
        .run(|conn| async move {
            let mut tx = conn.begin().await?;
            sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
            let rows = sql
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(rows)
        })
        .await
}

/// Appends the statement behind one page: `limit` rows matching `filter`, older than
/// `cursor`, newest first.
pub(in crate::read) fn push_page_query(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn windows_never_reach_before_postgresqls_earliest_time() {
        let end = time_bounds::earliest() + Duration::minutes(90);
        let windows = windows(end, None);
        assert_eq!(windows.len(), 2, "{windows:?}");
        assert_eq!(windows[0].from, Some(end - Duration::hours(1)));
        assert_eq!(windows[1].from, None);
        assert_eq!(windows[1].to, windows[0].from);
        // A page ending exactly there is one window bounded by its end alone.
        let at_the_start = super::windows(time_bounds::earliest(), None);
        assert_eq!(
            at_the_start,
            [Window {
                from: None,
                to: None
            }]
        );
    }

    #[test]
    fn windows_double_and_each_ends_where_the_newer_one_starts() {
        let end = at("2026-02-01T00:00:00Z");
        let since = at("2026-01-02T00:00:00Z");
        let windows = windows(end, Some(since));
        assert_eq!(windows[0].to, None);
        assert_eq!(windows[0].from, Some(end - Duration::hours(1)));
        for pair in windows.windows(2) {
            assert_eq!(pair[1].to, pair[0].from, "{windows:?}");
        }
        let widths: Vec<i64> = windows[1..windows.len() - 1]
            .iter()
            .map(|w| (w.to.unwrap() - w.from.unwrap()).num_hours())
            .collect();
        assert_eq!(widths, [2, 4, 8, 16, 32, 64, 128, 256]);
        // 1 + 2 + ... + 256 = 511 hours; the rest of the 720 is the last window.
        assert_eq!(windows.last().unwrap().from, Some(since));
        assert_eq!(windows.len(), 10);
    }

    #[test]
    fn a_short_range_is_one_window_and_an_open_one_ends_in_the_rest() {
        let end = at("2026-02-01T00:00:00Z");
        let since = end - Duration::minutes(30);
        assert_eq!(
            windows(end, Some(since)),
            [Window {
                from: Some(since),
                to: None
            }]
        );
        // A `since` exactly on an edge ends the windows there, with no empty window after.
        let on_edge = windows(end, Some(end - Duration::hours(3)));
        assert_eq!(on_edge.len(), 2);
        assert_eq!(on_edge[1].from, Some(end - Duration::hours(3)));
        let open = windows(end, None);
        assert_eq!(open.len(), DOUBLINGS as usize + 2);
        assert_eq!(open.last().unwrap().from, None);
    }

    #[test]
    fn a_page_reads_each_window_for_what_it_still_lacks_and_stops_when_full() {
        let now = at("2026-02-01T00:00:00Z");
        let filter = LogFilter {
            since: Some(now - Duration::days(30)),
            ..LogFilter::default()
        };
        let cursor = Cursor {
            timestamp: now - Duration::hours(2),
            id: 7,
        };
        let mut reads = PageReads::new(&filter, Some(cursor), 101, now);
        let (first, first_cursor, wanted) = reads.next(0).unwrap();
        assert_eq!(first_cursor, Some(cursor));
        assert_eq!(wanted, 101);
        assert_eq!(first.since, Some(cursor.timestamp - Duration::hours(1)));
        assert_eq!(first.until, None);
        let (second, second_cursor, wanted) = reads.next(40).unwrap();
        assert_eq!(second_cursor, None);
        assert_eq!(wanted, 61);
        assert_eq!(second.until, first.since);
        assert!(reads.next(61).is_none());
    }
}
