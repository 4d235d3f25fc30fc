use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use log_ingestion_test_support::{entry, spawn_app, spawn_app_with, wait_until, TestApp};

#[tokio::test]
async fn rows_stored_equal_entries_acknowledged_under_many_concurrent_clients() {
    let app = spawn_app().await;
    let clients = (0..16).map(|client| {
        let app = &app;
        async move {
            let mut acknowledged = Vec::new();
            for request in 0..15 {
                let size = (client * 7 + request * 3) % 25 + 1;
                let messages: Vec<String> = (0..size)
                    .map(|i| format!("c{client}-r{request}-e{i}"))
                    .collect();
                if size == 1 {
                    let response = app.post_single(entry(&messages[0])).await;
                    assert_eq!(response.status(), 201);
                } else {
                    let response = app
                        .post_batch(messages.iter().map(|m| entry(m)).collect())
                        .await;
                    assert_eq!(response.status(), 200);
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["accepted"].as_u64(), Some(size as u64));
                }
                acknowledged.extend(messages);
            }
            acknowledged
        }
    });
    let acknowledged: Vec<String> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect();
    let stored = app.stored_messages().await;
    assert_eq!(stored.len(), acknowledged.len());
    let stored: HashSet<String> = stored.into_iter().collect();
    let acknowledged: HashSet<String> = acknowledged.into_iter().collect();
    assert_eq!(stored, acknowledged);
}

#[tokio::test]
async fn a_failed_group_commit_answers_503_and_stores_nothing_of_its_requests() {
    let app = spawn_app().await;
    sqlx::raw_sql(
        "CREATE FUNCTION reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.message = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER reject_poison BEFORE INSERT ON logs \
         FOR EACH ROW EXECUTE FUNCTION reject_poison();",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let requests = (0..24).map(|request| {
        let app = &app;
        async move {
            let mut messages: Vec<String> = (0..5).map(|i| format!("r{request}-e{i}")).collect();
            if request % 6 == 0 {
                messages[2] = "poison".to_owned();
            }
            let response = app
                .post_batch(messages.iter().map(|m| entry(m)).collect())
                .await;
            (
                request,
                response.status().as_u16(),
                response.headers().get("retry-after").is_some(),
                messages,
            )
        }
    });
    let outcomes = futures::future::join_all(requests).await;
    let stored: HashSet<String> = app.stored_messages().await.into_iter().collect();
    for (request, status, retry_after, messages) in outcomes {
        match status {
            200 => {
                assert!(request % 6 != 0, "a poisoned request was acknowledged");
                assert!(
                    messages.iter().all(|m| stored.contains(m)),
                    "request {request} half-stored"
                );
            }
            503 => {
                assert!(retry_after, "503 without Retry-After");
                assert!(
                    messages.iter().all(|m| !stored.contains(m)),
                    "request {request} half-stored"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
}

#[tokio::test]
async fn concurrent_requests_share_transactions() {
    let app = spawn_app().await;
    let requests = (0..64).map(|i| app.post_single(entry(&format!("m{i}"))));
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.status(), 201);
    }
    let commits = app.metric("log_ingestion_commit_batch_rows_count").await;
    assert!(commits < 64, "{commits} commits for 64 concurrent requests");
    assert_eq!(app.row_count().await, 64);
}

/// Terminates every backend of the app's database except the one running this query
/// (the server's writers, its pool's idle connections, the test's other connections),
/// and waits until they are gone. Returns how many there were.
async fn terminate_other_backends(app: &TestApp) -> usize {
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity, pg_terminate_backend(pid) \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let gone = wait_until(Duration::from_secs(10), || async {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                .bind(&pids)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        left == 0
    })
    .await;
    assert!(gone, "terminated backends still listed after 10 s");
    pids.len()
}

/// Each writer keeps its connection from group to group (no liveness round trip per
/// group); when that connection has died in between, the next group is written on a
/// fresh one instead of failing with 503, and is stored once.
#[tokio::test]
async fn a_writer_whose_kept_connection_died_writes_the_next_group_on_a_fresh_one() {
    let app = spawn_app_with(|settings| settings.group_commit.writers = 1).await;
    assert_eq!(app.post_batch(vec![entry("before")]).await.status(), 200);
    assert!(
        terminate_other_backends(&app).await >= 1,
        "no writer connection found"
    );

    for i in 0..3 {
        let response = app.post_batch(vec![entry(&format!("after-{i}"))]).await;
        assert_eq!(
            response.status(),
            200,
            "group {i} after the writer's backend died"
        );
    }
    assert_eq!(app.metric("log_ingestion_writer_reconnects_total").await, 1);
    assert_eq!(app.metric("log_ingestion_database_errors_total").await, 0);
    let mut stored = app.stored_messages().await;
    stored.sort();
    assert_eq!(stored, ["after-0", "after-1", "after-2", "before"]);
}

/// The writers' backends are terminated three times while clients keep sending (after a
/// quarter, half and three quarters of the requests were answered, however fast the
/// machine is): every acknowledged entry is stored exactly once, nothing is stored twice,
/// and the clients keep being served (a 503 is only allowed for a group caught
/// mid-write).
#[tokio::test]
async fn writers_recover_when_their_backends_are_terminated_under_load() {
    let app = spawn_app().await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let clients = (0..8).map(|client| {
        let app = &app;
        let answered = &answered;
        async move {
            let (mut acknowledged, mut refused) = (Vec::new(), 0);
            for request in 0..30 {
                let messages: Vec<String> = (0..10)
                    .map(|i| format!("c{client}-r{request}-e{i}"))
                    .collect();
                let response = app
                    .post_batch(messages.iter().map(|m| entry(m)).collect())
                    .await;
                match response.status().as_u16() {
                    200 => acknowledged.extend(messages),
                    503 => refused += 1,
                    other => panic!("unexpected status {other}"),
                }
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (acknowledged, refused)
        }
    });
    let killer = async {
        let mut terminations = 0;
        for quarter in 1..=3 {
            wait_until(Duration::from_secs(60), || async {
                answered.load(std::sync::atomic::Ordering::Relaxed) >= quarter * 240 / 4
                    || done.load(std::sync::atomic::Ordering::Relaxed)
            })
            .await;
            if done.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            terminate_other_backends(&app).await;
            terminations += 1;
        }
        terminations
    };
    let (outcomes, terminations) = tokio::join!(
        async {
            let outcomes = futures::future::join_all(clients).await;
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            outcomes
        },
        killer
    );
    let refused: usize = outcomes.iter().map(|(_, refused)| refused).sum();
    let acknowledged: Vec<String> = outcomes.into_iter().flat_map(|(acked, _)| acked).collect();
    let stored = app.stored_messages().await;
    let distinct: HashSet<&String> = stored.iter().collect();
    assert_eq!(distinct.len(), stored.len(), "an entry was stored twice");
    for message in &acknowledged {
        assert!(
            distinct.contains(message),
            "{message} acknowledged but not stored"
        );
    }
    // Each termination can fail at most the group each of the 2 writers has in
    // flight, 8 requests at most: 3 x 2 x 8. Writers that did not recover would fail
    // every request after the first termination.
    assert!(
        refused <= 48,
        "{refused} of 240 requests refused: the writers did not recover"
    );
    assert!(
        terminations >= 1,
        "the clients finished before a termination"
    );
    assert!(app.metric("log_ingestion_writer_reconnects_total").await >= 1);
}
