//! The price of error grouping (`BENCH_ERRORS`): batch 100 with every tenth entry an
//! exception as the gem sends it, beside the same bytes that the server does not group
//! (WARN, and the exception under another key of the same length), in pairs, and the
//! median throughput ratio.

use log_ingestion_test_support::bench::Result;
use log_ingestion_test_support::ServerProcess;
use log_ingestion_wire::WireEntry;
use sqlx::PgConnection;

use crate::http_load::http_phase;
use crate::otlp_wire::Wire;
use crate::report::{verdict, PhaseReport};

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

/// The same entries as nothing the server groups: ERROR becomes WARN and `exception`
/// becomes `exceptio_` (same length), so both sides send, parse and store the same bytes.
fn ungrouped(entries: &[WireEntry]) -> Vec<WireEntry> {
    without_errors(entries)
        .into_iter()
        .map(|mut entry| {
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

/// Runs `pairs` pairs of phases at `batch_size`, prints each, and returns the reports.
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
    let mut reports = Vec::new();
    let mut prices = Vec::new();
    for _ in 0..pairs {
        let mut without = http_phase(
            server,
            db,
            &clean,
            batch_size,
            connections,
            database,
            Wire::Json,
        )
        .await?;
        without.label = format!("b={batch_size} not grouped");
        println!("{without}");
        let mut with = http_phase(
            server,
            db,
            &failing,
            batch_size,
            connections,
            database,
            Wire::Json,
        )
        .await?;
        with.label = format!("b={batch_size} 10% errors");
        println!("{with}");
        prices.push(with.entries_per_second() / without.entries_per_second());
        reports.push(without);
        reports.push(with);
    }
    prices.sort_by(f64::total_cmp);
    if let Some(&median) = prices.get(prices.len() / 2) {
        let each: Vec<String> = prices
            .iter()
            .map(|r| format!("{:.0}%", r * 100.0))
            .collect();
        println!(
            "batch-{batch_size} with 10% error entries / the same bytes not grouped: median {:.1}% of {} pairs [{}]  (target >= {:.0}%: {})",
            median * 100.0,
            prices.len(),
            each.join(" "),
            TARGET_RATIO * 100.0,
            verdict(measuring, median >= TARGET_RATIO)
        );
    }
    Ok(reports)
}
