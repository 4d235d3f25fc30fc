//! A real HTTP receiver for alert notifications: it records every request (headers and
//! exact body bytes) and answers as told: 200, 500, a hostile answer (a huge body, a
//! redirect elsewhere), late, or not at all (down: its port refuses connections until it
//! comes back on the same port). Every answer closes the connection, so "down" is never
//! masked by a kept-alive one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    ServerError,
    /// 500 with a body of this many bytes.
    HugeError(usize),
    /// 307 to this URL.
    RedirectTo(String),
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    /// What the receiver answered.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_lowercase()).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Shared {
    answer: Mutex<Option<Answer>>,
    received: Mutex<Vec<Received>>,
    delay: Mutex<Duration>,
}

pub struct RecordingReceiver {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl RecordingReceiver {
    /// Up, answering `answer`.
    pub async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared::default());
        *shared.answer.lock().unwrap() = Some(answer);
        let mut receiver = RecordingReceiver {
            address,
            shared,
            server: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(Arc::clone(&self.shared));
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// The URL to send to (any path under it is received alike).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn answer(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = Some(answer);
    }

    /// Waits this long before answering each request.
    pub fn delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// Stops listening: connections to its port are refused.
    pub async fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let listener = TcpListener::bind(self.address)
            .await
            .expect("the receiver's port is free again");
        self.serve(listener);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The requests it answered 200.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|request| request.answered == 200)
            .collect()
    }
}

impl Drop for RecordingReceiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let delay = *shared.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let answer = shared.answer.lock().unwrap().clone().unwrap_or(Answer::Ok);
    let (status, location, text) = match answer {
        Answer::Ok => (StatusCode::OK, None, "ok".to_owned()),
        Answer::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "receiver says no".to_owned(),
        ),
        Answer::HugeError(bytes) => (StatusCode::INTERNAL_SERVER_ERROR, None, "x".repeat(bytes)),
        Answer::RedirectTo(url) => (StatusCode::TEMPORARY_REDIRECT, Some(url), String::new()),
    };
    shared.received.lock().unwrap().push(Received {
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body,
        answered: status.as_u16(),
    });
    let mut response = (status, [("connection", "close")], text).into_response();
    if let Some(location) = location.and_then(|url| url.parse().ok()) {
        response.headers_mut().insert("location", location);
    }
    response
}
