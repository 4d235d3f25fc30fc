//! Changes through the alerts API are audited in their own transaction: each rule,
//! silence and channel change writes one `audit_log` row naming who, what and which;
//! a channel's row never holds its URL or secret; a refused change writes none.

use reqwest::Method;
use serde_json::{json, Value};

use crate::{create_rule, request, spawn_alerting_app, TestApp};

async fn audit_rows(app: &TestApp) -> Vec<(String, String, String, Value)> {
    sqlx::query_as("SELECT actor, action, target, details FROM audit_log ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_change_through_the_alerts_api_writes_one_audit_row() {
    let app = spawn_alerting_app().await;
    let (status, body) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/channels",
        Some(json!({"name": "ops", "kind": "webhook", "url": "https://hooks.example/very-secret-path",
                    "secret": "0123456789abcdef-secret"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = request(
        &app,
        Method::PATCH,
        "/api/v1/alerts/channels/ops",
        Some(json!({"url": "https://hooks.example/another-secret-path"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rule = json!({"name": "checkout errors", "kind": "count", "threshold": 10, "window": "5m",
                      "search": {"service": "checkout"}, "channels": ["ops"]});
    let id = create_rule(&app, rule.clone()).await;
    let mut changed = rule.clone();
    changed["threshold"] = json!(20);
    let (status, body) = request(
        &app,
        Method::PUT,
        &format!("/api/v1/alerts/rules/{id}"),
        Some(changed),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A refused change writes nothing.
    let (status, _) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules",
        Some(json!({"name": "checkout errors", "kind": "count", "threshold": 1, "window": "5m"})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, silence) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/silences",
        Some(json!({"rule_id": id, "until": "2h", "reason": "deploy"})),
    )
    .await;
    assert_eq!(status, 201, "{silence}");
    let silence_id = silence["id"].as_i64().unwrap();
    for path in [
        format!("/api/v1/alerts/silences/{silence_id}"),
        format!("/api/v1/alerts/rules/{id}"),
        "/api/v1/alerts/channels/ops".to_owned(),
    ] {
        let (status, body) = request(&app, Method::DELETE, &path, None).await;
        assert_eq!(status, 204, "{path}: {body}");
    }

    let rows = audit_rows(&app).await;
    let actions: Vec<(&str, &str)> = rows
        .iter()
        .map(|(_, action, target, _)| (action.as_str(), target.as_str()))
        .collect();
    let rule_target = format!("alert_rule:{id}");
    let silence_target = format!("alert_silence:{silence_id}");
    assert_eq!(
        actions,
        vec![
            ("alert_channel.create", "alert_channel:ops"),
            ("alert_channel.update", "alert_channel:ops"),
            ("alert_rule.create", rule_target.as_str()),
            ("alert_rule.update", rule_target.as_str()),
            ("alert_silence.create", silence_target.as_str()),
            ("alert_silence.delete", silence_target.as_str()),
            ("alert_rule.delete", rule_target.as_str()),
            ("alert_channel.delete", "alert_channel:ops"),
        ]
    );
    assert!(
        rows.iter().all(|(actor, ..)| actor.starts_with("key:")),
        "{rows:?}"
    );
    assert_eq!(
        rows[3].3["threshold"], 20.0,
        "the update records the new rule"
    );
    assert_eq!(rows[1].3["fields"], json!(["url"]));
    assert_eq!(
        rows[1].3["host"], "hooks.example:443",
        "where its requests now go"
    );
    let all = format!("{rows:?}");
    assert!(
        !all.contains("secret-path") && !all.contains("abcdef-secret"),
        "{all}"
    );
    app.stop_and_drop_database().await;
}
