//! TimescaleDB's policy jobs on `logs` (compression and retention) and on its rollups
//! (the continuous aggregates' refresh, see `rollup`): watched every
//! `LOG_INGESTION_POLICY_CHECK_INTERVAL`, and run by the server itself (`CALL run_job`)
//! when the background scheduler fails them or never runs them, so compression and
//! retention happen anyway (on PostgreSQL 15.20 the scheduler fails every policy job
//! with `cannot drop portal "" while it is being set up`). Owns the status that
//! `/health` and `/metrics` report. It never creates, alters or removes a policy (that
//! is `timescale` and `retention`), and does nothing in plain PostgreSQL mode.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;
use tokio::task::JoinHandle;

use super::job_locks::RUN_LOCK_CLASS;

/// Longest error text kept from TimescaleDB's job history or a failed `run_job`, in
/// bytes: the text comes from the database and is shown in `/health`.
const MAX_ERROR_BYTES: usize = 300;

/// What the server knows about one policy job.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyJobStatus {
    pub job_id: i32,
    /// `compression`, `retention` or `rollup_refresh`.
    pub policy: &'static str,
    /// The scheduler's last result (`Success`, `Failed`), `None` when it never ran it.
    pub scheduler_last_status: Option<String>,
    /// Failures the scheduler has recorded for this job.
    pub scheduler_failures: i64,
    /// The last error the scheduler recorded, capped at 300 bytes.
    pub scheduler_last_error: Option<String>,
    /// Runs by the server itself (`CALL run_job`), and how many of them failed.
    pub server_runs: u64,
    pub server_failures: u64,
    /// The last error of a run by the server, capped; `None` after a success.
    pub server_last_error: Option<String>,
}

impl PolicyJobStatus {
    /// Failing: the scheduler's last run failed, or the server's own last run did.
    pub fn failing(&self) -> bool {
        self.scheduler_last_status.as_deref() == Some("Failed") || self.server_last_error.is_some()
    }
}

/// A shared, cheap-to-clone view of the policy jobs' status; empty in plain mode and
/// until the first check.
#[derive(Debug, Clone, Default)]
pub struct PolicyJobs {
    jobs: Arc<Mutex<Vec<PolicyJobStatus>>>,
}

impl PolicyJobs {
    pub fn snapshot(&self) -> Vec<PolicyJobStatus> {
        self.jobs
            .lock()
            .map(|jobs| jobs.clone())
            .unwrap_or_default()
    }

    fn replace(&self, jobs: Vec<PolicyJobStatus>) {
        if let Ok(mut current) = self.jobs.lock() {
            *current = jobs;
        }
    }
}

/// One job as TimescaleDB describes it at a check.
#[derive(Debug, Clone, sqlx::FromRow)]
struct ObservedJob {
    job_id: i32,
    proc_name: String,
    scheduled: bool,
    schedule_interval_secs: f64,
    last_run_status: Option<String>,
    total_failures: i64,
    succeeded_within_interval: bool,
    last_error: Option<String>,
}

const OBSERVE: &str = "\
SELECT j.job_id, j.proc_name::text AS proc_name, j.scheduled, \
       EXTRACT(epoch FROM j.schedule_interval)::float8 AS schedule_interval_secs, \
       s.last_run_status, COALESCE(s.total_failures, 0)::int8 AS total_failures, \
       COALESCE(s.last_successful_finish > now() - j.schedule_interval, false) \
         AS succeeded_within_interval, \
       (SELECT left(e.err_message, 300) FROM timescaledb_information.job_errors e \
         WHERE e.job_id = j.job_id ORDER BY e.finish_time DESC NULLS LAST LIMIT 1) AS last_error \
FROM timescaledb_information.jobs j \
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id \
WHERE j.hypertable_schema = current_schema() \
  AND j.hypertable_name IN ('logs', 'logs_per_minute', 'logs_per_hour') \
  AND j.proc_name IN ('policy_compression', 'policy_retention', \
                      'policy_refresh_continuous_aggregate') \
ORDER BY j.job_id";

