//! What the server counts and measures, exposed by `GET /metrics`: the definitions of
//! every metric (name, help, labels, buckets) and the recording methods the rest of the
//! server calls. Storage, bucket arithmetic, label escaping and the Prometheus text
//! exposition are `prometheus-client`'s. Recording is cheap and never fails; this module
//! never does I/O and never records an API key or any request content.
//!
//! Counters are registered without the `_total` suffix and help texts without their
//! final period: the crate appends both, so the exposed names
//! (`log_ingestion_entries_accepted_total`, ...) are the ones docs/server.md lists. A labelled
//! family appears once it has its first sample.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry};

use crate::storage::policy_jobs::PolicyJobStatus;

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

/// Why something was refused or closed: a fixed name chosen by the server, never input.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The protocol entries arrived by: `json` (the JSON API) or `otlp` (OTLP/HTTP).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Protocol {
    protocol: &'static str,
}

/// A request's method and matched route (a route pattern, never the raw path).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Instance {
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyJob {
    policy: &'static str,
    job_id: i32,
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
    fleet: FleetMetrics,
}

/// How this instance's shared rate limits fare. Rendered only once sharing
/// is enabled, so a single server's `/metrics` does not list a store it has not got.
#[derive(Debug)]
struct FleetMetrics {
    registry: Registry,
    enabled: OnceLock<()>,
    fallback: Gauge,
    sync_failures: Counter,
    peers: Gauge,
    same_id: Gauge,
    sync_duration: Histogram,
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
            fleet: FleetMetrics::default(),
        }
    }
}

impl Default for FleetMetrics {
    fn default() -> Self {
        let mut r = Registry::default();
        FleetMetrics {
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

/// Registers `metric` (a handle sharing its value with the registry's copy) and returns it.
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn entries_accepted(&self, count: u64) {
        self.entries_accepted.inc_by(count);
    }

    /// Entries committed that arrived by `protocol` (`json` or `otlp`).
    pub fn entries_by_protocol(&self, protocol: &'static str, count: u64) {
        self.entries_by_protocol
            .get_or_create(&Protocol { protocol })
            .inc_by(count);
    }

    /// Entries of an otherwise accepted batch that failed validation.
    pub fn entries_rejected(&self, count: u64) {
        self.entries_rejected
            .get_or_create(&Reason {
                reason: "validation",
            })
            .inc_by(count);
    }

    /// A whole request refused, by the reason label of its `ApiError`.
    pub fn request_rejected(&self, reason: &'static str) {
        match reason {
            "rate_limited" => self.rate_limited.inc(),
            "server_busy" => self.server_busy.inc(),
            _ => 0,
        };
        self.requests_rejected
            .get_or_create(&Reason { reason })
            .inc();
    }

    /// A connection the server closed on its own: `connection_cap` (at accept),
    /// `unauthenticated_evicted` (a newer one took its slot) or `header_timeout`.
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&Reason { reason })
            .inc();
    }

    pub fn database_error(&self) {
        self.database_errors.inc();
    }

    /// A group commit writer replaced its kept connection, found dead at a group's
    /// first exchange, and wrote the group on a fresh one.
    pub fn writer_reconnected(&self) {
        self.writer_reconnects.inc();
    }

    /// A read query cancelled because its request went away.
    pub fn read_query_cancelled(&self) {
        self.read_queries_cancelled.inc();
    }

    /// Names this process in `log_ingestion_instance_info` (first call wins).
    pub fn set_instance(&self, instance: &str) {
        let _ = self.instance.set(instance.to_owned());
    }

    /// Rate limits are shared through a store: render their metrics.
    pub fn rate_limit_sharing_enabled(&self) {
        let _ = self.fleet.enabled.set(());
    }

    /// A sync with the rate-limit store succeeded in `elapsed`, seeing `peers` others,
    /// `same_id` of them with this instance's id.
    pub fn rate_limit_synced(&self, elapsed: Duration, peers: u64, same_id: u64) {
        self.fleet.fallback.set(0);
        self.fleet
            .peers
            .set(i64::try_from(peers).unwrap_or(i64::MAX));
        self.fleet
            .same_id
            .set(i64::try_from(same_id).unwrap_or(i64::MAX));
        self.fleet.sync_duration.observe(elapsed.as_secs_f64());
    }

