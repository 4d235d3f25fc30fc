use std::process::Command;
use std::time::Duration;

use log_ingestion_server::auth::ApiKey;
use log_ingestion_server::storage::declared_keys::{self, Undeclared};
use log_ingestion_server::storage::{retention, trigram_index};
use log_ingestion_server::storage::{StorageMode, StorageSetting};
use sqlx::{Connection, PgConnection};

use log_ingestion_test_support::{
    binary, create_database, entry, expected_mode, fail_ddl_at_step, migrate_test_database,
    spawn_app, spawn_app_on, test_settings, test_storage, wait_until, TestDatabase, ADMIN_KEY,
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
async fn serve_follows_the_declared_retention_and_never_changes_it() {
    let (name, url) = create_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let mode = migrate_test_database(&pool).await;
    // What `migrate` does with LOG_INGESTION_RETENTION_DAYS=30.
    retention::declare(&pool, mode, Some(30)).await.unwrap();
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message) VALUES \
         (now() - interval '40 days', 's', 'INFO', 'old'), \
         (now() - interval '2 days', 's', 'INFO', 'recent')",
    )
    .execute(&pool)
    .await
    .unwrap();

    // An instance whose own setting differs: it follows the database, and changes it not.
    let app = spawn_app_on(name, url, |settings| {
        settings.database.retention_days = Some(1);
    })
    .await;
    if mode == StorageMode::Postgres {
        // One delete statement removes every expired row: by 1 day "recent" would go too.
        let old_gone = wait_until(Duration::from_secs(10), || async {
            !app.stored_messages().await.contains(&"old".to_owned())
        })
        .await;
        assert!(old_gone, "rows: {:?}", app.stored_messages().await);
        assert_eq!(app.stored_messages().await, ["recent"]);
    } else {
        let policy: Vec<String> = sqlx::query_scalar(
            "SELECT config->>'drop_after' FROM timescaledb_information.jobs \
             WHERE proc_name = 'policy_retention' AND hypertable_name = 'logs'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(policy, ["30 days"]);
    }
    assert_eq!(retention::declared_days(&pool).await.unwrap(), Some(30));
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

/// Starts `serve` in `auto` mode on the database (with the fleet's settings for the
/// declared key `k` and the trigram index), checks that ingest, the service list, the
/// histogram over a week (the rollups) and `meta.k=v` answer, and returns its mode.
async fn serve_answers(database: &TestDatabase, url: &str) -> StorageMode {
    let mut app = spawn_app_on(database.clone(), url.to_owned(), |settings| {
        settings.database.storage = StorageSetting::Auto;
        settings.database.declared_keys = vec!["k".into()];
        settings.database.message_trigram_index = true;
        settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
    })
    .await;
    let mode = app.storage_mode;
    let mut with_key = entry("with k");
    with_key["metadata"] = serde_json::json!({"k": "v"});
    assert_eq!(app.post_single(with_key).await.status(), 201);
    for path in [
        "/api/v1/services?since=7d",
        "/api/v1/logs/histogram?since=7d",
        "/api/v1/logs?since=7d&meta.k=v",
    ] {
        let response = app
            .client
            .get(app.url(path))
            .header("X-API-Key", ADMIN_KEY)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        if path.contains("meta.k") {
            // The row stored before the migration and the one just written.
            assert_eq!(body.matches("\"with k\"").count(), 2, "{body}");
        }
    }
    app.stop().await;
    mode
}

/// `migrate` declaring a key and building the trigram index, failed at its first DDL
/// step, then at its second, and so on (each time from the same start): `serve` then
/// starts and answers (no 500, the same mode), and a rerun completes.
#[tokio::test]
async fn a_declaration_failing_at_any_step_leaves_a_database_serve_runs_on_and_a_rerun_completes() {
    let (database, url) = create_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    migrate_test_database(&pool).await;
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         VALUES (now() - interval '1 hour', 's', 'INFO', 'with k', '{\"k\": \"v\"}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut wanted = test_settings(&url).database;
    wanted.declared_keys = vec!["k".into()];
    wanted.message_trigram_index = true;
    let mut initial = wanted.clone();
    initial.declared_keys = Vec::new();
    initial.message_trigram_index = false;
    for step in 1.. {
        assert!(step < 50, "the migration never completed");
        fail_ddl_at_step(&pool, Some(step)).await;
        let result = declared_keys::apply(&pool, &wanted, Undeclared::Drop).await;
        fail_ddl_at_step(&pool, None).await;
        assert_eq!(serve_answers(&database, &url).await, expected_mode());
        // The rerun completes.
        declared_keys::apply(&pool, &wanted, Undeclared::Drop)
            .await
            .unwrap_or_else(|error| panic!("the rerun after a failure at step {step}: {error}"));
        let (declared, valid_indexes): (bool, i64) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'meta_k_set'), \
             (SELECT count(*) FROM pg_index WHERE indisvalid AND indexrelid IN \
              (to_regclass('logs_meta_k'), to_regclass('logs_message_trgm')))",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(
            declared && valid_indexes == 2,
            "after a rerun: {declared} {valid_indexes}"
        );
        if result.is_ok() {
            assert!(step > 3, "the migration had only {step} steps");
            break;
        }
        // Back to where the migration starts.
        declared_keys::apply(&pool, &initial, Undeclared::Drop)
            .await
            .unwrap();
        sqlx::query("ALTER TABLE logs DROP COLUMN meta_k")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM logs WHERE message = 'with k' AND timestamp > now() - interval '30 minutes'")
            .execute(&pool)
            .await
            .unwrap();
    }
}

