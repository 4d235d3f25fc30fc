//! `GET /api/v1/logs/export`: every matching row across pages, both formats, hostile
//! text in CSV, its bounds, and a client that leaves.

use std::time::Duration;

use log_ingestion_test_support::{row, spawn_read_app, wait_until, ReadApp, Row};
use serde_json::Value;

const RANGE: &str = "since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z";

/// `count` rows of service `api`, one a second from 2026-01-01T01:00:00Z, each with a
/// message of `message_bytes`, plus one `worker` row; inserted in one statement.
async fn insert_many(app: &ReadApp, count: i64, message_bytes: i32) {
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         SELECT timestamptz '2026-01-01T01:00:00Z' + make_interval(secs => n), 'api', 'INFO', \
                'entry ' || n || ' ' || repeat('x', $2), jsonb_build_object('n', n) \
         FROM generate_series(1, $1) AS n \
         UNION ALL SELECT timestamptz '2026-01-01T00:30:00Z', 'worker', 'INFO', 'other', '{}'",
    )
    .bind(count)
    .bind(message_bytes)
    .execute(&app.pool)
    .await
    .unwrap();
}

async fn export(app: &ReadApp, query: &str) -> reqwest::Response {
    app.get(&format!("/api/v1/logs/export?{RANGE}&{query}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ndjson_holds_every_matching_row_newest_first_across_pages() {
    let app = spawn_read_app().await;
    insert_many(&app, 2_500, 10).await;

    let response = export(&app, "service=api").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"logs-"));
    let text = response.text().await.unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 2_500, "every row, not one page");
    let numbers: Vec<i64> = rows
        .iter()
        .map(|row| row["metadata"]["n"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=2_500).rev().collect();
    assert_eq!(numbers, expected, "newest first, none twice, none lost");
    assert!(rows.iter().all(|row| row["service"] == "api"));

    let limited = export(&app, "service=api&limit=1500").await;
    assert_eq!(limited.headers()["x-export-row-cap"], "1500");
    assert_eq!(limited.text().await.unwrap().lines().count(), 1_500);
}

/// Fields of RFC 4180 records (quoted fields may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    records
}

#[tokio::test]
async fn csv_quotes_hostile_text_and_defuses_formulas() {
    let app = spawn_read_app().await;
    let mut hostile = row(
        "2026-01-01T10:00:00Z",
        "api",
        "ERROR",
        "=HYPERLINK(\"http://evil\",\"click\"), then \"quotes\"\nand a second line",
    );
    hostile.metadata = serde_json::json!({"user": "a,b", "note": "say \"hi\""});
    let plain: Row = row("2026-01-01T09:00:00Z", "api", "INFO", "plain");
    app.insert(&[plain, hostile]).await;

    let response = export(&app, "format=csv").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let records = parse_csv(&response.text().await.unwrap());
    assert_eq!(
        records[0],
        [
            "id",
            "timestamp",
            "received_at",
            "service",
            "level",
            "message",
            "fingerprint",
            "metadata"
        ]
    );
    assert_eq!(records.len(), 3, "{records:?}");
    let newest = &records[1];
    assert_eq!(newest[1], "2026-01-01T10:00:00.000000Z");
    assert_eq!(newest[4], "ERROR");
    assert_eq!(
        newest[5],
        "'=HYPERLINK(\"http://evil\",\"click\"), then \"quotes\"\nand a second line"
    );
    let metadata: Value = serde_json::from_str(&newest[7]).unwrap();
    assert_eq!(metadata["user"], "a,b");
    assert_eq!(metadata["note"], "say \"hi\"");
    assert_eq!(records[2][5], "plain");
}

#[tokio::test]
async fn bad_parameters_are_400_and_reading_needs_an_admin_key() {
    let app = spawn_read_app().await;
    let (status, body) = app.get_json("/api/v1/logs/export?format=xml&limit=0").await;
    assert_eq!(status, 400);
    let details = body["details"].to_string();
    assert!(details.contains("format: ndjson or csv"), "{details}");
    assert!(details.contains("limit"), "{details}");

    let anonymous = app
        .client
        .get(app.url("/api/v1/logs/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn exports_are_bounded_and_a_client_that_leaves_frees_its_slot() {
    let app = spawn_read_app().await;
    // ~20 MB of rows: more than socket buffers hold, so an export nobody reads stays open.
    insert_many(&app, 20_000, 1_000).await;

    let first = export(&app, "service=api").await;
    let second = export(&app, "service=api").await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = export(&app, "service=api").await;
    assert_eq!(third.status(), 503, "a third export at once is refused");
    assert!(third.headers().contains_key("retry-after"));

    // Both clients leave after the headers: their streams end, and their slots with them.
    drop(first);
    drop(second);
    let freed = wait_until(Duration::from_secs(10), || async {
        export(&app, "service=api&limit=1").await.status() == 200
    })
    .await;
    assert!(
        freed,
        "the slots of clients that left were never given back"
    );
}
