//! `GET /api/v1/logs/export`: every matching row across pages, both formats, hostile
//! text in CSV (read back by the `csv` crate's parser), its bounds, a client that leaves
//! (its slot freed, its database query cancelled), and the server's memory flat while
//! a large export streams (the built binary as a child process).

use std::time::Duration;

use log_ingestion_test_support::{
    row, spawn_read_app, spawn_read_app_configured, wait_until, ReadApp, Row,
};
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

#[tokio::test]
async fn a_client_that_stops_reading_gives_its_slot_back_and_gets_a_truncated_transfer() {
    let stall = Duration::from_secs(1);
    let app = spawn_read_app_configured(|context| context.with_export_stall(stall)).await;
    // ~20 MB of rows: more than socket buffers hold, so an export nobody reads stalls.
    insert_many(&app, 20_000, 1_000).await;

    // Two clients take the first chunk, then stop reading without leaving.
    let mut first = export(&app, "service=api").await;
    let mut second = export(&app, "service=api").await;
    assert!(!first.chunk().await.unwrap().unwrap().is_empty());
    assert!(!second.chunk().await.unwrap().unwrap().is_empty());
    assert_eq!(
        export(&app, "service=api&limit=1").await.status(),
        503,
        "both slots are taken while the stalled exports hold them"
    );

    // Both slots come back: two exports are admitted at once again.
    let freed = wait_until(Duration::from_secs(20), || async {
        let one = export(&app, "service=api").await;
        let other = export(&app, "service=api").await;
        (one.status().as_u16(), other.status().as_u16()) == (200, 200)
    })
    .await;
    assert!(freed, "a client that stopped reading kept its slot");

    // Reading on, the stalled client gets what was under way, then a transfer cut
    // short: never a clean end that looks like the whole export.
    let mut rows = 0;
    let ended = loop {
        match first.chunk().await {
            Ok(Some(chunk)) => rows += chunk.iter().filter(|byte| **byte == b'\n').count(),
            Ok(None) => break "a clean end",
            Err(_) => break "an error",
        }
    };
    assert_eq!(ended, "an error", "after {rows} rows of 20,000");
    assert!(rows < 20_000, "{rows} rows");
    drop(second);
}

/// The backend of a read connection whose query waits for a lock, once there is one.
async fn read_query_waiting_for_a_lock(pool: &sqlx::PgPool) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1 \
           AND state = 'active' AND wait_event_type = 'Lock'",
    )
    .bind(log_ingestion_server::read::READ_APPLICATION_NAME)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_client_leaving_mid_export_stops_its_database_query_within_a_second() {
    let app = spawn_read_app().await;
    insert_many(&app, 20_000, 1_000).await;
    let mut response = export(&app, "service=api").await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty(), "rows arrive: the export is under way");

    // Another session takes the table, so the export's next page waits for it: a query
    // that, left alone, would run until the lock is released.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let client = tokio::spawn(async move { while let Ok(Some(_)) = response.chunk().await {} });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let pid = loop {
        if let Some(pid) = read_query_waiting_for_a_lock(&app.pool).await {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the export's next page never reached the database"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // The client goes away mid-export.
    client.abort();
    let _ = client.await;
    let left = std::time::Instant::now();
    let stopped = wait_until(Duration::from_secs(1), || async {
        let still: Option<bool> =
            sqlx::query_scalar("SELECT state = 'active' FROM pg_stat_activity WHERE pid = $1")
                .bind(pid)
                .fetch_optional(&app.pool)
                .await
                .unwrap();
        still != Some(true)
    })
    .await;
    let took = left.elapsed();
    holder.rollback().await.unwrap();
    assert!(
        stopped,
        "backend {pid} still ran the export's query {took:?} after its client left"
    );
}

#[tokio::test]
async fn csv_round_trips_through_a_csv_parser() {
    let app = spawn_read_app().await;
    let texts = [
        "plain",
        "a, comma",
        "\"quoted\" and \"\"doubled\"\"",
        "two\nlines, \"and\" a comma",
        "windows\r\nline end",
        "trailing quote\"",
        "",
        "ünïcödé, 日本語 \u{1F600}",
        "=SUM(A1:A2)",
    ];
    let mut rows = Vec::new();
    for (n, text) in texts.iter().enumerate() {
        let mut entry = row(
            &format!("2026-01-01T10:00:{n:02}Z"),
            "svc, \"quoted\"",
            "INFO",
            text,
        );
        entry.metadata = serde_json::json!({"n": n, "text": text, "nested": {"list": [text, ","]}});
        rows.push(entry);
    }
    app.insert(&rows).await;

    let response = export(&app, "format=csv").await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let mut reader = csv::ReaderBuilder::new().from_reader(&body[..]);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
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
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), texts.len());
    // Newest first: the last text first.
    for (record, (n, text)) in records.iter().zip(texts.iter().enumerate().rev()) {
        assert_eq!(record.len(), 8, "{record:?}");
        assert_eq!(&record[1], format!("2026-01-01T10:00:{n:02}.000000Z"));
        assert_eq!(&record[3], "svc, \"quoted\"");
        let expected = if text.starts_with('=') {
            format!("'{text}")
        } else {
            (*text).to_owned()
        };
        assert_eq!(&record[5], expected, "message {n}");
        let metadata: Value = serde_json::from_str(&record[7]).unwrap();
        assert_eq!(
            metadata,
            serde_json::json!({"n": n, "text": text, "nested": {"list": [text, ","]}})
        );
    }
}

