//! Retention: how long rows of `logs` are kept, in both storage modes, plus expiry of
//! idempotency records. `migrate` declares it (`LOG_INGESTION_RETENTION_DAYS`, the one
//! row of `log_retention`; in TimescaleDB mode also the retention policies that drop
//! whole chunks of `logs` and of its rollups' continuous aggregates, run by
//! `policy_jobs` when the scheduler fails them). `serve` never changes it: every instance
//! follows the declared row (plain PostgreSQL gets a periodic delete in small batches).
//! This module never deletes anything younger than the declared retention.

use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;

use super::{idempotency, rollup, StorageError, StorageMode};

/// Rows deleted per statement by the plain-mode task, so no delete holds locks long.
const DELETE_BATCH: i64 = 10_000;

/// The retention the database declares: `None` keeps rows forever.
pub async fn declared_days(pool: &PgPool) -> Result<Option<u32>, sqlx::Error> {
    let days: Option<i32> = sqlx::query_scalar("SELECT days FROM log_retention")
        .fetch_optional(pool)
        .await?;
    Ok(days.and_then(|days| u32::try_from(days).ok()))
}

/// Declares `days` (`None`: keep forever), in one transaction: the row every instance
/// follows and, in TimescaleDB mode, the retention policies of `logs` and its rollups'
/// continuous aggregates (catalog rows; no table lock). What `migrate` does, and `serve`
/// when it creates the schema of a fresh database.
pub async fn declare(
    pool: &PgPool,
    mode: StorageMode,
    days: Option<u32>,
) -> Result<(), StorageError> {
    let mut transaction = pool.begin().await?;
    sqlx::query("DELETE FROM log_retention")
        .execute(&mut *transaction)
        .await?;
    let interval_days = days.map(|days| i32::try_from(days).unwrap_or(i32::MAX));
    if let Some(days) = interval_days {
        sqlx::query("INSERT INTO log_retention (days) VALUES ($1)")
            .bind(days)
            .execute(&mut *transaction)
            .await?;
    }
    if mode == StorageMode::Timescale {
        // The continuous aggregates keep their counts when chunks of `logs` are dropped:
        // they get the same retention, so counts of dropped rows go too.
        let relations =
            std::iter::once("logs").chain(rollup::ROLLUPS.iter().map(|(name, _)| *name));
        for relation in relations {
            sqlx::query("SELECT remove_retention_policy($1::regclass, if_exists => true)")
                .bind(relation)
                .execute(&mut *transaction)
                .await?;
            if let Some(days) = interval_days {
                sqlx::query("SELECT add_retention_policy($1::regclass, make_interval(days => $2))")
                    .bind(relation)
                    .bind(days)
                    .execute(&mut *transaction)
                    .await?;
            }
        }
    }
    transaction.commit().await?;
    Ok(())
}

/// Warns when this instance's setting differs from what the database declares, which
/// is what it follows.
pub fn warn_if_setting_differs(setting: Option<u32>, declared: Option<u32>) {
    if setting != declared {
        let show =
            |days: Option<u32>| days.map_or_else(|| "forever".to_owned(), |d| format!("{d} days"));
        tracing::warn!(
            "LOG_INGESTION_RETENTION_DAYS says {} but the database keeps rows {}; this \
             instance follows the database. Run `log-ingestion-server migrate` with the \
             setting the fleet should have to change it",
            show(setting),
            show(declared)
        );
    }
}

/// Deletes rows older than `days`, in batches; returns how many.
pub async fn delete_expired_logs(pool: &PgPool, days: u32) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM logs WHERE ctid IN ( \
               SELECT ctid FROM logs \
               WHERE timestamp < now() - make_interval(days => $1) \
               LIMIT $2)",
        )
        .bind(i32::try_from(days).unwrap_or(i32::MAX))
        .bind(DELETE_BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < DELETE_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Runs retention (plain mode), the expiry of error groups' per-minute counts (both
/// modes) and idempotency expiry now and then every `every`, each round by the
/// retention the database declares then.
pub fn spawn_maintenance(pool: PgPool, mode: StorageMode, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let days = match declared_days(&pool).await {
                Ok(days) => days,
                Err(error) => {
                    tracing::warn!(%error, "reading the declared retention failed; will retry");
                    None
                }
            };
            if let (StorageMode::Postgres, Some(days)) = (mode, days) {
                match delete_expired_logs(&pool, days).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, days, "retention removed old log rows"),
                    Err(error) => tracing::warn!(%error, "retention delete failed; will retry"),
                }
            }
            if let Some(days) = days {
                if let Err(error) = super::error_groups::delete_expired_minutes(&pool, days).await {
                    tracing::warn!(%error, "error group minutes expiry failed; will retry");
                }
            }
            if let Err(error) = idempotency::delete_expired(&pool).await {
                tracing::warn!(%error, "idempotency expiry failed; will retry");
            }
        }
    })
}
