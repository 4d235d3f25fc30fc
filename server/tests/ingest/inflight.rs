//! The server-wide budget on request bytes in flight: past it, requests get 503 with
//! `Retry-After` instead of queueing, and only what was acknowledged is stored.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use log_ingestion_test_support::{
    entry, json_with_status, spawn_app_with, wait_until, TestApp, API_KEY,
};

const BUDGET_BYTES: usize = 64 * 1024;

/// A `{"logs": [...]}` body of exactly `size` bytes (padded with trailing whitespace).
fn batch_body(tag: &str, entries: usize, size: usize) -> String {
    let logs: Vec<Value> = (0..entries).map(|i| entry(&format!("{tag}-{i}"))).collect();
    let mut body = json!({ "logs": logs }).to_string();
    assert!(
        body.len() <= size,
        "{} entries do not fit {size} bytes",
        entries
    );
    body.push_str(&" ".repeat(size - body.len()));
    body
}

/// A batch request whose body is only half sent: it holds its share of the budget
/// until `finish` sends the rest.
struct StalledRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl StalledRequest {
    async fn start(app: &TestApp, body: String) -> Self {
        let address = app.address.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!(
            "POST /api/v1/logs/batch HTTP/1.1\r\nHost: {address}\r\nX-API-Key: {API_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut bytes = body.into_bytes();
        let rest = bytes.split_off(bytes.len() / 2);
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        StalledRequest { stream, rest }
    }

    /// Sends the rest of the body; returns the status line and the answer's body.
    async fn finish(mut self) -> (String, Value) {
        self.stream.write_all(&self.rest).await.unwrap();
        let mut answer = String::new();
        self.stream.read_to_string(&mut answer).await.unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.lines().next().unwrap_or_default().to_owned();
        (status, serde_json::from_str(body).unwrap())
    }
}

/// Reads one HTTP/1.1 answer framed by `Content-Length`: its status line and body.
async fn read_answer(stream: &mut TcpStream) -> (String, String) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before an answer");
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("the answer has a Content-Length");
    while bytes.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed inside an answer");
        bytes.extend_from_slice(&chunk[..n]);
    }
    let status = head.lines().next().unwrap_or_default().to_owned();
    let body = String::from_utf8_lossy(&bytes[head_end..head_end + length]).into_owned();
    (status, body)
}

/// The app with a 64 KiB budget, 48 KiB of it held by a stalled request.
async fn app_with_most_of_the_budget_held() -> (TestApp, StalledRequest) {
    let app = spawn_app_with(|settings| {
        settings.max_inflight_bytes = BUDGET_BYTES;
        settings.inflight_wait = Duration::from_millis(50);
    })
    .await;
    let held = 48 * 1024;
    let stalled = StalledRequest::start(&app, batch_body("held", 10, held)).await;
    let admitted = wait_until(Duration::from_secs(10), || async {
        app.metric("log_ingestion_inflight_bytes").await >= held as u64
    })
    .await;
    assert!(admitted, "the stalled request never reserved its bytes");
    (app, stalled)
}

#[tokio::test]
async fn requests_past_the_inflight_budget_get_503_with_retry_after() {
    let (app, stalled) = app_with_most_of_the_budget_held().await;

    let refused = join_all((0..4).map(|n| {
        app.post_body(
            "/api/v1/logs/batch",
            "application/json",
            batch_body(&format!("refused{n}"), 10, 20 * 1024),
        )
    }))
    .await;
    for response in refused {
        assert_eq!(response.headers()["retry-after"], "1");
        let body = json_with_status(response, 503).await;
        assert_eq!(body["error"], "Server busy");
        assert!(body["details"].is_string(), "{body}");
    }
    assert_eq!(app.metric("log_ingestion_server_busy_total").await, 4);

    let (status, body) = stalled.finish().await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body["accepted"], 10);
    let later = app
        .post_body(
            "/api/v1/logs/batch",
            "application/json",
            batch_body("later", 10, 20 * 1024),
        )
        .await;
    assert_eq!(json_with_status(later, 200).await["accepted"], 10);
    assert_eq!(app.row_count().await, 20);
    assert!(app
        .stored_messages()
        .await
        .iter()
        .all(|message| !message.starts_with("refused")));
    assert_eq!(app.metric("log_ingestion_inflight_bytes").await, 0);
}

#[tokio::test]
async fn concurrent_large_batches_under_a_tiny_budget_store_exactly_what_was_acknowledged() {
    let app = spawn_app_with(|settings| {
        settings.max_inflight_bytes = BUDGET_BYTES;
        settings.inflight_wait = Duration::ZERO;
    })
    .await;
    let responses = join_all((0..16).map(|n| {
        app.post_body(
            "/api/v1/logs/batch",
            "application/json",
            batch_body(&format!("c{n}"), 50, 24 * 1024),
        )
    }))
    .await;
    let mut acknowledged = 0;
    let mut busy = 0;
    for response in responses {
        match response.status().as_u16() {
            200 => {
                let body: Value = response.json().await.unwrap();
                acknowledged += body["accepted"].as_i64().unwrap();
            }
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(app.row_count().await, acknowledged);
    assert_eq!(app.metric("log_ingestion_server_busy_total").await, busy);
}

#[tokio::test]
async fn a_refused_request_leaves_its_connection_usable() {
    let (app, _stalled) = app_with_most_of_the_budget_held().await;
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let body = batch_body("refused", 10, 512 * 1024);
    let request = format!(
        "POST /api/v1/logs/batch HTTP/1.1\r\nHost: {address}\r\nX-API-Key: {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, answer) = read_answer(&mut stream).await;
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    assert!(answer.contains("Server busy"), "{answer}");

    let probe = format!("GET /livez HTTP/1.1\r\nHost: {address}\r\n\r\n");
    stream.write_all(probe.as_bytes()).await.unwrap();
    let (status, _) = read_answer(&mut stream).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}
