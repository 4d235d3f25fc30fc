//! Where a page of a service/level search must look: the hour rollup (`storage::rollup`)
//! says which hours of the range hold matching entries and how many, so a filter that
//! matches few or none of a wide range reads only the stretch its page needs instead of
//! every entry of the service; where the matches within that stretch are sparser than a
//! minute each, the minute rollup then says which minutes of those hours hold them, and
//! the page reads those minutes alone (an hour holds ~60 times the entries of the
//! service it reads). Both rollups are read by their (service, level, bucket) index, so a
//! filter that matches few entries reads few rollup rows. Its statements (and the page
//! that reads the ranges) are planned for their own values each time, never as a cached
//! generic plan: PostgreSQL's generic plan of the minute lookup, after five calls on a
//! connection, walks the bucket index over the whole range (290 ms against 1 ms over
//! 2M rows in TimescaleDB mode). Owns that guide; `search` reads the rows. Used only for
//! filters the rollups answer (service and level, no other condition) that narrow by
//! service or level: without a narrowing every hour holds entries and the guide would
//! cost a query and spare nothing.
//!
//! Plain PostgreSQL's trigger-kept counts are exact in the rows' own transaction.
//! TimescaleDB's continuous aggregates may not count yet what changed below their
//! watermark (late rows, a backfill, a delete): the ranges TimescaleDB has logged as
//! changed and not yet refreshed (`storage::rollup_pending`, read in the same statement,
//! so from the same snapshot) are read from `logs` whatever the counts say, and an
//! hour's count is trusted only outside them.

use chrono::{DateTime, Duration, Utc};
use sqlx::{Postgres, QueryBuilder};

use super::counts;
use super::error::ReadError;
use super::filters::LogFilter;
use super::ReadConnection;
use crate::storage::rollup_pending;
use crate::storage::StorageMode;

/// Hours of matches the guide reads at most; past them the page goes on with the
/// plain windows.
const MAX_HOURS: i64 = 2_000;
/// Pending ranges read one by one at most; past them the guide takes the span from the
/// oldest to the newest as one.
const MAX_PENDING: i64 = 1_000;
const HOUR: i64 = 3_600;
const MINUTE: i64 = 60;

/// What the hour rollup says about a page over `[since, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guide {
    /// No entry of the range matches: the page is empty.
    Nothing,
    /// Every match of the page's first `wanted` is within `[from, to)` (`to: None`: up
    /// to the page's own bound, cursor included); `rest_empty`: nothing matches below
    /// `from` either, so the page ends there.
    Window {
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        rest_empty: bool,
    },
}

/// A range of times `[from, to)`.
pub(crate) type Range = (DateTime<Utc>, DateTime<Utc>);
/// A range whose changes the rollup may not count yet.
type Pending = Range;
/// Ranges a guided page reads one by one at most; past them it reads its window whole.
const MAX_RANGES: usize = 400;

/// Whether the guide can help `filter`: answerable by the rollups and narrowed.
pub(crate) fn applies(filter: &LogFilter) -> bool {
    counts::answerable(filter)
        && filter.trace_id.is_none()
        && filter.span_id.is_none()
        && (!filter.services.is_empty() || filter.levels.is_some())
}

