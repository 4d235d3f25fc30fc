use serde_json::{json, Value};

use log_ingestion_test_support::{entry, json_with_status, spawn_app, spawn_app_with, API_KEY};

#[tokio::test]
async fn the_guides_curl_command_is_accepted() {
    let app = spawn_app().await;
    // Verbatim from the guide's Troubleshooting section, with our test key.
    let response = app
        .client
        .post(app.url("/api/v1/logs"))
        .header("Content-Type", "application/json")
        .header("X-API-Key", API_KEY)
        .body(r#"{"log":{"timestamp":"2024-01-01T12:00:00Z","service":"test","level":"INFO","message":"test"}}"#)
        .send()
        .await
        .unwrap();
    let body = json_with_status(response, 201).await;
    assert_eq!(body, json!({"accepted": 1}));
    let (service, level, message, at): (String, String, String, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT service, level, message, timestamp FROM logs")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (service.as_str(), level.as_str(), message.as_str()),
        ("test", "INFO", "test")
    );
    assert_eq!(at.to_rfc3339(), "2024-01-01T12:00:00+00:00");
}

#[tokio::test]
async fn levels_are_case_insensitive_and_stored_uppercase() {
    let app = spawn_app().await;
    let mut log = entry("x");
    log["level"] = json!("warning");
    assert_eq!(app.post_single(log).await.status(), 201);
    let level: String = sqlx::query_scalar("SELECT level FROM logs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(level, "WARNING");
}

#[tokio::test]
async fn an_invalid_entry_is_400_validation_failed_naming_each_field() {
    let app = spawn_app().await;
    let response = app
        .post_single(
            json!({"timestamp": "yesterday", "service": "", "level": "LOUD", "message": ""}),
        )
        .await;
    let body = json_with_status(response, 400).await;
    assert_eq!(body["error"], "Validation failed");
    let details: Vec<String> = serde_json::from_value(body["details"].clone()).unwrap();
    for field in ["timestamp", "service", "level", "message"] {
        assert!(
            details.iter().any(|d| d.starts_with(field)),
            "{field} in {details:?}"
        );
    }
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn a_timestamp_more_than_an_hour_ahead_is_rejected() {
    let app = spawn_app().await;
    let mut log = entry("x");
    log["timestamp"] = json!((chrono::Utc::now() + chrono::Duration::minutes(61)).to_rfc3339());
    assert_eq!(app.post_single(log).await.status(), 400);
}

#[tokio::test]
async fn a_tighter_timestamp_window_is_one_setting_away() {
    let app = spawn_app_with(|settings| {
        settings.limits.max_timestamp_age = std::time::Duration::from_secs(86_400);
    })
    .await;
    let mut log = entry("x");
    log["timestamp"] = json!("2024-01-01T12:00:00Z");
    let response = app.post_single(log).await;
    let body = json_with_status(response, 400).await;
    assert!(
        body["details"][0].as_str().unwrap().contains("older"),
        "{body}"
    );
}

#[tokio::test]
async fn a_message_over_the_cap_is_rejected() {
    let app = spawn_app_with(|settings| settings.limits.max_message_bytes = 100).await;
    let response = app.post_single(entry(&"x".repeat(101))).await;
    assert_eq!(response.status(), 400);
    assert_eq!(app.post_single(entry(&"x".repeat(100))).await.status(), 201);
}

#[tokio::test]
async fn metadata_that_is_not_an_object_is_rejected() {
    let app = spawn_app().await;
    let mut log = entry("x");
    log["metadata"] = json!(["a", "list"]);
    let response = app.post_single(log).await;
    let body = json_with_status(response, 400).await;
    assert!(
        body["details"][0].as_str().unwrap().starts_with("metadata"),
        "{body}"
    );
}

#[tokio::test]
async fn sensitive_metadata_keys_are_stored_filtered_at_any_depth() {
    let app = spawn_app().await;
    let mut log = entry("login");
    log["metadata"] = json!({
        "user_id": 7,
        "password": "hunter2",
        "request": {"headers": {"Authorization": "Bearer abc", "accept": "json"}},
        "payment": [{"credit_card": "4111111111111111"}],
        "API_KEY": "k",
        "ssn": "078-05-1120",
        "class_name": "User",
        "tokens_used": 12
    });
    assert_eq!(app.post_single(log).await.status(), 201);
    let stored: Value = sqlx::query_scalar("SELECT metadata FROM logs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored["user_id"], 7);
    assert_eq!(stored["password"], "[FILTERED]");
    assert_eq!(stored["request"]["headers"]["Authorization"], "[FILTERED]");
    assert_eq!(stored["request"]["headers"]["accept"], "json");
    assert_eq!(stored["payment"][0]["credit_card"], "[FILTERED]");
    assert_eq!(stored["API_KEY"], "[FILTERED]");
    assert_eq!(stored["ssn"], "[FILTERED]");
    assert_eq!(stored["class_name"], "User");
    assert_eq!(stored["tokens_used"], 12);
    assert!(!stored.to_string().contains("hunter2"));
}

#[tokio::test]
async fn nul_bytes_are_made_storable_instead_of_failing() {
    let app = spawn_app().await;
    let body = r#"{"log":{"timestamp":"2024-01-01T12:00:00Z","service":"a\u0000b","level":"INFO","message":"m\u0000n","metadata":{"k\u0000":"v\u0000"}}}"#;
    let response = app
        .post_body("/api/v1/logs", "application/json", body)
        .await;
    assert_eq!(response.status(), 201);
    let (service, message): (String, String) = sqlx::query_as("SELECT service, message FROM logs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(service, "a\u{FFFD}b");
    assert_eq!(message, "m\u{FFFD}n");
}

#[tokio::test]
async fn a_lone_surrogate_is_a_clear_400_not_a_500() {
    let app = spawn_app().await;
    let body = r#"{"log":{"timestamp":"2024-01-01T12:00:00Z","service":"a","level":"INFO","message":"bad \ud800 here"}}"#;
    let response = app
        .post_body("/api/v1/logs", "application/json", body)
        .await;
    let body = json_with_status(response, 400).await;
    assert!(body["details"].to_string().contains("surrogate"), "{body}");
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn malformed_json_is_400_with_line_and_column() {
    let app = spawn_app().await;
    let response = app
        .post_body(
            "/api/v1/logs",
            "application/json",
            "{\"log\": {\"timestamp\": \n  oops}",
        )
        .await;
    let body = json_with_status(response, 400).await;
    assert_eq!(body["error"], "Malformed JSON");
    assert_eq!(body["details"]["line"], 2);
    assert_eq!(body["details"]["column"], 3);
}

#[tokio::test]
async fn a_body_without_the_log_field_is_400_invalid_request_body() {
    let app = spawn_app().await;
    let response = app
        .post("/api/v1/logs")
        .json(&json!({"entry": {}}))
        .send()
        .await
        .unwrap();
    let body = json_with_status(response, 400).await;
    assert_eq!(body["error"], "Invalid request body");
    assert!(
        body["details"]["message"].as_str().unwrap().contains("log"),
        "{body}"
    );
}

#[tokio::test]
async fn a_non_json_content_type_is_415() {
    let app = spawn_app().await;
    let response = app.post_body("/api/v1/logs", "text/plain", "hello").await;
    let body = json_with_status(response, 415).await;
    assert_eq!(body["error"], "Unsupported content type");
}

#[tokio::test]
async fn ndjson_is_refused_on_the_single_endpoint() {
    let app = spawn_app().await;
    let response = app
        .post_body(
            "/api/v1/logs",
            "application/x-ndjson",
            entry("x").to_string(),
        )
        .await;
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn a_body_over_the_cap_is_413() {
    let app = spawn_app_with(|settings| settings.max_body_bytes = 2048).await;
    let response = app.post_single(entry(&"x".repeat(4000))).await;
    let body = json_with_status(response, 413).await;
    assert_eq!(body["error"], "Payload too large");
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn a_chunked_body_over_the_cap_is_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = spawn_app_with(|settings| settings.max_body_bytes = 2048).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let chunk = "x".repeat(1000);
    let mut request = format!(
        "POST /api/v1/logs HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {API_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..4 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("Payload too large"), "{answer}");
}