/// The server's own record of its runs of one job.
#[derive(Debug, Clone, Default)]
struct ServerRuns {
    runs: u64,
    failures: u64,
    last_success: Option<Instant>,
    last_error: Option<String>,
}

/// Whether the server should run the job itself now: it is scheduled (not paused by
/// an operator), the scheduler has not succeeded with it within its interval, its last
/// scheduler run failed or it never ran, and the server has not itself run it
/// successfully within the interval (so a job is run at most once per interval).
fn should_run(job: &ObservedJob, runs: &ServerRuns, now: Instant) -> bool {
    let scheduler_failing = job.last_run_status.as_deref() == Some("Failed");
    let scheduler_never_ran = job.last_run_status.is_none();
    let interval = Duration::from_secs_f64(job.schedule_interval_secs.max(0.0));
    let ran_recently = runs
        .last_success
        .is_some_and(|at| now.saturating_duration_since(at) < interval);
    job.scheduled
        && !job.succeeded_within_interval
        && (scheduler_failing || scheduler_never_ran)
        && !ran_recently
}

fn policy_name(proc_name: &str) -> &'static str {
    match proc_name {
        "policy_compression" => "compression",
        "policy_retention" => "retention",
        "policy_refresh_continuous_aggregate" => "rollup_refresh",
        _ => "other",
    }
}

/// Cuts `text` to at most `MAX_ERROR_BYTES` on a character boundary.
fn capped(mut text: String) -> String {
    if text.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Checks the jobs every `every` (the first check after one interval, so that the
/// scheduler has had its chance), runs failing ones, and publishes the status. The same
/// task keeps the rollups refreshed between the policies' runs (`rollup_refresh`).
pub fn spawn_watcher(pool: PgPool, status: PolicyJobs, every: Duration) -> JoinHandle<()> {
    let refresher = super::rollup_refresh::run(pool.clone(), super::rollup_refresh::CHECK_EVERY);
    let watcher = async move {
        let mut runs: std::collections::HashMap<i32, ServerRuns> = Default::default();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(error) = check_once(&pool, &status, &mut runs).await {
                tracing::warn!(%error, "cannot check TimescaleDB policy jobs; will retry");
            }
        }
    };
    tokio::spawn(async move {
        tokio::join!(watcher, refresher);
    })
}

/// Runs `job_id` with `CALL run_job` unless another session holds its run lock: `Ok(true)`
/// when it ran, `Ok(false)` when another instance is running it. The lock is a session
/// lock on one connection, released right after (a broken connection releases it too).
async fn run_job_alone(pool: &PgPool, job_id: i32) -> Result<bool, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(RUN_LOCK_CLASS)
        .bind(job_id)
        .fetch_one(&mut *connection)
        .await?;
    if !locked {
        return Ok(false);
    }
    let ran = sqlx::query("CALL run_job($1)")
        .bind(job_id)
        .execute(&mut *connection)
        .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
        .bind(RUN_LOCK_CLASS)
        .bind(job_id)
        .execute(&mut *connection)
        .await;
    if unlocked.is_err() {
        // Never hand a connection that may still hold the lock back to the pool.
        connection.close_on_drop();
    }
    ran.map(|_| true)
}

