//! The entry-count rollups `logs_per_minute` and `logs_per_hour`: entries per service
//! and level per minute and per hour (columns `bucket`, `service`, `level`, `entries`;
//! buckets aligned to 2000-01-01T00:00:00Z), which the histogram over days and the
//! service list read instead of millions of rows (issue 15).
//!
//! Two implementations with the same names and columns, so the read side has one query:
//! - plain PostgreSQL: tables kept by statement-level triggers on `logs` (migration
//!   `20261201000001_logs_rollups.sql`). Every writer (the group committer's COPY, a
//!   test's INSERT, retention's DELETE, a TRUNCATE) changes the counts in the same
//!   transaction as the rows, so counts never disagree with committed rows, and the
//!   ingest path needs no code of its own for it. A key may have several rows (a
//!   `shard` per writing backend, so concurrent writers do not wait on each other's
//!   row locks): readers sum `entries`.
//! - TimescaleDB: continuous aggregates (hour on top of minute) with real-time
//!   aggregation (`materialized_only = false`: the part not yet materialized is counted
//!   from `logs` at query time) and a refresh policy each, which `policy_jobs` watches
//!   like compression and retention. Hypertables refuse the triggers' transition
//!   tables, so before `logs` becomes a hypertable the plain tables and triggers are
//!   dropped here ([`drop_plain_rollups`]); the aggregates are created after it
//!   ([`create_continuous_aggregates`]).
//!
//! This module owns that DDL only; it never reads counts (that is `read::counts`) and
//! never writes log rows.

use sqlx::PgPool;

use super::StorageError;

/// The rollups, finest first, with their bucket width in seconds.
pub const ROLLUPS: [(&str, i64); 2] = [("logs_per_minute", 60), ("logs_per_hour", 3_600)];

/// The continuous aggregates' refresh policies: `end_offset` keeps the bucket still
/// filling out of materialization (real-time aggregation counts it), `start_offset`
/// NULL lets a refresh reach late rows of any age (TimescaleDB refreshes only the
/// ranges its invalidation log says changed, so that costs nothing when nothing did).
const CREATE_CONTINUOUS_AGGREGATES: [&str; 4] = [
    "CREATE MATERIALIZED VIEW IF NOT EXISTS logs_per_minute \
     WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS \
     SELECT time_bucket('1 minute', timestamp, timestamptz '2000-01-01 00:00:00+00') AS bucket, \
            service, level, count(*) AS entries \
     FROM logs GROUP BY 1, 2, 3 WITH NO DATA",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS logs_per_hour \
     WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS \
     SELECT time_bucket('1 hour', bucket, timestamptz '2000-01-01 00:00:00+00') AS bucket, \
            service, level, sum(entries)::int8 AS entries \
     FROM logs_per_minute GROUP BY 1, 2, 3 WITH NO DATA",
    "SELECT add_continuous_aggregate_policy('logs_per_minute', start_offset => NULL, \
       end_offset => interval '1 minute', schedule_interval => interval '1 minute', \
       if_not_exists => true)",
    "SELECT add_continuous_aggregate_policy('logs_per_hour', start_offset => NULL, \
       end_offset => interval '1 hour', schedule_interval => interval '5 minutes', \
       if_not_exists => true)",
];

/// Drops the plain-mode rollup tables and their triggers (if `logs` has them), before
/// `logs` becomes a hypertable. Leaves continuous aggregates of the same names alone.
pub(super) async fn drop_plain_rollups(pool: &PgPool) -> Result<(), StorageError> {
    // Only the triggers that exist: DROP TRIGGER locks `logs` even when there is none,
    // and this runs at every start in TimescaleDB mode.
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'logs'::regclass \
         AND tgname IN ('logs_rollup_added', 'logs_rollup_updated', 'logs_rollup_removed', \
                        'logs_rollup_truncated')",
    )
    .fetch_all(pool)
    .await?;
    for trigger in triggers {
        sqlx::query(&format!("DROP TRIGGER IF EXISTS {trigger} ON logs"))
            .execute(pool)
            .await?;
    }
    for (name, _) in ROLLUPS {
        let plain_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1 AND relkind = 'r' \
             AND relnamespace = current_schema()::regnamespace)",
        )
        .bind(name)
        .fetch_one(pool)
        .await?;
        if plain_table {
            sqlx::query(&format!("DROP TABLE {name}"))
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// Creates the continuous aggregates and their refresh policies (idempotent). Without
/// data: a serve that upgrades a large hypertable starts at once; until the policy
/// has materialized the history, real-time aggregation counts it from `logs`.
pub(super) async fn create_continuous_aggregates(pool: &PgPool) -> Result<(), StorageError> {
    for statement in CREATE_CONTINUOUS_AGGREGATES {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(())
}
