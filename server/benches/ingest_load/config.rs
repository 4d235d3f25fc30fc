//! The run's settings, read once from the environment (`BENCH_*`, `DATABASE_URL`).

use std::path::PathBuf;

use crate::fleet_shape::FleetShape;
use log_ingestion_test_support::bench::{BenchError, Result};

const DEFAULT_ENTRIES: usize = 200_000;
const DEFAULT_CONNECTIONS: usize = 8;
const DEFAULT_BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];
const DEFAULT_PAIRS: usize = 3;
/// Entries per phase in a smoke run (`cargo test --benches`).
const SMOKE_ENTRIES: usize = 2_000;

/// Settings of one run, read once from the environment.
pub(crate) struct BenchConfig {
    pub(crate) entries: usize,
    pub(crate) connections: usize,
    pub(crate) batch_sizes: Vec<usize>,
    pub(crate) pairs: usize,
    pub(crate) measuring: bool,
    pub(crate) server_bin: PathBuf,
    pub(crate) database_url: Option<String>,
    pub(crate) storage: String,
    /// `BENCH_FLEET`: `on` (default) runs the fleet-shape phase after the batch-size
    /// phases, `only` runs it alone, `off` skips it.
    pub(crate) fleet: Option<FleetShape>,
    pub(crate) fleet_only: bool,
    /// `BENCH_ERRORS`: `on` (default) runs the error-grouping pairs after the batch-size
    /// phases, `only` runs them alone (no fleet phase either), `off` skips them.
    pub(crate) errors: bool,
    pub(crate) errors_only: bool,
}

impl BenchConfig {
    /// `measuring` is false when cargo runs this target as a test (`cargo test
    /// --benches` or `--all-targets` pass no `--bench`): then a small smoke run proves
    /// the program works without spending minutes on it.
    pub(crate) fn from_env(measuring: bool) -> Result<Self> {
        let (default_entries, default_pairs) = if measuring {
            (DEFAULT_ENTRIES, DEFAULT_PAIRS)
        } else {
            (SMOKE_ENTRIES, 1)
        };
        let entries = env_usize("BENCH_ENTRIES", default_entries)?;
        let connections = env_usize("BENCH_CONNECTIONS", DEFAULT_CONNECTIONS)?;
        let pairs = env_usize("BENCH_PAIRS", default_pairs)?.max(1);
        let batch_sizes = match std::env::var("BENCH_BATCH_SIZES") {
            Ok(list) => list
                .split(',')
                .map(|s| s.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| BenchError::Setup(format!("BENCH_BATCH_SIZES={list:?}: {e}")))?,
            Err(_) => DEFAULT_BATCH_SIZES.to_vec(),
        };
        if entries == 0 || connections == 0 || batch_sizes.contains(&0) {
            return Err(BenchError::Setup(
                "BENCH_ENTRIES, BENCH_CONNECTIONS and batch sizes must be positive".into(),
            ));
        }
        let server_bin = std::env::var_os("BENCH_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_log-ingestion-server")));
        let database_url = std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty());
        let storage = std::env::var("BENCH_STORAGE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "auto".into());
        let fleet_setting = std::env::var("BENCH_FLEET").unwrap_or_else(|_| "on".into());
        let (fleet, fleet_only) = match fleet_setting.as_str() {
            "on" | "" => (Some(FleetShape::from_env(measuring)?), false),
            "only" => (Some(FleetShape::from_env(measuring)?), true),
            "off" => (None, false),
            other => {
                return Err(BenchError::Setup(format!(
                    "BENCH_FLEET={other:?}: must be on, only or off"
                )))
            }
        };
        let (errors, errors_only) = match std::env::var("BENCH_ERRORS").as_deref() {
            Ok("on") | Ok("") | Err(_) => (true, false),
            Ok("only") => (true, true),
            Ok("off") => (false, false),
            Ok(other) => {
                return Err(BenchError::Setup(format!(
                    "BENCH_ERRORS={other:?}: must be on, only or off"
                )))
            }
        };
        Ok(Self {
            fleet: if errors_only { None } else { fleet },
            fleet_only,
            errors,
            errors_only,
            entries,
            connections,
            batch_sizes,
            pairs,
            measuring,
            server_bin,
            database_url,
            storage,
        })
    }

    /// Entries sent in the phase of this batch size.
    pub(crate) fn entries_for(&self, batch_size: usize) -> usize {
        if batch_size == 1 {
            (self.entries / 10).max(1)
        } else {
            self.entries
        }
    }
}

pub(crate) fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|e| BenchError::Setup(format!("{name}={v:?}: {e}"))),
        Err(_) => Ok(default),
    }
}
