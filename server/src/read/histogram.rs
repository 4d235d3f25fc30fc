//! `GET /api/v1/logs/histogram`: entry counts per time bucket per level for the usual
//! filters. Buckets come from TimescaleDB's `time_bucket` in Timescale mode and from
//! `date_bin` otherwise, both aligned to 2000-01-01T00:00:00Z, so a bucket's start is
//! the same in both modes. Whole-minute buckets filtered by service/level at most are
//! counted from the rollups (`counts`: a 30-day histogram reads hour rows, not
//! entries). Owns the bucket choice and the zero-filled answer; never returns rows.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};

use super::counts;
use super::error::ReadError;
use super::filters::{parse_age, LogFilter, Params};
use super::time_bounds;
use super::{params_from, QueryPairs, ReadContext};
use crate::storage::StorageMode;

/// Bucket widths offered when the caller names none, in seconds, smallest first.
const LADDER: [i64; 16] = [
    1, 5, 10, 30, 60, 300, 600, 900, 1_800, 3_600, 10_800, 21_600, 43_200, 86_400, 604_800,
    2_592_000,
];
/// The automatic choice is the smallest width that needs at most this many buckets.
const TARGET_BUCKETS: i64 = 60;
/// An explicit `bucket` may not need more than this many.
const MAX_BUCKETS: i64 = 5_000;
const DEFAULT_RANGE: Duration = Duration::hours(24);

#[derive(Serialize)]
pub struct Histogram {
    /// The bucket width as text (`5m`) and in seconds.
    bucket: String,
    bucket_seconds: i64,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    /// Every bucket from the one holding `since` to the one holding `until`, oldest
    /// first, including empty ones.
    buckets: Vec<Bucket>,
}

#[derive(Serialize)]
pub struct Bucket {
    start: DateTime<Utc>,
    total: i64,
    /// Stored level spelling -> count; levels with no entries are left out.
    counts: BTreeMap<String, i64>,
}

pub async fn histogram(
    State(context): State<ReadContext>,
    query: QueryPairs,
) -> Result<Json<Histogram>, ReadError> {
    let mut params = params_from(query)?;
    let now = Utc::now();
    let filter = context.filter(&mut params, now);
    let request = HistogramRequest::parse(filter, params, now)?;
    let mut sql = QueryBuilder::<Postgres>::new("");
    request.push_query(&mut sql, context.mode);
    let mut connection = context.reads.acquire().await?;
    let rows: Vec<(DateTime<Utc>, String, i64)> = connection
        .run(|conn| sql.build_query_as().fetch_all(conn))
        .await?;
    drop(connection);
    Ok(Json(request.zero_filled(rows)))
}

/// A valid histogram request: the filter (with both time bounds set) and the width.
pub(super) struct HistogramRequest {
    filter: LogFilter,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    width: i64,
}

impl HistogramRequest {
    /// The rest of the request beside its `filter` (parsed from the same `params`).
    pub(super) fn parse(
        mut filter: LogFilter,
        mut params: Params,
        now: DateTime<Utc>,
    ) -> Result<Self, ReadError> {
        let explicit = params
            .one("bucket")
            .and_then(|text| match parse_age(&text) {
                Some(width) if width.num_seconds() >= 1 => Some(width.num_seconds()),
                _ => {
                    params.problem(format!(
                        "bucket: must be a width like 10s, 5m, 1h or 1d (got {text:?})"
                    ));
                    None
                }
            });
        let until = filter.until.unwrap_or(now);
        let since = filter
            .since
            .unwrap_or_else(|| time_bounds::earlier_by(until, DEFAULT_RANGE));
        if since >= until {
            params.problem("since: must be earlier than until (until defaults to now)");
        }
        let span = (until - since).num_seconds().max(1);
        if let Some(width) = explicit {
            if span / width > MAX_BUCKETS {
                params.problem(format!(
                    "bucket: {width}s over this range needs more than {MAX_BUCKETS} buckets; choose a wider bucket"
                ));
            }
        }
        params.finish().map_err(ReadError::InvalidQuery)?;
        filter.since = Some(since);
        filter.until = Some(until);
        Ok(HistogramRequest {
            filter,
            since,
            until,
            width: explicit.unwrap_or_else(|| choose_width(span)),
        })
    }

