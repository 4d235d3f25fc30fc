//! The TimescaleDB policy jobs' metrics, rendered from a snapshot at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::exposition::encode;
use crate::storage::policy_jobs::PolicyJobStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyJob {
    policy: &'static str,
    job_id: i32,
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
