//! The live tail over Server-Sent Events against a real database: delivery of new
//! matching entries, resumption after a reconnect, and cutting off a reader that does
//! not keep up.

use std::time::{Duration, Instant};

use log_ingestion_server::read::TailSettings;
use log_ingestion_test_support::{row, spawn_read_app, spawn_read_app_with, ReadApp, SseReader};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(10);

async fn open_tail(app: &ReadApp, query: &str) -> SseReader {
    let response = app
        .get(&format!("/api/v1/logs/tail{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut reader = SseReader::new(response);
    reader
        .next_named("ready", DEADLINE)
        .await
        .expect("the tail announces that it is following");
    reader
}

#[tokio::test]
async fn tail_delivers_new_matching_entries_and_skips_others() {
    let app = spawn_read_app().await;
    app.insert(&[row(
        "2026-01-01T10:00:00Z",
        "api",
        "INFO",
        "before the tail",
    )])
    .await;
    let mut tail = open_tail(&app, "?service=api&min_level=warn").await;
    let committed = Instant::now();
    app.insert(&[
        row("2026-01-01T10:01:00Z", "worker", "ERROR", "other service"),
        row("2026-01-01T10:01:01Z", "api", "INFO", "too quiet"),
        row("2026-01-01T10:01:02Z", "api", "ERROR", "wanted"),
    ])
    .await;
    let event = tail
        .next_named("log", DEADLINE)
        .await
        .expect("an entry arrives");
    eprintln!(
        "tail delivered an entry {:?} after its commit",
        committed.elapsed()
    );
    let entry: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(entry["message"], "wanted");
    assert_eq!(event.id, Some(entry["id"].to_string()));
    // Nothing else matches: the next log event is the next matching insert.
    app.insert(&[row("2026-01-01T10:02:00Z", "api", "WARN", "second wanted")])
        .await;
    let event = tail
        .next_named("log", DEADLINE)
        .await
        .expect("another entry");
    let entry: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(entry["message"], "second wanted");
    app.stop().await;
}

#[tokio::test]
async fn tail_delivers_an_entry_whose_transaction_commits_after_a_newer_one() {
    let app = spawn_read_app().await;
    // In TimescaleDB mode the first row of a day creates that day's chunk, and a second
    // transaction needing another new chunk waits for the first to commit: create both
    // chunks beforehand so the two inserts below only race on ids, as intended.
    for statement in [
        "INSERT INTO logs (timestamp, service, level, message) VALUES \
           (now(), 'api', 'INFO', 'warm-up'), ('2026-01-01T10:00:00Z', 'api', 'INFO', 'warm-up')",
        "DELETE FROM logs WHERE message = 'warm-up'",
    ] {
        sqlx::query(statement).execute(&app.pool).await.unwrap();
    }
    let mut tail = open_tail(&app, "").await;
    // The slow transaction takes its id first, the fast one commits first.
    let mut slow = app.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO logs (timestamp, service, level, message) VALUES (now(), 'api', 'INFO', 'late commit')")
        .execute(&mut *slow)
        .await
        .unwrap();
    app.insert(&[row("2026-01-01T10:00:00Z", "api", "INFO", "early commit")])
        .await;
    let first = tail
        .next_named("log", DEADLINE)
        .await
        .expect("the early entry");
    assert!(first.data.contains("early commit"));
    slow.commit().await.unwrap();
    let second = tail
        .next_named("log", DEADLINE)
        .await
        .expect("the late entry");
    assert!(second.data.contains("late commit"));
    app.stop().await;
}

#[tokio::test]
async fn tail_resumes_after_the_last_event_id() {
    let app = spawn_read_app().await;
    let ids = app
        .insert(&[
            row("2026-01-01T10:00:00Z", "api", "INFO", "seen"),
            row("2026-01-01T10:00:01Z", "api", "INFO", "missed while away"),
        ])
        .await;
    let response = app
        .get("/api/v1/logs/tail")
        .header("Last-Event-ID", ids[0].to_string())
        .send()
        .await
        .unwrap();
    let mut tail = SseReader::new(response);
    let event = tail
        .next_named("log", DEADLINE)
        .await
        .expect("the missed entry");
    assert!(event.data.contains("missed while away"));
    app.stop().await;
}

#[tokio::test]
async fn a_reader_that_does_not_keep_up_is_cut_off() {
    let app = spawn_read_app_with(TailSettings {
        poll_interval: Duration::from_millis(50),
        buffer: 8,
        ..TailSettings::default()
    })
    .await;
    let mut tail = open_tail(&app, "").await;
    // About 40 MB of events: more than the socket buffers hold while nobody reads.
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message) \
         SELECT now(), 'api', 'INFO', n || repeat('x', 8000) FROM generate_series(1, 5000) AS n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // Read it all now: the stream must end with a cutoff, before every entry arrived.
    let mut delivered = 0;
    let mut last = None;
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = tail.next().await {
            if event.event == "log" {
                delivered += 1;
            }
            last = Some(event.event);
        }
    })
    .await;
    assert!(finished.is_ok(), "the stream ends");
    assert_eq!(last.as_deref(), Some("cutoff"));
    assert!(delivered < 5000, "delivered {delivered}");
    app.stop().await;
}

#[tokio::test]
async fn a_tail_with_bad_filters_is_refused_before_streaming() {
    let app = spawn_read_app().await;
    let response = app
        .get("/api/v1/logs/tail?level=loud")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn closing_tails_ends_open_streams_and_refuses_new_ones() {
    let app = spawn_read_app().await;
    let mut tail = open_tail(&app, "").await;
    app.context.close_tails();
    let ended =
        tokio::time::timeout(DEADLINE, async { while tail.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the open stream ends");
    let response = app.get("/api/v1/logs/tail").send().await.unwrap();
    assert_eq!(response.status(), 503);
    app.stop().await;
}
