//! Lock waits of the `migrate` command: its connections wait at most
//! `LOG_INGESTION_MIGRATE_LOCK_TIMEOUT` for a lock (PostgreSQL's `lock_timeout`), so a
//! migration queued behind a long transaction never holds every writer up behind it
//! (a waiting lock request blocks the requests queued after it); when the wait ends,
//! the error names the table and the sessions holding locks on it. Owns that session
//! setting and that message; it never takes a lock itself and is never used by `serve`.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

use super::StorageError;

/// PostgreSQL's `lock_not_available` (a `lock_timeout` or `NOWAIT` failure).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// `options` with every session's `lock_timeout` set to `timeout` (at least 1 ms).
pub fn with_lock_timeout(options: PgConnectOptions, timeout: Duration) -> PgConnectOptions {
    let millis = timeout.as_millis().max(1);
    options.options([("lock_timeout", format!("{millis}ms"))])
}

/// Whether `error` is PostgreSQL giving up on a lock.
pub fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|database| database.code())
        .is_some_and(|code| code == LOCK_NOT_AVAILABLE)
}

/// `error` as a [`StorageError`]: a lock timeout on `table` becomes
/// [`StorageError::Locked`] naming the sessions that hold or wait for locks on it
/// (read on another connection of `pool`, once the failed statement is over).
pub async fn explain(pool: &PgPool, table: &str, error: sqlx::Error) -> StorageError {
    if !is_lock_timeout(&error) {
        return StorageError::Query(error);
    }
    let sessions = holders(pool, table)
        .await
        .unwrap_or_else(|read| vec![format!("(cannot list them: {read})")]);
    StorageError::Locked {
        table: table.to_owned(),
        sessions: if sessions.is_empty() {
            "none left by now (retry)".to_owned()
        } else {
            sessions.join("; ")
        },
    }
}

/// The other sessions with a lock on `table` (granted or awaited), one line each:
/// pid, lock mode, state, how long its transaction has run, application and query.
async fn holders(pool: &PgPool, table: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT format('pid %s (%s%s, %s, transaction open %s, application %L: %s)', \
                l.pid, l.mode, CASE WHEN l.granted THEN '' ELSE ' awaited' END, \
                coalesce(a.state, '?'), \
                coalesce(date_trunc('second', now() - a.xact_start)::text, '-'), \
                coalesce(a.application_name, ''), left(coalesce(a.query, ''), 120)) \
         FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'relation' AND l.relation = to_regclass($1) \
           AND l.pid <> pg_backend_pid() \
         ORDER BY l.granted DESC, l.pid",
    )
    .bind(table)
    .fetch_all(pool)
    .await
}
