//! The price of error grouping (`BENCH_ERRORS`): batch 100 with every tenth entry an
//! exception as the gem sends it, beside the same entries that the server does not
//! group (at WARNING, and the exception under another key of the same length), in
//! pairs whose order alternates, and the medians of the pairs' throughput ratios and of
//! their (server + PostgreSQL) CPU-per-entry ratios; before the pairs, the server's own
//! share measured in this process (`error_encode`).
//!
//! PostgreSQL's CPU is read twice: `pg µs/e` (the phase table's column) counts the
//! processes whose title names the bench database (the server's connections, so the
//! fold too, this program's, and an autovacuum worker of that database only while it
//! lives across both readings); `cluster µs/e` counts the whole cluster the database is
//! in (the postmaster with every child it reaped, and its live children: autovacuum,
//! TimescaleDB's jobs, the WAL writer, checkpoints), which on a shared cluster holds
//! other databases' work too, so it is exact on a cluster of its own.

use log_ingestion_test_support::bench::{BenchError, Result};
use log_ingestion_test_support::{proc_stats, ServerProcess};
use log_ingestion_wire::WireEntry;
use sqlx::PgConnection;
use std::path::PathBuf;

use crate::entries::encode_batches;
use crate::error_encode;
use crate::http_load::http_phase;
use crate::otlp_wire::Wire;
use crate::raw_copy::truncate_logs;
use crate::report::{median, verdict, PhaseReport};

/// Throughput with 10% error entries at least this share of throughput without.
const TARGET_RATIO: f64 = 0.95;

/// The entries with no error among them (ERROR entries become WARN): the baseline.
fn without_errors(entries: &[WireEntry]) -> Vec<WireEntry> {
    entries
        .iter()
        .map(|entry| {
            let mut entry = entry.clone();
            if entry.level == "ERROR" {
                entry.level = "WARN".to_owned();
            }
            entry
        })
        .collect()
}

/// The same entries as nothing the server groups: ERROR becomes WARNING (a level the
/// other entries do not have, as ERROR: as many per-minute rollup keys on both sides)
/// and `exception` becomes `exceptio_` (same length), so both sides send, parse and
/// store the same entries but for grouping.
fn ungrouped(entries: &[WireEntry]) -> Vec<WireEntry> {
    entries
        .iter()
        .map(|entry| {
            let mut entry = entry.clone();
            if entry.level == "ERROR" {
                entry.level = "WARNING".to_owned();
            }
            if let Some(serde_json::Value::Object(metadata)) = entry.metadata.as_mut() {
                if let Some(exception) = metadata.remove("exception") {
                    metadata.insert("exceptio_".to_owned(), exception);
                }
            }
            entry
        })
        .collect()
}

/// The entries with every tenth one an exception as the gem sends it (metadata
/// `exception` with class, message and a 12-frame backtrace), of 8 kinds.
fn with_exceptions(entries: &[WireEntry]) -> Vec<WireEntry> {
    const CLASSES: [&str; 4] = [
        "NoMethodError",
        "ActiveRecord::RecordNotFound",
        "Stripe::CardError",
        "Redis::TimeoutError",
    ];
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let mut entry = entry.clone();
            if i % 10 != 0 {
                return entry;
            }
            let kind = (i / 10) % 8;
            let mut backtrace: Vec<String> = (0..8)
                .map(|frame| {
                    format!(
                        "actionpack (7.1.2) lib/action_controller/metal/frame_{frame}.rb:{}:in `call'",
                        10 + frame
                    )
                })
                .collect();
            backtrace.insert(
                3,
                format!("app/controllers/orders_controller.rb:{}:in `action_{kind}'", 20 + i % 7),
            );
            backtrace.extend((0..3).map(|frame| format!("app/models/order.rb:{frame}:in `save'")));
            entry.level = "ERROR".to_owned();
            if let Some(serde_json::Value::Object(metadata)) = entry.metadata.as_mut() {
                metadata.insert(
                    "exception".to_owned(),
                    serde_json::json!({
                        "class": CLASSES[kind % CLASSES.len()],
                        "message": format!("undefined method `total' for nil (order {i})"),
                        "backtrace": backtrace,
                    }),
                );
            }
            entry
        })
        .collect()
}

/// (server + PostgreSQL backends) CPU µs per entry of a phase, if both were read.
fn cpu_micros_per_entry(report: &PhaseReport) -> Option<f64> {
    Some(report.server_micros_per_entry()? + report.postgres_micros_per_entry()?)
}

/// The data directory of the cluster `db` is on, when it says (a superuser, or
/// `pg_read_all_settings`) and it is on this machine.
async fn data_directory(db: &mut PgConnection) -> Option<PathBuf> {
    let dir: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(db)
        .await
        .ok()?;
    let dir = PathBuf::from(dir);
    dir.join("postmaster.pid").exists().then_some(dir)
}

/// `values` sorted, as `[a b c]` percentages, and their median.
fn median_of(mut values: Vec<f64>) -> Option<(f64, String)> {
    let median = median(&mut values)?;
    let each: Vec<String> = values.iter().map(|r| format!("{:.0}", r * 100.0)).collect();
    Some((median, format!("[{}]", each.join(" "))))
}

