//! The log ingestion service: authenticated, rate-limited, durable ingestion of
//! structured logs into PostgreSQL or TimescaleDB, and the query API and log explorer
//! that read them back (`read`). `startup::Application` is the whole server; `main.rs`
//! only reads configuration and runs it.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod errors;
pub mod ingest;
pub mod instance;
pub mod metrics;
pub mod read;
pub mod routes;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;

/// The layering the module comments promise, checked on the sources: the pure checks
/// (`auth`, `rate_limit`) never reach back into the state, the routes that call them or
/// the HTTP error, and `domain` never imports HTTP things.
#[cfg(test)]
mod layering {
    fn imports(source: &str) -> Vec<&str> {
        source
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with("use ") || line.contains("crate::"))
            .filter(|line| !line.starts_with("//"))
            .collect()
    }

    fn assert_never_uses(file: &str, source: &str, forbidden: &[&str]) {
        for line in imports(source) {
            for path in forbidden {
                assert!(!line.contains(path), "{file} uses {path}: {line}");
            }
        }
    }

    #[test]
    fn the_checks_never_import_the_state_or_the_routes() {
        let http_side = [
            "crate::state",
            "crate::routes",
            "axum::middleware",
            "axum::extract",
        ];
        assert_never_uses("auth/mod.rs", include_str!("auth/mod.rs"), &http_side);
        // A refusal becomes an HTTP answer at the caller (`routes::middleware`, `read::auth`).
        assert_never_uses(
            "auth/mod.rs",
            include_str!("auth/mod.rs"),
            &["crate::error"],
        );
        assert_never_uses(
            "ingest/rate_limit.rs",
            include_str!("ingest/rate_limit.rs"),
            &http_side,
        );
        assert_never_uses(
            "ingest/rate_limit.rs",
            include_str!("ingest/rate_limit.rs"),
            &["crate::error", "crate::auth"],
        );
    }

    #[test]
    fn the_domain_never_imports_http() {
        let http = ["crate::error", "crate::routes", "crate::state", "axum"];
        assert_never_uses("domain/mod.rs", include_str!("domain/mod.rs"), &http);
        assert_never_uses(
            "domain/log_entry.rs",
            include_str!("domain/log_entry.rs"),
            &http,
        );
        assert_never_uses(
            "domain/metadata.rs",
            include_str!("domain/metadata.rs"),
            &http,
        );
        assert_never_uses("domain/text.rs", include_str!("domain/text.rs"), &http);
    }
}