async fn check_once(
    pool: &PgPool,
    status: &PolicyJobs,
    runs: &mut std::collections::HashMap<i32, ServerRuns>,
) -> Result<(), sqlx::Error> {
    let observed: Vec<ObservedJob> = sqlx::query_as(OBSERVE).fetch_all(pool).await?;
    // Forget jobs that no longer exist (a restart re-creates the retention policy).
    runs.retain(|id, _| observed.iter().any(|job| job.job_id == *id));
    let mut report = Vec::with_capacity(observed.len());
    for job in observed {
        let policy = policy_name(&job.proc_name);
        let record = runs.entry(job.job_id).or_default();
        if should_run(&job, record, Instant::now()) {
            tracing::warn!(
                job_id = job.job_id,
                policy,
                scheduler_status = job.last_run_status.as_deref().unwrap_or("never ran"),
                scheduler_error = job.last_error.as_deref().unwrap_or(""),
                "TimescaleDB's scheduler is not running this policy job; the server runs it"
            );
            match run_job_alone(pool, job.job_id).await {
                Ok(false) => {
                    // Another instance of the fleet is running it right now.
                    tracing::debug!(
                        job_id = job.job_id,
                        policy,
                        "policy job already running elsewhere"
                    );
                }
                Ok(true) => {
                    record.runs += 1;
                    record.last_success = Some(Instant::now());
                    record.last_error = None;
                    tracing::info!(job_id = job.job_id, policy, "policy job run by the server");
                }
                Err(error) => {
                    record.runs += 1;
                    record.failures += 1;
                    record.last_error = Some(capped(error.to_string()));
                    tracing::warn!(job_id = job.job_id, policy, %error, "policy job failed when run by the server");
                }
            }
        }
        report.push(PolicyJobStatus {
            job_id: job.job_id,
            policy,
            scheduler_last_status: job.last_run_status,
            scheduler_failures: job.total_failures,
            scheduler_last_error: job.last_error.map(capped),
            server_runs: record.runs,
            server_failures: record.failures,
            server_last_error: record.last_error.clone(),
        });
    }
    status.replace(report);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(last_run_status: Option<&str>) -> ObservedJob {
        ObservedJob {
            job_id: 1000,
            proc_name: "policy_compression".to_owned(),
            scheduled: true,
            schedule_interval_secs: 3_600.0,
            last_run_status: last_run_status.map(str::to_owned),
            total_failures: 0,
            succeeded_within_interval: false,
            last_error: None,
        }
    }

    #[test]
    fn a_job_the_scheduler_fails_or_never_runs_is_run_by_the_server() {
        let now = Instant::now();
        assert!(should_run(
            &job(Some("Failed")),
            &ServerRuns::default(),
            now
        ));
        assert!(should_run(&job(None), &ServerRuns::default(), now));
        assert!(!should_run(
            &job(Some("Success")),
            &ServerRuns::default(),
            now
        ));
    }

    #[test]
    fn a_job_is_left_alone_when_paused_recently_successful_or_just_run_by_the_server() {
        let now = Instant::now();
        let paused = ObservedJob {
            scheduled: false,
            ..job(Some("Failed"))
        };
        assert!(!should_run(&paused, &ServerRuns::default(), now));
        let scheduler_ok_earlier = ObservedJob {
            succeeded_within_interval: true,
            ..job(Some("Failed"))
        };
        assert!(!should_run(
            &scheduler_ok_earlier,
            &ServerRuns::default(),
            now
        ));
        let just_ran = ServerRuns {
            last_success: Some(now),
            ..ServerRuns::default()
        };
        assert!(!should_run(&job(Some("Failed")), &just_ran, now));
        let ran_long_ago = ServerRuns {
            last_success: Some(now),
            ..ServerRuns::default()
        };
        assert!(should_run(
            &job(Some("Failed")),
            &ran_long_ago,
            now + Duration::from_secs(3_601)
        ));
    }

    #[test]
    fn errors_are_capped_on_a_character_boundary() {
        let long = "é".repeat(400);
        let cut = capped(long);
        assert!(cut.len() <= MAX_ERROR_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_job_is_failing_when_either_runner_failed_last() {
        let mut status = PolicyJobStatus {
            job_id: 1,
            policy: "retention",
            scheduler_last_status: Some("Success".to_owned()),
            scheduler_failures: 0,
            scheduler_last_error: None,
            server_runs: 0,
            server_failures: 0,
            server_last_error: None,
        };
        assert!(!status.failing());
        status.server_last_error = Some("boom".to_owned());
        assert!(status.failing());
        status.server_last_error = None;
        status.scheduler_last_status = Some("Failed".to_owned());
        assert!(status.failing());
    }
}
