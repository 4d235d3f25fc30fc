//! `Transport`: request bodies and one HTTP attempt against the ingestion server.
//!
//! Owns the single keep-alive `reqwest::Client` (5 s connect / 10 s read by default),
//! the JSON envelopes around pre-encoded entries, gzip, and the headers (`X-API-Key`,
//! `Idempotency-Key`, `Content-Encoding`). It makes exactly one attempt per call: it
//! never retries, never follows redirects, never sleeps and never touches counters
//! (delivery does).

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use log_ingestion_wire::{API_KEY_HEADER, BATCH_PATH, IDEMPOTENCY_KEY_HEADER, SINGLE_PATH};
use reqwest::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};

use crate::config::EngineConfig;

/// Bodies at least this large are gzipped when `gzip` is on; smaller ones do not pay.
pub const GZIP_MIN_BYTES: usize = 1024;

/// Where a body goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /api/v1/logs/batch` with `{"logs":[...]}`.
    Batch,
    /// `POST /api/v1/logs` with `{"log":{...}}`.
    Single,
}

/// A body ready to be sent, possibly more than once (same bytes, same idempotency key).
#[derive(Debug, Clone)]
pub(crate) struct PreparedRequest {
    pub endpoint: Endpoint,
    pub body: Bytes,
    pub gzipped: bool,
    pub idempotency_key: String,
    pub entries: usize,
}

impl PreparedRequest {
    /// `{"logs":[e1,e2,...]}` from pre-encoded entries.
    pub fn batch(entries: &[Vec<u8>], gzip: bool) -> std::io::Result<PreparedRequest> {
        let len = entries.iter().map(|e| e.len() + 1).sum::<usize>() + 16;
        let mut json = Vec::with_capacity(len);
        json.extend_from_slice(br#"{"logs":["#);
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(entry);
        }
        json.extend_from_slice(b"]}");
        PreparedRequest::finish(Endpoint::Batch, json, gzip, entries.len())
    }

    /// `{"log":{...}}` from one pre-encoded entry.
    pub fn single(entry: &[u8], gzip: bool) -> std::io::Result<PreparedRequest> {
        let mut json = Vec::with_capacity(entry.len() + 8);
        json.extend_from_slice(br#"{"log":"#);
        json.extend_from_slice(entry);
        json.push(b'}');
        PreparedRequest::finish(Endpoint::Single, json, gzip, 1)
    }

    fn finish(
        endpoint: Endpoint,
        json: Vec<u8>,
        gzip: bool,
        entries: usize,
    ) -> std::io::Result<PreparedRequest> {
        let (body, gzipped) = if gzip && json.len() >= GZIP_MIN_BYTES {
            let mut encoder =
                GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
            encoder.write_all(&json)?;
            (encoder.finish()?, true)
        } else {
            (json, false)
        };
        Ok(PreparedRequest {
            endpoint,
            body: Bytes::from(body),
            gzipped,
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            entries,
        })
    }
}

/// How an attempt failed before any answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    Connect,
    Timeout,
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connection error",
            FailureKind::Timeout => "timeout",
            FailureKind::Other => "transport error",
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone)]
pub(crate) enum Attempt {
    /// The server answered (any status).
    Answered {
        status: u16,
        retry_after: Option<String>,
        body: Bytes,
    },
    /// No answer: connection refused/reset, timeout, or the body could not be read.
    Failed { kind: FailureKind, message: String },
}

/// The HTTP client and the server's URLs.
pub(crate) struct Transport {
    client: reqwest::Client,
    batch_url: String,
    single_url: String,
    api_key: HeaderValue,
}

/// Why a transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("api_key is not a valid HTTP header value")]
    InvalidApiKey,
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Transport {
    pub fn new(config: &EngineConfig) -> Result<Transport, TransportError> {
        let api_key = HeaderValue::from_str(config.api_key.trim())
            .map_err(|_| TransportError::InvalidApiKey)?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.open_timeout)
            .read_timeout(config.read_timeout)
            // Below the server's idle keep-alive limit (its header read timeout, 10 s by
            // default), so a batch is never sent on a connection the server is closing.
            .pool_idle_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(4)
            .tcp_nodelay(true)
            // Never follow redirects: X-API-Key would travel to wherever Location points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone())
            .build()?;
        let base = config.base_url();
        Ok(Transport {
            client,
            batch_url: format!("{base}{BATCH_PATH}"),
            single_url: format!("{base}{SINGLE_PATH}"),
            api_key,
        })
    }

    /// One POST of `request`.
    pub async fn send(&self, request: &PreparedRequest) -> Attempt {
        let url = match request.endpoint {
            Endpoint::Batch => &self.batch_url,
            Endpoint::Single => &self.single_url,
        };
        let mut builder = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(API_KEY_HEADER, self.api_key.clone())
            .header(IDEMPOTENCY_KEY_HEADER, request.idempotency_key.as_str())
            .body(request.body.clone());
        if request.gzipped {
            builder = builder.header(CONTENT_ENCODING, "gzip");
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(error) => return failed(&error),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match response.bytes().await {
            Ok(body) => Attempt::Answered {
                status,
                retry_after,
                body,
            },
            // A 2xx whose body could not be read was still taken by the server.
            Err(_) if (200..300).contains(&status) => Attempt::Answered {
                status,
                retry_after,
                body: Bytes::new(),
            },
            Err(error) => failed(&error),
        }
    }
}

fn failed(error: &reqwest::Error) -> Attempt {
    let kind = if error.is_timeout() {
        FailureKind::Timeout
    } else if error.is_connect() {
        FailureKind::Connect
    } else {
        FailureKind::Other
    };
    Attempt::Failed {
        kind,
        message: error_chain(error),
    }
}

/// The error and its sources on one line ("error sending request: connection closed ...").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_batch_body_is_a_logs_envelope() {
        let request =
            PreparedRequest::batch(&[br#"{"a":1}"#.to_vec(), br#"{"b":2}"#.to_vec()], false)
                .unwrap();
        assert_eq!(&request.body[..], br#"{"logs":[{"a":1},{"b":2}]}"#);
        assert_eq!(request.entries, 2);
        assert!(!request.gzipped);
    }

    #[test]
    fn a_single_body_is_a_log_envelope() {
        let request = PreparedRequest::single(br#"{"a":1}"#, true).unwrap();
        assert_eq!(&request.body[..], br#"{"log":{"a":1}}"#);
        assert!(!request.gzipped, "small bodies are not worth gzip");
    }

    #[test]
    fn large_bodies_are_gzipped_and_decode_back() {
        let entry = format!(r#"{{"m":"{}"}}"#, "x".repeat(GZIP_MIN_BYTES));
        let request = PreparedRequest::batch(&[entry.clone().into_bytes()], true).unwrap();
        assert!(request.gzipped);
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&request.body[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, format!(r#"{{"logs":[{entry}]}}"#));
    }

    #[test]
    fn each_request_gets_its_own_idempotency_key() {
        let a = PreparedRequest::single(b"{}", false).unwrap();
        let b = PreparedRequest::single(b"{}", false).unwrap();
        assert_ne!(a.idempotency_key, b.idempotency_key);
        assert!(uuid::Uuid::parse_str(&a.idempotency_key).is_ok());
    }
}
