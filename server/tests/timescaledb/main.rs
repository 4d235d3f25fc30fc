//! TimescaleDB mode end to end, against a real TimescaleDB: converting a plain table that
//! holds rows, refusing an explicit mode that cannot be had, the server running the
//! policy jobs the scheduler does not (compression and retention really happen, and
//! compressed chunks stay readable through the read API), failing jobs reported in
//! `/health` and `/metrics`, and the rollups refreshed after a backfill
//! (`rollup_refresh`).
//!
//! Runs only with `LOG_INGESTION_TEST_STORAGE=timescaledb` (`rake test:rust` sets it on
//! its second pass when TimescaleDB is installed); otherwise every test returns at once.

mod rollup_refresh;

use std::process::Command;
use std::time::Duration;

use log_ingestion_server::auth::ApiKey;
use log_ingestion_server::startup::Application;
use log_ingestion_server::storage::{self, ConvertRows, StorageMode, StorageSetting};
use log_ingestion_test_support::{
    create_database, expected_mode, fail_ddl_at_step, spawn_app_on, test_settings, wait_until,
    TestApp, TestDatabase,
};
use log_ingestion_test_support::{SseReader, ADMIN_KEY};
use serde_json::Value;
use sqlx::PgPool;

const BINARY: &str = env!("CARGO_BIN_EXE_log-ingestion-server");
/// Generous: the machine is shared, and a check runs every POLICY_CHECK.
const WAIT: Duration = Duration::from_secs(60);
const POLICY_CHECK: Duration = Duration::from_millis(300);
const DAY: i32 = 24 * 60;

fn timescale_run() -> bool {
    expected_mode() == StorageMode::Timescale
}