    /// A sync failed: limits are local until the next success.
    pub fn rate_limit_sync_failed(&self) {
        self.fleet.fallback.set(1);
        self.fleet.sync_failures.inc();
    }

    pub fn request_finished(&self, method: &str, route: &str, elapsed: Duration) {
        let labels = Route {
            method: method.to_owned(),
            route: route.to_owned(),
        };
        self.request_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn group_committed(&self, rows: usize, elapsed: Duration) {
        self.commit_rows.observe(rows as f64);
        self.commit_duration.observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric, with the in-flight budget's
    /// current use (`inflight_bytes`) and cap (`inflight_limit_bytes`).
    pub fn render(&self, inflight_bytes: u64, inflight_limit_bytes: u64) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry);
        encode(
            &mut out,
            &self.scrape_time_values(inflight_bytes, inflight_limit_bytes),
        );
        if self.fleet.enabled.get().is_some() {
            encode(&mut out, &self.fleet.registry);
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

/// The TimescaleDB policy jobs (`storage::policy_jobs`), one sample per job and policy;
/// nothing in plain mode. A fresh registry per scrape: the values are the snapshot's.
pub fn render_policy_jobs(out: &mut String, jobs: &[PolicyJobStatus]) {
    if jobs.is_empty() {
        return;
    }
    let failing = Family::<PolicyJob, Gauge>::default();
    let scheduler_failures = Family::<PolicyJob, Gauge>::default();
    let server_runs = Family::<PolicyJob, Counter>::default();
    let server_failures = Family::<PolicyJob, Counter>::default();
    for job in jobs {
        let labels = PolicyJob {
            policy: job.policy,
            job_id: job.job_id,
        };
        failing.get_or_create(&labels).set(i64::from(job.failing()));
        scheduler_failures
            .get_or_create(&labels)
            .set(job.scheduler_failures.max(0));
        server_runs.get_or_create(&labels).inc_by(job.server_runs);
        server_failures
            .get_or_create(&labels)
            .inc_by(job.server_failures);
    }
    let mut registry = Registry::default();
    registry.register(
        "log_ingestion_policy_job_failing",
        "1 when the policy job's last run (by the scheduler or the server) failed",
        failing,
    );
    registry.register(
        "log_ingestion_policy_job_scheduler_failures",
        "Failures TimescaleDB's scheduler has recorded for the policy job",
        scheduler_failures,
    );
    registry.register(
        "log_ingestion_policy_job_server_runs",
        "Runs of the policy job by the server itself (CALL run_job) because the scheduler failed it",
        server_runs,
    );
    registry.register(
        "log_ingestion_policy_job_server_failures",
        "Runs of the policy job by the server that failed",
        server_failures,
    );
    encode(out, &registry);
}

fn gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
    gauge
}

/// Appends `registry` to `out`. Writing to a `String` cannot fail, and the crate's
/// metrics never make their encoding fail, so there is no error to pass on.
fn encode(out: &mut String, registry: &Registry) {
    let _ = prometheus_text::encode(out, registry);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let metrics = Metrics::default();
        metrics.group_committed(3, Duration::from_millis(2));
        metrics.group_committed(700, Duration::from_millis(20));
        let text = metrics.render(0, 0);
        assert!(
            text.contains("log_ingestion_commit_batch_rows_bucket{le=\"5\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("log_ingestion_commit_batch_rows_bucket{le=\"1000\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("log_ingestion_commit_batch_rows_count 2"),
            "{text}"
        );
    }

    #[test]
    fn every_family_has_help_and_type_under_its_exposed_name() {
        let metrics = Metrics::default();
        metrics.request_finished("POST", "/api/v1/logs", Duration::from_millis(3));
        metrics.request_rejected("missing_api_key");
        metrics.connection_closed("header_timeout");
        let text = metrics.render(0, 0);
        for (name, kind) in [
            ("log_ingestion_entries_accepted_total", "counter"),
            ("log_ingestion_entries_rejected_total", "counter"),
            ("log_ingestion_requests_rejected_total", "counter"),
            ("log_ingestion_connections_closed_total", "counter"),
            ("log_ingestion_rate_limited_total", "counter"),
            ("log_ingestion_server_busy_total", "counter"),
            ("log_ingestion_database_errors_total", "counter"),
            ("log_ingestion_writer_reconnects_total", "counter"),
            ("log_ingestion_read_queries_cancelled_total", "counter"),
            ("log_ingestion_request_duration_seconds", "histogram"),
            ("log_ingestion_commit_batch_rows", "histogram"),
            ("log_ingestion_commit_duration_seconds", "histogram"),
            ("log_ingestion_inflight_bytes", "gauge"),
            ("log_ingestion_inflight_limit_bytes", "gauge"),
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}: {text}"
            );
        }
        assert!(
            text.contains(
                "log_ingestion_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/logs\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("log_ingestion_entries_rejected_total{reason=\"validation\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn rejections_are_labelled_by_reason() {
        let metrics = Metrics::default();
        metrics.request_rejected("rate_limited");
        let text = metrics.render(0, 0);
        assert!(text.contains("log_ingestion_requests_rejected_total{reason=\"rate_limited\"} 1"));
        assert!(text.contains("log_ingestion_rate_limited_total 1"));
    }

    #[test]
    fn policy_jobs_are_labelled_by_policy_and_absent_in_plain_mode() {
        let mut text = String::new();
        render_policy_jobs(&mut text, &[]);
        assert!(text.is_empty());
        let job = PolicyJobStatus {
            job_id: 1000,
            policy: "compression",
            scheduler_last_status: Some("Failed".to_owned()),
            scheduler_failures: 3,
            scheduler_last_error: None,
            server_runs: 2,
            server_failures: 0,
            server_last_error: None,
        };
        render_policy_jobs(&mut text, &[job]);
        assert!(
            text.contains(
                "log_ingestion_policy_job_failing{policy=\"compression\",job_id=\"1000\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("log_ingestion_policy_job_server_runs_total{policy=\"compression\",job_id=\"1000\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("log_ingestion_policy_job_scheduler_failures{policy=\"compression\",job_id=\"1000\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn busy_refusals_and_the_inflight_budget_are_exposed() {
        let metrics = Metrics::default();
        metrics.request_rejected("server_busy");
        let text = metrics.render(2048, 4096);
        assert!(text.contains("log_ingestion_server_busy_total 1"), "{text}");
        assert!(text.contains("log_ingestion_inflight_bytes 2048"), "{text}");
        assert!(
            text.contains("log_ingestion_inflight_limit_bytes 4096"),
            "{text}"
        );
    }

    #[test]
    fn the_instance_and_the_rate_limit_fallback_are_exposed() {
        let metrics = Metrics::default();
        assert!(!metrics.render(0, 0).contains("rate_limit_fallback"));
        metrics.set_instance("web-1");
        metrics.rate_limit_sharing_enabled();
        metrics.rate_limit_synced(Duration::from_millis(1), 2, 1);
        let text = metrics.render(0, 0);
        assert!(
            text.contains("log_ingestion_instance_info{instance=\"web-1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("log_ingestion_rate_limit_fallback 0"),
            "{text}"
        );
        assert!(text.contains("log_ingestion_rate_limit_peers 2"), "{text}");
        assert!(
            text.contains("log_ingestion_instance_id_shared 1"),
            "{text}"
        );
        metrics.rate_limit_sync_failed();
        let text = metrics.render(0, 0);
        assert!(
            text.contains("log_ingestion_rate_limit_fallback 1"),
            "{text}"
        );
        assert!(
            text.contains("log_ingestion_rate_limit_sync_failures_total 1"),
            "{text}"
        );
    }
}
