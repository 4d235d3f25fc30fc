//! Where a page of a service/level search must look: the hour rollup (exact in both
//! modes, `storage::rollup`) says which hours of the range hold matching entries and how
//! many, so a filter that matches few or none of a wide range reads only the stretch
//! its page needs instead of every entry of the service. Owns that guide; `search`
//! reads the rows. Used only for filters the rollups answer (service and level, no
//! other condition) that narrow by service or level: without a narrowing every hour
//! holds entries and the guide would cost a query and spare nothing.

use chrono::{DateTime, Duration, Utc};
use sqlx::{Postgres, QueryBuilder};

use super::counts;
use super::error::ReadError;
use super::filters::LogFilter;
use super::ReadConnection;

/// Hours of matches the guide reads at most; past them the page goes on with the
/// plain windows.
const MAX_HOURS: i64 = 2_000;
const HOUR: i64 = 3_600;

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

/// Whether the guide can help `filter`: answerable by the rollups and narrowed.
pub(crate) fn applies(filter: &LogFilter) -> bool {
    counts::answerable(filter)
        && filter.trace_id.is_none()
        && filter.span_id.is_none()
        && (!filter.services.is_empty() || filter.levels.is_some())
}

/// The guide for the newest `wanted` matches of `filter` at or before `end` (the page's
/// own bound: its cursor's time or `until`; `None`: unbounded, as a page without them is).
pub(crate) async fn guide(
    connection: &mut ReadConnection,
    filter: &LogFilter,
    end: Option<DateTime<Utc>>,
    wanted: i64,
) -> Result<Guide, ReadError> {
    let mut sql = QueryBuilder::<Postgres>::new(
        "SELECT bucket, sum(entries)::int8 FROM logs_per_hour WHERE TRUE",
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
        .push_bind(MAX_HOURS);
    let hours: Vec<(DateTime<Utc>, i64)> = connection
        .run(|conn| sql.build_query_as().fetch_all(conn))
        .await?;
    Ok(plan(&hours, filter.since, end, wanted))
}

/// The guide from the matching hours (newest first, each with its count).
fn plan(
    hours: &[(DateTime<Utc>, i64)],
    since: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    wanted: i64,
) -> Guide {
    let Some(&(newest, _)) = hours.first() else {
        return Guide::Nothing;
    };
    let newest_end = newest + Duration::seconds(HOUR);
    // Nothing matches after the newest matching hour.
    let to = match end {
        Some(end) if newest_end >= end => None,
        _ => Some(newest_end),
    };
    let mut total = 0;
    for &(hour, count) in hours {
        total += count;
        if total >= wanted {
            // The hour's count may include entries outside the range: the page goes
            // on below `from` if these fall short.
            return Guide::Window {
                from: Some(later(hour, since)),
                to,
                rest_empty: false,
            };
        }
    }
    let (oldest, _) = hours[hours.len() - 1];
    let complete = (hours.len() as i64) < MAX_HOURS;
    Guide::Window {
        from: if complete {
            since
        } else {
            Some(later(oldest, since))
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
            plan(&[], None, Some(at("2026-01-02T00:00:00Z")), 100),
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
            plan(&hours, None, end, 5),
            Guide::Window {
                from: Some(at("2026-01-12T09:00:00Z")),
                to: Some(at("2026-01-20T06:00:00Z")),
                rest_empty: false,
            }
        );
        // Fewer matches than the page: all of them, and nothing below.
        let since = at("2026-01-01T00:00:00Z");
        assert_eq!(
            plan(&hours, Some(since), end, 100),
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
        let guide = plan(&hours, None, Some(at("2026-01-20T05:30:00Z")), 100);
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
        let guide = plan(&hours, Some(since), None, 100);
        assert_eq!(
            guide,
            Guide::Window {
                from: Some(since),
                to: Some(at("2026-01-20T06:00:00Z")),
                rest_empty: false,
            }
        );
    }
}