/// The guide for the newest `wanted` matches of `filter` at or before `end` (the page's
/// own bound: its cursor's time or `until`; `None`: unbounded, as a page without them is),
/// and, when there are not too many, the ranges within its window that may hold matches
/// (the matching hours and the pending ranges, newest first): the page need read only those.
pub(crate) async fn guide(
    connection: &mut ReadConnection,
    mode: StorageMode,
    filter: &LogFilter,
    end: Option<DateTime<Utc>>,
    wanted: i64,
) -> Result<(Guide, Option<Vec<Range>>), ReadError> {
    let timescale = mode == StorageMode::Timescale;
    let mut sql = QueryBuilder::<Postgres>::new("");
    if timescale {
        rollup_pending::push_pending_cte(&mut sql);
    }
    // Rows: (an hour's start, its end, its count) newest first; then, in TimescaleDB
    // mode, (a pending range, NULL) and (the span of all pending ranges, -1).
    sql.push(
        "(SELECT bucket, bucket + interval '1 hour', sum(entries)::int8 \
         FROM logs_per_hour WHERE TRUE",
    );
    if let Some(end) = end {
        sql.push(" AND bucket <= ").push_bind(end);
    }
    if let Some(since) = filter.since {
        sql.push(" AND bucket > ")
            .push_bind(since - Duration::seconds(HOUR));
    }
    filter.push_content_conditions(&mut sql);
    sql.push(" GROUP BY bucket HAVING sum(entries) > 0 ORDER BY bucket DESC LIMIT ")
        .push_bind(MAX_HOURS)
        .push(")");
    if timescale {
        let push_range = |sql: &mut QueryBuilder<'_, Postgres>| {
            if let Some(end) = end {
                sql.push(" AND from_time <= ").push_bind(end);
            }
            if let Some(since) = filter.since {
                sql.push(" AND to_time > ").push_bind(since);
            }
        };
        sql.push(" UNION ALL (SELECT from_time, to_time, NULL::int8 FROM pending WHERE TRUE");
        push_range(&mut sql);
        sql.push(" ORDER BY to_time DESC LIMIT ")
            .push_bind(MAX_PENDING)
            .push(") UNION ALL (SELECT min(from_time), max(to_time), -1::int8 FROM pending WHERE TRUE");
        push_range(&mut sql);
        sql.push(" HAVING count(*) > 0)");
    }
    let rows: Vec<(DateTime<Utc>, DateTime<Utc>, Option<i64>)> = connection
        .run(|conn| sql.build_query_as().persistent(false).fetch_all(conn))
        .await?;
    let mut hours = Vec::new();
    let mut pending = Vec::new();
    let mut span = None;
    for (from, to, count) in rows {
        match count {
            Some(-1) => span = Some((from, to)),
            Some(count) => hours.push((from, count)),
            None => pending.push((from, to)),
        }
    }
    if pending.len() as i64 >= MAX_PENDING {
        pending = span.into_iter().collect();
    }
    let guide = plan(&hours, &pending, filter.since, end, wanted);
    let Guide::Window { from, to, .. } = guide else {
        return Ok((guide, None));
    };
    let in_window: Vec<(DateTime<Utc>, i64)> = hours
        .iter()
        .copied()
        .filter(|&(start, _)| overlaps(start, start + Duration::seconds(HOUR), from, to))
        .collect();
    if sparser_than_minutes(&in_window) {
        let minutes = matching_minutes(connection, filter, &in_window).await?;
        if let Some(ranges) = ranges_within(&minutes, MINUTE, &pending, from, to) {
            return Ok((guide, Some(ranges)));
        }
    }
    Ok((guide, ranges_within(&hours, HOUR, &pending, from, to)))
}

/// Whether the matching hours of a window hold fewer matches than minutes, so that
/// reading only their matching minutes spares most of what reading the hours would
/// (a window of one hour is read whole: its minutes would cost a statement and spare
/// little).
fn sparser_than_minutes(hours: &[(DateTime<Utc>, i64)]) -> bool {
    let matches: i64 = hours.iter().map(|&(_, count)| count.max(0)).sum();
    hours.len() > 1 && matches < hours.len() as i64 * (HOUR / MINUTE)
}

/// The minutes of `hours` (newest first) that the minute rollup counts matches of
/// `filter` in, newest first, each with its count. Between the oldest and the newest of
/// those hours, a minute outside them holds no match (the two rollups agree; where
/// TimescaleDB's may not yet, the pending ranges are read whole anyway).
async fn matching_minutes(
    connection: &mut ReadConnection,
    filter: &LogFilter,
    hours: &[(DateTime<Utc>, i64)],
) -> Result<Vec<(DateTime<Utc>, i64)>, ReadError> {
    let (Some(&(newest, _)), Some(&(oldest, _))) = (hours.first(), hours.last()) else {
        return Ok(Vec::new());
    };
    let mut sql = QueryBuilder::<Postgres>::new(
        "SELECT bucket, sum(entries)::int8 FROM logs_per_minute WHERE bucket >= ",
    );
    sql.push_bind(oldest)
        .push(" AND bucket < ")
        .push_bind(newest + Duration::seconds(HOUR));
    filter.push_content_conditions(&mut sql);
    sql.push(" GROUP BY bucket HAVING sum(entries) > 0 ORDER BY bucket DESC");
    connection
        .run(|conn| sql.build_query_as().persistent(false).fetch_all(conn))
        .await
}

