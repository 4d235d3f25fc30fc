//! Builds and runs the application: pool, schema checks (`storage::schema`: `serve`
//! changes no existing schema), storage mode, the declared keys' refresh, retention, the
//! policy-job watcher (TimescaleDB), the group committer, the router (`wiring`), the
//! listener and the connections it accepts (`listener`). Tests call
//! `Application::build` exactly as `main` does. It owns the background tasks it starts
//! ([`OwnedTask`]: aborted when the application is dropped, so a build that fails, or
//! an application never run, leaves none behind) and the shutdown sequence: stop
//! accepting, let requests in flight finish (their groups commit), let the alert
//! notifications being sent finish, stop the writer, all within a deadline.

mod listener;
mod wiring;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use futures::FutureExt;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::alerts::delivery_status::DeliveryStatus;
use crate::alerts::{delivery, sender::Sender};
use crate::config::Settings;
use crate::ingest::inflight::InflightBudget;
use crate::ingest::rate_limit::ApiRateLimiter;
use crate::metrics::Metrics;
use crate::read::ReadContext;
use crate::state::AppState;
use crate::storage::declared_keys::{self, LiveDeclaredKeys};
use crate::storage::policy_jobs::{self, PolicyJobs};
use crate::storage::write_health::WriteHealth;
use crate::storage::{self, retention, GroupCommitter, StorageError, StorageMode};
use listener::serve_connections;
use wiring::{alerts_context, build_router, read_context_for, spawn_shared_rate_limits};

/// How often retention and idempotency expiry run.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3_600);
/// Extra time the writer gets after the deadline to finish a group already started.
const WRITER_GRACE: Duration = Duration::from_secs(2);

/// Failures that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start alert delivery: {0}")]
    AlertDelivery(String),
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
    #[error("{0}")]
    AlertRules(String),
}

/// A background task the application started: aborted when dropped, unless
/// [`OwnedTask::into_handle`] handed it over first.
#[derive(Debug)]
pub struct OwnedTask(Option<JoinHandle<()>>);

impl OwnedTask {
    pub fn new(handle: JoinHandle<()>) -> Self {
        OwnedTask(Some(handle))
    }

    /// The task, no longer aborted on drop.
    pub fn into_handle(mut self) -> Option<JoinHandle<()>> {
        self.0.take()
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// A server ready to run. Dropping it without running it stops what it started.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    read_context: ReadContext,
    /// Ends when every writer has; the writers stop on their own once every committer
    /// handle (router, state) is gone, after writing what was submitted.
    writer: OwnedTask,
    maintenance: OwnedTask,
    /// TimescaleDB's policy-job watcher; `None` in plain mode.
    policy_watcher: Option<OwnedTask>,
    rate_limit_sync: Option<OwnedTask>,
    /// Reads the declared metadata keys again, now and then.
    schema_refresh: OwnedTask,
    /// Sends the alert notifications (`alerts::delivery`); stopped after the requests.
    alert_delivery: OwnedTask,
    alert_delivery_stop: delivery::DeliveryStop,
    alert_delivery_grace: Duration,
    /// The alert rules' evaluator and the rules file's reloader (`alerts::start`).
    alert_tasks: Vec<OwnedTask>,
    shutdown_deadline: Duration,
}

impl Application {
    /// Connects, checks the schema (`storage::schema`: an existing one is never
    /// changed) and detects the storage mode, probes a write, binds, then starts
    /// the background tasks (writer, maintenance, policy-job watcher, rate-limit sync,
    /// declared-keys refresh). Each task is owned from its start ([`OwnedTask`]) and a
    /// failure closes the pool, so a failed build leaves nothing running and no database
    /// connection open.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let pool = storage::pool(&settings.database)?;
        match Self::build_on(pool.clone(), settings).await {
            Ok(application) => Ok(application),
            Err(error) => {
                pool.close().await;
                Err(error)
            }
        }
    }

