//! `AppState`: what the server's own handlers and middleware may use (probes, ingest,
//! metrics; the read side has its own `read::ReadContext`). It holds handles only; it
//! never owns background work.

use std::sync::Arc;

use sqlx::PgPool;

use crate::alerts::delivery_status::DeliveryStatus;
use crate::config::Settings;
use crate::ingest::inflight::InflightBudget;
use crate::ingest::rate_limit::ApiRateLimiter;
use crate::metrics::Metrics;
use crate::storage::declared_keys::LiveDeclaredKeys;
use crate::storage::policy_jobs::PolicyJobs;
use crate::storage::write_health::WriteHealth;
use crate::storage::{GroupCommitter, StorageMode};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub storage_mode: StorageMode,
    pub settings: Arc<Settings>,
    pub committer: GroupCommitter,
    pub limiter: Arc<ApiRateLimiter>,
    pub metrics: Arc<Metrics>,
    pub inflight: InflightBudget,
    /// TimescaleDB policy jobs as last checked (empty in plain mode).
    pub policy_jobs: PolicyJobs,
    /// The declared metadata keys whose columns every row fills.
    pub declared: Arc<LiveDeclaredKeys>,
    /// Whether writes work: the last group commit's or write probe's outcome.
    pub write_health: Arc<WriteHealth>,
    /// How alert delivery fares (`alerts::delivery_status`).
    pub alert_delivery: Arc<DeliveryStatus>,
    /// How alert rule evaluation fares (`alerts::evaluation_status`).
    pub alert_evaluation: Arc<crate::alerts::evaluation_status::EvaluationStatus>,
}
