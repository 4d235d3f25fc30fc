//! Each kind's transitions through the real evaluator: exactly one outbox row per
//! transition and channel, the alert's fields, `for`, `keep_firing_for`, reminders,
//! series per service and their cap, absence, new error groups, and silences; the
//! history lists each notified transition's deliveries.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::{
    add_channel, create_rule, evaluations_pass, notified, outbox, request, send_errors,
    spawn_alerting_app, wait_for,
};

#[tokio::test]
async fn a_count_rule_writes_one_firing_row_per_channel_after_for_and_one_resolved_row() {
    let app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    add_channel(&app, "pager").await;
    let rule = create_rule(
        &app,
        json!({"name": "checkout errors", "kind": "count", "op": ">", "threshold": 2,
               "window": "6s", "for": "2s", "interval": "1s",
               "search": {"service": "checkout", "level": "error"},
               "labels": {"team": "payments"}, "annotations": {"summary": "checkout fails"},
               "channels": ["ops", "pager"]}),
    )
    .await;
    send_errors(&app, "checkout", 5).await;
    send_errors(&app, "other", 5).await;
    wait_for(20, "the firing rows", || async {
        !outbox(&app, rule).await.is_empty()
    })
    .await;
    let (pending_at, firing_at): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as(
            "SELECT min(at) FILTER (WHERE transition = 'pending'), min(at) FILTER (WHERE transition = 'firing') \
             FROM alert_transitions WHERE rule_id = $1",
        )
        .bind(rule)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        firing_at - pending_at >= chrono::Duration::seconds(2),
        "fired before `for`"
    );
    wait_for(20, "the resolved rows", || async {
        outbox(&app, rule).await.len() == 4
    })
    .await;
    evaluations_pass(&app, rule, 2).await;
    let rows = outbox(&app, rule).await;
    let expected: Vec<(String, String, String)> = [
        ("firing", "ops"),
        ("firing", "pager"),
        ("resolved", "ops"),
        ("resolved", "pager"),
    ]
    .iter()
    .map(|(t, c)| (String::new(), t.to_string(), c.to_string()))
    .collect();
    let mut sorted = rows.clone();
    sorted.sort_by(|a, b| (a.1 != "firing", &a.2).cmp(&(b.1 != "firing", &b.2)));
    assert_eq!(sorted, expected);

    // The history shows each notified transition with its deliveries (the channels'
    // receivers are unreachable: pending), never a channel's URL.
    let (status, history) = request(
        &app,
        Method::GET,
        &format!("/api/v1/alerts/history?rule_id={rule}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let notified_transitions: Vec<&Value> = history["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["notified"] == true)
        .collect();
    assert_eq!(notified_transitions.len(), 2, "{history}");
    for transition in notified_transitions {
        let channels: Vec<&str> = transition["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["channel"].as_str().unwrap())
            .collect();
        assert_eq!(channels, ["ops", "pager"], "{transition}");
        assert!(
            transition["deliveries"][0]["status"].is_string(),
            "{transition}"
        );
        assert!(
            transition["deliveries"][0]["attempts"].is_number(),
            "{transition}"
        );
    }
    assert!(!history.to_string().contains("127.0.0.1:9"), "{history}");

    let alerts: Vec<Value> = sqlx::query_scalar(
        "SELECT alert FROM alert_notifications WHERE rule_id = $1 AND channel = 'ops' ORDER BY id",
    )
    .bind(rule)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let (firing, resolved) = (&alerts[0], &alerts[1]);
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["labels"]["alertname"], "checkout errors");
    assert_eq!(firing["labels"]["team"], "payments");
    assert_eq!(firing["annotations"]["summary"], "checkout fails");
    assert_eq!(firing["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(firing["value"], 5.0);
    assert_eq!(firing["rule"]["kind"], "count");
    assert_eq!(firing["reminder"], false);
    assert!(firing["generatorURL"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/?", app.address)));
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["fingerprint"], firing["fingerprint"]);
    assert_eq!(resolved["startsAt"], firing["startsAt"]);
    assert_ne!(resolved["endsAt"], "0001-01-01T00:00:00Z");
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn keep_firing_for_rides_out_a_gap_in_the_condition() {
    let app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    let rule = create_rule(
        &app,
        json!({"name": "flappy", "kind": "count", "threshold": 0, "window": "2s",
               "keep_firing_for": "6s", "interval": "1s",
               "search": {"service": "checkout"}, "channels": ["ops"]}),
    )
    .await;
    send_errors(&app, "checkout", 1).await;
    wait_for(20, "firing", || async {
        notified(&app, rule).await == ["firing"]
    })
    .await;
    // The condition clears for at least one evaluation, then holds again.
    wait_for(
        20,
        "an evaluation where the condition does not hold",
        || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM alert_rules WHERE id = $1 AND last_eval_at > \
             (SELECT last_active_at FROM alert_series WHERE rule_id = $1)",
            )
            .bind(rule)
            .fetch_one(&app.pool)
            .await
            .unwrap()
                == 1
        },
    )
    .await;
    send_errors(&app, "checkout", 1).await;
    wait_for(30, "the resolve", || async {
        notified(&app, rule).await.len() == 2
    })
    .await;
    assert_eq!(notified(&app, rule).await, ["firing", "resolved"]);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn reminders_follow_every_repeat_interval_while_firing() {
    let app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    let rule = create_rule(
        &app,
        json!({"name": "steady", "kind": "absence", "window": "1h", "interval": "1s",
               "repeat_interval": "2s", "search": {"service": "heartbeat"}, "channels": ["ops"]}),
    )
    .await;
    wait_for(20, "two reminders", || async {
        notified(&app, rule).await == ["firing", "reminder", "reminder"]
    })
    .await;
    let times: Vec<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT at FROM alert_transitions WHERE rule_id = $1 AND notified ORDER BY id",
    )
    .bind(rule)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= chrono::Duration::seconds(2), "{times:?}");
        assert!(gap < chrono::Duration::seconds(4), "{times:?}");
    }
    let reminder: Value = sqlx::query_scalar(
        "SELECT alert FROM alert_notifications WHERE rule_id = $1 AND transition = 'reminder' LIMIT 1",
    )
    .bind(rule)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(reminder["reminder"], true);
    assert_eq!(reminder["status"], "firing");
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn series_per_service_fire_and_resolve_on_their_own_up_to_the_cap() {
    let app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    let rule = create_rule(
        &app,
        json!({"name": "per service", "kind": "count", "threshold": 0, "window": "3s",
               "interval": "1s", "group_by": "service", "max_series": 2,
               "search": {"level": "error"}, "channels": ["ops"]}),
    )
    .await;
    // One batch, so that the first evaluation sees all three.
    let batch: Vec<Value> = [("billing", 1), ("checkout", 3), ("search", 2)]
        .iter()
        .flat_map(|(service, n)| {
            (0..*n).map(move |_| {
                json!({"timestamp": chrono::Utc::now().to_rfc3339(), "service": service,
                       "level": "ERROR", "message": "failed"})
            })
        })
        .collect();
    assert!(app.post_batch(batch).await.status().is_success());
    wait_for(20, "two firing series", || async {
        outbox(&app, rule).await.len() == 2
    })
    .await;
    let warning: Option<String> =
        sqlx::query_scalar("SELECT last_warning FROM alert_rules WHERE id = $1")
            .bind(rule)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(warning.unwrap_or_default().contains("max_series"));
    // checkout keeps failing, well inside its window, until search has
    // resolved on its own; then checkout stops and resolves too.
    let search_resolved = |rows: &[(String, String, String)]| {
        rows.iter()
            .any(|(k, t, _)| k == "service=search" && t == "resolved")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !search_resolved(&outbox(&app, rule).await) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for search to resolve"
        );
        send_errors(&app, "checkout", 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        !outbox(&app, rule)
            .await
            .iter()
            .any(|(k, t, _)| k == "service=checkout" && t == "resolved"),
        "checkout resolved while it was still failing"
    );
    wait_for(30, "both resolved", || async {
        outbox(&app, rule).await.len() == 4
    })
    .await;
    let rows = outbox(&app, rule).await;
    let keys: Vec<(&str, &str)> = rows
        .iter()
        .map(|(k, t, _)| (k.as_str(), t.as_str()))
        .collect();
    // The cap keeps the two largest series: checkout (3) and search (2).
    assert_eq!(
        keys,
        [
            ("service=checkout", "firing"),
            ("service=search", "firing"),
            ("service=search", "resolved"),
            ("service=checkout", "resolved"),
        ]
    );
    let alert: Value = sqlx::query_scalar(
        "SELECT alert FROM alert_notifications WHERE rule_id = $1 AND series_key = 'service=checkout' LIMIT 1",
    )
    .bind(rule)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(alert["labels"]["service"], "checkout");
    let history: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM alert_transitions WHERE rule_id = $1 AND series_key = 'service=billing'",
    )
    .bind(rule)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(history, 0, "billing was over the cap");
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn absence_fires_when_the_heartbeat_stops_and_resolves_when_it_returns() {
    let app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    let rule = create_rule(
        &app,
        json!({"name": "nightly job", "kind": "absence", "window": "2s", "interval": "1s",
               "search": {"service": "nightly"}, "channels": ["ops"]}),
    )
    .await;
    wait_for(20, "firing", || async {
        notified(&app, rule).await == ["firing"]
    })
    .await;
    send_errors(&app, "nightly", 1).await;
    wait_for(20, "resolved", || async {
        notified(&app, rule).await == ["firing", "resolved"]
    })
    .await;
    // Silent again: it fires again once the window has passed.
    wait_for(20, "firing again once the window passed", || async {
        notified(&app, rule).await == ["firing", "resolved", "firing"]
    })
    .await;
    app.stop_and_drop_database().await;
}

fn error_entry(method: &str, object: u32) -> Value {
    json!({
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "service": "checkout",
        "level": "ERROR",
        "message": "NoMethodError",
        "metadata": {"exception": {
            "class": "NoMethodError",
            "message": format!("undefined method `name' for nil (object {object})"),
            "backtrace": [format!("app/models/user.rb:{object}:in `{method}'")],
        }},
    })
}

#[tokio::test]
async fn new_error_fires_once_per_new_group() {
    let app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    let rule = create_rule(
        &app,
        json!({"name": "new errors", "kind": "new_error", "window": "30s", "interval": "1s",
               "service": "checkout", "channels": ["ops"]}),
    )
    .await;
    let response = app
        .post_batch(vec![
            error_entry("name", 1),
            error_entry("name", 2),
            error_entry("email", 3),
        ])
        .await;
    assert!(response.status().is_success());
    wait_for(20, "two firing rows", || async {
        outbox(&app, rule).await.len() == 2
    })
    .await;
    // More of the same groups: no new notification.
    let response = app
        .post_batch(vec![error_entry("name", 4), error_entry("email", 5)])
        .await;
    assert!(response.status().is_success());
    evaluations_pass(&app, rule, 2).await;
    let rows = outbox(&app, rule).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_ne!(rows[0].0, rows[1].0);
    let alert: Value =
        sqlx::query_scalar("SELECT alert FROM alert_notifications WHERE rule_id = $1 LIMIT 1")
            .bind(rule)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(alert["labels"]["service"], "checkout");
    assert!(alert["labels"]["fingerprint"].is_string(), "{alert}");
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_silenced_rule_records_its_transitions_without_notifying() {
    let app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    let rule = create_rule(
        &app,
        json!({"name": "quiet", "kind": "absence", "window": "1h", "interval": "1s",
               "search": {"service": "heartbeat"}, "channels": ["ops"], "enabled": false}),
    )
    .await;
    let (status, silence) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/silences",
        Some(json!({"rule_id": rule, "until": "1h", "reason": "maintenance"})),
    )
    .await;
    assert_eq!(status, 201, "{silence}");
    let (status, _) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/silences",
        Some(json!({"rule_id": rule, "until": "yesterday", "reason": ""})),
    )
    .await;
    assert_eq!(status, 400);
    sqlx::query("UPDATE alert_rules SET enabled = true WHERE id = $1")
        .bind(rule)
        .execute(&app.pool)
        .await
        .unwrap();
    wait_for(20, "the silenced firing in the history", || async {
        let (_, history) = request(
            &app,
            Method::GET,
            &format!("/api/v1/alerts/history?rule_id={rule}"),
            None,
        )
        .await;
        history["transitions"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["transition"] == "firing" && t["silenced"] == true)
        })
    })
    .await;
    assert!(outbox(&app, rule).await.is_empty());
    let id = silence["id"].as_i64().unwrap();
    let (status, _) = request(
        &app,
        Method::DELETE,
        &format!("/api/v1/alerts/silences/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    wait_for(
        20,
        "the firing notification once the silence ended",
        || async { notified(&app, rule).await == ["firing"] },
    )
    .await;
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn regressed_error_fires_when_a_resolved_group_comes_back() {
    let app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    let response = app.post_batch(vec![error_entry("name", 1)]).await;
    assert!(response.status().is_success());
    let group: i64 = sqlx::query_scalar("SELECT id FROM error_groups")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let rule = create_rule(
        &app,
        json!({"name": "regressions", "kind": "regressed_error", "window": "30s",
               "interval": "1s", "channels": ["ops"]}),
    )
    .await;
    evaluations_pass(&app, rule, 2).await;
    assert!(
        outbox(&app, rule).await.is_empty(),
        "a new group is not a regression"
    );
    let (status, body) = request(
        &app,
        Method::POST,
        &format!("/api/v1/errors/{group}/status"),
        Some(json!({"status": "resolved"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let response = app.post_batch(vec![error_entry("name", 2)]).await;
    assert!(response.status().is_success());
    wait_for(20, "the regression's firing row", || async {
        notified(&app, rule).await == ["firing"]
    })
    .await;
    let alert: Value =
        sqlx::query_scalar("SELECT alert FROM alert_notifications WHERE rule_id = $1")
            .bind(rule)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(alert["labels"]["error_group"], group.to_string());
    assert!(
        alert["generatorURL"].as_str().unwrap().contains("/errors?"),
        "{alert}"
    );
    app.stop_and_drop_database().await;
}
