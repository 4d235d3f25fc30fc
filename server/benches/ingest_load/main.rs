//! Load benchmark of the ingestion server: HTTP batch ingestion against a raw `COPY`.
//!
//! Owns one end-to-end measurement run: a fresh database on a real PostgreSQL, the
//! release `log-ingestion-server` binary started on a free port with its rate limits
//! raised out of the way, realistic entries (five metadata keys, ~100-byte message)
//! sent over HTTP at batch sizes 1, 10, 100 and 1000 from several concurrent
//! connections, and a raw text `COPY` of the same rows into the same table. It prints
//! entries/s, p50/p99 acknowledgement latency, the server's peak RSS and CPU per entry
//! per phase, the ratio of batch-100 throughput to raw COPY throughput, and a
//! fleet-shape phase (many connections each sending a small gzip batch periodically).
//!
//! It never asserts speed (speed is reported, not tested); it exits non-zero only when
//! the run itself is broken: setup failure, a non-2xx answer other than 503 "Server
//! busy" (retried, as the gem does, and counted), or rows in the table that differ
//! from the entries acknowledged. It never touches the server's code.
//!
//! Run: `cargo bench -p log_ingestion_server --bench ingest_load`
//! (cargo builds the server binary with the bench profile, which inherits release,
//! into target/release/log-ingestion-server before running this program).
//! `cargo test --benches` (or `--all-targets`) runs it without `--bench`: a few-second
//! smoke run against the debug binary that proves the program works and judges nothing.
//!
//! Environment:
//! - `BENCH_ENTRIES` entries per phase for batch sizes >= 10 and for the raw COPY
//!   (default 200000); the batch-size-1 phase sends a tenth of them (it measures
//!   request rate, not row rate).
//! - `BENCH_CONNECTIONS` concurrent HTTP connections (default 8).
//! - `BENCH_BATCH_SIZES` comma-separated batch sizes (default 1,10,100,1000).
//! - `BENCH_PAIRS` how many times raw COPY and batch 100 are measured back to back
//!   (default 3); the ratio reported is the median of the pairs, so a burst of load
//!   from other processes on the machine skews one pair, not the verdict.
//! - `BENCH_SERVER_BIN` server binary (default: the one cargo built for this bench).
//! - `DATABASE_URL` PostgreSQL to use (default: `bin/postgres-dev start`); a fresh
//!   database is created in it and dropped at the end.
//! - `BENCH_STORAGE` the server's storage mode, passed as `LOG_INGESTION_STORAGE`
//!   (`auto`, the default, `timescaledb` or `postgresql`); the mode the server ended up
//!   in is printed (from `/health`) and the raw COPY goes into that same table.
//! - `BENCH_FLEET` the fleet-shape phase: `on` (default: after the batch-size phases),
//!   `only` (alone), `off`; shaped by `BENCH_FLEET_CONNECTIONS` (256),
//!   `BENCH_FLEET_BATCH` (50 entries, gzip), `BENCH_FLEET_PERIOD_MS` (100) and
//!   `BENCH_FLEET_SECS` (20). It prints p50/p99 acknowledgement latency, entries/s,
//!   server RSS and CPU, rows == acks, the count of 503 answers and the server's CPU
//!   per entry beside its target (3.0 µs).
//! - `BENCH_ERRORS` the price of error grouping: `on` (default: after the batch-size
//!   phases), `only` (alone, no fleet phase either), `off`. Batch 100 with every tenth
//!   entry an exception (gem shape, 12-frame backtrace, 8 groups) beside the same entries
//!   not grouped, `BENCH_PAIRS` pairs in alternating order, the medians of their
//!   throughput and CPU-per-entry ratios, and the server's own share measured in process.
//!
//! At batch 100 each pair also sends the same entries as OTLP/HTTP protobuf
//! (`otlp b=100`, `POST /v1/logs`, one resource per service) and as OTLP/JSON
//! (`otlpjson b=100`), and the server's CPU per entry of the three is printed side by
//! side.
//!
//! Every phase's last columns are the server's CPU per entry in µs (its utime + stime
//! from /proc over the phase ÷ entries), which other load on the machine barely moves,
//! and the same for the bench database's PostgreSQL backends (`pg µs/e`: per row, with
//! its share of its group's transaction; the raw COPY's is the floor). The summary
//! prints the server's `pg µs/e` over the raw COPY's per batch size (`pg_ratio`), beside
//! its target.

mod config;
mod entries;
mod error_encode;
mod error_price;
mod fleet_shape;
mod http_load;
mod otlp_wire;
mod pg_ratio;
mod raw_copy;
mod report;
mod setup;

