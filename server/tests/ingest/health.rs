use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use log_ingestion_test_support::{
    drop_database, entry, expected_mode, spawn_app, wait_until, TestApp,
};

/// What the trigger of [`refuse_writes`] says: the database's own error text.
const REFUSAL: &str = "writes refused by the test";

/// Makes every insert into `logs` fail in the database itself (a trigger that raises),
/// as a database that lost a privilege, went read-only or cannot load a library does.
async fn refuse_writes(pool: &PgPool) {
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$; \
         CREATE TRIGGER refuse_writes BEFORE INSERT ON logs \
         FOR EACH ROW EXECUTE FUNCTION refuse_writes();"
    ))
    .execute(pool)
    .await
    .unwrap();
}

async fn allow_writes(pool: &PgPool) {
    sqlx::raw_sql("DROP TRIGGER refuse_writes ON logs; DROP FUNCTION refuse_writes();")
        .execute(pool)
        .await
        .unwrap();
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn health_reports_healthy_and_the_storage_mode() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["storage"], expected_mode().as_str());
}

#[tokio::test]
async fn livez_and_readyz_answer_200_while_the_database_is_up() {
    let app = spawn_app().await;
    for path in ["/livez", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn health_is_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    drop_database(&app.database_name).await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["storage"], expected_mode().as_str());
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn ingest_is_503_with_retry_after_when_the_database_is_gone() {
    let app = spawn_app().await;
    drop_database(&app.database_name).await;
    let response = app.post_single(entry("lost?")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "Storage unavailable");
}

#[tokio::test]
async fn metrics_count_accepted_entries_and_refusals_in_prometheus_text() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_batch(vec![entry("a"), entry("b")]).await.status(),
        200
    );
    let refused = app
        .client
        .post(app.url("/api/v1/logs"))
        .json(&serde_json::json!({"log": entry("c")}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains("log_ingestion_entries_accepted_total 2"),
        "{text}"
    );
    assert!(
        text.contains("log_ingestion_requests_rejected_total{reason=\"missing_api_key\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("log_ingestion_commit_batch_rows_count 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "log_ingestion_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/logs/batch\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn health_is_503_with_the_database_error_once_a_group_commit_fails() {
    let app = spawn_app().await;
    assert_eq!(get(&app, "/health").await.0, 200);
    refuse_writes(&app.pool).await;
    assert_eq!(app.post_single(entry("refused")).await.status(), 503);
    let (status, body) = get(&app, "/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(REFUSAL) && error.contains("P0001"),
        "{error}"
    );
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains(REFUSAL), "{body}");
}

#[tokio::test]
async fn an_idle_instance_probes_writes_and_health_follows_them_both_ways() {
    let app = spawn_app().await;
    refuse_writes(&app.pool).await;
    // No request writes: the health checks' own probe finds the failure.
    let unhealthy = wait_until(Duration::from_secs(30), || async {
        let (status, body) = get(&app, "/health").await;
        status == 503 && body["error"].as_str().is_some_and(|e| e.contains(REFUSAL))
    })
    .await;
    assert!(unhealthy, "{:?}", get(&app, "/health").await);
    assert_eq!(get(&app, "/readyz").await.0, 503);

    allow_writes(&app.pool).await;
    let healthy = wait_until(Duration::from_secs(30), || async {
        get(&app, "/health").await.0 == 200
    })
    .await;
    assert!(healthy, "{:?}", get(&app, "/health").await);
    assert_eq!(get(&app, "/readyz").await.0, 200);
    // The probes' rows were rolled back.
    assert_eq!(app.row_count().await, 0);
}

/// Ids handed out so far by `logs`' identity (a test write takes one even though it is
/// rolled back).
async fn ids_taken(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(last_value, 0) FROM pg_sequences WHERE sequencename = 'logs_id_seq'",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
    .unwrap_or(0)
}

#[tokio::test]
async fn health_checks_probe_writes_at_most_once_per_interval() {
    let app = spawn_app().await;
    let started = std::time::Instant::now();
    let before = ids_taken(&app.pool).await;
    for _ in 0..50 {
        assert_eq!(get(&app, "/health").await.0, 200);
        assert_eq!(get(&app, "/readyz").await.0, 200);
    }
    let probes = ids_taken(&app.pool).await - before;
    // One probe per started 5 s at most, whatever the number of checks.
    let allowed = 1 + started.elapsed().as_secs() as i64 / 5;
    assert!(
        probes <= allowed,
        "{probes} test writes for 100 checks in {:?}",
        started.elapsed()
    );
    assert_eq!(app.row_count().await, 0, "and none of them stayed");
}