/// Whether `[start, end)` overlaps `[from, to)` (`None` bounds: open).
fn overlaps(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> bool {
    from.is_none_or(|from| end > from) && to.is_none_or(|to| start < to)
}

/// The matching buckets (each `width` seconds from its start) and pending ranges that
/// overlap `[from, to)` (`None` bounds: open), merged where they touch, newest first;
/// `None` when more than [`MAX_RANGES`].
fn ranges_within(
    buckets: &[(DateTime<Utc>, i64)],
    width: i64,
    pending: &[Pending],
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Option<Vec<Range>> {
    let width = Duration::seconds(width);
    let mut all: Vec<Range> = buckets
        .iter()
        .map(|&(start, _)| (start, start + width))
        .chain(pending.iter().copied())
        .filter(|&(start, end)| overlaps(start, end, from, to))
        .collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let mut merged: Vec<Range> = Vec::new();
    for (start, end) in all {
        match merged.last_mut() {
            Some(last) if end >= last.0 => last.0 = last.0.min(start),
            _ => merged.push((start, end)),
        }
        if merged.len() > MAX_RANGES {
            return None;
        }
    }
    Some(merged)
}

/// The guide from the matching hours (newest first, each with its count) and the
/// ranges whose changes the counts may miss.
fn plan(
    hours: &[(DateTime<Utc>, i64)],
    pending: &[Pending],
    since: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    wanted: i64,
) -> Guide {
    let hour = Duration::seconds(HOUR);
    // The newest time that may hold a match: after the newest matching hour, or the end
    // of the newest pending range.
    let newest_end = hours
        .iter()
        .map(|&(start, _)| start + hour)
        .chain(pending.iter().map(|&(_, to)| to))
        .max();
    let Some(newest_end) = newest_end else {
        return Guide::Nothing;
    };
    let to = match end {
        Some(end) if newest_end >= end => None,
        _ => Some(newest_end),
    };
    let mut total = 0;
    for &(start, count) in hours {
        // A count over a pending range may miss rows or count removed ones: not trusted.
        let stale = pending
            .iter()
            .any(|&(from, to)| from < start + hour && to > start);
        if !stale {
            total += count;
        }
        if total >= wanted {
            // The hour's count may include entries outside the range: the page goes
            // on below `from` if these fall short.
            return Guide::Window {
                from: Some(later(start, since)),
                to,
                rest_empty: false,
            };
        }
    }
    let complete = (hours.len() as i64) < MAX_HOURS;
    Guide::Window {
        from: match hours.last() {
            Some(&(oldest, _)) if !complete => Some(later(oldest, since)),
            _ => since,
        },
        to,
        rest_empty: complete,
    }
}

fn later(hour: DateTime<Utc>, since: Option<DateTime<Utc>>) -> DateTime<Utc> {
    since.map_or(hour, |since| since.max(hour))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn no_matching_hour_is_an_empty_page() {
        assert_eq!(
            plan(&[], &[], None, Some(at("2026-01-02T00:00:00Z")), 100),
            Guide::Nothing
        );
    }

    #[test]
    fn the_window_starts_at_the_hour_that_completes_the_page_and_ends_after_the_newest() {
        let hours = [
            (at("2026-01-20T05:00:00Z"), 3),
            (at("2026-01-12T09:00:00Z"), 4),
            (at("2026-01-03T00:00:00Z"), 50),
        ];
        let end = Some(at("2026-01-30T00:00:00Z"));
        assert_eq!(
            plan(&hours, &[], None, end, 5),
            Guide::Window {
                from: Some(at("2026-01-12T09:00:00Z")),
                to: Some(at("2026-01-20T06:00:00Z")),
                rest_empty: false,
            }
        );
        // Fewer matches than the page: all of them, and nothing below.
        let since = at("2026-01-01T00:00:00Z");
        assert_eq!(
            plan(&hours, &[], Some(since), end, 100),
            Guide::Window {
                from: Some(since),
                to: Some(at("2026-01-20T06:00:00Z")),
                rest_empty: true,
            }
        );
    }

    #[test]
    fn an_hour_reaching_the_end_keeps_the_pages_own_bound() {
        let hours = [(at("2026-01-20T05:00:00Z"), 3)];
        let guide = plan(&hours, &[], None, Some(at("2026-01-20T05:30:00Z")), 100);
        assert_eq!(
            guide,
            Guide::Window {
                from: None,
                to: None,
                rest_empty: true,
            }
        );
    }

    #[test]
    fn a_since_inside_the_completing_hour_bounds_the_window() {
        let hours = [(at("2026-01-20T05:00:00Z"), 300)];
        let since = at("2026-01-20T05:10:00Z");
        let guide = plan(&hours, &[], Some(since), None, 100);
        assert_eq!(
            guide,
            Guide::Window {
                from: Some(since),
                to: Some(at("2026-01-20T06:00:00Z")),
                rest_empty: false,
            }
        );
    }

    #[test]
    fn a_pending_range_is_read_even_where_no_hour_counts_a_match() {
        let since = at("2026-01-01T00:00:00Z");
        let end = Some(at("2026-01-30T00:00:00Z"));
        // Late rows 5 days back, not counted yet: the page reads down to them.
        let pending = [(at("2026-01-25T10:00:00Z"), at("2026-01-25T10:01:00Z"))];
        assert_eq!(
            plan(&[], &pending, Some(since), end, 100),
            Guide::Window {
                from: Some(since),
                to: Some(at("2026-01-25T10:01:00Z")),
                rest_empty: true,
            }
        );
        // Newer than every counted hour: the window reaches it.
        let hours = [(at("2026-01-12T09:00:00Z"), 500)];
        assert_eq!(
            plan(&hours, &pending, Some(since), end, 100),
            Guide::Window {
                from: Some(at("2026-01-12T09:00:00Z")),
                to: Some(at("2026-01-25T10:01:00Z")),
                rest_empty: false,
            }
        );
    }

    #[test]
    fn an_hours_count_over_a_pending_range_is_not_trusted() {
        let hours = [
            (at("2026-01-20T05:00:00Z"), 300),
            (at("2026-01-12T09:00:00Z"), 300),
        ];
        let pending = [(at("2026-01-20T05:30:00Z"), at("2026-01-20T05:31:00Z"))];
        // The newest hour may have lost rows to a delete: the page reads on to the
        // next hour whose count stands.
        assert_eq!(
            plan(&hours, &pending, None, None, 100),
            Guide::Window {
                from: Some(at("2026-01-12T09:00:00Z")),
                to: Some(at("2026-01-20T06:00:00Z")),
                rest_empty: false,
            }
        );
        // Only pending ranges reaching past the page's end: up to the page's own bound.
        let end = Some(at("2026-01-20T05:30:30Z"));
        assert_eq!(
            plan(&[], &pending, None, end, 100),
            Guide::Window {
                from: None,
                to: None,
                rest_empty: true,
            }
        );
    }

    #[test]
    fn only_a_window_of_several_hours_with_fewer_matches_than_minutes_reads_minutes() {
        let hour = |h: i64| at("2026-01-20T00:00:00Z") - Duration::hours(h);
        // One match in each of three hours: their minutes.
        assert!(sparser_than_minutes(&[
            (hour(0), 1),
            (hour(5), 1),
            (hour(9), 1)
        ]));
        // A single hour is read whole, however few its matches.
        assert!(!sparser_than_minutes(&[(hour(0), 1)]));
        // A match in nearly every minute: the hours whole.
        assert!(!sparser_than_minutes(&[(hour(0), 100), (hour(1), 20)]));
        assert!(sparser_than_minutes(&[(hour(0), 100), (hour(1), 19)]));
    }

    #[test]
    fn matching_minutes_are_ranges_of_a_minute_merged_with_the_pending_ones() {
        let minutes = [
            (at("2026-01-20T05:59:00Z"), 1),
            (at("2026-01-20T05:58:00Z"), 2),
            (at("2026-01-20T03:00:00Z"), 1),
        ];
        let pending = [(at("2026-01-20T04:10:00Z"), at("2026-01-20T04:11:00Z"))];
        let ranges = ranges_within(&minutes, MINUTE, &pending, None, None);
        assert_eq!(
            ranges,
            Some(vec![
                (at("2026-01-20T05:58:00Z"), at("2026-01-20T06:00:00Z")),
                (at("2026-01-20T04:10:00Z"), at("2026-01-20T04:11:00Z")),
                (at("2026-01-20T03:00:00Z"), at("2026-01-20T03:01:00Z")),
            ])
        );
    }

    #[test]
    fn ranges_within_a_window_are_merged_newest_first() {
        let hours = [
            (at("2026-01-20T05:00:00Z"), 3),
            (at("2026-01-20T04:00:00Z"), 1),
            (at("2026-01-12T09:00:00Z"), 4),
            (at("2026-01-03T00:00:00Z"), 50),
        ];
        let pending = [(at("2026-01-15T10:00:00Z"), at("2026-01-15T10:01:00Z"))];
        let ranges = ranges_within(
            &hours,
            HOUR,
            &pending,
            Some(at("2026-01-10T00:00:00Z")),
            None,
        );
        assert_eq!(
            ranges,
            Some(vec![
                (at("2026-01-20T04:00:00Z"), at("2026-01-20T06:00:00Z")),
                (at("2026-01-15T10:00:00Z"), at("2026-01-15T10:01:00Z")),
                (at("2026-01-12T09:00:00Z"), at("2026-01-12T10:00:00Z")),
            ])
        );
        let many: Vec<(DateTime<Utc>, i64)> = (0..=MAX_RANGES as i64)
            .map(|h| (at("2026-01-01T00:00:00Z") + Duration::hours(2 * h), 1))
            .collect();
        assert_eq!(ranges_within(&many, HOUR, &[], None, None), None);
    }
}
