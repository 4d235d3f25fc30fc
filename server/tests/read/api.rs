//! The read API against a real database: auth, filters, cursors, histogram buckets,
//! services, surrounding entries, and the explorer's assets.

use log_ingestion_test_support::{
    messages, row, spawn_read_app, ReadApp, Row, ADMIN_KEY, INGEST_KEY,
};
use serde_json::{json, Value};

const RANGE: &str = "since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z";

/// The read app with `rows` stored and the rollups materialized after them, as their
/// refresh policies would: a policy run between two inserts (TimescaleDB mode) leaves
/// the later rows of an already materialized minute to the next refresh, so counts
/// must not depend on when one ran.
async fn app_with(rows: &[Row]) -> (ReadApp, Vec<i64>) {
    let app = spawn_read_app().await;
    let ids = app.insert(rows).await;
    app.materialize_rollups().await;
    (app, ids)
}

fn sample() -> Vec<Row> {
    vec![
        row("2026-01-01T10:00:00Z", "api", "INFO", "request started"),
        row("2026-01-01T10:01:00Z", "api", "WARN", "slow query"),
        row("2026-01-01T10:02:00Z", "worker", "ERROR", "job failed"),
        row("2026-01-01T10:03:00Z", "web", "DEBUG", "cache hit"),
        row("2026-01-01T10:04:00Z", "api", "WARNING", "retrying"),
        row("2026-01-01T10:05:00Z", "worker", "FATAL", "out of memory"),
    ]
}

#[tokio::test]
async fn reading_without_a_key_is_refused_with_the_ingest_sides_body() {
    let (app, _) = app_with(&[]).await;
    let response = app
        .client
        .get(app.url("/api/v1/logs"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "API key is required"})
    );
    app.stop().await;
}

