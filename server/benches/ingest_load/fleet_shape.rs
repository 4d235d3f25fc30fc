//! The fleet-shape phase: many connections, each a small gzip batch on a fixed period.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use log_ingestion_test_support::{Latencies, ServerProcess};
use log_ingestion_wire::{BatchResponse, WireEntry, API_KEY_HEADER, BATCH_PATH};
use sqlx::PgConnection;

use crate::config::env_usize;
use crate::entries::gzip_batches;
use crate::raw_copy::{count_logs, truncate_logs};
use crate::report::{verdict, CpuSnapshot, PhaseReport};
use log_ingestion_test_support::bench::{BenchError, Result};

use crate::API_KEY;

/// The fleet shape: many keep-alive connections, each sending one small
/// gzip batch on a fixed period, as ~256 Puma workers with the gem's defaults do.
/// Answers are never retried: a 503 is counted, and only acknowledged entries must be
/// stored (rows == acks).
pub(crate) struct FleetShape {
    pub(crate) connections: usize,
    pub(crate) batch_size: usize,
    pub(crate) period: Duration,
    pub(crate) duration: Duration,
}

impl FleetShape {
    pub(crate) const TARGET_P99: Duration = Duration::from_millis(100);
    /// The server's CPU per entry in this shape, in µs.
    pub(crate) const TARGET_MICROS_PER_ENTRY: f64 = 3.0;

    /// `BENCH_FLEET_CONNECTIONS` (256), `BENCH_FLEET_BATCH` (50), `BENCH_FLEET_PERIOD_MS`
    /// (100) and `BENCH_FLEET_SECS` (20; 2 in a smoke run).
    pub(crate) fn from_env(measuring: bool) -> Result<Self> {
        let shape = FleetShape {
            connections: env_usize("BENCH_FLEET_CONNECTIONS", 256)?,
            batch_size: env_usize("BENCH_FLEET_BATCH", 50)?,
            period: Duration::from_millis(env_usize("BENCH_FLEET_PERIOD_MS", 100)? as u64),
            duration: Duration::from_secs(env_usize(
                "BENCH_FLEET_SECS",
                if measuring { 20 } else { 2 },
            )? as u64),
        };
        if shape.connections == 0 || shape.batch_size == 0 || shape.period.is_zero() {
            return Err(BenchError::Setup(
                "BENCH_FLEET_CONNECTIONS, BENCH_FLEET_BATCH and BENCH_FLEET_PERIOD_MS must be positive".into(),
            ));
        }
        Ok(shape)
    }

    /// Runs the phase on an empty table and prints its row and verdict.
    pub(crate) async fn run(
        &self,
        server: &ServerProcess,
        db: &mut PgConnection,
        entries: &[WireEntry],
        database: &str,
        measuring: bool,
    ) -> Result<PhaseReport> {
        let bodies = Arc::new(gzip_batches(entries, self.batch_size)?);
        truncate_logs(db).await?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(self.connections)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        let url = format!("{}{BATCH_PATH}", server.address);
        let busy = Arc::new(AtomicUsize::new(0));
        let rss_reset = server.reset_peak_rss();
        let cpu_before = CpuSnapshot::take(Some(server), database);
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.duration;
        let workers: Vec<_> = (0..self.connections)
            .map(|worker| {
                let (client, url, bodies, busy) =
                    (client.clone(), url.clone(), bodies.clone(), busy.clone());
                // Spread the workers' first sends over one period, as a fleet's are.
                let offset = self.period.mul_f64(worker as f64 / self.connections as f64);
                let period = self.period;
                tokio::spawn(async move {
                    fleet_worker(client, url, bodies, busy, worker, offset, period, deadline).await
                })
            })
            .collect();
        let (mut entries_acked, mut latencies) = (0u64, Latencies::new());
        for worker in workers {
            let (acked, worker_latencies) = worker.await??;
            entries_acked += acked;
            latencies.add(&worker_latencies);
        }
        let elapsed = started.elapsed();
        let report = PhaseReport {
            label: format!("fleet {}x{}", self.connections, self.batch_size),
            entries: entries_acked,
            requests: latencies.len() as usize,
            elapsed,
            latencies,
            peak_rss_kib: rss_reset
                .then(|| server.peak_rss_kib())
                .filter(|kib| *kib > 0),
            cpu: CpuSnapshot::take(Some(server), database).since(cpu_before),
        };
        let stored = count_logs(db).await?;
        let busy = busy.load(Ordering::Relaxed);
        println!("{report}");
        let p99 = report.percentile(99.0).unwrap_or(Duration::MAX);
        println!(
            "fleet shape: {} connections x {} entries gzip every {:?} for {:?}: rows {stored} == acks {}: {}; \
             503 answers: {busy}; p99 {:.1} ms (target <= {} ms with rows == acks and no 503: {})",
            self.connections,
            self.batch_size,
            self.period,
            self.duration,
            report.entries,
            if stored == report.entries as i64 { "yes" } else { "NO" },
            p99.as_secs_f64() * 1000.0,
            Self::TARGET_P99.as_millis(),
            verdict(
                measuring,
                p99 <= Self::TARGET_P99 && busy == 0 && stored == report.entries as i64
            )
        );
        if let Some(micros) = report.server_micros_per_entry() {
            println!(
                "fleet shape: server CPU per entry {micros:.2} µs  (target <= {} µs: {})",
                Self::TARGET_MICROS_PER_ENTRY,
                verdict(measuring, micros <= Self::TARGET_MICROS_PER_ENTRY)
            );
        }
        if stored != report.entries as i64 {
            return Err(BenchError::Setup(format!(
                "fleet shape: {} entries acknowledged but {stored} rows stored",
                report.entries
            )));
        }
        Ok(report)
    }
}

/// One fleet member: a batch every `period` (a late send is not made up for) until
/// `deadline`; returns the entries acknowledged and each answer's latency.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fleet_worker(
    client: reqwest::Client,
    url: String,
    bodies: Arc<Vec<(usize, Bytes)>>,
    busy: Arc<AtomicUsize>,
    worker: usize,
    offset: Duration,
    period: Duration,
    deadline: tokio::time::Instant,
) -> Result<(u64, Latencies)> {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut acked, mut latencies) = (0u64, Latencies::new());
    for i in worker.. {
        if ticks.tick().await >= deadline {
            break;
        }
        let Some((len, body)) = bodies.get(i % bodies.len().max(1)) else {
            break;
        };
        let sent = Instant::now();
        let response = client
            .post(&url)
            .header(API_KEY_HEADER, API_KEY)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(body.clone())
            .send()
            .await?;
        let status = response.status();
        let answer = response.bytes().await?;
        latencies.record(sent.elapsed());
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            busy.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let parsed: BatchResponse = serde_json::from_slice(&answer).map_err(|_| {
            BenchError::Setup(format!(
                "fleet: HTTP {status}: {}",
                String::from_utf8_lossy(&answer)
            ))
        })?;
        if !status.is_success() || parsed.accepted != *len as u64 || parsed.rejected != 0 {
            return Err(BenchError::Setup(format!(
                "fleet: HTTP {status}, {len} sent: {}",
                String::from_utf8_lossy(&answer)
            )));
        }
        acked += parsed.accepted;
    }
    Ok((acked, latencies))
}
