//! TimescaleDB setup: makes `logs` a hypertable with compression when the extension
//! can be had on this server. It runs after the SQL migrations, from Rust, because the
//! extension's state decides what is possible: an extension that is installed but not
//! in `shared_preload_libraries` makes `CREATE EXTENSION` end the connection with a
//! FATAL error that no PL/pgSQL guard can catch. So the preload is checked first, and
//! this module never issues `CREATE EXTENSION` where it would fail that way.

use sqlx::PgPool;

use super::StorageError;

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

/// Creates the extension and turns `logs` into a hypertable (1-day chunks, existing rows
/// moved into chunks) with compression after 7 days. Each step is guarded so that a
/// build without a feature (the Apache-licensed build has no compression) keeps the
/// steps it can do. Idempotent. Call only when [`unavailable_reason`] is `None`.
pub async fn enable(pool: &PgPool) -> Result<(), StorageError> {
    sqlx::query(ENABLE).execute(pool).await?;
    Ok(())
}

const ENABLE: &str = r#"
DO $$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'cannot create extension timescaledb (%): plain PostgreSQL mode', SQLERRM;
        RETURN;
    END;
    BEGIN
        PERFORM create_hypertable('logs', 'timestamp',
                                  chunk_time_interval => interval '1 day',
                                  if_not_exists => true,
                                  migrate_data => true);
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'cannot make logs a hypertable (%): plain PostgreSQL mode', SQLERRM;
        RETURN;
    END;
    BEGIN
        EXECUTE 'ALTER TABLE logs SET (timescaledb.compress, '
             || 'timescaledb.compress_segmentby = ''service'', '
             || 'timescaledb.compress_orderby = ''timestamp DESC'')';
        PERFORM add_compression_policy('logs', interval '7 days', if_not_exists => true);
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'compression not available (%): hypertable without compression', SQLERRM;
    END;
END
$$
"#;
