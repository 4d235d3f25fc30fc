//! Retention: how long rows of `logs` are kept (`LOG_INGESTION_RETENTION_DAYS`) in both
//! storage modes, plus expiry of idempotency records. TimescaleDB drops whole chunks
//! (of `logs` and of its rollups' continuous aggregates) through its own policy (run by `policy_jobs` when the scheduler fails it); plain
//! PostgreSQL gets a periodic delete in small batches.
//! This module never deletes anything younger than the configured retention.

use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;

use super::{idempotency, rollup, StorageError, StorageMode};

/// Rows deleted per statement by the plain-mode task, so no delete holds locks long.
const DELETE_BATCH: i64 = 10_000;

/// Installs (or removes, when `days` is `None`) TimescaleDB's retention policy.
/// Plain mode needs nothing installed: the maintenance task does the work.
pub async fn apply_policy(
    pool: &PgPool,
    mode: StorageMode,
    days: Option<u32>,
) -> Result<(), StorageError> {
    if mode != StorageMode::Timescale {
        return Ok(());
    }
    // The rollups' continuous aggregates keep their counts when chunks of `logs` are
    // dropped: they get the same retention, so counts of dropped rows go too.
    let relations = std::iter::once("logs").chain(rollup::ROLLUPS.iter().map(|(name, _)| *name));
    for relation in relations {
        sqlx::query("SELECT remove_retention_policy($1::regclass, if_exists => true)")
            .bind(relation)
            .execute(pool)
            .await?;
        if let Some(days) = days {
            sqlx::query("SELECT add_retention_policy($1::regclass, make_interval(days => $2))")
                .bind(relation)
                .bind(i32::try_from(days).unwrap_or(i32::MAX))
                .execute(pool)
                .await?;
        }
    }
    Ok(())
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
/// modes) and idempotency expiry now and then every `every`.
pub fn spawn_maintenance(
    pool: PgPool,
    mode: StorageMode,
    days: Option<u32>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
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
