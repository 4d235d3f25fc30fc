//! The optional trigram index on `message` (`LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=on`):
//! a `pg_trgm` GIN index, so `q=` (`ILIKE '%text%'`, three characters or more) is an
//! index lookup over any range. Created and dropped by `migrate`; it never touches
//! another index.

use sqlx::PgPool;

use super::index_build::{build_index, drop_index};
use super::StorageError;

/// The trigram index on `message`.
pub const TRIGRAM_INDEX: &str = "logs_message_trgm";

/// Creates (with the `pg_trgm` extension) or drops the trigram index on `message`,
/// without blocking writers where PostgreSQL allows it ([`build_index`],
/// [`drop_index`]); an index left invalid by an interrupted build is built again.
pub async fn apply_message_trigram(pool: &PgPool, wanted: bool) -> Result<(), StorageError> {
    let state: Option<bool> =
        sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)")
            .bind(TRIGRAM_INDEX)
            .fetch_optional(pool)
            .await?;
    if state == Some(false) || (!wanted && state.is_some()) {
        drop_index(pool, TRIGRAM_INDEX).await?;
    }
    if !wanted || state == Some(true) {
        return Ok(());
    }
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        .execute(pool)
        .await
        .map_err(|error| {
            StorageError::Mode(format!(
                "LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=on needs the pg_trgm extension \
                 (PostgreSQL's contrib package): {error}"
            ))
        })?;
    build_index(
        pool,
        TRIGRAM_INDEX,
        "USING gin (message gin_trgm_ops)",
        None,
    )
    .await
}