    async fn build_on(pool: PgPool, settings: Settings) -> Result<Self, StartupError> {
        // Schema changes on an existing database are `migrate`'s: this only checks.
        let storage_mode = storage::schema::prepare_for_serve(&pool, &settings.database).await?;
        let declared = Arc::new(LiveDeclaredKeys::new(
            declared_keys::declared_in(&pool).await?,
        ));
        let retention_days = retention::declared_days(&pool)
            .await
            .map_err(StorageError::from)?;
        tracing::info!(
            storage = %storage_mode,
            setting = %settings.database.storage,
            retention_days = ?retention_days,
            reads = if settings.database.read_url.is_some() { "read database" } else { "primary" },
            shared_rate_limits = settings.shared_rate_limits.is_some(),
            "storage ready"
        );
        // Migrations can succeed where writes fail (no privilege to insert, a database
        // read-only, a server that can no longer load its libraries): name the error now.
        let write_health = Arc::new(WriteHealth::default());
        if let Err(error) = write_health.check(&pool).await {
            tracing::error!(
                %error,
                "a test write into logs failed: /health and /readyz answer 503 until writes work"
            );
        }
        let address = settings.listen_address();
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| StartupError::Bind { address, source })?;
        let metrics = Arc::new(Metrics::default());
        metrics.set_instance(settings.instance_id.as_str());
        let read_context = read_context_for(&settings, storage_mode, &metrics)?
            .with_declared_keys(Arc::clone(&declared));
        let limiter = Arc::new(ApiRateLimiter::new(
            settings.rate_limit,
            settings.api_keys.iter().count(),
        ));
        let rate_limit_sync =
            spawn_shared_rate_limits(&settings, &limiter, &metrics)?.map(OwnedTask::new);
        let policy_jobs = PolicyJobs::default();
        let policy_watcher = (storage_mode == StorageMode::Timescale).then(|| {
            OwnedTask::new(policy_jobs::spawn_watcher(
                pool.clone(),
                policy_jobs.clone(),
                settings.policy_check_interval,
            ))
        });
        let (committer, writer) = GroupCommitter::start(
            pool.clone(),
            settings.group_commit,
            Arc::clone(&metrics),
            Arc::clone(&declared),
            Arc::clone(&write_health),
        );
        let writer = OwnedTask::new(writer);
        let schema_refresh = OwnedTask::new(declared_keys::spawn_refresh(
            pool.clone(),
            Arc::clone(&declared),
            settings.database.schema_refresh_interval,
        ));
        let maintenance = OwnedTask::new(retention::spawn_maintenance(
            pool.clone(),
            storage_mode,
            MAINTENANCE_INTERVAL,
        ));
        let alert_sender = Sender::new(
            settings.alert_delivery.request_timeout,
            settings.alert_delivery.blocked_networks.clone(),
        )
        .map_err(|error| StartupError::AlertDelivery(error.to_string()))?;
        let alert_delivery_status = Arc::new(DeliveryStatus::default());
        let (alert_delivery, alert_delivery_stop) = delivery::spawn(
            pool.clone(),
            settings.alert_delivery.clone(),
            alert_sender.clone(),
            Arc::clone(&alert_delivery_status),
        );
        let alert_delivery = OwnedTask::new(alert_delivery);
        let alert_delivery_grace = settings.alert_delivery.request_timeout + WRITER_GRACE;
        let alerts = alerts_context(&settings, &listener, &read_context, &pool);
        let alert_evaluation =
            Arc::new(crate::alerts::evaluation_status::EvaluationStatus::default());
        let alert_tasks: Vec<OwnedTask> = crate::alerts::start(
            &settings.alert_rules,
            &pool,
            &read_context,
            &alerts.external_url,
            Arc::clone(&alert_evaluation),
        )
        .await
        .map_err(|error| StartupError::AlertRules(error.to_string()))?
        .into_iter()
        .map(OwnedTask::new)
        .collect();
        let shutdown_deadline = settings.shutdown_deadline;
        let state = AppState {
            pool,
            storage_mode,
            limiter,
            inflight: InflightBudget::new(settings.max_inflight_bytes, settings.inflight_wait),
            settings: Arc::new(settings),
            committer,
            metrics,
            policy_jobs,
            declared,
            write_health,
            alert_delivery: alert_delivery_status,
            alert_evaluation,
        };
        Ok(Application {
            listener,
            router: build_router(state.clone(), read_context.clone(), alert_sender, alerts),
            state,
            read_context,
            writer,
            maintenance,
            policy_watcher,
            rate_limit_sync,
            schema_refresh,
            alert_delivery,
            alert_delivery_stop,
            alert_delivery_grace,
            alert_tasks,
            shutdown_deadline,
        })
    }

    /// The address actually bound (port 0 becomes a real port).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn storage_mode(&self) -> StorageMode {
        self.state.storage_mode
    }

    /// Serves until `shutdown` resolves, then drains: in-flight requests finish and
    /// their groups commit; after the deadline remaining connections are abandoned.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let Application {
            listener,
            router,
            state,
            read_context,
            writer,
            maintenance,
            policy_watcher,
            rate_limit_sync,
            schema_refresh,
            alert_delivery,
            alert_delivery_stop,
            alert_delivery_grace,
            alert_tasks,
            shutdown_deadline,
        } = self;
        let connection_limits = state.settings.connections;
        let metrics = Arc::clone(&state.metrics);
        drop(state);
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, "listening");
        }
        let shutdown = async move {
            shutdown.await;
            // Live tails never finish on their own; end them so draining is prompt.
            read_context.close_tails();
        }
        .shared();
        let served = {
            let serve = serve_connections(
                listener,
                router,
                connection_limits,
                metrics,
                shutdown.clone(),
            );
            tokio::pin!(serve);
            tokio::select! {
                result = &mut serve => result.map_err(StartupError::Serve),
                () = async {
                    shutdown.await;
                    tracing::info!(deadline = ?shutdown_deadline, "shutting down: finishing requests in flight");
                    tokio::time::sleep(shutdown_deadline).await;
                } => {
                    tracing::warn!("shutdown deadline passed with requests still open");
                    Ok(())
                }
            }
        };
        drop((
            maintenance,
            policy_watcher,
            rate_limit_sync,
            schema_refresh,
            alert_tasks,
        ));
        // Alert requests in flight finish and are recorded (else they would be sent
        // again once their claims expire); past the grace the worker is aborted.
        alert_delivery_stop.stop();
        if let Some(mut delivery) = alert_delivery.into_handle() {
            if tokio::time::timeout(alert_delivery_grace, &mut delivery)
                .await
                .is_err()
            {
                delivery.abort();
            }
        }
        // Every committer handle lives in the router; once it is gone the writer
        // finishes what was submitted and stops.
        let Some(writer) = writer.into_handle() else {
            return served;
        };
        match tokio::time::timeout(WRITER_GRACE, writer).await {
            Ok(_) => tracing::info!("all groups committed; stopped"),
            Err(_) => tracing::warn!("writer still busy after the grace period; stopping anyway"),
        }
        served
    }
}
