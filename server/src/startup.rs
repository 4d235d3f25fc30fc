//! Builds and runs the application: pool, schema checks (`storage::schema`: `serve`
//! changes no existing schema), storage mode, the declared keys' refresh, retention, the
//! policy-job watcher (TimescaleDB), the group committer, the router, the listener and
//! the connections it accepts (each with a bounded read buffer and a header read
//! timeout, within the connection caps of `ingest::connections`). Tests call
//! `Application::build` exactly as `main` does. It owns the background tasks it starts
//! ([`OwnedTask`]: aborted when the application is dropped, so a build that fails, or
//! an application never run, leaves none behind) and the shutdown sequence: stop
//! accepting, let requests in flight finish (their groups commit), let the alert
//! notifications being sent finish, stop the writer, all within a deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use futures::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tower_http::trace::TraceLayer;

use crate::alerts::delivery_status::DeliveryStatus;
use crate::alerts::{delivery, sender::Sender};
use crate::config::{ConnectionSettings, Settings};
use crate::ingest::connections::{ConnectionBudget, ConnectionSlot, UNAUTHENTICATED_EVICTED};
use crate::ingest::inflight::InflightBudget;
use crate::ingest::rate_limit::ApiRateLimiter;
use crate::ingest::{self, shared_rate_limits};
use crate::metrics::Metrics;
use crate::read::{self, AdminKeys, QueryLimits, ReadContext, ReadPool, TailSettings};
use crate::routes;
use crate::state::AppState;
use crate::storage::declared_keys::{self, LiveDeclaredKeys};
use crate::storage::policy_jobs::{self, PolicyJobs};
use crate::storage::write_health::WriteHealth;
use crate::storage::{self, retention, GroupCommitter, StorageError, StorageMode};

