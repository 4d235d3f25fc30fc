use serde_json::{json, Value};

use log_ingestion_test_support::{entry, spawn_app, spawn_app_with, OTHER_API_KEY};

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

#[tokio::test]
async fn a_reused_key_with_a_different_body_is_422_and_stores_nothing() {
    let app = spawn_app().await;
    let send = |body: Value| {
        app.post("/api/v1/logs/batch")
            .header("Idempotency-Key", "reused-key")
            .json(&body)
            .send()
    };
    let original = json!({"logs": [entry("original")]});
    assert_eq!(send(original.clone()).await.unwrap().status(), 200);
    let other = send(json!({"logs": [entry("something else")]}))
        .await
        .unwrap();
    assert_eq!(other.status(), 422);
    assert!(other.headers().get("idempotent-replayed").is_none());
    let body: Value = other.json().await.unwrap();
    assert_eq!(
        body["error"],
        "Idempotency-Key reused with a different request"
    );
    assert_eq!(app.stored_messages().await, vec!["original".to_owned()]);
    let retry = send(original).await.unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(app.row_count().await, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_and_two_bodies_store_only_one_body() {
    let app = spawn_app().await;
    let first = json!({"logs": [entry("first body")]});
    let second = json!({"logs": [entry("second body")]});
    let requests = (0..8).map(|n| {
        let body = if n % 2 == 0 { &first } else { &second };
        let sent = app
            .post("/api/v1/logs/batch")
            .header("Idempotency-Key", "contested")
            .json(body)
            .send();
        async move { (n % 2, sent.await.unwrap().status().as_u16()) }
    });
    let answers = futures::future::join_all(requests).await;
    let stored = app.stored_messages().await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let winner = usize::from(stored[0] == "second body");
    for (body, status) in answers {
        let expected = if body == winner { 200 } else { 422 };
        assert_eq!(status, expected, "body {body}, winner {winner}");
    }
}

#[tokio::test]
async fn replayed_requests_add_no_rows_to_the_commit_batch_metric() {
    let app = spawn_app().await;
    let body = batch_body();
    let send = || {
        app.post("/api/v1/logs/batch")
            .header("Idempotency-Key", "metric-key")
            .json(&body)
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    let retry = send().await.unwrap();
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(app.metric("log_ingestion_commit_batch_rows_sum").await, 2);
    assert_eq!(app.row_count().await, 2);
}

#[tokio::test]
async fn a_retry_compressed_differently_is_the_same_request() {
    use std::io::Write;
    let app = spawn_app().await;
    let body = serde_json::to_vec(&json!({"logs": [entry("once")]})).unwrap();
    let plain = app
        .post("/api/v1/logs/batch")
        .header("Idempotency-Key", "encoding-key")
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&body).unwrap();
    let gzipped = app
        .post("/api/v1/logs/batch")
        .header("Idempotency-Key", "encoding-key")
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(encoder.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.status(), 200);
    assert_eq!(gzipped.headers()["idempotent-replayed"], "true");
    assert_eq!(app.row_count().await, 1);
}

/// Many requests with one key, all carrying a body other than the
/// one the key was first used with, arrive together and land in one commit group.
/// The first of them gets 422; the others used to be "replayed" from that 422-bound
/// claim and answered 200 `accepted` while nothing was stored. A request whose key
/// fails is never answered 2xx: every one of them is 422, and nothing more is stored.
#[tokio::test]
async fn requests_in_one_group_reusing_a_key_with_another_body_are_all_refused() {
    let app = spawn_app().await;
    let send = |body: Value| {
        app.post("/api/v1/logs/batch")
            .header("Idempotency-Key", "reused-in-one-group")
            .json(&body)
            .send()
    };
    assert_eq!(
        send(json!({"logs": [entry("original")]}))
            .await
            .unwrap()
            .status(),
        200
    );
    let other = json!({"logs": [entry("another body")]});
    let answers = futures::future::join_all((0..16).map(|_| send(other.clone()))).await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|answer| answer.unwrap().status().as_u16())
        .collect();
    assert!(statuses.iter().all(|&status| status == 422), "{statuses:?}");
    assert_eq!(app.stored_messages().await, vec!["original".to_owned()]);
}

/// The replay rule within one group when the key is new: the first request's claim is
/// committed with its rows, so an identical request in the same group replays it
/// (answered 2xx, stored once) and a request with another body is refused.
#[tokio::test]
async fn in_one_group_a_fresh_key_replays_only_the_request_it_committed() {
    let app = spawn_app_with(|settings| {
        settings.group_commit.writers = 1;
        settings.group_commit.linger = std::time::Duration::from_millis(200);
    })
    .await;
    let body = json!({"logs": [entry("fresh key")]});
    let answers = futures::future::join_all((0..8).map(|_| {
        app.post("/api/v1/logs/batch")
            .header("Idempotency-Key", "fresh-in-one-group")
            .json(&body)
            .send()
    }))
    .await;
    let replayed = answers
        .iter()
        .map(|answer| answer.as_ref().unwrap())
        .inspect(|answer| assert_eq!(answer.status(), 200))
        .filter(|answer| answer.headers().contains_key("idempotent-replayed"))
        .count();
    assert_eq!(replayed, 7);
    assert_eq!(app.stored_messages().await, vec!["fresh key".to_owned()]);
}
