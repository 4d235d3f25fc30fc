use std::io::Write;

use serde_json::json;

use log_ingestion_test_support::{entry, json_with_status, spawn_app, spawn_app_with};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn a_gzip_batch_is_accepted() {
    let app = spawn_app().await;
    let body = json!({"logs": [entry("a"), entry("b")]}).to_string();
    let response = app
        .post_encoded("/api/v1/logs/batch", "gzip", gzip(body.as_bytes()))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.row_count().await, 2);
}

#[tokio::test]
async fn a_zstd_batch_is_accepted() {
    let app = spawn_app().await;
    let body = json!({"logs": [entry("a"), entry("b"), entry("c")]}).to_string();
    let response = app
        .post_encoded(
            "/api/v1/logs/batch",
            "zstd",
            zstd::encode_all(body.as_bytes(), 3).unwrap(),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.row_count().await, 3);
}

#[tokio::test]
async fn a_gzip_single_entry_is_accepted() {
    let app = spawn_app().await;
    let body = json!({"log": entry("a")}).to_string();
    let response = app
        .post_encoded("/api/v1/logs", "gzip", gzip(body.as_bytes()))
        .await;
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_body_that_decompresses_past_the_cap_is_413() {
    let app = spawn_app_with(|settings| settings.max_body_bytes = 64 * 1024).await;
    let padding = " ".repeat(1_000_000);
    let body = format!("{{\"logs\": [{}]{padding}}}", entry("a"));
    let compressed = gzip(body.as_bytes());
    assert!(compressed.len() < 64 * 1024);
    let response = app
        .post_encoded("/api/v1/logs/batch", "gzip", compressed)
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn an_unsupported_content_encoding_is_415() {
    let app = spawn_app().await;
    let response = app
        .post_encoded("/api/v1/logs/batch", "br", "whatever")
        .await;
    let body = json_with_status(response, 415).await;
    assert_eq!(body["error"], "Unsupported content encoding");
}

#[tokio::test]
async fn a_corrupt_gzip_body_is_400() {
    let app = spawn_app().await;
    let response = app
        .post_encoded("/api/v1/logs/batch", "gzip", "definitely not gzip")
        .await;
    assert_eq!(response.status(), 400);
}
