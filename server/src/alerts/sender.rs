//! One HTTP request to one channel: the body for the channel's kind (`payload`), the
//! idempotency key, the signature headers when the channel has a secret (`signature`),
//! sent with a timeout over the whole exchange, no redirects followed, and never to an
//! address in a blocked network (`LOG_INGESTION_ALERT_BLOCKED_NETWORKS`: checked on the
//! URL's address, and after resolving its name, at every connection, so a name that
//! changes its address later is caught too). A 2xx answer is delivery; anything else is a
//! failed attempt described by its status or transport error only — never the URL (which
//! may be secret) nor the receiver's answer (which whoever adds channels would read back).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::channels::{Channel, ChannelKind};
use super::payload::{alertmanager, slack, Notification};
use super::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::config::Cidr;

const MAX_ERROR_CHARS: usize = 300;
/// The header carrying a key stable across every attempt of one notification.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The client every delivery of this process uses.
#[derive(Clone, Debug)]
pub struct Sender {
    client: reqwest::Client,
    blocked: Arc<[Cidr]>,
}

/// The networks no receiver may be in, and whether `address` is in one.
fn is_blocked(blocked: &[Cidr], address: IpAddr) -> bool {
    blocked.iter().any(|network| network.contains(address))
}

/// Resolves receivers' names as the system does, keeping only the addresses outside the
/// blocked networks; a name with none left fails to resolve.
struct GuardedResolver {
    blocked: Arc<[Cidr]>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let blocked = Arc::clone(&self.blocked);
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|address| !is_blocked(&blocked, address.ip()))
                .collect();
            if allowed.is_empty() && !found.is_empty() {
                return Err(BLOCKED.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

const BLOCKED: &str =
    "the receiver's address is in a blocked network (LOG_INGESTION_ALERT_BLOCKED_NETWORKS)";

impl Sender {
    pub fn new(timeout: Duration, blocked: Vec<Cidr>) -> Result<Self, reqwest::Error> {
        let blocked: Arc<[Cidr]> = blocked.into();
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                blocked: Arc::clone(&blocked),
            }))
            // A proxy from the environment would connect to the receiver on its own,
            // past the blocked networks.
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A receiver that moved is a configuration to fix, not a place to follow a
            // signed alert to (possibly another host).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("log-ingestion-alerts/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender { client, blocked })
    }

    /// Whether the URL names an address (not a name) in a blocked network: such a URL
    /// never reaches the resolver.
    fn blocked_literal(&self, url: &str) -> bool {
        let Ok(url) = reqwest::Url::parse(url) else {
            return false;
        };
        let host = url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.parse::<IpAddr>()
            .is_ok_and(|address| is_blocked(&self.blocked, address))
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
        if self.blocked_literal(&channel.url) {
            return Err(format!("cannot connect: {BLOCKED}"));
        }
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
        let response = request.body(body).send().await.map_err(describe)?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        Err(format!("HTTP {status}"))
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
