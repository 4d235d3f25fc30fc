//! Alert rules across the fleet: three instances evaluate the same rules from one
//! primary (reading through the replica), one is `kill -9`'d while they evaluate, and
//! every transition is still in the outbox exactly once.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use log_ingestion_test_support::fleet::{Fleet, ADMIN_KEY};

const KEY: &str = "fleet-alerts";
const RULES: usize = 12;

async fn transitions(primary: &sqlx::PgPool, rule: i64) -> Vec<String> {
    sqlx::query_scalar("SELECT transition FROM alert_notifications WHERE rule_id = $1 ORDER BY id")
        .bind(rule)
        .fetch_all(primary)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_transition_is_notified_once_with_an_instance_killed_mid_run() {
    let fleet = Fleet::start(
        "alerts",
        &[KEY],
        &[
            ("LOG_INGESTION_ALERT_SETTLE_DELAY", "0s"),
            ("LOG_INGESTION_ALERT_POLL_INTERVAL", "50ms"),
            // The receiver listens on this host.
            ("LOG_INGESTION_ALERT_BLOCKED_NETWORKS", "none"),
        ],
    );
    let primary = fleet.primary().await;
    sqlx::query("INSERT INTO alert_channels (name, kind, url) VALUES ('ops', 'webhook', 'http://127.0.0.1:9/')")
        .execute(&primary)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut rules = Vec::new();
    for n in 0..RULES {
        let response = http
            .post(format!("{}/api/v1/alerts/rules", fleet.url()))
            .header("X-API-Key", ADMIN_KEY)
            .json(
                &json!({"name": format!("rule {n}"), "kind": "count", "threshold": 0,
                          "window": "4s", "interval": "1s", "search": {"service": format!("s{n}")},
                          "channels": ["ops"]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        rules.push(body["id"].as_i64().unwrap());
    }
    let logs: Vec<Value> = (0..RULES)
        .map(|n| {
            json!({"timestamp": chrono::Utc::now().to_rfc3339(), "service": format!("s{n}"),
                   "level": "ERROR", "message": "failed"})
        })
        .collect();
    let response = http
        .post(format!("{}/api/v1/logs/batch", fleet.url()))
        .header("X-API-Key", KEY)
        .json(&json!({ "logs": logs }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    // Once the first rules fire, while the instances are evaluating the others.
    let deadline = Instant::now() + Duration::from_secs(30);
    while transitions(&primary, rules[0]).await.is_empty() {
        assert!(Instant::now() < deadline, "no rule fired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.kill_instance(2);
    for rule in &rules {
        let deadline = Instant::now() + Duration::from_secs(60);
        while transitions(&primary, *rule).await.len() < 2 {
            assert!(
                Instant::now() < deadline,
                "rule {rule} did not fire and resolve"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Two more evaluation rounds: nothing more is written.
    let last: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(last_eval_at) FROM alert_rules")
            .fetch_one(&primary)
            .await
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let oldest: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT min(last_eval_at) FROM alert_rules")
                .fetch_one(&primary)
                .await
                .unwrap();
        if oldest > last + chrono::Duration::seconds(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rules are no longer evaluated"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for rule in &rules {
        assert_eq!(
            transitions(&primary, *rule).await,
            ["firing", "resolved"],
            "rule {rule}"
        );
    }
}
