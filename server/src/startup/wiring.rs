//! The parts an application is wired from: the read side's context (its own pool), the
//! alerts API's context, the shared rate limits' task, and the router of the whole HTTP
//! surface.

use std::sync::Arc;

use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::trace::TraceLayer;

use crate::alerts::sender::Sender;
use crate::config::Settings;
use crate::ingest::rate_limit::ApiRateLimiter;
use crate::ingest::{self, shared_rate_limits};
use crate::metrics::Metrics;
use crate::read::{self, AdminKeys, QueryLimits, ReadContext, ReadPool, TailSettings};
use crate::routes;
use crate::state::AppState;
use crate::storage::{StorageError, StorageMode};

/// With `LOG_INGESTION_SHARED_RATE_LIMITS=on`, the task that keeps this instance's
/// shares of each key's limit (see `ingest::shared_rate_limits`).
pub(super) fn spawn_shared_rate_limits(
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
pub(super) fn read_context_for(
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

/// The alerts API's context; alerts link to the explorer under
/// `LOG_INGESTION_EXTERNAL_URL`, by default this server's own address.
pub(super) fn alerts_context(
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

/// The whole HTTP surface: probes, ingest, and the read side (query API and explorer),
/// which carries its own admin-key check and so sits outside the ingest auth layers.
pub(super) fn build_router(
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
        .merge(crate::alerts::api::router(
            alerts,
            alert_sender,
            admin_keys.clone(),
        ))
        .merge(crate::saved_searches::router(
            read_context.clone(),
            state.pool.clone(),
            admin_keys.clone(),
        ))
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
