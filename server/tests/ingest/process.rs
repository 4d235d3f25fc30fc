//! Tests of the built binary as a real process: signals, crashes, configuration.

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use log_ingestion_test_support::{binary, ServerProcess};
use log_ingestion_test_support::{create_database, entry, expected_mode, wait_until, API_KEY};

/// Clients that send batches of 10 until a request fails; returns every acknowledged message.
fn start_load(
    address: &str,
    acknowledged: &Arc<Mutex<Vec<String>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..8)
        .map(|client| {
            let url = format!("{address}/api/v1/logs/batch");
            let acknowledged = Arc::clone(acknowledged);
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for request in 0..3_000 {
                    let messages: Vec<String> = (0..10)
                        .map(|i| format!("c{client}-r{request}-e{i}"))
                        .collect();
                    let body =
                        json!({"logs": messages.iter().map(|m| entry(m)).collect::<Vec<_>>()});
                    match http
                        .post(&url)
                        .header("X-API-Key", API_KEY)
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(response) if response.status() == 200 => {
                            acknowledged.lock().unwrap().extend(messages);
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect()
}

async fn stored_messages(database_url: &str) -> HashSet<String> {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    sqlx::query_scalar("SELECT message FROM logs")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_load_loses_no_acknowledged_entry() {
    let (_database, url) = create_database().await;
    let mut server = ServerProcess::start(&url, API_KEY);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let clients = start_load(&server.address, &acknowledged);
    let loaded = wait_until(Duration::from_secs(60), || async {
        acknowledged.lock().unwrap().len() >= 2_000
    })
    .await;
    assert!(loaded, "the load never reached 2000 acknowledged entries");

    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    futures::future::join_all(clients).await;

    let acknowledged = acknowledged.lock().unwrap().clone();
    let stored = stored_messages(&url).await;
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|m| !stored.contains(*m))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged entries lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_drains_and_exits_cleanly_losing_nothing() {
    let (_database, url) = create_database().await;
    let mut server = ServerProcess::start(&url, API_KEY);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let clients = start_load(&server.address, &acknowledged);
    let loaded = wait_until(Duration::from_secs(60), || async {
        acknowledged.lock().unwrap().len() >= 1_000
    })
    .await;
    assert!(loaded, "the load never reached 1000 acknowledged entries");

    server.signal("TERM");
    let status = server
        .wait_for_exit(Duration::from_secs(30))
        .expect("exits within its deadline");
    assert!(status.success(), "exit status {status:?}");
    futures::future::join_all(clients).await;

    let acknowledged = acknowledged.lock().unwrap().clone();
    let stored = stored_messages(&url).await;
    assert!(
        acknowledged.iter().all(|m| stored.contains(m)),
        "an acknowledged entry was lost"
    );
    let lines = server.log_text();
    assert!(lines.contains("SIGTERM received"), "{lines}");
}

#[tokio::test]
async fn the_server_logs_its_storage_mode_at_start_and_never_its_keys() {
    let (_database, url) = create_database().await;
    let mut server = ServerProcess::start(&url, API_KEY);
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/logs", server.address))
        .header("X-API-Key", "a-wrong-key-that-must-not-be-logged")
        .json(&json!({"log": entry("x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    server.signal("INT");
    let exit = server.wait_for_exit(Duration::from_secs(30));
    let lines = server.log_text();
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit {exit:?} after SIGINT; server log:\n{lines}"
    );
    let ready = lines
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["fields"]["message"] == "storage ready")
        .unwrap_or_else(|| panic!("no storage line in {lines}"));
    assert_eq!(ready["fields"]["storage"], expected_mode().as_str());
    assert!(!lines.contains(API_KEY), "{lines}");
    assert!(
        !lines.contains("a-wrong-key-that-must-not-be-logged"),
        "{lines}"
    );
}

#[test]
fn bad_configuration_exits_non_zero_with_one_clear_message() {
    let cwd = tempfile::tempdir().unwrap();
    let output = Command::new(binary())
        .current_dir(cwd.path())
        .env_clear()
        .env("LOG_INGESTION_PORT", "eighty")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid configuration"), "{stderr}");
    for variable in [
        "DATABASE_URL",
        "LOG_INGESTION_API_KEYS",
        "LOG_INGESTION_PORT",
    ] {
        assert!(
            stderr.contains(variable),
            "{variable} missing from {stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn migrate_applies_the_schema_and_rerunning_it_keeps_the_data() {
    let (_database, url) = create_database().await;
    let cwd = tempfile::tempdir().unwrap();
    let migrate = || {
        Command::new(binary())
            .arg("migrate")
            .current_dir(cwd.path())
            .env_clear()
            .env("DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let first = migrate();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message) VALUES (now(), 's', 'INFO', 'kept')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let second = migrate();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM logs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}
