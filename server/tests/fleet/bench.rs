//! The fleet benchmark (ignored by default; it judges nothing): the same load through
//! HAProxy to 1, 2 and 3 instances (`FLEET_INSTANCES`), printing entries/s, p50/p99
//! acknowledgement latency, and the CPU each part used (instances, HAProxy, the
//! primary's and the replica's PostgreSQL processes, this load generator) as a share
//! of the run's wall time × cores. Also the on-disk size of the rows and, when the
//! primary has TimescaleDB, nothing more: compression is measured in docs/operations.md's
//! procedure, not here.
//!
//! Run (release server, as in docs/operations.md, "Scaling"):
//! `cargo build --release -p log_ingestion_server && LOG_INGESTION_TESTED_BIN=target/release/log-ingestion-server
//!  cargo test -p log_ingestion_server --test fleet -- --ignored --nocapture fleet_throughput`
//! Environment: `BENCH_ENTRIES` per run (default 200000), `BENCH_CONNECTIONS` (16),
//! `BENCH_BATCH` entries per request (100), `BENCH_INSTANCES` (1,2,3).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::harness::Fleet;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Clock ticks of CPU used by `pid` (and, with `children`, its reaped children).
fn cpu_ticks(pid: u32, children: bool) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name (which may contain spaces) start at ") ".
    let Some(rest) = stat.rsplit_once(") ").map(|(_, rest)| rest) else {
        return 0;
    };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    // state is field 3 (index 0 here); utime 14, stime 15, cutime 16, cstime 17.
    let own = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    let reaped = fields.get(13).copied().unwrap_or(0) + fields.get(14).copied().unwrap_or(0);
    own + if children { reaped } else { 0 }
}

/// A PostgreSQL cluster's CPU: the postmaster with its reaped children, plus live ones.
fn postgres_ticks(data_dir: &Path) -> u64 {
    let Some(postmaster) = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()
        .and_then(|text| {
            text.lines()
                .next()
                .and_then(|line| line.trim().parse::<u32>().ok())
        })
    else {
        return 0;
    };
    let mut total = cpu_ticks(postmaster, true);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let parent = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            if parent == Some(postmaster) {
                total += cpu_ticks(pid, false);
            }
        }
    }
    total
}

fn self_ticks() -> u64 {
    cpu_ticks(std::process::id(), false)
}

struct Parts {
    instances: u64,
    haproxy: u64,
    primary: u64,
    replica: u64,
    generator: u64,
}

fn sample(fleet: &Fleet, count: usize) -> Parts {
    let pid = |name: &str| fleet.var(name).parse::<u32>().unwrap_or(0);
    Parts {
        instances: (1..=count)
            .map(|n| cpu_ticks(pid(&format!("FLEET_INSTANCE_{n}_PID")), false))
            .sum(),
        haproxy: cpu_ticks(pid("FLEET_HAPROXY_PID"), false),
        primary: postgres_ticks(&fleet.dir.join("primary/data")),
        replica: postgres_ticks(&fleet.dir.join("replica/data")),
        generator: self_ticks(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by hand, see docs/operations.md"]
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
    let ticks_per_second = 100.0; // USER_HZ on Linux
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
        let latencies = Arc::new(Mutex::new(Vec::with_capacity(batches)));
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
                        all.push(sent.elapsed());
                    }
                }
            }));
        }
        for task in tasks {
            task.await.expect("sender");
        }
        let elapsed = started.elapsed().as_secs_f64();
        let after = sample(&fleet, count);
        let mut all = latencies.lock().map(|all| all.clone()).unwrap_or_default();
        all.sort();
        let at = |q: f64| {
            all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let share = |b: u64, a: u64| {
            100.0 * a.saturating_sub(b) as f64 / ticks_per_second / (elapsed * cores)
        };
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
            at(0.50),
            at(0.99),
            share(before.instances, after.instances),
            share(before.haproxy, after.haproxy),
            share(before.primary, after.primary),
            share(before.replica, after.replica),
            share(before.generator, after.generator),
            table_bytes as f64 / stored.max(1) as f64,
        );
    }
}
