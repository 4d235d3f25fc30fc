//! What `serve` does with the schema before it serves. On a database without a `logs`
//! table (a fresh one: nobody writes a table that does not exist yet) it runs what
//! `migrate` runs, with its own settings. On any other database it changes nothing: it
//! only reads the catalog (no lock stronger than ACCESS SHARE on any table, no DDL, no
//! index build), then
//! - refuses to start, naming the exact command, when the database is not one it can
//!   run on: migrations of this version not applied, or the storage mode's rollups
//!   missing (an interrupted migration);
//! - runs in the storage mode the database is in (a hypertable is TimescaleDB, a plain
//!   table plain PostgreSQL), refusing a `LOG_INGESTION_STORAGE` it cannot honour and
//!   warning when `auto` could convert;
//! - warns when its settings differ from what the database declares (the declared
//!   metadata keys, the trigram index) or an index build was left invalid, and runs on
//!   what the database declares.
//!
//! Every schema change on an existing database is the `migrate` command's
//! (docs/operations.md). This module never writes a row and never takes a table lock.

use sqlx::PgPool;

use super::setting::StorageSetting;
use super::timescale::{self, ConvertRows, CONVERT_HINT};
use super::trigram_index::TRIGRAM_INDEX;
use super::{declared_keys, retention};
use super::{rollup, StorageError, StorageMode};
use crate::config::DatabaseSettings;

/// The command that applies what `serve` refuses or warns about.
const MIGRATE: &str = "log-ingestion-server migrate";

/// Gets the database ready for `serve` (see the module's top) and returns the storage
/// mode to run in.
pub async fn prepare_for_serve(
    pool: &PgPool,
    settings: &DatabaseSettings,
) -> Result<StorageMode, StorageError> {
    let fresh: bool = sqlx::query_scalar("SELECT to_regclass('logs') IS NULL")
        .fetch_one(pool)
        .await?;
    if fresh {
        tracing::info!("a database without a logs table: creating the schema");
        let mode = super::migrate(pool, settings.storage, ConvertRows::Refuse).await?;
        declared_keys::apply(pool, settings, declared_keys::Undeclared::Keep).await?;
        retention::declare(pool, mode, settings.retention_days).await?;
        return Ok(mode);
    }
    refuse_pending_migrations(pool).await?;
    let mode = storage_mode(pool, settings.storage).await?;
    warn_about_differences(pool, settings).await?;
    Ok(mode)
}

/// Refuses a database that lacks a migration of this version (or whose last run of
/// one failed).
async fn refuse_pending_migrations(pool: &PgPool) -> Result<(), StorageError> {
    let recorded: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    let applied: Vec<i64> = if recorded {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let pending: Vec<String> = super::migrator()
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .map(|migration| format!("{} {}", migration.version, migration.description))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    Err(StorageError::NeedsMigrate(format!(
        "the database lacks migrations of this version ({}); run `{MIGRATE}` first \
         (serve never changes the schema of an existing database)",
        pending.join(", ")
    )))
}

/// The mode the database is in, as long as `setting` allows it and its rollups are
/// in place.
async fn storage_mode(pool: &PgPool, setting: StorageSetting) -> Result<StorageMode, StorageError> {
    let (plain_rollups, continuous_aggregates) = rollup::rollups_present(pool).await?;
    if timescale::logs_is_hypertable(pool).await? {
        timescale::hypertable_usable(setting, timescale::unavailable_reason(pool).await?)?;
        if !continuous_aggregates {
            return Err(StorageError::NeedsMigrate(format!(
                "logs is a TimescaleDB hypertable without its rollups (the continuous aggregates \
                 logs_per_minute and logs_per_hour; a migration was interrupted): run \
                 `{MIGRATE} --storage timescaledb`"
            )));
        }
        return Ok(StorageMode::Timescale);
    }
    if !plain_rollups {
        return Err(StorageError::NeedsMigrate(format!(
            "logs is a plain PostgreSQL table without its rollups (the tables logs_per_minute \
             and logs_per_hour and their triggers; a migration was interrupted): run `{MIGRATE}` \
             to create them again (or `{MIGRATE} --storage timescaledb` to convert the table)"
        )));
    }
    let unavailable = timescale::unavailable_reason(pool).await?;
    match (setting, unavailable) {
        (StorageSetting::Postgres, _) => {}
        (StorageSetting::Timescale, Some(reason)) => {
            return Err(StorageError::Mode(format!(
                "LOG_INGESTION_STORAGE=timescaledb, but {reason}"
            )))
        }
        (StorageSetting::Timescale, None) => {
            return Err(StorageError::NeedsMigrate(format!(
                "LOG_INGESTION_STORAGE=timescaledb, but logs is a plain PostgreSQL table; \
                 {CONVERT_HINT}"
            )))
        }
        (StorageSetting::Auto, Some(reason)) => {
            tracing::warn!("plain PostgreSQL mode (LOG_INGESTION_STORAGE=auto): {reason}");
        }
        (StorageSetting::Auto, None) => {
            tracing::warn!(
                "plain PostgreSQL mode (LOG_INGESTION_STORAGE=auto): logs is a plain table; \
                 TimescaleDB is available: {CONVERT_HINT}"
            );
        }
    }
    Ok(StorageMode::Postgres)
}

/// Warns about each difference between `settings` and what the database declares, and
/// about indexes on `logs` left invalid by an interrupted build.
async fn warn_about_differences(
    pool: &PgPool,
    settings: &DatabaseSettings,
) -> Result<(), StorageError> {
    retention::warn_if_setting_differs(
        settings.retention_days,
        retention::declared_days(pool).await?,
    );
    let declared = declared_keys::declared_in(pool).await?;
    let configured = &settings.declared_keys;
    let missing: Vec<&String> = configured
        .iter()
        .filter(|key| !declared.keys().contains(key))
        .collect();
    let extra: Vec<&String> = declared
        .keys()
        .iter()
        .filter(|key| !configured.contains(key))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        tracing::warn!(
            configured = ?configured,
            declared = ?declared.keys(),
            "LOG_INGESTION_DECLARED_KEYS differs from the keys the database declares; \
             this instance writes and reads the declared ones. Run `{MIGRATE}` with the \
             setting the fleet should have to change them"
        );
    }
    let trigram: Option<bool> =
        sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)")
            .bind(TRIGRAM_INDEX)
            .fetch_optional(pool)
            .await?;
    match (settings.message_trigram_index, trigram) {
        (true, None) => tracing::warn!(
            "LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=on but the database has no {TRIGRAM_INDEX} \
             index; run `LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=on {MIGRATE}` to build it \
             (writes go on while it builds)"
        ),
        (false, Some(_)) => tracing::warn!(
            "LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=off but the database has the {TRIGRAM_INDEX} \
             index; run `LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=off {MIGRATE}` to drop it"
        ),
        _ => {}
    }
    let invalid: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = to_regclass('logs') AND NOT i.indisvalid ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    if !invalid.is_empty() {
        tracing::warn!(
            indexes = ?invalid,
            "indexes on logs were left invalid by an interrupted build (writes keep them up \
             to date, reads do not use them); run `{MIGRATE}` to build them again"
        );
    }
    Ok(())
}
