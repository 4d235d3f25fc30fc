//! The read side: the query API (`/api/v1/logs`, `/api/v1/logs/export`,
//! `/api/v1/logs/fields`, `/api/v1/logs/{id}/context`, `/api/v1/logs/histogram`,
//! `/api/v1/logs/tail`, `/api/v1/services`) behind admin keys,
//! and the log explorer page at `/`.
//!
//! It owns read-only SQL over the `logs` table and the explorer's embedded assets. Its
//! queries run on its own bounded connections (`pool`), never the writers'. It never
//! writes to the database and never accepts ingestion keys: reading needs a key from
//! `LOG_INGESTION_ADMIN_API_KEYS`.

pub(crate) mod auth;
pub(crate) mod counts;
pub(crate) mod cursor;
pub(crate) mod error;
#[cfg(any(test, feature = "test-support"))]
mod explain;
mod explorer;
mod export;
mod fields;
pub(crate) mod filters;
mod histogram;
mod pool;
pub(crate) mod rows;
pub(crate) mod search;
mod services;
mod sparse;
mod tail;
pub(crate) mod time_bounds;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Router};
use tokio::sync::{watch, Semaphore};

use crate::storage::declared_keys::{DeclaredKeys, LiveDeclaredKeys};
use crate::storage::StorageMode;

pub use auth::AdminKeys;
#[cfg(any(test, feature = "test-support"))]
pub use explain::{
    explain_histogram_query, explain_page_query, explain_page_windows, explain_services_query,
    ExplainedWindow,
};
pub use filters::QueryLimits;
pub use pool::{ReadConnection, ReadPool, READ_APPLICATION_NAME};
pub use tail::TailSettings;

/// What every read handler needs. Cheap to clone.
#[derive(Clone)]
pub struct ReadContext {
    reads: ReadPool,
    mode: StorageMode,
    tail: TailSettings,
    tail_slots: Arc<Semaphore>,
    /// One permit per export running (`export::MAX_STREAMS`).
    export_slots: Arc<Semaphore>,
    /// How long an export waits for its client to take a chunk (`export::STALL`).
    export_stall: std::time::Duration,
    /// Set once the server shuts down; live tails end when it is.
    closing: Arc<watch::Sender<bool>>,
    query_limits: QueryLimits,
    /// The declared metadata keys (`storage::declared_keys`), as last read.
    declared: Arc<LiveDeclaredKeys>,
}

impl ReadContext {
    pub fn new(reads: ReadPool, mode: StorageMode, tail: TailSettings) -> Self {
        ReadContext {
            reads,
            mode,
            tail,
            tail_slots: Arc::new(Semaphore::new(tail.max_streams)),
            export_slots: Arc::new(Semaphore::new(export::MAX_STREAMS)),
            export_stall: export::STALL,
            closing: Arc::new(watch::Sender::new(false)),
            query_limits: QueryLimits::default(),
            declared: Arc::new(LiveDeclaredKeys::new(DeclaredKeys::default())),
        }
    }

    /// The same context with `limits` on the nesting a query may carry.
    pub fn with_query_limits(self, limits: QueryLimits) -> Self {
        ReadContext {
            query_limits: limits,
            ..self
        }
    }

    /// The same context, told which metadata keys are declared (the ingest side's
    /// view, refreshed with it), so that `meta.KEY=VALUE` filters on them are written
    /// for their columns.
    pub fn with_declared_keys(self, declared: Arc<LiveDeclaredKeys>) -> Self {
        ReadContext { declared, ..self }
    }

    /// The same context, whose exports stop (and give their slot back) once their
    /// client has taken nothing for `stall`.
    pub fn with_export_stall(self, stall: std::time::Duration) -> Self {
        ReadContext {
            export_stall: stall,
            ..self
        }
    }

    /// How long an export waits for its client to take the next chunk.
    pub(crate) fn export_stall(&self) -> std::time::Duration {
        self.export_stall
    }

