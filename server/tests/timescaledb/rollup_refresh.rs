//! The server keeps the rollups' continuous aggregates refreshed between their
//! policies' runs (`storage/rollup_refresh.rs`): a backfill written below the
//! aggregates' watermark is counted by the service list and the histogram within
//! seconds, with the policy watcher's interval far longer than the test.

use std::time::Duration;

use log_ingestion_server::auth::ApiKey;
use log_ingestion_server::storage::{self, ConvertRows, StorageSetting};
use log_ingestion_test_support::{create_database, spawn_app_on, wait_until, TestApp, ADMIN_KEY};
use serde_json::Value;
use sqlx::PgPool;

use super::timescale_run;

/// Generous on the shared machine; the refresher checks every 5 seconds.
const WAIT: Duration = Duration::from_secs(60);

/// The minute aggregate's watermark, as a time.
async fn minute_watermark(pool: &PgPool) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar(
        "SELECT _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark( \
           mat_hypertable_id)) FROM _timescaledb_catalog.continuous_agg \
         WHERE user_view_name = 'logs_per_minute'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The service list's count of `service` (0 when it is not listed).
async fn listed(app: &TestApp, service: &str) -> i64 {
    let body: Value = app
        .admin()
        .json("/api/v1/services", &[] as &[(&str, &str)])
        .await;
    body["services"]
        .as_array()
        .and_then(|list| list.iter().find(|s| s["service"] == service))
        .and_then(|s| s["count"].as_i64())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_backfill_below_the_watermark_is_counted_within_seconds_without_a_policy_run() {
    if !timescale_run() {
        return;
    }
    let (name, url) = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    storage::migrate(&pool, StorageSetting::Timescale, ConvertRows::Refuse)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         SELECT now() - make_interval(mins => i), 'live', 'INFO', 'live', '{}' \
         FROM generate_series(1, 120) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let app = spawn_app_on(name, url, |settings| {
        // The watcher's first round would come after an hour: only the refresher runs.
        settings.policy_check_interval = Duration::from_secs(3_600);
        settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
    })
    .await;

    // A fresh aggregate's watermark lags behind now: the server materializes it.
    let materialized = wait_until(WAIT, || async {
        minute_watermark(&app.pool).await > chrono::Utc::now() - chrono::Duration::minutes(10)
    })
    .await;
    assert!(materialized, "the minute aggregate was never materialized");

    // 300 rows 3 to 5 days back: below the watermark, so not counted until a refresh.
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         SELECT now() - interval '3 days' - make_interval(mins => i * 10), 'backfill', \
                'ERROR', 'late', '{}' \
         FROM generate_series(1, 300) AS i",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let counted = wait_until(WAIT, || async { listed(&app, "backfill").await == 300 }).await;
    assert!(
        counted,
        "the backfill was not counted: {}",
        listed(&app, "backfill").await
    );
    let histogram: Value = app
        .admin()
        .json(
            "/api/v1/logs/histogram",
            &[("since", "7d"), ("service", "backfill"), ("bucket", "1d")],
        )
        .await;
    let total: i64 = histogram["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| bucket["total"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 300, "{histogram}");
    // Counted by the materialized hour aggregate itself, not only in real time.
    let materialized: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(entries), 0)::int8 FROM logs_per_hour WHERE service = 'backfill' \
         AND bucket < _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark( \
           (SELECT mat_hypertable_id FROM _timescaledb_catalog.continuous_agg \
            WHERE user_view_name = 'logs_per_hour')))",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(materialized, 300);
}

#[tokio::test]
async fn the_refresh_policies_materialize_a_day_of_minutes_per_transaction() {
    if !timescale_run() {
        return;
    }
    let (_name, url) = create_database().await;
    let pool = PgPool::connect(&url).await.unwrap();
    let batches = || async {
        let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT hypertable_name::text, (config->>'buckets_per_batch')::int8, \
                    (config->>'max_batches_per_execution')::int8 \
             FROM timescaledb_information.jobs \
             WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        rows
    };
    let wanted = vec![
        ("logs_per_hour".to_owned(), Some(720), Some(0)),
        ("logs_per_minute".to_owned(), Some(1_440), Some(0)),
    ];
    storage::migrate(&pool, StorageSetting::Timescale, ConvertRows::Refuse)
        .await
        .unwrap();
    assert_eq!(batches().await, wanted);
    // A policy whose batches were changed (or created by an older version) gets them back.
    sqlx::query(
        "SELECT alter_job(job_id, config => config - 'buckets_per_batch' \
           || '{\"max_batches_per_execution\": 1}') \
         FROM timescaledb_information.jobs \
         WHERE proc_name = 'policy_refresh_continuous_aggregate'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_ne!(batches().await, wanted);
    storage::migrate(&pool, StorageSetting::Timescale, ConvertRows::Refuse)
        .await
        .unwrap();
    assert_eq!(batches().await, wanted);
    pool.close().await;
}
