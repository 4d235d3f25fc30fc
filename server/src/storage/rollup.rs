//! The entry-count rollups `logs_per_minute` and `logs_per_hour`: entries per service
//! and level per minute and per hour (columns `bucket`, `service`, `level`, `entries`;
//! buckets aligned to 2000-01-01T00:00:00Z), which the histogram over days and the
//! service list read instead of millions of rows.
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

use sqlx::PgConnection;

/// The rollups, finest first, with their bucket width in seconds.
pub const ROLLUPS: [(&str, i64); 2] = [("logs_per_minute", 60), ("logs_per_hour", 3_600)];

/// The continuous aggregates' refresh policies: `end_offset` keeps the bucket still
/// filling out of materialization (real-time aggregation counts it), `start_offset`
/// NULL lets a refresh reach late rows of any age (TimescaleDB refreshes only the
/// ranges its invalidation log says changed, so that costs nothing when nothing did).
/// Each aggregate is also indexed by service and level first (as the plain tables are by
/// migration `20261209000001_rollups_by_service_level.sql`), so a filter that matches few
/// entries reads only its own rows (`read::sparse`); TimescaleDB's own indexes per group
/// column lead with one column only.
const CREATE_CONTINUOUS_AGGREGATES: [&str; 6] = [
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
    "CREATE INDEX IF NOT EXISTS logs_per_minute_service_level \
     ON logs_per_minute (service, level, bucket)",
    "CREATE INDEX IF NOT EXISTS logs_per_hour_service_level \
     ON logs_per_hour (service, level, bucket)",
];

/// Buckets each refresh of an aggregate materializes per transaction, by its policies
/// (set by [`create_continuous_aggregates`]) and by the server's own refresher
/// (`rollup_refresh`) alike: a day of minutes, a month of hours. TimescaleDB's policy
/// default (10 buckets per transaction) redoes 30 days of minutes invalidated by a
/// backfill in 4,320 transactions, each a range the read side must treat as pending
/// meanwhile (`rollup_pending`).
pub const BUCKETS_PER_BATCH: [(&str, i32); 2] =
    [("logs_per_minute", 1_440), ("logs_per_hour", 720)];

/// Drops the plain-mode rollup tables and their triggers (if `logs` has them), before
/// `logs` becomes a hypertable. Leaves continuous aggregates of the same names alone.
pub(super) async fn drop_plain_rollups(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    // Only the triggers that exist: DROP TRIGGER locks `logs` even when there is none,
    // and this runs at every start in TimescaleDB mode.
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'logs'::regclass \
         AND tgname IN ('logs_rollup_added', 'logs_rollup_updated', 'logs_rollup_removed', \
                        'logs_rollup_truncated')",
    )
    .fetch_all(&mut *conn)
    .await?;
    for trigger in triggers {
        sqlx::query(&format!("DROP TRIGGER IF EXISTS {trigger} ON logs"))
            .execute(&mut *conn)
            .await?;
    }
    for (name, _) in ROLLUPS {
        let plain_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1 AND relkind = 'r' \
             AND relnamespace = current_schema()::regnamespace)",
        )
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
        if plain_table {
            sqlx::query(&format!("DROP TABLE {name}"))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Creates the continuous aggregates and their refresh policies (idempotent). Without
/// data: a serve that upgrades a large hypertable starts at once; until the policy
/// has materialized the history, real-time aggregation counts it from `logs`.
pub(super) async fn create_continuous_aggregates(
    conn: &mut PgConnection,
) -> Result<(), sqlx::Error> {
    for statement in CREATE_CONTINUOUS_AGGREGATES {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    // The policies' batches, every batch of a run (no cap per run), changed only where
    // they differ: `alter_job` rewrites the job's row.
    for (view, buckets) in BUCKETS_PER_BATCH {
        sqlx::query(
            "SELECT alter_job(job_id, config => config \
               || jsonb_build_object('buckets_per_batch', $2::int4, 'max_batches_per_execution', 0)) \
             FROM timescaledb_information.jobs \
             WHERE hypertable_schema = current_schema() AND hypertable_name = $1 \
               AND proc_name = 'policy_refresh_continuous_aggregate' \
               AND (config->'buckets_per_batch' IS DISTINCT FROM to_jsonb($2::int4) \
                    OR config->'max_batches_per_execution' IS DISTINCT FROM to_jsonb(0))",
        )
        .bind(view)
        .bind(buckets)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The plain-mode rollups' migrations (the tables and triggers, their index by service
/// and level): run again by [`repair_plain_rollups`].
const PLAIN_ROLLUPS_MIGRATIONS: [i64; 2] = [20261201000001, 20261209000001];

/// What the rollups are in the database: `(plain tables and their insert trigger,
/// continuous aggregates)`, read from the catalog alone (no lock on any table).
pub async fn rollups_present(pool: &sqlx::PgPool) -> Result<(bool, bool), sqlx::Error> {
    sqlx::query_as(
        "SELECT \
           (SELECT count(*) FROM pg_class WHERE relname IN ('logs_per_minute', 'logs_per_hour') \
              AND relkind = 'r' AND relnamespace = current_schema()::regnamespace) = 2 \
           AND EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'logs_rollup_added' \
              AND tgrelid = to_regclass('logs')), \
           (SELECT count(*) FROM pg_class WHERE relname IN ('logs_per_minute', 'logs_per_hour') \
              AND relkind = 'v' AND relnamespace = current_schema()::regnamespace) = 2",
    )
    .fetch_one(pool)
    .await
}

/// Creates the plain-mode rollups again (tables, triggers, counts of the stored rows)
/// from their migration, in one transaction, for a plain table that lost them (a
/// conversion to TimescaleDB interrupted by a version that did not run it in one
/// transaction). Locks `logs` against writes while it counts the stored rows.
pub(super) async fn repair_plain_rollups(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let migrations: Vec<_> = super::migrator()
        .iter()
        .filter(|migration| PLAIN_ROLLUPS_MIGRATIONS.contains(&migration.version))
        .map(|migration| migration.sql.clone())
        .collect();
    if migrations.is_empty() {
        return Ok(());
    }
    tracing::warn!("logs has no rollups: creating them again and counting the stored rows");
    let mut tx = sqlx::Connection::begin(conn).await?;
    for migration in migrations {
        sqlx::raw_sql(&migration).execute(&mut *tx).await?;
    }
    tx.commit().await
}
