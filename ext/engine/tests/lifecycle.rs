//! The engine's life from the caller's side: the memory bound, flush (delivered,
//! timeout, cancel), send_now, shutdown, drop, and starting with a bad configuration.

use crate::support;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log_ingestion_engine::{
    Cancel, DeliveryError, DropPolicy, DropReason, Engine, EngineConfig, EngineError, Enqueued,
    ErrorKind, FlushOutcome, ShutdownReport,
};
use support::{entry, next_failure, start, test_config, FaultServer, Reply, SOON};

/// Entries of about 300 encoded bytes: six fit in a 2 KiB queue.
fn sized_entry(i: usize) -> log_ingestion_engine::Entry {
    entry(format!("{i:03}-{}", "x".repeat(150)))
}

fn bounded(url: &str, policy: DropPolicy) -> EngineConfig {
    EngineConfig {
        max_queue_bytes: 2048,
        drop_policy: policy,
        ..test_config(url)
    }
}

fn message_number(message: &str) -> usize {
    message[..3].parse().unwrap()
}

/// Flushes (failing the test unless everything was delivered) and returns the numbers of
/// the `sized_entry` messages the server accepted, in arrival order.
fn flush_and_number_delivered(engine: &Engine, server: &FaultServer) -> Vec<usize> {
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    server
        .accepted_messages()
        .iter()
        .map(|m| message_number(m))
        .collect()
}

/// Runs `call` on another thread with a fresh `Cancel`, cancels it once the server has
/// received a request, and returns what `call` returned (an error if it did not return
/// within `SOON`).
fn cancel_once_sending<T: Send + 'static>(
    engine: &Arc<Engine>,
    server: &FaultServer,
    call: impl FnOnce(&Engine, &Cancel) -> T + Send + 'static,
) -> Result<T, mpsc::RecvTimeoutError> {
    let cancel = Cancel::new();
    let (done, finished) = mpsc::channel();
    std::thread::spawn({
        let engine = Arc::clone(engine);
        let cancel = cancel.clone();
        move || done.send(call(&engine, &cancel)).unwrap()
    });
    server.wait_for_requests(1, SOON);
    cancel.cancel();
    finished.recv_timeout(SOON)
}

#[test]
fn a_full_queue_drops_the_newest_entries_and_counts_them() {
    let server = FaultServer::start(vec![]);
    let engine = start(bounded(&server.url, DropPolicy::Newest));
    let outcomes: Vec<Enqueued> = (0..20).map(|i| engine.enqueue(sized_entry(i))).collect();
    let accepted = outcomes.iter().filter(|o| o.is_accepted()).count();
    assert!((1..20).contains(&accepted), "{accepted} accepted");
    assert!(outcomes[accepted..]
        .iter()
        .all(|o| *o == Enqueued::Dropped(DropReason::QueueFull)));
    let stats = engine.stats();
    assert_eq!(stats.dropped_queue_full, (20 - accepted) as u64);
    assert!(stats.bytes_queued <= 2048);
    let delivered = flush_and_number_delivered(&engine, &server);
    assert_eq!(delivered, (0..accepted).collect::<Vec<_>>());
}

#[test]
fn a_full_queue_with_policy_oldest_keeps_the_newest_entries() {
    let server = FaultServer::start(vec![]);
    let engine = start(bounded(&server.url, DropPolicy::Oldest));
    for i in 0..20 {
        assert!(engine.enqueue(sized_entry(i)).is_accepted());
    }
    let dropped = engine.stats().dropped_queue_full as usize;
    assert!((1..20).contains(&dropped), "{dropped} dropped");
    let delivered = flush_and_number_delivered(&engine, &server);
    assert_eq!(delivered, (dropped..20).collect::<Vec<_>>());
}

#[test]
fn queue_full_drops_are_reported_in_bulk() {
    let server = FaultServer::start(vec![]);
    let engine = start(bounded(&server.url, DropPolicy::Newest));
    for i in 0..20 {
        engine.enqueue(sized_entry(i));
    }
    let dropped = engine.stats().dropped_queue_full;
    engine.flush(SOON, &Cancel::new());
    // The delivery loop reports what it has seen at each turn: one or two reports, not one per entry.
    let mut reports = Vec::new();
    while let Some(report) = next_failure(&engine, Duration::from_millis(50)) {
        reports.push(report);
    }
    assert!(reports.iter().all(|r| r.kind == ErrorKind::QueueFull));
    assert!(!reports.is_empty() && reports.len() <= 2, "{reports:?}");
    assert_eq!(reports.iter().map(|r| r.entries_lost).sum::<u64>(), dropped);
}

