//! Tracing setup: `RUST_LOG` filters (default `info`), `LOG_INGESTION_LOG_FORMAT=json`
//! switches to JSON lines. It owns the global subscriber and never logs request
//! headers, so API keys never reach the logs.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber; a second call is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let json = std::env::var("LOG_INGESTION_LOG_FORMAT").is_ok_and(|format| format == "json");
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
