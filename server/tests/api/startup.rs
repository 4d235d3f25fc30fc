//! `Application::build` failing part-way: whatever it had started must end with it.

use std::time::Duration;

use log_ingestion_server::startup::{Application, StartupError};
use sqlx::{Connection, PgConnection};

use log_ingestion_test_support::{create_database, maintenance_url, test_settings_with};

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
            ("LOG_INGESTION_RATE_LIMIT_SCOPE", "cluster"),
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

/// An application built but dropped without ever running (a caller that fails after
/// the build) stops every task it started: the rate-limit sync would reconnect every
/// 100 ms and the maintenance task would keep the writers' pool and its connections.
#[tokio::test]
async fn an_application_dropped_unrun_leaves_no_task_or_connection_behind() {
    let (database, url) = create_database().await;
    let settings = test_settings_with(
        &url,
        &[
            ("LOG_INGESTION_RATE_LIMIT_SCOPE", "cluster"),
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
