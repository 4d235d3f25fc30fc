//! The read paths against a real database, in the mode `LOG_INGESTION_TEST_STORAGE`
//! chooses: the histogram and the service list counted from the rollups agree with the
//! rows (ranges with second-precise edges, service/level filters, deletes and truncation
//! in plain mode, materialized and not-yet-materialized parts in TimescaleDB mode), and
//! newest-first pages read over windows still page through every row in order (ties on the
//! windows' edges: `windows.rs`).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use log_ingestion_server::storage::StorageMode;
use log_ingestion_test_support::{messages, row, spawn_read_app, ReadApp, Row};
use serde_json::Value;

fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Rows every 7 minutes and 13 seconds over two days, cycling services and levels.
fn spread_rows() -> Vec<Row> {
    let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:05Z")
        .unwrap()
        .with_timezone(&Utc);
    let services = ["api", "worker", "web"];
    let levels = ["INFO", "WARN", "ERROR", "DEBUG", "WARNING"];
    (0..400)
        .map(|i: i64| {
            let at = start + Duration::seconds(i * 433);
            let mut r = row(
                &text(at),
                services[(i % 3) as usize],
                levels[(i % 5) as usize],
                &format!("entry {i}"),
            );
            r.timestamp = at;
            r
        })
        .collect()
}

/// (total, per-level counts) of a histogram answer, summed over its buckets.
fn totals(histogram: &Value) -> (i64, std::collections::BTreeMap<String, i64>) {
    let mut total = 0;
    let mut levels = std::collections::BTreeMap::new();
    for bucket in histogram["buckets"].as_array().unwrap() {
        total += bucket["total"].as_i64().unwrap();
        for (level, n) in bucket["counts"].as_object().unwrap() {
            *levels.entry(level.clone()).or_insert(0) += n.as_i64().unwrap();
        }
    }
    (total, levels)
}

