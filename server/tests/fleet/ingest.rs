//! Every acknowledged entry exactly once across a fleet: 15 HTTP clients and one real
//! `LogIngestionClient` process through HAProxy while one instance is killed with
//! `kill -9`; a retry that reaches a different instance with the same Idempotency-Key;
//! and reads from the replica.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use log_ingestion_test_support::fleet::{Fleet, ADMIN_KEY};
use log_ingestion_test_support::{long_tests, metrics, AdminReader};

const HTTP_CLIENTS: usize = 15;
/// How long one batch is retried before the test gives up on it (loose: a debug or
/// release binary on a shared 2-core machine, and an instance killed mid-load).
const BATCH_DEADLINE: Duration = Duration::from_secs(60);

fn entries(client: usize, batch: usize, size: usize) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    let logs: Vec<Value> = (0..size)
        .map(|i| {
            json!({
                "timestamp": now,
                "service": "fleet-test",
                "level": "INFO",
                "message": format!("http-{client}-{batch}-{i}"),
                "metadata": {"client": client, "batch": batch}
            })
        })
        .collect();
    json!({ "logs": logs })
}

/// Sends one batch until it is acknowledged, with the same Idempotency-Key every time
/// (as the gem does); returns the entries the server said it accepted.
async fn deliver(http: &reqwest::Client, url: &str, key: &str, body: &Value, id: &str) -> u64 {
    let started = Instant::now();
    loop {
        let sent = http
            .post(format!("{url}/api/v1/logs/batch"))
            .header("X-API-Key", key)
            .header("Idempotency-Key", id)
            .json(body)
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status();
            if status.is_success() {
                let answer: Value = response.json().await.unwrap_or_default();
                return answer["accepted"].as_u64().expect("accepted count");
            }
            assert!(
                status.as_u16() == 429 || status.as_u16() == 503,
                "batch {id}: unexpected {status}"
            );
        }
        assert!(
            started.elapsed() < BATCH_DEADLINE,
            "batch {id} not acknowledged within {BATCH_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 30 s) for the gem to say it delivered its first half, then asks HAProxy
/// which instance its connection is on.
async fn wait_for_gem_connection(fleet: &Fleet, ruby_pid: u32) -> Option<usize> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(instance) = fleet.instance_serving(ruby_pid) {
            return Some(instance);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn ruby_client_script(entries: usize) -> String {
    format!(
        r#"
require "json"
require "log_ingestion"
abort "native extension missing (rake compile)" unless LogIngestion::Native.available?
LogIngestionClient.configure do |c|
  c.api_url = ENV.fetch("FLEET_URL")
  c.api_key = ENV.fetch("FLEET_KEY")
  c.service = "fleet-ruby"
  c.batch_size = 50
  c.batch_interval = 0.05
  c.retry_delay = 0.05
  c.max_retry_delay = 0.5
  c.on_error = ->(error) {{ $stderr.puts("on_error: #{{error.inspect}}") }}
end
half = {entries} / 2
half.times {{ |i| LogIngestionClient.info("ruby-#{{i}}", {{ i: i }}) }}
LogIngestionClient.flush(timeout: 60)
puts "ready"
$stdout.flush
$stdin.gets # the test kills the instance this client's connection is on, then says go
(half...{entries}).each {{ |i| LogIngestionClient.info("ruby-#{{i}}", {{ i: i }}) }}
LogIngestionClient.flush(timeout: 60)
puts JSON.generate(LogIngestionClient.stats)
LogIngestionClient.shutdown(timeout: 10)
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_entry_is_stored_once_while_an_instance_is_killed() {
    let mut keys: Vec<String> = (0..HTTP_CLIENTS)
        .map(|i| format!("fleet-http-{i}"))
        .collect();
    keys.push("fleet-ruby".to_owned());
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let fleet = Fleet::start("ingest", &key_refs, &[]);
    let url = fleet.url();
    let http = reqwest::Client::new();
    let (batches, batch_size, ruby_entries) = if long_tests() {
        (120, 100, 20_000)
    } else {
        (30, 50, 3_000)
    };

    // The real gem in its own process, through HAProxy, from the start of the load.
    let repository = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut ruby = Command::new("ruby")
        .arg("-I")
        .arg(repository.join("lib"))
        .arg("-e")
        .arg(ruby_client_script(ruby_entries))
        .env("FLEET_URL", &url)
        .env("FLEET_KEY", "fleet-ruby")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ruby starts");
    let ruby_pid = ruby.id();
    let mut ruby_stdin = ruby.stdin.take().expect("ruby stdin");
    let mut ruby_stdout = BufReader::new(ruby.stdout.take().expect("ruby stdout"));
    let ruby_lines = tokio::task::spawn_blocking(move || {
        let mut ready = String::new();
        let _ = ruby_stdout.read_line(&mut ready);
        let mut rest = String::new();
        let _ = ruby_stdout.read_to_string(&mut rest);
        (ready, rest)
    });

    let acked_batches = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for (client, key) in keys.iter().take(HTTP_CLIENTS).enumerate() {
        let http = http.clone();
        let url = url.clone();
        let key = key.clone();
        let acked_batches = Arc::clone(&acked_batches);
        clients.push(tokio::spawn(async move {
            let mut accepted = 0;
            for batch in 0..batches {
                let body = entries(client, batch, batch_size);
                let id = format!("fleet-{client}-{batch}");
                accepted += deliver(&http, &url, &key, &body, &id).await;
                acked_batches.fetch_add(1, Ordering::Relaxed);
            }
            accepted
        }));
    }
    // Mid-load: kill -9 one instance once a third of the batches are acknowledged.
    let total_batches = HTTP_CLIENTS * batches;
    let started = Instant::now();
    while acked_batches.load(Ordering::Relaxed) < total_batches / 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "load never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Kill the instance the gem's keep-alive connection is on (HAProxy's "show sess"),
    // so its next batches must go elsewhere (whether the gem counts a retry depends on
    // whether the dead connection fails a request or is noticed before one: reported).
    let gem_instance = wait_for_gem_connection(&fleet, ruby_pid).await;
    assert!(
        gem_instance.is_some(),
        "HAProxy never showed the gem's connection"
    );
    let killed = gem_instance.unwrap_or(2);
    fleet.kill_instance(killed);
    let killed_at = acked_batches.load(Ordering::Relaxed);
    ruby_stdin
        .write_all(b"go\n")
        .expect("tell the gem to go on");
    drop(ruby_stdin);

    let mut acknowledged = 0;
    for client in clients {
        acknowledged += client.await.expect("client task");
    }
    let (ready, rest) = ruby_lines.await.expect("ruby stdout");
    let ruby = tokio::task::spawn_blocking(move || ruby.wait_with_output())
        .await
        .unwrap()
        .expect("ruby output");
    let stderr = String::from_utf8_lossy(&ruby.stderr);
    assert!(ruby.status.success(), "ruby client failed: {stderr}");
    assert_eq!(ready.trim(), "ready", "{stderr}");
    let stats: Value = serde_json::from_str(
        rest.lines()
            .find(|line| line.starts_with('{'))
            .expect("stats line"),
    )
    .expect("stats JSON");

    let primary = fleet.primary().await;
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT message) FROM logs WHERE service = 'fleet-test'",
    )
    .fetch_one(&primary)
    .await
    .unwrap();
    assert_eq!(rows as u64, acknowledged, "rows == acknowledged entries");
    assert_eq!(distinct, rows, "no entry stored twice");
    assert_eq!(acknowledged, (total_batches * batch_size) as u64);

    let (ruby_rows, ruby_distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT message) FROM logs WHERE service = 'fleet-ruby'",
    )
    .fetch_one(&primary)
    .await
    .unwrap();
    assert_eq!(
        stats["sent"].as_i64(),
        Some(ruby_entries as i64),
        "gem stats: {stats}"
    );
    assert_eq!(
        ruby_rows, ruby_entries as i64,
        "every gem entry stored; stats {stats}"
    );
    assert_eq!(ruby_distinct, ruby_rows, "no gem entry stored twice");
    eprintln!(
        "fleet ingest: {acknowledged} HTTP entries + {ruby_rows} gem entries stored once; \
         instance {killed} killed after {killed_at}/{total_batches} batches (the gem's: {}); \
         gem retried {} times",
        gem_instance.is_some(),
        stats["retried"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_another_instance_and_a_read_from_the_replica() {
    let fleet = Fleet::start("retry", &["fleet-retry"], &[]);
    let http = reqwest::Client::new();
    let marker = format!("cross-instance-{}", std::process::id());
    let body = json!({"logs": [{
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "service": "fleet-retry",
        "level": "WARN",
        "message": marker,
    }]});
    // The first attempt on instance 1; the "retry" lands on instance 3.
    let mut answers = Vec::new();
    for instance in [1, 3] {
        let response = http
            .post(format!(
                "{}/api/v1/logs/batch",
                fleet.instance_url(instance)
            ))
            .header("X-API-Key", "fleet-retry")
            .header("Idempotency-Key", "one-batch-two-instances")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let replayed = response.headers().get("idempotent-replayed").is_some();
        answers.push((replayed, response.json::<Value>().await.unwrap()));
    }
    assert!(
        !answers[0].0 && answers[1].0,
        "the second instance replays: {answers:?}"
    );
    assert_eq!(answers[0].1, answers[1].1);
    let primary = fleet.primary().await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM logs WHERE message = $1")
        .bind(&marker)
        .fetch_one(&primary)
        .await
        .unwrap();
    assert_eq!(stored, 1, "stored once across instances");

    // The query API reads from the replica: found there within the replica's lag.
    let (_, found_after) = AdminReader::new(&http, fleet.url(), ADMIN_KEY)
        .poll(
            "/api/v1/logs",
            &[("q", marker.as_str()), ("since", "1h")],
            Duration::from_secs(10),
            |page| page["logs"].as_array().is_some_and(|logs| !logs.is_empty()),
        )
        .await
        .unwrap_or_else(|page| panic!("not visible through the replica within 10 s: {page}"));
    let replica = fleet.replica().await;
    let read_sessions_on_replica: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'log-ingestion-read'",
    )
    .fetch_one(&replica)
    .await
    .unwrap();
    let read_sessions_on_primary: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'log-ingestion-read'",
    )
    .fetch_one(&primary)
    .await
    .unwrap();
    assert!(read_sessions_on_replica >= 1, "reads run on the replica");
    assert_eq!(
        read_sessions_on_primary, 0,
        "no read session on the primary"
    );
    let (in_recovery,): (bool,) = sqlx::query_as("SELECT pg_is_in_recovery()")
        .fetch_one(&replica)
        .await
        .unwrap();
    assert!(in_recovery, "the read database is a standby");
    eprintln!("fleet replica: an entry committed on the primary was found through the replica after {found_after:?}");

    // The live tail on the replica misses nothing. The primary WAL-logs its sequence up
    // to 32 ids ahead, so a tail that took the replica's sequence as the table's head
    // started past the next entries' ids and never showed them.
    let tail = http
        .get(format!("{}/api/v1/logs/tail", fleet.instance_url(1)))
        .query(&[("service", "fleet-tail")])
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    let mut tail = SseText::new(tail);
    assert!(tail.wait_for("event: ready", 1).await, "the tail starts");
    let tail_entries: Vec<Value> = (0..5)
        .map(|i| {
            json!({"timestamp": chrono::Utc::now().to_rfc3339(), "service": "fleet-tail",
                   "level": "INFO", "message": format!("tailed-{i}")})
        })
        .collect();
    let response = http
        .post(format!("{}/api/v1/logs/batch", fleet.url()))
        .header("X-API-Key", "fleet-retry")
        .json(&json!({ "logs": tail_entries }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        tail.wait_for("event: log", 5).await,
        "every new entry reaches a tail reading the replica: {}",
        tail.text
    );

    // Instance identity: /health names the instance that answered; /metrics too.
    let health: Value = http
        .get(format!("{}/health", fleet.instance_url(2)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["instance"], "fleet-2");
    assert_eq!(
        metrics::scrape_sample(
            &http,
            &fleet.instance_url(3),
            "log_ingestion_instance_info{instance=\"fleet-3\"}"
        )
        .await,
        Some(1.0)
    );
    let log = std::fs::read_to_string(fleet.dir.join("instance-1.log")).unwrap();
    assert!(
        log.lines()
            .filter(|line| !line.is_empty())
            .all(|line| line.starts_with("instance=fleet-1 ")),
        "every log line names the instance"
    );
}

/// A Server-Sent Events stream read as text, for counting events.
struct SseText {
    response: reqwest::Response,
    text: String,
}

impl SseText {
    fn new(response: reqwest::Response) -> Self {
        SseText {
            response,
            text: String::new(),
        }
    }

    /// Reads until `needle` appeared `count` times in all, or 10 s passed.
    async fn wait_for(&mut self, needle: &str, count: usize) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.text.matches(needle).count() < count {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return false,
            }
        }
        true
    }
}