async fn messages(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT message FROM logs ORDER BY timestamp, message")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Rows at these ages (in minutes), one per age, messages `age-<minutes>m`.
/// Whether `logs` is a hypertable, asked through TimescaleDB's public view (the server's
/// own check reads the catalog; the test asks independently).
async fn logs_is_hypertable(pool: &PgPool) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables \
         WHERE hypertable_name = 'logs')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn insert_rows_aged(pool: &PgPool, minutes: &[i32]) {
    for &age in minutes {
        sqlx::query(
            "INSERT INTO logs (timestamp, service, level, message, metadata) \
             VALUES (now() - make_interval(mins => $1), 'api', 'INFO', $2, '{\"k\": 1}')",
        )
        .bind(age)
        .bind(format!("age-{age}m"))
        .execute(pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn migrate_storage_timescaledb_converts_a_plain_table_with_rows_keeping_every_row() {
    if !timescale_run() {
        return;
    }
    let (_database, url) = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    let mode = storage::migrate(&pool, StorageSetting::Postgres, ConvertRows::Refuse)
        .await
        .unwrap();
    assert_eq!(mode, StorageMode::Postgres);
    let extension: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!extension, "postgresql mode created the extension");
    insert_rows_aged(&pool, &[1, 30 * 60, 60 * 60, 3 * DAY]).await;
    let before = messages(&pool).await;

    // serve: auto keeps the plain table (one warning), timescaledb refuses and says how.
    let mut settings = test_settings(&url);
    settings.database.storage = StorageSetting::Auto;
    let auto = Application::build(settings).await.unwrap();
    assert_eq!(auto.storage_mode(), StorageMode::Postgres);
    drop(auto);
    let mut settings = test_settings(&url);
    settings.database.storage = StorageSetting::Timescale;
    let refused = Application::build(settings)
        .await
        .err()
        .expect("timescaledb on a plain table holding rows refuses to start")
        .to_string();
    assert!(
        refused.contains("LOG_INGESTION_STORAGE=timescaledb")
            && refused.contains("migrate --storage timescaledb"),
        "{refused}"
    );

    let output = Command::new(BINARY)
        .args(["migrate", "--storage", "timescaledb"])
        .env("DATABASE_URL", &url)
        .env("LOG_INGESTION_STORAGE", "postgresql") // the flag wins
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        logs_is_hypertable(&pool).await,
        "logs did not become a hypertable"
    );
    assert_eq!(messages(&pool).await, before, "rows lost or changed");
    let chunks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'logs'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(chunks >= 3, "rows were not moved into day chunks: {chunks}");
    let in_parent: i64 = sqlx::query_scalar("SELECT count(*) FROM ONLY logs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(in_parent, 0, "rows left behind in the parent table");

    // Once a hypertable, postgresql mode refuses rather than pretend.
    let mut settings = test_settings(&url);
    settings.database.storage = StorageSetting::Postgres;
    let refused = Application::build(settings)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        refused.contains("already a TimescaleDB hypertable"),
        "{refused}"
    );
}

/// The compression policy re-added so that TimescaleDB's scheduler will not start it
/// for a year: only the server's watcher can run it within the test.
async fn defer_compression_policy(pool: &PgPool) -> i32 {
    sqlx::query("SELECT remove_compression_policy('logs')")
        .execute(pool)
        .await
        .unwrap();
    let job_id: i32 = sqlx::query_scalar(
        "SELECT add_compression_policy('logs', interval '7 days', \
                                       initial_start => now() + interval '1 year')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    job_id
}

async fn spawn_timescale_app(
    url: String,
    name: TestDatabase,
    retention_days: Option<u32>,
) -> TestApp {
    // What `migrate` does with LOG_INGESTION_RETENTION_DAYS: the server follows it.
    let pool = PgPool::connect(&url).await.unwrap();
    storage::retention::declare(&pool, StorageMode::Timescale, retention_days)
        .await
        .unwrap();
    pool.close().await;
    spawn_app_on(name, url, |settings| {
        settings.policy_check_interval = POLICY_CHECK;
        settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
    })
    .await
}

async fn chunk_states(pool: &PgPool) -> Vec<(String, bool)> {
    sqlx::query_as(
        "SELECT range_start::text, is_compressed FROM timescaledb_information.chunks \
         WHERE hypertable_name = 'logs' ORDER BY range_start",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    app.admin().json(path, &[] as &[(&str, &str)]).await
}

#[tokio::test]
async fn the_server_runs_the_policies_and_compressed_chunks_stay_readable() {
    if !timescale_run() {
        return;
    }
    let (name, url) = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    storage::migrate(&pool, StorageSetting::Timescale, ConvertRows::Refuse)
        .await
        .unwrap();
    // 40 days old (past a 30-day retention: its chunk must go), 10 and 9 days old (past
    // the 7-day compression threshold; two rows a minute apart at 9), one hour old.
    insert_rows_aged(&pool, &[40 * DAY, 10 * DAY, 9 * DAY + 1, 9 * DAY, 60]).await;
    let compression_job = defer_compression_policy(&pool).await;
    let app = spawn_timescale_app(url, name, Some(30)).await;

    // Both jobs must have run: compression alone also compresses the 40-day chunk (it
    // is older than 7 days too), which leaves the chunk count in range until retention
    // drops it, so the dropped row is waited for as well.
    let done = wait_until(WAIT, || async {
        let chunks = chunk_states(&app.pool).await;
        chunks.len() >= 3
            && chunks.len() <= 4
            && chunks[..chunks.len() - 1]
                .iter()
                .all(|(_, compressed)| *compressed)
            && !messages(&app.pool)
                .await
                .iter()
                .any(|message| message == "age-57600m")
    })
    .await;
    assert!(
        done,
        "expected the 40-day chunk dropped and the 9- and 10-day chunks compressed: {:?}",
        chunk_states(&app.pool).await
    );
    let expected = ["age-14400m", "age-12961m", "age-12960m", "age-60m"];
    assert_eq!(messages(&app.pool).await, expected);

    // The scheduler was never going to run the deferred job: the server did.
    let health = wait_until(WAIT, || async {
        let body: Value = app
            .client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["policy_jobs"].as_array().is_some_and(|jobs| {
            jobs.iter().any(|job| {
                job["job_id"] == compression_job && job["server_runs"].as_u64() >= Some(1)
            })
        })
    })
    .await;
    assert!(
        health,
        "/health never showed the server's run of the compression job"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(&format!(
            "log_ingestion_policy_job_server_failures_total{{policy=\"compression\",job_id=\"{compression_job}\"}} 0"
        )),
        "{metrics}"
    );

    // Compressed rows through the read API: search, context, histogram, tail.
    let page = get_json(&app, "/api/v1/logs?since=15d&service=api").await;
    let found: Vec<&str> = page["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|log| log["message"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["age-60m", "age-12960m", "age-12961m", "age-14400m"]);
    let compressed_id = page["logs"][1]["id"].as_i64().unwrap();
    let context = get_json(&app, &format!("/api/v1/logs/{compressed_id}/context")).await;
    assert_eq!(context["entry"]["message"], "age-12960m");
    assert_eq!(context["entry"]["metadata"]["k"], 1);
    assert_eq!(context["before"][0]["message"], "age-12961m", "{context}");
    let histogram = get_json(&app, "/api/v1/logs/histogram?since=15d&bucket=1d").await;
    let total: i64 = histogram["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|bucket| bucket["counts"].as_object().unwrap().values())
        .map(|count| count.as_i64().unwrap())
        .sum();
    assert_eq!(total, 4, "{histogram}");
    let oldest_id: i64 = sqlx::query_scalar("SELECT min(id) FROM logs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let response = app
        .client
        .get(app.url("/api/v1/logs/tail"))
        .header("X-API-Key", ADMIN_KEY)
        .header("Last-Event-ID", (oldest_id - 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut tail = SseReader::new(response);
    let mut tailed = Vec::new();
    for _ in 0..expected.len() {
        let event = tail
            .next_named("log", Duration::from_secs(10))
            .await
            .expect("the tail resumes through compressed chunks");
        let entry: Value = serde_json::from_str(&event.data).unwrap();
        tailed.push(entry["message"].as_str().unwrap().to_owned());
    }
    tailed.sort();
    let mut expected = expected.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(tailed, expected);
}

#[tokio::test]
async fn a_failing_policy_job_makes_health_degraded_not_down_and_shows_in_metrics() {
    if !timescale_run() {
        return;
    }
    let (name, url) = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    storage::migrate(&pool, StorageSetting::Timescale, ConvertRows::Refuse)
        .await
        .unwrap();
    // A compression run that cannot succeed, whoever runs it: the only chunk to
    // compress stays locked by this test, and the database's lock_timeout gives up.
    sqlx::query(&format!(
        "ALTER DATABASE \"{}\" SET lock_timeout = '200ms'",
        name.name()
    ))
    .execute(&pool)
    .await
    .unwrap();
    insert_rows_aged(&pool, &[10 * DAY]).await;
    let job = defer_compression_policy(&pool).await;
    let chunk: String = sqlx::query_scalar("SELECT show_chunks('logs')::text LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(&format!("LOCK TABLE {chunk} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut *holder)
        .await
        .unwrap();
    let app = spawn_timescale_app(url, name, None).await;
    let failing =
        format!("log_ingestion_policy_job_failing{{policy=\"compression\",job_id=\"{job}\"}} 1");
    let reported = wait_until(WAIT, || async {
        app.metrics_text().await.contains(&failing)
    })
    .await;
    assert!(reported, "{}", app.metrics_text().await);
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200, "degraded is not down");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["storage"], "timescaledb");
    let reported_job = body["policy_jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["job_id"] == job)
        .unwrap_or_else(|| panic!("job {job} missing from {body}"));
    assert!(
        reported_job["server_failures"].as_u64() >= Some(1),
        "{body}"
    );
    let error = reported_job["server_last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(!error.is_empty() && error.len() <= 300, "{body}");
    // Ingest keeps working while a policy fails.
    assert_eq!(
        app.post_single(log_ingestion_test_support::entry("still ingesting"))
            .await
            .status(),
        201
    );
    holder.rollback().await.unwrap();
}

/// Whether `logs` is a hypertable, also where the extension does not exist (yet).
async fn converted(pool: &PgPool) -> bool {
    sqlx::query_scalar(
        "SELECT to_regclass('_timescaledb_catalog.hypertable') IS NOT NULL \
         AND EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'logs'::regclass) \
         OR EXISTS (SELECT 1 FROM pg_class WHERE relname = 'logs_per_minute' AND relkind = 'v')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Starts `serve` in `auto` mode on the database, checks that ingest, the service list
/// and the histogram over a week (the rollups) answer, and returns its mode.
async fn auto_serve_answers(database: &TestDatabase, url: &str) -> StorageMode {
    let mut app = spawn_app_on(database.clone(), url.to_owned(), |settings| {
        settings.database.storage = StorageSetting::Auto;
        settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
    })
    .await;
    assert_eq!(
        app.post_batch(vec![log_ingestion_test_support::entry("during")])
            .await
            .status(),
        200
    );
    for path in [
        "/api/v1/services?since=7d",
        "/api/v1/logs/histogram?since=7d",
    ] {
        get_json(&app, path).await;
    }
    let mode = app.storage_mode;
    app.stop().await;
    mode
}

/// A plain-mode database with rows of several ages and the extension created (its own
/// script is hundreds of DDL commands: an operator's database that has the extension
/// already, as after any earlier attempt); the rows' messages.
async fn plain_table_with_the_extension() -> (TestDatabase, String, PgPool, Vec<String>) {
    let (database, url) = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    storage::migrate(&pool, StorageSetting::Postgres, ConvertRows::Refuse)
        .await
        .unwrap();
    sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
        .execute(&pool)
        .await
        .unwrap();
    insert_rows_aged(&pool, &[1, 60, 3 * DAY]).await;
    let before = messages(&pool).await;
    (database, url, pool, before)
}

/// `logs` is a hypertable, `serve` in `auto` mode runs in TimescaleDB mode, and every
/// row of `before` is still there.
async fn assert_converted_keeping(
    database: &TestDatabase,
    url: &str,
    pool: &PgPool,
    before: &[String],
) {
    assert!(logs_is_hypertable(pool).await);
    assert_eq!(
        auto_serve_answers(database, url).await,
        StorageMode::Timescale
    );
    let stored = messages(pool).await;
    assert!(before.iter().all(|message| stored.contains(message)));
}

/// `migrate --storage timescaledb` on a plain table with rows, failed at its first DDL
/// step, then its second, and so on: each failure leaves the plain table with its
/// rollups and every row (one transaction), `serve` in `auto` mode starts on it in
/// plain mode and answers (no 500, no silent mode change), and the run that gets past
/// every step converts it.
#[tokio::test]
async fn a_conversion_failing_at_any_step_leaves_the_plain_table_working_and_a_rerun_converts_it() {
    if !timescale_run() {
        return;
    }
    let (database, url, pool, before) = plain_table_with_the_extension().await;
    let mut steps = 0;
    for step in 1.. {
        assert!(step < 100, "the conversion never completed");
        fail_ddl_at_step(&pool, Some(step)).await;
        let result = storage::migrate(&pool, StorageSetting::Timescale, ConvertRows::Allow).await;
        fail_ddl_at_step(&pool, None).await;
        if result.is_ok() {
            steps = step - 1;
            break;
        }
        assert!(
            !converted(&pool).await,
            "a failure at step {step} left a half conversion"
        );
        let stored = messages(&pool).await;
        assert!(
            before.iter().all(|message| stored.contains(message)),
            "rows lost at step {step}"
        );
        assert_eq!(
            auto_serve_answers(&database, &url).await,
            StorageMode::Postgres,
            "after a failure at step {step}"
        );
    }
    assert!(steps >= 3, "only {steps} DDL steps were failed");
    assert_converted_keeping(&database, &url, &pool, &before).await;
}

/// The conversion's steps that run no DDL of their own (TimescaleDB's functions and
/// statements it handles itself), failed by a lock they cannot get: the first lock on
/// `logs` (a reader holds it), the compression policy after the hypertable exists (the
/// job catalog is held) and the continuous aggregates (their catalog is held). Each failure leaves the plain table
/// working, as above.
#[tokio::test]
async fn a_conversion_failing_in_timescaledbs_own_steps_leaves_the_plain_table_working() {
    if !timescale_run() {
        return;
    }
    let (database, url, pool, before) = plain_table_with_the_extension().await;
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let impatient = PgPool::connect_with(options.options([("lock_timeout", "200ms")]))
        .await
        .unwrap();
    for held in [
        "logs IN ACCESS SHARE MODE",
        "_timescaledb_config.bgw_job IN EXCLUSIVE MODE",
        "_timescaledb_catalog.continuous_agg IN EXCLUSIVE MODE",
    ] {
        let mut holder = pool.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *holder).await.unwrap();
        sqlx::query(&format!("LOCK TABLE {held}"))
            .execute(&mut *holder)
            .await
            .unwrap();
        let result =
            storage::migrate(&impatient, StorageSetting::Timescale, ConvertRows::Allow).await;
        sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
        drop(holder);
        let error = result
            .err()
            .unwrap_or_else(|| panic!("converted while {held} was held"));
        assert!(
            error.to_string().contains("could not lock"),
            "{held}: {error}"
        );
        assert!(!converted(&pool).await, "{held}: a half conversion");
        assert_eq!(
            auto_serve_answers(&database, &url).await,
            StorageMode::Postgres,
            "after a failure while {held} was held"
        );
    }
    storage::migrate(&impatient, StorageSetting::Timescale, ConvertRows::Allow)
        .await
        .unwrap();
    assert_converted_keeping(&database, &url, &pool, &before).await;
}

/// The reproduction: the conversion cannot get its lock (a long reader holds
/// `logs`): it gives up within the lock timeout naming the reader's pid, and the plain
/// table keeps its rollups, so `serve` in `auto` mode answers (before, the rollups were
/// dropped first and every histogram answered 500).
#[tokio::test]
async fn a_conversion_that_cannot_lock_the_table_names_the_session_and_changes_nothing() {
    if !timescale_run() {
        return;
    }
    let (database, url) = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    storage::migrate(&pool, StorageSetting::Postgres, ConvertRows::Refuse)
        .await
        .unwrap();
    insert_rows_aged(&pool, &[1, 3 * DAY]).await;
    let mut reader = pool.acquire().await.unwrap();
    sqlx::query("BEGIN").execute(&mut *reader).await.unwrap();
    sqlx::query("SELECT count(*) FROM logs")
        .execute(&mut *reader)
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *reader)
        .await
        .unwrap();
    let output = Command::new(BINARY)
        .args(["migrate", "--storage", "timescaledb"])
        .env("DATABASE_URL", &url)
        .env("LOG_INGESTION_MIGRATE_LOCK_TIMEOUT", "300ms")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("could not lock logs") && stderr.contains(&format!("pid {pid} ")),
        "{stderr}"
    );
    sqlx::query("COMMIT").execute(&mut *reader).await.unwrap();
    drop(reader);
    assert!(!converted(&pool).await);
    assert_eq!(
        auto_serve_answers(&database, &url).await,
        StorageMode::Postgres
    );
}
