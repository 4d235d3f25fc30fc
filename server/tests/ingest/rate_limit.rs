use serde_json::Value;

use log_ingestion_test_support::{entry, spawn_app_with, OTHER_API_KEY};

#[tokio::test]
async fn requests_past_the_burst_get_429_with_retry_after() {
    let app = spawn_app_with(|settings| {
        settings.rate_limit.rps = 1;
        settings.rate_limit.burst = 2;
    })
    .await;
    assert_eq!(app.post_single(entry("1")).await.status(), 201);
    assert_eq!(app.post_single(entry("2")).await.status(), 201);
    let refused = app.post_single(entry("3")).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "Rate limit exceeded");
    assert_eq!(app.row_count().await, 2);
}

#[tokio::test]
async fn each_api_key_has_its_own_budget() {
    let app = spawn_app_with(|settings| {
        settings.rate_limit.rps = 1;
        settings.rate_limit.burst = 1;
    })
    .await;
    assert_eq!(app.post_single(entry("1")).await.status(), 201);
    assert_eq!(app.post_single(entry("2")).await.status(), 429);
    let other = app
        .client
        .post(app.url("/api/v1/logs"))
        .header("X-API-Key", OTHER_API_KEY)
        .json(&serde_json::json!({"log": entry("3")}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 201);
}
