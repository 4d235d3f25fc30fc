//! The database the server writes: the pool, migrations, the storage mode (TimescaleDB
//! or plain PostgreSQL), the group committer, idempotency records, retention, the
//! entry-count rollups, the declared metadata indexes, TimescaleDB's policy jobs and
//! whether writes work (`write_health`).
//! Nothing outside this module writes SQL for the ingest path (the read side's queries
//! are `read`'s, the shared rate limits' state is `ingest::shared_rate_limits`'s); this
//! module never knows about HTTP.

pub mod copy_field;
pub mod copy_text;
pub mod declared_keys;
pub mod error_fold;
pub mod error_groups;
pub mod group_commit;
mod group_write;
pub mod idempotency;
mod index_build;
mod job_locks;
pub mod locks;
pub mod policy_jobs;
pub mod retention;
pub mod rollup;
pub mod rollup_pending;
pub mod rollup_refresh;
pub mod schema;
pub mod setting;
pub mod timescale;
pub mod trace_fields;
pub mod trigram_index;
pub mod write_health;

use std::fmt;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::DatabaseSettings;

pub use group_commit::{CommitError, CommitOutcome, GroupCommitter};
pub use setting::StorageSetting;
pub use timescale::ConvertRows;

/// How the `logs` table is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageMode {
    /// Plain PostgreSQL: BRIN on time, btree on service/level plus time, a delete task
    /// for retention.
    #[serde(rename = "postgresql")]
    Postgres,
    /// A TimescaleDB hypertable with 1-day chunks and extension-managed policies.
    #[serde(rename = "timescaledb")]
    Timescale,
}

impl StorageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageMode::Postgres => "postgresql",
            StorageMode::Timescale => "timescaledb",
        }
    }
}

impl fmt::Display for StorageMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failures while preparing storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid DATABASE_URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("cannot reach the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// The storage mode asked for (`LOG_INGESTION_STORAGE`) cannot be had.
    #[error("storage mode: {0}")]
    Mode(String),
    /// `migrate` gave up waiting for a lock (`locks`); nothing of that step was applied.
    #[error(
        "could not lock {table} within LOG_INGESTION_MIGRATE_LOCK_TIMEOUT; nothing of this step \
         was applied; sessions with locks on {table}: {sessions}. Rerun `log-ingestion-server \
         migrate` when they are done (or end them: SELECT pg_terminate_backend(pid))"
    )]
    Locked { table: String, sessions: String },
    /// The database is not in a state `serve` may run on; the message says which
    /// command puts it right (`schema`).
    #[error("{0}")]
    NeedsMigrate(String),
}

/// A lazily connecting pool: the server starts answering /livez even while the
/// database is down, and every query waits at most `acquire_timeout` for a connection.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, StorageError> {
    let options: PgConnectOptions = settings.url.parse().map_err(StorageError::InvalidUrl)?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(options))
}

/// The `migrate` command's pool: like [`pool`], but every session waits at most
/// `migrate_lock_timeout` for a lock (`locks`).
pub fn migration_pool(settings: &DatabaseSettings) -> Result<PgPool, StorageError> {
    let options: PgConnectOptions = settings.url.parse().map_err(StorageError::InvalidUrl)?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections.max(2))
        .acquire_timeout(settings.acquire_timeout)
        .connect_lazy_with(locks::with_lock_timeout(
            options,
            settings.migrate_lock_timeout,
        )))
}

/// The SQL migrations in `migrations/`. A database may hold the record of a migration
/// that is not in `migrations/` (a TimescaleDB step, which `timescale` does in Rust):
/// such a record is ignored rather than refused.
pub(crate) fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("../migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// Applies every migration in `migrations/` (each in its own transaction: all of it or
/// none), then chooses the storage mode from `setting` and the extension's state (see
/// `timescale`): TimescaleDB is set up when chosen (in one transaction); `auto`
/// without it warns once, saying why, and stays plain PostgreSQL. Re-running is a
/// no-op, and so is re-running after a failure at any step. A lock not granted within
/// the pool's `lock_timeout` fails with [`StorageError::Locked`].
pub async fn migrate(
    pool: &PgPool,
    setting: StorageSetting,
    convert: ConvertRows,
) -> Result<StorageMode, StorageError> {
    // On one connection, closed after a failure: sqlx's migrator takes a session-level
    // advisory lock and may fail without releasing it, which would make the next
    // migration on that pooled connection's pool wait for ever.
    let mut conn = pool.acquire().await?;
    let ran = migrator().run(&mut *conn).await;
    if ran.is_err() {
        let _ = conn.close().await;
    } else {
        drop(conn);
    }
    match ran {
        Ok(()) => {}
        Err(
            sqlx::migrate::MigrateError::Execute(error)
            | sqlx::migrate::MigrateError::ExecuteMigration(error, _),
        ) => return Err(locks::explain(pool, "logs", error).await),
        Err(error) => return Err(error.into()),
    }
    timescale::choose_and_prepare(pool, setting, convert).await
}

/// How long a health probe waits for the database.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether the database answers a trivial query within two seconds.
pub async fn ping(pool: &PgPool) -> bool {
    let query = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool);
    matches!(tokio::time::timeout(PING_TIMEOUT, query).await, Ok(Ok(_)))
}
