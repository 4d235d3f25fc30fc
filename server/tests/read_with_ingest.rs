//! The read side merged with the real ingest side: what a client ingests over HTTP is
//! what an admin reads, and each side accepts only its own keys.

mod read_support;

use std::time::Duration;

use read_support::{spawn_full_app, SseReader, ADMIN_KEY, INGEST_KEY};
use serde_json::{json, Value};

fn entry(message: &str) -> Value {
    json!({
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "service": "checkout",
        "level": "warn",
        "message": message,
        "metadata": {"order_id": "ord_1", "password": "hunter2"}
    })
}

#[tokio::test]
async fn an_entry_ingested_over_http_is_read_back_by_an_admin() {
    let app = spawn_full_app().await;
    let accepted = app
        .client
        .post(app.url("/api/v1/logs"))
        .header("X-API-Key", INGEST_KEY)
        .json(&json!({"log": entry("card declined")}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    let page: Value = app
        .client
        .get(app.url("/api/v1/logs?service=checkout&level=warn&meta.order_id=ord_1&since=5m"))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logs = page["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{page}");
    assert_eq!(logs[0]["message"], "card declined");
    assert_eq!(logs[0]["level"], "WARN");
    assert_eq!(logs[0]["metadata"]["password"], "[FILTERED]");
    app.stop().await;
}

#[tokio::test]
async fn each_side_refuses_the_other_sides_key() {
    let app = spawn_full_app().await;
    let read_with_ingest_key = app
        .client
        .get(app.url("/api/v1/logs"))
        .header("X-API-Key", INGEST_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(read_with_ingest_key.status(), 401);
    let ingest_with_admin_key = app
        .client
        .post(app.url("/api/v1/logs"))
        .header("X-API-Key", ADMIN_KEY)
        .json(&json!({"log": entry("nope")}))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest_with_admin_key.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn a_live_tail_sees_an_entry_ingested_over_http() {
    let app = spawn_full_app().await;
    let response = app
        .client
        .get(app.url("/api/v1/logs/tail?service=checkout"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let mut tail = SseReader::new(response);
    tail.next_named("ready", Duration::from_secs(10))
        .await
        .expect("the tail starts");
    let accepted = app
        .client
        .post(app.url("/api/v1/logs/batch"))
        .header("X-API-Key", INGEST_KEY)
        .json(&json!({"logs": [entry("first"), entry("second")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let mut messages = Vec::new();
    while messages.len() < 2 {
        let event = tail
            .next_named("log", Duration::from_secs(10))
            .await
            .expect("both entries arrive");
        let log: Value = serde_json::from_str(&event.data).unwrap();
        messages.push(log["message"].as_str().unwrap().to_owned());
    }
    messages.sort();
    assert_eq!(messages, ["first", "second"]);
    app.stop().await;
}
