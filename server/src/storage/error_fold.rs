//! The fold: error occurrences appended as their rows are stored (`error_group_deltas`,
//! by the rows' trigger, see `error_groups`) moved into their groups' counts (`error_groups`) and minutes
//! (`error_group_minutes`), in one transaction that deletes exactly the deltas it adds.
//! Owns that statement, the lock that serialises it, and the task that runs it shortly
//! after commits.
//!
//! Counts are exact at every read: readers and status changes fold first (the deltas
//! committed before they started are then in the groups), and a delta is either still
//! in `error_group_deltas` or folded, never both. Regressions and the ends of ignores
//! are decided here, with the time the occurrences were stored (`recorded_at`), so a
//! late fold does not move them. Everything that writes group rows (folds, status
//! changes, merges, the expiry of old minutes) first takes one transaction-level
//! advisory lock: they run one at a time, on any instance, so they never deadlock;
//! storing rows only appends deltas and never takes it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The pause after a fold before the next: commits in between are folded together.
pub const FOLD_PAUSE: Duration = Duration::from_millis(500);
/// The pause after a failed fold (the database is down or refusing writes).
const RETRY_PAUSE: Duration = Duration::from_secs(5);

/// Takes the lock every writer of group rows holds until its transaction ends.
pub async fn lock_groups(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('log_ingestion.error_groups'))")
        .execute(conn)
        .await?;
    Ok(())
}

/// Folds every committed delta, on `conn` inside a transaction that holds
/// [`lock_groups`]; returns how many deltas.
pub async fn fold_locked(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(FOLD).fetch_one(conn).await
}

/// Folds every committed delta in a transaction of its own; returns how many.
pub async fn fold(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_groups(&mut tx).await?;
    let folded = fold_locked(&mut tx).await?;
    tx.commit().await?;
    Ok(folded)
}

/// Runs [`fold`] after `committed` is notified (a group commit stored error rows), at
/// most once per [`FOLD_PAUSE`], until aborted.
pub fn spawn(pool: PgPool, committed: Arc<Notify>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            committed.notified().await;
            match fold(&pool).await {
                Ok(_) => tokio::time::sleep(FOLD_PAUSE).await,
                Err(error) => {
                    tracing::warn!(%error, "folding error occurrences into their groups failed; readers fold what is left");
                    // Try again even if no commit comes: the deltas are still there.
                    committed.notify_one();
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    })
}

/// Deletes every visible delta and adds it to its group and minute. A resolved group
/// seen again is `unresolved`, regressed when its first new occurrence was stored (not
/// before it was resolved); an ignored one becomes `unresolved` once its count reaches
/// `ignore_until_count` or an occurrence was stored at or after `ignore_until_time`. A
/// new group's sample is its latest occurrence. Minutes are upserted in key order.
const FOLD: &str = "
WITH taken AS (
    DELETE FROM error_group_deltas
    RETURNING group_id, bucket, count, first_seen, last_seen, recorded_at
), per_group AS (
    SELECT group_id, sum(count)::bigint AS n, min(first_seen) AS first_seen,
           max(last_seen) AS last_seen, min(recorded_at) AS first_recorded,
           max(recorded_at) AS last_recorded
    FROM taken GROUP BY group_id
), grouped AS (
    UPDATE error_groups AS g SET
        count = g.count + p.n,
        first_seen = least(g.first_seen, p.first_seen),
        last_seen = greatest(g.last_seen, p.last_seen),
        sample_log_id = coalesce(g.sample_log_id,
            (SELECT max(l.id) FROM logs l
             WHERE l.fingerprint = g.fingerprint AND l.timestamp = p.last_seen
               AND l.service = g.service)),
        regressed_at = CASE WHEN g.status = 'resolved'
                            THEN greatest(p.first_recorded, g.resolved_at)
                            ELSE g.regressed_at END,
        status = CASE
            WHEN g.status = 'resolved' THEN 'unresolved'
            WHEN g.status = 'ignored'
                 AND (g.ignore_until_count <= g.count + p.n
                      OR g.ignore_until_time <= p.last_recorded) THEN 'unresolved'
            ELSE g.status END,
        ignore_until_count = CASE WHEN g.status = 'ignored'
                 AND (g.ignore_until_count <= g.count + p.n
                      OR g.ignore_until_time <= p.last_recorded) THEN NULL
            ELSE g.ignore_until_count END,
        ignore_until_time = CASE WHEN g.status = 'ignored'
                 AND (g.ignore_until_count <= g.count + p.n
                      OR g.ignore_until_time <= p.last_recorded) THEN NULL
            ELSE g.ignore_until_time END
    FROM per_group p
    WHERE g.id = p.group_id
    RETURNING g.id
), minutes AS (
    INSERT INTO error_group_minutes AS m (group_id, bucket, count)
    SELECT group_id, bucket, sum(count)::bigint FROM taken
    GROUP BY group_id, bucket
    ORDER BY group_id, bucket
    ON CONFLICT (group_id, bucket) DO UPDATE SET count = m.count + EXCLUDED.count
    RETURNING 1
)
SELECT count(*) FROM taken";
