use std::time::Duration;

use log_ingestion_server::storage::StorageMode;

use log_ingestion_test_support::{
    create_database, entry, expected_mode, migrate_test_database, spawn_app, spawn_app_on,
    wait_until,
};

#[tokio::test]
async fn stored_entries_survive_a_restart_and_migrations_rerun_harmlessly() {
    let mut app = spawn_app().await;
    assert_eq!(
        app.post_batch(vec![entry("before-1"), entry("before-2")])
            .await
            .status(),
        200
    );
    app.stop().await;

    let (name, url) = (app.database_name.clone(), app.database_url.clone());
    let restarted = spawn_app_on(name, url, |_| {}).await;
    assert_eq!(restarted.post_single(entry("after")).await.status(), 201);
    let mut messages = restarted.stored_messages().await;
    messages.sort();
    assert_eq!(messages, ["after", "before-1", "before-2"]);
}

#[tokio::test]
async fn plain_mode_retention_deletes_rows_older_than_the_retention_days() {
    if expected_mode() != StorageMode::Postgres {
        return; // TimescaleDB mode: tests/timescaledb.rs covers its retention policy
    }
    let (name, url) = create_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    migrate_test_database(&pool).await;
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message) VALUES \
         (now() - interval '40 days', 's', 'INFO', 'old'), \
         (now() - interval '2 days', 's', 'INFO', 'recent')",
    )
    .execute(&pool)
    .await
    .unwrap();

    let app = spawn_app_on(name, url, |settings| settings.retention_days = Some(30)).await;
    let old_gone = wait_until(Duration::from_secs(10), || async {
        app.stored_messages().await == ["recent"]
    })
    .await;
    assert!(old_gone, "rows: {:?}", app.stored_messages().await);
}

#[tokio::test]
async fn plain_mode_has_the_lean_indexes_and_no_gin_over_metadata() {
    if expected_mode() != StorageMode::Postgres {
        return; // a hypertable's indexes live on its chunks
    }
    let app = spawn_app().await;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'logs' ORDER BY indexname",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(
        indexes
            .iter()
            .any(|d| d.contains("USING brin (\"timestamp\")")),
        "{indexes:?}"
    );
    assert!(
        indexes
            .iter()
            .any(|d| d.contains("(service, \"timestamp\" DESC)")),
        "{indexes:?}"
    );
    assert!(
        indexes
            .iter()
            .any(|d| d.contains("(level, \"timestamp\" DESC)")),
        "{indexes:?}"
    );
    assert!(!indexes.iter().any(|d| d.contains("gin")), "{indexes:?}");
}
