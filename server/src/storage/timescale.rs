//! TimescaleDB setup: decides, from `LOG_INGESTION_STORAGE` and the extension's state
//! on this server, whether `logs` is a hypertable, and makes it one (1-day chunks,
//! compression) when it should be. It runs after the SQL migrations, from Rust, because
//! the extension's state decides what is possible: an extension that is installed but
//! not in `shared_preload_libraries` makes `CREATE EXTENSION` end the connection with a
//! FATAL error that no PL/pgSQL guard can catch. So the preload is checked first, and
//! this module never issues `CREATE EXTENSION` where it would fail that way.
//!
//! It never converts a table that holds rows unless asked to (`ConvertRows::Allow`, the
//! `migrate --storage timescaledb` command): converting moves every row into chunks
//! under a lock, which is an operator's decision, not something `serve` does on its own.

use sqlx::{PgConnection, PgPool};

use super::setting::StorageSetting;
use super::{locks, rollup, StorageError, StorageMode};

/// Whether an existing plain `logs` table that holds rows may be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertRows {
    /// `migrate --storage timescaledb`: convert, keeping every row.
    Allow,
    /// `serve`: leave such a table alone (auto) or refuse to start (timescaledb).
    Refuse,
}

/// What the command that converts a plain table says to run.
pub(super) const CONVERT_HINT: &str =
    "run `log-ingestion-server migrate --storage timescaledb` to convert it \
                            (rows are kept; the table is locked while they move into chunks)";

/// Decides the mode and sets TimescaleDB up when it is chosen; returns the mode. Fails
/// only when the setting cannot be honoured (never because of the extension's state
/// under `auto`).
pub async fn choose_and_prepare(
    pool: &PgPool,
    setting: StorageSetting,
    convert: ConvertRows,
) -> Result<StorageMode, StorageError> {
    let hypertable = logs_is_hypertable(pool).await?;
    let unavailable = unavailable_reason(pool).await?;
    if hypertable {
        hypertable_usable(setting, unavailable)?;
        enable(pool).await?;
        return Ok(StorageMode::Timescale);
    }
    if setting == StorageSetting::Postgres {
        ensure_plain_rollups(pool).await?;
        return Ok(StorageMode::Postgres);
    }
    let refusal = match unavailable {
        Some(reason) => Some(reason.to_owned()),
        None if convert == ConvertRows::Refuse && logs_has_rows(pool).await? => Some(format!(
            "logs already holds rows in plain PostgreSQL; {CONVERT_HINT}"
        )),
        None => None,
    };
    match (refusal, setting) {
        (None, _) => {
            enable(pool).await?;
            Ok(StorageMode::Timescale)
        }
        (Some(reason), StorageSetting::Timescale) => Err(StorageError::Mode(format!(
            "LOG_INGESTION_STORAGE=timescaledb, but {reason}"
        ))),
        (Some(reason), _) => {
            tracing::warn!("plain PostgreSQL mode (LOG_INGESTION_STORAGE=auto): {reason}");
            ensure_plain_rollups(pool).await?;
            Ok(StorageMode::Postgres)
        }
    }
}

