//! What the server counts and measures, exposed by `GET /metrics`: the definitions of
//! every metric (name, help, labels, buckets) and the recording methods the rest of the
//! server calls. Storage, bucket arithmetic, label escaping and the Prometheus text
//! exposition are `prometheus-client`'s. Recording is cheap and never fails; this module
//! never does I/O and never records an API key or any request content.
//!
//! Counters are registered without the `_total` suffix and help texts without their
//! final period: the crate appends both, so the exposed names
//! (`log_ingestion_entries_accepted_total`, ...) are the ones docs/server.md lists. A labelled
//! family appears once it has its first sample.//!
//! One job a module: this one defines the metrics (names, help, buckets) and holds
//! them; `labels` has their label sets, `record` the recording methods, `shared_rate_limits`
//! the rate-limit store's metrics, `exposition` the text of a scrape, `policy_jobs`
//! the TimescaleDB jobs' snapshot.

mod exposition;
mod labels;
mod policy_jobs;
mod record;
mod shared_rate_limits;

use std::sync::OnceLock;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use labels::{Protocol, Reason, Route};
pub use policy_jobs::render_policy_jobs;
use shared_rate_limits::SharedRateLimitMetrics;

/// The `Content-Type` of [`Metrics::render`]'s output (Prometheus text, version 0.0.4),
/// which every Prometheus scraper and `promtool check metrics` read.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: [f64; 9] = [1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// All metrics of one server (each test server has its own).
#[derive(Debug)]
pub struct Metrics {
    /// Everything recorded as it happens; rendered on every scrape.
    registry: Registry,
    entries_accepted: Counter,
    entries_rejected: Family<Reason, Counter>,
    entries_by_protocol: Family<Protocol, Counter>,
    requests_rejected: Family<Reason, Counter>,
    rate_limited: Counter,
    server_busy: Counter,
    database_errors: Counter,
    writer_reconnects: Counter,
    read_queries_cancelled: Counter,
    request_duration: Family<Route, Histogram>,
    commit_rows: Histogram,
    commit_duration: Histogram,
    connections_closed: Family<Reason, Counter>,
    /// Named by `set_instance`; rendered as `log_ingestion_instance_info`.
    instance: OnceLock<String>,
    shared_rate_limits: SharedRateLimitMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        let entries_rejected = Family::<Reason, Counter>::default();
        // Present (at 0) from the start, as dashboards expect.
        let _ = entries_rejected.get_or_create(&Reason {
            reason: "validation",
        });
        let request_duration =
            Family::<Route, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        Metrics {
            entries_accepted: register(
                &mut r,
                "log_ingestion_entries_accepted",
                "Entries committed to storage",
                Counter::default(),
            ),
            entries_rejected: register(
                &mut r,
                "log_ingestion_entries_rejected",
                "Entries refused, by reason",
                entries_rejected,
            ),
            entries_by_protocol: register(
                &mut r,
                "log_ingestion_entries_by_protocol",
                "Entries committed to storage, by the protocol they arrived by",
                Family::default(),
            ),
            requests_rejected: register(
                &mut r,
                "log_ingestion_requests_rejected",
                "Requests refused as a whole, by reason",
                Family::default(),
            ),
            connections_closed: register(
                &mut r,
                "log_ingestion_connections_closed",
                "Connections the server closed on its own, by reason",
                Family::default(),
            ),
            rate_limited: register(
                &mut r,
                "log_ingestion_rate_limited",
                "Requests refused by the per-key rate limit",
                Counter::default(),
            ),
            server_busy: register(
                &mut r,
                "log_ingestion_server_busy",
                "Requests refused with 503 because the in-flight body budget was spent",
                Counter::default(),
            ),
            database_errors: register(
                &mut r,
                "log_ingestion_database_errors",
                "Failed group commits and storage errors",
                Counter::default(),
            ),
            writer_reconnects: register(
                &mut r,
                "log_ingestion_writer_reconnects",
                "Groups written again on a fresh connection because a writer's kept connection failed before anything was sent",
                Counter::default(),
            ),
            read_queries_cancelled: register(
                &mut r,
                "log_ingestion_read_queries_cancelled",
                "Read queries cancelled because their client went away",
                Counter::default(),
            ),
            request_duration: register(
                &mut r,
                "log_ingestion_request_duration_seconds",
                "Request latency by method and route",
                request_duration,
            ),
            commit_rows: register(
                &mut r,
                "log_ingestion_commit_batch_rows",
                "Rows written per group commit (replayed requests write none)",
                Histogram::new(BATCH_BUCKETS),
            ),
            commit_duration: register(
                &mut r,
                "log_ingestion_commit_duration_seconds",
                "Duration of one group commit",
                latency_histogram(),
            ),
            registry: r,
            instance: OnceLock::new(),
            shared_rate_limits: SharedRateLimitMetrics::default(),
        }
    }
}

/// Registers `metric` (a handle sharing its value with the registry's copy) and returns it.
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

#[cfg(test)]
mod tests;
