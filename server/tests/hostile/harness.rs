//! The hostile-client suite's harness: the real server binary on a fresh database with
//! the suite's short timeouts, a well-behaved client that keeps ingesting during an
//! attack (latencies and acknowledged entries recorded), raw-socket helpers for attacks
//! reqwest cannot send, and the checks every attack ends with.
//!
//! Bounds every test asserts (loose on purpose: a debug binary on a shared 2-core
//! machine), unless a test states its own:
//! - the well-behaved client's p99 per acknowledged batch (retries after 503 included)
//!   stays under [`GOOD_CLIENT_P99`];
//! - every batch it started was acknowledged within [`GOOD_BATCH_DEADLINE`];
//! - every acknowledged entry is in the database;
//! - the server's peak RSS (`VmHWM`) stays under [`PEAK_RSS_MIB`];
//! - the process is alive.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use log_ingestion_test_support::{create_database, TestDatabase};
use log_ingestion_test_support::{metrics, Latencies, ServerProcess};

pub const API_KEY: &str = "hostile-suite-key";
pub const ADMIN_KEY: &str = "hostile-suite-admin-key";

pub const GOOD_CLIENT_P99: Duration = Duration::from_secs(3);
pub const GOOD_BATCH_DEADLINE: Duration = Duration::from_secs(20);
pub const PEAK_RSS_MIB: u64 = 160;

/// The suite's timeouts, short so attacks end quickly (the defaults are in docs/server.md).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(1);
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the bigger variants run (`LOG_INGESTION_LONG_TESTS=1`).
pub use log_ingestion_test_support::{entry, long_tests};

/// A server under attack and the database it writes to.
pub struct Target {
    pub server: ServerProcess,
    pub pool: PgPool,
    pub http: reqwest::Client,
    /// Last, so the server process is gone before its database is dropped.
    _database: TestDatabase,
}

impl Target {
    /// The real binary on a fresh database with the suite's settings, then `extra`.
    pub async fn start(extra: &[(&str, &str)]) -> Target {
        let (database, url) = create_database().await;
        let mut env: Vec<(&str, String)> = vec![
            ("LOG_INGESTION_ADMIN_API_KEYS", ADMIN_KEY.to_owned()),
            ("LOG_INGESTION_HEADER_READ_TIMEOUT", millis(HEADER_TIMEOUT)),
            ("LOG_INGESTION_BODY_IDLE_TIMEOUT", millis(BODY_IDLE_TIMEOUT)),
            ("LOG_INGESTION_BODY_READ_TIMEOUT", millis(BODY_READ_TIMEOUT)),
            ("LOG_INGESTION_INFLIGHT_WAIT", "200ms".to_owned()),
        ];
        env.extend(
            extra
                .iter()
                .map(|(name, value)| (*name, (*value).to_owned())),
        );
        let server = ServerProcess::start_with(&url, API_KEY, &env);
        let pool = PgPool::connect(&url).await.unwrap();
        Target {
            server,
            pool,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _database: database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.address)
    }