    /// The statement counting entries per bucket and level. Whole-minute widths with
    /// service/level filters only are counted from the rollups (`counts`); anything else
    /// (a `q`, `meta.*`, `request_id` or `fingerprint` filter, sub-minute widths) from `logs`.
    pub(super) fn push_query(&self, sql: &mut QueryBuilder<'_, Postgres>, mode: StorageMode) {
        let width = self.width;
        if width % 60 == 0 && counts::answerable(&self.filter) {
            sql.push("SELECT date_bin(")
                .push_bind(width)
                .push(" * interval '1 second', t, timestamptz '2000-01-01 00:00:00+00') AS bucket, level, sum(n)::int8 AS n FROM ");
            counts::push_counted(sql, &self.filter, Some(width));
            sql.push(" AS counted GROUP BY 1, 2");
            return;
        }
        let function = match mode {
            StorageMode::Timescale => "time_bucket",
            StorageMode::Postgres => "date_bin",
        };
        sql.push(format!("SELECT {function}("));
        sql.push_bind(width)
            .push(" * interval '1 second', timestamp, timestamptz '2000-01-01 00:00:00+00') AS bucket, level, count(*) AS n FROM logs WHERE TRUE");
        self.filter.push_conditions(sql);
        sql.push(" GROUP BY 1, 2");
    }

    /// Every bucket from the one holding `since` to the one holding `until`, with the
    /// counted `rows` (bucket start, level, entries) filled in.
    fn zero_filled(self, rows: Vec<(DateTime<Utc>, String, i64)>) -> Histogram {
        let (since, until, width) = (self.since, self.until, self.width);
        let first = align(since, width);
        let count = (until - first).num_seconds() / width + 1;
        let mut buckets: Vec<Bucket> = (0..count)
            .map(|i| Bucket {
                start: first + Duration::seconds(i * width),
                total: 0,
                counts: BTreeMap::new(),
            })
            .collect();
        for (start, level, n) in rows {
            let index = (start - first).num_seconds() / width;
            if let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
                bucket.total += n;
                *bucket.counts.entry(level).or_default() += n;
            }
        }
        // `until` is exclusive: drop a last bucket that starts exactly there.
        if buckets.last().is_some_and(|b| b.start >= until) && buckets.len() > 1 {
            buckets.pop();
        }
        Histogram {
            bucket: width_text(width),
            bucket_seconds: width,
            since,
            until,
            buckets,
        }
    }
}

/// The smallest ladder width that covers `span_seconds` in at most TARGET_BUCKETS;
/// beyond the ladder, whole days.
fn choose_width(span_seconds: i64) -> i64 {
    LADDER
        .into_iter()
        .find(|width| span_seconds / width <= TARGET_BUCKETS)
        .unwrap_or_else(|| {
            let days = (span_seconds / TARGET_BUCKETS + 86_399) / 86_400;
            days.max(1) * 86_400
        })
}

/// The start of the bucket of width `width` seconds holding `time`.
fn align(time: DateTime<Utc>, width: i64) -> DateTime<Utc> {
    let origin = Utc
        .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let offset = (time - origin).num_seconds().div_euclid(width) * width;
    origin + Duration::seconds(offset)
}

fn width_text(seconds: i64) -> String {
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_is_cut_into_one_minute_buckets() {
        assert_eq!(choose_width(3_600), 60);
        assert_eq!(choose_width(86_400), 1_800);
        assert_eq!(choose_width(10), 1);
        let two_thousand_years = 2_000 * 365 * 86_400;
        assert!(two_thousand_years / choose_width(two_thousand_years) <= TARGET_BUCKETS);
    }

    #[test]
    fn buckets_align_to_the_clock() {
        let time = Utc.with_ymd_and_hms(2026, 3, 4, 10, 17, 42).unwrap();
        assert_eq!(
            align(time, 300),
            Utc.with_ymd_and_hms(2026, 3, 4, 10, 15, 0).unwrap()
        );
    }

    #[test]
    fn widths_print_in_their_largest_whole_unit() {
        assert_eq!(width_text(300), "5m");
        assert_eq!(width_text(86_400), "1d");
        assert_eq!(width_text(45), "45s");
    }
}
