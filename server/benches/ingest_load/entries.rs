//! The load: realistic entries, deterministic, and their request bodies (JSON, gzip),
//! encoded before the clock starts.

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use log_ingestion_wire::{BatchRequest, WireEntry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use log_ingestion_test_support::bench::{io_context, Result};

/// Realistic entries: a ~100-byte message and five metadata keys, deterministic.
pub(crate) fn generate_entries(count: usize) -> Vec<WireEntry> {
    pub(crate) const SERVICES: [&str; 4] = ["web", "api-gateway", "billing-worker", "search"];
    pub(crate) const LEVELS: [&str; 10] = [
        "INFO", "INFO", "INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR", "INFO",
    ];
    pub(crate) const PATHS: [&str; 5] = [
        "/api/v1/orders",
        "/api/v1/users/profile",
        "/checkout/payment",
        "/search",
        "/admin/reports/daily",
    ];
    pub(crate) const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
    let mut rng = StdRng::seed_from_u64(0x10_6e57);
    let now = Utc::now();
    (0..count)
        .map(|i| {
            let path = PATHS[rng.random_range(0..PATHS.len())];
            let method = METHODS[rng.random_range(0..METHODS.len())];
            let status: u16 = [200, 200, 200, 201, 204, 302, 404, 500][rng.random_range(0..8)];
            let duration_ms: f64 = (rng.random_range(0.5..900.0_f64) * 100.0).round() / 100.0;
            let user_id: u64 = rng.random_range(1..5_000_000);
            let request_id = format!("{:032x}", rng.random::<u128>());
            let timestamp = now - chrono::Duration::milliseconds(rng.random_range(0..600_000));
            let message = format!(
                "Completed {status} {method} {path} in {duration_ms}ms for user {user_id} (views: {}ms, db: {}ms, host web-{:02})",
                rng.random_range(0..400),
                rng.random_range(0..400),
                rng.random_range(1..13),
            );
            WireEntry {
                timestamp: timestamp.to_rfc3339_opts(SecondsFormat::Micros, true),
                service: SERVICES[i % SERVICES.len()].to_owned(),
                level: LEVELS[rng.random_range(0..LEVELS.len())].to_owned(),
                message,
                metadata: Some(serde_json::json!({
                    "request_id": request_id,
                    "user_id": user_id,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                })),
            }
        })
        .collect()
}

/// Request bodies for one phase, serialised before the clock starts.
pub(crate) fn encode_batches(
    entries: &[WireEntry],
    batch_size: usize,
) -> Result<Vec<(usize, Bytes)>> {
    entries
        .chunks(batch_size)
        .map(|chunk| {
            let body = serde_json::to_vec(&BatchRequest {
                logs: chunk.to_vec(),
            })?;
            Ok((chunk.len(), Bytes::from(body)))
        })
        .collect()
}

/// Gzip request bodies of `batch_size` entries, compressed before the clock starts.
pub(crate) fn gzip_batches(
    entries: &[WireEntry],
    batch_size: usize,
) -> Result<Vec<(usize, Bytes)>> {
    use std::io::Write;
    encode_batches(entries, batch_size)?
        .into_iter()
        .map(|(len, body)| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&body).map_err(io_context("gzip"))?;
            Ok((len, Bytes::from(gz.finish().map_err(io_context("gzip"))?)))
        })
        .collect()
}
