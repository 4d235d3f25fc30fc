//! Reading a server as an admin: the read API's requests with an admin key, one JSON
//! page, and polling a page until it shows what a test waits for (a row that reaches
//! a replica, a job the server ran) instead of sleeping.

use std::time::{Duration, Instant};

use std::fmt::Debug;

use serde::Serialize;
use serde_json::Value;

/// How often [`AdminReader::poll`] asks again.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// The read API of the server at `base` (`http://host:port`), with admin key `key`.
pub struct AdminReader<'a> {
    http: &'a reqwest::Client,
    base: String,
    key: &'a str,
}

impl<'a> AdminReader<'a> {
    pub fn new(http: &'a reqwest::Client, base: impl Into<String>, key: &'a str) -> Self {
        AdminReader {
            http,
            base: base.into(),
            key,
        }
    }

    /// `GET path` (query string included or not) with the admin key, not yet sent.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .header("X-API-Key", self.key)
    }

    /// `method path` with the admin key and `body` as JSON: the status and the JSON
    /// answer (`null` when the answer is not JSON).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-API-Key", self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET path?query` as JSON; panics unless it answers 200.
    pub async fn json<Q: Serialize + Debug + ?Sized>(&self, path: &str, query: &Q) -> Value {
        let response = self
            .get(path)
            .query(query)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "GET {path} {query:?}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {path}: {error}: {body}"))
    }

    /// The messages of `GET /api/v1/logs?query`, sorted.
    pub async fn messages<Q: Serialize + Debug + ?Sized>(&self, query: &Q) -> Vec<String> {
        page_messages(&self.json("/api/v1/logs", query).await)
    }

    /// Asks `GET path?query` until `until` holds for its JSON answer (a non-JSON or
    /// failed answer counts as not yet): the page and how long it took, or the last
    /// answer when `timeout` passed first.
    pub async fn poll<Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
        timeout: Duration,
        mut until: impl FnMut(&Value) -> bool,
    ) -> Result<(Value, Duration), Value> {
        let started = Instant::now();
        loop {
            let answer = match self.get(path).query(query).send().await {
                Ok(response) => response.json::<Value>().await.unwrap_or(Value::Null),
                Err(error) => Value::String(error.to_string()),
            };
            if until(&answer) {
                return Ok((answer, started.elapsed()));
            }
            if started.elapsed() >= timeout {
                return Err(answer);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// The `message` of each entry of a `GET /api/v1/logs` page, sorted (panics when the
/// answer is not a page).
pub fn page_messages(page: &Value) -> Vec<String> {
    let mut messages = crate::read::messages(page);
    messages.sort();
    messages
}