#[tokio::test]
async fn an_ingestion_key_cannot_read() {
    let (app, _) = app_with(&[]).await;
    for path in ["/api/v1/logs", "/api/v1/services", "/api/v1/logs/histogram"] {
        let response = app
            .client
            .get(app.url(path))
            .header("X-API-Key", INGEST_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({
                "error": "This API key may only ingest",
                "details": "reading needs a key from LOG_INGESTION_ADMIN_API_KEYS"
            })
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_key_cannot_read_and_is_told_it_is_invalid() {
    let (app, _) = app_with(&[]).await;
    let response = app
        .client
        .get(app.url("/api/v1/logs"))
        .header("X-API-Key", "not-a-key-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "Invalid API key"})
    );
    app.stop().await;
}

#[tokio::test]
async fn an_admin_key_reads_as_a_bearer_token_too() {
    let (app, _) = app_with(&[]).await;
    let response = app
        .client
        .get(app.url("/api/v1/logs"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn logs_come_newest_first_with_every_column() {
    let (app, ids) =
        app_with(&[row("2026-01-01T09:00:00Z", "api", "INFO", "first")
            .with_metadata(json!({"user_id": 7}))])
        .await;
    app.insert(&[row("2026-01-01T09:30:00Z", "api", "INFO", "second")])
        .await;
    let (status, page) = app.get_json("/api/v1/logs").await;
    assert_eq!(status, 200);
    assert_eq!(messages(&page), ["second", "first"]);
    let first = &page["logs"][1];
    assert_eq!(first["id"], json!(ids[0]));
    assert_eq!(first["timestamp"], json!("2026-01-01T09:00:00Z"));
    assert_eq!(first["service"], json!("api"));
    assert_eq!(first["level"], json!("INFO"));
    assert_eq!(first["metadata"], json!({"user_id": 7}));
    assert!(first["received_at"].is_string());
    assert_eq!(page["next_cursor"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn services_are_selected_repeated_or_comma_separated() {
    let (app, _) = app_with(&sample()).await;
    let (_, one) = app.get_json("/api/v1/logs?service=worker").await;
    assert_eq!(messages(&one), ["out of memory", "job failed"]);
    let (_, repeated) = app
        .get_json("/api/v1/logs?service=worker&service=web")
        .await;
    let (_, commas) = app.get_json("/api/v1/logs?service=worker,web").await;
    assert_eq!(
        messages(&repeated),
        ["out of memory", "cache hit", "job failed"]
    );
    assert_eq!(messages(&repeated), messages(&commas));
    app.stop().await;
}

#[tokio::test]
async fn a_level_selects_all_spellings_of_its_severity() {
    let (app, _) = app_with(&sample()).await;
    let (_, page) = app.get_json("/api/v1/logs?level=warn").await;
    assert_eq!(messages(&page), ["retrying", "slow query"]);
    let (_, several) = app.get_json("/api/v1/logs?level=debug,error").await;
    assert_eq!(messages(&several), ["cache hit", "job failed"]);
    app.stop().await;
}

#[tokio::test]
async fn min_level_selects_that_severity_and_above() {
    let (app, _) = app_with(&sample()).await;
    let (_, page) = app.get_json("/api/v1/logs?min_level=error").await;
    assert_eq!(messages(&page), ["out of memory", "job failed"]);
    app.stop().await;
}

#[tokio::test]
async fn since_is_inclusive_and_until_exclusive() {
    let (app, _) = app_with(&sample()).await;
    let (_, page) = app
        .get_json("/api/v1/logs?since=2026-01-01T10:01:00Z&until=2026-01-01T10:03:00Z")
        .await;
    assert_eq!(messages(&page), ["job failed", "slow query"]);
    app.stop().await;
}

#[tokio::test]
async fn relative_times_count_back_from_now() {
    let now = chrono::Utc::now();
    let app = spawn_read_app().await;
    let recent = Row {
        timestamp: now - chrono::Duration::minutes(5),
        ..row("2026-01-01T00:00:00Z", "api", "INFO", "five minutes ago")
    };
    let older = Row {
        timestamp: now - chrono::Duration::hours(3),
        ..row("2026-01-01T00:00:00Z", "api", "INFO", "three hours ago")
    };
    app.insert(&[recent, older]).await;
    let (_, page) = app.get_json("/api/v1/logs?since=15m").await;
    assert_eq!(messages(&page), ["five minutes ago"]);
    let (_, page) = app.get_json("/api/v1/logs?since=1d&until=1h").await;
    assert_eq!(messages(&page), ["three hours ago"]);
    app.stop().await;
}

#[tokio::test]
async fn text_search_is_case_insensitive_and_wildcards_are_literal() {
    let (app, _) = app_with(&[
        row("2026-01-01T10:00:00Z", "api", "INFO", "Disk 100% full"),
        row("2026-01-01T10:01:00Z", "api", "INFO", "disk 1000 blocks"),
        row("2026-01-01T10:02:00Z", "api", "INFO", "user_name set"),
        row("2026-01-01T10:03:00Z", "api", "INFO", "username set"),
    ])
    .await;
    let (_, page) = app.get_json("/api/v1/logs?q=DISK%20100%25").await;
    assert_eq!(messages(&page), ["Disk 100% full"]);
    let (_, page) = app.get_json("/api/v1/logs?q=user_name").await;
    assert_eq!(messages(&page), ["user_name set"]);
    app.stop().await;
}

#[tokio::test]
async fn metadata_equality_matches_json_values_and_their_text() {
    let (app, _) = app_with(&[
        row("2026-01-01T10:00:00Z", "api", "INFO", "number").with_metadata(json!({"user_id": 42})),
        row("2026-01-01T10:01:00Z", "api", "INFO", "text").with_metadata(json!({"user_id": "42"})),
        row("2026-01-01T10:02:00Z", "api", "INFO", "other").with_metadata(json!({"user_id": 43})),
        row("2026-01-01T10:03:00Z", "api", "INFO", "nested")
            .with_metadata(json!({"http": {"status": 500, "path": "/a"}, "request_id": "r-1"})),
    ])
    .await;
    let (_, page) = app.get_json("/api/v1/logs?meta.user_id=42").await;
    assert_eq!(messages(&page), ["text", "number"]);
    let (_, page) = app
        .get_json("/api/v1/logs?meta.http.status=500&meta.request_id=r-1")
        .await;
    assert_eq!(messages(&page), ["nested"]);
    let (_, page) = app.get_json("/api/v1/logs?meta.request_id=r-2").await;
    assert_eq!(messages(&page), Vec::<String>::new());
    app.stop().await;
}

#[tokio::test]
async fn request_id_selects_everything_a_request_caused_across_processes() {
    let (app, _) = app_with(&[
        row("2026-01-01T10:00:00Z", "web", "INFO", "HTTP Request")
            .with_metadata(json!({"request_id": "r-1", "pid": 10})),
        row("2026-01-01T10:00:01Z", "web", "INFO", "Job enqueued")
            .with_metadata(json!({"request_id": "r-1", "parent_request_id": "r-1"})),
        row("2026-01-01T10:00:05Z", "worker", "INFO", "exporting")
            .with_metadata(json!({"job_id": "j-1", "parent_request_id": "r-1"})),
        row("2026-01-01T10:00:06Z", "web", "INFO", "another request")
            .with_metadata(json!({"request_id": "r-2"})),
        row("2026-01-01T10:00:07Z", "web", "INFO", "no request"),
    ])
    .await;
    let (status, page) = app.get_json("/api/v1/logs?request_id=r-1").await;
    assert_eq!(status, 200);
    assert_eq!(
        messages(&page),
        ["exporting", "Job enqueued", "HTTP Request"]
    );
    let (_, page) = app
        .get_json("/api/v1/logs?request_id=r-1&service=worker")
        .await;
    assert_eq!(messages(&page), ["exporting"]);
    let long = "x".repeat(256);
    let (status, body) = app
        .get_json(&format!("/api/v1/logs?request_id={long}"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["details"],
        json!(["request_id: at most 255 characters"])
    );
    app.stop().await;
}

#[tokio::test]
async fn cursors_page_through_equal_timestamps_without_gaps_or_repeats() {
    let app = spawn_read_app().await;
    let mut rows = Vec::new();
    for i in 0..23 {
        // Ten entries share one timestamp, so only the id breaks the tie.
        let time = if i < 10 {
            "2026-01-01T12:00:00Z".to_owned()
        } else {
            format!("2026-01-01T12:{:02}:00Z", i)
        };
        rows.push(row(&time, "api", "INFO", &format!("m{i}")));
    }
    let ids = app.insert(&rows).await;
    let mut seen = Vec::new();
    let mut path = "/api/v1/logs?limit=7&service=api".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = app.get_json(&path).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for log in page["logs"].as_array().unwrap() {
            seen.push(log["id"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/logs?limit=7&service=api&cursor={cursor}"),
            None => break,
        }
    }
    let mut expected: Vec<(String, i64)> = rows
        .iter()
        .zip(&ids)
        .map(|(row, id)| (row.timestamp.to_rfc3339(), *id))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, expected.iter().map(|(_, id)| *id).collect::<Vec<_>>());
    assert_eq!(pages, 4);
    app.stop().await;
}

#[tokio::test]
async fn invalid_parameters_answer_400_naming_every_problem() {
    let (app, _) = app_with(&[]).await;
    let (status, body) = app
        .get_json("/api/v1/logs?since=yesterday&level=verbose&limit=5000&cursor=abc&colour=red")
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], json!("Invalid query"));
    let details: Vec<String> = serde_json::from_value(body["details"].clone()).unwrap();
    for parameter in ["since:", "level:", "limit:", "cursor:", "colour:"] {
        assert!(
            details.iter().any(|d| d.starts_with(parameter)),
            "{parameter} missing from {details:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn limit_defaults_to_a_hundred() {
    let app = spawn_read_app().await;
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message) \
         SELECT timestamptz '2026-01-01' + n * interval '1 second', 'api', 'INFO', 'm' || n \
         FROM generate_series(1, 150) AS n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (_, page) = app.get_json("/api/v1/logs").await;
    assert_eq!(page["logs"].as_array().unwrap().len(), 100);
    assert!(page["next_cursor"].is_string());
    let (_, page) = app.get_json("/api/v1/logs?limit=1000").await;
    assert_eq!(page["logs"].as_array().unwrap().len(), 150);
    app.stop().await;
}

#[tokio::test]
async fn histogram_counts_each_level_per_bucket_and_fills_empty_buckets() {
    let (app, _) = app_with(&[
        row("2026-01-01T10:00:10Z", "api", "INFO", "a"),
        row("2026-01-01T10:00:50Z", "api", "INFO", "b"),
        row("2026-01-01T10:00:59Z", "api", "ERROR", "c"),
        row("2026-01-01T10:02:00Z", "api", "ERROR", "d"),
        row("2026-01-01T10:02:30Z", "worker", "ERROR", "e"),
        row("2026-01-01T11:00:00Z", "api", "INFO", "outside"),
    ])
    .await;
    let (status, body) = app
        .get_json("/api/v1/logs/histogram?since=2026-01-01T10:00:00Z&until=2026-01-01T11:00:00Z&service=api")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bucket"], json!("1m"));
    assert_eq!(body["bucket_seconds"], json!(60));
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 60);
    assert_eq!(buckets[0]["start"], json!("2026-01-01T10:00:00Z"));
    assert_eq!(buckets[0]["counts"], json!({"ERROR": 1, "INFO": 2}));
    assert_eq!(buckets[0]["total"], json!(3));
    assert_eq!(buckets[1]["total"], json!(0));
    assert_eq!(buckets[2]["counts"], json!({"ERROR": 1}));
    let total: i64 = buckets.iter().map(|b| b["total"].as_i64().unwrap()).sum();
    assert_eq!(total, 4);
    app.stop().await;
}

#[tokio::test]
async fn histogram_takes_an_explicit_bucket_aligned_to_the_clock() {
    let (app, _) = app_with(&sample()).await;
    let (status, body) = app
        .get_json("/api/v1/logs/histogram?since=2026-01-01T09:58:00Z&until=2026-01-01T10:10:00Z&bucket=5m")
        .await;
    assert_eq!(status, 200, "{body}");
    let starts: Vec<&str> = body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-01-01T09:55:00Z",
            "2026-01-01T10:00:00Z",
            "2026-01-01T10:05:00Z"
        ]
    );
    assert_eq!(body["buckets"][1]["total"], json!(5));
    assert_eq!(body["buckets"][2]["total"], json!(1));
    app.stop().await;
}

#[tokio::test]
async fn histogram_chooses_wider_buckets_for_wider_ranges() {
    let (app, _) = app_with(&[]).await;
    let (_, day) = app
        .get_json(&format!("/api/v1/logs/histogram?{RANGE}"))
        .await;
    assert_eq!(day["bucket"], json!("30m"));
    assert_eq!(day["buckets"].as_array().unwrap().len(), 48);
    let (_, week) = app
        .get_json("/api/v1/logs/histogram?since=2026-01-01T00:00:00Z&until=2026-01-08T00:00:00Z")
        .await;
    assert_eq!(week["bucket"], json!("3h"));
    app.stop().await;
}

#[tokio::test]
async fn histogram_refuses_a_bucket_that_needs_too_many_bars() {
    let (app, _) = app_with(&[]).await;
    let (status, body) = app
        .get_json(&format!("/api/v1/logs/histogram?{RANGE}&bucket=1s"))
        .await;
    assert_eq!(status, 400);
    assert!(body["details"][0].as_str().unwrap().starts_with("bucket:"));
    app.stop().await;
}

#[tokio::test]
async fn services_are_listed_with_counts_and_last_seen() {
    let (app, _) = app_with(&sample()).await;
    let (status, body) = app.get_json("/api/v1/services").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"services": [
            {"service": "api", "count": 3, "last_seen": "2026-01-01T10:04:00Z"},
            {"service": "web", "count": 1, "last_seen": "2026-01-01T10:03:00Z"},
            {"service": "worker", "count": 2, "last_seen": "2026-01-01T10:05:00Z"},
        ]})
    );
    app.stop().await;
}

#[tokio::test]
async fn context_returns_the_entries_around_one_entry() {
    let (app, ids) = app_with(&sample()).await;
    let (status, body) = app
        .get_json(&format!(
            "/api/v1/logs/{}/context?before=2&after=1&timestamp=2026-01-01T10:02:00Z",
            ids[2]
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entry"]["message"], json!("job failed"));
    let before: Vec<&str> = body["before"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(before, ["slow query", "request started"]);
    assert_eq!(body["after"][0]["message"], json!("cache hit"));
    assert_eq!(body["after"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn context_of_an_unknown_entry_is_404() {
    let (app, _) = app_with(&sample()).await;
    let (status, body) = app.get_json("/api/v1/logs/999999/context").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], json!("Log entry not found"));
    let (status, _) = app.get_json("/api/v1/logs/abc/context").await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn the_explorer_page_is_served_without_a_key_and_loads_nothing_from_elsewhere() {
    let (app, _) = app_with(&[]).await;
    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    let html = response.text().await.unwrap();
    assert!(html.contains("/explorer/common.js") && html.contains("/explorer/app.js"));
    assert!(!html.contains("http://") && !html.contains("https://"));
    for (path, kind) in [
        ("/explorer/common.js", "javascript"),
        ("/explorer/app.js", "javascript"),
        ("/explorer/style.css", "css"),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains(kind));
    }
    app.stop().await;
}

#[tokio::test]
async fn hostile_parameters_get_a_400_never_a_500() {
    let (app, _) = app_with(&sample()).await;
    let long_service = "s".repeat(300);
    for query in [
        "/api/v1/logs?q=a%00b",
        "/api/v1/logs?meta.k=%22%5Cu0000%22",
        "/api/v1/logs?meta..=1",
        &format!("/api/v1/logs?service={long_service}"),
        "/api/v1/logs?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
        "/api/v1/logs/histogram?bucket=0s",
        "/api/v1/logs/1/context?timestamp=yesterday",
        "/api/v1/services?level=",
    ] {
        let (status, body) = app.get_json(query).await;
        let expected = if query.ends_with("level=") { 200 } else { 400 };
        assert_eq!(status, expected, "{query}: {body}");
    }
    // A range of two thousand years is answered with a bounded number of buckets.
    let (status, body) = app
        .get_json("/api/v1/logs/histogram?since=0100-01-01T00:00:00Z&until=2100-01-01T00:00:00Z")
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["buckets"].as_array().unwrap().len() <= 61);
    assert_eq!(
        body["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["total"].as_i64().unwrap())
            .sum::<i64>(),
        6
    );
    app.stop().await;
}

/// A read that PostgreSQL aborts with `deadlock_detected` (40P01) may well succeed when
/// retried: 503 with `Retry-After`, never a 500. The deadlock is real: a session takes
/// the BRIN index exclusively (`REINDEX` in an open transaction, which leaves the table
/// readable), the read locks `logs` and, while planning, waits for that index; then the
/// session asks for `logs` exclusively, closing the cycle. The session's own
/// `deadlock_timeout` is far above the read's (1 s, the default), so the read is the one
/// PostgreSQL aborts. (40001, a replica's recovery conflict, cannot be provoked
/// reliably on one cluster: the mapping's unit test in `src/read/error.rs` covers it.)
/// Plain mode only: in TimescaleDB mode the read plans against the chunks' own indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_deadlocks_gets_503_with_retry_after() {
    let (app, _) = app_with(&sample()).await;
    if app.mode != log_ingestion_server::storage::StorageMode::Postgres {
        return;
    }
    let mut blocker = app.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL deadlock_timeout = '60s'")
        .execute(&mut *blocker)
        .await
        .unwrap();
    sqlx::query("REINDEX INDEX logs_timestamp_brin")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let read = tokio::spawn(app.get(&format!("/api/v1/logs?{RANGE}")).send());
    // The read is waiting for the index before the cycle is closed.
    let started = std::time::Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = $1 AND wait_event_type = 'Lock'",
        )
        .bind(log_ingestion_server::read::READ_APPLICATION_NAME)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the read never waited for the index"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Returns once PostgreSQL has aborted the read and released its lock on `logs`.
    sqlx::query("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    blocker.rollback().await.unwrap();
    let response = read.await.unwrap().unwrap();
    assert_eq!(response.status(), 503);
    assert!(
        response.headers().contains_key("retry-after"),
        "{:?}",
        response.headers()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "Storage unavailable", "{body}");
    app.stop().await;
}

/// PostgreSQL's earliest `timestamptz` (4714-11-24 BC), in microseconds since 1970.
const POSTGRESQL_EARLIEST_MICROS: i64 = -210_866_803_200_000_000;
/// chrono's (and so the server's) latest time, 262142-12-31T23:59:59.999999Z.
const LATEST_MICROS: i64 = 8_210_266_876_799_999_999;

/// A cursor as the server encodes one: the time in microseconds, then the id.
fn forged_cursor(micros: i64, id: i64) -> String {
    format!("{:016x}{:016x}", micros as u64, id as u64)
}

#[tokio::test]
async fn cursors_before_postgresqls_earliest_time_are_refused_with_400() {
    let (app, _) = app_with(&sample()).await;
    let day = 86_400_000_000;
    for micros in [
        POSTGRESQL_EARLIEST_MICROS - 1,
        POSTGRESQL_EARLIEST_MICROS - 21 * day,
        // 4714-01-01 BC: chrono's year check alone let this one through.
        POSTGRESQL_EARLIEST_MICROS - 327 * day,
        i64::MIN,
        LATEST_MICROS + 1,
        i64::MAX,
    ] {
        let path = format!("/api/v1/logs?cursor={}", forged_cursor(micros, 5));
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 400, "{micros}: {body}");
        assert_eq!(body["error"], json!("Invalid query"), "{micros}");
        assert!(body["details"][0].as_str().unwrap().starts_with("cursor:"));
    }
    app.stop().await;
}

#[tokio::test]
async fn cursors_at_the_edges_of_the_time_range_read_pages() {
    let (app, _) = app_with(&sample()).await;
    for micros in [
        POSTGRESQL_EARLIEST_MICROS,
        POSTGRESQL_EARLIEST_MICROS + 3_600_000_000,
        POSTGRESQL_EARLIEST_MICROS + 30 * 86_400_000_000,
    ] {
        let path = format!("/api/v1/logs?cursor={}", forged_cursor(micros, 5));
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 200, "{micros}: {body}");
        assert_eq!(body["logs"], json!([]), "nothing is older than {micros}");
    }
    // From the far end every stored entry is older.
    let path = format!("/api/v1/logs?cursor={}", forged_cursor(LATEST_MICROS, 5));
    let (status, body) = app.get_json(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["logs"].as_array().unwrap().len(), sample().len());
    app.stop().await;
}

#[tokio::test]
async fn the_widest_time_parameters_answer_without_a_server_error() {
    let (app, _) = app_with(&sample()).await;
    let widest = "since=0000-01-01T00:00:00Z&until=9999-12-31T23:59:59Z";
    let (status, body) = app.get_json(&format!("/api/v1/logs?{widest}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["logs"].as_array().unwrap().len(), sample().len());
    for path in [
        format!("/api/v1/logs/histogram?{widest}"),
        "/api/v1/logs/histogram?until=0000-01-01T00:00:01Z".to_owned(),
        format!("/api/v1/services?{widest}"),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    app.stop().await;
}
