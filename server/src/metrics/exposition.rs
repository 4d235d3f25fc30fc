//! The Prometheus text of a scrape: the registry as recorded, values known only when
//! scraped, and the shared-limit metrics once enabled.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::labels::Instance;
use super::Metrics;

impl Metrics {
    /// The Prometheus text exposition of every metric, with the in-flight budget's
    /// current use (`inflight_bytes`) and cap (`inflight_limit_bytes`).
    pub fn render(&self, inflight_bytes: u64, inflight_limit_bytes: u64) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry);
        encode(
            &mut out,
            &self.scrape_time_values(inflight_bytes, inflight_limit_bytes),
        );
        if self.shared_rate_limits.enabled.get().is_some() {
            encode(&mut out, &self.shared_rate_limits.registry);
        }
        out
    }

    /// Values known only when scraped: the in-flight budget and this process's name.
    fn scrape_time_values(&self, inflight_bytes: u64, inflight_limit_bytes: u64) -> Registry {
        let mut registry = Registry::default();
        registry.register(
            "log_ingestion_inflight_bytes",
            "Request body bytes admitted and not yet answered",
            gauge(inflight_bytes),
        );
        registry.register(
            "log_ingestion_inflight_limit_bytes",
            "The cap on log_ingestion_inflight_bytes (LOG_INGESTION_MAX_INFLIGHT_BYTES)",
            gauge(inflight_limit_bytes),
        );
        if let Some(instance) = self.instance.get() {
            // Rendered as the gauge `log_ingestion_instance_info{instance=...} 1`.
            registry.register(
                "log_ingestion_instance",
                "This server process (LOG_INGESTION_INSTANCE_ID)",
                Info::new(Instance {
                    instance: instance.clone(),
                }),
            );
        }
        registry
    }
}

fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

/// Appends `registry` to `out`. Writing to a `String` cannot fail, and the crate's
/// metrics never make their encoding fail, so there is no error to pass on.
pub(super) fn encode(out: &mut String, registry: &Registry) {
    let _ = prometheus_text::encode(out, registry);
}
