//! Process-wide counters and histograms, rendered in the Prometheus text format by
//! `GET /metrics`. Recording is cheap and never fails; this module never does I/O and
//! never records an API key or any request content.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::storage::policy_jobs::PolicyJobStatus;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0];

/// All metrics of one server.
#[derive(Debug)]
pub struct Metrics {
    entries_accepted: AtomicU64,
    entries_rejected: AtomicU64,
    requests_rejected: Mutex<BTreeMap<&'static str, u64>>,
    rate_limited: AtomicU64,
    server_busy: AtomicU64,
    database_errors: AtomicU64,
    read_queries_cancelled: AtomicU64,
    /// By (method, route).
    request_latency: Mutex<BTreeMap<(String, String), Histogram>>,
    commit_rows: Mutex<Histogram>,
    commit_latency: Mutex<Histogram>,
    /// Connections the server closed on its own, by reason.
    connections_closed: Mutex<BTreeMap<&'static str, u64>>,
    fleet: FleetMetrics,
}

/// Issue 11: which instance this is, and how its shared rate limits fare.
#[derive(Debug, Default)]
struct FleetMetrics {
    instance: OnceLock<String>,
    sharing_enabled: AtomicBool,
    fallback: AtomicBool,
    sync_failures: AtomicU64,
    peers: AtomicU64,
    sync_latency: Mutex<Option<Histogram>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            entries_accepted: AtomicU64::new(0),
            entries_rejected: AtomicU64::new(0),
            requests_rejected: Mutex::new(BTreeMap::new()),
            rate_limited: AtomicU64::new(0),
            server_busy: AtomicU64::new(0),
            database_errors: AtomicU64::new(0),
            read_queries_cancelled: AtomicU64::new(0),
            request_latency: Mutex::new(BTreeMap::new()),
            commit_rows: Mutex::new(Histogram::new(BATCH_BUCKETS)),
            commit_latency: Mutex::new(Histogram::new(LATENCY_BUCKETS)),
            connections_closed: Mutex::new(BTreeMap::new()),
            fleet: FleetMetrics::default(),
        }
    }
}

impl Metrics {
    pub fn entries_accepted(&self, count: u64) {
        self.entries_accepted.fetch_add(count, Ordering::Relaxed);
    }

    /// Entries of an otherwise accepted batch that failed validation.
    pub fn entries_rejected(&self, count: u64) {
        self.entries_rejected.fetch_add(count, Ordering::Relaxed);
    }

