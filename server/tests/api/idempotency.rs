use serde_json::{json, Value};

use crate::helpers::{entry, spawn_app, OTHER_API_KEY};

fn batch_body() -> Value {
    let mut bad = entry("bad");
    bad["level"] = json!("LOUD");
    json!({"logs": [entry("first"), bad, entry("second")]})
}

#[tokio::test]
async fn a_retried_batch_is_stored_once_and_gets_the_original_answer() {
    let app = spawn_app().await;
    let body = batch_body();
    let send = || {
        app.post("/api/v1/logs/batch")
            .header("Idempotency-Key", "batch-0001")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body: Value = first.json().await.unwrap();
    let retry = send().await.unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry_body: Value = retry.json().await.unwrap();
    assert_eq!(retry_body, first_body);
    assert_eq!(app.row_count().await, 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_are_stored_once() {
    let app = spawn_app().await;
    let body = batch_body();
    let requests = (0..8).map(|_| {
        app.post("/api/v1/logs/batch")
            .header("Idempotency-Key", "same-key")
            .json(&body)
            .send()
    });
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert_eq!(app.row_count().await, 2);
}

#[tokio::test]
async fn the_same_idempotency_key_under_another_api_key_is_a_different_request() {
    let app = spawn_app().await;
    let body = batch_body();
    let first = app
        .post("/api/v1/logs/batch")
        .header("Idempotency-Key", "shared")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let other = app
        .client
        .post(app.url("/api/v1/logs/batch"))
        .header("X-API-Key", OTHER_API_KEY)
        .header("Idempotency-Key", "shared")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert!(other.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.row_count().await, 4);
}

#[tokio::test]
async fn a_key_older_than_a_day_no_longer_replays() {
    let app = spawn_app().await;
    let body = batch_body();
    let send = || {
        app.post("/api/v1/logs/batch")
            .header("Idempotency-Key", "old-key")
            .json(&body)
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        .execute(&app.pool)
        .await
        .unwrap();
    let again = send().await.unwrap();
    assert!(again.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.row_count().await, 4);
}

#[tokio::test]
async fn an_unusable_idempotency_key_is_400() {
    let app = spawn_app().await;
    let response = app
        .post("/api/v1/logs/batch")
        .header("Idempotency-Key", "x".repeat(300))
        .json(&batch_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(app.row_count().await, 0);
}