    /// The filter of a request's parameters, written for this server's indexes.
    pub(crate) fn filter(
        &self,
        params: &mut filters::Params,
        now: chrono::DateTime<chrono::Utc>,
    ) -> filters::LogFilter {
        filters::LogFilter::parse(params, now).with_metadata_indexes(self.declared.current().keys())
    }

    /// `filter` written for this server's indexes (the declared keys' columns).
    pub(crate) fn indexed(&self, filter: filters::LogFilter) -> filters::LogFilter {
        filter.with_metadata_indexes(self.declared.current().keys())
    }

    /// The declared metadata keys, as last read.
    pub(crate) fn declared_keys(&self) -> Vec<String> {
        self.declared.current().keys().to_vec()
    }

    /// Ends every live tail (now and from now on), so that a graceful shutdown is not
    /// held up by streams that would otherwise never finish. Call it when shutdown
    /// begins; clones of this context share the signal.
    pub fn close_tails(&self) {
        self.closing.send_replace(true);
    }

    /// Whether shutdown has begun ([`Self::close_tails`]).
    pub(crate) fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// The storage mode the server runs in.
    pub(crate) fn mode(&self) -> StorageMode {
        self.mode
    }

    /// The read side's connections.
    pub fn reads(&self) -> &ReadPool {
        &self.reads
    }

    /// The bounds on a query's user-controlled nesting.
    pub(crate) fn query_limits(&self) -> QueryLimits {
        self.query_limits
    }
}

/// The read side's routes, ready to be merged into the server's router.
///
/// The API routes carry their own admin-key check, so merge this router after the
/// ingest side's authentication layers have been applied to the ingest routes only.
pub fn router<S>(context: ReadContext, admin_keys: AdminKeys) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let admin_keys = Arc::new(admin_keys);
    let api = Router::new()
        .route("/api/v1/logs", get(search::list))
        .route("/api/v1/logs/export", get(export::export))
        .route("/api/v1/logs/fields", get(fields::fields))
        .route("/api/v1/logs/histogram", get(histogram::histogram))
        .route("/api/v1/logs/tail", get(tail::tail))
        .route("/api/v1/logs/{id}/context", get(search::context))
        .route("/api/v1/services", get(services::list))
        .route_layer(middleware::from_fn_with_state(
            context.query_limits,
            bound_query_shape,
        ))
        .route_layer(middleware::from_fn_with_state(
            admin_keys,
            auth::require_admin_key,
        ));
    Router::new()
        .merge(api)
        .merge(explorer::router())
        .with_state(context)
}

/// Middleware: refuses a query whose user-controlled nesting (`meta.*` paths and their
/// JSON values) passes `limits`, before any handler builds anything from it.
pub(crate) async fn bound_query_shape(
    State(limits): State<QueryLimits>,
    request: Request,
    next: Next,
) -> Response {
    let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri());
    // A query that cannot be decoded is the handlers' 400 to give, with its reason.
    if let Ok(axum::extract::Query(pairs)) = pairs {
        if let Err(problems) = filters::check_shape(&pairs, &limits) {
            return error::ReadError::InvalidQuery(problems).into_response();
        }
    }
    next.run(request).await
}

/// The query string as pairs, in order, or a 400 saying why it cannot be read.
pub(crate) type QueryPairs =
    Result<axum::extract::Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

pub(crate) fn params_from(query: QueryPairs) -> Result<filters::Params, error::ReadError> {
    match query {
        Ok(axum::extract::Query(pairs)) => Ok(filters::Params::new(pairs)),
        Err(rejection) => Err(error::ReadError::invalid(format!(
            "the query string cannot be decoded: {}",
            crate::ingest::client_text::truncated(
                &rejection.body_text(),
                crate::ingest::client_text::MAX_MESSAGE_BYTES
            )
        ))),
    }
}
