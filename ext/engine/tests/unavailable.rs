//! An unavailable server (503 with `Retry-After`, refused connections): the engine rides
//! the outage out for `max_retry_elapsed`, not for `max_retries` quick attempts; takes
//! `Retry-After` as the earliest retry with the jittered backoff on top, so clients told
//! the same `Retry-After` do not come back in lockstep; gives a batch up once
//! `max_retry_elapsed` has passed; and still shuts down within `shutdown_timeout`.
//!
//! Timing bounds are loose on purpose (a 2-core machine shared with other builds); each
//! one is stated where it is asserted.

use crate::support;

use std::time::{Duration, Instant};

use log_ingestion_engine::{Cancel, Engine, EngineConfig, ErrorKind, FlushOutcome};
use support::{entry, next_failure, start, test_config, FaultServer, Received, Reply, SOON};

fn enqueue_and_flush(engine: &Engine, messages: &[&str], timeout: Duration) {
    for message in messages {
        assert!(engine.enqueue(entry(*message)).is_accepted());
    }
    assert_eq!(engine.flush(timeout, &Cancel::new()), FlushOutcome::Flushed);
}

fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
}

#[test]
fn a_503_storm_is_ridden_out_past_max_retries_until_the_server_is_back() {
    let server = FaultServer::start(vec![Reply::Unavailable(None); 8]);
    let engine = start(EngineConfig {
        max_retries: 1,
        max_retry_elapsed: Duration::from_secs(60),
        ..test_config(&server.url)
    });
    enqueue_and_flush(&engine, &["kept"], SOON);
    assert_eq!(server.accepted_messages(), vec!["kept"]);
    let stats = engine.stats();
    assert_eq!(
        (stats.retried, stats.dropped_retries_exhausted, stats.sent),
        (8, 0, 1)
    );
}

#[test]
fn a_500_is_still_bounded_by_max_retries() {
    let server = FaultServer::start(vec![Reply::Status(500); 8]);
    let engine = start(EngineConfig {
        max_retries: 1,
        max_retry_elapsed: Duration::from_secs(60),
        ..test_config(&server.url)
    });
    enqueue_and_flush(&engine, &["poison"], SOON);
    assert_eq!(server.received().len(), 2, "one attempt plus one retry");
    assert_eq!(engine.stats().dropped_retries_exhausted, 1);
}

#[test]
fn a_refused_connection_is_retried_until_max_retry_elapsed_then_dropped_and_reported() {
    let max_elapsed = Duration::from_millis(300);
    let engine = start(EngineConfig {
        max_retries: 0,
        max_retry_elapsed: max_elapsed,
        ..test_config(&refused_url())
    });
    let started = Instant::now();
    enqueue_and_flush(&engine, &["lost"], SOON);
    let took = started.elapsed();
    // At least max_retry_elapsed minus one backoff ceiling (5 ms); at most 5 s (loose).
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(5),
        "gave up after {took:?}"
    );
    let stats = engine.stats();
    assert_eq!(stats.dropped_retries_exhausted, 1);
    assert!(stats.retried > 1, "retried {} times", stats.retried);
    let report = next_failure(&engine, SOON).unwrap();
    assert_eq!(report.kind, ErrorKind::RetriesExhausted);
    assert!(
        report.message.contains("max_retry_elapsed") && report.message.contains("connect"),
        "{}",
        report.message
    );
}

#[test]
fn a_retry_after_longer_than_what_is_left_of_max_retry_elapsed_gives_the_batch_up_at_once() {
    let server = FaultServer::start(vec![Reply::Unavailable(Some("30".into()))]);
    let engine = start(EngineConfig {
        max_retry_elapsed: Duration::from_secs(10),
        ..test_config(&server.url)
    });
    let started = Instant::now();
    enqueue_and_flush(&engine, &["lost"], SOON);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.received().len(), 1);
    assert_eq!(engine.stats().dropped_retries_exhausted, 1);
}