/// Whether a `logs` that is already a hypertable can be used under `setting`: TimescaleDB
/// must load (`unavailable` is why it cannot) and the setting must not ask for plain
/// PostgreSQL, which a hypertable cannot be turned back into.
pub(super) fn hypertable_usable(
    setting: StorageSetting,
    unavailable: Option<&str>,
) -> Result<(), StorageError> {
    if let Some(reason) = unavailable {
        return Err(StorageError::Mode(format!(
            "logs is a TimescaleDB hypertable but TimescaleDB cannot be used: {reason}"
        )));
    }
    if setting == StorageSetting::Postgres {
        return Err(StorageError::Mode(
            "LOG_INGESTION_STORAGE=postgresql, but logs is already a TimescaleDB hypertable \
             (a hypertable cannot be turned back into a plain table here; use auto or timescaledb)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Why TimescaleDB cannot be used on this server, or `None` when it can.
pub async fn unavailable_reason(pool: &PgPool) -> Result<Option<&'static str>, StorageError> {
    let (installed, preloaded): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), \
                current_setting('shared_preload_libraries') ~ '(^|[\\s,])timescaledb($|[\\s,])'",
    )
    .fetch_one(pool)
    .await?;
    Ok(match (installed, preloaded) {
        (false, _) => Some("the timescaledb extension is not installed on the database server"),
        (true, false) => Some(
            "the timescaledb extension is installed but not in shared_preload_libraries \
             (add shared_preload_libraries = 'timescaledb' and restart PostgreSQL)",
        ),
        (true, true) => None,
    })
}

/// Whether `logs` (in the current schema) is a hypertable. Reads TimescaleDB's catalog
/// table directly, which needs no loaded library, so it is safe to ask before knowing
/// whether the extension can be used.
pub(super) async fn logs_is_hypertable(pool: &PgPool) -> Result<bool, StorageError> {
    let catalog: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_timescaledb_catalog.hypertable')::text")
            .fetch_one(pool)
            .await?;
    if catalog.is_none() {
        return Ok(false);
    }
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM _timescaledb_catalog.hypertable \
         WHERE table_name = 'logs' AND schema_name = current_schema())",
    )
    .fetch_one(pool)
    .await?)
}

/// Creates the plain-mode rollups again when the plain table lost them.
async fn ensure_plain_rollups(pool: &PgPool) -> Result<(), StorageError> {
    if rollup::rollups_present(pool).await?.0 {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    match rollup::repair_plain_rollups(&mut conn).await {
        Ok(()) => Ok(()),
        Err(error) => {
            drop(conn);
            Err(locks::explain(pool, "logs", error).await)
        }
    }
}

async fn logs_has_rows(pool: &PgPool) -> Result<bool, StorageError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM logs LIMIT 1)")
            .fetch_one(pool)
            .await?,
    )
}

/// Creates the extension and turns `logs` into a hypertable (1-day chunks, existing rows
/// moved into chunks in the same statement) with compression after 7 days, and its
/// rollups into continuous aggregates (`rollup`), all in one transaction: a failure at
/// any step (a cancel, a timeout, a full disk) leaves the plain table with its rollups
/// as it was, and running it again starts over. Idempotent.
/// Errors propagate: a caller that chose TimescaleDB must not silently get less.
/// Compression alone is guarded, because the Apache-licensed build has none.
/// Call only when [`unavailable_reason`] is `None`.
async fn enable(pool: &PgPool) -> Result<(), StorageError> {
    let mut tx = pool.begin().await?;
    match enable_in(&mut tx).await {
        Ok(()) => tx.commit().await.map_err(StorageError::Query),
        Err(error) => {
            // Rolled back before the holders are listed: this session's own locks go.
            let _ = tx.rollback().await;
            Err(locks::explain(pool, "logs", error).await)
        }
    }
}

async fn enable_in(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
        .execute(&mut *tx)
        .await?;
    // Hypertables refuse the plain rollups' triggers; the continuous aggregates replace them.
    rollup::drop_plain_rollups(tx).await?;
    sqlx::query(
        "SELECT create_hypertable('logs', 'timestamp', \
                                  chunk_time_interval => interval '1 day', \
                                  if_not_exists => true, \
                                  migrate_data => true)",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(ENABLE_COMPRESSION).execute(&mut *tx).await?;
    rollup::create_continuous_aggregates(tx).await?;
    Ok(())
}

const ENABLE_COMPRESSION: &str = r#"
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                   WHERE hypertable_name = 'logs' AND compression_enabled) THEN
        EXECUTE 'ALTER TABLE logs SET (timescaledb.compress, '
             || 'timescaledb.compress_segmentby = ''service'', '
             || 'timescaledb.compress_orderby = ''timestamp DESC'')';
    END IF;
    PERFORM add_compression_policy('logs', interval '7 days', if_not_exists => true);
EXCEPTION WHEN feature_not_supported OR insufficient_privilege OR undefined_function THEN
    RAISE NOTICE 'compression not available (%): hypertable without compression', SQLERRM;
END
$$
"#;
