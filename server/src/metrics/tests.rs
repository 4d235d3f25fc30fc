//! The metrics as a scraper reads them.

use std::time::Duration;

use super::*;
use crate::storage::policy_jobs::PolicyJobStatus;

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
        text.contains("log_ingestion_policy_job_failing{policy=\"compression\",job_id=\"1000\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "log_ingestion_policy_job_server_runs_total{policy=\"compression\",job_id=\"1000\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "log_ingestion_policy_job_scheduler_failures{policy=\"compression\",job_id=\"1000\"} 3"
        ),
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
    metrics.shared_rate_limits_enabled();
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
