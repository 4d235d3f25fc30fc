//! The fleet benchmark (it judges nothing): the same load through
//! HAProxy to 1, 2 and 3 instances (`FLEET_INSTANCES`), printing entries/s, p50/p99
//! acknowledgement latency, and the CPU each part used (instances, HAProxy, the
//! primary's and the replica's PostgreSQL processes, this load generator) as a share
//! of the run's wall time × cores. Also the on-disk size of the rows and, when the
//! primary has TimescaleDB, nothing more: compression is measured in docs/operations.md's
//! procedure, not here.
//!
//! Run (release server, as in docs/operations.md, "Scaling"):
//! `cargo bench -p log_ingestion_server --bench fleet_throughput` (cargo builds the
//! server with the bench profile; `LOG_INGESTION_TESTED_BIN` runs another build).
//! Without `--bench` (`cargo test --benches`) it only says it is skipped: a fleet takes
//! minutes to start and needs haproxy.
//! Environment: `BENCH_ENTRIES` per run (default 200000), `BENCH_CONNECTIONS` (16),
//! `BENCH_BATCH` entries per request (100), `BENCH_INSTANCES` (1,2,3).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use log_ingestion_test_support::fleet::Fleet;
use log_ingestion_test_support::{proc_stats, Latencies};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds each part of the fleet used so far.
struct Parts {
    instances: f64,
    haproxy: f64,
    primary: f64,
    replica: f64,
    generator: f64,
}

fn sample(fleet: &Fleet, count: usize) -> Parts {
    let pid = |name: &str| fleet.var(name).parse::<u32>().unwrap_or(0);
    let cpu = |pid: u32| proc_stats::cpu_seconds(pid).unwrap_or(0.0);
    Parts {
        instances: (1..=count)
            .map(|n| cpu(pid(&format!("FLEET_INSTANCE_{n}_PID"))))
            .sum(),
        haproxy: cpu(pid("FLEET_HAPROXY_PID")),
        primary: proc_stats::postgres_cluster_cpu_seconds(&fleet.dir.join("primary/data"))
            .unwrap_or(0.0),
        replica: proc_stats::postgres_cluster_cpu_seconds(&fleet.dir.join("replica/data"))
            .unwrap_or(0.0),
        generator: proc_stats::own_cpu_seconds().unwrap_or(0.0),
    }
}

const LEVELS: [&str; 4] = ["INFO", "WARN", "ERROR", "DEBUG"];

fn batch_body(batch: usize, size: usize) -> Bytes {
    let now = chrono::Utc::now().to_rfc3339();
    let logs: Vec<Value> = (0..size)
        .map(|i| {
            json!({
                "timestamp": now,
                "service": format!("bench-{}", i % 8),
                "level": LEVELS[i % LEVELS.len()],
                "message": format!("GET /orders/{batch}/{i} completed 200 OK in {}ms for user {}", i % 97, batch * 31 + i),
                "metadata": {"request_id": format!("{batch:08x}-{i:04x}"), "user_id": batch * 31 + i, "duration_ms": i % 97, "path": "/orders", "status": 200}
            })
        })
        .collect();
    Bytes::from(serde_json::to_vec(&json!({ "logs": logs })).unwrap_or_default())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("fleet_throughput: skipped without --bench (cargo bench -p log_ingestion_server --bench fleet_throughput)");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(fleet_throughput());
}

async fn fleet_throughput() {
    let entries = env_number("BENCH_ENTRIES", 200_000);
    let connections = env_number("BENCH_CONNECTIONS", 16);
    let batch = env_number("BENCH_BATCH", 100).max(1);
    let counts: Vec<usize> = std::env::var("BENCH_INSTANCES")
        .unwrap_or_else(|_| "1,2,3".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let batches = entries / batch;
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..256).map(|b| batch_body(b, batch)).collect());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "fleet benchmark: {entries} entries in batches of {batch} over {connections} connections, {cores} cores"
    );
    println!("instances | entries/s | p50 ms | p99 ms | CPU share: instances / haproxy / primary / replica / generator");
    for count in counts {
        let fleet = Fleet::start(
            &format!("bench{count}"),
            &["bench-key"],
            &[
                ("FLEET_INSTANCES", &count.to_string()),
                ("LOG_INGESTION_RATE_LIMIT_RPS", "1000000"),
                ("LOG_INGESTION_RATE_LIMIT_BURST", "1000000"),
                ("RUST_LOG", "warn"),
            ],
        );
        let http = reqwest::Client::new();
        let next = Arc::new(AtomicUsize::new(0));
        let latencies = Arc::new(Mutex::new(Latencies::new()));
        let before = sample(&fleet, count);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let http = http.clone();
            let url = format!("{}/api/v1/logs/batch", fleet.url());
            let next = Arc::clone(&next);
            let latencies = Arc::clone(&latencies);
            let bodies = Arc::clone(&bodies);
            tasks.push(tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= batches {
                        return;
                    }
                    let body = bodies[index % bodies.len()].clone();
                    let sent = Instant::now();
                    loop {
                        let response = http
                            .post(&url)
                            .header("X-API-Key", "bench-key")
                            .header("Content-Type", "application/json")
                            .body(body.clone())
                            .send()
                            .await;
                        match response {
                            Ok(response) if response.status().is_success() => break,
                            Ok(response) if response.status() == 503 => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            Ok(response) => panic!("bench batch refused: {}", response.status()),
                            Err(error) => panic!("bench batch failed: {error}"),
                        }
                    }
                    if let Ok(mut all) = latencies.lock() {
                        all.record(sent.elapsed());
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("sender");
        }
        let elapsed = started.elapsed().as_secs_f64();
        let after = sample(&fleet, count);
        let all = latencies.lock().map(|all| all.clone()).unwrap_or_default();
        let at = |percentile: f64| {
            all.percentile(percentile)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let share = |b: f64, a: f64| 100.0 * (a - b).max(0.0) / (elapsed * cores);
        let primary = fleet.primary().await;
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM logs")
            .fetch_one(&primary)
            .await
            .unwrap_or(0);
        assert_eq!(
            stored as usize,
            batches * batch,
            "rows == acknowledged entries"
        );
        let table_bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('logs')")
            .fetch_one(&primary)
            .await
            .unwrap_or(0);
        println!(
            "{count} | {:.0} | {:.1} | {:.1} | {:.0}% / {:.0}% / {:.0}% / {:.0}% / {:.0}% | {:.0} bytes/row on disk (heap + indexes)",
            (batches * batch) as f64 / elapsed,
            at(50.0),
            at(99.0),
            share(before.instances, after.instances),
            share(before.haproxy, after.haproxy),
            share(before.primary, after.primary),
            share(before.replica, after.replica),
            share(before.generator, after.generator),
            table_bytes as f64 / stored.max(1) as f64,
        );
    }
}
