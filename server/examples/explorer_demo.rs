//! The whole HTTP surface (probes, ingest, read API, explorer) on one listener, built
//! from the library's public pieces, for the explorer's browser test and for trying the
//! explorer before `startup` merges the read router itself.
//!
//!   DATABASE_URL=... LOG_INGESTION_API_KEYS=ingest-key \
//!   LOG_INGESTION_ADMIN_API_KEYS=admin-key LOG_INGESTION_PORT=0 \
//!   cargo run -p log_ingestion_server --example explorer_demo
//!
//! Prints `explorer_demo listening on http://HOST:PORT` once it accepts connections,
//! and stops on Ctrl-C, SIGTERM, or when its standard input closes.

#[allow(unused_imports)]
use log_ingestion_server::{auth, config, error, storage};

// Until `pub mod read;` is in lib.rs, the read module is compiled in from its source.
#[path = "../src/read/mod.rs"]
#[allow(dead_code, unused_imports)]
mod read;

use std::sync::Arc;

use log_ingestion_server::config::Settings;
use log_ingestion_server::metrics::Metrics;
use log_ingestion_server::rate_limit::ApiRateLimiter;
use log_ingestion_server::startup::build_router;
use log_ingestion_server::state::AppState;
use log_ingestion_server::storage::GroupCommitter;
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    log_ingestion_server::telemetry::init();
    let settings = Settings::from_env()?;
    let admin_keys =
        read::AdminKeys::parse(&std::env::var("LOG_INGESTION_ADMIN_API_KEYS").unwrap_or_default());
    if admin_keys.is_empty() {
        tracing::warn!("LOG_INGESTION_ADMIN_API_KEYS is empty: every read request will be refused");
    }
    let pool = storage::pool(&settings.database)?;
    storage::migrate(&pool).await?;
    let storage_mode = storage::detect_mode(&pool).await?;
    let metrics = Arc::new(Metrics::default());
    let (committer, writer) =
        GroupCommitter::start(pool.clone(), settings.group_commit, Arc::clone(&metrics));
    let listener = tokio::net::TcpListener::bind(settings.listen_address()).await?;
    let state = AppState {
        pool: pool.clone(),
        storage_mode,
        limiter: Arc::new(ApiRateLimiter::new(settings.rate_limit)),
        settings: Arc::new(settings),
        committer,
        metrics,
    };
    let context = read::ReadContext::new(pool, storage_mode, read::TailSettings::default());
    let router = build_router(state).merge(read::router(context.clone(), admin_keys));
    println!(
        "explorer_demo listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            stop_requested().await;
            // Live tails never finish on their own; end them so shutdown is prompt.
            context.close_tails();
        })
        .await?;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
    Ok(())
}

async fn stop_requested() {
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 64];
        while matches!(stdin.read(&mut buffer).await, Ok(n) if n > 0) {}
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
        _ = stdin_closed => {}
    }
}
