use serde_json::Value;

use log_ingestion_test_support::{drop_database, entry, expected_mode, spawn_app};

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
