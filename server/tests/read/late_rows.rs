//! Late rows: entries written below the rollups' watermark after they were
//! materialized (TimescaleDB's continuous aggregates count them only at their next
//! refresh) are still found by a service/level search, which the hour rollup guides
//! (`read/sparse.rs`): every page sequence equals one plain `ORDER BY` over the same
//! conditions, before the refresh and after it. In the mode `LOG_INGESTION_TEST_STORAGE`
//! chooses (in plain mode the trigger-kept counts include them at once).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use log_ingestion_test_support::{row, spawn_read_app, ReadApp, Row};

fn end() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .to_utc()
}

fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `service`/`level` rows at each of `hours` back from the end (plus `minutes`).
fn rows_at(service: &'static str, level: &'static str, hours: &[(i64, i64)]) -> Vec<Row> {
    hours
        .iter()
        .map(|&(h, minutes)| {
            let mut r = row(
                "2026-01-01T00:00:00Z",
                service,
                level,
                &format!("{level} {h}h{minutes}m"),
            );
            r.timestamp = end() - Duration::hours(h) + Duration::minutes(minutes);
            r
        })
        .collect()
}

async fn page_through(app: &ReadApp, query: &str, limit: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/logs?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {page}");
        let logs = page["logs"].as_array().expect("logs");
        ids.extend(logs.iter().map(|log| log["id"].as_i64().expect("id")));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(ids.len() <= 1_000, "{query}: paging does not end");
    }
    ids
}

async fn expected(app: &ReadApp, condition: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!(
        "SELECT id FROM logs WHERE {condition} ORDER BY timestamp DESC, id DESC"
    ))
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// Every case paged at several limits equals its plain `ORDER BY`.
async fn every_page_matches(app: &ReadApp, cases: &[(String, String)], when: &str) {
    for (query, condition) in cases {
        let want = expected(app, condition).await;
        assert!(!want.is_empty(), "{when}: {query} selects nothing");
        for limit in [1, 2, 3, 100] {
            let got = page_through(app, query, limit).await;
            assert_eq!(got, want, "{when}: {query}, limit {limit}");
        }
    }
}

#[tokio::test]
async fn late_rows_below_the_rollups_watermark_are_found_before_any_refresh() {
    let app = spawn_read_app().await;
    // INFO of every hour for 3 days, a few WARN: counted by the materialized rollups.
    let hourly: Vec<(i64, i64)> = (0..72).map(|h| (h, 7)).collect();
    app.insert(&rows_at("svc1", "INFO", &hourly)).await;
    app.insert(&rows_at("svc1", "WARN", &[(2, 5), (40, 0)]))
        .await;
    app.materialize_rollups().await;

    // Late rows, all older than the newest entry: WARN of svc1 in hours that held none,
    // ERROR of a service that had no entry, one of them 20 days back.
    app.insert(&rows_at(
        "svc1",
        "WARN",
        &[(1, 30), (10, 0), (10, 0), (300, 59)],
    ))
    .await;
    app.insert(&rows_at("svc9", "ERROR", &[(5, 1), (480, 0)]))
        .await;

    let until = text(end());
    let since = text(end() - Duration::days(30));
    let cases: Vec<(String, String)> = vec![
        (
            format!("since={since}&until={until}&service=svc1&level=warn"),
            format!(
                "timestamp >= '{since}' AND timestamp < '{until}' AND service = 'svc1' \
                 AND level = 'WARN'"
            ),
        ),
        (
            "service=svc9&level=error".to_owned(),
            "service = 'svc9' AND level = 'ERROR'".to_owned(),
        ),
        (
            format!("since={since}&min_level=warn&service=svc1,svc9"),
            format!(
                "timestamp >= '{since}' AND level IN ('WARN', 'ERROR', 'FATAL', 'CRITICAL') \
                 AND service IN ('svc1', 'svc9')"
            ),
        ),
    ];
    every_page_matches(&app, &cases, "before the refresh").await;
    app.materialize_rollups().await;
    every_page_matches(&app, &cases, "after the refresh").await;
    // Still nothing where nothing matches.
    let (status, page) = app
        .get_json(&format!(
            "/api/v1/logs?service=svc9&level=info&since={since}"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["logs"], serde_json::json!([]));
    app.stop().await;
}

/// `service`/`level` rows at each of `seconds` back from the end.
fn rows_at_seconds(service: &'static str, level: &'static str, seconds: &[i64]) -> Vec<Row> {
    seconds
        .iter()
        .map(|&s| {
            let mut r = row(
                "2026-01-01T00:00:00Z",
                service,
                level,
                &format!("{level} {s}s"),
            );
            r.timestamp = end() - Duration::seconds(s);
            r
        })
        .collect()
}

#[tokio::test]
async fn rare_matches_in_busy_hours_are_read_by_their_minutes_and_none_is_missed() {
    let app = spawn_read_app().await;
    // svc1 INFO every minute of 6 hours: each hour holds far more entries of the service
    // than matches, so the page reads only the minutes the minute rollup points at.
    let busy: Vec<i64> = (0..360).map(|m| m * 60 + 30).collect();
    app.insert(&rows_at_seconds("svc1", "INFO", &busy)).await;
    // A few ERRORs in several hours, on the edges of their minutes and hours.
    let hour = 3_600;
    app.insert(&rows_at_seconds(
        "svc1",
        "ERROR",
        &[61, 120, hour, hour + 59, 3 * hour + 1, 5 * hour + 3_599],
    ))
    .await;
    app.materialize_rollups().await;
    // Late ERRORs, all older than the newest entry: in a matching hour but a minute
    // that held none, in an hour that held none, and in a minute that held one.
    app.insert(&rows_at_seconds(
        "svc1",
        "ERROR",
        &[hour + 1_800, 2 * hour + 7, 120, 4 * hour + 60],
    ))
    .await;
    let since = text(end() - Duration::days(30));
    let until = text(end());
    let cases: Vec<(String, String)> = vec![
        (
            format!("since={since}&until={until}&service=svc1&level=error"),
            format!(
                "timestamp >= '{since}' AND timestamp < '{until}' AND service = 'svc1' \
                 AND level = 'ERROR'"
            ),
        ),
        (
            format!("since={since}&min_level=error&service=svc1,svc2"),
            format!(
                "timestamp >= '{since}' AND level IN ('ERROR', 'FATAL', 'CRITICAL') \
                 AND service IN ('svc1', 'svc2')"
            ),
        ),
    ];
    every_page_matches(&app, &cases, "before the refresh").await;
    app.materialize_rollups().await;
    every_page_matches(&app, &cases, "after the refresh").await;
    app.stop().await;
}
