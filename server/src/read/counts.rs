//! Entry counts over a time range from the cheapest exact source: the hour rollup for
//! whole hours, the minute rollup for the whole minutes left at either end, and `logs`
//! itself for the seconds left beyond those (`storage::rollup` keeps the rollups; in
//! both modes they are exact: trigger-kept tables, or continuous aggregates with
//! real-time aggregation). A 30-day histogram then reads ~720 hour rows per service
//! and level, not millions of entries.
//!
//! Owns the split of a range into pieces and the SQL that counts them. Only filters a
//! rollup can answer (service and level) may use it: [`answerable`] says when. It never
//! reads individual rows beyond the range's sub-minute edges.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::{Postgres, QueryBuilder};

use super::filters::LogFilter;
use crate::storage::rollup::ROLLUPS;

/// Where one piece of a range is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A rollup table or continuous aggregate, by name.
    Rollup(&'static str),
    /// `logs` itself.
    Rows,
}

/// A part of the range `[from, to)` (`None`: unbounded on that side) and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    source: Source,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// Whether the rollups can answer `filter`: they hold service and level, nothing else.
pub fn answerable(filter: &LogFilter) -> bool {
    filter.message_pattern.is_none()
        && filter.metadata.is_empty()
        && filter.request_id.is_none()
        && filter.fingerprints.is_empty()
        && filter.trace_id.is_none()
        && filter.span_id.is_none()
}

