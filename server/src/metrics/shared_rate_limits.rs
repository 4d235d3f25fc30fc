//! The metrics of rate limits shared through a store: rendered only once sharing is
//! enabled, so a single server's `/metrics` does not list a store it has not got.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{latency_histogram, register, Metrics};

/// How this instance's shared rate limits fare. Rendered only once sharing
/// is enabled, so a single server's `/metrics` does not list a store it has not got.
#[derive(Debug)]
pub(super) struct SharedRateLimitMetrics {
    pub(super) registry: Registry,
    pub(super) enabled: OnceLock<()>,
    pub(super) fallback: Gauge,
    pub(super) sync_failures: Counter,
    pub(super) peers: Gauge,
    pub(super) same_id: Gauge,
    pub(super) sync_duration: Histogram,
}

impl Default for SharedRateLimitMetrics {
    fn default() -> Self {
        let mut r = Registry::default();
        SharedRateLimitMetrics {
            fallback: register(
                &mut r,
                "log_ingestion_rate_limit_fallback",
                "1 while the rate-limit store is unreachable and each key has this instance's own full limit",
                Gauge::default(),
            ),
            sync_failures: register(
                &mut r,
                "log_ingestion_rate_limit_sync_failures",
                "Syncs with the rate-limit store that failed or timed out",
                Counter::default(),
            ),
            peers: register(
                &mut r,
                "log_ingestion_rate_limit_peers",
                "Other live instances seen at the last successful sync",
                Gauge::default(),
            ),
            same_id: register(
                &mut r,
                "log_ingestion_instance_id_shared",
                "Other live processes seen with this instance's LOG_INGESTION_INSTANCE_ID (each still counts as an instance of its own)",
                Gauge::default(),
            ),
            sync_duration: register(
                &mut r,
                "log_ingestion_rate_limit_sync_duration_seconds",
                "One round trip to the rate-limit store",
                latency_histogram(),
            ),
            registry: r,
            enabled: OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Rate limits are shared through a store: render their metrics.
    pub fn shared_rate_limits_enabled(&self) {
        let _ = self.shared_rate_limits.enabled.set(());
    }

    /// A sync with the rate-limit store succeeded in `elapsed`, seeing `peers` others,
    /// `same_id` of them with this instance's id.
    pub fn rate_limit_synced(&self, elapsed: Duration, peers: u64, same_id: u64) {
        self.shared_rate_limits.fallback.set(0);
        self.shared_rate_limits
            .peers
            .set(i64::try_from(peers).unwrap_or(i64::MAX));
        self.shared_rate_limits
            .same_id
            .set(i64::try_from(same_id).unwrap_or(i64::MAX));
        self.shared_rate_limits
            .sync_duration
            .observe(elapsed.as_secs_f64());
    }

    /// A sync failed: limits are local until the next success.
    pub fn rate_limit_sync_failed(&self) {
        self.shared_rate_limits.fallback.set(1);
        self.shared_rate_limits.sync_failures.inc();
    }
}
