//! Building and dropping an index of `logs` without taking writers' locks where
//! PostgreSQL allows it, for the indexes an operator declares (`declared_keys`,
//! `trigram_index`). It never decides which indexes exist.

use sqlx::PgPool;

use super::StorageError;

/// Builds the index `name` on `logs` without taking
/// writers' locks where PostgreSQL allows it: `CREATE INDEX CONCURRENTLY` on a plain
/// table (it waits for transactions already running, never blocks a write; an
/// interrupted build leaves an invalid index, which the next run drops and builds
/// again), and one transaction per chunk on a hypertable (TimescaleDB has no
/// concurrent build: each chunk's writes wait while that chunk is indexed).
/// `columns` follows `ON logs` (with its access method), `predicate` makes it partial.
pub(super) async fn build_index(
    pool: &PgPool,
    name: &str,
    columns: &str,
    predicate: Option<&str>,
) -> Result<(), StorageError> {
    let hypertable = super::timescale::logs_is_hypertable(pool).await?;
    tracing::info!(index = %name, hypertable, "building an index on logs");
    let started = std::time::Instant::now();
    let predicate = predicate
        .map(|predicate| format!(" WHERE {predicate}"))
        .unwrap_or_default();
    let statement = if hypertable {
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON logs {columns} \
             WITH (timescaledb.transaction_per_chunk){predicate}",
            quoted(name)
        )
    } else {
        format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON logs {columns}{predicate}",
            quoted(name)
        )
    };
    let mut conn = pool.acquire().await?;
    if !hypertable {
        // A concurrent build's waits block no writer: it may wait as long as it takes.
        sqlx::query("SET lock_timeout = 0")
            .execute(&mut *conn)
            .await?;
    }
    let built = sqlx::query(&statement).execute(&mut *conn).await;
    let _ = sqlx::query("RESET lock_timeout").execute(&mut *conn).await;
    drop(conn);
    if let Err(error) = built {
        return Err(super::locks::explain(pool, "logs", error).await);
    }
    tracing::info!(index = %name, seconds = started.elapsed().as_secs_f64(), "index built");
    Ok(())
}

/// Drops the index `name` of `logs`: `CONCURRENTLY` on a plain table (no writer
/// waits), within the lock timeout on a hypertable.
pub(super) async fn drop_index(pool: &PgPool, name: &str) -> Result<(), StorageError> {
    let hypertable = super::timescale::logs_is_hypertable(pool).await?;
    tracing::info!(index = %name, "dropping an index of logs");
    let concurrently = if hypertable { "" } else { "CONCURRENTLY " };
    if let Err(error) = sqlx::query(&format!(
        "DROP INDEX {concurrently}IF EXISTS {}",
        quoted(name)
    ))
    .execute(pool)
    .await
    {
        return Err(super::locks::explain(pool, "logs", error).await);
    }
    Ok(())
}

/// `name` as a quoted identifier.
pub(super) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
