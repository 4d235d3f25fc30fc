use serde_json::{json, Value};

use log_ingestion_test_support::{entry, spawn_app, OTHER_API_KEY};

#[tokio::test]
async fn a_request_without_a_key_is_401_api_key_is_required() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/v1/logs"))
        .json(&json!({"log": entry("x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "API key is required");
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn a_wrong_key_is_401_invalid_api_key() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/v1/logs/batch"))
        .header("X-API-Key", "not-a-configured-key")
        .json(&json!({"logs": [entry("x")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "Invalid API key");
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn a_bearer_token_is_accepted_as_the_api_key() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/v1/logs"))
        .bearer_auth(OTHER_API_KEY)
        .json(&json!({"log": entry("x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(app.row_count().await, 1);
}

const ADMIN_KEY: &str = "test-admin-key-for-unknown-paths";

#[tokio::test]
async fn an_unknown_api_path_without_a_key_is_401() {
    let app = spawn_app().await;
    for path in [
        "/api",
        "/api/",
        "/api/v1/nothing",
        "/api/v1/logs/1/other/deep",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "API key is required", "{path}");
    }
    let wrong = app
        .client
        .post(app.url("/api/v2/logs"))
        .header("X-API-Key", "not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test]
async fn an_unknown_api_path_with_a_valid_ingestion_or_admin_key_is_404() {
    let app = log_ingestion_test_support::spawn_app_with(|settings| {
        settings.admin_api_keys = vec![log_ingestion_server::auth::ApiKey::new(ADMIN_KEY)];
    })
    .await;
    for key in [OTHER_API_KEY, ADMIN_KEY] {
        let response = app
            .client
            .delete(app.url("/api/v1/nothing"))
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "Not found");
    }
}

#[tokio::test]
async fn request_latency_is_labelled_by_method() {
    let app = spawn_app().await;
    assert_eq!(app.post_single(entry("timed")).await.status(), 201);
    let read = app
        .client
        .get(app.url("/api/v1/logs"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 401);
    let text = app.metrics_text().await;
    assert!(
        text.contains(
            "log_ingestion_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/logs\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "log_ingestion_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/logs\"} 1"
        ),
        "{text}"
    );
}
