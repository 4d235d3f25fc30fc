//! `Application::build`: failing part-way, whatever it had started ends with it; on an
//! existing database it changes nothing and takes no lock that blocks writers.

use std::time::Duration;

use log_ingestion_server::startup::{Application, StartupError};
use log_ingestion_server::storage::{StorageMode, StorageSetting};
use sqlx::{Connection, PgConnection, PgPool};

use log_ingestion_test_support::{
    create_database, ddl_steps_run, expected_mode, fail_ddl_at_step, maintenance_url,
    migrate_test_database, test_settings_with,
};

/// Client connections to the database `name` (this test watches from the maintenance
/// database, so none of them is its own; TimescaleDB's own scheduler, a background
/// worker on that database, is not a client).
async fn backends_on(watcher: &mut PgConnection, name: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = $1 AND backend_type = 'client backend'",
    )
    .bind(name)
    .fetch_one(watcher)
    .await
    .unwrap()
}

/// The listen port is taken, so the build fails late, after the migrations (which open
/// the writers' pool). Every fallible step runs before any task is spawned (writers,
/// policy jobs, the cluster rate-limit sync, set here so it would have a pool to leak),
/// so nothing may stay connected afterwards.
#[tokio::test]
async fn a_build_that_fails_late_leaves_no_task_or_connection_behind() {
    let (database, url) = create_database().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let settings = test_settings_with(
        &url,
        &[
            ("LOG_INGESTION_PORT", &port),
            ("LOG_INGESTION_SHARED_RATE_LIMITS", "on"),
            ("LOG_INGESTION_RATE_LIMIT_SYNC_INTERVAL", "100ms"),
        ],
    );
    let mut watcher = PgConnection::connect(&maintenance_url()).await.unwrap();
    assert_eq!(backends_on(&mut watcher, database.name()).await, 0);

    let error = match Application::build(settings).await {
        Ok(_) => panic!("the build bound a port that is taken"),
        Err(error) => error,
    };
    assert!(matches!(error, StartupError::Bind { .. }), "{error}");

    // Loose bound: closing is prompt, a leaked task would hold its pool for minutes
    // (sqlx's idle timeout) and a leaked rate-limit sync reconnects every 100 ms.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let remaining = backends_on(&mut watcher, database.name()).await;
        if remaining == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{remaining} connections to the test database are still open after the failed build"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And they stay closed: no task is left to reopen one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(backends_on(&mut watcher, database.name()).await, 0);
}

/// `url` with every session's `lock_timeout` set: a statement that waits for a lock
/// fails instead of waiting for ever.
fn with_lock_timeout(url: &str, timeout: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20lock_timeout%3D{timeout}")
}

/// A database an earlier version migrated, with rows, and an instance started with
/// settings that differ from it (a key and the trigram index the database does not
/// declare). While another session holds `logs` (and the plain rollups and the
/// idempotency records, which writers also write) as a writer in the middle of its
/// transaction does, in ROW EXCLUSIVE mode (which conflicts with every lock that would
/// block writers: SHARE and stronger), and every DDL command in the database fails, the
/// instance still starts (its session would time out on any such lock) and changes
/// nothing. Its own write probe is a writer's insert.
#[tokio::test]
async fn starting_on_an_existing_database_takes_no_lock_that_blocks_writers_and_changes_nothing() {
    let (database, url) = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    migrate_test_database(&pool).await;
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message) VALUES (now(), 's', 'INFO', 'x')",
    )
    .execute(&pool)
    .await
    .unwrap();
    fail_ddl_at_step(&pool, Some(1)).await;
    let mut holder = PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    let held = if expected_mode() == StorageMode::Postgres {
        "logs, logs_per_minute, logs_per_hour, idempotency_keys"
    } else {
        "logs, idempotency_keys"
    };
    sqlx::query(&format!("LOCK TABLE {held} IN ROW EXCLUSIVE MODE"))
        .execute(&mut holder)
        .await
        .unwrap();

    let mut settings = test_settings_with(
        &with_lock_timeout(&url, "3s"),
        &[
            ("LOG_INGESTION_DECLARED_KEYS", "k"),
            ("LOG_INGESTION_MESSAGE_TRIGRAM_INDEX", "on"),
        ],
    );
    settings.database.storage = StorageSetting::Auto;
    let started = Application::build(settings).await;
    let application = match started {
        Ok(application) => application,
        Err(error) => panic!("the instance did not start beside a writer's lock: {error}"),
    };
    assert_eq!(application.storage_mode(), expected_mode());
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    drop(application);
    fail_ddl_at_step(&pool, None).await;
    assert_eq!(ddl_steps_run(&pool).await, 0, "serve ran DDL");

    let (trigram, check): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('logs_message_trgm') IS NOT NULL, \
                EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'meta_k_set')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!trigram, "serve built the trigram index");
    assert!(!check, "serve declared a key");
    drop(database);
}

/// An instance of a newer version on a database that lacks one of its migrations
/// refuses to start and names the command, instead of migrating under the fleet.
#[tokio::test]
async fn serve_refuses_a_database_that_lacks_a_migration_and_names_the_command() {
    let (_database, url) = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    migrate_test_database(&pool).await;
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let error = match Application::build(test_settings_with(&url, &[])).await {
        Ok(_) => panic!("serve started on a database that lacks a migration"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("lacks migrations") && error.contains("log-ingestion-server migrate"),
        "{error}"
    );
}

/// An application built but dropped without ever running (a caller that fails after
/// the build) stops every task it started: the rate-limit sync would reconnect every
/// 100 ms and the maintenance task would keep the writers' pool and its connections.
#[tokio::test]
async fn an_application_dropped_unrun_leaves_no_task_or_connection_behind() {
    let (database, url) = create_database().await;
    let settings = test_settings_with(
        &url,
        &[
            ("LOG_INGESTION_SHARED_RATE_LIMITS", "on"),
            ("LOG_INGESTION_RATE_LIMIT_SYNC_INTERVAL", "100ms"),
        ],
    );
    let mut watcher = PgConnection::connect(&maintenance_url()).await.unwrap();
    let application = Application::build(settings).await.unwrap();
    // The sync connects on its own: the tasks are running.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while backends_on(&mut watcher, database.name()).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "nothing connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(application);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let remaining = backends_on(&mut watcher, database.name()).await;
        if remaining == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{remaining} connections to the test database are still open after the drop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And they stay closed: no task is left to reopen one (the sync would within 100 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(backends_on(&mut watcher, database.name()).await, 0);
}
