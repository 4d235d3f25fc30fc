//! Errors as groups end to end: error entries ingested over HTTP are grouped in the
//! same commit, and the errors API lists, shows, pages, resolves, ignores and merges
//! them; hostile parameters and bodies are refused with 400s.

use log_ingestion_test_support::{json_with_status, spawn_full_app, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

fn error_entry(service: &str, method: &str, line: u32, request: &str, user: u32) -> Value {
    json!({
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "service": service,
        "level": "ERROR",
        "message": "NoMethodError",
        "metadata": {
            "request_id": request,
            "user_id": user,
            "exception": {
                "class": "NoMethodError",
                "message": format!("undefined method `name' for nil (object {line})"),
                "backtrace": [
                    "actionpack (7.1.2) lib/action_controller/metal/basic_implicit_render.rb:6:in `send_action'",
                    format!("app/models/user.rb:{line}:in `{method}'"),
                    "app/controllers/users_controller.rb:9:in `show'",
                ],
            },
        },
    })
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url(path))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(path))
        .header("X-API-Key", ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn groups(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, page) = get(app, &format!("/api/v1/errors?{query}")).await;
    assert_eq!(status, 200, "{page}");
    page["groups"].as_array().unwrap().clone()
}

async fn ingest(app: &TestApp, entries: Vec<Value>) {
    json_with_status(app.post_batch(entries).await, 200).await;
}