/// Runs `pairs` pairs of phases at `batch_size` (without first in even pairs, with
/// first in odd ones, so what one phase leaves to the next, the fold of its last
/// occurrences or a vacuum, falls on both sides alike), prints each, and returns the
/// reports.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    server: &ServerProcess,
    db: &mut PgConnection,
    entries: &[WireEntry],
    batch_size: usize,
    connections: usize,
    pairs: usize,
    database: &str,
    measuring: bool,
) -> Result<Vec<PhaseReport>> {
    let failing = with_exceptions(&without_errors(entries));
    let clean = ungrouped(&failing);
    let (encode_clean, encode_failing) = error_encode::measure(
        &encode_batches(&clean, batch_size)?,
        &encode_batches(&failing, batch_size)?,
        measuring,
    )?;
    println!(
        "server's own work per entry in this process (read, validate, encode, fingerprint and tally; fastest of rounds): \
         not grouped {encode_clean:.3} µs, 10% errors {encode_failing:.3} µs: +{:.3} µs per entry, +{:.2} µs per error entry",
        encode_failing - encode_clean,
        (encode_failing - encode_clean) * 10.0
    );
    let cluster = data_directory(db).await;
    let cluster_cpu = || {
        cluster
            .as_deref()
            .and_then(proc_stats::postgres_cluster_cpu_seconds)
    };
    let mut reports = Vec::new();
    let mut throughput = Vec::new();
    let mut cpu = Vec::new();
    let mut cluster_ratios = Vec::new();
    for pair in 0..pairs {
        let load = proc_stats::load_average();
        let mut sides = Vec::new();
        for grouped in [pair % 2 == 1, pair % 2 == 0] {
            let (phase_entries, label) = if grouped {
                (&failing, "10% errors")
            } else {
                (&clean, "not grouped")
            };
            // The previous phase's rows go before the reading starts.
            truncate_logs(db).await?;
            let cluster_before = cluster_cpu();
            let mut report = http_phase(
                server,
                db,
                phase_entries,
                batch_size,
                connections,
                database,
                Wire::Json,
            )
            .await?;
            let cluster_micros = cluster_cpu()
                .zip(cluster_before)
                .map(|(after, before)| (after - before) * 1e6 / report.entries.max(1) as f64);
            report.label = format!("b={batch_size} {label}");
            println!(
                "{report}  cluster µs/e {}",
                cluster_micros.map_or_else(|| "-".to_owned(), |us| format!("{us:.2}"))
            );
            sides.push((grouped, report, cluster_micros));
        }
        let (Some(second), Some(first)) = (sides.pop(), sides.pop()) else {
            return Err(BenchError::Setup("a pair without two sides".to_owned()));
        };
        let ((_, without, cluster_without), (_, with, cluster_with)) = if first.0 {
            (second, first)
        } else {
            (first, second)
        };
        let cluster_ratio = without
            .server_micros_per_entry()
            .zip(cluster_without)
            .zip(with.server_micros_per_entry().zip(cluster_with))
            .map(|((server_without, pg_without), (server_with, pg_with))| {
                (server_without + pg_without) / (server_with + pg_with)
            });
        cluster_ratios.extend(cluster_ratio);
        let ratio = with.entries_per_second() / without.entries_per_second();
        throughput.push(ratio);
        let cpu_ratio = cpu_micros_per_entry(&without)
            .zip(cpu_micros_per_entry(&with))
            .map(|(without, with)| without / with);
        cpu.extend(cpu_ratio);
        let percent =
            |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0));
        println!(
            "  pair {}: with / without entries/s {:.1}%; CPU per entry without / with: (srv+pg) {}, (srv+cluster) {}  (load {load})",
            pair + 1,
            ratio * 100.0,
            percent(cpu_ratio),
            percent(cluster_ratio),
        );
        reports.push(without);
        reports.push(with);
    }
    if let Some((median, each)) = median_of(throughput) {
        println!(
            "batch-{batch_size} with 10% error entries / the same entries not grouped: entries/s median {:.1}% of {pairs} pairs {each}  (target >= {:.0}%: {})",
            median * 100.0,
            TARGET_RATIO * 100.0,
            verdict(measuring, median >= TARGET_RATIO)
        );
    }
    if let Some((median, each)) = median_of(cpu) {
        println!(
            "batch-{batch_size} (server + PostgreSQL) CPU per entry, not grouped / 10% errors: median {:.1}% of {pairs} pairs {each}  (target >= {:.0}%: {})",
            median * 100.0,
            TARGET_RATIO * 100.0,
            verdict(measuring, median >= TARGET_RATIO)
        );
    }
    if let Some((median, each)) = median_of(cluster_ratios) {
        println!(
            "batch-{batch_size} (server + PostgreSQL cluster) CPU per entry, not grouped / 10% errors: median {:.1}% of {pairs} pairs {each}",
            median * 100.0,
        );
    }
    Ok(reports)
}
