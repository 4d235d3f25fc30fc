//! `GET /api/v1/logs/fields`: top values of a field for a search, sampled on wide ones,
//! and ended by the read statement timeout.

use log_ingestion_test_support::{row, spawn_read_app, ReadApp};
use serde_json::{json, Value};

const RANGE: &str = "since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z";

async fn fields(app: &ReadApp, query: &str) -> (u16, Value) {
    app.get_json(&format!("/api/v1/logs/fields?{RANGE}&{query}"))
        .await
}

#[tokio::test]
async fn top_values_of_a_metadata_key_for_a_search_with_counts_and_shares() {
    let app = spawn_read_app().await;
    let mut rows = Vec::new();
    for (minute, user, level) in [
        (1, json!(7), "ERROR"),
        (2, json!(7), "ERROR"),
        (3, json!("9"), "ERROR"),
        (4, json!(null), "ERROR"),
        (5, json!(7), "INFO"),
    ] {
        let mut entry = row(
            &format!("2026-01-01T10:0{minute}:00Z"),
            "checkout",
            level,
            "payment",
        );
        entry.metadata = json!({"user": {"id": user}});
        rows.push(entry);
    }
    rows.push(row("2026-01-01T10:06:00Z", "checkout", "ERROR", "no user"));
    app.insert(&rows).await;

    let (status, body) = fields(&app, "field=meta.user.id&min_level=error").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["examined"], 5);
    assert_eq!(body["missing"], 2, "a null and an absent key");
    assert_eq!(body["distinct"], 2);
    assert_eq!(body["sampled"], false);
    assert_eq!(
        body["values"],
        json!([
            {"value": "7", "count": 2, "share": 0.4},
            {"value": "9", "count": 1, "share": 0.2},
        ])
    );

    let (_, levels) = fields(&app, "field=level&service=checkout&top=1").await;
    assert_eq!(
        levels["values"],
        json!([{"value": "ERROR", "count": 5, "share": 5.0 / 6.0}])
    );
}

#[tokio::test]
async fn a_wide_search_is_sampled_and_says_so_and_long_values_are_cut() {
    let app = spawn_read_app().await;
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         SELECT timestamptz '2026-01-01T01:00:00Z' + make_interval(secs => n), 'api', 'INFO', 'm', \
                jsonb_build_object('blob', repeat('v', 5000)) \
         FROM generate_series(1, 10050) AS n",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let (status, body) = fields(&app, "field=meta.blob").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sampled"], true);
    assert_eq!(body["examined"], 10_000);
    let value = &body["values"][0];
    assert_eq!(value["count"], 10_000);
    assert_eq!(value["truncated"], true);
    assert_eq!(value["value"].as_str().unwrap().len(), 200);
}

#[tokio::test]
async fn a_bad_field_is_named_in_a_400() {
    let app = spawn_read_app().await;
    for (query, expected) in [
        ("", "field: required"),
        ("field=message", "field: service, level or meta.KEY"),
        ("field=meta.a..b", "each key segment"),
        ("field=level&top=0", "top"),
    ] {
        let (status, body) = fields(&app, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["details"].to_string().contains(expected),
            "{query}: {body}"
        );
    }
}

#[tokio::test]
async fn a_tally_that_outlasts_the_read_statement_timeout_is_a_503_and_the_connection_recovers() {
    use log_ingestion_test_support::{spawn_app_with, ADMIN_KEY};
    use std::time::{Duration, Instant};

    let timeout = Duration::from_millis(300);
    let app = spawn_app_with(|settings| {
        settings.admin_api_keys = vec![log_ingestion_server::auth::ApiKey::new(ADMIN_KEY)];
        settings.read.statement_timeout = timeout;
    })
    .await;
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         SELECT timestamptz '2026-01-01T01:00:00Z' + make_interval(secs => n), 'api', 'INFO', 'm', \
                jsonb_build_object('user', n % 3) FROM generate_series(1, 30) AS n",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let tally = || async {
        let response = app
            .client
            .get(app.url(&format!("/api/v1/logs/fields?{RANGE}&field=meta.user")))
            .header("X-API-Key", ADMIN_KEY)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };

    // Another session holds the table: the tally's query waits until its timeout ends it.
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), tally()).await;
    let took = started.elapsed();
    holder.rollback().await.unwrap();
    let (status, body) = answer.expect("the tally waited for the lock past its statement timeout");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "Query timed out");
    assert!(
        took >= timeout,
        "answered in {took:?}, before the timeout of {timeout:?}"
    );

    let (status, body) = tally().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["examined"], 30);
    assert_eq!(
        body["values"],
        json!([
            {"value": "0", "count": 10, "share": 1.0 / 3.0},
            {"value": "1", "count": 10, "share": 1.0 / 3.0},
            {"value": "2", "count": 10, "share": 1.0 / 3.0},
        ])
    );
}
