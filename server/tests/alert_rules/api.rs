//! The rules API: a rule round-trips with its defaults; bad bodies are refused with a
//! 400 naming each bad field (unknown channels included) while good ones keep working;
//! names are unique; a rule whose evaluation fails shows why (and is counted in /metrics
//! by reason) and holds up no other.

use log_ingestion_test_support::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{add_channel, create_rule, request, send_errors, spawn_alerting_app, wait_for};

#[tokio::test]
async fn a_rule_round_trips_with_its_defaults_and_can_be_replaced_and_deleted() {
    let app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    let id = create_rule(
        &app,
        json!({"name": "checkout errors", "kind": "count", "threshold": 10, "window": "5m",
               "for": "2m", "search": {"service": "checkout", "min_level": "error"},
               "channels": ["ops"], "annotations": {"summary": "checkout fails"}}),
    )
    .await;
    let (status, rule) = request(
        &app,
        Method::GET,
        &format!("/api/v1/alerts/rules/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rule["interval"], "1m");
    assert_eq!(rule["op"], ">");
    assert_eq!(rule["repeat_interval"], "4h");
    assert_eq!(rule["source"], "api");
    assert_eq!(rule["search"]["service"], "checkout");

    let (status, body) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules",
        Some(json!({"name": "checkout errors", "kind": "absence", "window": "1h", "search": {}})),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    let (status, rule) = request(
        &app,
        Method::PUT,
        &format!("/api/v1/alerts/rules/{id}"),
        Some(
            json!({"name": "checkout errors", "kind": "count", "threshold": 20, "window": "10m",
                    "search": {"service": "checkout"}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{rule}");
    assert_eq!(rule["threshold"], 20.0);
    let (status, list) = request(&app, Method::GET, "/api/v1/alerts/rules", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["rules"].as_array().unwrap().len(), 1);
    let (status, _) = request(
        &app,
        Method::DELETE,
        &format!("/api/v1/alerts/rules/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = request(
        &app,
        Method::GET,
        &format!("/api/v1/alerts/rules/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_bad_rule_is_refused_naming_each_bad_field_and_a_good_one_still_goes_in() {
    let app = spawn_alerting_app().await;
    let (status, body) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules",
        Some(
            json!({"name": "x", "kind": "count", "threshold": "many", "window": "forever",
                    "search": {"level": "loud", "since": "1h"}, "channels": ["nowhere"],
                    "group_by": "meta.tenant", "labels": {"alertname": "y"}}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let details: Vec<String> = serde_json::from_value(body["details"].clone()).unwrap();
    for field in [
        "threshold:",
        "window:",
        "search: level:",
        "search.since:",
        "group_by:",
        "labels.alertname:",
    ] {
        assert!(
            details.iter().any(|d| d.starts_with(field)),
            "{field} in {details:?}"
        );
    }
    // Channels are checked once the rule itself is valid.
    let (status, body) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules",
        Some(
            json!({"name": "x", "kind": "count", "threshold": 1, "window": "5m",
                    "search": {}, "channels": ["nowhere"]}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["details"][0]
            .as_str()
            .unwrap()
            .contains("unknown channel \"nowhere\""),
        "{body}"
    );
    let (status, body) = request(&app, Method::POST, "/api/v1/alerts/rules", None).await;
    assert_eq!(status, 400, "{body}");
    let huge = "a".repeat(100 * 1024);
    let (status, _) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules",
        Some(
            json!({"name": "x", "kind": "count", "threshold": 1, "window": "5m",
                    "search": {}, "annotations": {"summary": huge}}),
        ),
    )
    .await;
    assert_eq!(status, 413);
    // Thousands of unknown fields: the answer names the first 20 and counts the rest.
    let mut many = serde_json::Map::new();
    for n in 0..5_000 {
        many.insert(format!("k{n}"), json!(1));
    }
    let (status, body) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules",
        Some(serde_json::Value::Object(many)),
    )
    .await;
    assert_eq!(status, 400);
    let details = body["details"].as_array().unwrap();
    assert_eq!(details.len(), 21, "{body}");
    assert!(details[20].as_str().unwrap().starts_with("and "), "{body}");
    create_rule(
        &app,
        json!({"name": "x", "kind": "count", "threshold": 1, "window": "5m", "search": {}}),
    )
    .await;
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_rule_whose_evaluation_fails_shows_why_and_the_others_are_still_evaluated() {
    let app = spawn_alerting_app().await;
    add_channel(&app, "ops").await;
    let broken = create_rule(
        &app,
        json!({"name": "broken", "kind": "absence", "window": "2s",
                                          "interval": "1s", "search": {}}),
    )
    .await;
    sqlx::query("UPDATE alert_rules SET definition = '{\"kind\": \"mystery\"}' WHERE id = $1")
        .bind(broken)
        .execute(&app.pool)
        .await
        .unwrap();
    let good = create_rule(
        &app,
        json!({"name": "good", "kind": "count", "threshold": 0, "window": "5s",
                                        "interval": "1s", "search": {"service": "checkout"},
                                        "channels": ["ops"]}),
    )
    .await;
    send_errors(&app, "checkout", 1).await;
    wait_for(20, "the good rule to fire", || async {
        crate::notified(&app, good).await == ["firing"]
    })
    .await;
    // The broken rule may have been evaluated once before its definition was broken:
    // its error shows at its next evaluation.
    let broken_rule = || async {
        request(
            &app,
            Method::GET,
            &format!("/api/v1/alerts/rules/{broken}"),
            None,
        )
        .await
        .1
    };
    wait_for(20, "the broken rule's error", || async {
        !broken_rule().await["evaluation"]["last_error"].is_null()
    })
    .await;
    let rule = broken_rule().await;
    let error = rule["evaluation"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("kind:"), "{rule}");
    let (_, alerts) = request(&app, Method::GET, "/api/v1/alerts", None).await;
    // (The broken rule keeps whatever state its evaluation before the break left.)
    let good_alert = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["rule_name"] == "good")
        .unwrap_or_else(|| panic!("{alerts}"));
    assert_eq!(good_alert["state"], "firing", "{alerts}");
    // /metrics counts the failures by a fixed reason, never by rule.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("log_ingestion_alert_evaluation_failures_total"))
        .collect();
    assert_eq!(failures.len(), 1, "{metrics}");
    assert!(
        failures[0].starts_with("log_ingestion_alert_evaluation_failures_total{reason=\"rule\"} "),
        "{metrics}"
    );
    assert!(
        metrics.contains("log_ingestion_alert_evaluations_total "),
        "{metrics}"
    );
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_preview_shows_when_a_rule_would_have_fired_from_the_rollups() {
    let app = spawn_alerting_app().await;
    let burst_at = chrono::Utc::now() - chrono::Duration::hours(3);
    let burst: Vec<serde_json::Value> = (0..12)
        .map(|_| {
            // One timestamp: the burst is in one minute.
            json!({"timestamp": burst_at.to_rfc3339(),
                   "service": "checkout", "level": "ERROR", "message": "payment failed"})
        })
        .collect();
    assert!(app.post_batch(burst).await.status().is_success());
    let rule = json!({"name": "checkout errors", "kind": "count", "threshold": 10,
                      "window": "5m", "interval": "1m", "search": {"service": "checkout", "level": "error"}});
    let (status, preview) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules/preview",
        Some(rule.clone()),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    let periods = preview["series"][0]["firing"].as_array().unwrap();
    assert_eq!(periods.len(), 1, "{preview}");
    let from: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(periods[0]["firing_from"].clone()).unwrap();
    let resolved: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(periods[0]["resolved_at"].clone()).unwrap();
    assert!(
        from > burst_at && from <= burst_at + chrono::Duration::minutes(2),
        "{preview}"
    );
    assert_eq!(resolved - from, chrono::Duration::minutes(5), "{preview}");
    // A higher threshold never fires.
    let mut quiet = rule.clone();
    quiet["threshold"] = json!(12);
    let (_, preview) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules/preview",
        Some(quiet),
    )
    .await;
    assert_eq!(preview["series"][0]["firing"], json!([]), "{preview}");
    // A text search needs the rows: refused.
    let mut text = rule;
    text["search"]["q"] = json!("payment");
    let (status, body) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules/preview",
        Some(text),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    app.stop_and_drop_database().await;
}

/// POSTs `body` to `path` and expects a 409 whose error says `why`.
async fn assert_refused_beyond_cap(app: &TestApp, path: &str, body: Value, why: &str) {
    let (status, answer) = request(app, Method::POST, path, Some(body)).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"].as_str().unwrap_or_default().contains(why),
        "{answer}"
    );
}

#[tokio::test]
async fn the_number_of_rules_is_bounded() {
    let app = spawn_alerting_app().await;
    // 9,999 stored (disabled) rules, then the 10,000th through the API, then one too many.
    sqlx::query(
        "INSERT INTO alert_rules (name, definition, enabled, interval_seconds) \
         SELECT 'stored ' || i, '{}'::jsonb, false, 60 FROM generate_series(1, 9999) AS i",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let rule = |name: &str| json!({"name": name, "kind": "count", "threshold": 1, "window": "5m", "search": {}});
    create_rule(&app, rule("the last one")).await;
    assert_refused_beyond_cap(
        &app,
        "/api/v1/alerts/rules",
        rule("one too many"),
        "at most 10000 rules",
    )
    .await;
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn the_numbers_of_channels_and_of_silences_in_force_are_bounded() {
    let app = spawn_alerting_app().await;
    sqlx::query(
        "INSERT INTO alert_channels (name, kind, url) \
         SELECT 'stored-' || i, 'webhook', 'http://192.0.2.1/' FROM generate_series(1, 999) AS i",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let channel =
        |name: &str| json!({"name": name, "kind": "webhook", "url": "http://192.0.2.1/hook"});
    let (status, body) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/channels",
        Some(channel("the-last-one")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_refused_beyond_cap(
        &app,
        "/api/v1/alerts/channels",
        channel("one-too-many"),
        "at most 1000 channels",
    )
    .await;

    let rule = create_rule(
        &app,
        json!({"name": "r", "kind": "count", "threshold": 1, "window": "5m", "search": {}}),
    )
    .await;
    // 9,999 in force and as many ended: only those in force count.
    sqlx::query(
        "INSERT INTO alert_silences (rule_id, until, reason) \
         SELECT $1, now() + CASE WHEN i % 2 = 0 THEN interval '1 day' ELSE interval '-1 day' END, \
                'stored' \
         FROM generate_series(1, 19998) AS i",
    )
    .bind(rule)
    .execute(&app.pool)
    .await
    .unwrap();
    let silence = json!({"rule_id": rule, "until": "2h", "reason": "maintenance"});
    let (status, body) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/silences",
        Some(silence.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_refused_beyond_cap(
        &app,
        "/api/v1/alerts/silences",
        silence,
        "at most 10000 silences in force",
    )
    .await;
    let (status, list) = request(&app, Method::GET, "/api/v1/alerts/silences", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["silences"].as_array().unwrap().len(), 10_000);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_rule_can_take_its_search_from_a_saved_search() {
    let app = spawn_alerting_app().await;
    let (status, saved) = request(
        &app,
        Method::POST,
        "/api/v1/saved-searches",
        Some(json!({"name": "checkout failures", "shared": true,
                    "search": "service=checkout&level=error&level=fatal&q=timeout&since=1h"})),
    )
    .await;
    assert_eq!(status, 201, "{saved}");
    let short_id = saved["short_id"].as_str().unwrap().to_owned();
    let body = json!({"name": "from a saved search", "kind": "count", "threshold": 3,
                      "window": "5m", "saved_search": short_id});
    let (status, preview) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules/preview",
        Some(body.clone()),
    )
    .await;
    // The preview reads the saved search's filters: its `q` is one the rollups cannot
    // answer, which the preview says.
    assert_eq!(status, 400, "{preview}");
    assert!(
        preview
            .to_string()
            .contains("only searches on service and level"),
        "{preview}"
    );
    let id = create_rule(&app, body).await;
    let (_, rule) = request(
        &app,
        Method::GET,
        &format!("/api/v1/alerts/rules/{id}"),
        None,
    )
    .await;
    assert_eq!(
        rule["search"],
        json!({"service": "checkout", "level": ["error", "fatal"], "q": "timeout"}),
        "the saved search's filters without its time range: {rule}"
    );
    assert_eq!(rule["annotations"]["saved_search"], json!(short_id));

    for (bad, expected) in [
        (json!("AAAAAAAAAAAAAAAAAAAAAA"), "no saved search"),
        (json!(7), "short id"),
    ] {
        let (status, body) = request(
            &app,
            Method::POST,
            "/api/v1/alerts/rules",
            Some(
                json!({"name": "bad", "kind": "count", "threshold": 1, "window": "5m",
                        "saved_search": bad}),
            ),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains(expected), "{body}");
    }
    let (status, body) = request(
        &app,
        Method::POST,
        "/api/v1/alerts/rules",
        Some(
            json!({"name": "both", "kind": "count", "threshold": 1, "window": "5m",
                    "saved_search": short_id, "search": {"service": "x"}}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("not both"), "{body}");
    app.stop_and_drop_database().await;
}
