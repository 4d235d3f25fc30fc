//! Attacks on connections: uploads that stall after their headers, headers sent a byte
//! at a time, and many connections that never send a key.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::harness::{
    connect, long_tests, outcome, send_post_head, Outcome, Target, BODY_IDLE_TIMEOUT,
    BODY_READ_TIMEOUT, HEADER_TIMEOUT, PEAK_RSS_MIB,
};

/// Slack on top of a timeout before a connection still open counts as a hang.
const SLACK: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stalled_uploads_do_not_deny_ingestion_beyond_the_body_timeout() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    // Together they declare the whole 16 MiB in-flight budget, then send nothing.
    let mut stalled = Vec::new();
    for length in [10_485_760, 6_291_456] {
        let mut stream = connect(&target).await;
        send_post_head(
            &mut stream,
            "/api/v1/logs/batch",
            &[
                "Content-Type: application/json".to_owned(),
                format!("Content-Length: {length}"),
            ],
        )
        .await;
        stalled.push(stream);
    }
    let attacked = Instant::now();
    // The good client keeps (or gets back) its ingestion while they stay open.
    good.wait_for_batches(20).await;
    for stream in &mut stalled {
        let got = outcome(stream, BODY_IDLE_TIMEOUT + SLACK).await;
        assert!(got.is_clear_refusal(), "a stalled upload got {got:?}");
    }
    assert!(attacked.elapsed() < BODY_IDLE_TIMEOUT + SLACK + SLACK);
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
    assert!(
        target
            .metric("log_ingestion_requests_rejected_total{reason=\"body_timeout\"}")
            .await
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_stalled_uploads_are_all_cut_off() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let count = if long_tests() { 1_000 } else { 200 };
    let mut stalled = Vec::new();
    for _ in 0..count {
        let mut stream = connect(&target).await;
        send_post_head(
            &mut stream,
            "/api/v1/logs/batch",
            &[
                "Content-Type: application/json".to_owned(),
                "Content-Length: 1048576".to_owned(),
            ],
        )
        .await;
        // Some of the body, then nothing more.
        stream.write_all(&[b' '; 1024]).await.unwrap();
        stalled.push(stream);
    }
    good.wait_for_batches(20).await;
    let deadline = Instant::now() + BODY_READ_TIMEOUT + SLACK;
    for stream in &mut stalled {
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
        let got = outcome(stream, wait).await;
        assert!(got.is_clear_refusal(), "a stalled upload got {got:?}");
    }
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_trickling_under_the_idle_timeout_meets_the_body_deadline() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    let mut stream = connect(&target).await;
    send_post_head(
        &mut stream,
        "/api/v1/logs/batch",
        &[
            "Content-Type: application/json".to_owned(),
            "Content-Length: 10485760".to_owned(),
        ],
    )
    .await;
    let started = Instant::now();
    // A byte well within every idle timeout, until the server gives up.
    let got = loop {
        if stream.write_all(b" ").await.is_err() {
            break Outcome::Closed;
        }
        let got = outcome(&mut stream, BODY_IDLE_TIMEOUT / 4).await;
        if got != Outcome::Hung {
            break got;
        }
        assert!(
            started.elapsed() < BODY_READ_TIMEOUT + SLACK,
            "still reading a trickle after {:?}",
            started.elapsed()
        );
    };
    assert!(got.is_clear_refusal(), "{got:?}");
    assert!(started.elapsed() >= BODY_READ_TIMEOUT / 2);
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut stream = connect(&target).await;
        stream
            .write_all(b"POST /api/v1/logs/batch HTTP/1.1\r\nX-Slow: ")
            .await
            .unwrap();
        streams.push(stream);
    }
    let started = Instant::now();
    let mut closed = vec![false; streams.len()];
    while closed.iter().any(|c| !c) {
        assert!(
            started.elapsed() < HEADER_TIMEOUT + SLACK,
            "slow headers still open after {:?}",
            started.elapsed()
        );
        for (stream, closed) in streams.iter_mut().zip(closed.iter_mut()) {
            if *closed {
                continue;
            }
            if stream.write_all(b"a").await.is_err() {
                *closed = true;
                continue;
            }
            if outcome(stream, Duration::from_millis(10)).await != Outcome::Hung {
                *closed = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
    assert!(
        target
            .metric("log_ingestion_connections_closed_total{reason=\"header_timeout\"}")
            .await
            >= 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_idle_connections_without_a_key_are_capped_and_closed() {
    let mut target =
        Target::start(&[("LOG_INGESTION_MAX_UNAUTHENTICATED_CONNECTIONS", "100")]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let count = if long_tests() { 5_000 } else { 500 };
    let mut idle = Vec::new();
    for _ in 0..count {
        idle.push(connect(&target).await);
    }
    good.wait_for_batches(20).await;
    let deadline = Instant::now() + HEADER_TIMEOUT + SLACK;
    for stream in &mut idle {
        let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
        let got = outcome(stream, wait).await;
        assert!(got.is_clear_refusal(), "an idle connection got {got:?}");
    }
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
    let evicted = target
        .metric("log_ingestion_connections_closed_total{reason=\"unauthenticated_evicted\"}")
        .await;
    assert!(
        evicted >= (count as u64) / 2,
        "{evicted} evicted at the cap"
    );
}

/// Idle sockets that never send a key, more than the unauthenticated cap and held open
/// far longer than the test (the header read timeout is set to two minutes), must not
/// lock out a client that opens a fresh connection per request: each newcomer evicts
/// the oldest connection still without a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_without_a_key_cannot_lock_out_new_clients() {
    const CAP: usize = 50;
    const ATTACK: usize = CAP + 30;
    let mut target = Target::start(&[
        ("LOG_INGESTION_MAX_UNAUTHENTICATED_CONNECTIONS", "50"),
        ("LOG_INGESTION_HEADER_READ_TIMEOUT", "120s"),
    ])
    .await;
    let good = target.good_client_on_fresh_connections();
    good.wait_for_batches(3).await;
    let mut idle = Vec::new();
    for _ in 0..ATTACK {
        idle.push(connect(&target).await);
    }
    // Every batch needs a new connection admitted past a full unauthenticated budget.
    good.wait_for_batches(20).await;
    let record = good.stop().await;
    let batches = record.latencies.len();
    // The oldest ATTACK - CAP were evicted by the attack's own newer connections.
    for (index, stream) in idle.iter_mut().enumerate().take(ATTACK - CAP) {
        let got = outcome(stream, Duration::from_secs(5)).await;
        assert_eq!(
            got,
            Outcome::Closed,
            "idle connection {index} was not evicted"
        );
    }
    // The newest are still open: eviction takes the oldest, not any.
    for (index, stream) in idle.iter_mut().enumerate().skip(ATTACK - 5) {
        let got = outcome(stream, Duration::from_millis(100)).await;
        assert_eq!(
            got,
            Outcome::Hung,
            "idle connection {index} (among the newest) was closed after {batches} good batches"
        );
    }
    target.assert_survived(&record, PEAK_RSS_MIB).await;
    let evicted = target
        .metric("log_ingestion_connections_closed_total{reason=\"unauthenticated_evicted\"}")
        .await;
    assert!(
        evicted >= (ATTACK - CAP) as u64,
        "{evicted} evicted for {ATTACK} idle connections over a cap of {CAP}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_connection_cap_are_closed_at_once() {
    let mut target = Target::start(&[
        ("LOG_INGESTION_MAX_CONNECTIONS", "40"),
        ("LOG_INGESTION_MAX_UNAUTHENTICATED_CONNECTIONS", "1000"),
        // Long enough that the idle connections are still open when counted.
        ("LOG_INGESTION_HEADER_READ_TIMEOUT", "5s"),
    ])
    .await;
    let good = target.good_client();
    // The good client's connection is open (and authenticated) before the attack.
    good.wait_for_batches(3).await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(connect(&target).await);
    }
    good.wait_for_batches(10).await;
    let mut closed_at_once = 0;
    for stream in &mut idle {
        if outcome(stream, Duration::from_millis(50)).await == Outcome::Closed {
            closed_at_once += 1;
        }
    }
    assert!(
        closed_at_once >= 150,
        "{closed_at_once} of 200 closed at once"
    );
    let record = good.stop().await;
    drop(idle);
    target.assert_survived(&record, PEAK_RSS_MIB).await;
    let refused = target
        .metric("log_ingestion_connections_closed_total{reason=\"connection_cap\"}")
        .await;
    assert!(refused >= 150, "{refused} refused at the cap");
}
