//! Caller-thread cost of `Engine::enqueue` (an entry with five metadata keys, timestamp
//! taken per call) and end-to-end delivery rate to a trivial local sink.
//!
//! Run: `cargo run --release -p log_ingestion_engine --example enqueue_cost [ENTRIES]`
//! A measurement for humans, not a test: it asserts nothing about speed.

use std::time::{Duration, Instant};

use axum::routing::post;
use log_ingestion_engine::{Cancel, DropPolicy, Engine, EngineConfig, Entry, Level};
use serde_json::{json, Map};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let entries: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    if entries == 0 {
        return Err("ENTRIES must be at least 1".into());
    }
    let sink = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = sink.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().route(
        "/api/v1/logs/batch",
        post(|| async { axum::Json(json!({"accepted": 0, "rejected": 0, "errors": []})) }),
    );
    sink.spawn(async move { axum::serve(listener, app).await });

    let engine = Engine::start(EngineConfig {
        api_url: url,
        api_key: "bench".into(),
        // The gem's defaults (LogIngestion::Configuration::DEFAULTS), but a queue large
        // enough that no entry is dropped while enqueue's cost is measured.
        batch_size: 512,
        batch_interval: Duration::from_secs(1),
        max_batch_bytes: 1024 * 1024,
        max_retries: 5,
        max_retry_elapsed: Duration::from_secs(300),
        retry_delay: Duration::from_millis(500),
        max_retry_delay: Duration::from_secs(30),
        max_queue_bytes: 512 * 1024 * 1024,
        drop_policy: DropPolicy::Newest,
        gzip: true,
        open_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        enable_batching: true,
        user_agent: "enqueue_cost".into(),
        spool_dir: None,
        max_spool_bytes: 0,
    })?;

    let mut costs = Vec::with_capacity(entries);
    let started = Instant::now();
    for i in 0..entries {
        let t = Instant::now();
        let mut metadata = Map::new();
        metadata.insert("user_id".into(), json!(i));
        metadata.insert(
            "request_id".into(),
            json!("9f1c2d3e-aaaa-bbbb-cccc-0123456789ab"),
        );
        metadata.insert("path".into(), json!("/orders/42"));
        metadata.insert("duration_ms".into(), json!(12.5));
        metadata.insert("cached".into(), json!(false));
        let entry = Entry::now("bench", Level::Info, "order created", metadata);
        engine.enqueue(entry);
        costs.push(t.elapsed());
    }
    let enqueue_time = started.elapsed();
    let outcome = engine.flush(Duration::from_secs(120), &Cancel::new());
    let total = started.elapsed();
    costs.sort();
    let pct = |p: f64| costs[((costs.len() as f64 * p) as usize).min(costs.len() - 1)];
    let stats = engine.stats();
    println!(
        "entries={entries} enqueue p50={:?} p99={:?} max={:?} (all enqueued in {enqueue_time:?})",
        pct(0.50),
        pct(0.99),
        costs[costs.len() - 1]
    );
    println!(
        "flush={outcome:?} sent={} in {total:?} => {:.0} entries/s delivered end to end",
        stats.sent,
        stats.sent as f64 / total.as_secs_f64()
    );
    engine.shutdown(Duration::from_secs(5));
    Ok(())
}
