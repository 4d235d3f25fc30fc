//! The audit log: who changed what. One row per change, written in the change's own
//! transaction so a change and its record commit together. Readable by admins.

use serde_json::Value;
use sqlx::PgConnection;

use super::Actor;

/// Records `action` on `target` by `actor`, in the caller's transaction.
pub async fn record(
    connection: &mut PgConnection,
    actor: &Actor,
    action: &str,
    target: &str,
    details: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (actor, user_id, action, target, details) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(actor.label())
    .bind(actor.user_id())
    .bind(action)
    .bind(target)
    .bind(details)
    .execute(connection)
    .await?;
    Ok(())
}
