//! The listener's side of a running application: accepting connections within the
//! connection caps of `ingest::connections`, serving each over HTTP/1.1 with a bounded
//! read buffer and a header read timeout, counting why each closed, and, at shutdown,
//! waiting for the requests in flight.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::config::ConnectionSettings;
use crate::ingest::connections::{ConnectionBudget, ConnectionSlot, UNAUTHENTICATED_EVICTED};
use crate::metrics::Metrics;

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Largest read buffer of one connection. hyper's default (~400 KiB) is kept by every
/// connection that once received a large body, outside the in-flight budget: with 256
/// connections sending 1000-entry batches that alone pushed the server past 150 MB.
const CONNECTION_READ_BUFFER_BYTES: usize = 64 * 1024;

/// Accepts connections and serves `router` on each until `shutdown` resolves; then stops
/// accepting and waits for the connections' requests in flight (idle connections close).
/// Each connection needs a slot of `budget` (else it is closed at once), is closed when
/// a newer one evicts it from the unauthenticated budget, and must send each request
/// head within the header read timeout (else hyper closes it).
pub(super) async fn serve_connections(
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