    /// A POST to an ingest route with the suite's key.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).header("X-API-Key", API_KEY)
    }

    /// A GET on the read side with the admin key.
    pub fn read(&self, path_and_query: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.url(path_and_query))
            .header("X-API-Key", ADMIN_KEY)
    }

    /// The value of the sample `name` (with its labels, e.g. `x{reason="y"}`) on
    /// `/metrics`, 0 when absent.
    pub async fn metric(&self, sample: &str) -> u64 {
        let text = metrics::scrape(&self.http, &self.server.address)
            .await
            .expect("/metrics answers");
        metrics::sample(&text, sample).map_or(0, |value| value as u64)
    }

    /// A well-behaved client ingesting into this server until stopped.
    pub fn good_client(&self) -> GoodClient {
        GoodClient::start(self.server.address.clone(), false)
    }

    /// A well-behaved client that opens a fresh connection for every request (a new
    /// process, a client without keep-alive), so it needs the server to accept it anew.
    pub fn good_client_on_fresh_connections(&self) -> GoodClient {
        GoodClient::start(self.server.address.clone(), true)
    }

    /// The checks every attack ends with (see the module comment), against `record`
    /// and `rss_mib` (use [`PEAK_RSS_MIB`] unless the test states another bound).
    pub async fn assert_survived(&mut self, record: &Record, rss_mib: u64) {
        assert!(
            self.server.is_alive(),
            "the server died: {}",
            self.server.log_text()
        );
        assert!(
            record.acknowledged.len() >= 10,
            "the good client got nothing acknowledged: {record:?}"
        );
        assert_eq!(
            record.abandoned, 0,
            "the good client gave up on {} batches (each not acknowledged within {GOOD_BATCH_DEADLINE:?})",
            record.abandoned
        );
        assert!(
            record.unexpected.is_empty(),
            "the good client got unexpected answers: {:?}",
            record.unexpected
        );
        let p99 = record.p99();
        assert!(
            p99 <= GOOD_CLIENT_P99,
            "the good client's p99 was {p99:?} (bound {GOOD_CLIENT_P99:?}) over {} batches",
            record.latencies.len()
        );
        let stored: std::collections::HashSet<String> =
            sqlx::query_scalar("SELECT message FROM logs WHERE message LIKE 'good-%'")
                .fetch_all(&self.pool)
                .await
                .unwrap()
                .into_iter()
                .collect();
        let lost = record
            .acknowledged
            .iter()
            .filter(|message| !stored.contains(*message))
            .count();
        assert_eq!(lost, 0, "{lost} acknowledged entries are not stored");
        let peak = self.server.peak_rss_kib() / 1024;
        assert!(
            peak <= rss_mib,
            "the server's peak RSS was {peak} MiB (bound {rss_mib} MiB)"
        );
        eprintln!(
            "good client: {} batches, p99 {p99:?}; server peak RSS {peak} MiB",
            record.latencies.len()
        );
    }
}

fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// What the well-behaved client saw.
#[derive(Debug, Default, Clone)]
pub struct Record {
    /// Per acknowledged batch, from its first attempt to its 2xx.
    pub latencies: Vec<Duration>,
    pub acknowledged: Vec<String>,
    /// Batches not acknowledged within [`GOOD_BATCH_DEADLINE`].
    pub abandoned: usize,
    /// Answers a well-behaved client must never get (4xx, 5xx other than 503).
    pub unexpected: Vec<String>,
    /// 503s and connection errors it retried.
    pub retried: usize,
}

impl Record {
    pub fn p99(&self) -> Duration {
        self.latencies
            .iter()
            .collect::<Latencies>()
            .percentile(99.0)
            .unwrap_or(Duration::MAX)
    }
}

/// Sends batches of 10 entries, one at a time, as the gem does: a 503 or a failed
/// connection is retried after a short pause, any other failure is recorded.
pub struct GoodClient {
    stop: Arc<AtomicBool>,
    batches: Arc<AtomicUsize>,
    record: Arc<Mutex<Record>>,
    task: tokio::task::JoinHandle<()>,
}

impl GoodClient {
    fn start(address: String, fresh_connections: bool) -> GoodClient {
        let stop = Arc::new(AtomicBool::new(false));
        let batches = Arc::new(AtomicUsize::new(0));
        let record = Arc::new(Mutex::new(Record::default()));
        let task = tokio::spawn(run_good_client(
            address,
            fresh_connections,
            Arc::clone(&stop),
            Arc::clone(&batches),
            Arc::clone(&record),
        ));
        GoodClient {
            stop,
            batches,
            record,
            task,
        }
    }

