//! Tests of the built binary as a real process: signals, crashes, configuration.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{create_database, entry, expected_mode, test_storage, wait_until, API_KEY};

const BINARY: &str = env!("CARGO_BIN_EXE_log-ingestion-server");

struct ServerProcess {
    child: Child,
    address: String,
    lines: Arc<Mutex<Vec<String>>>,
    _cwd: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts the binary on `database_url` and waits until it listens.
    fn start(database_url: &str) -> Self {
        let cwd = tempfile::tempdir().unwrap();
        let mut child = Command::new(BINARY)
            .arg("serve")
            .current_dir(cwd.path())
            .env("DATABASE_URL", database_url)
            .env("LOG_INGESTION_API_KEYS", API_KEY)
            .env("LOG_INGESTION_HOST", "127.0.0.1")
            .env("LOG_INGESTION_PORT", "0")
            .env("LOG_INGESTION_RATE_LIMIT_RPS", "100000")
            .env("LOG_INGESTION_RATE_LIMIT_BURST", "100000")
            .env("LOG_INGESTION_SHUTDOWN_DEADLINE", "15s")
            .env("LOG_INGESTION_LOG_FORMAT", "json")
            .env("LOG_INGESTION_STORAGE", test_storage().to_string())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    if event["fields"]["message"] == "listening" {
                        let _ = address_tx.send(
                            event["fields"]["address"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        );
                    }
                }
                collected.lock().unwrap().push(line);
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server never listened: {:?}", lines.lock().unwrap()));
        ServerProcess {
            child,
            address: format!("http://{address}"),
            lines,
            _cwd: cwd,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let (_, url) = create_database().await;
    let mut server = ServerProcess::start(&url);
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
    let (_, url) = create_database().await;
    let mut server = ServerProcess::start(&url);
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
    let lines = server.lines.lock().unwrap().join("\n");
    assert!(lines.contains("SIGTERM received"), "{lines}");
}

#[tokio::test]
async fn the_server_logs_its_storage_mode_at_start_and_never_its_keys() {
    let (_, url) = create_database().await;
    let mut server = ServerProcess::start(&url);
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
    let lines = server.lines.lock().unwrap().join("\n");
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
    let output = Command::new(BINARY)
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
    let (_, url) = create_database().await;
    let cwd = tempfile::tempdir().unwrap();
    let migrate = || {
        Command::new(BINARY)
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