#[test]
fn an_entry_larger_than_a_batch_is_dropped_as_invalid() {
    let server = FaultServer::start(vec![]);
    let engine = start(EngineConfig {
        max_batch_bytes: 1024,
        ..test_config(&server.url)
    });
    assert_eq!(
        engine.enqueue(entry("x".repeat(2000))),
        Enqueued::Dropped(DropReason::TooLarge)
    );
    assert_eq!(engine.stats().dropped_invalid, 1);
}

#[test]
fn flush_returns_once_everything_enqueued_before_it_is_delivered() {
    let server = FaultServer::start(vec![Reply::SlowAccept(Duration::from_millis(200))]);
    let engine = start(test_config(&server.url));
    for i in 0..5 {
        engine.enqueue(entry(format!("m{i}")));
    }
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    assert_eq!(server.accepted_messages().len(), 5);
    assert_eq!(engine.stats().sent, 5);
}

#[test]
fn flush_of_an_idle_engine_returns_at_once() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    assert_eq!(
        engine.flush(Duration::ZERO, &Cancel::new()),
        FlushOutcome::Flushed
    );
    assert!(server.received().is_empty());
}

#[test]
fn flush_gives_up_at_its_timeout() {
    let server = FaultServer::start(vec![Reply::SlowAccept(Duration::from_secs(30))]);
    let engine = start(test_config(&server.url));
    engine.enqueue(entry("slow"));
    let started = Instant::now();
    assert_eq!(
        engine.flush(Duration::from_millis(100), &Cancel::new()),
        FlushOutcome::TimedOut
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn flush_returns_when_cancelled_from_another_thread() {
    let server = FaultServer::start(vec![Reply::SlowAccept(Duration::from_secs(30))]);
    let engine = Arc::new(start(test_config(&server.url)));
    engine.enqueue(entry("slow"));
    let finished = cancel_once_sending(&engine, &server, |engine, cancel| {
        engine.flush(Duration::from_secs(60), cancel)
    });
    assert_eq!(finished, Ok(FlushOutcome::Cancelled));
}

#[test]
fn shutdown_delivers_queued_entries_then_refuses_new_ones() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    for i in 0..5 {
        engine.enqueue(entry(format!("m{i}")));
    }
    let report = engine.shutdown(SOON);
    assert_eq!(
        report,
        ShutdownReport {
            delivered: 5,
            undelivered: 0,
            spooled: 0
        }
    );
    assert_eq!(server.accepted_messages().len(), 5);
    assert_eq!(
        engine.enqueue(entry("late")),
        Enqueued::Dropped(DropReason::Stopped)
    );
    assert_eq!(engine.stats().dropped_at_shutdown, 1);
    assert_eq!(engine.shutdown(SOON), ShutdownReport::default());
}

#[test]
fn shutdown_counts_and_reports_what_it_could_not_deliver() {
    let server = FaultServer::start(vec![Reply::SlowAccept(Duration::from_secs(30))]);
    let engine = start(EngineConfig {
        batch_size: 2,
        ..test_config(&server.url)
    });
    for i in 0..5 {
        engine.enqueue(entry(format!("m{i}")));
    }
    server.wait_for_requests(1, SOON);
    let report = engine.shutdown(Duration::from_millis(100));
    assert_eq!(report.undelivered, 5);
    assert_eq!(engine.stats().dropped_at_shutdown, 5);
    let error = next_failure(&engine, SOON).unwrap();
    assert_eq!(error.kind, ErrorKind::Shutdown);
    assert_eq!(error.entries_lost, 5);
    assert_eq!(next_failure(&engine, SOON), None, "closed after shutdown");
}

#[test]
fn dropping_an_engine_with_a_request_in_flight_does_not_hang() {
    let server = FaultServer::start(vec![Reply::SlowAccept(Duration::from_secs(30))]);
    let engine = start(test_config(&server.url));
    engine.enqueue(entry("slow"));
    engine.flush(Duration::ZERO, &Cancel::new());
    server.wait_for_requests(1, SOON);
    let (done, dropped) = mpsc::channel();
    std::thread::spawn(move || {
        drop(engine);
        done.send(()).unwrap();
    });
    assert_eq!(dropped.recv_timeout(SOON), Ok(()));
}

#[test]
fn next_error_waits_only_until_its_timeout() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    assert_eq!(
        engine.next_error(Duration::from_millis(10), &Cancel::new()),
        None
    );
}

