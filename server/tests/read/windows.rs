//! Newest-first pages are read over disjoint windows that double (1h, 2h, 4h, ... then
//! the rest of the range: `read/search.rs`). These tests page through rows placed
//! exactly on the windows' edges -- several rows sharing each whole hour, so every edge
//! of every page (the edges count back from the page's cursor, a whole hour here) has
//! ties on both sides -- with and without filters, `since` on an edge, `until` on a row,
//! and an open range, and check each page sequence against one plain `ORDER BY` over the
//! same conditions: every row once, in order. In the mode `LOG_INGESTION_TEST_STORAGE`
//! chooses.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use log_ingestion_test_support::{row, spawn_read_app, ReadApp, Row};

fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The range's end: a whole hour, which also holds rows (excluded by `until`).
fn end() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .to_utc()
}

/// Three rows at every whole hour of the last 40 (the first windows' edges, from any
/// cursor among them), two at sparse ages on and around the later edges (63h = 1+2+...+32,
/// 127h, 255h, 511h) and far beyond them; services alternate, every fourth row says
/// `needle`.
fn rows_on_edges() -> Vec<Row> {
    let mut hours: Vec<(i64, usize)> = (0..=40).map(|h| (h, 3)).collect();
    for h in [
        50, 62, 63, 64, 100, 126, 127, 128, 200, 255, 256, 400, 511, 512, 600, 700, 1_000, 2_000,
    ] {
        hours.push((h, 2));
    }
    let mut rows = Vec::new();
    for (h, copies) in hours {
        for k in 0..copies {
            let n = rows.len();
            let service = if n % 2 == 0 { "svc1" } else { "svc2" };
            let word = if n % 4 == 0 { "needle" } else { "hay" };
            let mut r = row(
                "2026-01-01T00:00:00Z",
                service,
                "INFO",
                &format!("{word} {h}h #{k}"),
            );
            r.timestamp = end() - Duration::hours(h);
            rows.push(r);
        }
    }
    rows
}

/// Every page of `query` at `limit`, followed by `next_cursor`: the ids in order.
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
        assert!(logs.len() <= limit, "{path}: {} rows", logs.len());
        ids.extend(logs.iter().map(|log| log["id"].as_i64().expect("id")));
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(logs.len(), limit, "{path}: a short page with a next cursor");
                cursor = Some(next.to_owned());
            }
            None => break,
        }
        assert!(ids.len() <= 1_000, "{query}: paging does not end");
    }
    ids
}

/// The ids `condition` selects, newest first: what paging must return.
async fn expected(app: &ReadApp, condition: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!(
        "SELECT id FROM logs WHERE {condition} ORDER BY timestamp DESC, id DESC"
    ))
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn pages_reach_every_row_once_in_order_with_ties_on_window_edges() {
    let app = spawn_read_app().await;
    let rows = rows_on_edges();
    app.insert(&rows).await;
    let until = text(end());
    let at = |hours: i64| text(end() - Duration::hours(hours));
    let bound = |hours: i64| format!("timestamp >= '{}'", at(hours));
    let before_end = format!("timestamp < '{until}'");
    let cases: Vec<(String, String)> = vec![
        (format!("until={until}"), before_end.clone()),
        (
            format!("until={until}&since={}", at(63)),
            format!("{before_end} AND {}", bound(63)),
        ),
        (
            format!("until={until}&since={}", at(40)),
            format!("{before_end} AND {}", bound(40)),
        ),
        (
            format!("until={until}&since={}&service=svc1", at(2_000)),
            format!("{before_end} AND {} AND service = 'svc1'", bound(2_000)),
        ),
        (
            format!("until={until}&q=needle"),
            format!("{before_end} AND message LIKE 'needle%'"),
        ),
        (
            format!("until={until}&q=needle&service=svc1&since={}", at(255)),
            format!(
                "{before_end} AND {} AND message LIKE 'needle%' AND service = 'svc1'",
                bound(255)
            ),
        ),
        // Open at both ends: the windows count back from now, past every row.
        ("service=svc2".to_owned(), "service = 'svc2'".to_owned()),
    ];
    for (query, condition) in &cases {
        let want = expected(&app, condition).await;
        assert!(!want.is_empty(), "{query} selects nothing");
        for limit in [1, 2, 3, 7, 100] {
            let got = page_through(&app, query, limit).await;
            assert_eq!(got, want, "{query}, limit {limit}");
        }
    }
    // The row at `until` itself is never listed; the rows at `since` are.
    let at_end = expected(&app, &format!("timestamp = '{until}'")).await;
    let listed = page_through(&app, &format!("until={until}"), 100).await;
    assert_eq!(at_end.len(), 3);
    assert!(at_end.iter().all(|id| !listed.contains(id)));
    app.stop().await;
}

/// Rare WARN rows of `svc1` (two at each of a few ages, one at 63h exactly) among INFO
/// rows of every hour: a service/level search that matches few of a wide range.
fn rare_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for h in 0..=80 {
        let mut info = row(
            "2026-01-01T00:00:00Z",
            "svc1",
            "INFO",
            &format!("info {h}h"),
        );
        info.timestamp = end() - Duration::hours(h) + Duration::minutes(7);
        rows.push(info);
    }
    for (h, minutes) in [(1, 5), (30, 0), (63, 0), (63, 0), (200, 59), (2_000, 1)] {
        let mut warn = row(
            "2026-01-01T00:00:00Z",
            "svc1",
            "WARN",
            &format!("warn {h}h"),
        );
        warn.timestamp = end() - Duration::hours(h) + Duration::minutes(minutes);
        rows.push(warn);
    }
    rows
}

#[tokio::test]
async fn a_rare_service_and_level_pages_every_match_once_in_order() {
    let app = spawn_read_app().await;
    app.insert(&rare_rows()).await;
    app.materialize_rollups().await;
    let until = text(end());
    let at = |hours: i64| text(end() - Duration::hours(hours));
    // 62.5h back: inside the hour of the 63h rows, which it excludes (the hour's count
    // includes them: the page must look below it and find the older ones).
    let inside_an_hour = text(end() - Duration::minutes(63 * 60 - 30));
    let cases: Vec<(String, String)> = vec![
        (
            format!("until={until}&service=svc1&level=warn"),
            format!("timestamp < '{until}' AND service = 'svc1' AND level = 'WARN'"),
        ),
        (
            "service=svc1&level=warn".to_owned(),
            "service = 'svc1' AND level = 'WARN'".to_owned(),
        ),
        (
            format!("since={inside_an_hour}&level=warn"),
            format!("timestamp >= '{inside_an_hour}' AND level = 'WARN'"),
        ),
        (
            format!("since={}&until={}&min_level=warn", at(250), at(20)),
            format!(
                "timestamp >= '{}' AND timestamp < '{}' AND level IN ('WARN', 'ERROR', 'FATAL')",
                at(250),
                at(20)
            ),
        ),
    ];
    for (query, condition) in &cases {
        let want = expected(&app, condition).await;
        assert!(!want.is_empty(), "{query} selects nothing");
        for limit in [1, 2, 3, 100] {
            let got = page_through(&app, query, limit).await;
            assert_eq!(got, want, "{query}, limit {limit}");
        }
    }
    // Matching nothing at all: an empty page.
    let (status, page) = app
        .get_json("/api/v1/logs?service=svc1&level=error&since=30d")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["logs"], serde_json::json!([]));
    app.stop().await;
}
