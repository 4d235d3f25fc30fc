//! The alert delivery worker's settings (`LOG_INGESTION_ALERT_DELIVERY_*`): whether this
//! instance sends notifications, how often it looks for due ones, how many requests it
//! has in flight, each request's timeout, the retry backoff and the deadline after which
//! a notification is marked failed, when `/health` calls delivery degraded, how long
//! delivered and failed notifications are kept, and which networks no receiver may be in.

use std::time::Duration;

use super::environment::{Environment, MIN_TIMEOUT};
use super::networks::{self, Cidr};

/// The networks no alert receiver may be in unless the operator says otherwise: this
/// host (loopback, unspecified), link-local (where clouds serve instance metadata and
/// credentials, e.g. 169.254.169.254 and AWS's fd00:ec2::254) and multicast.
pub const DEFAULT_BLOCKED_NETWORKS: &str = "127.0.0.0/8, 0.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4, \
     ::1/128, ::/128, fe80::/10, fd00:ec2::254/128, ff00::/8";

#[derive(Clone, Debug)]
pub struct AlertDeliverySettings {
    /// `LOG_INGESTION_ALERT_DELIVERY`: `off` stops this instance from sending (another
    /// instance of the fleet sends); its `/health` and `/metrics` still report the backlog.
    pub enabled: bool,
    /// How often the worker looks for due notifications when idle.
    pub poll_interval: Duration,
    /// Requests to receivers in flight at once.
    pub concurrency: usize,
    /// One request's whole time: connect, send, answer.
    pub request_timeout: Duration,
    /// The first retry's ceiling; each further retry doubles it, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long after its creation a notification is still retried; then it is failed.
    pub deadline: Duration,
    /// `/health` is degraded while a notification failed within this window...
    pub failed_window: Duration,
    /// ... or while the oldest pending one is older than this.
    pub max_pending_age: Duration,
    /// Delivered and failed notifications older than this are deleted (pending ones
    /// never are).
    pub retention: Duration,
    /// `LOG_INGESTION_ALERT_BLOCKED_NETWORKS`: a receiver's address in one of these is
    /// refused (checked on every request, after the name is resolved), so whoever may
    /// add a channel cannot make the server call this host or cloud metadata.
    pub blocked_networks: Vec<Cidr>,
}

impl AlertDeliverySettings {
    pub(super) fn read(env: &mut Environment<'_>) -> Self {
        AlertDeliverySettings {
            enabled: env.get("LOG_INGESTION_ALERT_DELIVERY", true),
            poll_interval: env.at_least(
                "LOG_INGESTION_ALERT_DELIVERY_POLL_INTERVAL",
                Duration::from_secs(1),
                Duration::from_millis(10),
            ),
            concurrency: env.at_least("LOG_INGESTION_ALERT_DELIVERY_CONCURRENCY", 8, 1),
            request_timeout: env.at_least(
                "LOG_INGESTION_ALERT_DELIVERY_TIMEOUT",
                Duration::from_secs(10),
                MIN_TIMEOUT,
            ),
            backoff_base: env.at_least(
                "LOG_INGESTION_ALERT_DELIVERY_BACKOFF_BASE",
                Duration::from_secs(2),
                MIN_TIMEOUT,
            ),
            backoff_max: env.at_least(
                "LOG_INGESTION_ALERT_DELIVERY_BACKOFF_MAX",
                Duration::from_secs(300),
                MIN_TIMEOUT,
            ),
            deadline: env.at_least(
                "LOG_INGESTION_ALERT_DELIVERY_DEADLINE",
                Duration::from_secs(3_600),
                MIN_TIMEOUT,
            ),
            failed_window: env.at_least(
                "LOG_INGESTION_ALERT_DELIVERY_FAILED_WINDOW",
                Duration::from_secs(3_600),
                MIN_TIMEOUT,
            ),
            max_pending_age: env.at_least(
                "LOG_INGESTION_ALERT_DELIVERY_MAX_PENDING_AGE",
                Duration::from_secs(600),
                MIN_TIMEOUT,
            ),
            retention: env.at_least(
                "LOG_INGESTION_ALERT_DELIVERY_RETENTION",
                Duration::from_secs(30 * 86_400),
                MIN_TIMEOUT,
            ),
            blocked_networks: networks::read(env, "LOG_INGESTION_ALERT_BLOCKED_NETWORKS")
                .unwrap_or_else(default_blocked_networks),
        }
    }
}

fn default_blocked_networks() -> Vec<Cidr> {
    super::environment::comma_list(DEFAULT_BLOCKED_NETWORKS)
        .filter_map(Cidr::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use crate::config::Settings;

    fn read(extra: &[(&str, &str)]) -> Result<Settings, crate::config::ConfigError> {
        let mut vars: HashMap<&str, &str> = HashMap::from([
            ("DATABASE_URL", "postgres://localhost/x"),
            ("LOG_INGESTION_API_KEYS", "a"),
        ]);
        vars.extend(extra.iter().copied());
        Settings::from_lookup(|name| vars.get(name).map(|value| (*value).to_owned()))
    }

    #[test]
    fn delivery_is_on_with_an_hour_deadline_by_default() {
        let delivery = read(&[]).unwrap().alert_delivery;
        assert!(delivery.enabled);
        assert_eq!(delivery.concurrency, 8);
        assert_eq!(delivery.request_timeout, Duration::from_secs(10));
        assert_eq!(delivery.backoff_base, Duration::from_secs(2));
        assert_eq!(delivery.backoff_max, Duration::from_secs(300));
        assert_eq!(delivery.deadline, Duration::from_secs(3_600));
        assert_eq!(delivery.retention, Duration::from_secs(30 * 86_400));
        let blocked = |address: &str| {
            let address = address.parse().unwrap();
            delivery
                .blocked_networks
                .iter()
                .any(|net| net.contains(address))
        };
        assert_eq!(delivery.blocked_networks.len(), 9, "every default parses");
        for address in [
            "127.0.0.1",
            "169.254.169.254",
            "::1",
            "fd00:ec2::254",
            "0.0.0.0",
        ] {
            assert!(blocked(address), "{address}");
        }
        for address in ["10.1.2.3", "192.168.1.10", "93.184.216.34"] {
            assert!(!blocked(address), "{address}");
        }
        let none = read(&[("LOG_INGESTION_ALERT_BLOCKED_NETWORKS", "none")]).unwrap();
        assert!(none.alert_delivery.blocked_networks.is_empty());
    }

    #[test]
    fn bad_delivery_settings_are_each_named() {
        let error = read(&[
            ("LOG_INGESTION_ALERT_DELIVERY", "maybe"),
            ("LOG_INGESTION_ALERT_DELIVERY_CONCURRENCY", "0"),
            ("LOG_INGESTION_ALERT_DELIVERY_DEADLINE", "soon"),
        ])
        .unwrap_err()
        .to_string();
        for name in [
            "LOG_INGESTION_ALERT_DELIVERY:",
            "LOG_INGESTION_ALERT_DELIVERY_CONCURRENCY:",
            "LOG_INGESTION_ALERT_DELIVERY_DEADLINE:",
        ] {
            assert!(error.contains(name), "{name} in {error}");
        }
        let off = read(&[("LOG_INGESTION_ALERT_DELIVERY", "off")]).unwrap();
        assert!(!off.alert_delivery.enabled);
    }
}