/// How often retention and idempotency expiry run.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3_600);
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
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
        let alert_sender = Sender::new(settings.alert_delivery.request_timeout)
            .map_err(|error| StartupError::AlertDelivery(error.to_string()))?;
        let alert_delivery_status = Arc::new(DeliveryStatus::default());
        let (alert_delivery, alert_delivery_stop) = delivery::spawn(
            pool.clone(),
            settings.alert_delivery,
            alert_sender.clone(),
            Arc::clone(&alert_delivery_status),
        );
        let alert_delivery = OwnedTask::new(alert_delivery);
        let alert_delivery_grace = settings.alert_delivery.request_timeout + WRITER_GRACE;
        let alerts = alerts_context(&settings, &listener, &read_context, &pool);
        let alert_tasks: Vec<OwnedTask> = crate::alerts::start(
            &settings.alert_rules,
            &pool,
            &read_context,
            &alerts.external_url,
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

/// Largest read buffer of one connection. hyper's default (~400 KiB) is kept by every
/// connection that once received a large body, outside the in-flight budget: with 256
/// connections sending 1000-entry batches that alone pushed the server past 150 MB.
const CONNECTION_READ_BUFFER_BYTES: usize = 64 * 1024;

/// Accepts connections and serves `router` on each until `shutdown` resolves; then stops
/// accepting and waits for the connections' requests in flight (idle connections close).
/// Each connection needs a slot of `budget` (else it is closed at once), is closed when
/// a newer one evicts it from the unauthenticated budget, and must send each request
/// head within the header read timeout (else hyper closes it).
async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ConnectionSettings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = http1_builder(limits.header_read_timeout);
    let budget = ConnectionBudget::new(
        limits.max_connections,
        limits.max_unauthenticated_connections,
    );
    let connections = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match budget.admit() {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics.connection_closed(refusal.reason());
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let trust = slot.trust();
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(trust.clone());
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(serve_admitted(connection, slot, Arc::clone(&metrics)));
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// The connection settings: HTTP/1.1 only (all the gem speaks; the automatic HTTP/2
/// detection reads the first bytes with no deadline, so a silent connection would never
/// time out), a bounded read buffer, and the header read timeout.
fn http1_builder(header_read_timeout: Duration) -> ConnectionBuilder<TokioExecutor> {
    let mut builder = ConnectionBuilder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .max_buf_size(CONNECTION_READ_BUFFER_BYTES)
        // Without a timer hyper ignores the header read timeout altogether.
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder
}

/// Serves one admitted connection until it ends or a newer connection evicts it from
/// the unauthenticated budget, counting why it closed; its slot is freed on return.
async fn serve_admitted(
    connection: impl Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
    mut slot: ConnectionSlot,
    metrics: Arc<Metrics>,
) {
    let evicted = slot.evicted();
    let ended = tokio::select! {
        // Eviction first: a request that arrives in the same poll is then never served
        // on a connection about to be dropped unanswered.
        biased;
        () = evicted => {
            // A newer connection needed this one's unauthenticated slot: dropping the
            // connection closes its socket.
            metrics.connection_closed(UNAUTHENTICATED_EVICTED);
            Ok(())
        }
        ended = connection => ended,
    };
    if let Err(error) = ended {
        let timed_out = error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout);
        if timed_out {
            metrics.connection_closed("header_timeout");
        }
        tracing::debug!(%error, "connection ended with an error");
    }
    drop(slot);
}

/// With `LOG_INGESTION_SHARED_RATE_LIMITS=on`, the task that keeps this instance's
/// shares of each key's limit (see `ingest::shared_rate_limits`).
fn spawn_shared_rate_limits(
    settings: &Settings,
    limiter: &Arc<ApiRateLimiter>,
    metrics: &Arc<Metrics>,
) -> Result<Option<JoinHandle<()>>, StorageError> {
    let Some(shared) = settings.shared_rate_limits.clone() else {
        return Ok(None);
    };
    let fingerprints = settings
        .api_keys
        .iter()
        .map(|key| key.fingerprint().to_owned())
        .collect();
    shared_rate_limits::spawn(
        shared,
        settings.instance_id.clone(),
        fingerprints,
        Arc::clone(limiter),
        Arc::clone(metrics),
    )
    .map(Some)
    .map_err(StorageError::InvalidUrl)
}

/// The read side's context: its own pool (reads never take the writers' connections),
/// on `LOG_INGESTION_READ_DATABASE_URL` when set (a streaming replica) and the
/// primary's URL otherwise, with the query nesting held to the metadata depth cap
/// (nothing deeper can be stored).
fn read_context_for(
    settings: &Settings,
    storage_mode: StorageMode,
    metrics: &Arc<Metrics>,
) -> Result<ReadContext, StorageError> {
    let pool = ReadPool::connect_lazy(
        settings
            .database
            .read_url
            .as_deref()
            .unwrap_or(&settings.database.url),
        &settings.database,
        &settings.read,
        Arc::clone(metrics),
    )?;
    Ok(
        ReadContext::new(pool, storage_mode, TailSettings::default()).with_query_limits(
            QueryLimits {
                max_metadata_depth: settings.limits.max_metadata_depth,
            },
        ),
    )
}

/// The whole HTTP surface: probes, ingest, and the read side (query API and explorer),
/// which carries its own admin-key check and so sits outside the ingest auth layers.
/// The alerts API's context; alerts link to the explorer under
/// `LOG_INGESTION_EXTERNAL_URL`, by default this server's own address.
fn alerts_context(
    settings: &Settings,
    listener: &TcpListener,
    read_context: &ReadContext,
    pool: &PgPool,
) -> crate::alerts::api::AlertsContext {
    let external_url = settings
        .alert_rules
        .external_url
        .clone()
        .unwrap_or_else(|| {
            let address = listener
                .local_addr()
                .unwrap_or_else(|_| settings.listen_address());
            format!("http://{address}")
        });
    crate::alerts::api::AlertsContext {
        read: read_context.clone(),
        writes: pool.clone(),
        external_url,
    }
}

fn build_router(
    state: AppState,
    read_context: ReadContext,
    alert_sender: Sender,
    alerts: crate::alerts::api::AlertsContext,
) -> Router {
    let sign_in =
        crate::auth::admission::SignIn::new(state.pool.clone(), state.settings.sign_in.clone());
    let admin_keys = AdminKeys::new(state.settings.admin_api_keys.clone())
        .with_ingest_keys(state.settings.api_keys.clone())
        .with_sign_in(std::sync::Arc::clone(&sign_in));
    Router::new()
        .merge(routes::probes_router())
        .merge(ingest::router(state.clone()))
        .merge(ingest::otlp_router(state.clone()))
        .merge(crate::errors::api::router(
            read_context.clone(),
            state.pool.clone(),
            admin_keys.clone(),
        ))
        .merge(crate::alerts::routes::router(
            state.pool.clone(),
            alert_sender,
            admin_keys.clone(),
        ))
        .merge(crate::alerts::api::router(alerts, admin_keys.clone()))
        .merge(crate::auth::routes::router(sign_in, admin_keys.clone()))
        .merge(read::router(read_context, admin_keys))
        .merge(routes::unknown_api_router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            routes::record_request_metrics,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
