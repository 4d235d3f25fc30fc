//! Alert evaluation benchmark: one round of `BENCH_ALERT_RULES` rules (default 1,000)
//! over `BENCH_ALERT_ROWS` rows (default 10,000,000) spread over the last 24 hours, on
//! one in-process server (the real `Application`) and a fresh database. The rules mix
//! the shapes users write: service/level counts (read from the rollups), per-service
//! counts, `q` text searches and `meta.*` searches (read from the rows), ratios and
//! absences, each with a 5-minute window. Every rule is made due at once and the
//! round's duration is the time until the last one has been evaluated; the round per
//! rule is that divided by the rules (an instance evaluates two at once, each with its
//! reads and its state transaction). It never asserts speed.
//!
//! Run: `cargo bench -p log_ingestion_server --bench alert_rules`. `cargo test
//! --benches` runs it as a smoke run (2,000 rows, 20 rules) judging nothing.
//! Environment: `BENCH_ALERT_ROWS`, `BENCH_ALERT_RULES`, `DATABASE_URL` (the test cluster),
//! `LOG_INGESTION_TEST_STORAGE` (`timescaledb` for that mode).

use std::time::{Duration, Instant};

use log_ingestion_server::auth::ApiKey;
use log_ingestion_test_support::{spawn_app_with, ADMIN_KEY};
use serde_json::{json, Value};

fn env_number(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rule(n: i64) -> Value {
    let service = format!("svc-{}", n % 20);
    let (kind, search, extra) = match n % 6 {
        0 => (
            "count",
            json!({"service": service, "level": "error"}),
            json!({}),
        ),
        1 => (
            "count",
            json!({"min_level": "warn"}),
            json!({"group_by": "service"}),
        ),
        2 => (
            "count",
            json!({"service": service, "q": "timeout"}),
            json!({}),
        ),
        3 => (
            "count",
            json!({"service": service, "meta.user_id": n % 50_000}),
            json!({}),
        ),
        4 => (
            "ratio",
            json!({"service": service, "level": "error"}),
            json!({"base_search": {"service": service}, "min_base_count": 10}),
        ),
        _ => ("absence", json!({"service": service}), json!({})),
    };
    let mut body = json!({"name": format!("rule {n}"), "kind": kind, "search": search,
                          "window": "5m", "interval": "1h"});
    if kind != "absence" {
        body["threshold"] = json!(1_000_000);
    }
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

#[tokio::main]
async fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let rows = env_number(
        "BENCH_ALERT_ROWS",
        if measuring { 10_000_000 } else { 2_000 },
    );
    let rules = env_number("BENCH_ALERT_RULES", if measuring { 1_000 } else { 20 });
    let app = spawn_app_with(|settings| {
        settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
        settings.alert_rules.poll_interval = Duration::from_millis(50);
    })
    .await;
    println!(
        "storage: {:?}; rows: {rows}; rules: {rules}",
        app.storage_mode
    );
    let built = Instant::now();
    let step = 1_000_000;
    let mut done = 0;
    while done < rows {
        let count = step.min(rows - done);
        sqlx::query(
            "INSERT INTO logs (timestamp, service, level, message, metadata) \
             SELECT now() - (i * (86400000.0 / $3)) * interval '1 millisecond', 'svc-' || (i % 20), \
                    CASE WHEN i % 50 = 0 THEN 'ERROR' WHEN i % 20 = 0 THEN 'WARN' ELSE 'INFO' END, \
                    CASE WHEN i % 97 = 0 THEN 'upstream timeout after 30s' ELSE 'request ' || i || ' done' END, \
                    jsonb_build_object('user_id', i % 50000) \
             FROM generate_series($1::int8, $2::int8) AS i",
        )
        .bind(done)
        .bind(done + count - 1)
        .bind(rows as f64)
        .execute(&app.pool)
        .await
        .expect("rows generated");
        done += count;
    }
    sqlx::query("ANALYZE logs")
        .execute(&app.pool)
        .await
        .expect("analyze");
    println!(
        "built {rows} rows in {:.1} s",
        built.elapsed().as_secs_f64()
    );
    for n in 0..rules {
        let response = app
            .client
            .post(app.url("/api/v1/alerts/rules"))
            .header("X-API-Key", ADMIN_KEY)
            .json(&rule(n))
            .send()
            .await
            .expect("rule created");
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
    }
    // Wait for the first round (rules are due at creation), then time a second one.
    let deadline = Instant::now() + Duration::from_secs(3_600);
    let evaluated_since = |since: chrono::DateTime<chrono::Utc>| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM alert_rules WHERE last_eval_at >= $1",
            )
            .bind(since)
            .fetch_one(&pool)
            .await
            .expect("count")
        }
    };
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    while evaluated_since(epoch).await < rules {
        assert!(Instant::now() < deadline, "the first round did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("UPDATE alert_rules SET next_eval_at = now() RETURNING now()")
            .fetch_one(&app.pool)
            .await
            .expect("rules made due");
    let round = Instant::now();
    while evaluated_since(started_at).await < rules {
        assert!(Instant::now() < deadline, "the round did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = round.elapsed();
    let errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM alert_rules WHERE last_error IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .expect("errors");
    println!(
        "round of {rules} rules: {:.2} s ({:.2} ms of round per rule, two at once; {errors} rules failed), against an interval of 60 s",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1_000.0 / rules as f64
    );
    app.stop_and_drop_database().await;
}