#[test]
fn send_now_posts_one_entry_to_the_single_endpoint() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    let outcome = engine.send_now(entry("now"), SOON, &Cancel::new()).unwrap();
    assert_eq!((outcome.status, outcome.attempts), (200, 1));
    let requests = server.received();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/api/v1/logs");
    assert_eq!(requests[0].body["log"]["message"], "now");
    assert_eq!(engine.stats().sent, 1);
}

#[test]
fn a_refused_send_now_is_the_last_error_in_stats() {
    let server = FaultServer::start(vec![Reply::Status(401)]);
    let engine = start(test_config(&server.url));
    assert!(engine.send_now(entry("now"), SOON, &Cancel::new()).is_err());
    let last_error = engine.stats().last_error.unwrap_or_default();
    assert!(last_error.contains("401"), "last_error: {last_error:?}");
}

#[test]
fn send_now_bypasses_entries_waiting_in_the_queue() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    engine.enqueue(entry("queued"));
    engine.send_now(entry("now"), SOON, &Cancel::new()).unwrap();
    assert_eq!(server.accepted_messages(), vec!["now"]);
}

#[test]
fn send_now_retries_with_the_same_idempotency_key() {
    let server = FaultServer::start(vec![Reply::Status(502)]);
    let engine = start(test_config(&server.url));
    let outcome = engine.send_now(entry("now"), SOON, &Cancel::new()).unwrap();
    assert_eq!(outcome.attempts, 2);
    let requests = server.received();
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key")
    );
}

#[test]
fn send_now_returns_the_servers_refusal() {
    let server = FaultServer::start(vec![Reply::Status(400)]);
    let engine = start(test_config(&server.url));
    let error = engine
        .send_now(entry("bad"), SOON, &Cancel::new())
        .unwrap_err();
    assert!(
        matches!(
            error,
            DeliveryError::Invalid {
                status: Some(400),
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn send_now_gives_up_at_its_timeout() {
    let server = FaultServer::start(vec![Reply::SlowAccept(Duration::from_secs(30))]);
    let engine = start(test_config(&server.url));
    let error = engine
        .send_now(entry("slow"), Duration::from_millis(100), &Cancel::new())
        .unwrap_err();
    assert_eq!(error, DeliveryError::TimedOut);
}

#[test]
fn send_now_returns_when_cancelled() {
    let server = FaultServer::start(vec![Reply::SlowAccept(Duration::from_secs(30))]);
    let engine = Arc::new(start(test_config(&server.url)));
    let finished = cancel_once_sending(&engine, &server, |engine, cancel| {
        engine.send_now(entry("slow"), Duration::from_secs(60), cancel)
    });
    assert_eq!(finished.unwrap(), Err(DeliveryError::Cancelled));
}

#[test]
fn send_now_in_flight_when_the_engine_shuts_down_returns_stopped_at_once() {
    let server = FaultServer::start(vec![Reply::SlowAccept(Duration::from_secs(30))]);
    let engine = Arc::new(start(test_config(&server.url)));
    let (done, finished) = mpsc::channel();
    std::thread::spawn({
        let engine = Arc::clone(&engine);
        move || {
            done.send(engine.send_now(entry("slow"), Duration::from_secs(60), &Cancel::new()))
                .unwrap()
        }
    });
    server.wait_for_requests(1, SOON);
    engine.shutdown(Duration::from_millis(10));
    assert_eq!(
        finished.recv_timeout(SOON),
        Ok(Err(DeliveryError::Shutdown))
    );
}

#[test]
fn send_now_after_shutdown_is_refused() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    engine.shutdown(SOON);
    assert_eq!(
        engine.send_now(entry("late"), SOON, &Cancel::new()),
        Err(DeliveryError::Shutdown)
    );
}

#[test]
fn start_refuses_a_url_it_cannot_send_to_with_a_clear_error() {
    let error = Engine::start(test_config("ftp://127.0.0.1:9")).unwrap_err();
    assert!(matches!(error, EngineError::Config(_)));
    assert!(error.to_string().contains("api_url"), "{error}");
}

#[test]
fn the_engine_records_the_process_that_started_it() {
    let engine = start(test_config("http://127.0.0.1:9"));
    assert_eq!(engine.pid(), std::process::id());
}

#[test]
fn an_engine_can_be_dropped_inside_an_async_context() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = start(test_config("http://127.0.0.1:9"));
        engine.enqueue(entry("a"));
        engine.shutdown(Duration::from_millis(10));
        let stats = engine.stats();
        // Every entry is accounted for: given up on (refused port) or lost at shutdown.
        assert_eq!(
            stats.dropped_retries_exhausted + stats.dropped_at_shutdown,
            1
        );
        drop(engine);
    });
}
