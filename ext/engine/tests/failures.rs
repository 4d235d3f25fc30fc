//! What delivery does with each kind of failure: retries with the same idempotency
//! key, giving up, 429 pauses, 401/403, per-entry rejections, other 4xx, timeouts and
//! dropped connections.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use log_ingestion_engine::{Cancel, DeliveryError, Engine, EngineConfig, ErrorKind, FlushOutcome};
use support::{
    enqueue_until_paused, entry, http_date_in, next_failure, start, start_behind_429, test_config,
    wait_for_rate_limit, FaultServer, Received, Reply, SOON,
};

fn enqueue_and_flush(engine: &Engine, messages: &[&str]) {
    for message in messages {
        assert!(engine.enqueue(entry(*message)).is_accepted());
    }
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
}

/// `later` arrived at least about a second after `earlier` (a `Retry-After: 1`, or an
/// HTTP date one to two seconds ahead, was waited out; 100 ms spare for clock rounding).
fn assert_sent_after_a_second(earlier: &Received, later: &Received) {
    let gap = later.at - earlier.at;
    assert!(
        gap >= Duration::from_millis(900),
        "sent {gap:?} after the 429"
    );
}

/// Exactly two requests arrived, the second at least about a second after the first.
fn assert_two_requests_a_second_apart(server: &FaultServer) {
    let requests = server.received();
    assert_eq!(requests.len(), 2);
    assert_sent_after_a_second(&requests[0], &requests[1]);
}

/// Sends one entry to a server whose first answer is `fault`: it takes two requests, one
/// retry, and the entry is delivered.
fn assert_one_entry_retried_once_then_delivered(fault: Reply) {
    let server = FaultServer::start(vec![fault]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["a"]);
    assert_eq!(server.received().len(), 2);
    assert_eq!(server.accepted_messages(), vec!["a"]);
    assert_eq!(engine.stats().retried, 1);
}

fn no_more_reports(engine: &Engine) -> bool {
    next_failure(engine, Duration::from_millis(20)).is_none()
}

#[test]
fn a_retried_batch_keeps_its_idempotency_key_and_is_delivered() {
    let server = FaultServer::start(vec![Reply::Status(500), Reply::Status(503)]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["a", "b"]);
    let requests = server.received();
    assert_eq!(requests.len(), 3);
    let key = requests[0].header("idempotency-key").unwrap();
    assert!(requests
        .iter()
        .all(|r| r.header("idempotency-key").as_deref() == Some(key.as_str())));
    assert_eq!(server.accepted_messages(), vec!["a", "b"]);
    let stats = engine.stats();
    assert_eq!((stats.sent, stats.retried, stats.failed_batches), (2, 2, 0));
}

#[test]
fn different_batches_get_different_idempotency_keys() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["a"]);
    enqueue_and_flush(&engine, &["b"]);
    let requests = server.received();
    assert_ne!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key")
    );
}

#[test]
fn a_batch_is_dropped_counted_and_reported_when_retries_run_out() {
    let server = FaultServer::start(vec![Reply::Status(500); 4]);
    let engine = start(EngineConfig {
        max_retries: 3,
        ..test_config(&server.url)
    });
    enqueue_and_flush(&engine, &["a", "b", "c"]);
    assert_eq!(server.received().len(), 4, "one attempt plus three retries");
    let stats = engine.stats();
    assert_eq!(stats.dropped_retries_exhausted, 3);
    assert_eq!(stats.failed_batches, 1);
    assert_eq!(stats.retried, 3);
    assert_eq!(stats.sent, 0);
    assert!(stats.last_error.unwrap().contains("HTTP 500"));
    let report = next_failure(&engine, SOON).unwrap();
    assert_eq!(report.kind, ErrorKind::RetriesExhausted);
    assert_eq!(report.entries_lost, 3);
    assert!(report.message.contains("4 attempts"), "{}", report.message);
}

#[test]
fn delivery_continues_with_the_next_batch_after_one_is_dropped() {
    let server = FaultServer::start(vec![Reply::Status(500); 2]);
    let engine = start(EngineConfig {
        max_retries: 1,
        ..test_config(&server.url)
    });
    enqueue_and_flush(&engine, &["lost"]);
    enqueue_and_flush(&engine, &["kept"]);
    assert_eq!(server.accepted_messages(), vec!["kept"]);
}

#[test]
fn a_429_with_retry_after_seconds_pauses_sending_until_then() {
    let (server, engine) = start_behind_429("1");
    enqueue_and_flush(&engine, &["a"]);
    assert_two_requests_a_second_apart(&server);
    assert_eq!(server.accepted_messages(), vec!["a"]);
    assert_eq!(engine.stats().retried, 1);
}

