//! Keeps TimescaleDB's rollups (the continuous aggregates of `rollup`) close to the
//! rows between their policies' runs: every few seconds it asks TimescaleDB's catalog
//! whether anything is pending (`rollup_pending`: rows changed below a watermark, as a
//! backfill or late rows leave them) or whether the minute aggregate's watermark lags
//! behind now (a fresh aggregate, a large ingest), and if so refreshes the minute
//! aggregate, then the hour one, up to their policies' end offsets. A refresh redoes
//! only the ranges TimescaleDB logged as changed plus what lies above the watermark, so
//! after a backfill the histogram and the service list read materialized counts again
//! within seconds rather than at the next policy run (minutes, one batch per run), and
//! real-time aggregation never has far to read.
//!
//! Writers never wait for it: a refresh reads the rows and writes only the aggregates'
//! own tables and TimescaleDB's logs (measured: inserts, late and current, commit in the
//! usual time while a 30-day refresh runs). One instance of a fleet refreshes at a time,
//! never beside a run of the refresh policies by `policy_jobs` (their run locks); one
//! that finds a lock held skips its round. Runs only in
//! TimescaleDB mode, from the policy watcher's task (`policy_jobs`).

use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

use super::job_locks::RUN_LOCK_CLASS;
use super::rollup::BUCKETS_PER_BATCH;
use super::rollup_pending;

/// How often the catalog is asked.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// A minute watermark further behind now than this is refreshed up even when nothing
/// is pending below it (real-time aggregation would count the rows above it).
const MAX_LAG_SECS: f64 = 180.0;

/// The aggregates, finest first, with the end offset of their refresh policy; each is
/// refreshed in the policies' batches (`rollup::BUCKETS_PER_BATCH`).
const REFRESHES: [(&str, &str); 2] = [("logs_per_minute", "1 minute"), ("logs_per_hour", "1 hour")];

/// Checks every `every` until the task is dropped.
pub async fn run(pool: PgPool, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match refresh_if_needed(&pool).await {
            Ok(_) => {}
            Err(error) if error.to_string().contains("concurrent refresh") => {
                tracing::debug!(%error, "rollup refresh left to the one already running");
            }
            Err(error) => tracing::warn!(%error, "cannot refresh the rollups; will retry"),
        }
    }
}

/// What a refresh round sees: pending ranges, the minute watermark's lag behind now in
/// seconds, and the two watermarks (minute, hour) as text.
type Need = (i64, f64, Option<String>, Option<String>);

async fn need(pool: &PgPool) -> Result<Need, sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new("");
    rollup_pending::push_pending_cte(&mut sql);
    sql.push(format!(
        "SELECT (SELECT count(*) FROM pending), \
           COALESCE(EXTRACT(epoch FROM now() - _timescaledb_functions.to_timestamp( \
             (SELECT minute FROM bound)))::float8, 0), \
           (SELECT _timescaledb_functions.to_timestamp(minute)::text FROM bound \
            WHERE minute > {EARLIEST}), \
           (SELECT _timescaledb_functions.to_timestamp(hour)::text FROM bound \
            WHERE hour > {EARLIEST})",
        EARLIEST = rollup_pending::EARLIEST_INTERNAL
    ));
    sql.build_query_as().fetch_one(pool).await
}

/// Refreshes the rollups when [`need`] says so; `Ok(true)` when it did.
pub async fn refresh_if_needed(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let (pending, lag, minute, hour) = need(pool).await?;
    if pending == 0 && lag < MAX_LAG_SECS {
        return Ok(false);
    }
    let mut connection = pool.acquire().await?;
    // The refresh policies' own run locks (`policy_jobs`): the watcher of this or another
    // instance skips a policy run while this refresh holds them, and this round is
    // skipped while one of them runs.
    let jobs: Vec<i32> = sqlx::query_scalar(
        "SELECT job_id FROM timescaledb_information.jobs \
         WHERE hypertable_schema = current_schema() \
           AND hypertable_name IN ('logs_per_minute', 'logs_per_hour') \
           AND proc_name = 'policy_refresh_continuous_aggregate'",
    )
    .fetch_all(&mut *connection)
    .await?;
    let locked: Vec<i32> = sqlx::query_scalar(
        "SELECT job FROM unnest($2::int4[]) AS job WHERE pg_try_advisory_lock($1, job)",
    )
    .bind(RUN_LOCK_CLASS)
    .bind(&jobs)
    .fetch_all(&mut *connection)
    .await?;
    let refreshed = if locked.len() == jobs.len() {
        refresh(&mut connection, [minute, hour]).await
    } else {
        Ok(false)
    };
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, job) FROM unnest($2::int4[]) AS job")
        .bind(RUN_LOCK_CLASS)
        .bind(&locked)
        .execute(&mut *connection)
        .await;
    if unlocked.is_err() {
        // Never hand a connection that may still hold a lock back to the pool.
        connection.close_on_drop();
    }
    if refreshed.as_ref().is_ok_and(|done| *done) {
        tracing::debug!(pending, lag_secs = lag, "rollups refreshed");
    }
    refreshed
}

/// Refreshes the minute aggregate, then the hour one, up to their end offsets or their
/// `watermarks` (minute, hour) where these are later: what was materialized beyond the
/// end offset (a refresh up to now) and changed since is redone too.
async fn refresh(
    connection: &mut PgConnection,
    watermarks: [Option<String>; 2],
) -> Result<bool, sqlx::Error> {
    for (((view, end_offset), (_, buckets)), watermark) in
        REFRESHES.into_iter().zip(BUCKETS_PER_BATCH).zip(watermarks)
    {
        let mut end = format!("now() - interval '{end_offset}'");
        if let Some(watermark) = watermark {
            // TimescaleDB's own text for a time it returned: no quote in it.
            end = format!(
                "greatest({end}, timestamptz '{}')",
                watermark.replace('\'', "")
            );
        }
        // A procedure: its window is SQL, not a bound parameter (its type is "any").
        let statement = format!(
            "CALL refresh_continuous_aggregate('{view}', NULL, {end}, \
             options => '{{\"buckets_per_batch\": {buckets}}}')"
        );
        sqlx::query(&statement).execute(&mut *connection).await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refresh_takes_the_batches_of_its_own_aggregate() {
        let refreshed: Vec<&str> = REFRESHES.iter().map(|(view, _)| *view).collect();
        let batched: Vec<&str> = BUCKETS_PER_BATCH.iter().map(|(view, _)| *view).collect();
        assert_eq!(refreshed, batched);
    }
}