/// Rows of the memory test, and bytes of each message: ~40 MB of NDJSON. For a figure
/// at scale, `LOG_INGESTION_TEST_EXPORT_ROWS` and `LOG_INGESTION_TEST_EXPORT_MESSAGE_BYTES`
/// change them (an export sends at most its row cap of 1,000,000).
const LARGE_ROWS: i64 = 25_000;
const LARGE_MESSAGE_BYTES: i32 = 1_600;
const EXPORT_ROW_CAP: i64 = 1_000_000;

fn from_env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
/// How much the server's resident memory may grow while it sends all of it: a few
/// pages' worth, not the export.
const MAX_EXPORT_GROWTH_KIB: u64 = 16 * 1024;

#[tokio::test]
async fn a_large_export_streams_in_flat_server_memory() {
    use log_ingestion_test_support::proc_stats::{peak_rss_kib, reset_peak_rss};
    use log_ingestion_test_support::{
        create_migrated_database, maintenance_url, test_settings, ServerProcess, ADMIN_KEY, API_KEY,
    };

    let rows: i64 = from_env("LOG_INGESTION_TEST_EXPORT_ROWS", LARGE_ROWS);
    let message_bytes: i32 = from_env(
        "LOG_INGESTION_TEST_EXPORT_MESSAGE_BYTES",
        LARGE_MESSAGE_BYTES,
    );
    let exported = rows.min(EXPORT_ROW_CAP);
    let (_database, url) =
        create_migrated_database(&test_settings(&maintenance_url()).database).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // Made inside the database by one INSERT … SELECT (no row crosses the network), so
    // loading takes seconds; the messages compress, the export does not.
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         SELECT timestamptz '2026-01-01T01:00:00Z' + make_interval(secs => n * $3), 'api', 'INFO', \
                'entry ' || n || ' ' || repeat('x', $2), jsonb_build_object('n', n) \
         FROM generate_series(1, $1) AS n",
    )
    .bind(rows)
    .bind(message_bytes)
    // Closer than a second apart when there are more rows than seconds in the range.
    .bind((80_000.0 / rows as f64).min(1.0))
    .execute(&pool)
    .await
    .unwrap();
    let server = ServerProcess::start_with(
        &url,
        API_KEY,
        &[("LOG_INGESTION_ADMIN_API_KEYS", ADMIN_KEY.to_owned())],
    );
    let http = reqwest::Client::new();
    let export = |limit: i64| {
        http.get(format!(
            "{}/api/v1/logs/export?{RANGE}&limit={limit}",
            server.address
        ))
        .header("X-API-Key", ADMIN_KEY)
        .send()
    };
    // A first, short export warms the server's pools and buffers up.
    let warm = export(2_000).await.unwrap().bytes().await.unwrap();
    assert_eq!(warm.iter().filter(|b| **b == b'\n').count(), 2_000);

    reset_peak_rss(server.pid());
    let before = peak_rss_kib(server.pid()).unwrap();
    let mut response = export(exported).await.unwrap();
    assert_eq!(response.status(), 200);
    let (mut bytes, mut lines) = (0_usize, 0_usize);
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let after = peak_rss_kib(server.pid()).unwrap();
    assert_eq!(lines as i64, exported, "every row up to the cap");
    let growth = after.saturating_sub(before);
    println!(
        "exported {} MiB in {lines} rows of {rows}; server peak RSS {before} KiB -> {after} KiB",
        bytes / (1024 * 1024)
    );
    assert!(
        bytes as u64 > 2 * MAX_EXPORT_GROWTH_KIB * 1024,
        "the export ({bytes} bytes) must dwarf the bound to prove anything"
    );
    assert!(
        growth < MAX_EXPORT_GROWTH_KIB,
        "the server grew by {growth} KiB sending a {bytes}-byte export (bound {MAX_EXPORT_GROWTH_KIB} KiB)"
    );
    drop(server);
    pool.close().await;
}
