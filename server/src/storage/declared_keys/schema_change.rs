//! Declaring and undeclaring keys in the schema (DDL, run by `migrate`, and by
//! `serve` on a fresh database only): columns, checks, indexes, and filling the
//! columns of rows already stored.

use sqlx::PgPool;

use super::indexed_text::indexed_text_sql;
use super::live::{check_names, declared_in};
use super::naming::{check_name, column, index_name, key_problem, INDEX_PREFIX, MAX_KEYS};
use super::DeclaredKeys;
use crate::config::DatabaseSettings;
use crate::storage::index_build::{build_index, drop_index, quoted};
use crate::storage::StorageError;

/// Serialises index changes between instances of a fleet starting together.
const LOCK_KEY: i64 = 0x4c49_4d49; // "LIMI"

/// In TimescaleDB mode, decompresses every compressed chunk of `logs`: a chunk
/// compressed again keeps the sparse indexes it was first compressed with, so only a
/// chunk compressed after the key's index exists gets the key's bloom filters. The
/// compression policy compresses them again.
const DECOMPRESS_CHUNKS: &str = r#"
DO $$
BEGIN
    -- Nested: PL/pgSQL plans a statement when it first runs it, and the catalog view
    -- does not exist without the extension.
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                   WHERE hypertable_name = 'logs' AND compression_enabled) THEN
            PERFORM decompress_chunk(c, if_compressed => true) FROM show_chunks('logs') AS c;
        END IF;
    END IF;
END
$$
"#;

/// What `migrate` does with the declarations the settings no longer hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeclared {
    /// Left declared: what `serve` does when it creates the schema of a fresh
    /// database (a second instance starting at the same moment never undeclares the
    /// first one's keys).
    Keep,
    /// Undeclared (index and check dropped, column kept): what the `migrate` command does.
    Drop,
}

/// Makes the declared keys and index match `settings` (see the module's top); with
/// [`Undeclared::Keep`] only adds. Declaring keys locks `logs` (reads and writes wait)
/// while it fills their columns for every stored row (docs/operations.md).
pub async fn apply(
    pool: &PgPool,
    settings: &DatabaseSettings,
    undeclared: Undeclared,
) -> Result<(), StorageError> {
    apply_metadata_keys(pool, &settings.declared_keys, undeclared).await?;
    crate::storage::trigram_index::apply_message_trigram(pool, settings.message_trigram_index).await
}

/// Makes the declared metadata keys of `logs` match `keys`: for each key its column
/// (added, or kept from an earlier declaration), its check and its index; with
/// [`Undeclared::Drop`] the checks and indexes of keys no longer declared dropped. An
/// index named like a key's that is on an expression, not the column, is dropped. The columns of newly
/// declared keys are filled for the rows already stored, in one pass. The declarations
/// change in one transaction (all or nothing, within the lock timeout); the indexes are
/// built or dropped after it, one by one, without blocking writers where PostgreSQL
/// allows it ([`build_index`]), so a run interrupted there leaves declared keys whose
/// index is missing or invalid (reads stay correct, only slower) and the next run
/// finishes them. Refuses invalid keys.
pub async fn apply_metadata_keys(
    pool: &PgPool,
    keys: &[String],
    undeclared: Undeclared,
) -> Result<(), StorageError> {
    let declared = DeclaredKeys::new(keys);
    let keys = declared.keys();
    if keys.len() > MAX_KEYS {
        return Err(StorageError::Mode(format!(
            "LOG_INGESTION_DECLARED_KEYS: at most {MAX_KEYS} keys"
        )));
    }
    if let Some(problem) = keys.iter().find_map(|key| key_problem(key)) {
        return Err(StorageError::Mode(format!(
            "LOG_INGESTION_DECLARED_KEYS: {problem}"
        )));
    }
    let mut tx = pool.begin().await?;
    if let Err(error) = change_declarations(&mut tx, keys, undeclared).await {
        let _ = tx.rollback().await;
        return Err(match error {
            StorageError::Query(error) => crate::storage::locks::explain(pool, "logs", error).await,
            other => other,
        });
    }
    tx.commit().await?;
    // The indexes after the declarations, each on its own (a build may take long, and
    // must not hold the declarations' lock): (name, is an expression index, valid).
    let indexes: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, i.indexprs IS NOT NULL, i.indisvalid FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'logs'::regclass AND starts_with(c.relname, $1)",
    )
    .bind(INDEX_PREFIX)
    .fetch_all(pool)
    .await?;
    let declared = declared_in(pool).await?;
    let mut current: Vec<String> = Vec::new();
    for (name, expression, valid) in indexes {
        // A key's index is on its column: one on an expression is not one this code
        // builds; an invalid one is left by an interrupted build.
        let wanted = declared.keys().iter().any(|key| index_name(key) == name);
        if expression || !valid || !wanted {
            tracing::info!(index = %name, "dropping a metadata index (not declared, invalid or on an expression)");
            drop_index(pool, &name).await?;
        } else {
            current.push(name);
        }
    }
    for key in declared.keys() {
        let index = index_name(key);
        if !current.contains(&index) {
            let column = column(key);
            build_index(
                pool,
                &index,
                &format!("({column}, timestamp DESC)"),
                Some(&format!("{column} IS NOT NULL")),
            )
            .await?;
        }
    }
    Ok(())
}

