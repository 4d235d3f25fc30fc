//! Alert delivery end to end: outbox rows inserted as evaluation writes them, the real
//! server's delivery worker, and real HTTP receivers (`RecordingReceiver`) that go down,
//! answer 500 or verify signatures. Backoff and deadlines are shortened (50 ms to
//! 200 ms backoff instead of seconds to minutes, deadlines of seconds instead of an
//! hour) so each test runs in seconds; "down for a while" is a few retries long.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use hmac::{Hmac, Mac};
use log_ingestion_server::auth::ApiKey;
use log_ingestion_server::config::Settings;
use log_ingestion_test_support::recording_receiver::{Answer, RecordingReceiver};
use log_ingestion_test_support::{spawn_app_on, spawn_app_with, wait_until, TestApp, ADMIN_KEY};
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(20);

fn fast_delivery(settings: &mut Settings) {
    settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
    let delivery = &mut settings.alert_delivery;
    delivery.poll_interval = Duration::from_millis(20);
    delivery.backoff_base = Duration::from_millis(50);
    delivery.backoff_max = Duration::from_millis(200);
    delivery.request_timeout = Duration::from_secs(2);
    delivery.deadline = Duration::from_secs(60);
}

async fn spawn(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|settings| {
        fast_delivery(settings);
        configure(settings);
    })
    .await
}

