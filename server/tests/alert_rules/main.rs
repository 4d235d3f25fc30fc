//! Alert rules end to end: the real server over real HTTP on a real PostgreSQL (one
//! fresh database per test), rules created through the API with short windows and
//! intervals and no settle delay, entries ingested over HTTP, and the outbox
//! (`alert_notifications`) read back: exactly one row per transition and channel.
//! `api` covers the rules API's validation; `evaluation` each kind's transitions;
//! `fleet` restarts and several instances on one database; `audit` the audit rows of changes.
//! Run one part with a filter: `cargo test -p log_ingestion_server --test alert_rules fleet::`.

mod api;
mod audit;
mod evaluation;
mod file;
mod fleet;

use std::future::Future;
use std::time::Duration;

use log_ingestion_server::auth::ApiKey;
use log_ingestion_server::config::Settings;
use log_ingestion_test_support::{spawn_app_with, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

/// Alert settings for tests: windows end now, due rules are looked for often.
pub fn alert_settings(settings: &mut Settings) {
    settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
    settings.alert_rules.settle_delay = Duration::ZERO;
    settings.alert_rules.poll_interval = Duration::from_millis(100);
}

pub async fn spawn_alerting_app() -> TestApp {
    spawn_app_with(alert_settings).await
}

/// Waits up to `seconds` for `condition`; panics naming `what` otherwise.
pub async fn wait_for<F, Fut>(seconds: u64, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn add_channel(app: &TestApp, name: &str) {
    sqlx::query("INSERT INTO alert_channels (name, kind, url) VALUES ($1, 'webhook', 'http://127.0.0.1:9/')")
        .bind(name)
        .execute(&app.pool)
        .await
        .unwrap();
}

pub async fn request(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    app.admin().send(method, path, body).await
}

/// Creates `rule`, answering its id.
pub async fn create_rule(app: &TestApp, rule: Value) -> i64 {
    let (status, body) = request(
        app,
        reqwest::Method::POST,
        "/api/v1/alerts/rules",
        Some(rule),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

/// `count` ERROR entries of `service`, timestamped now.
pub async fn send_errors(app: &TestApp, service: &str, count: usize) {
    let logs: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "timestamp": chrono::Utc::now().to_rfc3339(),
                "service": service,
                "level": "ERROR",
                "message": format!("payment failed {i}"),
            })
        })
        .collect();
    let response = app.post_batch(logs).await;
    assert!(response.status().is_success(), "{}", response.status());
}

/// The outbox rows of `rule_id`: (series key, transition, channel), in order.
pub async fn outbox(app: &TestApp, rule_id: i64) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT series_key, transition, channel FROM alert_notifications WHERE rule_id = $1 ORDER BY id",
    )
    .bind(rule_id)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// The transitions of `rule_id` in the outbox, for one channel.
pub async fn notified(app: &TestApp, rule_id: i64) -> Vec<String> {
    outbox(app, rule_id)
        .await
        .into_iter()
        .map(|(_, transition, _)| transition)
        .collect()
}

/// How many times `rule_id` has been evaluated since now (the rule's last_eval_at moves).
pub async fn evaluations_pass(app: &TestApp, rule_id: i64, count: usize) {
    for _ in 0..count {
        let before: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT last_eval_at FROM alert_rules WHERE id = $1")
                .bind(rule_id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        wait_for(20, "another evaluation", || async {
            let now: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("SELECT last_eval_at FROM alert_rules WHERE id = $1")
                    .bind(rule_id)
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            now > before
        })
        .await;
    }
}