/// `migrate` waits at most `LOG_INGESTION_MIGRATE_LOCK_TIMEOUT` for a lock writers
/// (here: a long reader) hold, then fails naming the table and the session, and has
/// applied nothing; run again once the session is gone, it completes.
#[tokio::test]
async fn migrate_gives_up_on_a_held_lock_naming_the_table_and_the_session() {
    let (_database, url) = create_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    migrate_test_database(&pool).await;
    let mut reader = PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    sqlx::query("SELECT count(*) FROM logs")
        .execute(&mut reader)
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    let migrate = || {
        Command::new(binary())
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("LOG_INGESTION_STORAGE", test_storage().to_string())
            .env("LOG_INGESTION_DECLARED_KEYS", "k")
            .env("LOG_INGESTION_MIGRATE_LOCK_TIMEOUT", "200ms")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    };
    let refused = migrate();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("could not lock logs") && stderr.contains(&format!("pid {pid} ")),
        "{stderr}"
    );
    let declared: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'meta_k_set')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!declared, "a failed declaration left its check");

    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    let completed = migrate();
    assert!(
        completed.status.success(),
        "{}",
        String::from_utf8_lossy(&completed.stderr)
    );
}

/// An index an interrupted build left invalid (writes keep it up to date, reads ignore
/// it): `serve` starts on it and leaves it alone, the next `migrate` drops it and builds
/// it again.
#[tokio::test]
async fn an_index_left_invalid_is_built_again_by_the_next_migrate_not_by_serve() {
    let (database, url) = create_database().await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    migrate_test_database(&pool).await;
    trigram_index::apply_message_trigram(&pool, true)
        .await
        .unwrap();
    let valid = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'logs_message_trgm'::regclass",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    // What an interrupted CREATE INDEX CONCURRENTLY leaves.
    sqlx::query(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'logs_message_trgm'::regclass",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut app = spawn_app_on(database, url.clone(), |settings| {
        settings.database.message_trigram_index = true;
    })
    .await;
    assert_eq!(app.post_single(entry("after")).await.status(), 201);
    app.stop().await;
    assert!(!valid().await, "serve touched the index");
    trigram_index::apply_message_trigram(&pool, true)
        .await
        .unwrap();
    assert!(valid().await);
}