/// In `tx`: declares the keys of `keys` not declared yet ([`declare`]) and, with
/// [`Undeclared::Drop`], undeclares the others (drops their checks; their index goes
/// after the transaction). Serialised between instances by an advisory lock.
async fn change_declarations(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    keys: &[String],
    undeclared: Undeclared,
) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut **tx)
        .await?;
    let checks = check_names(&mut **tx).await?;
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'logs'::regclass \
         AND attnum > 0 AND NOT attisdropped AND starts_with(attname::text, 'meta_')",
    )
    .fetch_all(&mut **tx)
    .await?;
    let new_keys: Vec<&String> = keys
        .iter()
        .filter(|key| !checks.contains(&check_name(key)))
        .collect();
    if !new_keys.is_empty() {
        declare(tx, &new_keys, &columns).await?;
    }
    if undeclared == Undeclared::Drop {
        for name in checks
            .iter()
            .filter(|name| !keys.iter().any(|key| check_name(key) == **name))
        {
            tracing::info!(check = %name, "undeclaring a metadata key: dropping its check");
            sqlx::query(&format!(
                "ALTER TABLE logs DROP CONSTRAINT IF EXISTS {}",
                quoted(name)
            ))
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Declares `keys` (none declared yet) in `tx`: adds the columns `columns` lacks, fills
/// them for every stored row in one pass, then adds their checks. `logs` is locked
/// against reads and writes first, once, so that no row without a column slips in
/// before its check (which TimescaleDB validates on compressed chunks even when
/// `NOT VALID`) and no lock is upgraded while readers wait on the chunks.
async fn declare(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    keys: &[&String],
    columns: &[String],
) -> Result<(), StorageError> {
    tracing::info!(
        ?keys,
        "declaring metadata keys: filling their columns for the stored rows"
    );
    sqlx::query("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut **tx)
        .await?;
    for key in keys {
        if !columns.contains(&format!("meta_{key}")) {
            sqlx::query(&format!("ALTER TABLE logs ADD COLUMN {} text", column(key)))
                .execute(&mut **tx)
                .await?;
        }
    }
    sqlx::query(DECOMPRESS_CHUNKS).execute(&mut **tx).await?;
    let assignments: Vec<String> = keys
        .iter()
        .map(|key| format!("{} = {}", column(key), indexed_text_sql(key)))
        .collect();
    let names: Vec<String> = keys.iter().map(|key| format!("'{key}'")).collect();
    let started = std::time::Instant::now();
    let filled = sqlx::query(&format!(
        "UPDATE logs SET {} WHERE metadata ?| ARRAY[{}]",
        assignments.join(", "),
        names.join(", ")
    ))
    .execute(&mut **tx)
    .await?;
    tracing::info!(
        rows = filled.rows_affected(),
        seconds = started.elapsed().as_secs_f64(),
        "declared metadata key columns filled"
    );
    for key in keys {
        let column = column(key);
        sqlx::query(&format!(
            "ALTER TABLE logs ADD CONSTRAINT {} \
             CHECK (({column} IS NULL) = NOT (metadata ? '{key}')) NOT VALID",
            quoted(&check_name(key))
        ))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