    /// Waits (at most a minute) until `count` more batches have been acknowledged.
    pub async fn wait_for_batches(&self, count: usize) {
        let target = self.batches.load(Ordering::SeqCst) + count;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.batches.load(Ordering::SeqCst) < target {
            assert!(
                Instant::now() < deadline,
                "the good client did not get {count} batches acknowledged within a minute: {:?}",
                self.record.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops after the batch in progress and returns what it saw.
    pub async fn stop(self) -> Record {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let record = self.record.lock().unwrap().clone();
        record
    }
}

async fn run_good_client(
    address: String,
    fresh_connections: bool,
    stop: Arc<AtomicBool>,
    batches: Arc<AtomicUsize>,
    record: Arc<Mutex<Record>>,
) {
    let mut http = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if fresh_connections {
        http = http.pool_max_idle_per_host(0);
    }
    let http = http.build().unwrap();
    let url = format!("{address}/api/v1/logs/batch");
    let mut number = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let messages: Vec<String> = (0..10).map(|i| format!("good-{number}-{i}")).collect();
        number += 1;
        let body = json!({"logs": messages.iter().map(|m| entry(m)).collect::<Vec<_>>()});
        let started = Instant::now();
        loop {
            if started.elapsed() > GOOD_BATCH_DEADLINE {
                record.lock().unwrap().abandoned += 1;
                break;
            }
            let answer = http
                .post(&url)
                .header("X-API-Key", API_KEY)
                .json(&body)
                .send()
                .await;
            match answer {
                Ok(response) if response.status().is_success() => {
                    let mut record = record.lock().unwrap();
                    record.latencies.push(started.elapsed());
                    record.acknowledged.extend(messages);
                    batches.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Ok(response) if response.status() == 503 => {
                    record.lock().unwrap().retried += 1;
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    record
                        .lock()
                        .unwrap()
                        .unexpected
                        .push(format!("{status}: {text}"));
                    break;
                }
                Err(_) => {
                    record.lock().unwrap().retried += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A gzip body of `parts` in order, each `(bytes, times)` repeated: every repeat is one
/// more gzip member (decoders read them as one stream), so a body that expands to many
/// MiB costs one small compression here, even in a debug build.
pub fn gzip_parts(parts: &[(&[u8], usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (bytes, times) in parts {
        let member = gzip(bytes);
        for _ in 0..*times {
            out.extend_from_slice(&member);
        }
    }
    out
}

/// What a raw connection got back.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer with this status.
    Status(u16),
    /// The server closed (or reset) the connection without an answer.
    Closed,
    /// Nothing within the wait: the connection hangs.
    Hung,
}

impl Outcome {
    /// A clear refusal: a 4xx/503 answer or a closed connection, never a hang.
    pub fn is_clear_refusal(&self) -> bool {
        match self {
            Outcome::Status(status) => (400..500).contains(status) || *status == 503,
            Outcome::Closed => true,
            Outcome::Hung => false,
        }
    }
}

/// Opens a TCP connection to the server.
pub async fn connect(target: &Target) -> TcpStream {
    TcpStream::connect(&target.server.socket_address)
        .await
        .unwrap()
}

/// Sends the request head of a POST to `path` with the suite's key and `headers`
/// (`Name: value` lines), and no body.
pub async fn send_post_head(stream: &mut TcpStream, path: &str, headers: &[String]) {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {API_KEY}\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
}

/// Waits up to `wait` for the server's answer on `stream` (or its closing it).
pub async fn outcome(stream: &mut TcpStream, wait: Duration) -> Outcome {
    let mut buffer = vec![0u8; 4096];
    match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
        Err(_) => Outcome::Hung,
        Ok(Err(_)) | Ok(Ok(0)) => Outcome::Closed,
        Ok(Ok(read)) => {
            let text = String::from_utf8_lossy(&buffer[..read]);
            text.split_whitespace()
                .nth(1)
                .and_then(|status| status.parse().ok())
                .map_or(Outcome::Closed, Outcome::Status)
        }
    }
}
