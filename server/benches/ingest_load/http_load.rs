//! The HTTP phases: batches sent over keep-alive connections as fast as the server
//! acknowledges them, every entry checked stored afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use log_ingestion_test_support::{Latencies, ServerProcess};
use log_ingestion_wire::{BatchResponse, WireEntry, API_KEY_HEADER};
use sqlx::PgConnection;

use crate::entries::encode_batches;
use crate::otlp_wire::{encode_otlp_batches, Wire};
use crate::raw_copy::{count_logs, truncate_logs};
use crate::report::{CpuSnapshot, PhaseReport};
use log_ingestion_test_support::bench::{BenchError, Result};

use crate::API_KEY;

/// Sends the batches over `connections` keep-alive connections; every answer must be 2xx
/// and acknowledge every entry of its batch (a 503 is retried after a short pause).
pub(crate) async fn drive_http(
    server: &ServerProcess,
    batches: Vec<(usize, Bytes)>,
    connections: usize,
    batch_size: usize,
    database: &str,
    wire: Wire,
) -> Result<PhaseReport> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = format!("{}{}", server.address, wire.path());
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let rss_reset = server.reset_peak_rss();
    let cpu_before = CpuSnapshot::take(Some(server), database);
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, batches, next, busy) = (
                client.clone(),
                url.clone(),
                batches.clone(),
                next.clone(),
                busy.clone(),
            );
            tokio::spawn(async move { send_batches(client, url, batches, next, busy, wire).await })
        })
        .collect();
    let mut latencies = Latencies::new();
    let mut entries = 0u64;
    for worker in workers {
        let (acked, worker_latencies) = worker.await??;
        entries += acked;
        latencies.add(&worker_latencies);
    }
    let elapsed = started.elapsed();
    let requests = latencies.len() as usize;
    if !rss_reset {
        eprintln!("note: could not reset VmHWM; peak RSS is cumulative since start");
    }
    let busy = busy.load(Ordering::Relaxed);
    if busy > 0 {
        eprintln!("note: b={batch_size}: {busy} answers were 503 Server busy and were retried");
    }
    Ok(PhaseReport {
        label: wire.label(batch_size),
        entries,
        requests,
        elapsed,
        latencies,
        peak_rss_kib: Some(server.peak_rss_kib()).filter(|kib| *kib > 0),
        cpu: CpuSnapshot::take(Some(server), database).since(cpu_before),
    })
}

pub(crate) async fn send_batches(
    client: reqwest::Client,
    url: String,
    batches: Arc<Vec<(usize, Bytes)>>,
    next: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
    wire: Wire,
) -> Result<(u64, Latencies)> {
    let mut acked = 0u64;
    let mut latencies = Latencies::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((len, body)) = batches.get(i) else {
            return Ok((acked, latencies));
        };
        let sent = Instant::now();
        let (status, answer) = loop {
            let response = client
                .post(&url)
                .header(API_KEY_HEADER, API_KEY)
                .header(reqwest::header::CONTENT_TYPE, wire.content_type())
                .body(body.clone())
                .send()
                .await?;
            let status = response.status();
            let answer = response.bytes().await?;
            let server_busy = status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                && String::from_utf8_lossy(&answer).contains("Server busy");
            if !server_busy {
                break (status, answer);
            }
            // The server's in-flight budget is spent; the pause counts in the latency,
            // as it would for the gem.
            busy.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(BUSY_PAUSE).await;
        };
        latencies.record(sent.elapsed());
        if !status.is_success() {
            return Err(BenchError::Setup(format!(
                "batch {i}: HTTP {status}: {}",
                String::from_utf8_lossy(&answer)
            )));
        }
        if wire == Wire::OtlpProtobuf {
            use prost::Message;
            let parsed =
                opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::decode(
                    answer.clone(),
                )
                .map_err(|error| BenchError::Setup(format!("batch {i}: OTLP answer: {error}")))?;
            if parsed.partial_success.is_some() {
                return Err(BenchError::Setup(format!("batch {i}: {parsed:?}")));
            }
            acked += *len as u64;
            continue;
        }
        if wire == Wire::OtlpJson {
            // Full success is an empty `ExportLogsServiceResponse`.
            let parsed: serde_json::Value = serde_json::from_slice(&answer)?;
            if parsed != serde_json::json!({}) {
                return Err(BenchError::Setup(format!(
                    "batch {i}: OTLP answer {parsed}"
                )));
            }
            acked += *len as u64;
            continue;
        }
        let parsed: BatchResponse = serde_json::from_slice(&answer)?;
        if parsed.accepted != *len as u64 || parsed.rejected != 0 {
            return Err(BenchError::Setup(format!(
                "batch {i}: {len} sent, answer {}",
                String::from_utf8_lossy(&answer)
            )));
        }
        acked += parsed.accepted;
    }
}

/// How long a worker waits before retrying a 503 "Server busy".
pub(crate) const BUSY_PAUSE: Duration = Duration::from_millis(50);

/// One HTTP phase on an empty table, then the check that every acknowledged entry is
/// stored.
pub(crate) async fn http_phase(
    server: &ServerProcess,
    db: &mut PgConnection,
    entries: &[WireEntry],
    batch_size: usize,
    connections: usize,
    database: &str,
    wire: Wire,
) -> Result<PhaseReport> {
    let batches = match wire {
        Wire::Json => encode_batches(entries, batch_size)?,
        Wire::OtlpProtobuf | Wire::OtlpJson => encode_otlp_batches(entries, batch_size, wire)?,
    };
    truncate_logs(db).await?;
    let report = drive_http(server, batches, connections, batch_size, database, wire).await?;
    let stored = count_logs(db).await?;
    if stored != report.entries as i64 {
        return Err(BenchError::Setup(format!(
            "batch {batch_size}: {} entries acknowledged but {stored} rows stored",
            report.entries
        )));
    }
    Ok(report)
}
