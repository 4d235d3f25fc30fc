//! How entries become requests: batch size, interval, byte cap, gzip, order, headers,
//! one-by-one delivery without batching, and concurrent callers.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use log_ingestion_engine::{Cancel, EngineConfig, FlushOutcome};
use support::{entry, start, test_config, FaultServer, SOON};

#[test]
fn a_full_batch_is_sent_without_waiting_for_the_interval() {
    let server = FaultServer::start(vec![]);
    let engine = start(EngineConfig {
        batch_size: 10,
        ..test_config(&server.url)
    });
    for i in 0..20 {
        assert!(engine.enqueue(entry(format!("m{i}"))).is_accepted());
    }
    let requests = server.wait_for_requests(2, SOON);
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.entries().len() == 10));
    assert!(requests.iter().all(|r| r.path == "/api/v1/logs/batch"));
}

#[test]
fn a_partial_batch_is_sent_once_the_interval_elapses() {
    let server = FaultServer::start(vec![]);
    let engine = start(EngineConfig {
        batch_size: 1000,
        batch_interval: Duration::from_millis(50),
        ..test_config(&server.url)
    });
    for i in 0..3 {
        engine.enqueue(entry(format!("m{i}")));
    }
    // No flush: only the interval can send these.
    assert_eq!(server.wait_for_messages(3, SOON), vec!["m0", "m1", "m2"]);
}

#[test]
fn a_flush_sends_a_partial_batch_at_once() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    for i in 0..25 {
        engine.enqueue(entry(format!("m{i}")));
    }
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    let requests = server.received();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].entries().len(), 25);
    assert_eq!(engine.stats().sent, 25);
}

#[test]
fn batches_are_capped_in_bytes() {
    let server = FaultServer::start(vec![]);
    let engine = start(EngineConfig {
        max_batch_bytes: 4096,
        ..test_config(&server.url)
    });
    for i in 0..10 {
        engine.enqueue(entry(format!("{i:02}{}", "x".repeat(1000))));
    }
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    let requests = server.received();
    assert!(requests.len() >= 3, "{} requests", requests.len());
    assert!(requests.iter().all(|r| r.raw_len <= 4096));
    assert_eq!(server.accepted_messages().len(), 10);
}

#[test]
fn large_bodies_are_gzipped_and_decode_to_the_entries() {
    let server = FaultServer::start(vec![]);
    let engine = start(EngineConfig {
        gzip: true,
        ..test_config(&server.url)
    });
    for i in 0..20 {
        engine.enqueue(entry(format!("message number {i} with some text")));
    }
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    let request = &server.received()[0];
    assert!(request.gzipped);
    assert_eq!(request.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(request.messages().len(), 20);
    assert_eq!(request.messages()[19], "message number 19 with some text");
}

#[test]
fn small_bodies_are_sent_uncompressed() {
    let server = FaultServer::start(vec![]);
    let engine = start(EngineConfig {
        gzip: true,
        ..test_config(&server.url)
    });
    engine.enqueue(entry("tiny"));
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    let request = &server.received()[0];
    assert!(!request.gzipped);
    assert_eq!(request.messages(), vec!["tiny"]);
}

#[test]
fn large_bodies_are_sent_uncompressed_when_gzip_is_off() {
    let server = FaultServer::start(vec![]);
    let engine = start(EngineConfig {
        gzip: false,
        ..test_config(&server.url)
    });
    for i in 0..50 {
        engine.enqueue(entry(format!("entry {i} {}", "x".repeat(100))));
    }
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    let requests = server.received();
    assert!(requests.iter().map(|r| r.raw_len).sum::<usize>() > 5_000);
    assert!(requests.iter().all(|r| !r.gzipped));
    assert!(requests
        .iter()
        .all(|r| r.header("content-encoding").is_none()));
    assert_eq!(server.accepted_messages().len(), 50);
}

#[test]
fn requests_carry_the_api_key_json_type_and_an_idempotency_key() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    engine.enqueue(entry("hello"));
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    let request = &server.received()[0];
    assert_eq!(request.header("x-api-key").as_deref(), Some("test-key"));
    assert_eq!(
        request.header("content-type").as_deref(),
        Some("application/json")
    );
    let key = request.header("idempotency-key").unwrap();
    assert_eq!(key.len(), 36, "{key}");
    let sent = &request.entries()[0];
    assert_eq!(sent["service"], "test-service");
    assert_eq!(sent["level"], "INFO");
    assert_eq!(sent["metadata"]["request_id"], "abc-123");
    assert!(sent["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn order_is_preserved_across_batches() {
    let server = FaultServer::start(vec![]);
    let engine = start(EngineConfig {
        batch_size: 50,
        ..test_config(&server.url)
    });
    let expected: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    for message in &expected {
        engine.enqueue(entry(message.clone()));
    }
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    assert_eq!(server.accepted_messages(), expected);
}

#[test]
fn without_batching_each_entry_is_its_own_request_without_a_flush() {
    let server = FaultServer::start(vec![]);
    let engine = start(EngineConfig {
        enable_batching: false,
        ..test_config(&server.url)
    });
    for i in 0..3 {
        engine.enqueue(entry(format!("m{i}")));
    }
    let requests = server.wait_for_requests(3, SOON);
    assert!(requests.iter().all(|r| r.path == "/api/v1/logs"));
    assert!(requests.iter().all(|r| r.body.get("log").is_some()));
    assert_eq!(server.accepted_messages(), vec!["m0", "m1", "m2"]);
}

#[test]
fn eight_threads_enqueueing_at_once_deliver_exactly_every_entry() {
    let server = FaultServer::start(vec![]);
    let engine = Arc::new(start(EngineConfig {
        batch_size: 256,
        ..test_config(&server.url)
    }));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for i in 0..1000 {
                    assert!(engine.enqueue(entry(format!("t{t}-{i}"))).is_accepted());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    let messages = server.accepted_messages();
    assert_eq!(messages.len(), 8000);
    let unique: std::collections::HashSet<_> = messages.iter().collect();
    assert_eq!(unique.len(), 8000);
    // Each thread's own entries arrive in the order it enqueued them.
    for t in 0..8 {
        let prefix = format!("t{t}-");
        let own: Vec<usize> = messages
            .iter()
            .filter_map(|m| m.strip_prefix(&prefix))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(own, (0..1000).collect::<Vec<_>>());
    }
    let stats = engine.stats();
    assert_eq!((stats.enqueued, stats.sent), (8000, 8000));
}

#[test]
fn consecutive_batches_reuse_one_kept_alive_connection() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    for message in ["a", "b", "c"] {
        engine.enqueue(entry(message));
        assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    }
    let requests = server.received();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.peer == requests[0].peer));
}

#[test]
fn after_a_flush_nothing_is_queued_or_in_flight() {
    let server = FaultServer::start(vec![]);
    let engine = start(test_config(&server.url));
    engine.enqueue(entry("a"));
    assert_eq!(engine.flush(SOON, &Cancel::new()), FlushOutcome::Flushed);
    let stats = engine.stats();
    assert_eq!(stats.bytes_queued, 0);
    assert_eq!(stats.batches_in_flight, 0);
    assert_eq!(stats.sent, 1);
}