#[test]
fn a_429_shows_rate_limited_until_in_stats_while_paused() {
    let (server, engine) = start_behind_429("2");
    enqueue_until_paused(&engine, "a");
    let until = engine.stats().rate_limited_until.unwrap();
    let ahead = until.duration_since(std::time::SystemTime::now()).unwrap();
    // Retry-After: 2 is the earliest moment; the jittered backoff (at most the test
    // config's max_retry_delay) comes on top of it.
    let latest = Duration::from_secs(2) + test_config(&server.url).max_retry_delay;
    assert!(
        ahead > Duration::from_millis(500) && ahead <= latest,
        "{ahead:?}"
    );
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    assert_eq!(engine.stats().rate_limited_until, None);
}

#[test]
fn a_429_with_an_http_date_pauses_sending_until_that_date() {
    let dated = Instant::now();
    let (server, engine) = start_behind_429(http_date_in(3));
    enqueue_and_flush(&engine, &["a"]);
    // The date has one-second resolution: three seconds ahead is at least two after
    // truncation, measured from when it was written (the first request may go out late
    // on a loaded machine, so the gap between the two requests proves nothing).
    let requests = server.received();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - dated;
    assert!(
        waited >= Duration::from_millis(1_900),
        "retried {waited:?} after the date was written"
    );
    assert_eq!(server.accepted_messages(), vec!["a"]);
}

#[test]
fn a_429_without_retry_after_backs_off_and_retries() {
    assert_one_entry_retried_once_then_delivered(Reply::TooManyRequests(None));
}

#[test]
fn entries_enqueued_during_a_429_pause_stay_queued_and_are_delivered_after_it() {
    let (server, engine) = start_behind_429("1");
    enqueue_until_paused(&engine, "first");
    // Taken at once while paused: the caller never waits for the pause.
    assert!(engine.enqueue(entry("second")).is_accepted());
    assert!(engine.stats().bytes_queued > 0);
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    assert_eq!(server.accepted_messages(), vec!["first", "second"]);
}

fn single_requests(server: &FaultServer) -> Vec<Received> {
    server
        .received()
        .into_iter()
        .filter(|r| r.path == "/api/v1/logs")
        .collect()
}

#[test]
fn send_now_during_a_429_pause_waits_for_it_then_sends_once() {
    let (server, engine) = start_behind_429("1");
    assert!(enqueue_until_paused(&engine, "queued").is_accepted());
    let outcome = engine.send_now(entry("now"), SOON, &Cancel::new()).unwrap();
    assert_eq!(outcome.attempts, 1);
    let singles = single_requests(&server);
    assert_eq!(singles.len(), 1);
    assert_sent_after_a_second(&server.received()[0], &singles[0]);
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    let mut delivered = server.accepted_messages();
    delivered.sort();
    assert_eq!(delivered, vec!["now", "queued"]);
}

#[test]
fn send_now_during_a_429_pause_gives_up_at_its_timeout_without_sending() {
    let (server, engine) = start_behind_429("2");
    assert!(enqueue_until_paused(&engine, "queued").is_accepted());
    assert_eq!(
        engine.send_now(entry("now"), Duration::from_millis(100), &Cancel::new()),
        Err(DeliveryError::TimedOut)
    );
    // Once the pause is over only the queued batch is sent: the timed-out send is gone.
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    assert!(single_requests(&server).is_empty());
    assert_eq!(server.accepted_messages(), vec!["queued"]);
}

#[test]
fn a_429_answered_to_send_now_pauses_queued_delivery_too() {
    let server = FaultServer::start(vec![Reply::TooManyRequests(Some("1".into()))]);
    let engine = Arc::new(start(test_config(&server.url)));
    let sending = std::thread::spawn({
        let engine = Arc::clone(&engine);
        move || engine.send_now(entry("now"), SOON, &Cancel::new())
    });
    wait_for_rate_limit(&engine);
    assert!(engine.enqueue(entry("queued")).is_accepted());
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    assert_eq!(sending.join().unwrap().map(|o| o.attempts), Ok(2));
    let requests = server.received();
    let batch = requests
        .iter()
        .find(|r| r.path == "/api/v1/logs/batch")
        .unwrap();
    assert_sent_after_a_second(&requests[0], batch);
}

#[test]
fn a_429_that_gives_the_batch_up_still_pauses_the_next_batch() {
    let server = FaultServer::start(vec![Reply::TooManyRequests(Some("1".into()))]);
    // Retry-After: 1 is later than max_retry_elapsed allows: the batch is given up.
    let engine = start(EngineConfig {
        max_retry_elapsed: Duration::from_millis(500),
        ..test_config(&server.url)
    });
    enqueue_and_flush(&engine, &["lost"]);
    assert_eq!(engine.stats().dropped_retries_exhausted, 1);
    enqueue_and_flush(&engine, &["kept"]);
    assert_two_requests_a_second_apart(&server);
    assert_eq!(server.accepted_messages(), vec!["kept"]);
}

