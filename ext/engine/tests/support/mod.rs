//! A fault-injecting loopback ingestion server for the engine's tests.
//!
//! Answers each request with the next scripted `Reply` (then `Reply::Accept` once the
//! script is used up) and records what it received: path, headers, whether the body was
//! gzipped, the decoded JSON body, and when it arrived. It never validates entries the
//! way the real server does; it only plays the HTTP behaviours the engine must survive.
//! Also the helpers every test file shares (config, entries, starting an engine, polling).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use log_ingestion_engine::{
    Cancel, DropPolicy, Engine, EngineConfig, Enqueued, ErrorKind, ErrorReport,
};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How the server answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with `{"accepted": n, "rejected": 0, "errors": []}`.
    Accept,
    /// 200 with per-entry errors for these indices of the batch.
    RejectEntries(Vec<usize>),
    /// 429, with this `Retry-After` value when given.
    TooManyRequests(Option<String>),
    /// 503 (the server is unavailable), with this `Retry-After` value when given.
    Unavailable(Option<String>),
    /// This status with an error body.
    Status(u16),
    /// Waits this long, then answers like `Accept`.
    SlowAccept(Duration),
    /// Closes the connection without answering (an orderly close: FIN).
    Close,
    /// Reads the request, then aborts the connection: `SO_LINGER` 0, so the client gets
    /// a TCP RST (`ECONNRESET`) instead of an answer.
    Reset,
    /// 307 to this URL.
    Redirect(String),
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The client's address: the same port means the same (kept-alive) connection.
    pub peer: SocketAddr,
    pub path: String,
    pub headers: HeaderMap,
    pub gzipped: bool,
    pub raw_len: usize,
    pub body: Value,
    pub at: Instant,
    pub reply: Reply,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The entries of the body: `logs` of a batch, or the one `log`.
    pub fn entries(&self) -> Vec<Value> {
        if let Some(logs) = self.body.get("logs").and_then(Value::as_array) {
            logs.clone()
        } else if let Some(log) = self.body.get("log") {
            vec![log.clone()]
        } else {
            Vec::new()
        }
    }

    pub fn messages(&self) -> Vec<String> {
        self.entries()
            .iter()
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Whether the server took (some of) this request's entries.
    pub fn accepted(&self) -> bool {
        matches!(
            self.reply,
            Reply::Accept | Reply::RejectEntries(_) | Reply::SlowAccept(_)
        )
    }
}