/// Eight engines are told `503, Retry-After: 1` once each. Every one waits at least the
/// second, and their retries spread over the jittered backoff on top of it (ceiling
/// `retry_delay` = 1 s): the range of eight uniform draws over 1 s is below 100 ms with
/// a probability of about 1e-6, while engines in lockstep come back within a few ms.
#[test]
fn clients_told_the_same_retry_after_come_back_spread_over_the_backoff() {
    const CLIENTS: usize = 8;
    let server = FaultServer::start(vec![Reply::Unavailable(Some("1".into())); CLIENTS]);
    let engines: Vec<Engine> = (0..CLIENTS)
        .map(|_| {
            start(EngineConfig {
                retry_delay: Duration::from_secs(1),
                max_retry_delay: Duration::from_secs(1),
                ..test_config(&server.url)
            })
        })
        .collect();
    for (i, engine) in engines.iter().enumerate() {
        assert!(engine.enqueue(entry(format!("client-{i}"))).is_accepted());
        engine.flush(Duration::ZERO, &Cancel::new());
    }
    for engine in &engines {
        assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    }
    let received = server.received();
    assert_eq!(received.len(), 2 * CLIENTS);
    let gaps: Vec<Duration> = (0..CLIENTS)
        .map(|i| {
            let attempts: Vec<&Received> = received
                .iter()
                .filter(|r| r.messages() == vec![format!("client-{i}")])
                .collect();
            assert_eq!(attempts.len(), 2, "client-{i}");
            attempts[1].at - attempts[0].at
        })
        .collect();
    let (shortest, longest) = (*gaps.iter().min().unwrap(), *gaps.iter().max().unwrap());
    // Retry-After is the earliest: every gap is at least 1 s (50 ms spare for rounding),
    // and at most 1 s + the 1 s ceiling + 2 s of scheduling slack.
    assert!(shortest >= Duration::from_millis(950), "gaps {gaps:?}");
    assert!(longest <= Duration::from_secs(4), "gaps {gaps:?}");
    assert!(
        longest - shortest >= Duration::from_millis(100),
        "retries in lockstep: gaps {gaps:?}"
    );
    eprintln!(
        "retry gaps after Retry-After: 1 for {CLIENTS} clients: {:?} .. {:?} (spread {:?})",
        shortest,
        longest,
        longest - shortest
    );
}

#[test]
fn shutdown_stays_within_its_timeout_while_a_batch_rides_out_a_long_outage() {
    let server = FaultServer::start(vec![Reply::Unavailable(Some("1".into())); 1000]);
    let engine = start(EngineConfig {
        max_retry_elapsed: Duration::from_secs(3600),
        ..test_config(&server.url)
    });
    assert!(engine.enqueue(entry("undelivered")).is_accepted());
    engine.flush(Duration::ZERO, &Cancel::new());
    support::wait_until(SOON, || !server.received().is_empty());
    let started = Instant::now();
    let report = engine.shutdown(Duration::from_millis(500));
    // The 500 ms timeout plus the runtime's 1 s stop, with 2 s to spare.
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((report.delivered, report.undelivered), (0, 1));
    assert_eq!(engine.stats().dropped_at_shutdown, 1);
}

#[test]
fn shutdown_gives_up_at_once_on_a_service_that_refuses_connections_and_says_why() {
    let engine = start(EngineConfig {
        max_retry_elapsed: Duration::from_secs(3600),
        retry_delay: Duration::from_secs(5),
        max_retry_delay: Duration::from_secs(5),
        ..test_config(&refused_url())
    });
    for message in ["first", "second"] {
        assert!(engine.enqueue(entry(message)).is_accepted());
    }
    engine.flush(Duration::ZERO, &Cancel::new());
    support::wait_until(SOON, || engine.stats().retried > 0);
    let started = Instant::now();
    let report = engine.shutdown(Duration::from_secs(30));
    // Before: the whole 30 s timeout. Now one refused attempt and the runtime's stop;
    // 5 s is a generous bound for a loaded 2-core machine.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.delivered, 0);
    assert_eq!(engine.stats().dropped_at_shutdown, 2);
    let loss = next_failure(&engine, Duration::from_secs(1)).expect("the loss is reported");
    assert_eq!((loss.kind, loss.entries_lost), (ErrorKind::Shutdown, 2));
    assert!(loss.message.contains("refused"), "{}", loss.message);
}
