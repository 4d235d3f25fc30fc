use std::collections::HashSet;

use serde_json::Value;

use log_ingestion_test_support::{entry, spawn_app};

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
