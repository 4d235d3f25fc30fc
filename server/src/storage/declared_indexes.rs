//! The optional indexes on `logs` an operator declares, created and dropped by
//! `migrate` (and `serve`, which migrates) to match the settings exactly; each one is
//! paid for by every insert (README, "Performance"), so none is on by default:
//! - `LOG_INGESTION_INDEXED_METADATA_KEYS=user_id,request_id`: one btree per key on
//!   `(metadata->>'KEY', timestamp DESC)`, partial on the key being present, so
//!   `meta.KEY=VALUE` finds its entries (newest first) without reading every row of
//!   the range;
//! - `LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=on`: a `pg_trgm` GIN index on `message`, so
//!   `q=` (`ILIKE '%text%'`, three characters or more) is an index lookup over any range.
//!
//! Owns the key rule, the index names and the indexed expression (the read side's
//! filters write the same expression through [`expression`], so the planner matches
//! them). It never touches any other index.

use sqlx::PgPool;

use super::StorageError;
use crate::config::DatabaseSettings;

/// At most this many declared keys: each one costs every insert that carries it.
pub const MAX_KEYS: usize = 16;
/// Index names are `logs_meta_KEY`, and PostgreSQL identifiers hold 63 bytes.
const MAX_KEY_BYTES: usize = 53;
const INDEX_PREFIX: &str = "logs_meta_";
/// Serialises index changes between instances of a fleet starting together.
const LOCK_KEY: i64 = 0x4c49_4d49; // "LIMI"

/// Why `key` cannot be declared, if it cannot: a key is written into DDL and into the
/// read side's SQL as a literal, so only letters, digits and `_` are accepted.
pub fn key_problem(key: &str) -> Option<String> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (!valid).then(|| {
        format!(
            "{}: a metadata key to index is 1 to {MAX_KEY_BYTES} letters, digits or _",
            crate::client_text::truncated(key, crate::client_text::MAX_QUOTED_CHARS)
        )
    })
}

/// The indexed expression for `key` (already checked by [`key_problem`]).
pub fn expression(key: &str) -> String {
    format!("(metadata->>'{key}')")
}

fn index_name(key: &str) -> String {
    format!("{INDEX_PREFIX}{}", key.to_ascii_lowercase())
}

const TRIGRAM_INDEX: &str = "logs_message_trgm";

/// Makes the declared indexes match `settings` (see the module's top). A build locks
/// out writes to `logs` for its duration: run `migrate` before rolling out a new
/// declaration on a large table.
pub async fn apply(pool: &PgPool, settings: &DatabaseSettings) -> Result<(), StorageError> {
    apply_metadata_keys(pool, &settings.indexed_metadata_keys).await?;
    apply_message_trigram(pool, settings.message_trigram_index).await
}

/// Creates (with the `pg_trgm` extension) or drops the trigram index on `message`.
pub async fn apply_message_trigram(pool: &PgPool, wanted: bool) -> Result<(), StorageError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    if wanted {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            .execute(&mut *tx)
            .await
            .map_err(|error| {
                StorageError::Mode(format!(
                    "LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=on needs the pg_trgm extension \
                     (PostgreSQL's contrib package): {error}"
                ))
            })?;
        sqlx::query(&format!(
            "CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON logs USING gin (message gin_trgm_ops)"
        ))
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(&format!("DROP INDEX IF EXISTS {TRIGRAM_INDEX}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Makes the `logs_meta_*` indexes on `logs` match `keys`: drops the others, creates
/// the missing ones. Refuses invalid keys.
pub async fn apply_metadata_keys(pool: &PgPool, keys: &[String]) -> Result<(), StorageError> {
    if keys.len() > MAX_KEYS {
        return Err(StorageError::Mode(format!(
            "LOG_INGESTION_INDEXED_METADATA_KEYS: at most {MAX_KEYS} keys"
        )));
    }
    if let Some(problem) = keys.iter().find_map(|key| key_problem(key)) {
        return Err(StorageError::Mode(format!(
            "LOG_INGESTION_INDEXED_METADATA_KEYS: {problem}"
        )));
    }
    let wanted: Vec<String> = keys.iter().map(|key| index_name(key)).collect();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    let existing: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'logs' \
         AND schemaname = current_schema() AND starts_with(indexname, $1)",
    )
    .bind(INDEX_PREFIX)
    .fetch_all(&mut *tx)
    .await?;
    for name in existing.iter().filter(|name| !wanted.contains(name)) {
        tracing::info!(index = %name, "dropping a metadata index no longer declared");
        sqlx::query(&format!("DROP INDEX IF EXISTS {name}"))
            .execute(&mut *tx)
            .await?;
    }
    for (key, name) in keys.iter().zip(&wanted) {
        if existing.contains(name) {
            continue;
        }
        tracing::info!(index = %name, "creating the metadata index of a declared key");
        let expression = expression(key);
        sqlx::query(&format!(
            "CREATE INDEX IF NOT EXISTS {name} ON logs ({expression}, timestamp DESC) \
             WHERE {expression} IS NOT NULL"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_can_be_declared() {
        assert_eq!(key_problem("user_id"), None);
        assert_eq!(key_problem("RequestId2"), None);
        for bad in ["", "a'b", "a b", "a.b", "ü", &"k".repeat(54)] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        assert!(key_problem(&"'".repeat(10_000)).unwrap().len() < 200);
    }
}