use std::time::Duration;

use config::BenchConfig;
use entries::{encode_batches, generate_entries};
use http_load::{drive_http, http_phase};
use log_ingestion_test_support::bench::{io_context, BenchError, Result};
use log_ingestion_test_support::{proc_stats, workspace_root};
use log_ingestion_wire::BatchRequest;
use otlp_wire::Wire;
use raw_copy::raw_copy;
use report::{table_header, verdict};
use setup::BenchDatabase;
use sqlx::{Connection, PgConnection};

const API_KEY: &str = "bench-api-key-0123456789abcdef";
/// The batch size whose throughput is compared with raw COPY.
const COMPARED_BATCH_SIZE: usize = 100;
/// Batch 100 at >= 85% of raw COPY, median of the pairs.
const TARGET_COPY_RATIO: f64 = 0.85;
/// Server CPU-seconds ÷ entries at batch 100, in µs.
const TARGET_MICROS_PER_ENTRY: f64 = 2.0;
const TARGET_RSS_KIB: u64 = 150 * 1024;
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

async fn run(config: &BenchConfig, database: &BenchDatabase) -> Result<()> {
    let work_dir = workspace_root().join("tmp/bench");
    std::fs::create_dir_all(&work_dir).map_err(io_context(format!("{}", work_dir.display())))?;
    let log_path = work_dir.join(format!("server-{}.log", std::process::id()));

    let server = setup::server(config, &database.url, &log_path);
    server.migrate()?;
    let server = server.serve(STARTUP_DEADLINE).await?;
    println!(
        "storage: {} (BENCH_STORAGE={}); the raw COPY loads the same table",
        setup::storage_mode(&server).await?,
        config.storage
    );
    let mut db = PgConnection::connect(&database.url).await?;

    let largest = config
        .batch_sizes
        .iter()
        .map(|&b| config.entries_for(b))
        .max()
        .unwrap_or(config.entries)
        .max(config.entries);
    let entries = generate_entries(largest);
    let startup_peak_kib = Some(server.peak_rss_kib()).filter(|kib| *kib > 0);
    let message_bytes =
        entries.iter().map(|e| e.message.len()).sum::<usize>() / entries.len().max(1);
    let body_bytes = serde_json::to_vec(&BatchRequest {
        logs: entries[..entries.len().min(1000)].to_vec(),
    })?
    .len()
        / entries.len().clamp(1, 1000);

    println!(
        "server {} (pid {}), {} connections, server log {} (kept on failure)",
        config.server_bin.display(),
        server.pid(),
        config.connections,
        log_path.display()
    );
    println!(
        "entries: ~{message_bytes}-byte message, 5 metadata keys, ~{body_bytes} JSON bytes each; \
         server peak RSS at start: {}",
        startup_peak_kib.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
    );
    println!(
        "machine: {} cores, load average {}. CPU columns, as a share of one core: the \
         server, PostgreSQL backends of the bench database, this load generator, the \
         whole machine (other users included)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        proc_stats::load_average()
    );
    println!("{}", table_header());

    // Warm-up: connections, prepared statements, allocator; not reported.
    let warmup = entries.len().min(2_000);
    drive_http(
        &server,
        encode_batches(&entries[..warmup], 100)?,
        config.connections,
        100,
        &database.name,
        Wire::Json,
    )
    .await?;

    let copy_rows = &entries[..config.entries];
    let mut reports = Vec::new();
    let mut ratios = Vec::new();
    let mut pg_per_row = pg_ratio::PgPerRow::default();
    let mut micros = Vec::new();
    let mut otlp_micros = Vec::new();
    let mut otlp_json_micros = Vec::new();
    let batch_sizes: &[usize] = if config.fleet_only || config.errors_only {
        &[]
    } else {
        &config.batch_sizes
    };
    for &batch_size in batch_sizes {
        if batch_size != COMPARED_BATCH_SIZE {
            let report = http_phase(
                &server,
                &mut db,
                &entries[..config.entries_for(batch_size)],
                batch_size,
                config.connections,
                &database.name,
                Wire::Json,
            )
            .await?;
            println!("{report}");
            pg_per_row.phase(batch_size, &report, None);
            reports.push(report);
            continue;
        }
        for _ in 0..config.pairs {
            let copy = raw_copy(&mut db, copy_rows, &database.name).await?;
            println!("{copy}");
            pg_per_row.copy(&copy);
            if copy.entries != copy_rows.len() as u64 {
                return Err(BenchError::Setup(format!(
                    "COPY stored {} rows of {}",
                    copy.entries,
                    copy_rows.len()
                )));
            }
            let report = http_phase(
                &server,
                &mut db,
                copy_rows,
                batch_size,
                config.connections,
                &database.name,
                Wire::Json,
            )
            .await?;
            println!("{report}");
            ratios.push(report.entries_per_second() / copy.entries_per_second());
            pg_per_row.phase(batch_size, &report, Some(&copy));
            micros.extend(report.server_micros_per_entry());
            reports.push(report);
            for (wire, micros) in [
                (Wire::OtlpProtobuf, &mut otlp_micros),
                (Wire::OtlpJson, &mut otlp_json_micros),
            ] {
                let otlp = http_phase(
                    &server,
                    &mut db,
                    copy_rows,
                    batch_size,
                    config.connections,
                    &database.name,
                    wire,
                )
                .await?;
                println!("{otlp}");
                micros.extend(otlp.server_micros_per_entry());
                reports.push(otlp);
            }
        }
    }
    if config.errors && !config.fleet_only {
        let pairs = error_price::run(
            &server,
            &mut db,
            copy_rows,
            COMPARED_BATCH_SIZE,
            config.connections,
            config.pairs,
            &database.name,
            config.measuring,
        )
        .await?;
        reports.extend(pairs);
    }
    if let Some(fleet) = &config.fleet {
        let report = fleet
            .run(&server, &mut db, &entries, &database.name, config.measuring)
            .await?;
        reports.push(report);
    }
    db.close().await?;

    println!();
    if let Some(median) = report::median(&mut ratios) {
        let each: Vec<String> = ratios
            .iter()
            .map(|r| format!("{:.0}%", r * 100.0))
            .collect();
        println!(
            "batch-{COMPARED_BATCH_SIZE} / raw COPY throughput: median {:.1}% of {} pairs [{}]  (target >= {:.0}%: {})",
            median * 100.0,
            ratios.len(),
            each.join(" "),
            TARGET_COPY_RATIO * 100.0,
            verdict(config.measuring, median >= TARGET_COPY_RATIO)
        );
    }
    pg_per_row.print(config.measuring);
    // In pair order: each OTLP phase is judged against the JSON phase of its own pair.
    let json_in_pairs = micros.clone();
    if let Some(json) = report::median(&mut micros) {
        println!(
            "server CPU per entry at batch {COMPARED_BATCH_SIZE}: median {json:.2} µs  (target <= {TARGET_MICROS_PER_ENTRY} µs: {})",
            verdict(config.measuring, json <= TARGET_MICROS_PER_ENTRY)
        );
        for (name, mut otlp) in [
            ("OTLP protobuf", otlp_micros),
            ("OTLP/JSON", otlp_json_micros),
        ] {
            let mut differences: Vec<f64> = otlp
                .iter()
                .zip(&json_in_pairs)
                .map(|(otlp, json)| otlp - json)
                .collect();
            let each: Vec<String> = differences.iter().map(|d| format!("{d:+.1}")).collect();
            if let (Some(median), Some(difference)) =
                (report::median(&mut otlp), report::median(&mut differences))
            {
                println!(
                    "server CPU per entry at batch {COMPARED_BATCH_SIZE}, {name}: median {median:.2} µs \
                     beside JSON's {json:.2} µs; {name} minus JSON in each pair [{}], median {difference:+.2} µs \
                     (no worse: {})",
                    each.join(" "),
                    verdict(config.measuring, difference <= 0.0)
                );
            }
        }
    }
    let peaks = reports.iter().filter_map(|r| r.peak_rss_kib);
    if let Some(peak) = peaks.chain(startup_peak_kib).max() {
        println!(
            "server peak RSS: {:.1} MiB  (target < {} MiB: {})",
            peak as f64 / 1024.0,
            TARGET_RSS_KIB / 1024,
            verdict(config.measuring, peak < TARGET_RSS_KIB)
        );
    }
    drop(server);
    // The server's log matters only when something went wrong.
    let _ = std::fs::remove_file(&log_path);
    Ok(())
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not. No other arguments.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    if !measuring {
        println!("ingest_load: smoke run (no --bench): the figures below are not a measurement");
    }
    let config = match BenchConfig::from_env(measuring) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ingest_load: {e}");
            std::process::exit(2);
        }
    };
    let database = match BenchDatabase::create(config.database_url.as_deref()).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("ingest_load: setting up the database: {e}");
            std::process::exit(1);
        }
    };
    let outcome = run(&config, &database).await;
    if let Err(e) = database.drop_database().await {
        eprintln!("ingest_load: dropping database {}: {e}", database.name);
    }
    if let Err(e) = outcome {
        eprintln!("ingest_load: {e}");
        std::process::exit(1);
    }
}
