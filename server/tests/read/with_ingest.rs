//! The read side merged with the real ingest side: what a client ingests over HTTP is
//! what an admin reads, and each side accepts only its own keys.

use std::time::Duration;

use log_ingestion_test_support::{
    metrics, spawn_app_with_vars, spawn_full_app, wait_until, AdminReader, SseReader, TestApp,
    ADMIN_KEY, INGEST_KEY,
};
use serde_json::{json, Value};

fn entry(message: &str) -> Value {
    json!({
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "service": "checkout",
        "level": "warn",
        "message": message,
        "metadata": {"order_id": "ord_1", "password": "hunter2"}
    })
}

#[tokio::test]
async fn an_entry_ingested_over_http_is_read_back_by_an_admin() {
    let app = spawn_full_app().await;
    let accepted = app
        .client
        .post(app.url("/api/v1/logs"))
        .header("X-API-Key", INGEST_KEY)
        .json(&json!({"log": entry("card declined")}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 201);
    let page: Value = app
        .admin()
        .json(
            "/api/v1/logs?service=checkout&level=warn&meta.order_id=ord_1&since=5m",
            &[] as &[(&str, &str)],
        )
        .await;
    let logs = page["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{page}");
    assert_eq!(logs[0]["message"], "card declined");
    assert_eq!(logs[0]["level"], "WARN");
    assert_eq!(logs[0]["metadata"]["password"], "[FILTERED]");
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn each_side_refuses_the_other_sides_key() {
    let app = spawn_full_app().await;
    let read_with_ingest_key = app
        .client
        .get(app.url("/api/v1/logs"))
        .header("X-API-Key", INGEST_KEY)
        .send()
        .await
        .unwrap();
    // The whole server's router knows the ingestion keys: it says why it refuses.
    assert_eq!(read_with_ingest_key.status(), 403);
    let body: serde_json::Value = read_with_ingest_key.json().await.unwrap();
    assert_eq!(body["error"], "This API key may only ingest");
    let ingest_with_admin_key = app
        .client
        .post(app.url("/api/v1/logs"))
        .header("X-API-Key", ADMIN_KEY)
        .json(&json!({"log": entry("nope")}))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest_with_admin_key.status(), 401);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_live_tail_sees_an_entry_ingested_over_http() {
    let app = spawn_full_app().await;
    let response = app
        .client
        .get(app.url("/api/v1/logs/tail?service=checkout"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let mut tail = SseReader::new(response);
    tail.next_named("ready", Duration::from_secs(10))
        .await
        .expect("the tail starts");
    let accepted = app
        .client
        .post(app.url("/api/v1/logs/batch"))
        .header("X-API-Key", INGEST_KEY)
        .json(&json!({"logs": [entry("first"), entry("second")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let mut messages = Vec::new();
    while messages.len() < 2 {
        let event = tail
            .next_named("log", Duration::from_secs(10))
            .await
            .expect("both entries arrive");
        let log: Value = serde_json::from_str(&event.data).unwrap();
        messages.push(log["message"].as_str().unwrap().to_owned());
    }
    messages.sort();
    assert_eq!(messages, ["first", "second"]);
    app.stop_and_drop_database().await;
}

// ---------------------------------------------------------------------------------
// Reads never starve writes. These run the whole application
// (`Application::build`, as `main` does) with settings read from variables, and make
// reads slow for real: a table lock the test holds (every SELECT on `logs` waits for
// it), or a text search over rows whose large messages PostgreSQL must decompress.

const ADMIN_KEYS_VAR: (&str, &str) = ("LOG_INGESTION_ADMIN_API_KEYS", ADMIN_KEY);

/// Statements reading `logs` that are running right now in the app's database.
async fn running_log_reads(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND state = 'active' AND query ILIKE '%FROM logs%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// The read side's sessions open in PostgreSQL right now (busy or idle).
async fn read_sessions(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(log_ingestion_server::read::READ_APPLICATION_NAME)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// A transaction holding an ACCESS EXCLUSIVE lock on `logs`: every read waits for it.
async fn lock_logs(app: &TestApp) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut locker = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    locker
}

fn admin_get(app: &TestApp, client: &reqwest::Client, path: &str) -> reqwest::RequestBuilder {
    AdminReader::new(client, app.address.clone(), ADMIN_KEY).get(path)
}

/// How often `/metrics` counts a refusal for `reason`.
async fn refusals(app: &TestApp, reason: &str) -> u64 {
    let text = app.metrics_text().await;
    let sample = format!("log_ingestion_requests_rejected_total{{reason=\"{reason}\"}}");
    metrics::sample(&text, &sample).map_or(0, |value| value as u64)
}

/// A search whose client hangs up must not keep running on the server: dropping the
/// request cancels its query (bound: gone within 5 s; in practice milliseconds), the
/// cancellation is counted, and the read side keeps working. The statement timeout is
/// set far beyond the bound so that it cannot be what ends the query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_whose_client_hangs_up_stops_running_on_the_server() {
    let app = spawn_app_with_vars(&[
        ADMIN_KEYS_VAR,
        ("LOG_INGESTION_READ_STATEMENT_TIMEOUT", "120s"),
    ])
    .await;
    let locker = lock_logs(&app).await;
    let client = reqwest::Client::new();
    let abandoned = tokio::spawn(admin_get(&app, &client, "/api/v1/logs?q=anything").send());
    assert!(
        wait_until(Duration::from_secs(10), || async {
            running_log_reads(&app).await == 1
        })
        .await,
        "the search never reached the database"
    );
    abandoned.abort();
    let hung_up = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || async {
            running_log_reads(&app).await == 0
        })
        .await,
        "the abandoned search still runs on the server after 5 s"
    );
    eprintln!(
        "abandoned search stopped {:?} after the hang-up",
        hung_up.elapsed()
    );
    assert_eq!(
        app.metric("log_ingestion_read_queries_cancelled_total")
            .await,
        1
    );
    locker.rollback().await.unwrap();
    let (status, _) = get_json(&app, &client, "/api/v1/logs?limit=1").await;
    assert_eq!(status, 200);
}

/// A read past `LOG_INGESTION_READ_STATEMENT_TIMEOUT` is a 503 `Query timed out`
/// (bound: answered within 10 s at a 1 s timeout), counted, and its connection works
/// again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_its_statement_timeout_is_a_503_not_a_hang() {
    let app = spawn_app_with_vars(&[
        ADMIN_KEYS_VAR,
        ("LOG_INGESTION_READ_STATEMENT_TIMEOUT", "1s"),
        ("LOG_INGESTION_READ_MAX_CONNECTIONS", "1"),
    ])
    .await;
    let locker = lock_logs(&app).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = admin_get(&app, &client, "/api/v1/services")
        .send()
        .await
        .expect("an answer within 10 s");
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "Query timed out", "{body}");
    assert_eq!(refusals(&app, "read_timeout").await, 1);
    locker.rollback().await.unwrap();
    let (status, _) = get_json(&app, &client, "/api/v1/services").await;
    assert_eq!(status, 200);
}

/// With every read connection busy, another read waits `LOG_INGESTION_READ_QUEUE_WAIT`
/// and then gets 503 `Server busy` with `Retry-After` (bound: within 5 s at a 200 ms
/// wait), counted in /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_beyond_the_read_connections_waits_briefly_then_gets_503() {
    let app = spawn_app_with_vars(&[
        ADMIN_KEYS_VAR,
        ("LOG_INGESTION_READ_MAX_CONNECTIONS", "1"),
        ("LOG_INGESTION_READ_QUEUE_WAIT", "200ms"),
        ("LOG_INGESTION_READ_STATEMENT_TIMEOUT", "120s"),
    ])
    .await;
    let locker = lock_logs(&app).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let holder = tokio::spawn(admin_get(&app, &client, "/api/v1/logs").send());
    assert!(
        wait_until(Duration::from_secs(10), || async {
            running_log_reads(&app).await == 1
        })
        .await,
        "the first search never reached the database"
    );
    let busy = admin_get(&app, &client, "/api/v1/logs/histogram")
        .send()
        .await
        .expect("an answer within 5 s");
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    let body: Value = busy.json().await.unwrap();
    assert_eq!(body["error"], "Server busy", "{body}");
    assert_eq!(refusals(&app, "read_busy").await, 1);
    holder.abort();
    locker.rollback().await.unwrap();
}

/// Live tails take a read connection only for each poll: eight streaming tails on a
/// single read connection leave room for searches (each answered 200), and the read
/// side never opens more than its one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tails_hold_no_read_connection_between_polls() {
    let app =
        spawn_app_with_vars(&[ADMIN_KEYS_VAR, ("LOG_INGESTION_READ_MAX_CONNECTIONS", "1")]).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut tails = Vec::new();
    for _ in 0..8 {
        let response = admin_get(&app, &client, "/api/v1/logs/tail")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut tail = SseReader::new(response);
        tail.next_named("ready", Duration::from_secs(10))
            .await
            .expect("the tail starts");
        tails.push(tail);
    }
    for _ in 0..5 {
        let (status, body) = get_json(&app, &client, "/api/v1/logs?since=1h").await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(read_sessions(&app).await <= 1);
    drop(tails);
}

async fn get_json(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, Value) {
    let response = admin_get(app, client, path).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The read flood attack, while a well-behaved client ingests: 64 concurrent
/// slow searches (a text search over 3,000 rows of 60 KB messages, about 3 s of CPU
/// each on this machine) and 100 live tails opened and abandoned. Asserted:
/// - ingest keeps its connections: every ingest request is 2xx and its p99 stays
///   under 1 s (stated bound; ~10 ms without the attack), every acknowledged entry is
///   stored;
/// - every read and tail gets an answer (200, or a 503 `Server busy` / `Query timed
///   out` / `Too many live tails`), none hangs (60 s client timeout);
/// - afterwards the read side recovers: a search answers 200, no read query is left
///   running, and all 32 tail slots can be taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_reads_and_abandoned_tails_never_starve_ingestion() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    let app = Arc::new(
        spawn_app_with_vars(&[
            ADMIN_KEYS_VAR,
            ("LOG_INGESTION_READ_STATEMENT_TIMEOUT", "3s"),
        ])
        .await,
    );
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         SELECT now() - g * interval '10 minutes', 'bulk', 'INFO', \
                repeat('slow read ', 6000) || g, '{}' \
         FROM generate_series(1, 3000) AS g",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let ingester = {
        let app = Arc::clone(&app);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut acknowledged = 0usize;
            let mut failures = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let logs: Vec<Value> = (0..5)
                    .map(|i| {
                        let mut log = entry(&format!("ingest-{n}-{i}"));
                        log["service"] = json!("ingest");
                        log
                    })
                    .collect();
                n += 1;
                let started = Instant::now();
                let answer = client
                    .post(app.url("/api/v1/logs/batch"))
                    .header("X-API-Key", INGEST_KEY)
                    .json(&json!({ "logs": logs }))
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                latencies.push(started.elapsed());
                match answer {
                    Ok(response) if response.status() == 200 => acknowledged += 5,
                    Ok(response) => failures.push(response.status().to_string()),
                    Err(error) => failures.push(error.to_string()),
                }
            }
            (latencies, acknowledged, failures)
        })
    };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let searches = (0..64).map(|_| {
        let request = admin_get(&app, &client, "/api/v1/logs?q=needle&since=30d").send();
        async move {
            match request.await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    (status, body["error"].as_str().unwrap_or("").to_owned())
                }
                Err(error) => (0, error.to_string()),
            }
        }
    });
    // 100 tails at once: the first 32 (the tail cap) stream, the rest are refused.
    let tails: Vec<Result<reqwest::Response, reqwest::Error>> = futures::future::join_all(
        (0..100).map(|_| admin_get(&app, &client, "/api/v1/logs/tail").send()),
    )
    .await;
    let tail_statuses: Vec<u16> = tails
        .iter()
        .map(|tail| tail.as_ref().map_or(0, |r| r.status().as_u16()))
        .collect();
    let open_tails: Vec<reqwest::Response> = tails
        .into_iter()
        .filter_map(Result::ok)
        .filter(|response| response.status() == 200)
        .collect();
    let streaming = open_tails.len();
    let attack_started = Instant::now();
    // How many read sessions PostgreSQL sees at most while the attack runs.
    let sampler = {
        let app = Arc::clone(&app);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut most = 0;
            while !stop.load(Ordering::Acquire) {
                most = most.max(read_sessions(&app).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            most
        })
    };
    // The streaming tails keep polling through the searches, then their clients
    // vanish without a word.
    let abandon = async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(open_tails);
    };
    let (searches, ()) = tokio::join!(futures::future::join_all(searches), abandon);
    let attack_took = attack_started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await; // ingest a little after it, too
    stop.store(true, Ordering::Release);
    let (mut latencies, acknowledged, failures) = ingester.await.unwrap();
    let most_read_sessions = sampler.await.unwrap();

    latencies.sort();
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    let p50 = latencies[latencies.len() / 2];
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    for (status, error) in &searches {
        *outcomes.entry(format!("{status} {error}")).or_default() += 1;
    }
    eprintln!(
        "attack took {attack_took:?}; ingest: {} requests, p50 {p50:?}, p99 {p99:?}; searches: {outcomes:?}; tails streaming: {streaming} of 100; read sessions at most {most_read_sessions}",
        latencies.len(),
    );

    assert!(
        failures.is_empty(),
        "ingest failed during the attack: {failures:?}"
    );
    assert!(
        p99 < Duration::from_secs(1),
        "ingest p99 {p99:?} over the 1 s bound"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM logs WHERE message LIKE 'ingest-%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored as usize, acknowledged);
    for (status, error) in &searches {
        assert!(
            *status == 200
                || (*status == 503 && ["Server busy", "Query timed out"].contains(&error.as_str())),
            "a search got {status} {error}"
        );
    }
    assert!(
        searches.iter().any(|(status, _)| *status == 503),
        "64 slow searches at once were never refused"
    );
    assert!(
        tail_statuses
            .iter()
            .all(|status| [200, 503].contains(status)),
        "a tail hung or failed: {tail_statuses:?}"
    );
    assert!(streaming > 0, "no tail was streaming: {tail_statuses:?}");

    // Recovery: the read side answers again, nothing is left running, every tail
    // slot is free again.
    assert!(
        wait_until(Duration::from_secs(15), || async {
            get_json(&app, &client, "/api/v1/logs?service=ingest&limit=5")
                .await
                .0
                == 200
        })
        .await,
        "the read side did not recover within 15 s"
    );
    assert!(
        wait_until(Duration::from_secs(15), || async {
            running_log_reads(&app).await == 0
        })
        .await,
        "read queries still running 15 s after the attack"
    );
    let reopened = futures::future::join_all(
        (0..32).map(|_| admin_get(&app, &client, "/api/v1/logs/tail?service=ingest").send()),
    )
    .await;
    let reopened: Vec<u16> = reopened
        .into_iter()
        .map(|response| response.map_or(0, |r| r.status().as_u16()))
        .collect();
    assert!(
        reopened.iter().all(|status| *status == 200),
        "tail slots were not all freed: {reopened:?}"
    );
}
