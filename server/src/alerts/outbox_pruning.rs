//! Pruning the outbox: delivered and failed notifications older than
//! `LOG_INGESTION_ALERT_DELIVERY_RETENTION` are deleted, a bounded batch at a time, by the
//! delivery worker's loop on every instance (rows another instance is deleting are
//! skipped, not waited for). Pending notifications are never pruned, however old. Plain
//! row deletes on the partial index of finished rows: no DDL, no table lock.

use std::time::Duration;

use sqlx::PgPool;

/// The most rows one pass deletes; the next pass takes the rest.
pub const BATCH: i64 = 5_000;

/// How often an instance prunes: at most once a minute, sooner when the retention is
/// shorter (tests), never more often than the worker polls.
pub fn every(retention: Duration, poll_interval: Duration) -> Duration {
    retention.min(Duration::from_secs(60)).max(poll_interval)
}

/// Deletes up to [`BATCH`] finished notifications older than `retention`; how many.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM alert_notifications WHERE id IN ( \
             SELECT id FROM alert_notifications \
             WHERE status <> 'pending' \
               AND coalesce(delivered_at, failed_at) < now() - make_interval(secs => $1) \
             LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(retention.as_secs_f64())
    .bind(BATCH)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prunes_once_a_minute_or_at_the_retention_when_shorter() {
        let poll = Duration::from_secs(1);
        assert_eq!(
            every(Duration::from_secs(30 * 86_400), poll),
            Duration::from_secs(60)
        );
        assert_eq!(every(Duration::from_secs(5), poll), Duration::from_secs(5));
        assert_eq!(every(Duration::from_millis(10), poll), poll);
    }
}
