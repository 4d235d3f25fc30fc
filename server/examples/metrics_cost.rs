//! What recording a metric costs the request path, and what one `/metrics` render costs:
//! `request_finished` (a labelled histogram: the per-request call), `request_rejected`
//! (a labelled counter) and `group_committed` (two plain histograms), on one thread and
//! on two at once (the lock contention a 2-core server sees), then `render` over
//! `ROUTES` (method, route) series.
//!
//! Run: `cargo run --release -p log_ingestion_server --example metrics_cost [CALLS]`
//! A measurement for humans, not a test: it asserts nothing about speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use log_ingestion_server::metrics::Metrics;

const ROUTES: [&str; 8] = [
    "/api/v1/logs",
    "/api/v1/logs/batch",
    "/api/v1/logs/search",
    "/api/v1/logs/histogram",
    "/api/v1/logs/tail",
    "/api/v1/services",
    "/health",
    "/metrics",
];

/// One recording call; its second argument is the call's number.
type Record = fn(&Metrics, usize);

/// Nanoseconds per call of `record` over `calls` calls on each of `threads` threads.
fn per_call(metrics: &Metrics, threads: usize, calls: usize, record: Record) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for call in 0..calls {
                    record(black_box(metrics), call);
                }
            });
        }
    });
    started.elapsed().as_nanos() as f64 / calls as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 2_000_000,
    };
    if calls == 0 {
        return Err("CALLS must be at least 1".into());
    }
    let metrics = Metrics::default();
    let recorders: [(&str, Record); 3] = [
        ("request_finished", |metrics, call| {
            let route = ROUTES[call % ROUTES.len()];
            metrics.request_finished("POST", route, Duration::from_micros(call as u64 % 5000));
        }),
        ("request_rejected", |metrics, _| {
            metrics.request_rejected("rate_limited")
        }),
        ("group_committed", |metrics, call| {
            metrics.group_committed(call % 1000, Duration::from_micros(call as u64 % 5000))
        }),
    ];
    for (name, record) in recorders {
        let one = per_call(&metrics, 1, calls, record);
        let two = per_call(&metrics, 2, calls, record);
        println!(
            "{name:<17} {one:>7.1} ns/call on 1 thread, {two:>7.1} ns/call (wall) with 2 threads"
        );
    }
    let renders = 2_000;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..renders {
        bytes = black_box(metrics.render(1024, 4096)).len();
    }
    let each = started.elapsed() / renders;
    println!(
        "render            {each:?} per scrape ({bytes} bytes, {} series of request latency)",
        ROUTES.len()
    );
    Ok(())
}
