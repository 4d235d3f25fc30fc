//! Changing error groups: a status (resolve, ignore — optionally until a count or a
//! time —, reopen) and merging one group into another. Owns these writes; each runs in
//! one transaction that first takes the lock of every writer of group rows and folds the
//! occurrences committed so far (`storage::error_fold`: a change applies to the counts
//! as they are, and occurrences stored before a resolve do not regress it), then locks
//! the rows it changes. Group commits never lock group rows, so they never wait for it.
//!
//! A status is set on the group and on every group merged into it (ingest moves each
//! row on its own: a merged group seen again regresses the group it is part of). A
//! merged group's members move to the target and take its status.
//!
//! Every change is audited (`auth::audit`) under the actor who asked, in its own
//! transaction: a change and its record commit together.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};

use crate::auth::{audit, Actor};
use crate::storage::error_fold;

/// The status asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Resolve,
    Reopen,
    Ignore {
        /// Ignored for this many more occurrences.
        count: Option<i64>,
        /// Ignored until an occurrence at or after this time.
        time: Option<DateTime<Utc>>,
    },
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("Error group not found")]
    NotFound,
    /// The merge would make a group part of itself.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A transaction holding the group writers' lock, with every committed occurrence folded.
async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    error_fold::lock_groups(&mut tx).await?;
    error_fold::fold_locked(&mut tx).await?;
    Ok(tx)
}

/// The root of `id`: the group it is merged into, or itself; `None` if unknown (or
/// without an occurrence yet).
async fn root_of(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(merged_into, id) FROM error_groups \
         WHERE id = $1 AND first_seen IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Locks the groups `ids` and the groups merged into them.
async fn lock(tx: &mut Transaction<'_, Postgres>, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT id FROM error_groups WHERE id = ANY($1) OR merged_into = ANY($1) \
         ORDER BY service, fingerprint FOR UPDATE",
    )
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sets the status of group `id` (of the group it is merged into, if it is) and of
/// its members; returns the group whose status changed.
pub async fn set_status(
    pool: &PgPool,
    actor: &Actor,
    id: i64,
    change: &Change,
) -> Result<i64, ChangeError> {
    let mut tx = begin(pool).await?;
    let root = root_of(&mut tx, id).await?.ok_or(ChangeError::NotFound)?;
    lock(&mut tx, &[root]).await?;
    let (status, count, time, action) = match change {
        Change::Resolve => ("resolved", None, None, "error_group.resolve"),
        Change::Reopen => ("unresolved", None, None, "error_group.reopen"),
        Change::Ignore { count, time } => ("ignored", *count, *time, "error_group.ignore"),
    };
    sqlx::query(
        "UPDATE error_groups SET status = $2, \
             resolved_at = CASE WHEN $2 = 'resolved' THEN now() ELSE resolved_at END, \
             regressed_at = CASE WHEN $2 = 'unresolved' THEN regressed_at END, \
             ignore_until_count = count + $3, \
             ignore_until_time = $4 \
         WHERE id = $1 OR merged_into = $1",
    )
    .bind(root)
    .bind(status)
    .bind(count)
    .bind(time)
    .execute(&mut *tx)
    .await?;
    let details = json!({"group": id, "status": status, "ignore_until_count": count, "ignore_until_time": time});
    audit::record(&mut tx, actor, action, &target(root), details).await?;
    tx.commit().await?;
    Ok(root)
}

/// Merges group `id` (and the groups merged into it) into `into` (the group `into` is
/// merged into, if it is); returns the group merged into.
pub async fn merge(pool: &PgPool, actor: &Actor, id: i64, into: i64) -> Result<i64, ChangeError> {
    let mut tx = begin(pool).await?;
    let source: Option<(Option<i64>,)> = sqlx::query_as(
        "SELECT merged_into FROM error_groups WHERE id = $1 AND first_seen IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((source_root,)) = source else {
        return Err(ChangeError::NotFound);
    };
    let target = root_of(&mut tx, into).await?.ok_or(ChangeError::NotFound)?;
    if target == id {
        return Err(ChangeError::Refused(format!(
            "into: group {id} cannot be merged into itself{}",
            if into == id {
                String::new()
            } else {
                format!(" (group {into} is part of it)")
            }
        )));
    }
    if source_root == Some(target) {
        tx.commit().await?;
        return Ok(target);
    }
    lock(&mut tx, &[id, target]).await?;
    sqlx::query(
        "UPDATE error_groups AS g SET merged_into = t.id, status = t.status, \
             resolved_at = t.resolved_at, regressed_at = NULL, \
             ignore_until_count = CASE WHEN t.ignore_until_count IS NULL THEN NULL \
                                       ELSE g.count + (t.ignore_until_count - t.count) END, \
             ignore_until_time = t.ignore_until_time \
         FROM error_groups AS t \
         WHERE t.id = $2 AND (g.id = $1 OR g.merged_into = $1)",
    )
    .bind(id)
    .bind(target)
    .execute(&mut *tx)
    .await?;
    let details = json!({"group": id, "into": target});
    audit::record(
        &mut tx,
        actor,
        "error_group.merge",
        &self::target(id),
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(target)
}

/// How the audit log names group `id`.
fn target(id: i64) -> String {
    format!("error_group:{id}")
}