/// Splits `[from, to)` into pieces, coarsest rollup first. Only rollups whose width
/// divides `width` (when given: a histogram bucket must be a whole number of rollup
/// buckets) are used.
fn split(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>, width: Option<i64>) -> Vec<Piece> {
    let usable: Vec<(&'static str, i64)> = ROLLUPS
        .iter()
        .rev()
        .copied()
        .filter(|(_, seconds)| width.is_none_or(|w| w % seconds == 0))
        .collect();
    let mut pieces = Vec::new();
    split_into(from, to, &usable, &mut pieces);
    pieces
}

fn split_into(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    rollups: &[(&'static str, i64)],
    pieces: &mut Vec<Piece>,
) {
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            return;
        }
    }
    let Some(((name, seconds), finer)) = rollups.split_first() else {
        pieces.push(Piece {
            source: Source::Rows,
            from,
            to,
        });
        return;
    };
    let inner_from = from.map(|t| ceil(t, *seconds));
    let inner_to = to.map(|t| floor(t, *seconds));
    let inner_empty = matches!((inner_from, inner_to), (Some(a), Some(b)) if a >= b);
    if inner_empty {
        split_into(from, to, finer, pieces);
        return;
    }
    pieces.push(Piece {
        source: Source::Rollup(name),
        from: inner_from,
        to: inner_to,
    });
    if let (Some(from), Some(inner_from)) = (from, inner_from) {
        split_into(Some(from), Some(inner_from), finer, pieces);
    }
    if let (Some(inner_to), Some(to)) = (inner_to, to) {
        split_into(Some(inner_to), Some(to), finer, pieces);
    }
}

fn origin() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The start of the `seconds`-wide bucket holding `time`.
fn floor(time: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    let origin = origin();
    let since_origin = time - origin;
    let whole = since_origin.num_seconds().div_euclid(seconds) * seconds;
    origin + Duration::seconds(whole)
}

/// The first bucket start at or after `time`.
fn ceil(time: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    let down = floor(time, seconds);
    if down == time {
        down
    } else {
        down + Duration::seconds(seconds)
    }
}

/// Appends `(SELECT t, service, level, n ... UNION ALL ...)` counting the entries that
/// match `filter` (service and level only: check [`answerable`]) in its time range: `t`
/// is a rollup bucket's start or a row's timestamp, `n` the entries it stands for.
/// `width` as for [`split`].
pub fn push_counted(sql: &mut QueryBuilder<'_, Postgres>, filter: &LogFilter, width: Option<i64>) {
    let pieces = split(filter.since, filter.until, width);
    sql.push("(");
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        let column = match piece.source {
            Source::Rollup(name) => {
                sql.push(format!(
                    "SELECT bucket AS t, service, level, entries AS n FROM {name} WHERE TRUE"
                ));
                "bucket"
            }
            Source::Rows => {
                sql.push(
                    "SELECT timestamp AS t, service, level, 1::int8 AS n FROM logs WHERE TRUE",
                );
                "timestamp"
            }
        };
        if let Some(from) = piece.from {
            sql.push(format!(" AND {column} >= ")).push_bind(from);
        }
        if let Some(to) = piece.to {
            sql.push(format!(" AND {column} < ")).push_bind(to);
        }
        filter.push_content_conditions(sql);
    }
    if pieces.is_empty() {
        // An empty range: a source with no rows keeps the statement's shape.
        sql.push("SELECT NULL::timestamptz AS t, NULL::text AS service, NULL::text AS level, 0::int8 AS n WHERE FALSE");
    }
    sql.push(")");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn piece(source: Source, from: &str, to: &str) -> Piece {
        Piece {
            source,
            from: Some(at(from)),
            to: Some(at(to)),
        }
    }

    #[test]
    fn a_range_is_whole_hours_then_whole_minutes_then_seconds_at_each_end() {
        let pieces = split(
            Some(at("2026-01-01T10:17:42Z")),
            Some(at("2026-01-03T08:03:05Z")),
            None,
        );
        let hour = Source::Rollup("logs_per_hour");
        let minute = Source::Rollup("logs_per_minute");
        assert_eq!(
            pieces,
            vec![
                piece(hour, "2026-01-01T11:00:00Z", "2026-01-03T08:00:00Z"),
                piece(minute, "2026-01-01T10:18:00Z", "2026-01-01T11:00:00Z"),
                piece(Source::Rows, "2026-01-01T10:17:42Z", "2026-01-01T10:18:00Z"),
                piece(minute, "2026-01-03T08:00:00Z", "2026-01-03T08:03:00Z"),
                piece(Source::Rows, "2026-01-03T08:03:00Z", "2026-01-03T08:03:05Z"),
            ]
        );
    }

    #[test]
    fn pieces_cover_the_range_exactly_once() {
        let from = at("2026-01-01T10:17:42Z");
        for (to, width) in [
            ("2026-01-01T10:17:50Z", None),
            ("2026-01-01T10:59:59Z", Some(60)),
            ("2026-01-02T00:00:00Z", Some(1_800)),
            ("2026-02-01T00:00:01Z", Some(43_200)),
        ] {
            let mut pieces = split(Some(from), Some(at(to)), width);
            pieces.sort_by_key(|p| p.from);
            assert_eq!(pieces.first().and_then(|p| p.from), Some(from));
            assert_eq!(pieces.last().and_then(|p| p.to), Some(at(to)));
            for pair in pieces.windows(2) {
                assert_eq!(pair[0].to, pair[1].from, "{pieces:?}");
            }
        }
    }

    #[test]
    fn a_width_that_is_not_whole_minutes_counts_rows() {
        let from = Some(at("2026-01-01T10:00:00Z"));
        let to = Some(at("2026-01-01T11:00:00Z"));
        assert!(split(from, to, Some(90))
            .iter()
            .all(|p| p.source == Source::Rows));
        // Whole minutes but not whole hours: the minute rollup only.
        assert!(split(from, to, Some(1_800))
            .iter()
            .all(|p| p.source == Source::Rollup("logs_per_minute")));
    }

    #[test]
    fn only_service_and_level_filters_are_answered_by_the_rollups() {
        let by_service = LogFilter {
            services: vec!["web".into()],
            levels: Some(vec!["ERROR"]),
            ..LogFilter::default()
        };
        assert!(answerable(&by_service));
        for filter in [
            LogFilter {
                trace_id: Some("5b8efff798038103d269b633813fc60c".into()),
                ..by_service.clone()
            },
            LogFilter {
                span_id: Some("eee19b7ec3c1b174".into()),
                ..by_service.clone()
            },
            LogFilter {
                request_id: Some("req-1".into()),
                ..by_service.clone()
            },
        ] {
            assert!(!answerable(&filter), "{filter:?}");
        }
    }

    #[test]
    fn an_unbounded_range_is_the_hour_rollup_alone() {
        assert_eq!(
            split(None, None, None),
            vec![Piece {
                source: Source::Rollup("logs_per_hour"),
                from: None,
                to: None
            }]
        );
    }
}
