//! One HTTP request to one channel: the body for the channel's kind (`payload`), the
//! idempotency key, the signature headers when the channel has a secret (`signature`),
//! sent with a timeout over the whole exchange, no redirects followed, and at most
//! [`MAX_ANSWER_BYTES`] of a refusal read (for `last_error`). A 2xx answer is delivery;
//! anything else is a failed attempt described without the URL (which may be secret).

use std::time::Duration;

use super::channels::{Channel, ChannelKind};
use super::payload::{alertmanager, slack, Notification};
use super::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// How much of a refusal's body is read (and kept in `last_error`, shortened).
pub const MAX_ANSWER_BYTES: usize = 1_024;
const MAX_ERROR_CHARS: usize = 300;
/// The header carrying a key stable across every attempt of one notification.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The client every delivery of this process uses.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A receiver that moved is a configuration to fix, not a place to follow a
            // signed alert to (possibly another host).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("log-ingestion-alerts/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender { client })
    }

    /// The body `channel` receives for `notification`.
    pub fn body(channel: &Channel, notification: &Notification) -> Vec<u8> {
        let body = match channel.kind {
            ChannelKind::Webhook => alertmanager::body(notification, &channel.name),
            ChannelKind::Slack => slack::body(notification),
        };
        // Serialising a `Value` cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Sends `notification` to `channel`: the receiver's 2xx status, or what went wrong.
    pub async fn send(
        &self,
        channel: &Channel,
        notification: &Notification,
        idempotency_key: &str,
    ) -> Result<u16, String> {
        let body = Self::body(channel, notification);
        let mut request = self
            .client
            .post(&channel.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, idempotency_key);
        if let Some(secret) = &channel.secret {
            let timestamp = chrono::Utc::now().timestamp();
            request = request
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(
                    SIGNATURE_HEADER,
                    signature::sign(secret.as_bytes(), timestamp, &body),
                );
        }
        let mut response = request.body(body).send().await.map_err(describe)?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let mut answer = Vec::new();
        while answer.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        answer.truncate(MAX_ANSWER_BYTES);
        let text: String = String::from_utf8_lossy(&answer)
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_ERROR_CHARS)
            .collect();
        Err(if text.trim().is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {}", text.trim())
        })
    }
}

/// A transport error without its URL, with its causes.
fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let error = error.without_url();
    let mut text = kind.to_owned();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(MAX_ERROR_CHARS).collect()
}