#[test]
fn unauthorized_is_reported_once_and_every_batch_is_counted() {
    let server = FaultServer::start(vec![Reply::Status(401), Reply::Status(403)]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["a", "b"]);
    enqueue_and_flush(&engine, &["c"]);
    assert_eq!(server.received().len(), 2, "401/403 are not retried");
    let stats = engine.stats();
    assert_eq!(stats.dropped_unauthorized, 3);
    assert_eq!(stats.failed_batches, 2);
    let report = next_failure(&engine, SOON).unwrap();
    assert_eq!(report.kind, ErrorKind::Unauthorized);
    assert_eq!(report.entries_lost, 2);
    assert!(no_more_reports(&engine));
}

#[test]
fn entries_rejected_one_by_one_are_counted_and_never_resent() {
    let server = FaultServer::start(vec![Reply::RejectEntries(vec![1, 3])]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["a", "b", "c", "d", "e"]);
    enqueue_and_flush(&engine, &["f"]);
    let requests = server.received();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].messages(), vec!["f"]);
    let stats = engine.stats();
    assert_eq!(stats.rejected_by_server, 2);
    assert_eq!(stats.sent, 4);
    let report = next_failure(&engine, SOON).unwrap();
    assert_eq!(report.kind, ErrorKind::Rejected);
    assert_eq!(report.entries_lost, 2);
    assert!(report.message.contains("scripted rejection"));
}

#[test]
fn a_400_drops_the_batch_as_invalid_without_retrying() {
    let server = FaultServer::start(vec![Reply::Status(400)]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["a", "b"]);
    assert_eq!(server.received().len(), 1);
    let stats = engine.stats();
    assert_eq!(
        (stats.dropped_invalid, stats.failed_batches, stats.retried),
        (2, 1, 0)
    );
    let report = next_failure(&engine, SOON).unwrap();
    assert_eq!(report.kind, ErrorKind::Invalid);
    assert!(report.message.contains("HTTP 400"), "{}", report.message);
}

#[test]
fn a_413_drops_the_batch_as_invalid() {
    let server = FaultServer::start(vec![Reply::Status(413)]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["a"]);
    assert_eq!(engine.stats().dropped_invalid, 1);
}

#[test]
fn a_408_is_retried() {
    let server = FaultServer::start(vec![Reply::Status(408)]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["a"]);
    assert_eq!(server.accepted_messages(), vec!["a"]);
}

#[test]
fn an_answer_slower_than_the_read_timeout_is_retried() {
    let server = FaultServer::start(vec![Reply::SlowAccept(Duration::from_secs(5))]);
    let engine = start(EngineConfig {
        read_timeout: Duration::from_millis(200),
        ..test_config(&server.url)
    });
    enqueue_and_flush(&engine, &["a"]);
    let requests = server.received();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key")
    );
    let stats = engine.stats();
    assert_eq!((stats.retried, stats.sent), (1, 1));
    assert!(
        stats
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("timeout"),
        "{:?}",
        stats.last_error
    );
}

#[test]
fn a_connection_closed_without_an_answer_is_retried() {
    assert_one_entry_retried_once_then_delivered(Reply::Close);
}

#[test]
fn a_reset_connection_is_retried_and_the_batch_delivered_once_under_the_same_key() {
    let server = FaultServer::start(vec![Reply::Reset]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["a", "b"]);
    let requests = server.received();
    assert_eq!(requests.len(), 2, "the reset attempt and one retry");
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key")
    );
    assert_eq!(server.accepted_messages(), vec!["a", "b"]);
    let stats = engine.stats();
    assert_eq!((stats.sent, stats.retried, stats.failed_batches), (2, 1, 0));
    // The client saw a real TCP reset (ECONNRESET), not an orderly close.
    let error = stats.last_error.unwrap_or_default();
    assert!(error.contains("reset by peer"), "{error}");
}

// A refused connection: see unavailable.rs (retried until max_retry_elapsed).

#[test]
fn a_redirect_is_not_followed_so_the_api_key_stays_put() {
    let elsewhere = FaultServer::start(vec![]);
    let server = FaultServer::start(vec![Reply::Redirect(format!(
        "{}/api/v1/logs/batch",
        elsewhere.url
    ))]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["a"]);
    assert!(elsewhere.received().is_empty());
    assert_eq!(server.received().len(), 1);
    assert_eq!(engine.stats().dropped_invalid, 1);
}
