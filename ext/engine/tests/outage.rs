//! An outage, as the application hears of it: one report when delivery starts failing
//! and one when it recovers (with how long it lasted, what waited, was retried and was
//! dropped), not one per batch or attempt; `last_error` with its time kept after
//! recovery beside `last_success_at`; and `send_once`, which answers a refused
//! connection at once instead of retrying it for its whole timeout.

use crate::support;

use std::time::{Duration, Instant};

use log_ingestion_engine::{
    Cancel, DeliveryError, Engine, EngineConfig, ErrorKind, ErrorReport, FlushOutcome,
};
use support::{entry, start, test_config, FaultServer, Reply, SOON};

/// Every report the engine has for `on_error` now (waiting briefly for the last).
fn reports(engine: &Engine) -> Vec<ErrorReport> {
    let mut reports = Vec::new();
    while let Some(report) = engine.next_error(Duration::from_millis(100), &Cancel::new()) {
        reports.push(report);
    }
    reports
}

fn kinds(reports: &[ErrorReport]) -> Vec<ErrorKind> {
    reports.iter().map(|report| report.kind).collect()
}

fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
}

/// Batches of one: three batches wait behind the first while it is retried.
fn one_per_batch(url: &str) -> EngineConfig {
    EngineConfig {
        batch_size: 1,
        ..test_config(url)
    }
}

fn enqueue_and_flush(engine: &Engine, messages: &[&str]) {
    for message in messages {
        assert!(engine.enqueue(entry(*message)).is_accepted());
    }
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
}

#[test]
fn an_outage_is_one_report_when_it_starts_and_one_when_it_recovers() {
    let server = FaultServer::start(vec![Reply::Unavailable(None); 6]);
    let engine = start(one_per_batch(&server.url));
    enqueue_and_flush(&engine, &["a", "b", "c"]);
    assert_eq!(server.accepted_messages(), vec!["a", "b", "c"]);

    let reports = reports(&engine);
    assert_eq!(
        kinds(&reports),
        vec![ErrorKind::Outage, ErrorKind::Recovered]
    );
    assert!(
        reports[0].message.contains("HTTP 503"),
        "{}",
        reports[0].message
    );
    assert!(reports.iter().all(|report| report.entries_lost == 0));
}

#[test]
fn the_recovery_report_counts_what_waited_was_retried_and_was_dropped() {
    let server = FaultServer::start(vec![Reply::Unavailable(None); 6]);
    let engine = start(one_per_batch(&server.url));
    enqueue_and_flush(&engine, &["a", "b", "c"]);

    let recovered = reports(&engine).pop().unwrap();
    assert_eq!(recovered.kind, ErrorKind::Recovered);
    // The batch in flight and the two behind it waited; six 503s, each retried.
    assert!(
        recovered.message.contains(
            "3 entries waiting, 6 failed attempts, 6 requests retried, 0 entries dropped"
        ),
        "{}",
        recovered.message
    );
}

#[test]
fn a_batch_given_up_during_an_outage_is_counted_as_dropped_in_the_recovery_report() {
    let server = FaultServer::start(vec![Reply::Status(500); 2]);
    let engine = start(EngineConfig {
        max_retries: 1,
        ..one_per_batch(&server.url)
    });
    enqueue_and_flush(&engine, &["poison", "fine"]);
    assert_eq!(server.accepted_messages(), vec!["fine"]);

    let reports = reports(&engine);
    assert_eq!(
        kinds(&reports),
        vec![
            ErrorKind::Outage,
            ErrorKind::RetriesExhausted,
            ErrorKind::Recovered
        ]
    );
    assert!(
        reports[2].message.contains("1 entry dropped"),
        "{}",
        reports[2].message
    );
}

#[test]
fn a_429_is_a_pause_not_an_outage() {
    let server = FaultServer::start(vec![Reply::TooManyRequests(Some("0".into())); 2]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["paused"]);
    assert_eq!(server.accepted_messages(), vec!["paused"]);

    assert_eq!(kinds(&reports(&engine)), Vec::<ErrorKind>::new());
}

#[test]
fn delivery_that_never_failed_reports_nothing_and_records_its_last_success() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["fine"]);

    assert_eq!(kinds(&reports(&engine)), Vec::<ErrorKind>::new());
    let stats = engine.stats();
    assert!(stats.last_success_at.is_some());
    assert_eq!((stats.last_error, stats.last_error_at), (None, None));
}

#[test]
fn last_error_stays_after_recovery_with_a_time_before_last_success_at() {
    let server = FaultServer::start(vec![Reply::Unavailable(None); 2]);
    let engine = start(test_config(&server.url));
    enqueue_and_flush(&engine, &["late"]);

    let stats = engine.stats();
    assert!(
        stats
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("HTTP 503"),
        "{:?}",
        stats.last_error
    );
    let (error_at, success_at) = (stats.last_error_at.unwrap(), stats.last_success_at.unwrap());
    assert!(error_at <= success_at, "{error_at:?} > {success_at:?}");
}

#[test]
fn send_once_answers_a_refused_connection_at_once_naming_it() {
    let engine = start(test_config(&refused_url()));
    let started = Instant::now();
    let sent = engine.send_once(entry("probe"), Duration::from_secs(30), &Cancel::new());
    let took = started.elapsed();

    match sent {
        Err(DeliveryError::RetriesExhausted { attempts, message }) => {
            assert_eq!(attempts, 1);
            assert!(message.contains("not retried"), "{message}");
        }
        other => panic!("expected a failed single attempt, got {other:?}"),
    }
    // send_now retries a refused connection until its timeout (30 s here); loose bound.
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    assert_eq!(engine.stats().retried, 0);
}

#[test]
fn a_failed_send_once_is_its_callers_answer_not_an_outage() {
    let engine = start(test_config(&refused_url()));
    assert!(engine
        .send_once(entry("probe"), SOON, &Cancel::new())
        .is_err());
    assert_eq!(kinds(&reports(&engine)), Vec::<ErrorKind>::new());
}

#[test]
fn send_once_delivers_like_send_now_when_the_server_answers() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    let sent = engine
        .send_once(entry("probe"), SOON, &Cancel::new())
        .unwrap();
    assert_eq!((sent.status, sent.attempts), (200, 1));
    assert_eq!(server.accepted_messages(), vec!["probe"]);
}