async fn count_rows(app: &ReadApp, condition: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM logs WHERE {condition}"))
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn rollup_counts_agree_with_rows_over_ranges_with_second_precise_edges() {
    let app = spawn_read_app().await;
    let rows = spread_rows();
    app.insert(&rows[..250]).await;
    app.materialize_rollups().await;
    // Not yet materialized in TimescaleDB mode: real-time aggregation must count these.
    app.insert(&rows[250..]).await;

    let ranges = [
        ("2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"),
        ("2026-01-01T03:17:42Z", "2026-01-02T21:03:05Z"),
        ("2026-01-01T10:59:59Z", "2026-01-01T11:00:01Z"),
        ("2026-01-01T23:30:30Z", "2026-01-02T00:29:30Z"),
    ];
    for (since, until) in ranges {
        for (filter, condition) in [
            ("", "TRUE"),
            ("&service=api", "service = 'api'"),
            (
                "&level=warn&service=worker,web",
                "level IN ('WARN', 'WARNING') AND service IN ('worker', 'web')",
            ),
        ] {
            let range = format!("since={since}&until={until}");
            let time = format!("timestamp >= '{since}' AND timestamp < '{until}'");
            let expected = count_rows(&app, &format!("{time} AND {condition}")).await;
            let (status, histogram) = app
                .get_json(&format!("/api/v1/logs/histogram?{range}{filter}"))
                .await;
            assert_eq!(status, 200, "{histogram}");
            assert_eq!(totals(&histogram).0, expected, "histogram {range}{filter}");
            for width in ["1m", "1h", "5m"] {
                let (_, histogram) = app
                    .get_json(&format!(
                        "/api/v1/logs/histogram?{range}{filter}&bucket={width}"
                    ))
                    .await;
                assert_eq!(
                    totals(&histogram).0,
                    expected,
                    "bucket={width} {range}{filter}"
                );
            }
            let (_, services) = app
                .get_json(&format!("/api/v1/services?{range}{filter}"))
                .await;
            let listed: i64 = services["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["count"].as_i64().unwrap())
                .sum();
            assert_eq!(listed, expected, "services {range}{filter}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn histogram_buckets_from_rollups_match_buckets_counted_from_rows() {
    let app = spawn_read_app().await;
    app.insert(&spread_rows()).await;
    app.materialize_rollups().await;
    let range = "since=2026-01-01T03:17:42Z&until=2026-01-02T21:03:05Z";
    // `q=entry` matches every row but no rollup can answer it: the rows are counted.
    let (_, from_rollups) = app
        .get_json(&format!("/api/v1/logs/histogram?{range}&bucket=1h"))
        .await;
    let (_, from_rows) = app
        .get_json(&format!("/api/v1/logs/histogram?{range}&bucket=1h&q=entry"))
        .await;
    assert_eq!(from_rollups["buckets"], from_rows["buckets"]);
    assert!(totals(&from_rollups).0 > 300);
    assert_eq!(totals(&from_rollups).1, totals(&from_rows).1);
    app.stop().await;
}

#[tokio::test]
async fn services_last_seen_is_the_newest_entry_within_the_range() {
    let app = spawn_read_app().await;
    app.insert(&spread_rows()).await;
    app.materialize_rollups().await;
    let until = "2026-01-02T05:00:07Z";
    let (_, body) = app
        .get_json(&format!(
            "/api/v1/services?since=2026-01-01T00:00:00Z&until={until}"
        ))
        .await;
    for service in body["services"].as_array().unwrap() {
        let name = service["service"].as_str().unwrap();
        let newest: DateTime<Utc> = sqlx::query_scalar(
            "SELECT max(timestamp) FROM logs WHERE service = $1 AND timestamp < $2::timestamptz",
        )
        .bind(name)
        .bind(until)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let listed = DateTime::parse_from_rfc3339(service["last_seen"].as_str().unwrap()).unwrap();
        assert_eq!(listed, newest, "{name}");
    }
    // All time, no filter: from the hour rollup alone.
    let (_, body) = app.get_json("/api/v1/services").await;
    let listed: i64 = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["count"].as_i64().unwrap())
        .sum();
    assert_eq!(listed, 400);
    app.stop().await;
}

#[tokio::test]
async fn plain_rollups_follow_deletes_updates_and_truncation_in_the_same_transaction() {
    let app = spawn_read_app().await;
    if app.mode != StorageMode::Postgres {
        app.stop().await;
        return;
    }
    app.insert(&spread_rows()).await;
    let rollup_total = |table: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, Option<i64>>(&format!("SELECT sum(entries)::int8 FROM {table}"))
                .fetch_one(&pool)
                .await
                .unwrap()
                .unwrap_or(0)
        }
    };
    assert_eq!(rollup_total("logs_per_minute").await, 400);
    assert_eq!(rollup_total("logs_per_hour").await, 400);

    // A rolled-back delete leaves the counts as they were.
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query("DELETE FROM logs WHERE service = 'api'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(rollup_total("logs_per_hour").await, 400);

    sqlx::query("DELETE FROM logs WHERE timestamp < '2026-01-01T12:00:30Z'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE logs SET level = 'ERROR', service = 'moved' WHERE timestamp > '2026-01-02T12:00:00Z'")
        .execute(&app.pool)
        .await
        .unwrap();
    let rows = count_rows(&app, "TRUE").await;
    assert_eq!(rollup_total("logs_per_minute").await, rows);
    assert_eq!(rollup_total("logs_per_hour").await, rows);
    let moved = count_rows(&app, "service = 'moved' AND level = 'ERROR'").await;
    let (_, body) = app.get_json("/api/v1/services?service=moved").await;
    assert_eq!(body["services"][0]["count"].as_i64(), Some(moved));
    let leftover: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM logs_per_minute \
         GROUP BY bucket, service, level HAVING sum(entries) = 0) AS emptied",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(leftover, 0, "emptied keys are removed");

    sqlx::query("TRUNCATE logs")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(rollup_total("logs_per_minute").await, 0);
    assert_eq!(rollup_total("logs_per_hour").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn newest_first_pages_over_a_wide_range_reach_every_row_in_order() {
    let app = spawn_read_app().await;
    let now = Utc::now();
    // Ages that fall into several windows and beyond the first few.
    let ages = [
        Duration::minutes(5),
        Duration::minutes(50),
        Duration::hours(3),
        Duration::hours(20),
        Duration::days(3),
        Duration::days(12),
        Duration::days(25),
    ];
    let rows: Vec<Row> = ages
        .iter()
        .enumerate()
        .map(|(i, age)| {
            let mut r = row(&text(now), "api", "INFO", &format!("age {i}"));
            r.timestamp = now - *age;
            r
        })
        .collect();
    app.insert(&rows).await;
    let expected: Vec<String> = (0..ages.len()).map(|i| format!("age {i}")).collect();

    for limit in [1, 2, 3, 100] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/logs?since=30d&limit={limit}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = app.get_json(&path).await;
            assert_eq!(status, 200, "{page}");
            seen.extend(messages(&page));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "limit={limit}");
    }
    // A range that ends in the past: the windows count back from `until`.
    let until = text(now - Duration::days(2));
    let (_, page) = app
        .get_json(&format!("/api/v1/logs?until={until}&limit=1"))
        .await;
    assert_eq!(messages(&page), ["age 4"]);
    // A narrow range is read as is.
    let (_, page) = app.get_json("/api/v1/logs?since=2h&limit=10").await;
    assert_eq!(messages(&page), ["age 0", "age 1"]);
    app.stop().await;
}

#[tokio::test]
async fn timescaledb_rollup_refresh_policies_are_watched_like_the_other_policy_jobs() {
    let app = spawn_read_app().await;
    if app.mode != StorageMode::Timescale {
        app.stop().await;
        return;
    }
    let status = log_ingestion_server::storage::policy_jobs::PolicyJobs::default();
    let watcher = log_ingestion_server::storage::policy_jobs::spawn_watcher(
        app.pool.clone(),
        status.clone(),
        std::time::Duration::from_millis(100),
    );
    // Generous: the first check comes after one interval, on a shared 2-core machine.
    let seen = log_ingestion_test_support::wait_until(std::time::Duration::from_secs(30), || {
        let status = status.clone();
        async move {
            status
                .snapshot()
                .iter()
                .filter(|job| job.policy == "rollup_refresh")
                .count()
                == 2
        }
    })
    .await;
    watcher.abort();
    assert!(seen, "{:?}", status.snapshot());
    app.stop().await;
}