#[tokio::test]
async fn errors_are_grouped_at_ingest_and_shown_with_backtrace_buckets_and_occurrences() {
    let app = spawn_full_app().await;
    ingest(
        &app,
        vec![
            error_entry("web", "full_name", 42, "r1", 1),
            error_entry("web", "full_name", 47, "r2", 1),
            error_entry("web", "initials", 50, "r3", 2),
            json!({"timestamp": chrono::Utc::now().to_rfc3339(), "service": "web",
                   "level": "INFO", "message": "fine"}),
            json!({"timestamp": chrono::Utc::now().to_rfc3339(), "service": "web",
                   "level": "ERROR", "message": "Payment failed for order 923"}),
        ],
    )
    .await;
    ingest(
        &app,
        vec![
            json!({"timestamp": chrono::Utc::now().to_rfc3339(), "service": "web",
                    "level": "ERROR", "message": "Payment failed for order 17"}),
        ],
    )
    .await;

    let listed = groups(&app, "sort=count").await;
    let counts: Vec<i64> = listed
        .iter()
        .map(|g| g["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [2, 2, 1], "{listed:?}");
    let full_name = listed
        .iter()
        .find(|g| g["count"] == 2 && g["exception_class"] == "NoMethodError")
        .unwrap();
    assert_eq!(
        full_name["title"],
        "NoMethodError: undefined method `<str>' for nil (object <n>)"
    );
    assert_eq!(full_name["status"], "unresolved");
    assert_eq!(full_name["new_in_range"], true);
    assert_eq!(full_name["count_in_range"], 2);
    let trend = full_name["trend"].as_array().unwrap();
    assert_eq!(trend.len(), 24);
    assert_eq!(
        trend
            .iter()
            .map(|b| b["count"].as_i64().unwrap())
            .sum::<i64>(),
        2
    );
    let payment = listed
        .iter()
        .find(|g| g["exception_class"].is_null())
        .unwrap();
    assert_eq!(payment["title"], "Payment failed for order <n>");

    let id = full_name["id"].as_i64().unwrap();
    let (status, detail) = get(&app, &format!("/api/v1/errors/{id}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["affected"], json!({"request_ids": 2, "user_ids": 1}));
    let frames = detail["backtrace"].as_array().unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0]["in_app"], false);
    assert_eq!(frames[1]["in_app"], true);
    assert_eq!(
        detail["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_i64().unwrap())
            .sum::<i64>(),
        2
    );

    // Occurrences page like /api/v1/logs, and the fingerprint filters /api/v1/logs.
    let (status, first) = get(&app, &format!("/api/v1/errors/{id}/occurrences?limit=1")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["logs"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = get(
        &app,
        &format!("/api/v1/errors/{id}/occurrences?limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(second["logs"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_ne!(first["logs"][0]["id"], second["logs"][0]["id"]);
    let fingerprint = full_name["fingerprint"].as_str().unwrap();
    assert_eq!(first["logs"][0]["fingerprint"], fingerprint);
    let (_, logs) = get(&app, &format!("/api/v1/logs?fingerprint={fingerprint}")).await;
    assert_eq!(logs["logs"].as_array().unwrap().len(), 2);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn resolve_then_regress_ignore_without_regression_and_merge() {
    let app = spawn_full_app().await;
    ingest(&app, vec![error_entry("web", "full_name", 1, "r1", 1)]).await;
    ingest(&app, vec![error_entry("web", "initials", 1, "r2", 1)]).await;
    let listed = groups(&app, "").await;
    assert_eq!(listed.len(), 2);
    // Newest last seen first: b (initials) was ingested after a (full_name).
    let (a, b) = (
        listed[1]["id"].as_i64().unwrap(),
        listed[0]["id"].as_i64().unwrap(),
    );

    // Resolve, then a new occurrence: unresolved again, regressed.
    let (status, resolved) = post(
        &app,
        &format!("/api/v1/errors/{a}/status"),
        json!({"status": "resolved"}),
    )
    .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    assert!(resolved["resolved_at"].is_string());
    assert_eq!(resolved["regressed_at"], Value::Null);
    ingest(&app, vec![error_entry("web", "full_name", 9, "r3", 1)]).await;
    let (_, regressed) = get(&app, &format!("/api/v1/errors/{a}")).await;
    assert_eq!(regressed["status"], "unresolved");
    assert!(regressed["regressed_at"].is_string(), "{regressed}");
    assert_eq!(regressed["count"], 2);

    // Ignored: no regression. Until two more: the second ends the ignore.
    let (_, ignored) = post(
        &app,
        &format!("/api/v1/errors/{b}/status"),
        json!({"status": "ignored", "ignore_until": {"count": 2}}),
    )
    .await;
    assert_eq!(ignored["status"], "ignored");
    assert_eq!(ignored["ignore_until"], json!({"count": 2}));
    ingest(&app, vec![error_entry("web", "initials", 1, "r4", 1)]).await;
    let (_, still) = get(&app, &format!("/api/v1/errors/{b}")).await;
    assert_eq!(still["status"], "ignored");
    assert_eq!(still["regressed_at"], Value::Null);
    assert_eq!(groups(&app, "status=ignored").await.len(), 1);
    ingest(&app, vec![error_entry("web", "initials", 1, "r5", 1)]).await;
    let (_, woke) = get(&app, &format!("/api/v1/errors/{b}")).await;
    assert_eq!(woke["status"], "unresolved");
    assert_eq!(woke["regressed_at"], Value::Null);
    assert_eq!(woke["ignore_until"], Value::Null);

    // Merge b into a: a counts both, b is no longer listed and says where it went.
    let (status, merged) = post(
        &app,
        &format!("/api/v1/errors/{b}/merge"),
        json!({"into": a}),
    )
    .await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["id"], a);
    assert_eq!(merged["count"], 5);
    assert_eq!(merged["merged_ids"], json!([b]));
    let listed = groups(&app, "").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["count_in_range"], 5);
    let (_, gone) = get(&app, &format!("/api/v1/errors/{b}")).await;
    assert_eq!(gone["merged_into"], a);
    let (_, occurrences) = get(&app, &format!("/api/v1/errors/{a}/occurrences")).await;
    assert_eq!(occurrences["logs"].as_array().unwrap().len(), 5);
    // A merged group seen again after the group was resolved regresses the group.
    post(
        &app,
        &format!("/api/v1/errors/{a}/status"),
        json!({"status": "resolved"}),
    )
    .await;
    ingest(&app, vec![error_entry("web", "initials", 3, "r6", 1)]).await;
    let (_, back) = get(&app, &format!("/api/v1/errors/{a}")).await;
    assert_eq!(back["status"], "unresolved");
    assert!(back["regressed_at"].is_string());
    // Merging back into a part of itself is refused.
    let (status, refused) = post(
        &app,
        &format!("/api/v1/errors/{a}/merge"),
        json!({"into": b}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    app.stop_and_drop_database().await;
}

/// A status change and a merge write their audit rows, under the admin key that asked,
/// in the change's transaction; a refused change writes none.
#[tokio::test]
async fn status_changes_and_merges_are_audited() {
    let app = spawn_full_app().await;
    ingest(&app, vec![error_entry("web", "full_name", 1, "r1", 1)]).await;
    ingest(&app, vec![error_entry("web", "initials", 1, "r2", 1)]).await;
    let listed = groups(&app, "").await;
    let (a, b) = (
        listed[1]["id"].as_i64().unwrap(),
        listed[0]["id"].as_i64().unwrap(),
    );
    let audited = || async {
        sqlx::query_as::<_, (String, String, String, Value)>(
            "SELECT actor, action, target, details FROM audit_log ORDER BY id",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap()
    };
    let (status, _) = post(
        &app,
        &format!("/api/v1/errors/{a}/status"),
        json!({"status": "resolved"}),
    )
    .await;
    assert_eq!(status, 200);
    let rows = audited().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (actor, action, target, details) = &rows[0];
    assert!(actor.starts_with("key:"), "{actor}");
    assert_eq!(action, "error_group.resolve");
    assert_eq!(target, &format!("error_group:{a}"));
    assert_eq!(details["status"], "resolved");
    // Refused: nothing changed, nothing audited.
    let (status, _) = post(
        &app,
        &format!("/api/v1/errors/{a}/status"),
        json!({"status": "gone"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(audited().await.len(), 1);
    let (status, _) = post(
        &app,
        &format!("/api/v1/errors/{b}/merge"),
        json!({"into": a}),
    )
    .await;
    assert_eq!(status, 200);
    let rows = audited().await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].1, "error_group.merge");
    assert_eq!(rows[1].2, format!("error_group:{b}"));
    assert_eq!(rows[1].3["into"], a);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn hostile_parameters_and_bodies_are_refused_and_reads_need_an_admin_key() {
    let app = spawn_full_app().await;
    ingest(&app, vec![error_entry("web", "full_name", 1, "r1", 1)]).await;
    let long = "x".repeat(2_000);
    for query in [
        "limit=0".to_owned(),
        "limit=100000".to_owned(),
        "sort=random".to_owned(),
        "status=gone".to_owned(),
        "cursor=zzz".to_owned(),
        format!("q={long}"),
        "since=yesterday".to_owned(),
        "since=1h&until=2h".to_owned(),
        "colour=red".to_owned(),
    ] {
        let (status, body) = get(&app, &format!("/api/v1/errors?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "Invalid query");
    }
    for path in [
        "/api/v1/errors/abc",
        "/api/v1/errors/1?buckets=100000",
        "/api/v1/errors/1/occurrences?limit=5000",
        "/api/v1/errors/1/occurrences?service=other",
        &format!("/api/v1/logs?fingerprint={long}"),
    ] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    assert_eq!(get(&app, "/api/v1/errors/999999").await.0, 404);
    for body in [
        json!({"status": "gone"}),
        json!({"status": "ignored", "ignore_until": {"count": -1}}),
        json!({"status": "ignored", "ignore_until": {"time": "yesterday"}}),
        json!({"status": "resolved", "extra": 1}),
        json!([1, 2, 3]),
    ] {
        let (status, answer) = post(&app, "/api/v1/errors/1/status", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let huge = app
        .client
        .post(app.url("/api/v1/errors/1/status"))
        .header("X-API-Key", ADMIN_KEY)
        .header("Content-Type", "application/json")
        .body(format!("{{\"status\":\"{}\"}}", "r".repeat(100_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    assert_eq!(
        post(&app, "/api/v1/errors/1/merge", json!({"into": 1}))
            .await
            .0,
        400
    );
    assert_eq!(
        post(&app, "/api/v1/errors/999/merge", json!({"into": 1}))
            .await
            .0,
        404
    );
    // Without an admin key: 401; an ingestion key: 403.
    let anonymous = app
        .client
        .get(app.url("/api/v1/errors"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let ingest_key = app
        .post("/api/v1/errors/1/status")
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest_key.status(), 403);
    // A good client still works.
    assert_eq!(
        groups(&app, "status=unresolved&sort=first_seen&limit=1")
            .await
            .len(),
        1
    );
    app.stop_and_drop_database().await;
}

/// Two server instances on one database, each with its own group committer, ingesting
/// the same brand-new fingerprints at once: one group per fingerprint, and its count
/// is exactly the occurrences acknowledged and stored (so are its per-minute counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_ingesting_the_same_new_fingerprint_at_once_make_one_group_with_exact_counts()
{
    let first = spawn_full_app().await;
    let second = log_ingestion_test_support::spawn_app_on(
        first.database.clone(),
        first.database_url.clone(),
        |settings| {
            settings.admin_api_keys = vec![log_ingestion_server::auth::ApiKey::new(ADMIN_KEY)]
        },
    )
    .await;
    const BATCHES: usize = 24;
    const PER_BATCH: usize = 10;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(BATCHES));
    let mut sends = Vec::new();
    for batch in 0..BATCHES {
        let app = if batch % 2 == 0 { &first } else { &second };
        let (client, url) = (app.client.clone(), app.url("/api/v1/logs/batch"));
        let start = std::sync::Arc::clone(&start);
        sends.push(tokio::spawn(async move {
            let entries: Vec<Value> = (0..PER_BATCH)
                .map(|i| {
                    // Three methods: three groups, each new to every writer at first.
                    let method = ["charge", "refund", "capture"][(batch + i) % 3];
                    error_entry("shop", method, i as u32, &format!("r{batch}-{i}"), 1)
                })
                .collect();
            start.wait().await;
            let response = client
                .post(url)
                .header("X-API-Key", log_ingestion_test_support::API_KEY)
                .json(&json!({ "logs": entries }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let answer: Value = response.json().await.unwrap();
            answer["accepted"].as_u64().unwrap()
        }));
    }
    let mut acknowledged = 0;
    for send in sends {
        acknowledged += send.await.unwrap();
    }
    assert_eq!(acknowledged, (BATCHES * PER_BATCH) as u64);

    // The occurrences recorded by both instances, folded into their groups.
    log_ingestion_server::storage::error_fold::fold(&first.pool)
        .await
        .unwrap();
    let groups: Vec<(String, i64)> =
        sqlx::query_as("SELECT fingerprint, count FROM error_groups ORDER BY fingerprint")
            .fetch_all(&first.pool)
            .await
            .unwrap();
    let stored: Vec<(String, i64)> = sqlx::query_as(
        "SELECT fingerprint, count(*) FROM logs WHERE fingerprint IS NOT NULL \
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&first.pool)
    .await
    .unwrap();
    assert_eq!(groups.len(), 3, "{groups:?}");
    assert_eq!(groups, stored);
    assert_eq!(
        groups.iter().map(|(_, count)| count).sum::<i64>(),
        acknowledged as i64
    );
    let minutes: i64 = sqlx::query_scalar("SELECT sum(count)::bigint FROM error_group_minutes")
        .fetch_one(&first.pool)
        .await
        .unwrap();
    assert_eq!(minutes, acknowledged as i64);
    let mut second = second;
    second.stop().await;
    first.stop_and_drop_database().await;
}

/// Writers committing error entries while folds run (the server's own, and more from
/// here): every read of the API counts at least every occurrence acknowledged before it
/// and never more than are stored, and at the end the groups and their minutes hold
/// exactly the stored occurrences, with nothing left unfolded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_are_exact_at_every_read_while_writers_and_folds_race() {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    let app = spawn_full_app().await;
    const WRITERS: usize = 4;
    const BATCHES: usize = 15;
    const PER_BATCH: usize = 8;
    let acknowledged = Arc::new(AtomicI64::new(0));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (client, url) = (app.client.clone(), app.url("/api/v1/logs/batch"));
        let acknowledged = Arc::clone(&acknowledged);
        writers.push(tokio::spawn(async move {
            for batch in 0..BATCHES {
                let entries: Vec<Value> = (0..PER_BATCH)
                    .map(|i| {
                        let method = ["charge", "refund", "capture"][(writer + batch + i) % 3];
                        error_entry("shop", method, i as u32, &format!("r{writer}-{batch}"), 1)
                    })
                    .collect();
                let response = client
                    .post(&url)
                    .header("X-API-Key", log_ingestion_test_support::API_KEY)
                    .json(&json!({ "logs": entries }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                acknowledged.fetch_add(PER_BATCH as i64, Ordering::SeqCst);
            }
        }));
    }
    let folds = {
        let pool = app.pool.clone();
        tokio::spawn(async move {
            let mut folded = 0;
            for _ in 0..40 {
                folded += log_ingestion_server::storage::error_fold::fold(&pool)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
            folded
        })
    };
    let total = (WRITERS * BATCHES * PER_BATCH) as i64;
    let mut reads = 0;
    loop {
        let before = acknowledged.load(Ordering::SeqCst);
        let counted: i64 = groups(&app, "service=shop")
            .await
            .iter()
            .map(|group| group["count"].as_i64().unwrap())
            .sum();
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM logs WHERE fingerprint IS NOT NULL")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert!(
            counted >= before,
            "read {reads}: {counted} counted, {before} acknowledged before the read"
        );
        assert!(
            counted <= stored,
            "read {reads}: {counted} counted, only {stored} stored"
        );
        reads += 1;
        if before == total {
            assert_eq!(counted, total);
            break;
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    folds.await.unwrap();
    let minutes: i64 = sqlx::query_scalar("SELECT sum(count)::bigint FROM error_group_minutes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(minutes, total);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM error_group_deltas")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    app.stop_and_drop_database().await;
}

/// Occurrences are counted once whoever stores them: a batch retried with its
/// idempotency key is counted for its first delivery only (the replay stores nothing),
/// a group commit mixing both kinds of request counts each stored row once, and a row
/// stored by a plain `INSERT` (an operator, an earlier version) is counted by the
/// database's row trigger, never again by anyone.
#[tokio::test]
async fn occurrences_count_once_for_replays_mixed_commits_and_rows_inserted_by_hand() {
    let app = spawn_full_app().await;
    let body = json!({ "logs": (0..3)
        .map(|i| error_entry("billing", "charge", i, &format!("k{i}"), 1))
        .collect::<Vec<_>>() });
    for _ in 0..2 {
        let response = app
            .post("/api/v1/logs/batch")
            .header("Idempotency-Key", "errors-once")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Keyed and keyless requests at once, so some group commits hold both.
    let sends = (0..6).map(|i| {
        let request = app
            .post("/api/v1/logs/batch")
            .json(&json!({ "logs": [error_entry("billing", "charge", i, "mixed", 2)] }));
        let request = if i % 2 == 0 {
            request.header("Idempotency-Key", format!("mixed-{i}"))
        } else {
            request
        };
        request.send()
    });
    for response in futures::future::join_all(sends).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    let listed = groups(&app, "service=billing").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["count"], 9, "{listed:?}");

    let fingerprint: String =
        sqlx::query_scalar("SELECT fingerprint FROM error_groups WHERE service = 'billing'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, fingerprint) \
         VALUES (now(), 'billing', 'ERROR', 'by hand', $1), (now(), 'billing', 'ERROR', 'by hand', $1)",
    )
    .bind(&fingerprint)
    .execute(&app.pool)
    .await
    .unwrap();
    let listed = groups(&app, "service=billing").await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM logs WHERE fingerprint = $1")
        .bind(&fingerprint)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 11);
    assert_eq!(listed[0]["count"], 11, "{listed:?}");
    let minutes: i64 = sqlx::query_scalar("SELECT sum(count)::bigint FROM error_group_minutes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(minutes, 11);
    app.stop_and_drop_database().await;
}
