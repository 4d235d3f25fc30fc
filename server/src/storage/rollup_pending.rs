//! Where TimescaleDB's rollups (the continuous aggregates of `rollup`) may not count
//! the committed rows yet: a row written below an aggregate's watermark (a late row, a
//! backfill, a retention delete) is left out of its materialized counts until a refresh
//! redoes that range, and real-time aggregation counts only what lies above the
//! watermark. TimescaleDB records every such change, in the same transaction as the
//! rows, as a range of times in its invalidation logs, and keeps it there until a
//! refresh has materialized it. Owns the statement that reads those ranges (from
//! TimescaleDB's catalog, which takes no lock a writer waits for); used by the read
//! side to read such ranges from `logs` itself, and by `rollup_refresh` to refresh them.
//!
//! The ranges are times of rows, each `[from, to)` (a minute past the last change:
//! some entries name a minute bucket's start), below the higher of the two aggregates'
//! watermarks (above it both count from the rows). When the hour aggregate's watermark
//! is above the minute one's, the stretch between them is pending as a whole: the hour
//! has materialized minutes that rows written since do not reach (TimescaleDB logs no
//! change above the minute aggregate's refresh). Plain PostgreSQL has no such range: its
//! trigger-kept rollups change in the rows' own transaction.

use sqlx::{Postgres, QueryBuilder};

/// PostgreSQL's earliest time in TimescaleDB's internal unit (microseconds since
/// 2000-01-01): invalidation entries below it are TimescaleDB's own markers.
pub(super) const EARLIEST_INTERNAL: i64 = -210_866_803_200_000_000;
/// A minute in that unit. The hour aggregate's logs hold minute buckets' starts (it is
/// built on the minute aggregate), so every range reaches a minute past its last entry.
const MINUTE_INTERNAL: i64 = 60_000_000;

/// Appends a `WITH` list defining `pending (from_time, to_time)`: the ranges, as
/// timestamps, where the rollups may miss or still count changed rows. Follow it with a
/// statement that reads `pending`. The watermarks are read from TimescaleDB's catalog
/// table, in the statement's snapshot: a call of `cagg_watermark()` anywhere in a
/// statement keeps TimescaleDB from making the watermark of the aggregates it also
/// reads a constant, and their chunks are then planned and started at run time (10 ms
/// of planning instead of 1 for the hour rollup over 30 days).
pub fn push_pending_cte(sql: &mut QueryBuilder<'_, Postgres>) {
    sql.push(format!(
        "WITH caggs AS ( \
           SELECT c.raw_hypertable_id AS raw_id, c.mat_hypertable_id AS mat_id, \
                  c.user_view_name::text AS name, w.watermark \
           FROM _timescaledb_catalog.continuous_agg AS c \
           JOIN _timescaledb_catalog.continuous_aggs_watermark AS w \
             ON w.mat_hypertable_id = c.mat_hypertable_id \
           WHERE user_view_schema = current_schema() \
             AND user_view_name IN ('logs_per_minute', 'logs_per_hour')), \
         bound AS (SELECT max(watermark) AS top, \
                   max(watermark) FILTER (WHERE name = 'logs_per_minute') AS minute, \
                   max(watermark) FILTER (WHERE name = 'logs_per_hour') AS hour FROM caggs), \
         logged AS ( \
           SELECT lowest_modified_value AS lo, greatest_modified_value AS hi \
           FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log \
           WHERE hypertable_id IN (SELECT raw_id FROM caggs) \
           UNION ALL \
           SELECT lowest_modified_value, greatest_modified_value \
           FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log \
           WHERE materialization_id IN (SELECT mat_id FROM caggs) \
           UNION ALL \
           SELECT lowest_modified_value, greatest_modified_value \
           FROM _timescaledb_catalog.continuous_aggs_materialization_ranges \
           WHERE materialization_id IN (SELECT mat_id FROM caggs) \
           UNION ALL \
           SELECT minute, hour - 1 FROM bound WHERE hour > minute), \
         pending AS ( \
           SELECT _timescaledb_functions.to_timestamp(greatest(lo, {EARLIEST_INTERNAL})) AS from_time, \
                  _timescaledb_functions.to_timestamp(least(least(hi, top) + {MINUTE_INTERNAL}, top)) AS to_time \
           FROM logged, bound \
           WHERE lo < top AND hi >= {EARLIEST_INTERNAL} AND top > {EARLIEST_INTERNAL}) "
    ));
}