#[derive(Default)]
struct ServerState {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

/// The running server; stops when dropped.
pub struct FaultServer {
    pub url: String,
    state: Arc<ServerState>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultServer {
    /// Starts a server that answers `script` in order, then accepts everything.
    pub fn start(script: Vec<Reply>) -> FaultServer {
        let state = Arc::new(ServerState {
            script: Mutex::new(script.into()),
            received: Mutex::new(Vec::new()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback({
            let state = Arc::clone(&state);
            move |ConnectInfo(peer): ConnectInfo<Peer>,
                  uri: Uri,
                  headers: HeaderMap,
                  body: Bytes| {
                let state = Arc::clone(&state);
                async move { answer(state, peer, uri, headers, body).await }
            }
        });
        runtime.spawn(async move {
            let service = app.into_make_service_with_connect_info::<Peer>();
            let _ = axum::serve(ResettableListener(listener), service).await;
        });
        FaultServer {
            url,
            state,
            runtime: Some(runtime),
        }
    }

    /// Appends replies to the script.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Messages of accepted requests, in arrival order (entries the server rejected excluded).
    pub fn accepted_messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        for request in self.received().iter().filter(|r| r.accepted()) {
            let rejected = match &request.reply {
                Reply::RejectEntries(indices) => indices.clone(),
                _ => Vec::new(),
            };
            for (i, message) in request.messages().into_iter().enumerate() {
                if !rejected.contains(&i) {
                    messages.push(message);
                }
            }
        }
        messages
    }

    /// Waits (polling with a deadline) until at least `n` requests arrived; returns them.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Received> {
        assert!(
            wait_until(timeout, || self.received().len() >= n),
            "expected {n} requests within {timeout:?}, got {}",
            self.received().len()
        );
        self.received()
    }

    /// Waits until at least `n` accepted messages arrived; returns them.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<String> {
        assert!(
            wait_until(timeout, || self.accepted_messages().len() >= n),
            "expected {n} messages within {timeout:?}, got {}",
            self.accepted_messages().len()
        );
        self.accepted_messages()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The listener behind the server: plain TCP, but every connection can be told to end
/// with a reset instead of an orderly close.
struct ResettableListener(TcpListener);

impl Listener for ResettableListener {
    type Io = ResettableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        let stream = ResettableStream {
            stream,
            reset_on_drop: Arc::new(AtomicBool::new(false)),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection that, once `reset_on_drop` is set, sets `SO_LINGER` to 0 as it is
/// dropped: the kernel then answers the close with RST instead of FIN.
struct ResettableStream {
    stream: TcpStream,
    reset_on_drop: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        // No panic here (this may run while unwinding); a failure shows up in the test
        // as an orderly close instead of a reset.
        if self.reset_on_drop.load(Ordering::SeqCst) {
            if let Err(error) = self.stream.set_zero_linger() {
                eprintln!("could not set SO_LINGER 0: {error}");
            }
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// What a handler knows about its connection: the client's address and the switch
/// that turns the connection's close into a reset.
#[derive(Clone)]
struct Peer {
    addr: SocketAddr,
    reset_on_drop: Arc<AtomicBool>,
}

impl Connected<IncomingStream<'_, ResettableListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, ResettableListener>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            reset_on_drop: Arc::clone(&stream.io().reset_on_drop),
        }
    }
}

/// A `status` answer with an error body and, when given, a `Retry-After` header.
fn refusal(status: StatusCode, error: &str, retry_after: Option<String>) -> Response {
    let mut response = (status, axum::Json(json!({ "error": error }))).into_response();
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", value.parse().unwrap());
    }
    response
}

async fn answer(
    state: Arc<ServerState>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Accept);
    let gzipped = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let decoded = if gzipped {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body.to_vec()
    };
    let json: Value = serde_json::from_slice(&decoded).unwrap_or(Value::Null);
    let count = json
        .get("logs")
        .and_then(Value::as_array)
        .map_or(1, Vec::len);
    state.received.lock().unwrap().push(Received {
        peer: peer.addr,
        path: uri.path().to_owned(),
        headers,
        gzipped,
        raw_len: body.len(),
        body: json,
        at: Instant::now(),
        reply: reply.clone(),
    });
    match reply {
        Reply::Accept => accept(count, &[]),
        Reply::RejectEntries(indices) => accept(count, &indices),
        Reply::TooManyRequests(retry_after) => {
            refusal(StatusCode::TOO_MANY_REQUESTS, "rate limited", retry_after)
        }
        Reply::Unavailable(retry_after) => {
            refusal(StatusCode::SERVICE_UNAVAILABLE, "unavailable", retry_after)
        }
        Reply::Status(status) => (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({"error": format!("scripted {status}")})),
        )
            .into_response(),
        Reply::SlowAccept(delay) => {
            tokio::time::sleep(delay).await;
            accept(count, &[])
        }
        Reply::Redirect(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", location)],
            "moved",
        )
            .into_response(),
        // Unwinding out of the handler ends the connection's task, which drops the socket
        // without an answer (the request was read in full). `resume_unwind` skips the panic
        // hook, so nothing is printed.
        Reply::Close => std::panic::resume_unwind(Box::new("scripted close")),
        Reply::Reset => {
            peer.reset_on_drop.store(true, Ordering::SeqCst);
            std::panic::resume_unwind(Box::new("scripted reset"))
        }
    }
}

fn accept(count: usize, rejected: &[usize]) -> Response {
    let errors: Vec<Value> = rejected
        .iter()
        .map(|i| json!({"index": i, "error": "scripted rejection"}))
        .collect();
    axum::Json(json!({
        "accepted": count - rejected.len(),
        "rejected": rejected.len(),
        "errors": errors,
    }))
    .into_response()
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Starts an engine, failing the test if it cannot.
/// The next failure report within `timeout`, past an outage's own two reports
/// (`Outage`, `Recovered`), which tests of failures are not about (tests/outage.rs is).
pub fn next_failure(engine: &Engine, timeout: Duration) -> Option<ErrorReport> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let report = engine.next_error(left, &Cancel::new())?;
        if !matches!(report.kind, ErrorKind::Outage | ErrorKind::Recovered) {
            return Some(report);
        }
    }
}

pub fn start(config: EngineConfig) -> Engine {
    Engine::start(config).unwrap()
}

/// Waits until the engine reports a 429 pause in its stats.
pub fn wait_for_rate_limit(engine: &Engine) {
    assert!(
        wait_until(SOON, || engine.stats().rate_limited_until.is_some()),
        "no 429 pause within {SOON:?}"
    );
}

/// Starts a server whose first answer is a 429 with this `Retry-After` value, and an
/// engine (with `test_config`) that sends to it.
pub fn start_behind_429(retry_after: impl Into<String>) -> (FaultServer, Engine) {
    let server = FaultServer::start(vec![Reply::TooManyRequests(Some(retry_after.into()))]);
    let engine = start(test_config(&server.url));
    (server, engine)
}

/// Enqueues `message`, starts its delivery without waiting for it, and waits until a
/// 429 paused the engine; returns what `enqueue` answered.
pub fn enqueue_until_paused(engine: &Engine, message: &str) -> Enqueued {
    let enqueued = engine.enqueue(entry(message));
    engine.flush(Duration::ZERO, &Cancel::new());
    wait_for_rate_limit(engine);
    enqueued
}

/// The engine's settings for tests, every field spelled out (`EngineConfig` has no
/// defaults: the gem's are `LogIngestion::Configuration::DEFAULTS`): tiny retry delays,
/// no interval sends unless a test asks. Tests change fields with `..test_config(url)`.
pub fn test_config(url: &str) -> EngineConfig {
    EngineConfig {
        api_url: url.to_owned(),
        api_key: "test-key".to_owned(),
        batch_size: 100,
        batch_interval: Duration::from_secs(600),
        max_batch_bytes: 1024 * 1024,
        max_retries: 3,
        max_retry_elapsed: Duration::from_secs(300),
        retry_delay: Duration::from_millis(1),
        max_retry_delay: Duration::from_millis(5),
        max_queue_bytes: 16 * 1024 * 1024,
        drop_policy: DropPolicy::Newest,
        gzip: false,
        open_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        enable_batching: true,
        user_agent: "log_ingestion_engine-tests".to_owned(),
        spool_dir: None,
        max_spool_bytes: 0,
    }
}

/// An entry whose message is `message`.
pub fn entry(message: impl Into<String>) -> log_ingestion_engine::Entry {
    let mut metadata = serde_json::Map::new();
    metadata.insert("request_id".into(), json!("abc-123"));
    log_ingestion_engine::Entry::now(
        "test-service",
        log_ingestion_engine::Level::Info,
        message,
        metadata,
    )
}

/// A generous deadline for conditions that should hold quickly.
pub const SOON: Duration = Duration::from_secs(10);

/// Now plus `secs`, as an HTTP date.
pub fn http_date_in(secs: u64) -> String {
    httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(secs))
}
