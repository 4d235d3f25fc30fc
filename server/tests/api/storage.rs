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

    let (database, url) = (app.database.clone(), app.database_url.clone());
    let restarted = spawn_app_on(database, url, |_| {}).await;
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

/// Adds a column to `logs` that a row trigger fills with whether the statement that
/// wrote the row was the first of its transaction (PostgreSQL documents that
/// `statement_timestamp()` equals `transaction_timestamp()` exactly then). A group
/// written as one autocommit `COPY` has it true; one behind a `BEGIN` has it false. A
/// trigger rather than a column default: a hypertable with columnstore refuses a
/// non-constant default.
async fn mark_rows_with_first_statement_of_transaction(pool: &sqlx::PgPool) {
    for statement in [
        "ALTER TABLE logs ADD COLUMN first_statement_of_transaction boolean",
        "CREATE FUNCTION mark_first_statement() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN NEW.first_statement_of_transaction := \
         statement_timestamp() = transaction_timestamp(); RETURN NEW; END $$",
        "CREATE TRIGGER mark_first_statement BEFORE INSERT ON logs \
         FOR EACH ROW EXECUTE FUNCTION mark_first_statement()",
    ] {
        sqlx::query(statement).execute(pool).await.unwrap();
    }
}

async fn first_statement_flags(pool: &sqlx::PgPool, message: &str) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT first_statement_of_transaction FROM logs WHERE message = $1 ORDER BY id",
    )
    .bind(message)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_group_without_idempotency_keys_is_one_autocommit_copy_and_keyed_groups_keep_their_transaction(
) {
    let app = spawn_app().await;
    mark_rows_with_first_statement_of_transaction(&app.pool).await;

    let plain = app
        .post_batch(vec![entry("keyless"), entry("keyless")])
        .await;
    assert_eq!(plain.status(), 200);
    assert_eq!(
        first_statement_flags(&app.pool, "keyless").await,
        [true, true],
        "a keyless group's COPY should be its own transaction (no BEGIN/COMMIT round trips)"
    );

    let keyed = app
        .post("/api/v1/logs/batch")
        .header("Idempotency-Key", "storage-keyed-1")
        .json(&serde_json::json!({"logs": [entry("keyed")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    assert_eq!(
        first_statement_flags(&app.pool, "keyed").await,
        [false],
        "a keyed group claims its key and writes its rows in one transaction"
    );

    if expected_mode() == StorageMode::Postgres {
        // The statement-level rollup triggers ran inside the COPY's own transaction.
        let counted = minute_rollup_total(&app.pool).await;
        assert_eq!(counted, app.row_count().await);
        assert_eq!(counted, 3);
    }
}

#[tokio::test]
async fn a_keyless_group_whose_copy_fails_stores_nothing_and_answers_503() {
    let app = spawn_app().await;
    // PostgreSQL refuses the last row of the COPY: the rows before it must not stay.
    sqlx::query("ALTER TABLE logs ADD CONSTRAINT refuses_poison CHECK (message <> 'poison')")
        .execute(&app.pool)
        .await
        .unwrap();

    let refused = app
        .post_batch(vec![entry("fine-1"), entry("fine-2"), entry("poison")])
        .await;
    assert_eq!(refused.status(), 503);
    assert_eq!(app.row_count().await, 0);
    if expected_mode() == StorageMode::Postgres {
        let counted = minute_rollup_total(&app.pool).await;
        assert_eq!(counted, 0, "the rollups roll back with the rows");
    }

    // The writer's connection is usable again for the next group.
    assert_eq!(app.post_batch(vec![entry("after")]).await.status(), 200);
    assert_eq!(app.stored_messages().await, ["after"]);
}

/// The entries the plain-mode minute rollup counts, over all its rows.
async fn minute_rollup_total(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT coalesce(sum(entries), 0)::bigint FROM logs_per_minute")
        .fetch_one(pool)
        .await
        .unwrap()
}
