//! `ReadPool`: the read side's own database connections, so that reading never takes
//! the writers' (ingest) connections, with every bound on read work:
//!
//! - a small pool (`LOG_INGESTION_READ_MAX_CONNECTIONS`) whose size is also the number
//!   of read queries at once: a request (or a live tail's poll) takes a slot, waits at
//!   most `LOG_INGESTION_READ_QUEUE_WAIT` for one, and is otherwise refused with
//!   [`ReadError::Busy`] (503 `Server busy`);
//! - a `statement_timeout` (`LOG_INGESTION_READ_STATEMENT_TIMEOUT`) set on each read
//!   connection when it is opened (a startup parameter, no extra round trip), so no
//!   read query outlives it ([`ReadError::QueryTimedOut`]);
//! - cancellation of a query whose request went away. Dropping a sqlx future mid-query
//!   does not stop the query: the server keeps running it, and sqlx waits for it to end
//!   before the connection can be used again, so an abandoned 30-day search would hold
//!   its slot until the timeout. A [`ReadConnection`] dropped with a query in flight
//!   therefore asks PostgreSQL to cancel that backend (`pg_cancel_backend`, over a
//!   one-connection side pool that is never full of slow queries) and gives the
//!   connection and its slot back only once the query has stopped.
//!
//! Read connections are read-only (`default_transaction_read_only`). This module never
//! writes and never touches the writers' pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ReadError;
use crate::config::{DatabaseSettings, ReadSettings};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::storage::StorageError;

/// `application_name` of read connections, so they can be told apart in
/// `pg_stat_activity`.
pub const READ_APPLICATION_NAME: &str = "log-ingestion-read";
/// How long a cancellation may take (reaching the side connection and the call
/// itself) before giving up and leaving the query to its `statement_timeout`.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// The read side's connections and their bounds. Cheap to clone; clones share them.
#[derive(Clone)]
pub struct ReadPool {
    queries: PgPool,
    /// One connection used only to cancel abandoned queries.
    canceller: PgPool,
    /// One permit per connection of `queries`: holding one means a connection is free.
    slots: Arc<Semaphore>,
    queue_wait: Duration,
    statement_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl ReadPool {
    /// A lazily connecting read pool on `database_url` (today the primary's
    /// `DATABASE_URL`; a read replica's URL works the same way).
    pub fn connect_lazy(
        database_url: &str,
        database: &DatabaseSettings,
        settings: &ReadSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StorageError> {
        let options: PgConnectOptions = database_url.parse().map_err(StorageError::InvalidUrl)?;
        let read_options = options
            .clone()
            .application_name(READ_APPLICATION_NAME)
            .options([
                (
                    "statement_timeout",
                    format!("{}ms", settings.statement_timeout.as_millis().max(1)),
                ),
                ("default_transaction_read_only", "on".to_owned()),
            ]);
        let queries = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(database.acquire_timeout)
            .connect_lazy_with(read_options);
        let canceller = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CANCEL_TIMEOUT)
            .connect_lazy_with(options.application_name("log-ingestion-read-cancel"));
        Ok(ReadPool {
            queries,
            canceller,
            slots: Arc::new(Semaphore::new(settings.max_connections as usize)),
            queue_wait: settings.queue_wait,
            statement_timeout: settings.statement_timeout,
            metrics,
        })
    }

    /// A connection for one read: waits at most the queue wait for a free slot
    /// ([`ReadError::Busy`] after that), then takes a connection of the pool.
    pub async fn acquire(&self) -> Result<ReadConnection, ReadError> {
        let slot = tokio::time::timeout(self.queue_wait, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| ReadError::Busy)?
            .map_err(|_| ReadError::Busy)?;
        let mut connection = self.queries.acquire().await?;
        // Needed to cancel this connection's query should its request go away; one
        // short round trip, as sqlx does not expose the backend's process id.
        let backend_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *connection)
            .await?;
        Ok(ReadConnection {
            connection: Some(connection),
            slot: Some(slot),
            backend_pid,
            in_query: false,
            drain_timeout: self.statement_timeout + CANCEL_TIMEOUT,
            canceller: self.canceller.clone(),
            metrics: Arc::clone(&self.metrics),
        })
    }
}

/// One read's connection and slot. Run queries through [`ReadConnection::run`]; if
/// this is dropped while a query runs (the request went away), the query is cancelled
/// before the connection and slot are given back.
pub struct ReadConnection {
    connection: Option<PoolConnection<Postgres>>,
    slot: Option<OwnedSemaphorePermit>,
    backend_pid: i32,
    in_query: bool,
    /// The longest an abandoned query may still run: its timeout plus the cancel's.
    drain_timeout: Duration,
    canceller: PgPool,
    metrics: Arc<Metrics>,
}

impl ReadConnection {
    /// Runs `query` on this connection, marked as in flight until it returns.
    pub async fn run<'c, T, F, Fut>(&'c mut self, query: F) -> Result<T, ReadError>
    where
        F: FnOnce(&'c mut PgConnection) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>> + 'c,
    {
        let Some(connection) = self.connection.as_mut() else {
            return Err(ReadError::Api(ApiError::Internal(
                "a read connection was used after it was given back".to_owned(),
            )));
        };
        self.in_query = true;
        let result = query(connection).await;
        self.in_query = false;
        Ok(result?)
    }
}

impl Drop for ReadConnection {
    fn drop(&mut self) {
        if !self.in_query {
            return;
        }
        let (Some(connection), slot) = (self.connection.take(), self.slot.take()) else {
            return;
        };
        // Without a runtime (the process is ending) the statement_timeout still ends it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.metrics.read_query_cancelled();
        let canceller = self.canceller.clone();
        let backend_pid = self.backend_pid;
        let drain_timeout = self.drain_timeout;
        runtime.spawn(async move {
            let cancel = sqlx::query_scalar::<_, bool>("SELECT pg_cancel_backend($1)")
                .bind(backend_pid)
                .fetch_one(&canceller);
            match tokio::time::timeout(CANCEL_TIMEOUT, cancel).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot cancel an abandoned read query; it runs until its statement_timeout");
                }
                Err(_) => {
                    tracing::warn!("cancelling an abandoned read query timed out; it runs until its statement_timeout");
                }
            }
            // The connection goes back once its (cancelled) query has ended. The first
            // ping reads the rest of the query's answer (ending in the cancellation's
            // error), the second proves the connection usable; otherwise it is closed.
            // Only then is the slot free again, so the pool never has more queries
            // running than slots.
            let mut connection = connection;
            let drained = tokio::time::timeout(drain_timeout, async {
                for _ in 0..2 {
                    if sqlx::Connection::ping(&mut *connection).await.is_ok() {
                        return true;
                    }
                }
                false
            })
            .await;
            if !matches!(drained, Ok(true)) {
                connection.close_on_drop();
            }
            drop(connection);
            drop(slot);
        });
    }
}
