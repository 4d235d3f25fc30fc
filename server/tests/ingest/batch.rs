use serde_json::{json, Value};

use log_ingestion_test_support::{entry, json_with_status, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_mixed_batch_stores_the_valid_entries_and_reports_the_rest_by_index() {
    let app = spawn_app().await;
    let mut bad = entry("bad");
    bad["level"] = json!("LOUD");
    let response = app
        .post_batch(vec![
            entry("one"),
            bad,
            entry("three"),
            json!({"service": 5}),
        ])
        .await;
    let body = json_with_status(response, 200).await;
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"], 2);
    assert_eq!(body["errors"][0]["index"], 1);
    assert!(
        body["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("level"),
        "{body}"
    );
    assert_eq!(body["errors"][1]["index"], 3);
    let mut messages = app.stored_messages().await;
    messages.sort();
    assert_eq!(messages, ["one", "three"]);
}

#[tokio::test]
async fn a_batch_of_only_invalid_entries_is_answered_with_nothing_stored() {
    let app = spawn_app().await;
    let response = app
        .post_batch(vec![json!({}), json!({"message": ""})])
        .await;
    let body = json_with_status(response, 200).await;
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn an_empty_batch_is_400() {
    let app = spawn_app().await;
    let response = app.post_batch(vec![]).await;
    let body = json_with_status(response, 400).await;
    assert_eq!(body["error"], "Batch is empty");
}

#[tokio::test]
async fn a_batch_over_the_entry_cap_is_400_and_stores_nothing() {
    let app = spawn_app_with(|settings| settings.max_batch_entries = 3).await;
    let response = app
        .post_batch((0..4).map(|i| entry(&i.to_string())).collect())
        .await;
    let body = json_with_status(response, 400).await;
    assert_eq!(body["error"], "Batch too large");
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn an_ndjson_batch_is_accepted() {
    let app = spawn_app().await;
    let body = format!("{}\n{}\n\n{}\n", entry("a"), entry("b"), entry("c"));
    let response = app
        .post_body("/api/v1/logs/batch", "application/x-ndjson", body)
        .await;
    let body = json_with_status(response, 200).await;
    assert_eq!(body["accepted"], 3);
    assert_eq!(app.row_count().await, 3);
}

#[tokio::test]
async fn a_malformed_ndjson_line_is_400_naming_the_line() {
    let app = spawn_app().await;
    let body = format!("{}\n{{\"timestamp\": oops}}\n", entry("a"));
    let response = app
        .post_body("/api/v1/logs/batch", "application/x-ndjson", body)
        .await;
    let body = json_with_status(response, 400).await;
    assert_eq!(body["error"], "Malformed JSON");
    assert_eq!(body["details"]["line"], 2);
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn a_large_batch_is_stored_whole() {
    let app = spawn_app().await;
    let logs: Vec<Value> = (0..3000)
        .map(|i| entry(&format!("{i}:{}", "m".repeat(100))))
        .collect();
    let response = app.post_batch(logs).await;
    let body = json_with_status(response, 200).await;
    assert_eq!(body["accepted"], 3000);
    assert_eq!(app.row_count().await, 3000);
}

#[tokio::test]
async fn a_malformed_ndjson_line_names_its_real_line_in_the_message_too() {
    let app = spawn_app().await;
    let body = format!("{}\n{}\n\n{{oops\n", entry("a"), entry("b"));
    let response = app
        .post_body("/api/v1/logs/batch", "application/x-ndjson", body)
        .await;
    let body = json_with_status(response, 400).await;
    assert_eq!(body["details"]["line"], 4);
    let message = body["details"]["message"].as_str().unwrap();
    assert!(message.ends_with("at line 4 column 2"), "{message}");
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn errors_about_the_body_shape_never_name_internal_types() {
    let app = spawn_app().await;
    let response = app.post_batch(vec![json!("just text")]).await;
    let body = json_with_status(response, 200).await;
    assert_eq!(body["rejected"], 1);
    let text = body["errors"].to_string();
    assert!(text.contains("expected a log entry object"), "{text}");
    assert!(!text.contains("WireEntry"), "{text}");

    let response = app.post_body("/api/v1/logs", "application/json", "5").await;
    let body = json_with_status(response, 400).await;
    let text = body.to_string();
    assert!(
        text.contains(r#"expected an object {\"log\": {...}}"#),
        "{text}"
    );
    assert!(!text.contains("SingleBody"), "{text}");
}