    /// A whole request refused, by the reason label of its `ApiError`.
    pub fn request_rejected(&self, reason: &'static str) {
        match reason {
            "rate_limited" => self.rate_limited.fetch_add(1, Ordering::Relaxed),
            "server_busy" => self.server_busy.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        if let Ok(mut map) = self.requests_rejected.lock() {
            *map.entry(reason).or_insert(0) += 1;
        }
    }

    /// A connection the server closed on its own: `connection_cap` (at accept),
    /// `unauthenticated_evicted` (a newer one took its slot) or `header_timeout`.
    pub fn connection_closed(&self, reason: &'static str) {
        if let Ok(mut map) = self.connections_closed.lock() {
            *map.entry(reason).or_insert(0) += 1;
        }
    }

    pub fn database_error(&self) {
        self.database_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A read query cancelled because its request went away.
    pub fn read_query_cancelled(&self) {
        self.read_queries_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// Names this process in `log_ingestion_instance_info` (first call wins).
    pub fn set_instance(&self, instance: &str) {
        let _ = self.fleet.instance.set(instance.to_owned());
    }

    /// Rate limits are shared through a store: render their gauges.
    pub fn rate_limit_sharing_enabled(&self) {
        self.fleet.sharing_enabled.store(true, Ordering::Relaxed);
    }

    /// A sync with the rate-limit store succeeded in `elapsed`, seeing `peers` others.
    pub fn rate_limit_synced(&self, elapsed: Duration, peers: u64) {
        self.fleet.fallback.store(false, Ordering::Relaxed);
        self.fleet.peers.store(peers, Ordering::Relaxed);
        if let Ok(mut histogram) = self.fleet.sync_latency.lock() {
            histogram
                .get_or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
                .observe(elapsed.as_secs_f64());
        }
    }

    /// A sync failed: limits are local until the next success.
    pub fn rate_limit_sync_failed(&self) {
        self.fleet.fallback.store(true, Ordering::Relaxed);
        self.fleet.sync_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn request_finished(&self, method: &str, route: &str, elapsed: Duration) {
        if let Ok(mut map) = self.request_latency.lock() {
            map.entry((method.to_owned(), route.to_owned()))
                .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
                .observe(elapsed.as_secs_f64());
        }
    }

    pub fn group_committed(&self, rows: usize, elapsed: Duration) {
        if let Ok(mut histogram) = self.commit_rows.lock() {
            histogram.observe(rows as f64);
        }
        if let Ok(mut histogram) = self.commit_latency.lock() {
            histogram.observe(elapsed.as_secs_f64());
        }
    }

    /// The Prometheus text exposition of every metric, with the in-flight budget's
    /// current use (`inflight_bytes`) and cap (`inflight_limit_bytes`).
    pub fn render(&self, inflight_bytes: u64, inflight_limit_bytes: u64) -> String {
        let mut out = String::new();
        counter(
            &mut out,
            "log_ingestion_entries_accepted_total",
            "Entries committed to storage.",
            self.entries_accepted.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP log_ingestion_entries_rejected_total Entries refused, by reason.\n\
             # TYPE log_ingestion_entries_rejected_total counter\n\
             log_ingestion_entries_rejected_total{{reason=\"validation\"}} {}",
            self.entries_rejected.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP log_ingestion_requests_rejected_total Requests refused as a whole, by reason.\n\
             # TYPE log_ingestion_requests_rejected_total counter"
        );
        if let Ok(map) = self.requests_rejected.lock() {
            for (reason, count) in map.iter() {
                let _ = writeln!(
                    out,
                    "log_ingestion_requests_rejected_total{{reason=\"{reason}\"}} {count}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP log_ingestion_connections_closed_total Connections the server closed on its own, by reason.\n\
             # TYPE log_ingestion_connections_closed_total counter"
        );
        if let Ok(map) = self.connections_closed.lock() {
            for (reason, count) in map.iter() {
                let _ = writeln!(
                    out,
                    "log_ingestion_connections_closed_total{{reason=\"{reason}\"}} {count}"
                );
            }
        }
        counter(
            &mut out,
            "log_ingestion_rate_limited_total",
            "Requests refused by the per-key rate limit.",
            self.rate_limited.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "log_ingestion_server_busy_total",
            "Requests refused with 503 because the in-flight body budget was spent.",
            self.server_busy.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "log_ingestion_inflight_bytes",
            "Request body bytes admitted and not yet answered.",
            inflight_bytes,
        );
        gauge(
            &mut out,
            "log_ingestion_inflight_limit_bytes",
            "The cap on log_ingestion_inflight_bytes (LOG_INGESTION_MAX_INFLIGHT_BYTES).",
            inflight_limit_bytes,
        );
        counter(
            &mut out,
            "log_ingestion_database_errors_total",
            "Failed group commits and storage errors.",
            self.database_errors.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "log_ingestion_read_queries_cancelled_total",
            "Read queries cancelled because their client went away.",
            self.read_queries_cancelled.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP log_ingestion_request_duration_seconds Request latency by method and route.\n\
             # TYPE log_ingestion_request_duration_seconds histogram"
        );
        if let Ok(map) = self.request_latency.lock() {
            for ((method, route), histogram) in map.iter() {
                histogram.render(
                    &mut out,
                    "log_ingestion_request_duration_seconds",
                    &format!("method=\"{method}\",route=\"{route}\""),
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP log_ingestion_commit_batch_rows Rows written per group commit (replayed requests write none).\n\
             # TYPE log_ingestion_commit_batch_rows histogram"
        );
        if let Ok(histogram) = self.commit_rows.lock() {
            histogram.render(&mut out, "log_ingestion_commit_batch_rows", "");
        }
        let _ = writeln!(
            out,
            "# HELP log_ingestion_commit_duration_seconds Duration of one group commit.\n\
             # TYPE log_ingestion_commit_duration_seconds histogram"
        );
        if let Ok(histogram) = self.commit_latency.lock() {
            histogram.render(&mut out, "log_ingestion_commit_duration_seconds", "");
        }
        self.fleet.render(&mut out);
        out
    }
}

/// One metric family about policy jobs: name, type, help, the value of one job.
type PolicyJobFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PolicyJobStatus) -> u64,
);

/// The TimescaleDB policy jobs (`storage::policy_jobs`), one sample per job and policy;
/// nothing in plain mode.
pub fn render_policy_jobs(out: &mut String, jobs: &[PolicyJobStatus]) {
    if jobs.is_empty() {
        return;
    }
    let families: [PolicyJobFamily; 4] = [
        (
            "log_ingestion_policy_job_failing",
            "gauge",
            "1 when the policy job's last run (by the scheduler or the server) failed.",
            |job| u64::from(job.failing()),
        ),
        (
            "log_ingestion_policy_job_scheduler_failures",
            "gauge",
            "Failures TimescaleDB's scheduler has recorded for the policy job.",
            |job| u64::try_from(job.scheduler_failures).unwrap_or(0),
        ),
        (
            "log_ingestion_policy_job_server_runs_total",
            "counter",
            "Runs of the policy job by the server itself (CALL run_job) because the scheduler failed it.",
            |job| job.server_runs,
        ),
        (
            "log_ingestion_policy_job_server_failures_total",
            "counter",
            "Runs of the policy job by the server that failed.",
            |job| job.server_failures,
        ),
    ];
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for job in jobs {
            let _ = writeln!(
                out,
                "{name}{{policy=\"{}\",job_id=\"{}\"}} {}",
                job.policy,
                job.job_id,
                value(job)
            );
        }
    }
}

impl FleetMetrics {
    fn render(&self, out: &mut String) {
        if let Some(instance) = self.instance.get() {
            // Instance ids are restricted to characters that need no escaping here.
            let _ = writeln!(
                out,
                "# HELP log_ingestion_instance_info This server process (LOG_INGESTION_INSTANCE_ID).\n\
                 # TYPE log_ingestion_instance_info gauge\n\
                 log_ingestion_instance_info{{instance=\"{instance}\"}} 1"
            );
        }
        if !self.sharing_enabled.load(Ordering::Relaxed) {
            return;
        }
        gauge(
            out,
            "log_ingestion_rate_limit_fallback",
            "1 while the rate-limit store is unreachable and each key has this instance's own full limit.",
            u64::from(self.fallback.load(Ordering::Relaxed)),
        );
        counter(
            out,
            "log_ingestion_rate_limit_sync_failures_total",
            "Syncs with the rate-limit store that failed or timed out.",
            self.sync_failures.load(Ordering::Relaxed),
        );
        gauge(
            out,
            "log_ingestion_rate_limit_peers",
            "Other live instances seen at the last successful sync.",
            self.peers.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP log_ingestion_rate_limit_sync_duration_seconds One round trip to the rate-limit store.\n\
             # TYPE log_ingestion_rate_limit_sync_duration_seconds histogram"
        );
        if let Ok(histogram) = self.sync_latency.lock() {
            if let Some(histogram) = histogram.as_ref() {
                histogram.render(out, "log_ingestion_rate_limit_sync_duration_seconds", "");
            }
        }
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
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
        metrics.rate_limit_synced(Duration::from_millis(1), 2);
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
