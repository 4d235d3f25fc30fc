use serde_json::{json, Value};

use crate::helpers::{entry, spawn_app, OTHER_API_KEY};

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