async fn add_channel(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/alerts/channels"))
        .header("X-API-Key", ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn webhook(app: &TestApp, name: &str, url: &str) {
    let response = add_channel(app, json!({"name": name, "kind": "webhook", "url": url})).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// The `alert` evaluation writes for `transition` of `series`.
fn alert(series: &str, transition: &str) -> Value {
    let resolved = transition == "resolved";
    json!({
        "status": if resolved { "resolved" } else { "firing" },
        "labels": {"alertname": "CheckoutErrors", "service": series},
        "annotations": {"summary": format!("errors in {series}")},
        "startsAt": "2026-12-07T03:00:00Z",
        "endsAt": if resolved { "2026-12-07T03:20:00Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "http://logs.example/explorer?service=checkout",
        "fingerprint": "0123456789abcdef",
        "value": 42,
        "rule": {"id": 1, "name": "CheckoutErrors", "kind": "count"},
        "reminder": transition == "reminder"
    })
}

/// Inserts one outbox row as evaluation does; its id.
async fn notify(pool: &PgPool, series: &str, transition: &str, channel: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO alert_notifications (rule_id, rule_name, series_key, transition, channel, alert) \
         VALUES (1, 'CheckoutErrors', $1, $2, $3, $4) RETURNING id",
    )
    .bind(series)
    .bind(transition)
    .bind(channel)
    .bind(alert(series, transition))
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn statuses(pool: &PgPool) -> Vec<(i64, String, i32)> {
    sqlx::query_as("SELECT id, status, attempts FROM alert_notifications ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn all_have_status(pool: &PgPool, status: &str) -> bool {
    statuses(pool).await.iter().all(|(_, s, _)| s == status)
}

/// The notification id of each request, from its idempotency key.
fn notification_ids(
    requests: &[log_ingestion_test_support::recording_receiver::Received],
) -> Vec<i64> {
    requests
        .iter()
        .map(|request| {
            request
                .header("Idempotency-Key")
                .and_then(|key| key.strip_prefix("log-ingestion-notification-"))
                .and_then(|id| id.parse().ok())
                .expect("an idempotency key with the notification id")
        })
        .collect()
}

async fn admin_get(app: &TestApp, path: &str) -> Value {
    let response = app.admin().get(path).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn notifications_wait_for_a_receiver_that_is_down_and_arrive_once_in_transition_order() {
    let app = spawn(|_| {}).await;
    let mut receiver = RecordingReceiver::start(Answer::Ok).await;
    webhook(&app, "ops", &receiver.url("/hook")).await;
    receiver.down().await;
    let mut expected: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (series, transition) in [
        ("checkout", "firing"),
        ("billing", "firing"),
        ("checkout", "resolved"),
        ("checkout", "firing"),
        ("billing", "resolved"),
    ] {
        let id = notify(&app.pool, series, transition, "ops").await;
        expected.entry(series).or_default().push(id);
    }
    // Each series' first row is retried while the receiver is down; the later ones
    // wait behind it, never attempted.
    let retried = wait_until(WAIT, || async {
        let rows = statuses(&app.pool).await;
        rows.iter()
            .filter(|(_, _, attempts)| *attempts >= 3)
            .count()
            == 2
    })
    .await;
    assert!(
        retried,
        "the heads of both series retried: {:?}",
        statuses(&app.pool).await
    );
    let waiting: Vec<i32> = statuses(&app.pool)
        .await
        .iter()
        .filter(|(id, _, _)| !expected.values().any(|ids| ids[0] == *id))
        .map(|(_, _, attempts)| *attempts)
        .collect();
    assert_eq!(
        waiting,
        [0, 0, 0],
        "later rows wait behind the pending head"
    );
    let last_error: String =
        sqlx::query_scalar("SELECT last_error FROM alert_notifications ORDER BY id LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(last_error.starts_with("cannot connect"), "{last_error}");
    assert!(
        !last_error.contains("127.0.0.1"),
        "no URL in errors: {last_error}"
    );

    receiver.up().await;
    assert!(
        wait_until(WAIT, || all_have_status(&app.pool, "delivered")).await,
        "{:?}",
        statuses(&app.pool).await
    );
    let received = receiver.received();
    let ids = notification_ids(&received);
    assert_eq!(ids.len(), 5, "each delivered once: {ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 5, "{ids:?}");
    for (series, in_order) in &expected {
        let arrived: Vec<i64> = received
            .iter()
            .zip(&ids)
            .filter(|(request, _)| request.json()["commonLabels"]["service"] == *series)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(&arrived, in_order, "{series} in transition order");
    }
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_receiver_failing_forever_is_given_up_at_the_deadline_and_reported() {
    let app = spawn(|settings| {
        settings.alert_delivery.deadline = Duration::from_secs(1);
    })
    .await;
    let receiver = RecordingReceiver::start(Answer::ServerError).await;
    webhook(&app, "broken", &receiver.url("/hook")).await;
    let (status, health) = health_of(&app).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("healthy")));
    let id = notify(&app.pool, "checkout", "firing", "broken").await;
    assert!(
        wait_until(WAIT, || all_have_status(&app.pool, "failed")).await,
        "{:?}",
        statuses(&app.pool).await
    );
    assert!(receiver.received().len() >= 2, "retried before giving up");

    let page = admin_get(&app, "/api/v1/alerts/notifications?status=failed").await;
    let row = &page["notifications"][0];
    assert_eq!(row["id"], id);
    assert_eq!(row["status"], "failed");
    assert!(row["attempts"].as_i64().unwrap() >= 2);
    assert!(
        row["last_error"].as_str().unwrap().starts_with("HTTP 500"),
        "{row}"
    );
    assert!(row["failed_at"].is_string());

    assert!(
        app.metric("log_ingestion_alert_notifications_failed_total")
            .await
            >= 1
    );
    assert!(
        app.metric("log_ingestion_alert_notification_retries_total")
            .await
            >= 1
    );
    assert!(
        wait_until(WAIT, || async {
            app.metric("log_ingestion_alert_notifications_failed_recently")
                .await
                == 1
        })
        .await
    );
    let (status, health) = health_of(&app).await;
    assert_eq!(status, 200, "degraded, still live: {health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["alert_delivery"]["failed_recently"], 1, "{health}");
    app.stop_and_drop_database().await;
}

async fn health_of(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_pending_notification_older_than_the_bound_makes_health_degraded() {
    let app = spawn(|settings| {
        settings.alert_delivery.max_pending_age = Duration::from_secs(60);
        // Still pending after two minutes: well within its deadline.
        settings.alert_delivery.deadline = Duration::from_secs(3_600);
    })
    .await;
    let receiver = RecordingReceiver::start(Answer::ServerError).await;
    webhook(&app, "slow", &receiver.url("/hook")).await;
    let id = notify(&app.pool, "checkout", "firing", "slow").await;
    sqlx::query(
        "UPDATE alert_notifications SET created_at = now() - interval '2 minutes' WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let degraded = wait_until(WAIT, || async {
        health_of(&app).await.1["status"] == "degraded"
    })
    .await;
    let (_, body) = health_of(&app).await;
    assert!(degraded, "{body}");
    assert!(
        body["alert_delivery"]["oldest_pending_seconds"]
            .as_f64()
            .unwrap()
            >= 120.0
    );
    assert!(
        app.metric("log_ingestion_alert_notifications_pending")
            .await
            >= 1
    );
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_signed_webhook_carries_an_hmac_the_receiver_verifies_and_alertmanagers_body() {
    let app = spawn(|_| {}).await;
    let receiver = RecordingReceiver::start(Answer::Ok).await;
    let secret = "a-shared-secret-of-32-characters";
    let response = add_channel(
        &app,
        json!({"name": "signed", "kind": "webhook", "url": receiver.url("/hook"), "secret": secret}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let id = notify(&app.pool, "checkout", "firing", "signed").await;
    assert!(wait_until(WAIT, || all_have_status(&app.pool, "delivered")).await);
    let request = &receiver.received()[0];
    let timestamp = request
        .header("X-Log-Ingestion-Timestamp")
        .expect("a timestamp");
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "a fresh timestamp: {age}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(
        request.header("X-Log-Ingestion-Signature"),
        Some(format!("sha256={expected}").as_str())
    );
    assert_eq!(
        request.header("Idempotency-Key"),
        Some(format!("log-ingestion-notification-{id}").as_str())
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = request.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "signed");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["service"], "checkout");
    assert_eq!(body["externalURL"], "http://logs.example");
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_slack_channel_gets_a_slack_message_and_no_signature_without_a_secret() {
    let app = spawn(|_| {}).await;
    let receiver = RecordingReceiver::start(Answer::Ok).await;
    let response = add_channel(
        &app,
        json!({"name": "team-slack", "kind": "slack", "url": receiver.url("/services/T0/B0/XYZ")}),
    )
    .await;
    assert_eq!(response.status(), 201);
    notify(&app.pool, "checkout", "firing", "team-slack").await;
    notify(&app.pool, "checkout", "resolved", "team-slack").await;
    assert!(wait_until(WAIT, || all_have_status(&app.pool, "delivered")).await);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert!(received[0].header("X-Log-Ingestion-Signature").is_none());
    let firing = received[0].json();
    let resolved = received[1].json();
    for body in [&firing, &resolved] {
        assert!(body["text"].is_string());
        let blocks = body["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        assert!(blocks.iter().all(|block| block["type"].is_string()));
        assert!(body.get("version").is_none());
    }
    assert_eq!(
        firing["blocks"][0]["text"]["text"],
        "Firing: CheckoutErrors"
    );
    assert_eq!(
        resolved["blocks"][0]["text"]["text"],
        "Resolved: CheckoutErrors"
    );
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_restart_mid_retry_loses_nothing_and_sends_nothing_delivered_again() {
    let mut app = spawn(|_| {}).await;
    let good = RecordingReceiver::start(Answer::Ok).await;
    let flaky = RecordingReceiver::start(Answer::ServerError).await;
    // Slow refusals: the restart comes while one is in flight.
    flaky.delay(Duration::from_millis(500));
    webhook(&app, "good", &good.url("/hook")).await;
    webhook(&app, "flaky", &flaky.url("/hook")).await;
    let delivered = notify(&app.pool, "checkout", "firing", "good").await;
    let retried = notify(&app.pool, "checkout", "firing", "flaky").await;
    let pool = app.pool.clone();
    let claimed = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM alert_notifications WHERE claimed_until IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert!(
        wait_until(WAIT, || async {
            let rows = statuses(&pool).await;
            rows[0].1 == "delivered" && rows[1].2 >= 2 && claimed().await == 1
        })
        .await
    );
    app.stop().await;
    assert_eq!(
        claimed().await,
        0,
        "a graceful stop finishes and records its requests"
    );
    flaky.answer(Answer::Ok);
    flaky.delay(Duration::ZERO);
    let restarted = spawn_app_on(
        app.database.clone(),
        app.database_url.clone(),
        fast_delivery,
    )
    .await;
    assert!(
        wait_until(WAIT, || all_have_status(&restarted.pool, "delivered")).await,
        "{:?}",
        statuses(&restarted.pool).await
    );
    assert_eq!(
        notification_ids(&good.received()),
        [delivered],
        "not sent again"
    );
    assert_eq!(
        notification_ids(&flaky.accepted()),
        [retried],
        "delivered once"
    );
    app.pool.close().await;
    restarted.stop_and_drop_database().await;
}

#[tokio::test]
async fn two_instances_deliver_each_notification_exactly_once() {
    let first = spawn(|_| {}).await;
    let second = spawn_app_on(
        first.database.clone(),
        first.database_url.clone(),
        fast_delivery,
    )
    .await;
    let receiver = RecordingReceiver::start(Answer::Ok).await;
    // Slow enough answers that both instances hold requests in flight at once.
    receiver.delay(Duration::from_millis(20));
    webhook(&first, "ops", &receiver.url("/hook")).await;
    let mut expected: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for round in 0..4 {
        for series in 0..10 {
            let series = format!("service-{series}");
            let transition = if round % 2 == 0 { "firing" } else { "resolved" };
            let id = notify(&first.pool, &series, transition, "ops").await;
            expected.entry(series).or_default().push(id);
        }
    }
    assert!(
        wait_until(WAIT, || all_have_status(&first.pool, "delivered")).await,
        "{:?}",
        statuses(&first.pool).await
    );
    let received = receiver.received();
    let ids = notification_ids(&received);
    assert_eq!(ids.len(), 40, "each row sent once");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 40);
    for (series, in_order) in &expected {
        let arrived: Vec<i64> = received
            .iter()
            .zip(&ids)
            .filter(|(request, _)| request.json()["commonLabels"]["service"] == series.as_str())
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(&arrived, in_order, "{series} in order");
    }
    let by_first = first
        .metric("log_ingestion_alert_notifications_delivered_total")
        .await;
    let by_second = second
        .metric("log_ingestion_alert_notifications_delivered_total")
        .await;
    assert_eq!(by_first + by_second, 40);
    println!("delivered by the first instance: {by_first}, by the second: {by_second}");
    let mut second = second;
    second.stop().await;
    second.pool.close().await;
    first.stop_and_drop_database().await;
}

#[tokio::test]
async fn the_channels_api_never_returns_the_url_or_secret_and_names_bad_fields() {
    let app = spawn(|_| {}).await;
    let receiver = RecordingReceiver::start(Answer::Ok).await;
    let url = receiver.url("/services/T000/B000/SECRETPATH");
    let secret = "top-secret-signing-key-000000";
    let response = add_channel(
        &app,
        json!({"name": "ops", "kind": "slack", "url": url, "secret": secret}),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["target"], receiver.url(""));
    assert_eq!(created["has_secret"], true);
    assert_eq!(created["read_only"], false);

    let duplicate = add_channel(&app, json!({"name": "ops", "kind": "slack", "url": url})).await;
    assert_eq!(duplicate.status(), 409);

    let bad = add_channel(
        &app,
        json!({"name": "no spaces", "kind": "pager", "url": "ftp://x/SECRETPATH", "secret": 5}),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    let details = bad["details"].to_string();
    for field in ["name:", "kind:", "url:", "secret:"] {
        assert!(details.contains(field), "{field} in {details}");
    }

    let unauthenticated = app
        .client
        .get(app.url("/api/v1/alerts/channels"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let changed = app
        .client
        .patch(app.url("/api/v1/alerts/channels/ops"))
        .header("X-API-Key", ADMIN_KEY)
        .json(&json!({"secret": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["has_secret"], false);

    let tested = app
        .client
        .post(app.url("/api/v1/alerts/channels/ops/test"))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let tested: Value = tested.json().await.unwrap();
    assert_eq!(tested["delivered"], true, "{tested}");
    assert_eq!(receiver.received().len(), 1);

    sqlx::query(
        "INSERT INTO alert_channels (name, kind, url, source) VALUES ('from-file', 'webhook', $1, 'file')",
    )
    .bind(&url)
    .execute(&app.pool)
    .await
    .unwrap();
    let listed = admin_get(&app, "/api/v1/alerts/channels").await;
    let text = listed.to_string();
    assert!(
        !text.contains("SECRETPATH") && !text.contains(secret),
        "{text}"
    );
    assert_eq!(listed["channels"].as_array().unwrap().len(), 2);
    assert_eq!(listed["channels"][0]["read_only"], true);
    let refused = app
        .client
        .delete(app.url("/api/v1/alerts/channels/from-file"))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let deleted = app
        .client
        .delete(app.url("/api/v1/alerts/channels/ops"))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = app
        .admin()
        .get("/api/v1/alerts/channels/ops")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn hostile_receivers_neither_stall_delivery_nor_redirect_it_elsewhere() {
    // Well under the slow receiver's 5 s, and long enough for the huge error's status line
    // to arrive while other tests keep the machine busy.
    let app = spawn(|settings| {
        settings.alert_delivery.request_timeout = Duration::from_secs(1);
    })
    .await;
    let good = RecordingReceiver::start(Answer::Ok).await;
    let elsewhere = RecordingReceiver::start(Answer::Ok).await;
    let huge = RecordingReceiver::start(Answer::HugeError(8 * 1024 * 1024)).await;
    let redirect = RecordingReceiver::start(Answer::RedirectTo(elsewhere.url("/stolen"))).await;
    let slow = RecordingReceiver::start(Answer::Ok).await;
    slow.delay(Duration::from_secs(5));
    for (name, receiver) in [("huge", &huge), ("redirect", &redirect), ("slow", &slow)] {
        webhook(&app, name, &receiver.url("/hook")).await;
        notify(&app.pool, "checkout", "firing", name).await;
    }
    webhook(&app, "good", &good.url("/hook")).await;
    let delivered = notify(&app.pool, "checkout", "firing", "good").await;
    let errors = || async {
        let rows: Vec<(String, String, Option<String>, i32)> = sqlx::query_as(
            "SELECT channel, status, last_error, attempts FROM alert_notifications ORDER BY id",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        rows
    };
    let settled = wait_until(WAIT, || async {
        let rows = errors().await;
        rows.iter().all(
            |(channel, status, error, attempts)| match channel.as_str() {
                "good" => status == "delivered",
                _ => error.is_some() && *attempts >= 2,
            },
        )
    })
    .await;
    let rows = errors().await;
    let shown: Vec<String> = rows
        .iter()
        .map(|row| format!("{row:?}").chars().take(300).collect())
        .collect();
    assert!(settled, "{shown:?}");
    let error_of = |name: &str| {
        rows.iter()
            .find(|(channel, ..)| channel == name)
            .and_then(|(_, _, error, _)| error.clone())
            .unwrap()
    };
    let huge_error = error_of("huge");
    // The status only: the receiver's answer is never read back to whoever added it.
    assert_eq!(huge_error, "HTTP 500 Internal Server Error");
    assert!(
        huge_error.len() < 400,
        "a bounded error: {} bytes",
        huge_error.len()
    );
    assert!(
        error_of("redirect").starts_with("HTTP 307"),
        "{}",
        error_of("redirect")
    );
    assert!(
        elsewhere.received().is_empty(),
        "a redirect is never followed"
    );
    assert!(
        error_of("slow").starts_with("timed out"),
        "{}",
        error_of("slow")
    );
    assert_eq!(notification_ids(&good.received()), [delivered]);

    let oversized = add_channel(
        &app,
        json!({"name": "big", "kind": "webhook", "url": good.url("/hook"), "x": "y".repeat(20_000)}),
    )
    .await;
    assert_eq!(oversized.status(), 413);
    let too_many = app
        .admin()
        .get("/api/v1/alerts/notifications?limit=100000&status=lost")
        .send()
        .await
        .unwrap();
    assert_eq!(too_many.status(), 400);
    let details = too_many.json::<Value>().await.unwrap()["details"].to_string();
    assert!(
        details.contains("limit:") && details.contains("status:"),
        "{details}"
    );
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_claim_left_by_a_killed_instance_is_taken_over_when_its_lease_ends() {
    let app = spawn(|_| {}).await;
    let receiver = RecordingReceiver::start(Answer::Ok).await;
    webhook(&app, "ops", &receiver.url("/hook")).await;
    // As a process killed mid-request leaves it: claimed, its lease running.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alert_notifications \
             (rule_id, rule_name, series_key, transition, channel, alert, attempts, claimed_until) \
         VALUES (1, 'CheckoutErrors', 'checkout', 'firing', 'ops', $1, 1, now() + interval '1.5 seconds') \
         RETURNING id",
    )
    .bind(alert("checkout", "firing"))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(wait_until(WAIT, || all_have_status(&app.pool, "delivered")).await);
    let waited: bool = sqlx::query_scalar(
        "SELECT delivered_at >= created_at + interval '1.5 seconds' FROM alert_notifications",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(waited, "not sent while another instance's lease ran");
    assert_eq!(notification_ids(&receiver.received()), [id]);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn an_instance_with_delivery_off_sends_nothing_and_still_reports_the_backlog() {
    let off = spawn(|settings| settings.alert_delivery.enabled = false).await;
    let receiver = RecordingReceiver::start(Answer::Ok).await;
    webhook(&off, "ops", &receiver.url("/hook")).await;
    for series in ["checkout", "billing", "search"] {
        notify(&off.pool, series, "firing", "ops").await;
    }
    assert!(
        wait_until(WAIT, || async {
            off.metric("log_ingestion_alert_notifications_pending")
                .await
                == 3
        })
        .await
    );
    // An instance that sends: it starts long after the first one would have sent them.
    let on = spawn_app_on(
        off.database.clone(),
        off.database_url.clone(),
        fast_delivery,
    )
    .await;
    assert!(wait_until(WAIT, || all_have_status(&off.pool, "delivered")).await);
    assert_eq!(
        off.metric("log_ingestion_alert_notifications_delivered_total")
            .await,
        0
    );
    assert_eq!(
        on.metric("log_ingestion_alert_notifications_delivered_total")
            .await,
        3
    );
    assert_eq!(receiver.received().len(), 3);
    let mut on = on;
    on.stop().await;
    on.pool.close().await;
    off.stop_and_drop_database().await;
}

#[tokio::test]
async fn finished_notifications_older_than_the_retention_are_pruned_and_pending_ones_kept() {
    let app = spawn(|settings| settings.alert_delivery.retention = Duration::from_secs(1)).await;
    let receiver = RecordingReceiver::start(Answer::Ok).await;
    webhook(&app, "ops", &receiver.url("/hook")).await;
    let delivered = notify(&app.pool, "checkout", "firing", "ops").await;
    // A pending row older than the retention (not due for a day) is never pruned.
    // It is written already aged and deferred, so the worker never sees it due.
    let pending: i64 = sqlx::query_scalar(
        "INSERT INTO alert_notifications \
         (rule_id, rule_name, series_key, transition, channel, alert, created_at, next_attempt_at) \
         VALUES (1, 'CheckoutErrors', 'billing', 'firing', 'ops', $1, \
         now() - interval '2 days', now() + interval '1 day') RETURNING id",
    )
    .bind(alert("billing", "firing"))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let pruned = wait_until(WAIT, || async {
        !statuses(&app.pool)
            .await
            .iter()
            .any(|(id, _, _)| *id == delivered)
    })
    .await;
    assert!(
        pruned,
        "the delivered row was not pruned: {:?}",
        statuses(&app.pool).await
    );
    assert_eq!(receiver.received().len(), 1);
    let left = statuses(&app.pool).await;
    assert_eq!(left, vec![(pending, "pending".to_owned(), 0)]);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn receivers_in_a_blocked_network_are_never_called_by_address_or_by_name() {
    let app = spawn(|settings| {
        settings.alert_delivery.blocked_networks = ["127.0.0.0/8", "::1"]
            .into_iter()
            .filter_map(log_ingestion_server::config::Cidr::parse)
            .collect();
    })
    .await;
    let receiver = RecordingReceiver::start(Answer::Ok).await;
    let by_address = receiver.url("/hook");
    let by_name = by_address.replace("127.0.0.1", "localhost");
    let by_decimal = by_address.replace("127.0.0.1", "2130706433");
    for (name, url) in [
        ("address", &by_address),
        ("name", &by_name),
        ("decimal", &by_decimal),
    ] {
        webhook(&app, name, url).await;
        let (_, answer) = app
            .admin()
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/alerts/channels/{name}/test"),
                None,
            )
            .await;
        assert_eq!(answer["delivered"], false, "{name}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("blocked network"),
            "{name}: {answer}"
        );
    }
    let tests: Vec<(String, Value)> = sqlx::query_as(
        "SELECT target, details FROM audit_log WHERE action = 'alert_channel.test' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(tests.len(), 3, "each test send is audited: {tests:?}");
    assert_eq!(tests[1].0, "alert_channel:name");
    assert!(
        tests[1].1["host"]
            .as_str()
            .unwrap()
            .starts_with("localhost:"),
        "{tests:?}"
    );
    // Through the outbox too: the notification fails, the receiver hears nothing.
    notify(&app.pool, "checkout", "firing", "name").await;
    let tried = wait_until(WAIT, || async {
        statuses(&app.pool)
            .await
            .iter()
            .all(|(_, _, attempts)| *attempts >= 1)
    })
    .await;
    assert!(tried, "{:?}", statuses(&app.pool).await);
    assert!(
        receiver.received().is_empty(),
        "a blocked receiver was called"
    );
    app.stop_and_drop_database().await;
}
